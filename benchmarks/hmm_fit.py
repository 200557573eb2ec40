"""The regime engine's HMM fit: 5,000 daily observations of the bundled S&P 500 sample's
equal-weight market return ([log return, 20-bar volatility]), 4 states, 3 seeded restarts, the
defaults the replay uses. Goal: at most 2 s median on 2 cores. Also the forward filter over the
same 5,000 observations (what every refit is followed by)."""

from __future__ import annotations

import numpy as np

from benchmarks._timing import measure, report
from sovereign.engines.regime import (
    fit_hmm,
    forward_filter,
    market_returns,
    observations_from_returns,
)
from sovereign.market.sources import load_sample

N_OBS = 5_000


def observations() -> np.ndarray:
    panel = load_sample("sp500")
    x = observations_from_returns(market_returns(panel.close))
    x = x[~np.isnan(x).any(axis=1)]
    return x[-N_OBS:]


def main() -> None:
    x = observations()
    assert x.shape == (N_OBS, 2), x.shape
    times = measure(lambda: fit_hmm(x, n_restarts=3, seed=7), repeat=5, warmup=1)
    report(f"HMM fit, {N_OBS} obs, 4 states, 3 restarts", times, goal=2.0)
    model = fit_hmm(x, n_restarts=3, seed=7)
    times = measure(lambda: forward_filter(model, x), repeat=7, warmup=1)
    report(f"forward filter, {N_OBS} obs", times, unit="ms", scale=1e3)


if __name__ == "__main__":
    main()
