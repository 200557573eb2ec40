"""What the improvement cycle needs from the rest of the system, injected at run time.

Everything with side effects or heavy numerics sits behind :class:`CycleServices`; the graph only
moves JSON between them. The services object, the chat model and the tools travel in LangGraph's
run-time context (:class:`CycleContext`, ``context_schema``), never in the checkpointed state.

Two promises the graph relies on (a resumed node re-runs from its start):

- ``deploy`` is idempotent by proposal id: deploying the same proposal again returns the first
  deployment's record and changes nothing.
- ``reject`` is idempotent too: recording the same rejection again (same cycle, stage, proposal or
  raw input) does not add a second record.

The reason codes below are the ones the graph itself produces; the validator and the gate bring
their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

LLM_UNAVAILABLE = "LLM_UNAVAILABLE"
"""The LLM endpoint failed (connection refused, 5xx, timeout, ...); the cycle went on."""
LLM_UNPARSEABLE = "LLM_UNPARSEABLE"
"""The LLM's answer (or one proposal in it) did not parse as a proposal."""
PROPOSAL_DUPLICATE = "PROPOSAL_DUPLICATE"
"""The same proposal (same id) appeared earlier in the same cycle."""
VERDICT_REJECTED = "VERDICT_REJECTED"
"""The validator did not accept the proposal but named no violation (fail closed)."""
GATE_REJECTED = "GATE_REJECTED"
"""The backtest gate refused the proposal (used when the gate gives reasons without codes)."""
AUTODEPLOY_FROZEN = "AUTODEPLOY_FROZEN"
"""Automatic deployment is frozen: an accepted proposal is recorded, not deployed."""
DEPLOY_REFUSED = "DEPLOY_REFUSED"
"""``deploy`` declined (answered ``{"deployed": false}``) without giving a code."""
NOTIFY_FAILED = "NOTIFY_FAILED"
"""``notify`` raised; logged and kept in the cycle's errors, never fatal."""

MAX_PROPOSALS_PER_BATCH = 10
"""Upper bound on proposals one proposer (LLM or heuristic) may hand to a cycle."""
DEFAULT_MAX_TOOL_ROUNDS = 3
"""Read-only tool rounds the LLM proposer may take before it must answer."""


class CycleServices(Protocol):
    """The improvement cycle's side of the system. Every value in and out is JSON-compatible.

    A method that raises aborts the run; the checkpoint keeps every finished step and running the
    same ``cycle_id`` again resumes it. Only ``notify`` must never raise.
    """

    def collect(self, cycle_id: str, now: datetime) -> dict[str, Any]:
        """Snapshot of what the cycle looks at: active rule set id and version, trade count,
        window, equity, ... (``now`` is timezone-aware UTC)."""
        ...

    def analyse(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        """Weakness report for ``snapshot``; includes a short ``"summary"`` text."""
        ...

    def heuristic_proposals(self, analysis: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        """At most ``limit`` proposals from the deterministic offline proposer, as JSON dicts
        (``Proposal.to_json()`` or ``model_dump(mode="json")``)."""
        ...

    def context_for_llm(self, analysis: dict[str, Any]) -> dict[str, Any]:
        """What the LLM is shown besides the weakness report: active rules, constitution
        summary, recent rejections, ... (all of it treated as untrusted data)."""
        ...

    def validate(
        self, proposal_json: dict[str, Any], index_in_cycle: int, cycle_id: str
    ) -> dict[str, Any]:
        """The constitution's verdict (``Verdict.to_json()``) on one proposal. The JSON may be
        raw (not a valid proposal): the validator rejects it with its own code. ``index_in_cycle``
        (0-based) lets it enforce ``max_proposals_per_cycle``."""
        ...

    def gate(self, proposal_json: dict[str, Any], cycle_id: str) -> dict[str, Any]:
        """The backtest gate's report (``GateReport.to_json()``) with ``"accepted"`` and
        ``"reasons"``."""
        ...

    def deploy(
        self, proposal_json: dict[str, Any], gate_report: dict[str, Any], cycle_id: str
    ) -> dict[str, Any]:
        """Deploy an accepted proposal as a new rule set version; returns the deployment record.

        Idempotent by proposal id. May decline with ``{"deployed": false, "reasons": [...]}``
        (each reason a string or ``{"code", "message"}``); the graph then records a rejection at
        stage ``"deploy"``.
        """
        ...

    def reject(
        self,
        proposal_json_or_raw: Any,
        stage: str,
        reasons: list[dict[str, Any]],
        gate_report: dict[str, Any] | None,
        cycle_id: str,
    ) -> dict[str, Any]:
        """Record a rejection at ``stage`` (``"propose"``, ``"validate"``, ``"gate"`` or
        ``"deploy"``); ``reasons`` are ``{"code", "field", "message"}``. Idempotent."""
        ...

    def notify(self, summary: dict[str, Any]) -> None:
        """Announce the cycle's summary. Never raises: failures are logged."""
        ...

    def autodeploy_frozen(self) -> str | None:
        """Why automatic deployment is frozen, or None when it is not."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class CycleContext:
    """The cycle's run-time context (LangGraph ``context_schema``): never checkpointed.

    ``llm`` None means the heuristic proposer runs; ``tools`` are the read-only tools the LLM may
    call, at most ``max_tool_rounds`` rounds.
    """

    services: CycleServices
    llm: BaseChatModel | None = None
    tools: Sequence[BaseTool] = field(default_factory=tuple)
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS


__all__ = [
    "AUTODEPLOY_FROZEN",
    "DEFAULT_MAX_TOOL_ROUNDS",
    "DEPLOY_REFUSED",
    "GATE_REJECTED",
    "LLM_UNAVAILABLE",
    "LLM_UNPARSEABLE",
    "MAX_PROPOSALS_PER_BATCH",
    "NOTIFY_FAILED",
    "PROPOSAL_DUPLICATE",
    "VERDICT_REJECTED",
    "CycleContext",
    "CycleServices",
]
