"""The backtest gate: one verdict on the default universe (the bundled S&P 500 sample, the last
7 years judged in 5 folds, every stress scenario including the real 2000-02, 2008 and 2020
windows), with the baseline's runs cached and the regime fits precomputed. Goal: at most 5 s
median on 2 cores. Also the wall time of the whole gate-side control suites, quick (CI) and
full, with their pass counts.
"""

from __future__ import annotations

import time

from benchmarks._timing import measure, report
from sovereign.market.sources import load_sample
from sovereign.rules import AddRule, ProposalSource, Regime, RegimeIs, Rule, RuleSet, SkipTrade
from sovereign.trading import controls, gate
from sovereign.trading.backtest import prepare
from sovereign.trading.gate import Baseline, GateCache, GateData, evaluate

PROPOSAL = AddRule(
    rule=Rule(
        name="no-volatile-momentum",
        strategy="momentum",
        when=RegimeIs(regime=Regime.VOLATILE),
        then=SkipTrade(reason="volatile markets"),
    ),
    rationale="benchmark",
    source=ProposalSource.HUMAN,
)


def control_suite(quick: bool) -> tuple[float, int, int]:
    """Run every gate-side control (positives on planted and clean data, negatives) from cold
    caches; returns (seconds, controls that behaved, controls run)."""
    controls._data.cache_clear()
    controls._noise_fit.cache_clear()
    gate._synthetic.cache_clear()
    t0 = time.perf_counter()
    good = total = 0
    for c in [*controls.positive_controls(quick), *controls.gate_negative_controls(quick)]:
        r = evaluate(c.proposal, c.baseline, c.make_data(c.seed), c.seed, trials=c.trials)
        if c.expect == "accept":
            ok = r.accepted
            if c.make_clean_data is not None:
                clean = evaluate(c.proposal, c.baseline, c.make_clean_data(c.seed), c.seed)
                ok = ok and not clean.accepted
        else:
            ok = not r.accepted and set(c.expected_codes) <= set(r.codes)
        good += ok
        total += 1
    return time.perf_counter() - t0, good, total


def main() -> None:
    panel = load_sample("sp500")
    prepared = prepare(panel)  # regime fits: excluded, a cycle reuses them
    data = GateData(panel=panel, prepared=prepared, crash_panel=panel)
    baseline = Baseline(ruleset=RuleSet())
    cache = GateCache()
    t0 = time.perf_counter()
    first = evaluate(PROPOSAL, baseline, data, 7, cache=cache)
    cold = time.perf_counter() - t0
    print(
        f"# sp500 sample, {first.window['bars']} judged bars ({first.window['start'][:10]}.."
        f"{first.window['end'][:10]}), {len(first.scenarios)} scenarios, verdict: "
        f"{'accepted' if first.accepted else 'rejected ' + ','.join(first.codes)}"
    )
    print(f"{'first verdict of a cycle (baseline runs + scenario regime fits)':<58} {cold:9.3f} s")
    report(
        "gate verdict, default universe (warm baseline cache)",
        measure(lambda: evaluate(PROPOSAL, baseline, data, 7, cache=cache), repeat=5, warmup=0),
        goal=5.0,
    )
    for quick in (True, False):
        seconds, good, total = control_suite(quick)
        name = (
            f"gate-side controls, {'quick' if quick else 'full'} suite ({good}/{total} as expected)"
        )
        print(f"{name:<58} {seconds:9.3f} s")


if __name__ == "__main__":
    main()
