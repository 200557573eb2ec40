"""Cross-check: our `sma_cross` against backtesting.py's equivalent strategy on real series.

Same commission, next-open fills, fraction-of-equity sizing resolved at fill time in whole
units: the trades (entry and exit bars) must be identical and the total P&L within 1%.
backtesting.py is a test-only dependency; the package never imports it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from sovereign.app.backtesting import RESEARCH_CONSTITUTION
from sovereign.brokers.paper_exchange import PaperConfig
from sovereign.engines.indicators import compute_features
from sovereign.market.sources import load_sample
from sovereign.rules.config import StrategyConfig
from sovereign.rules.context import Regime
from sovereign.trading.backtest import BacktestConfig, Prepared, run_backtest
from sovereign.trading.loop import RegimeSeries
from sovereign.trading.pools import PoolConfig
from sovereign.trading.strategies import SmaCross
from sovereign.trading.trader import TraderConfig

backtesting = pytest.importorskip("backtesting")
from backtesting import Backtest, Strategy  # noqa: E402
from backtesting.lib import crossover  # noqa: E402


def _sma(values: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(values).rolling(n).mean().to_numpy()


class ReferenceSmaCross(Strategy):  # type: ignore[misc]
    fast = 10
    slow = 30
    size = 0.5

    def init(self) -> None:
        self.sma_fast = self.I(_sma, self.data.Close, self.fast)
        self.sma_slow = self.I(_sma, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.sma_fast, self.sma_slow):
            if not self.position:
                self.buy(size=self.size)
        elif crossover(self.sma_slow, self.sma_fast):
            self.position.close()


# The same execution mechanics as the reference library: one strategy at its own size, without
# the pool allocator (the engines' overlay is off too: the prepared data carries none).
RAW_MECHANICS = TraderConfig(pools=PoolConfig(enabled=False))


@pytest.mark.parametrize(
    ("sample", "fast", "slow", "size", "commission"),
    [
        ("sp500_index", 10, 30, 0.5, 0.001),
        ("nasdaq_index", 20, 50, 0.9, 0.0005),
    ],
)
def test_sma_cross_matches_backtesting_py(
    sample: str, fast: int, slow: int, size: float, commission: float
) -> None:
    panel = load_sample(sample)
    cash = 1_000_000.0
    n = panel.n_bars
    prepared = Prepared(
        features=compute_features(panel),
        regimes=RegimeSeries(
            regime=np.array([Regime.UNCERTAIN] * n, dtype=object), confidence=np.ones(n)
        ),
    )
    ours = run_backtest(
        panel,
        [
            SmaCross(
                StrategyConfig(
                    strategy="sma_cross",
                    params={"fast": fast, "slow": slow, "size": size},
                    pool_fraction=1.0,
                    pool_max_loss=1.0,
                )
            )
        ],
        constitution=RESEARCH_CONSTITUTION,
        config=BacktestConfig(
            cash=cash,
            paper=PaperConfig(costs="simple", commission_rate=commission),
            trader=RAW_MECHANICS,
        ),
        prepared=prepared,
    )

    frame = pd.DataFrame(
        {
            "Open": panel.open[:, 0],
            "High": panel.high[:, 0],
            "Low": panel.low[:, 0],
            "Close": panel.close[:, 0],
            "Volume": panel.volume[:, 0],
        },
        index=panel.timestamps.tz_localize(None),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference library's own deprecation noise
        bt = Backtest(
            frame,
            ReferenceSmaCross,
            cash=cash,
            commission=commission,
            trade_on_close=False,
            exclusive_orders=False,
            finalize_trades=False,
        )
        stats = bt.run(fast=fast, slow=slow, size=size)
    ref = stats["_trades"]
    ref_closed = ref[ref["ExitBar"].notna()]

    assert len(ours.trades) >= 20, "a cross-check needs enough trades to mean something"
    assert [(t.entry_bar, t.exit_bar) for t in ours.trades] == [
        (int(e), int(x)) for e, x in zip(ref_closed["EntryBar"], ref_closed["ExitBar"], strict=True)
    ]
    assert [t.quantity for t in ours.trades] == [float(q) for q in ref_closed["Size"]]
    ours_pnl = ours.final_equity - cash
    ref_pnl = float(stats["Equity Final [$]"]) - cash
    assert ours_pnl == pytest.approx(ref_pnl, rel=0.01)
