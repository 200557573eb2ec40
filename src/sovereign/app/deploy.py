"""Deploying, rejecting and rolling back proposals; the canary; the auto-deploy freeze.

This is the only module that changes the active rule set. Each operation is one transaction
(``BEGIN IMMEDIATE`` on SQLite): the rule set version, the active pointer, the deployment or
rollback row, the verdict and the audit entry commit together or not at all, so a crash leaves
either the old state or the new one, never half of each. ``deploy`` and ``reject`` are
idempotent by proposal (a resumed improvement cycle may call them again); ``rollback`` is a
person's or the canary's decision and is recorded each time it changes something.

Before any version exists the active rule set is the empty one. The first deployment then saves
the empty rule set as a version of its own (reason "initial empty rule set"), so every
deployment has a ``from_version`` to go back to and ``rollback`` / the canary can always restore
the state before it.

The auto-deploy freeze is a flag in ``kv_state`` (key ``"autodeploy"``) that the improvement
cycle reads (:func:`autodeploy_frozen`) before deploying; ``deploy`` itself does not look at it,
so a person can still deploy by hand while automatic deployment is frozen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy.exc

from sovereign.app.context import App
from sovereign.errors import DataError, IntegrityError
from sovereign.memory import (
    DeploymentRecord,
    NotFound,
    RollbackRecord,
    VerdictRecord,
    VerdictStage,
    session,
)
from sovereign.rules import RuleSet
from sovereign.rules.proposals import Proposal, apply_proposal
from sovereign.trading.metrics import max_drawdown

CANARY = "canary"
"""``by`` of a rollback the canary made."""

EquityInput = pd.Series | Sequence[tuple[datetime | pd.Timestamp, float]]
"""Equity (money) by tz-aware timestamp: a Series on a DatetimeIndex, or (time, equity) pairs."""


# --- deploy and reject ------------------------------------------------------------------------


def deploy(
    app: App,
    proposal: Proposal,
    gate_report_json: Mapping[str, Any],
    *,
    at: datetime,
    cycle_id: str | None = None,
    baseline_equity: float | None = None,
) -> DeploymentRecord:
    """Put ``proposal`` in force as a new rule set version; returns the deployment.

    In one transaction: the proposal row, the new version ``apply_proposal(proposal, active)``
    made active, the deployment row (the previous active deployment becomes superseded), an
    accepted verdict at stage ``"deploy"`` carrying the gate report, and a
    ``"proposal.deployed"`` audit entry. Idempotent by proposal id: when ``proposal`` is already
    deployed the existing record is returned and nothing is written.

    ``gate_report_json`` is the gate's ``GateReport.to_json()``: it must not say
    ``accepted: false``, must name this proposal if it names one, and must give
    ``expected_max_drawdown`` (a fraction in [0, 1], what the canary holds the deployment to).
    ``baseline_equity`` is the paper equity at deployment, if known (the canary's first peak).
    Raises ValueError for such a report, for a proposal that cannot be applied (a rule that is
    not in the active set, a constitution change) or a naive ``at``; nothing is written then.
    """
    _aware(at)
    report = dict(gate_report_json)
    expected = _check_gate_report(report, proposal.id)
    if baseline_equity is not None and not (math.isfinite(baseline_equity) and baseline_equity > 0):
        raise ValueError(f"baseline equity must be a positive finite amount, got {baseline_equity}")
    try:
        return _deploy(app, proposal, report, expected, at, cycle_id, baseline_equity)
    except sqlalchemy.exc.IntegrityError:
        # Another writer deployed the same proposal between our check and our insert (only
        # possible on PostgreSQL; SQLite's BEGIN IMMEDIATE serialises): theirs stands.
        existing = app.proposals.deployment(proposal.id)
        if existing is None:
            raise
        return existing


def _deploy(
    app: App,
    proposal: Proposal,
    report: dict[str, Any],
    expected: float,
    at: datetime,
    cycle_id: str | None,
    baseline_equity: float | None,
) -> DeploymentRecord:
    with session(app.engine, immediate=True) as tx:
        existing = app.proposals.deployment(proposal.id, db=tx)
        if existing is not None:
            return existing
        active = app.rules.active(db=tx)
        current = RuleSet() if active is None else active[1]
        candidate = apply_proposal(proposal, current)  # ValueError: nothing written yet
        if active is None:
            from_version = app.rules.save_version(
                current, reason="initial empty rule set", source="system", at=at, db=tx
            )
        else:
            from_version = active[0]
        app.proposals.record_proposal(proposal, cycle_id, at, db=tx)
        to_version = app.rules.save_version(
            candidate,
            reason=f"deploy {proposal.id}: {proposal.summary()}",
            source=proposal.source.value,
            at=at,
            db=tx,
        )
        record = app.proposals.record_deployment(
            proposal_id=proposal.id,
            from_version=from_version,
            to_version=to_version,
            ruleset_id=candidate.id,
            at=at,
            expected_max_drawdown=expected,
            baseline_equity=baseline_equity,
            db=tx,
        )
        app.proposals.record_verdict(
            proposal.id,
            stage=VerdictStage.DEPLOY,
            accepted=True,
            gate_report=report,
            cycle_id=cycle_id,
            at=at,
            db=tx,
        )
        app.audit.append(
            "proposal.deployed",
            {
                "proposal_id": proposal.id,
                "kind": proposal.kind,
                "family": proposal.family,
                "summary": proposal.summary(),
                "source": proposal.source.value,
                "cycle_id": cycle_id,
                "deployment_id": record.id,
                "from_version": from_version,
                "to_version": to_version,
                "ruleset_id": candidate.id,
                "expected_max_drawdown": expected,
            },
            at,
            db=tx,
        )
    return record


def reject(
    app: App,
    proposal_or_raw: object,
    *,
    stage: VerdictStage | str,
    violations: Iterable[Mapping[str, Any] | Any],
    gate_report_json: Mapping[str, Any] | None = None,
    at: datetime,
    cycle_id: str | None = None,
    source: str | None = None,
) -> VerdictRecord:
    """Record a rejection: the proposal (or the unparseable input, with ``source``), a verdict
    that is not accepted, and a ``"proposal.rejected"`` audit entry, in one transaction.

    ``violations`` give the reasons (``{code, field, message}`` mappings or the validator's
    ``Violation`` objects; at least one). Idempotent: the same proposal rejected at the same
    stage in the same cycle (or, outside a cycle, at the same time) returns the stored verdict
    and writes nothing.
    """
    _aware(at)
    stage = VerdictStage(stage)
    reasons = list(violations)
    if not reasons:
        raise ValueError("a rejection needs at least one violation saying why")
    with session(app.engine, immediate=True) as tx:
        described = app.proposals.record_proposal(
            proposal_or_raw, cycle_id, at, source=source, db=tx
        )
        found = app.proposals.find_verdict(
            described.proposal_id, stage=stage, accepted=False, cycle_id=cycle_id, at=at, db=tx
        )
        if found is not None:
            return found
        verdict = app.proposals.record_verdict(
            described.proposal_id,
            stage=stage,
            accepted=False,
            violations=reasons,
            gate_report=gate_report_json,
            cycle_id=cycle_id,
            at=at,
            db=tx,
        )
        app.audit.append(
            "proposal.rejected",
            {
                "proposal_id": described.proposal_id,
                "kind": described.kind,
                "family": described.family,
                "summary": described.summary,
                "source": described.source,
                "cycle_id": cycle_id,
                "stage": stage.value,
                "codes": list(verdict.codes),
            },
            at,
            db=tx,
        )
    return verdict


# --- rollback ---------------------------------------------------------------------------------


def rollback(app: App, version: int, *, by: str, reason: str, at: datetime) -> RollbackRecord:
    """Make rule set version ``version`` active again, exactly: its content is rebuilt and must
    hash to the id recorded when it was saved (else :class:`~sovereign.errors.IntegrityError`).

    Deployments newer than ``version`` become rolled back; a rollbacks row and a
    ``"rules.rolled_back"`` audit entry are written in the same transaction. ``by`` is the
    person's name, or ``"canary"``.

    A rollback is NOT counted against the constitution's daily change budget
    (``max_rule_changes_per_day`` counts deployments, see
    :meth:`~sovereign.memory.ProposalStore.deployment_times`): it restores a state that was
    already validated and in force, and the budget must never stand between an operator and
    the way back.

    Raises :class:`~sovereign.memory.NotFound` (listing the existing versions) for an unknown
    version, ValueError for the version already active or an empty ``by``.
    """
    _aware(at)
    if not by.strip():
        raise ValueError("a rollback needs the name of the person deciding it (or 'canary')")
    with session(app.engine, immediate=True) as tx:
        known = [row.version for row in app.rules.versions(db=tx)]
        if version not in known:
            listed = ", ".join(str(v) for v in known) if known else "none yet"
            raise NotFound(f"no rule set version {version}; existing versions: {listed}")
        current = app.rules.active_version(db=tx)
        if current == version:
            raise ValueError(f"rule set version {version} is already active")
        restored = app.rules.activate(version, at=at, db=tx)
        record = app.proposals.record_rollback(
            from_version=current,
            to_version=version,
            ruleset_id=restored.id,
            at=at,
            by=by,
            reason=reason,
            db=tx,
        )
        app.audit.append(
            "rules.rolled_back",
            {
                "rollback_id": record.id,
                "from_version": current,
                "to_version": version,
                "ruleset_id": restored.id,
                "by": by,
                "reason": reason,
                "deployment_id": record.deployment_id,
            },
            at,
            db=tx,
        )
    return record


# --- the canary -------------------------------------------------------------------------------


def canary_breached(
    equity_since: EquityInput | Sequence[float] | np.ndarray,
    expected_max_drawdown: float,
    margin: float,
    *,
    start_equity: float | None = None,
) -> tuple[bool, float]:
    """Has paper trading since a deployment fallen further than its backtest said it would?

    ``equity_since``: equity (money) since the deployment, oldest first — a Series, (time,
    equity) pairs, or plain values. ``start_equity``, when known, is the equity at deployment
    and opens the curve. Returns ``(drawdown > expected_max_drawdown + margin, drawdown)``,
    with the drawdown the largest peak-to-trough fall as a positive fraction (0.0 for no
    data). Pure. Raises :class:`~sovereign.errors.DataError` for a non-finite or non-positive
    equity value and ValueError for a negative or non-finite threshold.
    """
    for name, value in (("expected_max_drawdown", expected_max_drawdown), ("margin", margin)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite fraction >= 0, got {value}")
    values = [v for _, v in _points(equity_since)]
    if start_equity is not None:
        values.insert(0, start_equity)
    curve = np.asarray(values, dtype=float)
    if curve.size and not (np.all(np.isfinite(curve)) and np.all(curve > 0)):
        bad = next(v for v in values if not (math.isfinite(v) and v > 0))
        raise DataError(f"equity must be positive and finite, got {bad}", source="canary")
    drawdown = max_drawdown(curve)
    return drawdown > expected_max_drawdown + margin, drawdown


def canary_check(
    app: App, *, equity: EquityInput, margin: float, at: datetime
) -> RollbackRecord | None:
    """Watch the newest active deployment; roll it back if it broke its promise.

    ``equity``: paper equity by tz-aware time (points before the deployment are ignored).
    When the drawdown since the deployment (starting from its ``baseline_equity`` if recorded)
    exceeds the gate's ``expected_max_drawdown`` plus ``margin`` (both fractions), the
    deployment is rolled back to its ``from_version`` with ``by="canary"`` and a reason that
    gives both figures; returns that rollback, or None when there is nothing to do.
    """
    _aware(at)
    active = app.proposals.active_deployments()
    if not active:
        return None
    dep = active[0]
    since = [(t, v) for t, v in _points(equity) if t is not None and t >= dep.deployed_at]
    breached, drawdown = canary_breached(
        since, dep.expected_max_drawdown, margin, start_equity=dep.baseline_equity
    )
    if not breached:
        return None
    if dep.from_version is None:
        raise IntegrityError(f"deployment {dep.id} records no version to roll back to")
    reason = (
        f"canary: paper drawdown {drawdown:.2%} since deployment {dep.id} ({dep.proposal_id}) "
        f"exceeds the expected maximum drawdown {dep.expected_max_drawdown:.2%} "
        f"+ margin {margin:.2%}"
    )
    return rollback(app, dep.from_version, by=CANARY, reason=reason, at=at)


def _points(
    equity: EquityInput | Sequence[float] | np.ndarray,
) -> list[tuple[pd.Timestamp | None, float]]:
    """(tz-aware time, value) pairs; plain values have no time (None)."""
    if isinstance(equity, pd.Series):
        index = equity.index
        if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
            raise ValueError("an equity Series needs a tz-aware DatetimeIndex")
        return [(pd.Timestamp(t), float(v)) for t, v in zip(index, equity.to_numpy(), strict=True)]
    out: list[tuple[pd.Timestamp | None, float]] = []
    for item in equity:
        if isinstance(item, tuple | list):
            stamp = pd.Timestamp(item[0])
            if stamp.tzinfo is None:
                raise ValueError(f"naive equity timestamp {stamp.isoformat()} refused: use UTC")
            out.append((stamp, float(item[1])))
        else:
            out.append((None, float(item)))
    return out


# --- the auto-deploy freeze -------------------------------------------------------------------


def freeze_autodeploy(app: App, reason: str, at: datetime, *, by: str = "system") -> bool:
    """Stop the improvement cycle from deploying until a person clears the freeze. Persisted
    (it survives restarts) and audited. Returns False, writing nothing, if already frozen (the
    first reason stands)."""
    _aware(at)
    if not reason.strip():
        raise ValueError("a freeze needs a reason")
    with session(app.engine, immediate=True) as tx:
        state = app.proposals.autodeploy_state(db=tx)
        if state is not None and state.get("frozen"):
            return False
        app.proposals.save_autodeploy_state(
            {"frozen": True, "reason": reason, "by": by, "since": at.isoformat()}, at, db=tx
        )
        app.audit.append("autodeploy.frozen", {"reason": reason, "by": by}, at, db=tx)
    return True


def clear_autodeploy_freeze(app: App, by: str, at: datetime) -> bool:
    """A person lifts the freeze (their name is required). Audited. Returns False, writing
    nothing, if auto-deploy was not frozen."""
    _aware(at)
    if not by.strip():
        raise ValueError("clearing the auto-deploy freeze needs the name of the person doing it")
    with session(app.engine, immediate=True) as tx:
        state = app.proposals.autodeploy_state(db=tx)
        if state is None or not state.get("frozen"):
            return False
        previous = state.get("reason")
        app.proposals.save_autodeploy_state(
            {"frozen": False, "cleared_by": by, "cleared_at": at.isoformat(), "was": previous},
            at,
            db=tx,
        )
        app.audit.append("autodeploy.cleared", {"by": by, "reason": previous}, at, db=tx)
    return True


def autodeploy_frozen(app: App) -> str | None:
    """Why automatic deployment is frozen, or None when it is not."""
    state = app.proposals.autodeploy_state()
    if state is None or not state.get("frozen"):
        return None
    return str(state.get("reason") or "frozen")


# --- checks -----------------------------------------------------------------------------------


def _check_gate_report(report: dict[str, Any], proposal_id: str) -> float:
    if report.get("accepted") is False:
        raise ValueError(f"the gate rejected {proposal_id}; it cannot be deployed")
    named = report.get("proposal_id")
    if named is not None and named != proposal_id:
        raise ValueError(f"the gate report is for {named}, not for {proposal_id}")
    value = report.get("expected_max_drawdown")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= 1
    ):
        raise ValueError(
            "the gate report must give expected_max_drawdown as a fraction in [0, 1], "
            f"got {value!r}"
        )
    return float(value)


def _aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} refused: use timezone-aware UTC")


__all__ = [
    "CANARY",
    "DeploymentRecord",
    "EquityInput",
    "RollbackRecord",
    "autodeploy_frozen",
    "canary_breached",
    "canary_check",
    "clear_autodeploy_freeze",
    "deploy",
    "freeze_autodeploy",
    "reject",
    "rollback",
]
