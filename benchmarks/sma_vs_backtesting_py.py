"""`sma_cross` on one real series, side by side with backtesting.py (the reference library,
a dev dependency): same strategy, commission, next-open fills. Goal: ratio <= 1 (no slower)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from benchmarks._timing import measure, report
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


def main() -> None:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    panel = load_sample("sp500_index")
    n = panel.n_bars

    def sma(values: np.ndarray, k: int) -> np.ndarray:
        return pd.Series(values).rolling(k).mean().to_numpy()

    class Ref(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.f = self.I(sma, self.data.Close, 10)
            self.s = self.I(sma, self.data.Close, 30)

        def next(self) -> None:
            if crossover(self.f, self.s):
                if not self.position:
                    self.buy(size=0.5)
            elif crossover(self.s, self.f):
                self.position.close()

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
    config = BacktestConfig(
        cash=1e6,
        paper=PaperConfig(costs="simple", commission_rate=0.001),
        trader=TraderConfig(pools=PoolConfig(enabled=False)),  # the reference has no allocator
    )
    strategy_config = StrategyConfig(
        strategy="sma_cross",
        params={"fast": 10, "slow": 30, "size": 0.5},
        pool_fraction=1.0,
        pool_max_loss=1.0,
    )

    def ours() -> None:  # includes feature computation, as backtesting.py includes its indicators
        prepared = Prepared(
            features=compute_features(panel),
            regimes=RegimeSeries(
                regime=np.array([Regime.UNCERTAIN] * n, dtype=object), confidence=np.ones(n)
            ),
        )
        run_backtest(
            panel,
            [SmaCross(strategy_config)],
            constitution=RESEARCH_CONSTITUTION,
            config=config,
            prepared=prepared,
        )

    def theirs() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Backtest(frame, Ref, cash=1e6, commission=0.001, finalize_trades=False).run()

    print(f"# {panel.symbols[0]}: {n} daily bars")
    a = report("sma_cross, sovereign", measure(ours, repeat=5))
    b = report("sma_cross, backtesting.py", measure(theirs, repeat=5))
    verdict = "met" if a <= b else "NOT met"
    print(f"{'ratio sovereign / backtesting.py':<58} {a / b:9.2f}x  goal <= 1.00x: {verdict}")


if __name__ == "__main__":
    main()
