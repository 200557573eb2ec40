"""The backtester: the Trader and the paper exchange over history on a simulated clock.

Results never depend on persistence: events go to whatever sink is given (none by default).
Warm-up bars (the longest strategy lookback) are traded through but excluded from the metrics,
and their count is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from sovereign.brokers.paper_exchange import PaperConfig, PaperExchange
from sovereign.constitution import Constitution
from sovereign.engines.indicators import FeatureFrame, compute_features
from sovereign.engines.regime import RegimeEngine, market_returns
from sovereign.market.bars import BarPanel
from sovereign.rules.context import Regime
from sovereign.rules.rule import RuleSet
from sovereign.trading.events import ClosedTrade, EventSink, Transition
from sovereign.trading.loop import BarLoop, RegimeSeries
from sovereign.trading.metrics import performance
from sovereign.trading.overlay import Overlay, OverlayConfig, compute_overlay
from sovereign.trading.strategies.base import BaseStrategy
from sovereign.trading.supervisor import Supervisor
from sovereign.trading.trader import Trader, TraderConfig


@dataclass(frozen=True, kw_only=True, slots=True)
class RegimeConfig:
    n_states: int = 4
    n_restarts: int = 3
    refit_every: int = 252
    min_history: int = 504
    min_confidence: float = 0.6


@dataclass(frozen=True, kw_only=True, slots=True)
class BacktestConfig:
    cash: float = 1_000_000.0
    seed: int = 42
    paper: PaperConfig = field(default_factory=PaperConfig)
    trader: TraderConfig = field(default_factory=TraderConfig)
    regime: RegimeConfig = field(default_factory=RegimeConfig)
    overlay: OverlayConfig = field(default_factory=OverlayConfig)


@dataclass(frozen=True, kw_only=True, slots=True)
class Prepared:
    """Causal features and regimes of a panel, computed once and reusable across runs."""

    features: FeatureFrame
    regimes: RegimeSeries
    overlay: Overlay | None = None


def prepare(
    panel: BarPanel,
    regime: RegimeConfig | None = None,
    *,
    seed: int = 42,
    overlay: OverlayConfig | None = None,
) -> Prepared:
    """Features (ATR, volume percentile, support/resistance, volatility), the market regime
    per bar (walk-forward and filtered, never smoothed) and the engines' overlay (stability,
    crash sentinel, stress limits; :mod:`sovereign.trading.overlay`) for ``panel``."""
    cfg = regime or RegimeConfig()
    features = compute_features(panel)
    engine = RegimeEngine(
        n_states=cfg.n_states,
        n_restarts=cfg.n_restarts,
        refit_every=cfg.refit_every,
        min_history=cfg.min_history,
        min_confidence=cfg.min_confidence,
        seed=seed,
    )
    path = engine.run(market_returns(panel.close))
    regimes = np.array([Regime(r) for r in path.regime], dtype=object)
    return Prepared(
        features=features,
        regimes=RegimeSeries(regime=regimes, confidence=np.asarray(path.confidence, dtype=float)),
        overlay=compute_overlay(panel, overlay, seed=seed),
    )


@dataclass(frozen=True, kw_only=True)
class BacktestResult:
    equity: pd.Series  # account equity at each bar's close, money
    warmup_bars: int
    metrics: dict[str, float]
    trades: list[ClosedTrade]
    open_positions: list[dict[str, Any]]
    per_strategy: dict[str, dict[str, float]]
    transitions: list[Transition]
    orders: int
    fills: int
    final_equity: float
    ruleset_id: str

    def to_json(self) -> dict[str, Any]:
        """The contract of `sovereign backtest --json`."""
        return {
            "final_equity": round(self.final_equity, 2),
            "start": _iso(self.equity.index[0]) if len(self.equity) else None,
            "end": _iso(self.equity.index[-1]) if len(self.equity) else None,
            "warmup_bars": self.warmup_bars,
            "metrics": {k: _num(v) for k, v in self.metrics.items()},
            "per_strategy": {
                k: {m: _num(v) for m, v in d.items()} for k, d in self.per_strategy.items()
            },
            "orders": self.orders,
            "fills": self.fills,
            "ruleset_id": self.ruleset_id,
            "trades": [
                {
                    "strategy": t.strategy,
                    "symbol": t.symbol,
                    "side": "long" if t.side > 0 else "short",
                    "entry_time": _iso(t.entry_time),
                    "exit_time": _iso(t.exit_time),
                    "entry_bar": t.entry_bar,
                    "exit_bar": t.exit_bar,
                    "entry_price": round(t.entry_price, 6),
                    "exit_price": round(t.exit_price, 6),
                    "quantity": t.quantity,
                    "pnl": round(t.pnl, 2),
                    "entry_reason": t.entry_reason,
                    "exit_reason": t.exit_reason,
                    "regime_at_entry": t.regime_at_entry,
                }
                for t in self.trades
            ],
            "open_positions": self.open_positions,
            "transitions": [
                {
                    "timestamp": _iso(t.timestamp),
                    "scope": t.scope,
                    "from": t.from_state,
                    "to": t.to_state,
                    "reason": t.reason,
                }
                for t in self.transitions
            ],
        }


def _iso(ts: datetime | pd.Timestamp) -> str:
    return pd.Timestamp(ts).isoformat()


def _num(v: float) -> float | None:
    return round(float(v), 6) if np.isfinite(v) else None


class _TransitionTap:
    """Passes events on and keeps the Supervisor transitions for the result."""

    def __init__(self, inner: EventSink | None) -> None:
        self.inner = inner
        self.transitions: list[Transition] = []

    def emit(self, event: object) -> None:
        if isinstance(event, Transition):
            self.transitions.append(event)
        if self.inner is not None:
            self.inner.emit(event)  # type: ignore[arg-type]


def run_backtest(
    panel: BarPanel,
    strategies: Sequence[BaseStrategy],
    *,
    rules: RuleSet | None = None,
    constitution: Constitution | None = None,
    config: BacktestConfig | None = None,
    prepared: Prepared | None = None,
    sink: EventSink | None = None,
    on_bar: Callable[[int, BarLoop], None] | None = None,
) -> BacktestResult:
    """Backtest ``strategies`` over ``panel`` with ``rules`` under ``constitution``.

    Deterministic: the same inputs and ``config.seed`` give the same trades and equity.
    ``on_bar(i, loop)`` is called after each bar (progress bars, rule changes mid-run).
    """
    cfg = config or BacktestConfig()
    prep = prepared or prepare(panel, cfg.regime, seed=cfg.seed, overlay=cfg.overlay)
    tap = _TransitionTap(sink)
    exchange = PaperExchange(panel.symbols, config=cfg.paper, cash=cfg.cash, seed=cfg.seed)
    supervisor = Supervisor(constitution=constitution or Constitution())
    trader = Trader(
        strategies=strategies,
        supervisor=supervisor,
        rules=rules,
        config=cfg.trader,
        sink=tap,
        initial_equity=cfg.cash,
    )
    loop = BarLoop(
        panel=panel,
        features=prep.features,
        regimes=prep.regimes,
        exchange=exchange,
        trader=trader,
        overlay=prep.overlay,
    )
    for i in range(panel.n_bars):
        loop.step(i)
        if on_bar is not None:
            on_bar(i, loop)
    return summarize(loop, warmup=trader.warmup_bars)


def summarize(loop: BarLoop, *, warmup: int) -> BacktestResult:
    """Metrics over the bars after ``warmup``, trades, open positions and per-strategy P&L."""
    trader = loop.trader
    n = len(loop.equity)
    index = loop.panel.timestamps[loop.bars]
    equity = pd.Series(loop.equity, index=index, dtype=float)
    warm = min(warmup, max(n - 1, 0))
    trades = list(trader.book.closed)
    scored = [t for t in trades if t.entry_bar >= warm]
    metrics = performance(
        equity.iloc[warm:],
        scored,
        traded_notional=loop.traded_notional,
        gross_exposure=pd.Series(loop.gross[warm:], index=index[warm:]),
    )
    last = loop.bars[-1] if n else 0
    marks = (
        {s: float(loop.panel.close[last, j]) for j, s in enumerate(loop.panel.symbols)} if n else {}
    )
    open_positions = [
        {
            "strategy": t.strategy,
            "symbol": t.symbol,
            "side": "long" if t.side > 0 else "short",
            "quantity": t.quantity,
            "entry_time": _iso(t.entry_time),
            "entry_price": round(t.entry_price, 6),
            "unrealized_pnl": round(t.unrealized(marks.get(t.symbol, t.entry_price)), 2),
        }
        for t in trader.book.open.values()
    ]
    per_strategy: dict[str, dict[str, float]] = {}
    for name in trader.strategies:
        mine = [t for t in trades if t.strategy == name]
        pool = trader.supervisor.pools[name]
        pool_eq = trader.book.pool_equity(name, pool.capital, marks)
        per_strategy[name] = {
            "trades": float(len(mine)),
            "realized_pnl": float(sum(t.pnl for t in mine)),
            "pool_equity": float(pool_eq),
            "pool_return": float(pool_eq / pool.capital - 1.0) if pool.capital else 0.0,
            "win_rate": float(np.mean([t.pnl > 0 for t in mine])) if mine else 0.0,
            "killed": float(pool.state.value == "KILLED"),
        }
    tap = trader.sink
    transitions = tap.transitions if isinstance(tap, _TransitionTap) else []
    return BacktestResult(
        equity=equity,
        warmup_bars=warm,
        metrics=metrics,
        trades=trades,
        open_positions=open_positions,
        per_strategy=per_strategy,
        transitions=transitions,
        orders=loop.orders_sent,
        fills=len(loop.exchange.fills),
        final_equity=float(loop.equity[-1]) if n else float("nan"),
        ruleset_id=trader.rules.id,
    )
