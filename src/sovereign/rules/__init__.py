"""The language of self-modification: conditions, actions, rules, rule sets, configs."""

from sovereign.rules.actions import (
    Action,
    BlockSymbol,
    ExitPosition,
    ScalePosition,
    SetTakeProfit,
    SkipTrade,
    TightenStop,
)
from sovereign.rules.conditions import (
    All,
    Any_,
    AtrAbove,
    AtrBelow,
    Condition,
    ConfidenceAbove,
    ConfidenceBelow,
    ConsecutiveLossesAbove,
    DayOfWeek,
    DrawdownAbove,
    Not,
    RegimeIs,
    SymbolIn,
    VolumeAbove,
    VolumeBelow,
)
from sovereign.rules.config import ParamSpec, StrategyConfig
from sovereign.rules.context import Regime, RuleContext, RuleFeature
from sovereign.rules.hashing import canonical_json, content_hash
from sovereign.rules.rule import Rule, RuleEffect, RuleSet

__all__ = [
    "Action",
    "All",
    "Any_",
    "AtrAbove",
    "AtrBelow",
    "BlockSymbol",
    "Condition",
    "ConfidenceAbove",
    "ConfidenceBelow",
    "ConsecutiveLossesAbove",
    "DayOfWeek",
    "DrawdownAbove",
    "ExitPosition",
    "Not",
    "ParamSpec",
    "Regime",
    "RegimeIs",
    "Rule",
    "RuleContext",
    "RuleEffect",
    "RuleFeature",
    "RuleSet",
    "ScalePosition",
    "SetTakeProfit",
    "SkipTrade",
    "StrategyConfig",
    "SymbolIn",
    "TightenStop",
    "VolumeAbove",
    "VolumeBelow",
    "canonical_json",
    "content_hash",
]
