"""Strategy configuration with declared bounds for every tunable parameter.

A parameter's bounds are part of the code, not of the config: a proposal may move a value within
``[low, high]`` and by at most ``max_step`` (a fraction of the range) per change; the constitution
validator enforces both.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator

from sovereign.rules.hashing import ContentAddressed, content_hash


@dataclass(frozen=True, kw_only=True, slots=True)
class ParamSpec:
    """A tunable parameter: default, inclusive bounds, integer or not, and a description."""

    default: float
    low: float
    high: float
    integer: bool = False
    description: str = ""
    max_step: float = 0.25  # largest change per proposal, as a fraction of (high - low)

    def check(self, name: str, value: float) -> str | None:
        """None when ``value`` is acceptable, else a sentence saying why not."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"{name} must be a number, got {value!r}"
        if value != value:  # NaN
            return f"{name} must be a number, got NaN"
        if self.integer and float(value) != int(value):
            return f"{name} must be a whole number, got {value:g}"
        if not self.low <= value <= self.high:
            return f"{name}={value:g} is outside its bounds [{self.low:g}, {self.high:g}]"
        return None


class StrategyConfig(ContentAddressed):
    """A strategy's parameters, checked against the strategy's declared :class:`ParamSpec`s."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Annotated[str, Field(min_length=1, max_length=40)]
    params: dict[str, float] = Field(default_factory=dict)
    pool_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5
    pool_max_loss: Annotated[float, Field(gt=0, le=1)] = 0.15

    @cached_property
    def id(self) -> str:
        return content_hash(self.model_dump(mode="json"), prefix="c-")

    @model_validator(mode="after")
    def _finite(self) -> StrategyConfig:
        for k, v in self.params.items():
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError(f"parameter {k} must be finite, got {v}")
        return self

    def validated(self, specs: dict[str, ParamSpec]) -> StrategyConfig:
        """This config with defaults filled in; ValueError lists every bad parameter."""
        problems = [f"unknown parameter {k!r}" for k in self.params if k not in specs]
        problems += [
            p for k, v in self.params.items() if k in specs and (p := specs[k].check(k, v))
        ]
        if problems:
            known = ", ".join(sorted(specs))
            raise ValueError(
                f"strategy {self.strategy!r}: " + "; ".join(problems) + f" (parameters: {known})"
            )
        full = {k: spec.default for k, spec in specs.items()} | dict(self.params)
        return self.model_copy(update={"params": full})

    def get(self, name: str) -> Any:
        return self.params[name]
