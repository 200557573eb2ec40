"""Rules and rule sets, and what applying them to a candidate or a position yields."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated

from pydantic import ConfigDict, Field

from sovereign.rules.actions import (
    Action,
    BlockSymbol,
    ExitPosition,
    ScalePosition,
    SetTakeProfit,
    SkipTrade,
    TightenStop,
)
from sovereign.rules.conditions import Condition
from sovereign.rules.context import RuleContext, RuleFeature
from sovereign.rules.hashing import ContentAddressed, content_hash

RuleName = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][\w.\- ]*$")]


class Rule(ContentAddressed):
    """``{"name", "strategy" (or null for all), "when": CONDITION, "then": ACTION}``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: RuleName
    strategy: str | None = None
    when: Condition
    then: Action

    @cached_property
    def id(self) -> str:
        """Content hash: the same rule text always has the same id."""
        return content_hash(self.model_dump(mode="json"), prefix="r-")

    def features(self) -> frozenset[RuleFeature]:
        return self.when.features()

    def applies_to(self, strategy: str) -> bool:
        return self.strategy is None or self.strategy == strategy

    def family(self) -> str:
        """Fingerprint of the rule's structure ignoring thresholds and its name."""
        return content_hash(
            {"strategy": self.strategy, "when": self.when.shape(), "then": self.then.type},
            prefix="f-",
        )


@dataclass(kw_only=True, slots=True)
class RuleEffect:
    """The combined effect of every rule that fired for one candidate or position."""

    skip_reason: str | None = None
    scale: float = 1.0
    stop_atr_mult: float | None = None
    take_profit_atr_mult: float | None = None
    exit: bool = False
    block_days: int = 0
    fired: list[str] = field(default_factory=list)

    def combine(self, rule: Rule) -> None:
        action = rule.then
        self.fired.append(rule.id)
        if isinstance(action, SkipTrade):
            self.skip_reason = self.skip_reason or f"{rule.name}: {action.reason}"
        elif isinstance(action, ScalePosition):
            self.scale *= action.factor
        elif isinstance(action, TightenStop):
            self.stop_atr_mult = _tighter(self.stop_atr_mult, action.atr_mult)
        elif isinstance(action, SetTakeProfit):
            self.take_profit_atr_mult = _tighter(self.take_profit_atr_mult, action.atr_mult)
        elif isinstance(action, ExitPosition):
            self.exit = True
        elif isinstance(action, BlockSymbol):
            self.block_days = max(self.block_days, action.days)


def _tighter(current: float | None, new: float) -> float:
    return new if current is None else min(current, new)


ParamOverrides = dict[str, dict[str, float]]


class RuleSet(ContentAddressed):
    """An ordered, versioned collection of rules plus strategy parameter overrides.

    ``params`` maps strategy -> parameter -> value for the parameters that proposals have tuned
    (everything else keeps the strategy's declared default or the operator's setting). The id is
    the hash of the rules' ids and, when there are any, the overrides: one id, one behaviour.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[Rule, ...] = ()
    params: ParamOverrides = Field(default_factory=dict)

    @cached_property
    def id(self) -> str:
        ids = [r.id for r in self.rules]
        if not any(self.params.values()):
            return content_hash(ids, prefix="rs-")
        return content_hash({"rules": ids, "params": self.params}, prefix="rs-")

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def for_strategy(self, strategy: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.applies_to(strategy))

    def with_rules(self, rules: Iterable[Rule]) -> RuleSet:
        return RuleSet(rules=tuple(rules), params=self.params)

    def with_param(self, strategy: str, name: str, value: float) -> RuleSet:
        params = {s: dict(p) for s, p in self.params.items()}
        params.setdefault(strategy, {})[name] = value
        return RuleSet(rules=self.rules, params=params)

    def strategy_params(self, strategy: str) -> dict[str, float]:
        return dict(self.params.get(strategy, {}))

    @staticmethod
    def apply(rules: Iterable[Rule], ctx: RuleContext) -> RuleEffect:
        """Evaluate ``rules`` against ``ctx``; every rule whose condition holds contributes."""
        effect = RuleEffect()
        for rule in rules:
            if rule.when.evaluate(ctx):
                effect.combine(rule)
        if not math.isfinite(effect.scale):
            effect.scale = 0.0
        return effect
