"""What a rule sees when it is evaluated: a snapshot of one candidate trade or open position."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Regime(StrEnum):
    TRENDING_UP = "trending_up"
    TRENDING_DOWN = "trending_down"
    RANGING = "ranging"
    VOLATILE = "volatile"
    UNCERTAIN = "uncertain"  # confidence below threshold: conservative defaults apply


class RuleFeature(StrEnum):
    """Inputs a condition may need; a data source that cannot provide one makes the rule invalid."""

    REGIME = "regime"
    VOLUME = "volume"
    ATR = "atr"
    CONFIDENCE = "confidence"
    DRAWDOWN = "drawdown"
    CALENDAR = "calendar"
    TRADE_HISTORY = "trade_history"
    RETURNS = "returns"


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleContext:
    """Snapshot a rule is evaluated against.

    ``volume_percentile``: 0..100 rank of the bar's volume in its trailing window, None when the
    source has no volume. ``atr_pct``: ATR as percent of price. ``drawdown``: account drawdown
    from peak as a fraction (0.05 = 5%). ``weekday``: 0 = Monday. ``return_at(lag)``: the
    symbol's log return ``lag`` bars before the current one (0 = the current bar), None when the
    data has no such bar.
    """

    symbol: str
    strategy: str
    regime: Regime
    regime_confidence: float
    confidence: float
    volume_percentile: float | None
    atr_pct: float | None
    drawdown: float
    weekday: int
    consecutive_losses: int
    in_position: bool = False
    return_at: Callable[[int], float | None] | None = None
