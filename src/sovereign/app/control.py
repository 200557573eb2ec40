"""The control service: the operations the CLI (and later the bots) call. Each returns plain,
JSON-ready data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sovereign.app.campaign import halt_file
from sovereign.app.context import App
from sovereign.constitution import file_sha256
from sovereign.constitution import load as load_constitution
from sovereign.errors import ConfigError


def status(app: App) -> dict[str, Any]:
    constitution, _ = load_constitution(app.constitution_path)
    sup = app.load_supervisor(constitution)
    run = app.memory.latest_run()
    active = app.rules.active()
    pinned = app.constitutions.latest()
    sha = file_sha256(app.constitution_path)
    return {
        "supervisor_state": sup.state.value,
        "supervisor_reason": sup.reason,
        "halt_file": halt_file(app).exists(),
        "last_run": None
        if run is None
        else {
            "run_id": run.run_id,
            "mode": run.mode,
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "summary": run.summary,
        },
        "ruleset_version": None if active is None else active[0],
        "active_rules": 0 if active is None else len(active[1]),
        "constitution_sha256": sha,
        "constitution_pinned": pinned is not None and pinned.sha256 == sha,
        "database": app.settings.db_url,
    }


def constitution(app: App) -> dict[str, Any]:
    c, sha = load_constitution(app.constitution_path)
    pinned = app.constitutions.latest()
    pin = (
        "not yet recorded"
        if pinned is None
        else ("pinned" if pinned.sha256 == sha else "CHANGED since recorded")
    )
    return {
        "limits": c.model_dump(mode="json"),
        "sha256": sha,
        "pin": pin,
        "path": str(app.constitution_path),
    }


def halt(app: App, *, by: str, reason: str, now: datetime | None = None) -> dict[str, Any]:
    at = now or datetime.now(UTC)
    constitution, _ = load_constitution(app.constitution_path)
    sup = app.load_supervisor(constitution)
    t = sup.halt(at, f"{reason} (by {by})")
    app.save_supervisor(sup, at)
    if t is not None:
        app.supervisor_store.record_transition(
            at=at, scope="global", from_state=t.from_state, to_state=t.to_state, reason=t.reason
        )
        app.audit.append("supervisor.halt", {"by": by, "reason": reason}, at)
    return {"state": sup.state.value, "reason": sup.reason}


def resume(app: App, *, by: str, now: datetime | None = None) -> dict[str, Any]:
    if not by.strip():
        raise ConfigError("resume needs the name of the person deciding (--by NAME)")
    at = now or datetime.now(UTC)
    constitution, _ = load_constitution(app.constitution_path)
    sup = app.load_supervisor(constitution)
    if halt_file(app).exists():
        return {
            "state": sup.state.value,
            "message": f"the halt file {halt_file(app)} still exists; remove it first",
        }
    t = sup.resume(at, by)
    app.save_supervisor(sup, at)
    if t is None:
        return {"state": sup.state.value, "message": "nothing to resume"}
    app.supervisor_store.record_transition(
        at=at, scope="global", from_state=t.from_state, to_state=t.to_state, reason=t.reason
    )
    app.audit.append("supervisor.resume", {"by": by, "from": t.from_state}, at)
    return {"state": sup.state.value, "message": t.reason}
