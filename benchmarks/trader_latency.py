"""Trader decision latency per bar (the whole pipeline: supervisor, exits, signals, rules,
sizing) on synthetic data, for 20 and 500 symbols. Goals: at most 5 ms at 20, 50 ms at 500."""

from __future__ import annotations

import time

import numpy as np

from benchmarks._timing import report
from benchmarks.backtest_sample import TEN_RULES
from sovereign.brokers.paper_exchange import PaperConfig, PaperExchange
from sovereign.constitution import Constitution
from sovereign.market.synthetic import generate
from sovereign.trading.backtest import RegimeConfig, prepare
from sovereign.trading.catalog import build
from sovereign.trading.loop import BarLoop
from sovereign.trading.supervisor import Supervisor
from sovereign.trading.trader import Trader


def per_bar_latency(n_symbols: int, n_bars: int = 600, seed: int = 3) -> list[float]:
    """Seconds spent in Trader.step for each bar after warm-up, shape (n_bars - warm-up,)."""
    panel = generate(symbols=n_symbols, n_bars=n_bars, seed=seed).panel
    prepared = prepare(panel, RegimeConfig(min_history=300, refit_every=1000), seed=seed)
    exchange = PaperExchange(panel.symbols, config=PaperConfig(), cash=10_000_000.0, seed=seed)
    strategies = build(["regime_entry", "momentum"], {"momentum": {"lookback": 126}})
    trader = Trader(
        strategies=strategies,
        supervisor=Supervisor(constitution=Constitution()),
        rules=TEN_RULES,
        initial_equity=10_000_000.0,
    )
    loop = BarLoop(
        panel=panel,
        features=prepared.features,
        regimes=prepared.regimes,
        exchange=exchange,
        trader=trader,
        overlay=prepared.overlay,  # the engines' limits, sizing, slicing and pools: all on
    )
    inner = trader.step
    times: list[float] = []

    def timed_step(*args, **kwargs):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        out = inner(*args, **kwargs)
        times.append(time.perf_counter() - t0)
        return out

    trader.step = timed_step  # type: ignore[method-assign]
    for i in range(panel.n_bars):
        loop.step(i)
    return times[trader.warmup_bars :]


def main() -> None:
    for n, goal in ((20, 5.0), (500, 50.0)):
        runs = [float(np.mean(per_bar_latency(n, seed=s))) for s in range(5)]
        report(
            f"Trader decision latency per bar, {n} symbols (mean per run)",
            runs,
            unit="ms",
            scale=1000.0,
            goal=goal,
        )


if __name__ == "__main__":
    main()
