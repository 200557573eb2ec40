"""The record of self-modification: proposals, verdicts, deployments, rollbacks.

    proposals ─┬─ verdicts      one row per stage an attempt reached (validate, gate, deploy)
               └─ deployments   at most one per proposal (UNIQUE proposal_id)
    rollbacks                   the active rule set put back to an earlier version

Every proposal is recorded, also input that did not parse (kind ``"unparseable"``, id
``"p-raw-…"``, the hash of the raw text). The store answers the questions the validator asks —
when was each family rejected (:meth:`ProposalStore.rejection_times`), how many changes were
deployed lately (:meth:`ProposalStore.deployment_times`) — and the history the operator reads.

Writers take an optional ``db`` (a :func:`~sovereign.memory.db.session`) so a deployment, its
rule set version, its verdict and its audit entry commit together (see ``sovereign.app.deploy``,
the only caller that changes the active rule set). Every time in and out is tz-aware UTC.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from sovereign.errors import IntegrityError
from sovereign.memory._bulk import upsert
from sovereign.memory.db import joined
from sovereign.memory.tables import (
    DeploymentRow,
    KVStateRow,
    ProposalRow,
    RollbackRow,
    VerdictRow,
    table_of,
)
from sovereign.rules.hashing import canonical_json
from sovereign.rules.proposals import (
    AddRule,
    ModifyConstitution,
    ModifyRule,
    Proposal,
    RetireRule,
    TuneParameter,
    parse_proposal,
)

UNPARSEABLE = "unparseable"
"""``kind`` of a recorded input that did not parse as a proposal."""
RAW_ID_PREFIX = "p-raw-"
AUTODEPLOY_KEY = "autodeploy"
"""``kv_state`` key of the auto-deploy freeze flag."""

PROPOSAL_TYPES = (AddRule, ModifyRule, RetireRule, TuneParameter, ModifyConstitution)


class VerdictStage(StrEnum):
    """How far a proposal got: the constitution, the backtest gate, or deployment."""

    PROPOSE = "propose"  # the proposer's own output failed (an unparseable LLM answer, ...)
    VALIDATE = "validate"
    GATE = "gate"
    DEPLOY = "deploy"


class DeploymentStatus(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    ROLLED_BACK = "rolled_back"


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Described:
    """What is recorded about a proposal, or about input that did not parse as one."""

    proposal_id: str
    kind: str
    family: str | None
    source: str
    body: Any
    summary: str
    proposal: Proposal | None  # None for unparseable input


@dataclass(frozen=True, kw_only=True, slots=True)
class VerdictRecord:
    id: int
    proposal_id: str
    cycle_id: str | None
    stage: VerdictStage
    accepted: bool
    codes: tuple[str, ...]
    violations: tuple[Mapping[str, str], ...]
    gate_report: Mapping[str, Any] | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return _as_json(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeploymentRecord:
    """A deployed proposal. ``expected_max_drawdown`` (a fraction) is the gate's backtested
    maximum drawdown of the candidate; the canary compares paper drawdown against it."""

    id: int
    proposal_id: str
    from_version: int | None
    to_version: int
    ruleset_id: str
    deployed_at: datetime
    expected_max_drawdown: float
    baseline_equity: float | None
    status: DeploymentStatus
    rolled_back_at: datetime | None
    rollback_reason: str | None

    def to_json(self) -> dict[str, Any]:
        return _as_json(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class RollbackRecord:
    """The active rule set put back from ``from_version`` to ``to_version`` by ``by`` (a person's
    name, or ``"canary"``); ``deployment_id`` is the deployment that was in force, if any."""

    id: int
    from_version: int | None
    to_version: int
    ruleset_id: str
    at: datetime
    by: str
    reason: str
    deployment_id: int | None

    def to_json(self) -> dict[str, Any]:
        return _as_json(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class ProposalHistory:
    """A proposal with its latest verdict and its deployment (if it was deployed)."""

    at: datetime
    proposal_id: str
    kind: str
    family: str | None
    source: str
    summary: str
    cycle_id: str | None
    verdict: VerdictRecord | None
    deployment: DeploymentRecord | None

    def to_json(self) -> dict[str, Any]:
        return {"event": "proposal", **_as_json(self)}


@dataclass(frozen=True, kw_only=True, slots=True)
class RollbackHistory:
    at: datetime
    rollback: RollbackRecord

    def to_json(self) -> dict[str, Any]:
        return {"event": "rollback", "at": self.at.isoformat(), **self.rollback.to_json()}


HistoryEntry = ProposalHistory | RollbackHistory


def _as_json(record: Any) -> dict[str, Any]:
    """A record's fields as JSON: times as ISO-8601, enums as their values, records nested."""
    return {f.name: _json_value(getattr(record, f.name)) for f in fields(record)}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, VerdictRecord | DeploymentRecord | RollbackRecord):
        return value.to_json()
    if isinstance(value, Mapping):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


# --- describing input -------------------------------------------------------------------------


def describe(proposal_or_raw: object, *, source: str | None = None) -> Described:
    """Identify a proposal, or input that is meant to be one.

    A :data:`~sovereign.rules.proposals.Proposal` (or a dict / JSON text that parses as one) is
    described by its own id, kind, family and source. Anything else is unparseable: its body is
    the input as JSON (JSON text is decoded; other text stays a string), its id ``"p-raw-"`` plus
    the first 16 hex digits of the SHA-256 of the raw text, and its source ``source`` (default
    ``"unknown"``).
    """
    proposal = _as_proposal(proposal_or_raw)
    if proposal is not None:
        return Described(
            proposal_id=proposal.id,
            kind=proposal.kind,
            family=proposal.family,
            source=proposal.source.value,
            body=proposal.model_dump(mode="json"),
            summary=proposal.summary(),
            proposal=proposal,
        )
    text, body = _raw_text_and_body(proposal_or_raw)
    digest = hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()[:16]
    return Described(
        proposal_id=RAW_ID_PREFIX + digest,
        kind=UNPARSEABLE,
        family=None,
        source=source or "unknown",
        body=body,
        summary=f"unparseable input ({len(text)} characters)",
        proposal=None,
    )


def _as_proposal(value: object) -> Proposal | None:
    if isinstance(value, PROPOSAL_TYPES):
        return value
    try:
        return parse_proposal(value)
    except (ValidationError, ValueError, TypeError):
        return None


def _raw_text_and_body(raw: object) -> tuple[str, Any]:
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw).decode("utf-8", errors="replace")
    if isinstance(raw, str):
        try:
            return raw, _finite_json(json.loads(raw))
        except ValueError:
            return raw, raw
    try:
        body = _finite_json(raw)
    except (TypeError, ValueError):
        body = repr(raw)
        return body, body
    return canonical_json(body), body


def _finite_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists); ValueError for NaN/inf."""
    return json.loads(json.dumps(value, allow_nan=False))


# --- the store --------------------------------------------------------------------------------


class ProposalStore:
    """Proposals, verdicts, deployments, rollbacks and the auto-deploy flag."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- proposals and verdicts ---------------------------------------------------------------

    def record_proposal(
        self,
        proposal_or_raw: object,
        cycle_id: str | None,
        at: datetime,
        *,
        source: str | None = None,
        db: Session | None = None,
    ) -> Described:
        """Record a proposal (or unparseable input, see :func:`describe`) unless already stored
        under the same id; returns its description. The first recording's time and cycle stay."""
        _aware(at)
        described = describe(proposal_or_raw, source=source)
        row = {
            "proposal_id": described.proposal_id,
            "kind": described.kind,
            "family": described.family,
            "source": described.source,
            "body": described.body,
            "summary": described.summary,
            "cycle_id": cycle_id,
            "created_at": at,
        }
        with joined(self._engine, db, immediate=True) as tx:
            upsert(tx, table_of(ProposalRow), [row], key=["proposal_id"])
        return described

    def find_verdict(
        self,
        proposal_id: str,
        *,
        stage: VerdictStage | str,
        accepted: bool,
        cycle_id: str | None,
        at: datetime,
        db: Session | None = None,
    ) -> VerdictRecord | None:
        """The verdict already recorded for this attempt: same proposal, stage and outcome, and
        the same cycle (or, outside a cycle, the same time). Makes re-running a step harmless."""
        query = select(VerdictRow).where(
            VerdictRow.proposal_id == proposal_id,
            VerdictRow.stage == VerdictStage(stage).value,
            VerdictRow.accepted == accepted,
        )
        if cycle_id is not None:
            query = query.where(VerdictRow.cycle_id == cycle_id)
        else:
            query = query.where(col(VerdictRow.cycle_id).is_(None), VerdictRow.created_at == at)
        with joined(self._engine, db) as tx:
            row = tx.exec(query.order_by(col(VerdictRow.id)).limit(1)).first()
            return None if row is None else _verdict(row)

    def record_verdict(
        self,
        proposal_id: str,
        *,
        stage: VerdictStage | str,
        accepted: bool,
        violations: Iterable[Mapping[str, Any] | Any] = (),
        gate_report: Mapping[str, Any] | None = None,
        cycle_id: str | None = None,
        at: datetime,
        db: Session | None = None,
    ) -> VerdictRecord:
        """Record how far ``proposal_id`` (already recorded) got. Idempotent per attempt (see
        :meth:`find_verdict`): a repeat returns the stored verdict and writes nothing.

        ``violations`` are mappings (or objects such as the validator's ``Violation``) with
        ``code``, ``field`` and ``message``; ``gate_report`` is the gate's JSON report.
        """
        _aware(at)
        stage = VerdictStage(stage)
        items = _violation_dicts(violations)
        report = None if gate_report is None else _json_object(gate_report, "gate report")
        with joined(self._engine, db, immediate=True) as tx:
            existing = self.find_verdict(
                proposal_id, stage=stage, accepted=accepted, cycle_id=cycle_id, at=at, db=tx
            )
            if existing is not None:
                return existing
            row = VerdictRow(
                proposal_id=proposal_id,
                cycle_id=cycle_id,
                stage=stage.value,
                accepted=accepted,
                codes=[v["code"] for v in items],
                violations=items,
                gate_report=report,
                created_at=at,
            )
            tx.add(row)
            tx.flush()
            return _verdict(row)

    def verdicts(self, proposal_id: str) -> list[VerdictRecord]:
        """Every verdict on ``proposal_id``, oldest first."""
        query = select(VerdictRow).where(VerdictRow.proposal_id == proposal_id)
        with joined(self._engine) as tx:
            rows = tx.exec(query.order_by(col(VerdictRow.created_at), col(VerdictRow.id)))
            return [_verdict(r) for r in rows]

    def rejection_times(
        self,
        since: datetime,
        *,
        stages: Sequence[VerdictStage | str] = (VerdictStage.VALIDATE, VerdictStage.GATE),
    ) -> dict[str, list[datetime]]:
        """family -> times (oldest first) its proposals were rejected at or after ``since``.

        Only rejections at ``stages`` count: by default the validator's and the gate's, which
        judge the idea; a rejection at deploy (auto-deploy frozen) does not. Unparseable input
        has no family and is left out. Feeds the validator's blacklist of repeat offenders.
        """
        wanted = [VerdictStage(s).value for s in stages]
        query = (
            select(ProposalRow.family, VerdictRow.created_at)
            .join(ProposalRow, col(ProposalRow.proposal_id) == col(VerdictRow.proposal_id))
            .where(
                col(VerdictRow.accepted).is_(False),
                col(VerdictRow.stage).in_(wanted),
                col(VerdictRow.created_at) >= since,
                col(ProposalRow.family).is_not(None),
            )
            .order_by(col(VerdictRow.created_at), col(VerdictRow.id))
        )
        out: dict[str, list[datetime]] = {}
        with joined(self._engine) as tx:
            for family, at in tx.exec(query):
                if family is not None:
                    out.setdefault(family, []).append(at)
        return out

    def deployment_times(self, since: datetime) -> list[datetime]:
        """When changes were deployed at or after ``since``, oldest first: every deployment,
        also one rolled back later; rollbacks themselves are not deployments and do not count.
        Feeds the constitution's daily change budget."""
        query = (
            select(DeploymentRow.deployed_at)
            .where(col(DeploymentRow.deployed_at) >= since)
            .order_by(col(DeploymentRow.deployed_at), col(DeploymentRow.id))
        )
        with joined(self._engine) as tx:
            return list(tx.exec(query))

    # --- deployments and rollbacks ------------------------------------------------------------

    def deployment(self, proposal_id: str, *, db: Session | None = None) -> DeploymentRecord | None:
        query = select(DeploymentRow).where(DeploymentRow.proposal_id == proposal_id)
        with joined(self._engine, db) as tx:
            row = tx.exec(query).first()
            return None if row is None else _deployment(row)

    def deployments(self) -> list[DeploymentRecord]:
        """Every deployment, oldest first."""
        with joined(self._engine) as tx:
            rows = tx.exec(select(DeploymentRow).order_by(col(DeploymentRow.id)))
            return [_deployment(r) for r in rows]

    def active_deployments(self, *, db: Session | None = None) -> list[DeploymentRecord]:
        """Deployments in force (normally at most one), newest first."""
        query = (
            select(DeploymentRow)
            .where(DeploymentRow.status == DeploymentStatus.ACTIVE.value)
            .order_by(col(DeploymentRow.deployed_at).desc(), col(DeploymentRow.id).desc())
        )
        with joined(self._engine, db) as tx:
            return [_deployment(r) for r in tx.exec(query)]

    def record_deployment(
        self,
        *,
        proposal_id: str,
        from_version: int | None,
        to_version: int,
        ruleset_id: str,
        at: datetime,
        expected_max_drawdown: float,
        baseline_equity: float | None = None,
        db: Session | None = None,
    ) -> DeploymentRecord:
        """Insert the deployment of ``proposal_id`` as ``to_version``; every deployment active
        until now becomes superseded. A second deployment of one proposal violates the UNIQUE
        constraint: check :meth:`deployment` first (``sovereign.app.deploy`` does)."""
        _aware(at)
        with joined(self._engine, db, immediate=True) as tx:
            query = select(DeploymentRow).where(
                DeploymentRow.status == DeploymentStatus.ACTIVE.value
            )
            for active in list(tx.exec(query)):
                active.status = DeploymentStatus.SUPERSEDED.value
                tx.add(active)
            row = DeploymentRow(
                proposal_id=proposal_id,
                from_version=from_version,
                to_version=to_version,
                ruleset_id=ruleset_id,
                deployed_at=at,
                expected_max_drawdown=expected_max_drawdown,
                baseline_equity=baseline_equity,
                status=DeploymentStatus.ACTIVE.value,
            )
            tx.add(row)
            tx.flush()
            return _deployment(row)

    def record_rollback(
        self,
        *,
        from_version: int | None,
        to_version: int,
        ruleset_id: str,
        at: datetime,
        by: str,
        reason: str,
        db: Session | None = None,
    ) -> RollbackRecord:
        """Record that version ``to_version`` was restored. Deployments newer than it (active or
        superseded) become rolled back with ``at`` and ``reason``; an active deployment older
        than it (a roll forward) becomes superseded. ``deployment_id`` is the deployment that
        was in force (the active one whose version was ``from_version``), if any."""
        _aware(at)
        with joined(self._engine, db, immediate=True) as tx:
            undone = (DeploymentStatus.ACTIVE.value, DeploymentStatus.SUPERSEDED.value)
            in_force: int | None = None
            query = select(DeploymentRow).where(col(DeploymentRow.status).in_(undone))
            for dep in list(tx.exec(query)):
                if dep.status == DeploymentStatus.ACTIVE.value and dep.to_version == from_version:
                    in_force = dep.id
                if dep.to_version > to_version:
                    dep.status = DeploymentStatus.ROLLED_BACK.value
                    dep.rolled_back_at = at
                    dep.rollback_reason = reason
                    tx.add(dep)
                elif dep.status == DeploymentStatus.ACTIVE.value and dep.to_version != to_version:
                    dep.status = DeploymentStatus.SUPERSEDED.value
                    tx.add(dep)
            row = RollbackRow(
                from_version=from_version,
                to_version=to_version,
                ruleset_id=ruleset_id,
                at=at,
                by=by,
                reason=reason,
                deployment_id=in_force,
            )
            tx.add(row)
            tx.flush()
            return _rollback(row)

    def rollbacks(self) -> list[RollbackRecord]:
        """Every rollback, oldest first."""
        with joined(self._engine) as tx:
            return [
                _rollback(r) for r in tx.exec(select(RollbackRow).order_by(col(RollbackRow.id)))
            ]

    # --- history ------------------------------------------------------------------------------

    def history(self, limit: int = 50, *, kind: str | None = None) -> list[HistoryEntry]:
        """The newest ``limit`` events, newest first: proposals (with their latest verdict and
        their deployment) and rollbacks. ``kind`` keeps one proposal kind (``"add_rule"``, ...,
        ``"unparseable"``) or only rollbacks (``"rollback"``)."""
        if limit <= 0:
            return []
        entries: list[HistoryEntry] = []
        with joined(self._engine) as tx:
            if kind != "rollback":
                entries.extend(self._proposal_history(tx, limit, kind))
            if kind in (None, "rollback"):
                query = select(RollbackRow).order_by(
                    col(RollbackRow.at).desc(), col(RollbackRow.id).desc()
                )
                for r in tx.exec(query.limit(limit)):
                    entries.append(RollbackHistory(at=r.at, rollback=_rollback(r)))
        entries.sort(key=lambda e: e.at, reverse=True)  # stable: ties keep query order
        return entries[:limit]

    @staticmethod
    def _proposal_history(tx: Session, limit: int, kind: str | None) -> list[ProposalHistory]:
        query = select(ProposalRow).order_by(
            col(ProposalRow.created_at).desc(), col(ProposalRow.proposal_id).desc()
        )
        if kind is not None:
            query = query.where(ProposalRow.kind == kind)
        proposals = list(tx.exec(query.limit(limit)))
        ids = [p.proposal_id for p in proposals]
        latest: dict[str, VerdictRecord] = {}
        verdicts = select(VerdictRow).where(col(VerdictRow.proposal_id).in_(ids))
        for v in tx.exec(verdicts.order_by(col(VerdictRow.created_at), col(VerdictRow.id))):
            latest[v.proposal_id] = _verdict(v)
        deployed = {
            d.proposal_id: _deployment(d)
            for d in tx.exec(select(DeploymentRow).where(col(DeploymentRow.proposal_id).in_(ids)))
        }
        return [
            ProposalHistory(
                at=p.created_at,
                proposal_id=p.proposal_id,
                kind=p.kind,
                family=p.family,
                source=p.source,
                summary=p.summary,
                cycle_id=p.cycle_id,
                verdict=latest.get(p.proposal_id),
                deployment=deployed.get(p.proposal_id),
            )
            for p in proposals
        ]

    # --- the auto-deploy flag -----------------------------------------------------------------

    def autodeploy_state(self, *, db: Session | None = None) -> dict[str, Any] | None:
        """The persisted auto-deploy flag (``{"frozen": bool, ...}``), or None if never set."""
        with joined(self._engine, db) as tx:
            row = tx.get(KVStateRow, AUTODEPLOY_KEY)
            return None if row is None else dict(row.value)

    def save_autodeploy_state(
        self, value: Mapping[str, Any], at: datetime, *, db: Session | None = None
    ) -> None:
        _aware(at)
        payload = _json_object(value, "auto-deploy state")
        with joined(self._engine, db, immediate=True) as tx:
            upsert(
                tx,
                table_of(KVStateRow),
                [{"key": AUTODEPLOY_KEY, "value": payload, "updated_at": at}],
                key=["key"],
                update=["value", "updated_at"],
            )


# --- row -> record ----------------------------------------------------------------------------


def _row_id(value: int | None) -> int:
    if value is None:  # pragma: no cover - flushed and loaded rows always have their id
        raise IntegrityError("the database assigned no id")
    return value


def _verdict(row: VerdictRow) -> VerdictRecord:
    return VerdictRecord(
        id=_row_id(row.id),
        proposal_id=row.proposal_id,
        cycle_id=row.cycle_id,
        stage=VerdictStage(row.stage),
        accepted=bool(row.accepted),
        codes=tuple(row.codes),
        violations=tuple(dict(v) for v in row.violations),
        gate_report=None if row.gate_report is None else dict(row.gate_report),
        created_at=row.created_at,
    )


def _deployment(row: DeploymentRow) -> DeploymentRecord:
    return DeploymentRecord(
        id=_row_id(row.id),
        proposal_id=row.proposal_id,
        from_version=row.from_version,
        to_version=row.to_version,
        ruleset_id=row.ruleset_id,
        deployed_at=row.deployed_at,
        expected_max_drawdown=row.expected_max_drawdown,
        baseline_equity=row.baseline_equity,
        status=DeploymentStatus(row.status),
        rolled_back_at=row.rolled_back_at,
        rollback_reason=row.rollback_reason,
    )


def _rollback(row: RollbackRow) -> RollbackRecord:
    return RollbackRecord(
        id=_row_id(row.id),
        from_version=row.from_version,
        to_version=row.to_version,
        ruleset_id=row.ruleset_id,
        at=row.at,
        by=row.by,
        reason=row.reason,
        deployment_id=row.deployment_id,
    )


# --- checks -----------------------------------------------------------------------------------


def _violation_dicts(violations: Iterable[Mapping[str, Any] | Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for i, v in enumerate(violations):
        code, field, message = (
            _part(v, "code", None),
            _part(v, "field", ""),
            _part(v, "message", ""),
        )
        if not isinstance(code, str) or not code:
            raise ValueError(f"violation {i} has no code: {v!r}")
        if not isinstance(field, str) or not isinstance(message, str):
            raise ValueError(f"violation {i}: field and message must be text: {v!r}")
        out.append({"code": code, "field": field, "message": message})
    return out


def _part(violation: Mapping[str, Any] | Any, name: str, default: str | None) -> Any:
    if isinstance(violation, Mapping):
        return violation.get(name, default)
    return getattr(violation, name, default)


def _json_object(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a JSON object, got {type(value).__name__}")
    try:
        out: dict[str, Any] = _finite_json(dict(value))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} is not finite JSON: {err}") from err
    return out


def _aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} refused: use timezone-aware UTC")


__all__ = [
    "AUTODEPLOY_KEY",
    "PROPOSAL_TYPES",
    "RAW_ID_PREFIX",
    "UNPARSEABLE",
    "DeploymentRecord",
    "DeploymentStatus",
    "Described",
    "HistoryEntry",
    "ProposalHistory",
    "ProposalStore",
    "RollbackHistory",
    "RollbackRecord",
    "VerdictRecord",
    "VerdictStage",
    "describe",
]
