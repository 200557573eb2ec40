"""The backtest gate: determinism, the cache, every reject reason on a hand-made case, the
look-ahead guard (lag=-1 caught, lag=1 passes) and the report's contract."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from sovereign.errors import ConfigError, DataError
from sovereign.market.synthetic import generate
from sovereign.rules import (
    AddRule,
    ConfidenceAbove,
    ExitPosition,
    ModifyConstitution,
    ProposalSource,
    RetireRule,
    ReturnBelow,
    Rule,
    RuleSet,
    ScalePosition,
    SkipTrade,
    SymbolIn,
    TuneParameter,
)
from sovereign.trading import control_markets
from sovereign.trading.backtest import BacktestConfig, RegimeConfig, prepare
from sovereign.trading.controls import CONTROL_REGIME, gate_data
from sovereign.trading.events import Decision
from sovereign.trading.gate import Baseline, GateCache, GateConfig, GateData, evaluate
from sovereign.trading.gate_checks import (
    Tolerances,
    affected_trades,
    compare_scenario,
    compare_slice,
    first_difference,
    lookahead_cuts,
    stability_labels,
)
from sovereign.trading.gate_report import (
    GATE_CONSTITUTION_BREACH,
    GATE_LOOKAHEAD,
    GATE_NOT_APPLICABLE,
    GATE_NOT_SIGNIFICANT,
    GATE_SLICE_DEGRADED,
    GATE_TOO_FEW_TRADES,
    GATE_TURNOVER,
    json_safe,
)
from sovereign.trading.gate_runs import RunOutcome
from sovereign.trading.gate_verdict import _breaches
from sovereign.trading.overlay import OverlayConfig
from sovereign.trading.pools import PoolConfig
from sovereign.trading.sizing import SizingConfig
from sovereign.trading.trader import TraderConfig

DATA = gate_data(control_markets.market(1, 1100, 10))
BASE = Baseline(
    ruleset=RuleSet(),
    strategies=("regime_entry", "momentum"),
    params={"momentum": {"lookback": 63.0, "skip": 5.0}},
    backtest=BacktestConfig(regime=CONTROL_REGIME),
)
CACHE = GateCache()  # shared: the baseline's runs are paid once per seed in this module
TOL = Tolerances(
    sharpe=0.5, total_return=0.01, t_stat=2.0, min_bars=40, scenario_return=0.02,
    scenario_drawdown=0.02,
)  # fmt: skip


def add(rule: Rule) -> AddRule:
    return AddRule(rule=rule, rationale="test", source=ProposalSource.HUMAN)


HALF = add(Rule(name="half", when=ConfidenceAbove(value=0.0), then=ScalePosition(factor=0.5)))


# -- integration -------------------------------------------------------------------------------


def test_same_inputs_and_seed_give_the_same_report_and_the_cache_changes_nothing() -> None:
    fresh = evaluate(HALF, BASE, DATA, 3)
    cache = GateCache()
    evaluate(
        add(Rule(name="noop", when=SymbolIn(symbols=("NOPE",)), then=SkipTrade(reason="x"))),
        BASE,
        DATA,
        3,
        cache=cache,
    )
    cached = evaluate(HALF, BASE, DATA, 3, cache=cache)
    assert (cache.misses, cache.hits) == (1, 1)
    text = json.dumps(fresh.to_json(), allow_nan=False, sort_keys=True)
    assert json.dumps(cached.to_json(), allow_nan=False, sort_keys=True) == text
    assert "elapsed_s" not in text and fresh.elapsed_s > 0
    other = evaluate(HALF, BASE, DATA, 4, cache=CACHE)
    assert json.dumps(other.to_json(), sort_keys=True) != text  # bootstrap and scenarios move


def test_the_report_holds_every_slice_and_the_canary_figure() -> None:
    seen: list[tuple[str, int, int]] = []
    report = evaluate(HALF, BASE, DATA, 5, cache=CACHE, on_progress=lambda *a: seen.append(a))
    j = report.to_json()
    assert [f["name"] for f in j["folds"]] == [f"fold {k}" for k in range(1, 6)]
    assert {s["kind"] for s in j["regimes"]} == {"regime"} and len(j["regimes"]) >= 3
    assert [s["name"] for s in j["stability"]] == ["stable", "fragile", "unstable"]
    covered = {s["name"]: s["covered"] for s in j["scenarios"]}
    assert covered == {
        "crash_2000_2002": False,  # no real data was given
        "crash_2008": False,
        "crash_2020": False,
        "flash_crash": True,
        "prolonged_bear": True,
        "volatility_x5_fake_breakouts": True,
        "liquidity_drought": True,
    }
    assert j["window"]["bars"] == DATA.panel.n_bars - 300 and j["window"]["lead_in"] == 64
    assert set(j["significance"]) >= {"ci", "dsr", "rule", "passed"}
    assert report.expected_max_drawdown == pytest.approx(
        max(f.candidate["max_drawdown"] for f in report.folds)
    )
    assert j["baseline_ruleset_id"] == RuleSet().id and j["candidate_ruleset_id"].startswith("rs-")
    assert not report.accepted and GATE_NOT_SIGNIFICANT in report.codes  # same Sharpe, half size
    dones = [d for _, d, _ in seen]
    assert dones == sorted(dones) and all(d <= t for _, d, t in seen) and len(seen) >= 10


@pytest.mark.parametrize(
    "proposal",
    [
        ModifyConstitution(
            field="max_drawdown", value=0.5, rationale="x", source=ProposalSource.LLM
        ),
        RetireRule(rule_id="r-0123456789abcdef", rationale="x", source=ProposalSource.LLM),
        TuneParameter(
            strategy="momentum",
            parameter="lookback",
            value=9999,
            rationale="x",
            source=ProposalSource.LLM,
        ),
        TuneParameter(
            strategy="sma_cross",
            parameter="fast",
            value=5,
            rationale="x",
            source=ProposalSource.LLM,
        ),
    ],
    ids=["constitution", "unknown-rule", "out-of-bounds", "strategy-not-running"],
)
def test_a_proposal_that_cannot_apply_is_not_applicable_and_runs_nothing(proposal: object) -> None:
    calls: list[object] = []
    report = evaluate(proposal, BASE, DATA, 1, on_progress=lambda *a: calls.append(a))  # type: ignore[arg-type]
    assert not report.accepted and report.codes == (GATE_NOT_APPLICABLE,)
    assert calls == [] and report.candidate_ruleset_id is None and report.folds == ()
    assert json.dumps(report.to_json(), allow_nan=False)


def test_the_lookahead_guard_catches_lag_minus_one_and_passes_lag_one() -> None:
    peek = evaluate(
        add(Rule(name="peek", when=ReturnBelow(pct=-2.0, lag=-1), then=ExitPosition())),
        BASE,
        DATA,
        1,
        cache=CACHE,
    )
    assert GATE_LOOKAHEAD in peek.codes and peek.lookahead_passed is False
    caught = [c for c in peek.lookahead if not c.identical]
    assert caught and all("rule: exit_position" in c.difference for c in caught)
    lagged = evaluate(
        add(Rule(name="lagged", when=ReturnBelow(pct=-2.0, lag=1), then=ExitPosition())),
        BASE,
        DATA,
        1,
        cache=CACHE,
    )
    assert lagged.lookahead_passed is True and GATE_LOOKAHEAD not in lagged.codes
    assert len(lagged.lookahead) == 6 and all(
        c.identical and c.events_compared > 0 for c in lagged.lookahead
    )


def test_a_rule_that_changes_nothing_has_too_few_trades() -> None:
    report = evaluate(
        add(Rule(name="noop", when=SymbolIn(symbols=("NOPE",)), then=SkipTrade(reason="x"))),
        BASE,
        DATA,
        1,
        cache=CACHE,
    )
    assert report.activity is not None and report.activity.affected_trades == 0
    assert {GATE_TOO_FEW_TRADES, GATE_NOT_SIGNIFICANT} <= set(report.codes)
    assert report.lookahead_passed is True


def test_churning_every_position_fails_turnover() -> None:
    report = evaluate(
        add(Rule(name="churn", when=ConfidenceAbove(value=0.0), then=ExitPosition())),
        BASE,
        DATA,
        1,
        cache=CACHE,
    )
    assert GATE_TURNOVER in report.codes
    assert report.activity is not None
    assert report.activity.orders_candidate > 1.5 * report.activity.orders_baseline


def test_a_zero_tolerance_turns_any_worse_slice_into_a_degradation() -> None:
    strict = GateConfig(
        slice_sharpe_tolerance=0.0, slice_return_tolerance=0.0, slice_t_threshold=-math.inf
    )
    report = evaluate(HALF, BASE, DATA, 1, config=strict, cache=CACHE)
    assert GATE_SLICE_DEGRADED in report.codes
    worse = [s for s in (*report.folds, *report.regimes, *report.stability) if s.degraded]
    assert worse and all(s.delta["sharpe"] < 0 and s.delta["total_return"] < 0 for s in worse)


def test_real_crash_windows_come_from_the_crash_panel() -> None:
    crash = generate(symbols=3, n_bars=8400, seed=2, start="1999-01-01").panel  # calendar days
    crash_prep = prepare(crash, RegimeConfig(min_history=250, refit_every=4000), seed=0)
    data = GateData(
        panel=DATA.panel,
        prepared=DATA.prepared,
        start=DATA.start,
        crash_panel=crash,
        crash_prepared=crash_prep,
    )
    report = evaluate(HALF, BASE, data, 1, cache=CACHE)
    real = [s for s in report.scenarios if s.name.startswith("crash_")]
    assert [s.covered for s in real] == [True, True, True]
    assert all(s.bars > 100 for s in real)


def test_too_little_history_gives_no_verdict() -> None:
    short = control_markets.market(1, 400, 10)
    with pytest.raises(DataError, match="too little history"):
        evaluate(HALF, BASE, gate_data(short), 1)


def test_prepared_data_that_does_not_belong_to_the_panel_is_refused() -> None:
    other = control_markets.market(2, 1100, 10)
    with pytest.raises(ConfigError, match="compute_features"):
        evaluate(HALF, BASE, GateData(panel=other, prepared=DATA.prepared), 1)
    with pytest.raises(ConfigError, match="do not match"):
        evaluate(HALF, BASE, GateData(panel=other.slice(0, 900), prepared=DATA.prepared), 1)


# -- the checks on hand-made numbers ------------------------------------------------------------


def test_a_slice_is_degraded_only_with_magnitude_and_evidence() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0.001, 0.01, 200)
    hurt = base - 0.002  # systematically worse every bar: Sharpe, return and t all bad
    s = compare_slice("x", "regime", base, hurt, 252.0, TOL, contiguous=False)
    assert s.degraded and s.delta["excess_t"] < -2 and "max_drawdown" not in s.baseline
    noisy = base + rng.normal(-0.0002, 0.01, 200)  # worse by luck: t near 0
    assert not compare_slice("x", "regime", base, noisy, 252.0, TOL, contiguous=True).degraded
    tiny = base - 0.00001  # evidence without magnitude
    assert not compare_slice("x", "regime", base, tiny, 252.0, TOL, contiguous=True).degraded
    short = compare_slice("x", "regime", base[:20], hurt[:20], 252.0, TOL, contiguous=True)
    assert not short.judged and not short.degraded


def outcome(returns: list[float], **kw: object) -> RunOutcome:
    r = np.array(returns, dtype=float)
    equity = np.concatenate([[1e6], 1e6 * np.cumprod(1 + r)])
    fields: dict[str, object] = {
        "name": "w", "returns": r, "bars": np.arange(1, r.size + 1), "equity": equity,
        "trades": (), "orders": 0, "max_orders_per_day": 0, "traded_notional": 0.0,
        "halted": False, "killed": (), "max_drawdown": 0.0,
    }  # fmt: skip
    fields.update(kw)
    return RunOutcome(**fields)  # type: ignore[arg-type]


def test_a_stress_scenario_is_judged_on_losses_and_drawdown() -> None:
    base = outcome([0.0, -0.05, 0.02, 0.01])
    worse_loss = outcome([0.0, -0.09, 0.02, 0.01])
    assert compare_scenario("s", "", base, worse_loss, 252.0, TOL).degraded
    less_upside = outcome([0.0, -0.05, 0.02, 0.0])  # gives up upside, no deeper dip
    assert not compare_scenario("s", "", base, less_upside, 252.0, TOL).degraded
    deeper_but_richer = outcome([0.0, -0.08, 0.12, 0.01])
    assert not compare_scenario("s", "", base, deeper_but_richer, 252.0, TOL).degraded


def test_breaches_count_new_limits_but_not_near_misses() -> None:
    from sovereign.constitution import Constitution

    c = Constitution()
    calm = outcome(
        [0.0], max_drawdown=0.03, pool_loss={"momentum": 0.05}, pool_limit={"momentum": 0.15}
    )
    edge = outcome(
        [0.0], max_drawdown=0.09, pool_loss={"momentum": 0.13}, pool_limit={"momentum": 0.15}
    )
    halted = outcome([0.0], halted=True, killed=("momentum",), max_drawdown=0.11)
    busy = outcome([0.0], max_orders_per_day=c.max_orders_per_day + 1)
    new, seen = _breaches(
        [("fold 1", calm, halted), ("fold 2", edge, halted), ("fold 3", edge, busy)], c, 0.8
    )
    assert new == ["fold 1: halted", "fold 1: killed:momentum", "fold 3: orders_per_day"]
    assert "fold 2: halted" in seen["candidate"] and seen["baseline"] == ()


def test_affected_trades_count_each_changed_round_trip_once() -> None:
    a = ("re", "A", "2030-01-02", "2030-01-09", ())
    a_resized = ("re", "A", "2030-01-02", "2030-01-09", ())  # other size: not in the key
    b = ("re", "B", "2030-01-03", "2030-01-05", ("r-old",))
    b_later = ("re", "B", "2030-01-03", "2030-01-08", ("r-old",))  # same entry, other exit
    c = ("mom", "C", "2030-02-01", "2030-03-01", ())
    c_scaled = ("mom", "C", "2030-02-01", "2030-03-01", ("r-new",))  # touched by the new rule
    assert affected_trades([a, b], [a_resized, b]) == 0
    assert affected_trades([a, b], [a, b_later]) == 1
    assert affected_trades([a, b], [a, b_later, c]) == 2
    assert affected_trades([a, b, c], []) == 3
    assert affected_trades([a, c], [a, c_scaled], frozenset({"r-new"})) == 1
    assert affected_trades([a, b], [a, b], frozenset({"r-old"})) == 1  # a retired rule's trade


def test_lookahead_cuts_favour_bars_where_a_rule_acted() -> None:
    idx = pd.date_range("2030-01-01", periods=100, freq="D", tz="UTC")

    def decision(
        bar: int, rules: tuple[str, ...] = (), action: str = "enter", reason: str = "x"
    ) -> Decision:
        return Decision(
            timestamp=idx[bar].to_pydatetime(),
            strategy="s",
            symbol="A",
            action=action,
            outcome="ordered",
            reason=reason,
            rules_fired=rules,
        )

    events = (
        decision(5, ("r-1",)),
        decision(20),
        decision(30, ("r-1",)),
        decision(40),
        decision(50, action="exit", reason="rule: exit_position"),
        decision(60),
        decision(70),
    )
    run = outcome([0.0] * 99, events=events)
    cuts = lookahead_cuts([run], [idx], judged_from=10, n=4)
    assert cuts == [(0, 20), (0, 30), (0, 50), (0, 70)]  # bar 5 is lead-in; two acted, two plain


def test_first_difference_names_the_first_changed_event() -> None:
    t = datetime(2030, 1, 1, tzinfo=UTC)
    a = Decision(
        timestamp=t, strategy="s", symbol="A", action="enter", outcome="ordered", reason="breakout"
    )
    b = Decision(
        timestamp=t,
        strategy="s",
        symbol="A",
        action="enter",
        outcome="skipped",
        reason="peek: no",
        rules_fired=("r-1",),
    )
    assert first_difference([a], [a]) == ""
    assert "event 0 differs" in first_difference([a], [b]) and "r-1" in first_difference([a], [b])
    assert "more events" in first_difference([a, a], [a])


def test_stability_buckets_are_terciles_of_prior_market_volatility() -> None:
    rng = np.random.default_rng(1)
    scale = np.concatenate([np.full(100, 0.005), np.full(100, 0.02), np.full(100, 0.05)])
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1, (300, 4)) * scale[:, None], axis=0))
    rows = np.arange(40, 300)
    labels = stability_labels(close, rows)  # no overlay: volatility terciles stand in
    counts = {k: int((labels == k).sum()) for k in ("stable", "fragile", "unstable")}
    assert abs(counts["stable"] - counts["unstable"]) <= 2 and sum(counts.values()) == rows.size
    assert (labels[rows < 100] == "stable").all()  # the 60 calm bars all fall in the low third
    high = labels[rows >= 220]
    assert (high != "stable").all() and (high == "unstable").mean() > 0.8


def test_stability_buckets_come_from_the_overlay_when_there_is_one() -> None:
    overlay = DATA.prepared.overlay
    assert overlay is not None
    rows = np.arange(1, DATA.panel.n_bars)
    labels = stability_labels(DATA.panel.close, rows, overlay)
    assert list(labels) == list(overlay.buckets()[rows - 1])


def test_json_safe_turns_non_finite_numbers_into_null() -> None:
    assert json_safe({"a": math.nan, "b": [math.inf, 1.23456789], "c": np.float64(2.0)}) == {
        "a": None,
        "b": [None, 1.234568],
        "c": 2.0,
    }


def test_gate_config_refuses_nonsense() -> None:
    with pytest.raises(ConfigError):
        GateConfig(folds=0)
    with pytest.raises(ConfigError):
        GateConfig(significance="vibes")  # type: ignore[arg-type]


def test_breach_in_a_full_run_is_reported_under_its_code() -> None:
    """A baseline that trades at a quarter of its size in a market of slides; retiring that
    rule lets the account or a strategy pool run into a limit the baseline stayed clear of.
    The engines' limits (overlay, portfolio sizing, pool allocator) are off here: with them on,
    the account stops short of its limits, which is their job, and the breach check would have
    nothing to find."""
    from sovereign.constitution import Constitution

    breaker = Rule(
        name="quarter-size", when=ConfidenceAbove(value=0.0), then=ScalePosition(factor=0.25)
    )
    raw = OverlayConfig(enabled=False)
    panel = control_markets.slides_market(1, 1100)
    data = replace(gate_data(panel), prepared=prepare(panel, CONTROL_REGIME, seed=0, overlay=raw))
    base = Baseline(
        ruleset=RuleSet(rules=(breaker,)),
        strategies=BASE.strategies,
        params=BASE.params,
        constitution=Constitution(max_position_size=0.2),
        backtest=replace(
            BASE.backtest,
            overlay=raw,
            trader=TraderConfig(
                sizing=SizingConfig(enabled=False), pools=PoolConfig(enabled=False)
            ),
        ),
    )
    report = evaluate(
        RetireRule(rule_id=breaker.id, rationale="x", source=ProposalSource.LLM), base, data, 1
    )
    assert GATE_CONSTITUTION_BREACH in report.codes
    assert report.breaches["candidate"] and set(report.breaches["candidate"]) > set(
        report.breaches["baseline"]
    )


def test_evaluation_start_defaults_to_the_last_years() -> None:
    panel = control_markets.market(3, 1100, 4)
    data = gate_data(panel)
    late = GateData(panel=panel, prepared=data.prepared)  # no start: the last 7 years = all
    short = GateConfig(evaluation_years=1.0)
    report = evaluate(HALF, BASE, late, 1, config=short, cache=CACHE)
    first = datetime.fromisoformat(report.window["start"])
    assert panel.timestamps[-1].to_pydatetime() - first <= timedelta(days=366)
