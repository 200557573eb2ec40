"""Backtest runs the gate compares: windows of a panel with their causal inputs cut to match,
one run's outcome reduced to what the gate judges, and the in-memory cache of baseline runs.

A :class:`Window` is a stretch of bars plus the features and regimes of exactly those bars; its
first ``judged_from`` bars are lead-in (strategies warm up and trade through them, nothing is
measured there). A :class:`RunOutcome` keeps the per-bar returns of the judged bars and the
activity (trades, orders, notional, Supervisor breaches) the gate's checks need.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sovereign.brokers.models import Fill
from sovereign.constitution import Constitution
from sovereign.engines.indicators import FeatureFrame
from sovereign.market.bars import BarPanel
from sovereign.rules.rule import RuleSet
from sovereign.trading.backtest import BacktestConfig, Prepared, run_backtest
from sovereign.trading.catalog import build
from sovereign.trading.events import ClosedTrade, Decision, Event, OrderSubmitted, Transition
from sovereign.trading.loop import BarLoop, RegimeSeries
from sovereign.trading.metrics import max_drawdown

#: (strategy, symbol, entry time, exit time, ids of the rules that fired on the trade)
TradeKey = tuple[str, str, str, str, tuple[str, ...]]


def cut_prepared(prepared: Prepared, lo: int, hi: int) -> Prepared:
    """Rows ``lo:hi`` of every feature array and of the regime path (all causal, so a cut is
    what a run over those rows would have known)."""
    f = prepared.features
    arrays: dict[str, Any] = {}
    for name in f.__slots__:
        value = getattr(f, name)
        arrays[name] = value[lo:hi] if isinstance(value, np.ndarray) else value
    return Prepared(
        features=FeatureFrame(**arrays),
        regimes=RegimeSeries(
            regime=prepared.regimes.regime[lo:hi],
            confidence=prepared.regimes.confidence[lo:hi],
        ),
        overlay=None if prepared.overlay is None else prepared.overlay.slice(lo, hi),
    )


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Window:
    """Bars to backtest. ``panel`` and ``prepared`` cover the same rows; bars ``< judged_from``
    are lead-in. ``offset``: row of ``panel``'s first bar in its source panel (-1: synthetic)."""

    name: str
    panel: BarPanel
    prepared: Prepared
    judged_from: int
    offset: int = -1


@dataclass(frozen=True, kw_only=True, slots=True)
class Side:
    """What is backtested on one side of the comparison."""

    strategies: tuple[str, ...]
    params: dict[str, dict[str, float]]
    rules: RuleSet
    constitution: Constitution
    config: BacktestConfig


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class RunOutcome:
    """One run reduced to what the gate judges.

    ``returns``: (n,) simple returns of account equity at the judged bars (bar ``t``'s return is
    equity[t] / equity[t-1] - 1). ``bars``: (n,) their bar indices in the window's panel.
    ``equity``: (n + 1,) equity at the bar before the first judged bar, then at each judged bar.
    ``trades``: round trips entered at a judged bar. ``orders``/``traded_notional``: orders sent
    and money filled at judged bars. ``max_orders_per_day``: the busiest calendar day (judged).
    ``halted``/``killed``: the Supervisor halted the account / killed these strategies at any
    time in the run. ``pool_loss``: each strategy pool's worst loss from its peak (the measure
    that kills a pool at ``pool_limit``). ``events``: Decision and OrderSubmitted events, kept only when asked.
    """

    name: str
    returns: np.ndarray
    bars: np.ndarray
    equity: np.ndarray
    trades: tuple[TradeKey, ...]
    orders: int
    max_orders_per_day: int
    traded_notional: float
    halted: bool
    killed: tuple[str, ...]
    max_drawdown: float
    pool_loss: dict[str, float] = field(default_factory=dict)
    pool_limit: dict[str, float] = field(default_factory=dict)
    events: tuple[Event, ...] = ()

    @property
    def total_return(self) -> float:
        if self.equity.size < 2 or not self.equity[0] > 0:
            return 0.0
        return float(self.equity[-1] / self.equity[0] - 1.0)


class _Tap:
    """Collects the events a gate run needs (not the per-bar equity points)."""

    def __init__(self) -> None:
        self.trades: list[ClosedTrade] = []
        self.orders: list[OrderSubmitted] = []
        self.fills: list[Fill] = []
        self.transitions: list[Transition] = []
        self.trail: list[Event] = []

    def emit(self, event: Event) -> None:
        if isinstance(event, Decision):
            self.trail.append(event)
        elif isinstance(event, OrderSubmitted):
            self.orders.append(event)
            self.trail.append(event)
        elif isinstance(event, ClosedTrade):
            self.trades.append(event)
        elif isinstance(event, Fill):
            self.fills.append(event)
        elif isinstance(event, Transition):
            self.transitions.append(event)


def run_window(window: Window, side: Side, *, keep_events: bool = False) -> RunOutcome:
    """Backtest ``side`` over ``window`` (fresh strategies, account and Supervisor)."""
    tap = _Tap()
    worst: dict[str, float] = {}

    def track_pools(i: int, loop: BarLoop) -> None:
        """Worst loss of each strategy pool from its peak (what kills a pool), per bar."""
        book, pools = loop.trader.book, loop.trader.supervisor.pools
        close = loop.panel.close[i]
        marks = {t.symbol: float(close[loop.panel.column(t.symbol)]) for t in book.open.values()}
        for name, pool in pools.items():
            equity = book.pool_equity(name, pool.capital, marks)
            if pool.peak > 0 and np.isfinite(equity):
                worst[name] = max(worst.get(name, 0.0), 1.0 - equity / pool.peak)

    strategies = build(side.strategies, side.params)
    result = run_backtest(
        window.panel,
        strategies,
        rules=side.rules,
        constitution=side.constitution,
        config=side.config,
        prepared=window.prepared,
        sink=tap,
        on_bar=track_pools,
    )
    equity = result.equity.to_numpy(dtype=float)
    j = min(max(window.judged_from, 1), max(len(equity) - 1, 0))
    judged_equity = equity[j - 1 :] if len(equity) else equity
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = judged_equity[1:] / judged_equity[:-1] - 1.0
    returns = np.where(np.isfinite(returns), returns, 0.0)
    start = window.panel.timestamps[j] if j < window.panel.n_bars else None
    trades = tuple(
        (
            t.strategy,
            t.symbol,
            pd.Timestamp(t.entry_time).isoformat(),
            pd.Timestamp(t.exit_time).isoformat(),
            tuple(t.rules),
        )
        for t in tap.trades
        if t.entry_bar >= j
    )
    orders = [o for o in tap.orders if start is not None and o.timestamp >= start]
    per_day = Counter(o.timestamp.date() for o in orders)
    notional = sum(
        f.quantity * f.price for f in tap.fills if start is not None and f.timestamp >= start
    )
    return RunOutcome(
        name=window.name,
        returns=returns,
        bars=np.arange(j, j + returns.size),
        equity=judged_equity,
        trades=trades,
        orders=len(orders),
        max_orders_per_day=max(per_day.values(), default=0),
        traded_notional=float(notional),
        halted=any(t.scope == "global" and t.to_state == "HALTED" for t in tap.transitions),
        killed=tuple(
            sorted({t.scope.split(":", 1)[1] for t in tap.transitions if t.to_state == "KILLED"})
        ),
        max_drawdown=max_drawdown(judged_equity) if judged_equity.size else 0.0,
        pool_loss={s.name: worst.get(s.name, 0.0) for s in strategies},
        pool_limit={s.name: s.config.pool_max_loss for s in strategies},
        events=tuple(tap.trail) if keep_events else (),
    )


def events_until(events: Sequence[Event], until: pd.Timestamp) -> list[Event]:
    """The Decision/OrderSubmitted events stamped at or before ``until``, in order."""
    return [e for e in events if _stamp(e) <= until]


def _stamp(event: Event) -> pd.Timestamp:
    return pd.Timestamp(event.timestamp)  # type: ignore[union-attr]


# -- cache -------------------------------------------------------------------------------------


def fingerprint(panel: BarPanel) -> str:
    """Content hash of a panel (timestamps, symbols and every OHLCV array)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(panel.timestamps.asi8).tobytes())
    h.update("\x1f".join(panel.symbols).encode())
    for arr in (panel.open, panel.high, panel.low, panel.close, panel.volume):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def prepared_fingerprint(prepared: Prepared) -> str:
    """Content hash of prepared features and regimes."""
    h = hashlib.blake2b(digest_size=16)
    f = prepared.features
    for name in f.__slots__:
        value = getattr(f, name)
        if isinstance(value, np.ndarray):
            h.update(np.ascontiguousarray(value).tobytes())
    h.update("".join(r.value[:3] for r in prepared.regimes.regime).encode())
    h.update(np.ascontiguousarray(prepared.regimes.confidence, dtype=float).tobytes())
    return h.hexdigest()


def same_features(a: FeatureFrame, b: FeatureFrame) -> bool:
    """Every feature array equal (NaN equal to NaN)."""
    return all(
        np.array_equal(getattr(a, n), getattr(b, n), equal_nan=True)
        for n in a.__slots__
        if isinstance(getattr(a, n), np.ndarray)
    )


@dataclass(kw_only=True)
class GateCache:
    """In-memory cache for one improvement cycle (not thread-safe; one cycle, one cache).

    ``runs``: the baseline's outcomes by (baseline, data, seed, config) key; the baseline does
    not change while the proposals of a cycle are judged, so its runs are paid once per cycle.
    ``prepared``: features and regimes of panels the gate had to prepare itself, by content.
    ``fingerprints``: content hashes by panel object id (the panel is kept alive with it).
    """

    runs: dict[str, tuple[RunOutcome, ...]] = field(default_factory=dict)
    prepared: dict[str, Prepared] = field(default_factory=dict)
    fingerprints: dict[int, tuple[object, str]] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    def fingerprint(self, panel: BarPanel) -> str:
        return self._memo(panel, fingerprint)

    def prepared_key(self, prepared: Prepared) -> str:
        return self._memo(prepared, prepared_fingerprint)

    def _memo(self, obj: Any, fn: Any) -> str:
        """``fn(obj)`` computed once per object (kept alive here, so its id stays its own)."""
        known = self.fingerprints.get(id(obj))
        if known is not None and known[0] is obj:
            return known[1]
        value: str = fn(obj)
        self.fingerprints[id(obj)] = (obj, value)
        return value


__all__ = [
    "GateCache",
    "RunOutcome",
    "Side",
    "TradeKey",
    "Window",
    "cut_prepared",
    "events_until",
    "fingerprint",
    "prepared_fingerprint",
    "run_window",
    "same_features",
]
