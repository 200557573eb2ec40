"""A full engine pass for one trading day of 20 assets (the bundled S&P 500 sample), the per-bar
work a live Supervisor and Trader do: the stability reading (liquidity, GARCH volatility,
contagion), the crash sentinel, the fragility stress of the book (both risk models, from a
profile refitted monthly, not timed), VaR/ES and volatility targeting, the cvxpy optimiser's
re-solve over 20 assets, execution schedules for 20 orders, and the pool allocator's step.
Goal: at most 20 ms median on 2 cores. Cycle-level engines (drift, the edge model, change
points) run once per improvement cycle, not per bar, and are timed separately.

Each timed call is the next day: the windows move one bar forward, as they would live.
"""

from __future__ import annotations

import numpy as np

from benchmarks._timing import measure, report
from sovereign.engines.allocation import context_vector
from sovereign.engines.changepoint import detect_change_points
from sovereign.engines.covariance import ledoit_wolf
from sovereign.engines.drift import drift_report
from sovereign.engines.execution import ExecAlgo, plan_order
from sovereign.engines.fragility import FragilityConfig, build_profile, exposure_multiplier
from sovereign.engines.portfolio import Limits, OptimiserConfig, PortfolioOptimiser
from sovereign.engines.risk import portfolio_var_es, vol_target_scale
from sovereign.engines.sentinel import SentinelConfig, sentinel_reading
from sovereign.engines.stability import DEFAULT_CONFIG, StabilityEngine
from sovereign.market.sources import load_sample
from sovereign.trading.overlay import filled_returns
from sovereign.trading.pools import PoolAllocator

DAYS = 40


def main() -> None:
    panel = load_sample("sp500")
    close = panel.close
    n_assets = panel.n_symbols
    returns = filled_returns(close)
    start = panel.n_bars - DAYS - 1
    frame_index = panel.timestamps
    profile = build_profile(
        returns[: start - 1],
        frame_index[: start - 1],
        seed=1,
        config=FragilityConfig(horizon_days=2, block_days=1, n_paths=500),
    )
    stability = StabilityEngine(DEFAULT_CONFIG)
    sentinel_cfg = SentinelConfig()
    cov = ledoit_wolf(returns[start - 252 : start], periods_per_year=252).covariance
    optimiser = PortfolioOptimiser(
        n_assets, config=OptimiserConfig(long_only=False), limits=Limits(upper=0.05, lower=-0.05)
    )
    optimiser.solve(np.zeros(n_assets), covariance=cov)  # the first solve compiles: not timed
    pools = PoolAllocator(["regime_entry", "momentum"])
    rng = np.random.default_rng(3)
    weights = np.full(n_assets, 1.0 / n_assets) * 0.5
    day = iter(range(start, start + DAYS + 10))

    def one_day() -> None:
        i = next(day)
        window = close[i + 1 - stability.config.live_window : i + 1]
        reading = stability.update(window)
        sentinel_reading(returns[i + 1 - sentinel_cfg.min_history : i + 1], sentinel_cfg)
        stress = profile.evaluate(weights)
        exposure_multiplier(stress, 0.10)
        portfolio_var_es(weights, returns[i - 251 : i + 1], 0.99)
        vol_target_scale(returns[i - 59 : i + 1].mean(axis=1), 0.10, window=20)
        mu = rng.normal(0, 0.01, n_assets)
        result = optimiser.solve(mu, weights)
        for j in range(n_assets):
            plan_order(
                float(max(1, round(abs(result.weights[j]) * 1e6 / 100))),
                adv=2e4,
                algo=ExecAlgo.TWAP,
                seed=i * 100 + j,
            )
        ctx = context_vector([0.25] * 4, reading.score, float(np.std(returns[i - 20 : i + 1])))
        pools.observe(i, pool_equity={"regime_entry": 5e5, "momentum": 5e5}, context=ctx)

    report(
        f"engine pass, one day of {n_assets} assets",
        measure(one_day, repeat=31, warmup=3),
        unit="ms",
        scale=1e3,
        goal=20.0,
    )
    recent = returns[-60:]
    past = returns[-560:-60]
    report(
        "cycle-level: drift (PSI + KS) of 20 assets, 500 vs 60 days",
        measure(lambda: drift_report(past, recent, list(panel.symbols)), repeat=5),
        unit="ms",
        scale=1e3,
    )
    market = returns[-1000:].mean(axis=1)
    z = (market - market.mean()) / market.std()
    report(
        "cycle-level: change points (BOCPD) over 1,000 days",
        measure(lambda: detect_change_points(z), repeat=5),
        unit="ms",
        scale=1e3,
    )


if __name__ == "__main__":
    main()
