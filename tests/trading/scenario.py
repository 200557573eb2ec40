"""Hand-written bar scenarios: tiny panels, a scripted strategy and a fixed regime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import pandas as pd

from sovereign.brokers.paper_exchange import PaperConfig
from sovereign.constitution import Constitution
from sovereign.engines.indicators import compute_features
from sovereign.market.bars import BarPanel, Feature
from sovereign.rules.config import ParamSpec, StrategyConfig
from sovereign.rules.context import Regime
from sovereign.trading.backtest import BacktestConfig, BacktestResult, Prepared, run_backtest
from sovereign.trading.events import ListSink
from sovereign.trading.loop import RegimeSeries
from sovereign.trading.strategies.base import BaseStrategy
from sovereign.trading.strategy import HeldPosition, MarketView, Signal


def panel(
    closes: Mapping[str, Sequence[float]], *, freq: str = "1D", start: str = "2024-01-01"
) -> BarPanel:
    """OHLCV panel where each bar opens at the previous close; high/low bracket open and close."""
    symbols = tuple(closes)
    c = np.array([closes[s] for s in symbols], dtype=float).T
    o = np.vstack([c[:1], c[:-1]])
    idx = pd.date_range(start, periods=c.shape[0], freq=freq, tz="UTC")
    return BarPanel(
        timestamps=idx,
        symbols=symbols,
        open=o,
        high=np.maximum(o, c) * 1.001,
        low=np.minimum(o, c) * 0.999,
        close=c,
        volume=np.full_like(c, 1e9),
        features=frozenset({Feature.CLOSE, Feature.OHLC, Feature.VOLUME}),
        source="scenario",
    )


class Scripted(BaseStrategy):
    """Buys the listed symbols at the listed bars with a fixed confidence."""

    name: ClassVar[str] = "scripted"
    specs: ClassVar[dict[str, ParamSpec]] = {}

    def __init__(
        self,
        schedule: Mapping[int, Sequence[str]],
        *,
        name: str = "scripted",
        confidence: float = 0.9,
        pool_fraction: float = 1.0,
        pool_max_loss: float = 0.5,
    ) -> None:
        self.name = name  # type: ignore[misc]
        super().__init__(
            StrategyConfig(strategy=name, pool_fraction=pool_fraction, pool_max_loss=pool_max_loss)
        )
        self.schedule = schedule
        self.confidence = confidence

    @property
    def warmup_bars(self) -> int:
        return 0

    def entries(self, view: MarketView, held: dict[str, HeldPosition]) -> list[Signal]:
        return [
            Signal(
                symbol=s, side=1, confidence=self.confidence, reason="scripted", equity_fraction=1.0
            )
            for s in self.schedule.get(view.i, ())
            if s not in held
        ]

    def exit_reason(self, view: MarketView, position: HeldPosition) -> str | None:
        return None

    def calibrate(self, regime: str, won: bool) -> None:
        return None


def prepared(p: BarPanel, regime: Regime = Regime.RANGING) -> Prepared:
    n = p.n_bars
    return Prepared(
        features=compute_features(p),
        regimes=RegimeSeries(regime=np.array([regime] * n, dtype=object), confidence=np.ones(n)),
    )


def run(
    p: BarPanel,
    strategies: Sequence[BaseStrategy],
    *,
    constitution: Constitution | None = None,
    cash: float = 100_000.0,
) -> tuple[BacktestResult, ListSink]:
    sink = ListSink()
    result = run_backtest(
        p,
        strategies,
        constitution=constitution or Constitution(),
        config=BacktestConfig(cash=cash, paper=PaperConfig(costs="simple", commission_rate=0.0)),
        prepared=prepared(p),
        sink=sink,
    )
    return result, sink
