"""The rule DSL: JSON round trip, evaluation, content hashes, families, and bounds."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sovereign.rules import (
    All,
    AtrAbove,
    ConsecutiveLossesAbove,
    DayOfWeek,
    DrawdownAbove,
    Not,
    ParamSpec,
    Regime,
    RegimeIs,
    Rule,
    RuleContext,
    RuleFeature,
    RuleSet,
    ScalePosition,
    SkipTrade,
    StrategyConfig,
    SymbolIn,
    TightenStop,
    VolumeBelow,
)

ISSUE_EXAMPLE = {
    "name": "no-thin-volatile",
    "strategy": None,
    "when": {
        "type": "and",
        "all": [
            {"type": "regime_is", "regime": "volatile"},
            {"type": "volume_below", "percentile": 30},
        ],
    },
    "then": {"type": "skip_trade", "reason": "Low volume in volatile regime"},
}


def ctx(**kw: object) -> RuleContext:
    base: dict[str, object] = {
        "symbol": "AAPL",
        "strategy": "regime_entry",
        "regime": Regime.VOLATILE,
        "regime_confidence": 0.8,
        "confidence": 0.6,
        "volume_percentile": 20.0,
        "atr_pct": 2.0,
        "drawdown": 0.01,
        "weekday": 0,
        "consecutive_losses": 0,
    }
    base.update(kw)
    return RuleContext(**base)  # type: ignore[arg-type]


def test_issue_example_round_trips_and_fires() -> None:
    rule = Rule.model_validate(ISSUE_EXAMPLE)
    again = Rule.model_validate_json(rule.model_dump_json())
    assert again == rule and again.id == rule.id
    assert json.loads(rule.model_dump_json())["when"]["all"][1]["percentile"] == 30
    effect = RuleSet.apply([rule], ctx())
    assert effect.skip_reason == "no-thin-volatile: Low volume in volatile regime"
    assert effect.fired == [rule.id]
    assert RuleSet.apply([rule], ctx(volume_percentile=45.0)).skip_reason is None
    assert RuleSet.apply([rule], ctx(regime=Regime.RANGING)).skip_reason is None


def test_condition_without_its_feature_is_false_not_a_guess() -> None:
    rule = Rule.model_validate(ISSUE_EXAMPLE)
    assert rule.features() == {RuleFeature.REGIME, RuleFeature.VOLUME}
    assert RuleSet.apply([rule], ctx(volume_percentile=None)).skip_reason is None


def test_family_ignores_thresholds_and_names_but_not_structure() -> None:
    a = Rule.model_validate(ISSUE_EXAMPLE)
    b = Rule.model_validate(
        ISSUE_EXAMPLE
        | {
            "name": "other",
            "when": {
                "type": "and",
                "all": [
                    {"type": "volume_below", "percentile": 10},
                    {"type": "regime_is", "regime": "volatile"},
                ],
            },
        }
    )
    c = Rule.model_validate(ISSUE_EXAMPLE | {"then": {"type": "scale_position", "factor": 0.5}})
    assert a.id != b.id
    assert a.family() == b.family()
    assert a.family() != c.family()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "scale_position", "factor": 1.5}, "factor"),
        ({"type": "scale_position", "factor": 0}, "factor"),
        ({"type": "block_symbol", "days": 0}, "days"),
        ({"type": "launch_rockets"}, "type"),
    ],
)
def test_bad_actions_are_rejected_at_construction(payload: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        Rule.model_validate(ISSUE_EXAMPLE | {"then": payload})
    assert field in str(err.value) or "tag" in str(err.value)


def test_unknown_fields_are_forbidden() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Rule.model_validate(ISSUE_EXAMPLE | {"priority": 1})


def test_effects_combine_towards_less_risk() -> None:
    rules = [
        Rule(name="half", when=AtrAbove(pct=1.0), then=ScalePosition(factor=0.5)),
        Rule(name="more-half", when=DrawdownAbove(value=0.0), then=ScalePosition(factor=0.5)),
        Rule(
            name="tight", when=Not(cond=SymbolIn(symbols=("MSFT",))), then=TightenStop(atr_mult=1.0)
        ),
        Rule(name="tighter", when=DayOfWeek(days=(0,)), then=TightenStop(atr_mult=0.8)),
        Rule(name="never", when=ConsecutiveLossesAbove(count=3), then=SkipTrade(reason="streak")),
    ]
    effect = RuleSet.apply(rules, ctx())
    assert effect.scale == pytest.approx(0.25)
    assert effect.stop_atr_mult == pytest.approx(0.8)
    assert effect.skip_reason is None
    assert len(effect.fired) == 4


def test_ruleset_id_is_order_sensitive_content_hash() -> None:
    r1 = Rule(name="a", when=RegimeIs(regime=Regime.VOLATILE), then=SkipTrade(reason="x"))
    r2 = Rule(name="b", when=VolumeBelow(percentile=5), then=SkipTrade(reason="y"))
    assert RuleSet(rules=(r1, r2)).id == RuleSet(rules=(r1, r2)).id
    assert RuleSet(rules=(r1, r2)).id != RuleSet(rules=(r2, r1)).id
    assert RuleSet().id != RuleSet(rules=(r1,)).id
    rs = RuleSet(rules=(r1, r2))
    assert RuleSet.model_validate_json(rs.model_dump_json()).id == rs.id


def test_strategy_config_bounds_are_enforced_with_every_problem_listed() -> None:
    specs = {
        "a": ParamSpec(default=1, low=0, high=2),
        "n": ParamSpec(default=3, low=1, high=9, integer=True),
    }
    with pytest.raises(
        ValueError,
        match=r"outside its bounds.*whole number.*unknown parameter 'z'|"
        r"unknown parameter 'z'.*outside",
    ):
        StrategyConfig(strategy="s", params={"a": 5, "n": 2.5, "z": 1}).validated(specs)
    ok = StrategyConfig(strategy="s", params={"a": 1.5}).validated(specs)
    assert ok.params == {"a": 1.5, "n": 3}


leaf = st.one_of(
    st.builds(RegimeIs, regime=st.sampled_from(list(Regime))),
    st.builds(VolumeBelow, percentile=st.floats(0, 100)),
    st.builds(AtrAbove, pct=st.floats(0.01, 100)),
    st.builds(DrawdownAbove, value=st.floats(0, 1)),
    st.builds(DayOfWeek, days=st.lists(st.integers(0, 6), min_size=1, max_size=7).map(tuple)),
)
conditions = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(All, all=st.lists(inner, min_size=1, max_size=3).map(tuple)),
        st.builds(Not, cond=inner),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(cond=conditions, factor=st.floats(0.01, 1.0))
def test_any_rule_round_trips_with_the_same_id(cond: object, factor: float) -> None:
    rule = Rule(name="prop", when=cond, then=ScalePosition(factor=factor))  # type: ignore[arg-type]
    again = Rule.model_validate_json(rule.model_dump_json())
    assert again == rule
    assert again.id == rule.id
    assert isinstance(rule.when.evaluate(ctx()), bool)


def test_a_copy_gets_its_own_content_hash() -> None:
    from sovereign.rules import RegimeIs, Rule, RuleSet, SkipTrade

    rule = Rule(name="a", when=RegimeIs(regime="volatile"), then=SkipTrade(reason="x"))
    copy = rule.model_copy(update={"name": "b"})
    assert copy.id != rule.id
    assert copy.id == Rule.model_validate(copy.model_dump()).id
    rs = RuleSet(rules=(rule,))
    assert rs.model_copy(update={"rules": (copy,)}).id == RuleSet(rules=(copy,)).id
