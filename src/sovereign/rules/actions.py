"""Actions of the rule DSL. Every action can only keep or reduce risk: none can enlarge a
position beyond what the strategy asked, widen a stop, or lift a halt. (The validator re-checks
this; the types already make the opposite inexpressible.)"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Action(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SkipTrade(_Action):
    """Do not open the candidate trade."""

    type: Literal["skip_trade"] = "skip_trade"
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class ScalePosition(_Action):
    """Multiply the candidate's size by ``factor`` in (0, 1]."""

    type: Literal["scale_position"] = "scale_position"
    factor: Annotated[float, Field(gt=0, le=1)]


class TightenStop(_Action):
    """Use a stop at most ``atr_mult`` ATRs away (only ever tighter than the strategy's)."""

    type: Literal["tighten_stop"] = "tighten_stop"
    atr_mult: Annotated[float, Field(gt=0, le=10)]


class SetTakeProfit(_Action):
    """Take profit at ``atr_mult`` ATRs (only ever nearer than the strategy's)."""

    type: Literal["set_take_profit"] = "set_take_profit"
    atr_mult: Annotated[float, Field(gt=0, le=20)]


class ExitPosition(_Action):
    """Close an open position at the next opportunity."""

    type: Literal["exit_position"] = "exit_position"


class BlockSymbol(_Action):
    """No new entries in the symbol for ``days`` calendar days."""

    type: Literal["block_symbol"] = "block_symbol"
    days: Annotated[int, Field(ge=1, le=365)]


Action = Annotated[
    SkipTrade | ScalePosition | TightenStop | SetTakeProfit | ExitPosition | BlockSymbol,
    Field(discriminator="type"),
]
