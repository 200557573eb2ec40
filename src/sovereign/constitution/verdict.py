"""What the constitution validator returns: every violation, each with a stable code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class Violation:
    """One reason to reject. ``code`` is stable (scripts and tests match on it), ``field`` is the
    JSON path of the offending input ("rule.then.factor", "value", "" for the whole proposal),
    ``message`` is a sentence for a person."""

    code: str
    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "message": self.message}


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """The validator's answer. ``proposal_id`` and ``family`` are None when the input did not
    even parse as a proposal."""

    accepted: bool
    violations: tuple[Violation, ...]
    proposal_id: str | None = None
    family: str | None = None
    kind: str | None = None

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(v.code for v in self.violations)

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "proposal_id": self.proposal_id,
            "family": self.family,
            "kind": self.kind,
            "violations": [v.to_json() for v in self.violations],
        }


__all__ = ["Verdict", "Violation"]
