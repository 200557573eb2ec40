"""The live-readiness checklist: what must hold before a person moves Sovereign to real money.

Each item is checked from the database and the files, never from memory of a running process:

- ``paper_days``: distinct UTC days with equity recorded by live paper runs (mode ``"paper"``;
  replays of history, mode ``"paper-replay"``, are reported but do not count);
- ``no_halt``: the Supervisor is not HALTED and there is no halt file;
- ``controls``: the last negative-control run (kv ``"controls"``) exists and was clean;
- ``autodeploy``: automatic deployment is not frozen;
- ``audit_chain``: the audit log's hash chain verifies;
- ``constitution_pinned``: the constitution file matches its recorded hash;
- ``reconciliation``: the newest broker reconciliation (``kv_state`` ``reconciliation:<run>``,
  written by :class:`sovereign.app.reconcile.Reconciler`) was clean with no unacknowledged
  issue; before any, "unknown" and not ok.

``ready`` is True only when every item is ok.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, func, select

from sovereign.app.context import App
from sovereign.app.controls import CONTROLS_KEY
from sovereign.app.deploy import autodeploy_frozen
from sovereign.app.killswitch import halt_file
from sovereign.constitution import file_sha256
from sovereign.constitution import load as load_constitution
from sovereign.memory import EquitySnapshotRow, RunRow, session
from sovereign.memory.tables import KVStateRow
from sovereign.trading.supervisor import SupervisorState

MIN_PAPER_DAYS = 20
"""Days of live paper trading required before going live (about one trading month)."""
PAPER_MODES = ("paper",)
REPLAY_MODES = ("paper-replay",)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadinessItem:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadinessReport:
    at: datetime
    items: tuple[ReadinessItem, ...]

    @property
    def ready(self) -> bool:
        return all(i.ok for i in self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "ready": self.ready,
            "items": [i.to_json() for i in self.items],
        }


def readiness(app: App, *, now: datetime, min_paper_days: int = MIN_PAPER_DAYS) -> ReadinessReport:
    """Check every item (none stops at the first failure)."""
    return ReadinessReport(
        at=now,
        items=(
            _paper_days(app, min_paper_days),
            _no_halt(app),
            _controls(app),
            _autodeploy(app),
            _audit(app),
            _pinned(app),
            _reconciliation(app),
        ),
    )


def _reconciliation(app: App) -> ReadinessItem:
    """The newest broker reconciliation (any account): clean, with no unacknowledged issue."""
    query = (
        select(KVStateRow)
        .where(col(KVStateRow.key).startswith("reconciliation:"))
        .order_by(col(KVStateRow.updated_at).desc())
        .limit(1)
    )
    with session(app.engine) as db:
        row = db.exec(query).first()
    if row is None:
        return ReadinessItem(
            name="reconciliation", ok=False, detail="unknown: no broker reconciliation yet"
        )
    value = dict(row.value)
    blocking = value.get("blocking") or []
    ok = bool(value.get("ok")) and not blocking
    detail = (
        f"clean at {row.updated_at:%Y-%m-%d %H:%M} UTC"
        if ok
        else f"{len(blocking)} unacknowledged issue(s) since {row.updated_at:%Y-%m-%d %H:%M} UTC"
        if blocking
        else f"last reconciliation failed at {row.updated_at:%Y-%m-%d %H:%M} UTC"
    )
    return ReadinessItem(name="reconciliation", ok=ok, detail=detail)


def _days(app: App, modes: tuple[str, ...]) -> int:
    """Distinct UTC days with an equity snapshot from runs of ``modes``."""
    snap = EquitySnapshotRow
    query = (
        select(func.count(func.distinct(func.date(snap.timestamp))))
        .join(RunRow, col(RunRow.run_id) == col(snap.run_id))
        .where(col(RunRow.mode).in_(modes))
    )
    with session(app.engine) as db:
        return int(db.exec(query).one() or 0)


def _paper_days(app: App, minimum: int) -> ReadinessItem:
    days, replayed = _days(app, PAPER_MODES), _days(app, REPLAY_MODES)
    detail = f"{days} of {minimum} days of live paper trading recorded"
    if replayed:
        detail += f" ({replayed} replayed days do not count)"
    return ReadinessItem(name="paper_days", ok=days >= minimum, detail=detail)


def _no_halt(app: App) -> ReadinessItem:
    constitution, _ = load_constitution(app.constitution_path)
    sup = app.load_supervisor(constitution)
    if halt_file(app).exists():
        return ReadinessItem(name="no_halt", ok=False, detail=f"halt file {halt_file(app)} exists")
    if sup.state is SupervisorState.HALTED:
        return ReadinessItem(name="no_halt", ok=False, detail=f"HALTED: {sup.reason}")
    return ReadinessItem(name="no_halt", ok=True, detail=f"Supervisor {sup.state.value}")


def _controls(app: App) -> ReadinessItem:
    last = app.supervisor_store.load_state(CONTROLS_KEY)
    if last is None:
        return ReadinessItem(
            name="controls", ok=False, detail="no control run yet: `sovereign gate controls`"
        )
    at = str(last.get("at", "?"))[:16].replace("T", " ")
    bad = list(last.get("negatives_accepted") or [])
    if bad:
        return ReadinessItem(
            name="controls", ok=False, detail=f"{at}: negatives accepted: {', '.join(bad)}"
        )
    if not last.get("ok"):
        rejected = ", ".join(last.get("positives_rejected") or []) or "see the report"
        return ReadinessItem(name="controls", ok=False, detail=f"{at}: not clean ({rejected})")
    return ReadinessItem(name="controls", ok=True, detail=f"{at}: clean")


def _autodeploy(app: App) -> ReadinessItem:
    frozen = autodeploy_frozen(app)
    if frozen is not None:
        return ReadinessItem(name="autodeploy", ok=False, detail=f"frozen: {frozen}")
    return ReadinessItem(name="autodeploy", ok=True, detail="not frozen")


def _audit(app: App) -> ReadinessItem:
    v = app.audit.verify()
    if v.ok:
        return ReadinessItem(name="audit_chain", ok=True, detail=f"intact ({v.rows} entries)")
    return ReadinessItem(
        name="audit_chain", ok=False, detail=f"BROKEN at seq {v.first_bad_seq}: {v.reason}"
    )


def _pinned(app: App) -> ReadinessItem:
    sha = file_sha256(app.constitution_path)
    pinned = app.constitutions.latest()
    if pinned is None:
        return ReadinessItem(name="constitution_pinned", ok=False, detail="not yet recorded")
    if pinned.sha256 != sha:
        return ReadinessItem(name="constitution_pinned", ok=False, detail="CHANGED since recorded")
    return ReadinessItem(name="constitution_pinned", ok=True, detail=f"pinned {sha[:12]}")


__all__ = [
    "MIN_PAPER_DAYS",
    "PAPER_MODES",
    "ReadinessItem",
    "ReadinessReport",
    "readiness",
]
