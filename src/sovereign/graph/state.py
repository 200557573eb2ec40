"""The improvement cycle's checkpointed state, and the typed result read from a finished one.

State holds only JSON-compatible data (ids, strings, numbers, dicts), so any checkpointer can
store it. Shapes:

- ``proposals``: one item per proposal the proposer produced, in order::

      {"key": "0", "index": 0, "proposal": {...}, "proposal_id": "p-…", "kind": "add_rule",
       "summary": "add rule …", "source": "heuristic"}          # parsed
      {"key": "1", "index": 1, "raw": <json>, "error": None}     # did not parse: the validator
                                                                  # rejects it with its own code
      {"key": "2", "index": 2, "raw": "<text>", "error": {code, field, message}}
                                                                  # rejected at "propose"
      {"key": "llm", "index": None, "raw": {...}, "error": {"code": "LLM_UNAVAILABLE", …}}
                                                                  # not a proposal: the LLM failed
- ``outcomes``: ``key`` -> how that item ended (see :class:`ProposalOutcome`), merged across the
  fan-out branches by :func:`merge_outcomes`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, TypedDict

from sovereign.constitution.verdict import Verdict, Violation

Stage = Literal["propose", "validate", "gate", "deploy"]
Status = Literal["deployed", "rejected"]


def merge_outcomes(
    left: dict[str, dict[str, Any]] | None, right: dict[str, dict[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """Reducer for ``outcomes``: union by item key (a re-run branch overwrites its own key)."""
    return {**(left or {}), **(right or {})}


class CycleState(TypedDict, total=False):
    """The whole cycle. ``now`` is an ISO-8601 UTC timestamp fixed when the cycle started."""

    cycle_id: str
    now: str
    snapshot: dict[str, Any]
    analysis: dict[str, Any]
    proposer: dict[str, Any]
    proposals: list[dict[str, Any]]
    outcomes: Annotated[dict[str, dict[str, Any]], merge_outcomes]
    notes: Annotated[list[str], operator.add]
    errors: Annotated[list[dict[str, Any]], operator.add]
    summary: dict[str, Any]


class ReviewState(TypedDict, total=False):
    """One fan-out branch: a single proposal item on its way to deploy or reject.

    ``stage`` and ``reasons`` are set by the step that refused it; ``reasons`` are
    ``{"code", "field", "message"}`` dicts.
    """

    cycle_id: str
    item: dict[str, Any]
    verdict: dict[str, Any]
    gate: dict[str, Any]
    deployment: dict[str, Any]
    stage: str
    reasons: list[dict[str, Any]]
    outcomes: Annotated[dict[str, dict[str, Any]], merge_outcomes]


class ReviewOutput(TypedDict, total=False):
    """What a branch hands back to the cycle: its outcome only."""

    outcomes: Annotated[dict[str, dict[str, Any]], merge_outcomes]


# --- the typed view of a finished cycle -------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ProposalOutcome:
    """How one proposal item ended. ``index`` is None for a proposer failure (LLM_UNAVAILABLE);
    ``proposal_id``/``kind`` are None for input that never parsed; ``verdict`` is None when the
    item never reached the validator; ``record`` is what ``deploy`` or ``reject`` returned."""

    key: str
    index: int | None
    status: Status
    stage: Stage
    proposal_id: str | None
    kind: str | None
    source: str | None
    summary: str
    reasons: tuple[Violation, ...]
    verdict: Verdict | None
    gate: dict[str, Any] | None
    record: dict[str, Any]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProposalOutcome:
        verdict = data.get("verdict")
        return cls(
            key=data["key"],
            index=data.get("index"),
            status=data["status"],
            stage=data["stage"],
            proposal_id=data.get("proposal_id"),
            kind=data.get("kind"),
            source=data.get("source"),
            summary=data.get("summary", ""),
            reasons=tuple(_violation(r) for r in data.get("reasons", [])),
            verdict=None if verdict is None else _verdict(verdict),
            gate=data.get("gate"),
            record=data.get("record") or {},
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class CycleResult:
    """A cycle as it stands in its checkpoint. ``start`` says what this call did: ``"fresh"``
    (ran a new cycle), ``"resumed"`` (finished an interrupted one) or ``"finished"`` (the cycle
    was already complete; nothing ran). ``complete`` is True once notify has run."""

    cycle_id: str
    now: datetime
    start: Literal["fresh", "resumed", "finished"]
    proposer: dict[str, Any]
    proposals: tuple[dict[str, Any], ...]
    outcomes: tuple[ProposalOutcome, ...]
    notes: tuple[str, ...]
    errors: tuple[dict[str, Any], ...]
    summary: dict[str, Any] | None

    @property
    def complete(self) -> bool:
        return self.summary is not None and {o.key for o in self.outcomes} == {
            p["key"] for p in self.proposals
        }

    @property
    def deployed(self) -> tuple[ProposalOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "deployed")

    @property
    def rejected(self) -> tuple[ProposalOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "rejected")

    @property
    def verdicts(self) -> tuple[Verdict, ...]:
        """The validator's verdicts, in proposal order (items that never reached it omitted)."""
        return tuple(o.verdict for o in self.outcomes if o.verdict is not None)

    @classmethod
    def from_state(
        cls, values: dict[str, Any], *, start: Literal["fresh", "resumed", "finished"]
    ) -> CycleResult:
        outcomes = [ProposalOutcome.from_json(o) for o in values.get("outcomes", {}).values()]
        outcomes.sort(key=lambda o: (-1 if o.index is None else o.index, o.key))
        return cls(
            cycle_id=values["cycle_id"],
            now=datetime.fromisoformat(values["now"]),
            start=start,
            proposer=dict(values.get("proposer") or {}),
            proposals=tuple(values.get("proposals") or ()),
            outcomes=tuple(outcomes),
            notes=tuple(values.get("notes") or ()),
            errors=tuple(values.get("errors") or ()),
            summary=values.get("summary"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "cycle_id": self.cycle_id,
            "now": self.now.isoformat(),
            "start": self.start,
            "complete": self.complete,
            "proposer": self.proposer,
            "proposals": list(self.proposals),
            "outcomes": [
                {
                    "key": o.key,
                    "index": o.index,
                    "status": o.status,
                    "stage": o.stage,
                    "proposal_id": o.proposal_id,
                    "kind": o.kind,
                    "source": o.source,
                    "summary": o.summary,
                    "codes": list(o.codes),
                    "reasons": [r.to_json() for r in o.reasons],
                    "verdict": None if o.verdict is None else o.verdict.to_json(),
                    "gate": o.gate,
                    "record": o.record,
                }
                for o in self.outcomes
            ],
            "deployed": [o.proposal_id for o in self.deployed],
            "rejected": [
                {
                    "key": o.key,
                    "proposal_id": o.proposal_id,
                    "stage": o.stage,
                    "codes": list(o.codes),
                }
                for o in self.rejected
            ],
            "notes": list(self.notes),
            "errors": list(self.errors),
            "summary": self.summary,
        }


def _violation(data: dict[str, Any]) -> Violation:
    return Violation(
        code=str(data.get("code", "")),
        field=str(data.get("field", "")),
        message=str(data.get("message", "")),
    )


def _verdict(data: dict[str, Any]) -> Verdict:
    return Verdict(
        accepted=bool(data.get("accepted")),
        violations=tuple(_violation(v) for v in data.get("violations", [])),
        proposal_id=data.get("proposal_id"),
        family=data.get("family"),
        kind=data.get("kind"),
    )


__all__ = [
    "CycleResult",
    "CycleState",
    "ProposalOutcome",
    "ReviewOutput",
    "ReviewState",
    "Stage",
    "Status",
    "merge_outcomes",
]
