"""The heuristic proposer: weaknesses in, valid, deterministic, budgeted rule proposals out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from sovereign.constitution import Constitution, ValidatorState, validate
from sovereign.engines.analytics import (
    Dimension,
    StreakFinding,
    Weakness,
    WeaknessReport,
    find_weaknesses,
    trade_frame,
)
from sovereign.graph.heuristic import BLOCK_DAYS, SCALE_FACTOR, propose
from sovereign.rules import (
    AddRule,
    All,
    AtrAbove,
    AtrBelow,
    BlockSymbol,
    ConsecutiveLossesAbove,
    DayOfWeek,
    ProposalSource,
    Regime,
    RegimeIs,
    RetireRule,
    Rule,
    RuleFeature,
    RuleSet,
    ScalePosition,
    SkipTrade,
    SymbolIn,
    VolumeBelow,
    parse_proposal,
)
from sovereign.trading.counterfactual import Counterfactual, RunSummary
from tests.engines.test_analytics import SYMBOLS, TS, seeded_trades

NOW = datetime(2024, 6, 3, 21, 0, tzinfo=UTC)
ALL_FEATURES = frozenset(RuleFeature)
CLOSES_ONLY = ALL_FEATURES - {RuleFeature.VOLUME}


def weak(dimension: Dimension, value: str, q: float, **kw: Any) -> Weakness:
    fields: dict[str, Any] = {
        "n": 80,
        "total_pnl": -4_000.0,
        "mean_pnl": -50.0,
        "mean_return": -0.9,
        "rest_mean_return": 0.3,
        "win_rate": 0.35,
        "p_value": q / 10,
        "q_value": q,
        "effect_size": -0.6,
    }
    return Weakness(dimension=dimension, value=value, **(fields | kw))


def streak(strategy: str, q: float, significant: bool = True) -> StreakFinding:
    return StreakFinding(
        strategy=strategy,
        n=200,
        loss_rate=0.5,
        k=3,
        runs=30,
        expected_runs=50.2,
        longest=11,
        expected_longest=7.1,
        p_longest=0.01,
        count=20,
        expected_count=12.0,
        p_count=0.01,
        p_value=q / 10,
        q_value=q,
        significant=significant,
    )


def report(*weaknesses: Weakness, streaks: tuple[StreakFinding, ...] = ()) -> WeaknessReport:
    return WeaknessReport(
        n_trades=1_000,
        total_pnl=12_345.0,
        mean_return=0.1,
        win_rate=0.5,
        n_tests=40,
        alpha=0.05,
        method="permutation",
        n_permutations=1999,
        min_trades=20,
        seed=0,
        strategies=("alpha", "beta"),
        weaknesses=tuple(sorted(weaknesses, key=lambda w: w.q_value)),
        streaks=streaks,
    )


FULL = report(
    weak(Dimension.REGIME, "volatile", 0.001),
    weak(Dimension.ATR, "q5", 0.002, low=2.5, effect_size=-0.3),  # a milder loser: scaled
    weak(Dimension.VOLUME, "q1", 0.003, high=20.0),
    weak(Dimension.WEEKDAY, "Fri", 0.004),
    weak(Dimension.SYMBOL, "BBB", 0.005),
    weak(Dimension.STRATEGY_REGIME, "trending_down", 0.006, strategy="beta"),
    weak(Dimension.LOSING_STREAK, "3+", 0.007, low=3.0),
    weak(Dimension.ATR, "q3", 0.008, low=1.0, high=1.5),
    streaks=(streak("alpha", 0.0065),),
)


def run(rep: WeaknessReport = FULL, **kw: Any) -> list[Any]:
    args: dict[str, Any] = {
        "ruleset": RuleSet(),
        "constitution": Constitution(max_proposals_per_cycle=20),
        "features_available": ALL_FEATURES,
        "max_proposals": 20,
        "seed": 0,
    } | kw
    return propose(rep, **args)


def accepted(proposals: list[Any], ruleset: RuleSet, features=ALL_FEATURES, **kw: Any) -> bool:
    constitution = kw.pop("constitution", Constitution(max_proposals_per_cycle=20))
    for i, p in enumerate(proposals):
        state = ValidatorState(
            constitution=constitution,
            ruleset=ruleset,
            strategies={"alpha": {}, "beta": {}},
            features=features,
            index_in_cycle=i,
        )
        verdict = validate(p.model_dump(mode="json"), state, NOW)  # as it would arrive as JSON
        if not verdict.accepted:
            pytest.fail(f"{p.summary()}: {verdict.codes}")
    return True


def test_each_kind_of_weakness_maps_to_its_rule() -> None:
    out = run()
    rules = [p.rule for p in out]
    assert all(isinstance(p, AddRule) and p.source is ProposalSource.HEURISTIC for p in out)
    assert rules[0].when == RegimeIs(regime=Regime.VOLATILE) and rules[0].strategy is None
    assert isinstance(rules[0].then, SkipTrade)  # a losing cluster is skipped
    assert rules[1].when == AtrAbove(pct=2.5)
    assert rules[1].then == ScalePosition(factor=SCALE_FACTOR)
    assert rules[2].when == VolumeBelow(percentile=20.0)
    assert rules[3].when == DayOfWeek(days=(4,))
    assert rules[4].when == SymbolIn(symbols=("BBB",))
    assert rules[4].then == BlockSymbol(days=BLOCK_DAYS)
    assert rules[5].strategy == "beta"
    assert rules[5].when == RegimeIs(regime=Regime.TRENDING_DOWN)
    # the streak finding (q 0.0065) ranks between strategy x regime and the streak cluster
    assert rules[6].strategy == "alpha"
    assert rules[6].when == ConsecutiveLossesAbove(count=2)
    assert rules[7].strategy is None and rules[7].when == ConsecutiveLossesAbove(count=2)
    assert all(r.then == ScalePosition(factor=SCALE_FACTOR) for r in rules[6:8])  # never skip
    assert rules[8].when == All(all=(AtrAbove(pct=1.0), AtrBelow(pct=1.5)))
    assert len(out) == 9


def test_proposals_are_valid_and_quote_their_figures() -> None:
    out = run()
    assert accepted(out, RuleSet())
    for p in out:
        assert parse_proposal(p.model_dump_json()) == p
        assert p.expected_effect
    first = out[0]
    for figure in ("n=80", "-0.90%", "+0.30%", "p=0.0001", "q=0.0010", "40 tests"):
        assert figure in first.rationale


def test_same_input_same_proposals_whatever_the_seed() -> None:
    a, b, c = run(), run(), run(seed=123)
    assert [p.id for p in a] == [p.id for p in b] == [p.id for p in c]


def test_budgets_cap_the_number_of_proposals() -> None:
    assert [p.id for p in run(max_proposals=3)] == [p.id for p in run()[:3]]
    small = Constitution(max_proposals_per_cycle=2)
    assert len(run(constitution=small)) == 2
    existing = Rule(name="x", when=RegimeIs(regime=Regime.RANGING), then=SkipTrade(reason="x"))
    full = Constitution(max_active_rules=3, max_proposals_per_cycle=20)
    assert len(run(constitution=full, ruleset=RuleSet(rules=(existing,)))) == 2
    assert run(max_proposals=0) == []


def test_unavailable_features_are_never_used() -> None:
    out = run(features_available=CLOSES_ONLY)
    assert all(RuleFeature.VOLUME not in p.rule.features() for p in out)
    assert len(out) == 8
    assert accepted(out, RuleSet(), features=CLOSES_ONLY)


def test_active_rules_and_families_are_not_proposed_again() -> None:
    first = run()[0].rule
    assert run(ruleset=RuleSet(rules=(first,)))[0].rule.when != first.when
    # another skip on the same regime with other text is the same family
    cousin = Rule(name="mine", when=first.when, then=SkipTrade(reason="mine"))
    assert cousin.id != first.id and cousin.family() == first.family()
    out = run(ruleset=RuleSet(rules=(cousin,)))
    assert all(p.rule.family() != first.family() for p in out)
    assert accepted(out, RuleSet(rules=(cousin,)))


def test_a_strategy_rule_covered_by_the_same_rule_for_all_is_dropped() -> None:
    rep = report(
        weak(Dimension.REGIME, "volatile", 0.001),
        weak(Dimension.STRATEGY_REGIME, "volatile", 0.002, strategy="alpha"),
    )
    (only,) = run(rep)
    assert only.rule.strategy is None


def test_weak_symbols_and_weekdays_are_merged_into_one_rule() -> None:
    rep = report(
        weak(Dimension.SYMBOL, "BBB", 0.001),
        weak(Dimension.WEEKDAY, "Mon", 0.002),
        weak(Dimension.SYMBOL, "DDD", 0.003),
        weak(Dimension.WEEKDAY, "Fri", 0.004),
        weak(Dimension.SYMBOL, "AAA", 0.005, effect_size=-0.2),  # milder: its own scale rule
    )
    out = run(rep)
    assert [p.rule.when for p in out] == [
        SymbolIn(symbols=("BBB", "DDD")),
        DayOfWeek(days=(0, 4)),
        SymbolIn(symbols=("AAA",)),
    ]
    assert "BBB" in out[0].rationale and "DDD" in out[0].rationale
    assert accepted(out, RuleSet())


def test_a_cluster_that_earns_less_but_still_earns_gets_no_rule() -> None:
    rep = report(weak(Dimension.REGIME, "trending_up", 0.001, mean_return=0.4, total_pnl=900.0))
    assert run(rep) == []


def test_streak_findings_that_are_not_significant_are_ignored() -> None:
    assert run(report(streaks=(streak("alpha", 0.2, significant=False),))) == []


def summary(pnl: float, sharpe: float, rules: RuleSet) -> RunSummary:
    return RunSummary(
        ruleset_id=rules.id,
        pnl=pnl,
        realized_pnl=pnl,
        sharpe=sharpe,
        max_drawdown=0.05,
        trades=10,
        win_rate=0.5,
        final_equity=100_000.0 + pnl,
    )


def test_a_rule_that_costs_pnl_is_proposed_for_retirement() -> None:
    costly = Rule(name="costly", when=RegimeIs(regime=Regime.RANGING), then=SkipTrade(reason="x"))
    useful = Rule(name="useful", when=DayOfWeek(days=(0,)), then=SkipTrade(reason="y"))
    active = RuleSet(rules=(costly, useful))

    def cf(rule: Rule, with_pnl: float, with_sharpe: float) -> Counterfactual:
        without = active.with_rules(r for r in active.rules if r.id != rule.id)
        return Counterfactual(
            change=f"rule {rule.name}",
            baseline_ruleset=without,
            candidate_ruleset=active,
            baseline=summary(1_000.0, 0.5, without),
            candidate=summary(with_pnl, with_sharpe, active),
            removed=(),
            added=(),
            changed=(),
        )

    out = run(
        report(),
        ruleset=active,
        counterfactuals=[cf(costly, 400.0, 0.4), cf(useful, 2_000.0, 0.9)],
    )
    assert len(out) == 1 and isinstance(out[0], RetireRule)
    assert out[0].rule_id == costly.id and "cost 600.00" in out[0].rationale
    assert accepted(out, active)
    # costs P&L but buys Sharpe: kept
    assert run(report(), ruleset=active, counterfactuals=[cf(costly, 400.0, 0.8)]) == []
    # retirements come after new rules and share the budget
    mixed = run(FULL, ruleset=active, counterfactuals=[cf(costly, 400.0, 0.4)], max_proposals=2)
    assert [type(p) for p in mixed] == [AddRule, AddRule]


def test_end_to_end_a_planted_weakness_becomes_the_first_proposal() -> None:
    frame: pd.DataFrame = trade_frame(seeded_trades(11, planted=1.5), None, SYMBOLS, TS)
    rep = find_weaknesses(frame, seed=3, n_permutations=999)
    out = propose(
        rep,
        ruleset=RuleSet(),
        constitution=Constitution(),
        features_available=CLOSES_ONLY,
        max_proposals=5,
        seed=0,
    )
    assert out and out[0].rule.when == RegimeIs(regime=Regime.VOLATILE)
    assert isinstance(out[0].rule.then, SkipTrade) and out[0].rule.strategy is None
    assert all(p.rule.when != RegimeIs(regime=Regime.VOLATILE) for p in out[1:])
    assert accepted(out, RuleSet(), features=CLOSES_ONLY, constitution=Constitution())
    again = propose(
        replace(rep),
        ruleset=RuleSet(),
        constitution=Constitution(),
        features_available=CLOSES_ONLY,
        max_proposals=5,
        seed=0,
    )
    assert [p.id for p in again] == [p.id for p in out]
