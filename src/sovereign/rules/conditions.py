"""Conditions of the rule DSL: a pydantic discriminated union on ``type``.

Every condition is frozen, forbids unknown fields, round-trips through JSON, evaluates against a
:class:`RuleContext` and says which :class:`RuleFeature` inputs it needs. A condition on a
feature the context lacks (volume on a closes-only source) evaluates to False, never to a guess;
the validator rejects such a rule before it is ever deployed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from sovereign.rules.context import Regime, RuleContext, RuleFeature

Percentile = Annotated[float, Field(ge=0, le=100)]
Probability = Annotated[float, Field(ge=0, le=1)]


class _Condition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def features(self) -> frozenset[RuleFeature]:
        return frozenset()

    def shape(self) -> object:
        """Structure without thresholds, for family fingerprints."""
        return self.model_dump(include={"type"})


class RegimeIs(_Condition):
    type: Literal["regime_is"] = "regime_is"
    regime: Regime

    def evaluate(self, ctx: RuleContext) -> bool:
        return ctx.regime is self.regime

    def features(self) -> frozenset[RuleFeature]:
        return frozenset({RuleFeature.REGIME})

    def shape(self) -> object:
        return {"type": self.type, "regime": self.regime.value}


class VolumeBelow(_Condition):
    type: Literal["volume_below"] = "volume_below"
    percentile: Percentile

    def evaluate(self, ctx: RuleContext) -> bool:
        return ctx.volume_percentile is not None and ctx.volume_percentile < self.percentile

    def features(self) -> frozenset[RuleFeature]:
        return frozenset({RuleFeature.VOLUME})


class VolumeAbove(_Condition):
    type: Literal["volume_above"] = "volume_above"
    percentile: Percentile

    def evaluate(self, ctx: RuleContext) -> bool:
        return ctx.volume_percentile is not None and ctx.volume_percentile > self.percentile

    def features(self) -> frozenset[RuleFeature]:
        return frozenset({RuleFeature.VOLUME})


class AtrAbove(_Condition):
    """ATR as percent of price above ``pct`` (2.5 means 2.5%)."""

    type: Literal["atr_above"] = "atr_above"
    pct: Annotated[float, Field(gt=0, le=100)]

    def evaluate(self, ctx: RuleContext) -> bool:
        return ctx.atr_pct is not None and ctx.atr_pct > self.pct

    def features(self) -> frozenset[RuleFeature]:
        return frozenset({RuleFeature.ATR})


class AtrBelow(_Condition):
    type: Literal["atr_below"] = "atr_below"
    pct: Annotated[float, Field(gt=0, le=100)]

    def evaluate(self, ctx: RuleContext) -> bool:
        return ctx.atr_pct is not None and ctx.atr_pct < self.pct

    def features(self) -> frozenset[RuleFeature]:
        return frozenset({RuleFeature.ATR})


class ConfidenceBelow(_Condition):
    type: Literal["confidence_below"] = "confidence_below"
    value: Probability

    def evaluate(self, ctx: RuleContext) -> bool:
        return ctx.confidence < self.value

    def features(self) -> frozenset[RuleFeature]:
        return frozenset({RuleFeature.CONFIDENCE})


class ConfidenceAbove(_Condition):
    type: Literal["confidence_above"] = "confidence_above"
    value: Probability

    def evaluate(self, ctx: RuleContext) -> bool:
        return ctx.confidence > self.value

    def features(self) -> frozenset[RuleFeature]:
        return frozenset({RuleFeature.CONFIDENCE})


class DrawdownAbove(_Condition):
    """Account drawdown from peak above ``value`` (a fraction: 0.05 = 5%)."""

    type: Literal["drawdown_above"] = "drawdown_above"
    value: Annotated[float, Field(ge=0, le=1)]

    def evaluate(self, ctx: RuleContext) -> bool:
        return ctx.drawdown > self.value

    def features(self) -> frozenset[RuleFeature]:
        return frozenset({RuleFeature.DRAWDOWN})


class SymbolIn(_Condition):
    type: Literal["symbol_in"] = "symbol_in"
    symbols: Annotated[tuple[str, ...], Field(min_length=1, max_length=500)]

    def evaluate(self, ctx: RuleContext) -> bool:
        return ctx.symbol in self.symbols


class DayOfWeek(_Condition):
    """True on the given weekdays (0 = Monday ... 6 = Sunday)."""

    type: Literal["day_of_week"] = "day_of_week"
    days: Annotated[
        tuple[Annotated[int, Field(ge=0, le=6)], ...], Field(min_length=1, max_length=7)
    ]

    def evaluate(self, ctx: RuleContext) -> bool:
        return ctx.weekday in self.days

    def features(self) -> frozenset[RuleFeature]:
        return frozenset({RuleFeature.CALENDAR})


class ConsecutiveLossesAbove(_Condition):
    type: Literal["consecutive_losses_above"] = "consecutive_losses_above"
    count: Annotated[int, Field(ge=0, le=1000)]

    def evaluate(self, ctx: RuleContext) -> bool:
        return ctx.consecutive_losses > self.count

    def features(self) -> frozenset[RuleFeature]:
        return frozenset({RuleFeature.TRADE_HISTORY})


class ReturnAbove(_Condition):
    """The symbol's log return ``lag`` bars ago above ``pct`` percent (``lag`` 0 = current bar).

    A negative ``lag`` would read a bar that has not happened yet: the type can express it so
    that such a proposal parses and is rejected with a clear code (``RULE_LOOKAHEAD``), and the
    gate's look-ahead guard catches it independently.
    """

    type: Literal["return_above"] = "return_above"
    pct: Annotated[float, Field(ge=-100, le=100)]
    lag: Annotated[int, Field(ge=-5, le=250)] = 0

    def evaluate(self, ctx: RuleContext) -> bool:
        value = _return_at(ctx, self.lag)
        return value is not None and value * 100.0 > self.pct

    def features(self) -> frozenset[RuleFeature]:
        return frozenset({RuleFeature.RETURNS})

    def shape(self) -> object:
        return {"type": self.type, "ahead": self.lag < 0}


class ReturnBelow(_Condition):
    """The symbol's log return ``lag`` bars ago below ``pct`` percent (see :class:`ReturnAbove`)."""

    type: Literal["return_below"] = "return_below"
    pct: Annotated[float, Field(ge=-100, le=100)]
    lag: Annotated[int, Field(ge=-5, le=250)] = 0

    def evaluate(self, ctx: RuleContext) -> bool:
        value = _return_at(ctx, self.lag)
        return value is not None and value * 100.0 < self.pct

    def features(self) -> frozenset[RuleFeature]:
        return frozenset({RuleFeature.RETURNS})

    def shape(self) -> object:
        return {"type": self.type, "ahead": self.lag < 0}


def _return_at(ctx: RuleContext, lag: int) -> float | None:
    return None if ctx.return_at is None else ctx.return_at(lag)


class All(_Condition):
    type: Literal["and"] = "and"
    all: Annotated[tuple[Condition, ...], Field(min_length=1, max_length=16)]

    def evaluate(self, ctx: RuleContext) -> bool:
        return all(c.evaluate(ctx) for c in self.all)

    def features(self) -> frozenset[RuleFeature]:
        return frozenset().union(*(c.features() for c in self.all))

    def shape(self) -> object:
        return {"type": self.type, "all": sorted((c.shape() for c in self.all), key=repr)}


class Any_(_Condition):
    type: Literal["or"] = "or"
    any: Annotated[tuple[Condition, ...], Field(min_length=1, max_length=16)]

    def evaluate(self, ctx: RuleContext) -> bool:
        return any(c.evaluate(ctx) for c in self.any)

    def features(self) -> frozenset[RuleFeature]:
        return frozenset().union(*(c.features() for c in self.any))

    def shape(self) -> object:
        return {"type": self.type, "any": sorted((c.shape() for c in self.any), key=repr)}


class Not(_Condition):
    type: Literal["not"] = "not"
    cond: Condition

    def evaluate(self, ctx: RuleContext) -> bool:
        return not self.cond.evaluate(ctx)

    def features(self) -> frozenset[RuleFeature]:
        return self.cond.features()

    def shape(self) -> object:
        return {"type": self.type, "cond": self.cond.shape()}


Condition = Annotated[
    RegimeIs
    | VolumeBelow
    | VolumeAbove
    | AtrAbove
    | AtrBelow
    | ConfidenceBelow
    | ConfidenceAbove
    | DrawdownAbove
    | SymbolIn
    | DayOfWeek
    | ConsecutiveLossesAbove
    | ReturnAbove
    | ReturnBelow
    | All
    | Any_
    | Not,
    Field(discriminator="type"),
]

All.model_rebuild()
Any_.model_rebuild()
Not.model_rebuild()
