"""Exploration ideas: the playbook in order (skipping what is active, moot or recently tried) and
bounded parameter steps that rotate deterministically and always pass the validator's bounds."""

from __future__ import annotations

from datetime import UTC, datetime

from sovereign.constitution import Constitution, ValidatorState, validate
from sovereign.graph.explore import PLAYBOOK, explore, playbook_idea
from sovereign.rules import RegimeIs, Rule, RuleSet, SkipTrade
from sovereign.trading.catalog import effective_params, strategy_specs

NAMES = ("regime_entry", "momentum")
NOW = datetime(2020, 1, 6, tzinfo=UTC)


def test_playbook_in_order_skipping_active_tried_and_moot_rules() -> None:
    first = playbook_idea(RuleSet(), skip=set())
    assert first is not None and first.rule == PLAYBOOK[0][0]
    second = playbook_idea(RuleSet(rules=(PLAYBOOK[0][0],)), skip=set())
    assert second is not None and second.rule == PLAYBOOK[1][0]
    tried = {r.id for r, _ in PLAYBOOK[:2]}
    third = playbook_idea(RuleSet(), skip=tried)
    assert third is not None and third.rule == PLAYBOOK[2][0]
    # With every volatile entry skipped, the other volatile-regime rules would change nothing.
    skip_volatile = Rule(name="x", when=RegimeIs(regime="volatile"), then=SkipTrade(reason="v"))
    idea = playbook_idea(RuleSet(rules=(skip_volatile,)), skip={PLAYBOOK[0][0].id})
    assert idea is not None and idea.rule.when != skip_volatile.when
    assert playbook_idea(RuleSet(), skip={r.id for r, _ in PLAYBOOK}) is None


def test_parameter_steps_rotate_on_the_weakest_strategy_and_pass_the_validator() -> None:
    specs = strategy_specs(NAMES)
    params = effective_params(NAMES)
    state = ValidatorState(constitution=Constitution(), strategies=specs, params=params)
    pnl = {"momentum": 1000.0, "regime_entry": -500.0}
    seen = []
    for attempt in range(2 * len(specs["regime_entry"])):
        p = explore(specs=specs, params=params, pnl_by_strategy=pnl, attempt=attempt)
        assert p is not None and p.strategy == "regime_entry"
        assert validate(p, state, NOW).accepted, validate(p, state, NOW).violations
        seen.append((p.parameter, p.value > params["regime_entry"][p.parameter]))
    # Every parameter is tried up, then down, in a fixed order.
    assert {name for name, _ in seen} == set(specs["regime_entry"])
    assert {up for _, up in seen[: len(specs["regime_entry"])]} == {True}
    again = explore(specs=specs, params=params, pnl_by_strategy=pnl, attempt=3)
    assert again == explore(specs=specs, params=params, pnl_by_strategy=pnl, attempt=3)
    assert explore(specs=specs, params=params, pnl_by_strategy={}, attempt=0) is None
