"""The Constitution: frozen limits read from a TOML file pinned by its SHA-256."""

from __future__ import annotations

import hashlib
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sovereign.errors import ConfigError, ConstitutionTampered

Fraction = Annotated[float, Field(gt=0, le=1)]
ALWAYS_FORBIDDEN: frozenset[str] = frozenset(
    {"max_drawdown", "constitution", "forbidden_modifications"}
)


class Constitution(BaseModel):
    """Immutable hard limits. Defaults are the Sovereign v4 spec's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position_size: Fraction = 0.05
    max_daily_loss: Fraction = 0.03
    max_drawdown: Fraction = 0.10
    min_confidence_for_trade: Annotated[float, Field(ge=0, le=1)] = 0.40
    max_rule_changes_per_day: Annotated[int, Field(ge=0, le=100)] = 3
    max_active_rules: Annotated[int, Field(ge=0, le=1000)] = 50
    max_orders_per_day: Annotated[int, Field(ge=1, le=100_000)] = 200
    max_gross_exposure: Annotated[float, Field(gt=0, le=10)] = 1.0
    max_proposals_per_cycle: Annotated[int, Field(ge=1, le=100)] = 5
    max_param_step: Fraction = 0.25
    blacklist_after_rejections: Annotated[int, Field(ge=1, le=100)] = 3
    blacklist_window_days: Annotated[int, Field(ge=1, le=365)] = 30
    forbidden_modifications: tuple[str, ...] = tuple(sorted(ALWAYS_FORBIDDEN))

    @field_validator("forbidden_modifications")
    @classmethod
    def _sorted(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(value)))

    def model_post_init(self, __context: object) -> None:
        missing = ALWAYS_FORBIDDEN - set(self.forbidden_modifications)
        if missing:
            raise ValueError("forbidden_modifications must include " + ", ".join(sorted(missing)))

    def is_forbidden(self, field: str) -> bool:
        return field in self.forbidden_modifications or field in ALWAYS_FORBIDDEN


def default_path() -> Path:
    """The bundled constitution.toml."""
    return Path(str(resources.files("sovereign.constitution") / "constitution.toml"))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(path: Path | None = None) -> tuple[Constitution, str]:
    """Read and validate a constitution file; returns it with the file's SHA-256.

    Raises ConfigError naming the file and every invalid field.
    """
    path = path or default_path()
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"constitution file {path} cannot be read: {err}") from err
    try:
        data = tomllib.loads(raw.decode("utf-8"))
        constitution = Constitution.model_validate(data)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"constitution file {path} is not valid TOML: {err}") from err
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"constitution file {path} is invalid: {problems}") from err
    return constitution, hashlib.sha256(raw).hexdigest()


def check_pin(path: Path, actual_sha256: str, recorded_sha256: str | None) -> None:
    """Refuse to trade on a constitution that changed since its hash was recorded."""
    if recorded_sha256 is not None and recorded_sha256 != actual_sha256:
        raise ConstitutionTampered(
            f"constitution file {path} changed since it was recorded "
            f"(recorded sha256 {recorded_sha256[:12]}…, now {actual_sha256[:12]}…). "
            "Trading is refused. If the change is intended, a person must run "
            "`sovereign constitution amend --by NAME --note WHY`; otherwise restore the file."
        )
