"""The control service: the operations the CLI (and later the bots) call. Each returns plain,
JSON-ready data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sovereign.app.campaign import halt_file
from sovereign.app.context import App
from sovereign.app.controls import CONTROLS_KEY
from sovereign.app.deploy import autodeploy_frozen, clear_autodeploy_freeze
from sovereign.app.deploy import rollback as do_rollback
from sovereign.constitution import file_sha256
from sovereign.constitution import load as load_constitution
from sovereign.errors import ConfigError
from sovereign.memory import NotFound, ProposalHistory
from sovereign.rules.rule import RuleSet


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
            "summary": _brief_summary(run.summary),
        },
        "ruleset_version": None if active is None else active[0],
        "active_rules": 0 if active is None else len(active[1]),
        "last_proposal": _last_proposal(app),
        "autodeploy_frozen": autodeploy_frozen(app),
        "controls": app.supervisor_store.load_state(CONTROLS_KEY),
        "constitution_sha256": sha,
        "constitution_pinned": pinned is not None and pinned.sha256 == sha,
        "database": app.settings.db_url,
    }


def _brief_summary(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's summary with its improvement log reduced to counts (`history` has the rest)."""
    if not summary or "improvement" not in summary:
        return summary
    imp = summary["improvement"]
    counts = {
        "cycles": imp.get("cycles", 0),
        "proposals": imp.get("proposals", 0),
        "deployed": len(imp.get("deployed", [])),
        "rejected": len(imp.get("rejected", [])),
        "rollbacks": len(imp.get("rollbacks", [])),
    }
    return {**summary, "improvement": counts}


def _last_proposal(app: App) -> dict[str, Any] | None:
    entries = app.proposals.history(1, kind=None)
    proposals = [e for e in entries if isinstance(e, ProposalHistory)]
    if not proposals:
        return None
    e = proposals[0]
    return {
        "at": e.at.isoformat(),
        "summary": e.summary,
        "outcome": "deployed"
        if e.deployment is not None
        else ("rejected" if e.verdict is not None and not e.verdict.accepted else "pending"),
        "codes": [] if e.verdict is None else list(e.verdict.codes),
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


def rules(app: App) -> dict[str, Any]:
    """The active rule set (rules and tuned parameters) and every version's record."""
    active = app.rules.active()
    version, ruleset = (None, RuleSet()) if active is None else active
    return {
        "version": version,
        "ruleset_id": ruleset.id,
        "rules": [
            {
                "id": r.id,
                "name": r.name,
                "strategy": r.strategy,
                "family": r.family(),
                "when": r.when.model_dump(mode="json"),
                "then": r.then.model_dump(mode="json"),
            }
            for r in ruleset.rules
        ],
        "params": ruleset.params,
        "versions": [
            {
                "version": v.version,
                "ruleset_id": v.ruleset_id,
                "rules": len(v.rule_ids),
                "parent": v.parent_version,
                "reason": v.reason,
                "source": v.source,
                "created_at": v.created_at.isoformat(),
                "active": v.version == version,
            }
            for v in app.rules.versions()
        ],
    }


def history(app: App, *, limit: int = 50, kind: str | None = None) -> dict[str, Any]:
    """Proposals with their verdicts and reasons, deployments and rollbacks, newest first."""
    if limit <= 0:
        raise ConfigError(f"--limit must be positive, got {limit}")
    entries = app.proposals.history(limit, kind=kind)
    return {"entries": [e.to_json() for e in entries], "frozen": autodeploy_frozen(app)}


def rollback(
    app: App, version: int, *, by: str, reason: str, now: datetime | None = None
) -> dict[str, Any]:
    """Restore rule set version ``version`` exactly (allowed past the daily change budget: it
    returns to a state that was already validated)."""
    if not by.strip():
        raise ConfigError("a rollback needs the name of the person deciding it (--by NAME)")
    try:
        record = do_rollback(app, version, by=by, reason=reason, at=now or datetime.now(UTC))
    except NotFound as e:
        raise ConfigError(str(e)) from e
    return record.to_json()


def unfreeze(app: App, *, by: str, now: datetime | None = None) -> dict[str, Any]:
    """A person clears the auto-deploy freeze that a failed negative control set."""
    if not by.strip():
        raise ConfigError("clearing the freeze needs the name of the person doing it (--by NAME)")
    cleared = clear_autodeploy_freeze(app, by, now or datetime.now(UTC))
    return {"cleared": cleared, "frozen": autodeploy_frozen(app)}
