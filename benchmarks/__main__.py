"""Run every benchmark in turn: `python -m benchmarks` (or `make bench`)."""

from __future__ import annotations

import os

from benchmarks import (
    backtest_sample,
    engine_pass,
    gate_verdict,
    hmm_fit,
    optimizer,
    sma_vs_backtesting_py,
    telegram_status,
    trader_latency,
)

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar

for module in (
    backtest_sample,
    trader_latency,
    sma_vs_backtesting_py,
    gate_verdict,
    telegram_status,
    hmm_fit,
    optimizer,
    engine_pass,
):
    print(f"\n== {module.__name__.split('.')[-1]} ==")
    module.main()
