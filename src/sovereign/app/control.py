"""The control service: the one set of operations the CLI and every bot call.

Each operation returns a frozen value with ``to_json()`` (what ``--json`` prints); the CLI turns
it into a table and the Telegram bot into a phone-sized message (``sovereign.bots.format``).
Operations that change something (halt, resume, rollback, unfreeze) take ``by``, the person or
channel deciding (``"alice"``, ``"telegram:42"``), and record it in the audit log.

The account figures in :func:`status` come from the newest run's equity and position snapshots,
so they are as fresh as the last bar that run recorded (``Account.as_of``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlmodel import col, func, select

from sovereign.app.context import App
from sovereign.app.controls import CONTROLS_KEY
from sovereign.app.deploy import autodeploy_frozen, clear_autodeploy_freeze
from sovereign.app.deploy import rollback as do_rollback
from sovereign.app.killswitch import SYSTEM_NAMES, halt_file
from sovereign.app.readiness import ReadinessReport
from sovereign.app.readiness import readiness as check_readiness
from sovereign.app.reconcile import acknowledge as acknowledge_issues
from sovereign.constitution import load as load_constitution
from sovereign.errors import ConfigError, HaltTrading
from sovereign.memory import (
    EquitySnapshotRow,
    HistoryEntry,
    NotFound,
    PositionSnapshotRow,
    ProposalHistory,
    RollbackRecord,
    RunRow,
    session,
)
from sovereign.rules.rule import RuleSet

# --- status -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Position:
    """A position as last snapshotted (signed ``quantity``: > 0 long, < 0 short)."""

    symbol: str
    strategy: str
    quantity: float
    avg_price: float
    market_price: float | None
    unrealized_pnl: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "strategy": self.strategy,
            "quantity": self.quantity,
            "avg_price": self.avg_price,
            "market_price": self.market_price,
            "unrealized_pnl": self.unrealized_pnl,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Account:
    """The newest run's account at ``as_of``. Money in the account currency; ``drawdown`` and
    ``gross_exposure`` are fractions of equity. ``day_pnl`` is equity now minus equity at the
    last snapshot of the previous UTC day (the run's first snapshot on its first day).
    ``positions`` is None when the run recorded no position snapshots."""

    run_id: str
    as_of: datetime
    equity: float
    cash: float
    day_pnl: float
    drawdown: float
    gross_exposure: float
    positions: tuple[Position, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "equity": self.equity,
            "cash": self.cash,
            "day_pnl": self.day_pnl,
            "drawdown": self.drawdown,
            "gross_exposure": self.gross_exposure,
            "positions": None if self.positions is None else [p.to_json() for p in self.positions],
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class LastRun:
    run_id: str
    mode: str
    started_at: datetime
    finished_at: datetime | None
    summary: Mapping[str, Any] | None  # improvement log reduced to counts

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "started_at": self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "summary": None if self.summary is None else dict(self.summary),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class LastProposal:
    at: datetime
    proposal_id: str
    summary: str
    cycle_id: str | None
    outcome: str  # "deployed" | "rejected" | "pending"
    codes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "proposal_id": self.proposal_id,
            "summary": self.summary,
            "cycle_id": self.cycle_id,
            "outcome": self.outcome,
            "codes": list(self.codes),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Health:
    """What is known about one dependency: ``ok`` is None when nothing is known."""

    name: str
    ok: bool | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusReport:
    supervisor_state: str  # NORMAL | REDUCING | HALTED
    supervisor_reason: str
    halt_file: bool
    last_run: LastRun | None
    account: Account | None
    ruleset_version: int | None
    active_rules: int
    last_proposal: LastProposal | None
    autodeploy_frozen: str | None
    controls: Mapping[str, Any] | None
    constitution_sha256: str
    constitution_pinned: bool
    broker: Health
    data: Health
    database: str

    def to_json(self) -> dict[str, Any]:
        return {
            "supervisor_state": self.supervisor_state,
            "supervisor_reason": self.supervisor_reason,
            "halt_file": self.halt_file,
            "last_run": None if self.last_run is None else self.last_run.to_json(),
            "account": None if self.account is None else self.account.to_json(),
            "ruleset_version": self.ruleset_version,
            "active_rules": self.active_rules,
            "last_proposal": None if self.last_proposal is None else self.last_proposal.to_json(),
            "autodeploy_frozen": self.autodeploy_frozen,
            "controls": None if self.controls is None else dict(self.controls),
            "constitution_sha256": self.constitution_sha256,
            "constitution_pinned": self.constitution_pinned,
            "broker": self.broker.to_json(),
            "data": self.data.to_json(),
            "database": self.database,
        }


def status(app: App) -> StatusReport:
    """Supervisor state, the account, active rules, the last proposal, freeze and pin."""
    constitution, sha = load_constitution(app.constitution_path)
    sup = app.load_supervisor(constitution)
    run = app.memory.latest_run()
    active = app.rules.active()
    pinned = app.constitutions.latest()
    account = None if run is None else _account(app, run.run_id)
    return StatusReport(
        supervisor_state=sup.state.value,
        supervisor_reason=sup.reason,
        halt_file=halt_file(app).exists(),
        last_run=None
        if run is None
        else LastRun(
            run_id=run.run_id,
            mode=run.mode,
            started_at=run.started_at,
            finished_at=run.finished_at,
            summary=_brief_summary(run.summary),
        ),
        account=account,
        ruleset_version=None if active is None else active[0],
        active_rules=0 if active is None else len(active[1]),
        last_proposal=_last_proposal(app),
        autodeploy_frozen=autodeploy_frozen(app),
        controls=app.supervisor_store.load_state(CONTROLS_KEY),
        constitution_sha256=sha,
        constitution_pinned=pinned is not None and pinned.sha256 == sha,
        broker=_broker_health(run),
        data=_data_health(run, account),
        database=app.settings.db_url,
    )


def _account(app: App, run_id: str) -> Account | None:
    """The run's newest equity snapshot, its day P&L and the positions at its newest snapshot."""
    snap = EquitySnapshotRow
    with session(app.engine) as db:
        latest = db.exec(
            select(snap)
            .where(snap.run_id == run_id)
            .order_by(col(snap.timestamp).desc(), col(snap.id).desc())
            .limit(1)
        ).first()
        if latest is None:
            return None
        day_start = datetime.combine(latest.timestamp.date(), time(0), tzinfo=UTC)
        before = db.exec(
            select(snap)
            .where(snap.run_id == run_id, col(snap.timestamp) < day_start)
            .order_by(col(snap.timestamp).desc(), col(snap.id).desc())
            .limit(1)
        ).first()
        if before is None:
            before = db.exec(
                select(snap)
                .where(snap.run_id == run_id)
                .order_by(col(snap.timestamp), col(snap.id))
                .limit(1)
            ).first()
        pos = PositionSnapshotRow
        last_pos = db.exec(select(func.max(pos.timestamp)).where(pos.run_id == run_id)).first()
        positions: tuple[Position, ...] | None = None
        if last_pos is not None:
            rows = db.exec(
                select(pos)
                .where(pos.run_id == run_id, pos.timestamp == last_pos, pos.quantity != 0)
                .order_by(col(pos.symbol), col(pos.strategy))
            ).all()
            positions = tuple(
                Position(
                    symbol=r.symbol,
                    strategy=r.strategy,
                    quantity=r.quantity,
                    avg_price=r.avg_price,
                    market_price=r.market_price,
                    unrealized_pnl=r.unrealized_pnl,
                )
                for r in rows
            )
        return Account(
            run_id=run_id,
            as_of=latest.timestamp,
            equity=latest.equity,
            cash=latest.cash,
            day_pnl=latest.equity - (before.equity if before is not None else latest.equity),
            drawdown=latest.drawdown,
            # memory keeps money (the account's gross position value): a fraction here
            gross_exposure=latest.gross_exposure / latest.equity if latest.equity > 0 else 0.0,
            positions=positions,
        )


def _broker_health(run: RunRow | None) -> Health:
    if run is None:
        return Health(name="broker", ok=None, detail="no run recorded yet")
    if run.mode.startswith("paper"):
        return Health(name="broker", ok=True, detail=f"paper exchange (run mode {run.mode})")
    return Health(name="broker", ok=None, detail=f"{run.mode}: connection state not recorded")


def _data_health(run: RunRow | None, account: Account | None) -> Health:
    if run is None:
        return Health(name="data", ok=None, detail="no run recorded yet")
    stopped = (run.summary or {}).get("stopped")
    if stopped:
        return Health(name="data", ok=None, detail=f"last run stopped: {stopped}")
    if account is None:
        return Health(name="data", ok=None, detail="the last run recorded no bars")
    return Health(name="data", ok=True, detail=f"last bar {account.as_of:%Y-%m-%d %H:%M} UTC")


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


def _outcome(e: ProposalHistory) -> str:
    if e.deployment is not None:
        return "deployed"
    return "rejected" if e.verdict is not None and not e.verdict.accepted else "pending"


def _last_proposal(app: App) -> LastProposal | None:
    entries = [e for e in app.proposals.history(10, kind=None) if isinstance(e, ProposalHistory)]
    if not entries:
        return None
    e = entries[0]
    return LastProposal(
        at=e.at,
        proposal_id=e.proposal_id,
        summary=e.summary,
        cycle_id=e.cycle_id,
        outcome=_outcome(e),
        codes=() if e.verdict is None else tuple(e.verdict.codes),
    )


# --- capital ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Pool:
    """One strategy's capital pool at the end of the last run. Money in the account currency;
    ``pool_return`` and ``win_rate`` are fractions."""

    strategy: str
    capital: float | None
    pool_equity: float | None
    pool_return: float | None
    realized_pnl: float | None
    trades: int
    win_rate: float | None
    killed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "capital": self.capital,
            "pool_equity": self.pool_equity,
            "pool_return": self.pool_return,
            "realized_pnl": self.realized_pnl,
            "trades": self.trades,
            "win_rate": self.win_rate,
            "killed": self.killed,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class CapitalReport:
    run_id: str | None
    final_equity: float | None
    pools: tuple[Pool, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "final_equity": self.final_equity,
            "pools": [p.to_json() for p in self.pools],
        }


def capital(app: App) -> CapitalReport:
    """Per-strategy pools from the last run's summary, with the capital the Supervisor gave
    each (its persisted snapshot)."""
    run = app.memory.latest_run()
    summary = (run.summary if run is not None else None) or {}
    per = summary.get("per_strategy") or {}
    sup = app.supervisor_store.load_state("supervisor") or {}
    caps = sup.get("pools") or {}
    pools = []
    for name in sorted(set(per) | set(caps)):
        p, c = per.get(name) or {}, caps.get(name) or {}
        pools.append(
            Pool(
                strategy=name,
                capital=_opt_float(c.get("capital")),
                pool_equity=_opt_float(p.get("pool_equity")),
                pool_return=_opt_float(p.get("pool_return")),
                realized_pnl=_opt_float(p.get("realized_pnl")),
                trades=int(p.get("trades") or 0),
                win_rate=_opt_float(p.get("win_rate")),
                killed=bool(p.get("killed")) or c.get("state") == "KILLED",
            )
        )
    return CapitalReport(
        run_id=None if run is None else run.run_id,
        final_equity=_opt_float(summary.get("final_equity")),
        pools=tuple(pools),
    )


def _opt_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


# --- constitution -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ConstitutionReport:
    limits: Mapping[str, Any]
    sha256: str
    pin: str  # "pinned" | "CHANGED since recorded" | "not yet recorded"
    path: str

    def to_json(self) -> dict[str, Any]:
        return {
            "limits": dict(self.limits),
            "sha256": self.sha256,
            "pin": self.pin,
            "path": self.path,
        }


def constitution(app: App) -> ConstitutionReport:
    c, sha = load_constitution(app.constitution_path)
    pinned = app.constitutions.latest()
    pin = (
        "not yet recorded"
        if pinned is None
        else ("pinned" if pinned.sha256 == sha else "CHANGED since recorded")
    )
    return ConstitutionReport(
        limits=c.model_dump(mode="json"), sha256=sha, pin=pin, path=str(app.constitution_path)
    )


# --- halt and resume --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class HaltResult:
    state: str
    reason: str
    changed: bool  # False when trading was already halted

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "changed": self.changed}


@dataclass(frozen=True, kw_only=True, slots=True)
class ResumeResult:
    state: str
    message: str
    changed: bool

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "message": self.message, "changed": self.changed}


def halt(app: App, *, by: str, reason: str, now: datetime | None = None) -> HaltResult:
    """Halt trading (persisted: it survives restarts until a person resumes)."""
    at = now or datetime.now(UTC)
    constitution_, _ = load_constitution(app.constitution_path)
    sup = app.load_supervisor(constitution_)
    t = sup.halt(at, f"{reason} (by {by})")
    app.save_supervisor(sup, at)
    if t is not None:
        app.supervisor_store.record_transition(
            at=at, scope="global", from_state=t.from_state, to_state=t.to_state, reason=t.reason
        )
        app.audit.append("supervisor.halt", {"by": by, "reason": reason}, at)
    return HaltResult(state=sup.state.value, reason=sup.reason, changed=t is not None)


def resume(app: App, *, by: str, now: datetime | None = None) -> ResumeResult:
    """Lift a halt; refused (nothing changes) while the halt file exists."""
    if by.strip().lower() in SYSTEM_NAMES:
        raise ConfigError(
            f"resume needs the name of the person deciding (--by NAME); {by!r} is not one"
        )
    at = now or datetime.now(UTC)
    constitution_, _ = load_constitution(app.constitution_path)
    sup = app.load_supervisor(constitution_)
    if halt_file(app).exists():
        return ResumeResult(
            state=sup.state.value,
            message=f"the halt file {halt_file(app)} still exists; remove it first",
            changed=False,
        )
    t = sup.resume(at, by)
    app.save_supervisor(sup, at)
    if t is None:
        return ResumeResult(state=sup.state.value, message="nothing to resume", changed=False)
    app.supervisor_store.record_transition(
        at=at, scope="global", from_state=t.from_state, to_state=t.to_state, reason=t.reason
    )
    app.audit.append("supervisor.resume", {"by": by, "from": t.from_state}, at)
    return ResumeResult(state=sup.state.value, message=t.reason, changed=True)


# --- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleView:
    id: str
    name: str
    strategy: str | None
    family: str
    when: Mapping[str, Any]
    then: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "strategy": self.strategy,
            "family": self.family,
            "when": dict(self.when),
            "then": dict(self.then),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class VersionView:
    version: int
    ruleset_id: str
    rules: int
    parent: int | None
    reason: str
    source: str
    created_at: datetime
    active: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "ruleset_id": self.ruleset_id,
            "rules": self.rules,
            "parent": self.parent,
            "reason": self.reason,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "active": self.active,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class RulesReport:
    version: int | None
    ruleset_id: str
    rules: tuple[RuleView, ...]
    params: Mapping[str, Mapping[str, float]]
    versions: tuple[VersionView, ...]  # oldest first

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "ruleset_id": self.ruleset_id,
            "rules": [r.to_json() for r in self.rules],
            "params": {k: dict(v) for k, v in self.params.items()},
            "versions": [v.to_json() for v in self.versions],
        }


def rules(app: App) -> RulesReport:
    """The active rule set (rules and tuned parameters) and every version's record."""
    active = app.rules.active()
    version, ruleset = (None, RuleSet()) if active is None else active
    return RulesReport(
        version=version,
        ruleset_id=ruleset.id,
        rules=tuple(
            RuleView(
                id=r.id,
                name=r.name,
                strategy=r.strategy,
                family=r.family(),
                when=r.when.model_dump(mode="json"),
                then=r.then.model_dump(mode="json"),
            )
            for r in ruleset.rules
        ),
        params=ruleset.params,
        versions=tuple(
            VersionView(
                version=v.version if v.version is not None else 0,
                ruleset_id=v.ruleset_id,
                rules=len(v.rule_ids),
                parent=v.parent_version,
                reason=v.reason,
                source=v.source,
                created_at=v.created_at,
                active=v.version == version,
            )
            for v in app.rules.versions()
        ),
    )


# --- history and proposals --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class HistoryReport:
    entries: tuple[HistoryEntry, ...]  # newest first
    frozen: str | None  # why auto-deploy is frozen, or None

    def to_json(self) -> dict[str, Any]:
        return {"entries": [e.to_json() for e in self.entries], "frozen": self.frozen}


def history(app: App, *, limit: int = 50, kind: str | None = None) -> HistoryReport:
    """Proposals with their verdicts and reasons, deployments and rollbacks, newest first."""
    if limit <= 0:
        raise ConfigError(f"--limit must be positive, got {limit}")
    entries = app.proposals.history(limit, kind=kind)
    return HistoryReport(entries=tuple(entries), frozen=autodeploy_frozen(app))


@dataclass(frozen=True, kw_only=True, slots=True)
class ProposalItem:
    at: datetime
    proposal_id: str
    kind: str
    source: str
    summary: str
    outcome: str  # "deployed" | "rejected" | "pending"
    stage: str | None  # the latest verdict's stage
    codes: tuple[str, ...]
    to_version: int | None  # the rule set version a deployment made

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "proposal_id": self.proposal_id,
            "kind": self.kind,
            "source": self.source,
            "summary": self.summary,
            "outcome": self.outcome,
            "stage": self.stage,
            "codes": list(self.codes),
            "to_version": self.to_version,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ProposalsReport:
    items: tuple[ProposalItem, ...]  # newest first

    def to_json(self) -> dict[str, Any]:
        return {"proposals": [p.to_json() for p in self.items]}


def proposals(app: App, *, limit: int = 10) -> ProposalsReport:
    """The newest ``limit`` proposals with their verdicts (rollbacks left out)."""
    if limit <= 0:
        raise ConfigError(f"--limit must be positive, got {limit}")
    # history() merges proposals and rollbacks; ask for more so rollbacks do not crowd them out
    newest = app.proposals.history(limit * 4, kind=None)
    found = [e for e in newest if isinstance(e, ProposalHistory)]
    return ProposalsReport(
        items=tuple(
            ProposalItem(
                at=e.at,
                proposal_id=e.proposal_id,
                kind=e.kind,
                source=e.source,
                summary=e.summary,
                outcome=_outcome(e),
                stage=None if e.verdict is None else e.verdict.stage.value,
                codes=() if e.verdict is None else tuple(e.verdict.codes),
                to_version=None if e.deployment is None else e.deployment.to_version,
            )
            for e in found[:limit]
        )
    )


# --- rollback and the freeze ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class RollbackResult:
    record: RollbackRecord

    def to_json(self) -> dict[str, Any]:
        return self.record.to_json()


def rollback(
    app: App, version: int, *, by: str, reason: str, now: datetime | None = None
) -> RollbackResult:
    """Restore rule set version ``version`` exactly (allowed past the daily change budget: it
    returns to a state that was already validated). ConfigError for an unknown version (the
    message lists the existing ones) or the version already active."""
    if not by.strip():
        raise ConfigError("a rollback needs the name of the person deciding it (--by NAME)")
    try:
        record = do_rollback(app, version, by=by, reason=reason, at=now or datetime.now(UTC))
    except (NotFound, ValueError) as e:
        raise ConfigError(str(e)) from e
    return RollbackResult(record=record)


@dataclass(frozen=True, kw_only=True, slots=True)
class UnfreezeResult:
    cleared: bool
    frozen: str | None

    def to_json(self) -> dict[str, Any]:
        return {"cleared": self.cleared, "frozen": self.frozen}


def unfreeze(app: App, *, by: str, now: datetime | None = None) -> UnfreezeResult:
    """A person clears the auto-deploy freeze that a failed negative control set."""
    if not by.strip():
        raise ConfigError("clearing the freeze needs the name of the person doing it (--by NAME)")
    cleared = clear_autodeploy_freeze(app, by, now or datetime.now(UTC))
    return UnfreezeResult(cleared=cleared, frozen=autodeploy_frozen(app))


@dataclass(frozen=True, kw_only=True, slots=True)
class AcknowledgeResult:
    account: str
    by: str
    accepted: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "by": self.by, "accepted": list(self.accepted)}


def acknowledge(
    app: App, *, account: str, by: str, now: datetime | None = None
) -> AcknowledgeResult:
    """A person accepts an account's blocking reconciliation issues; new orders may resume."""
    if by.strip().lower() in SYSTEM_NAMES:
        raise ConfigError(f"acknowledging needs a person's name (--by NAME); {by!r} is not one")
    key = f"reconciliation:{account}"
    state = app.supervisor_store.load_state(key)
    if state is None:
        raise ConfigError(f"no reconciliation recorded for account {account!r}")
    blocking = tuple(str(i.get("key", "")) for i in state.get("blocking", []))
    try:
        acknowledge_issues(app, key, by=by, now=now or datetime.now(UTC))
    except HaltTrading as err:
        raise ConfigError(str(err)) from err
    return AcknowledgeResult(account=account, by=by, accepted=blocking)


# --- readiness --------------------------------------------------------------------------------


def readiness(app: App, *, now: datetime | None = None) -> ReadinessReport:
    """The live-readiness checklist (see :mod:`sovereign.app.readiness`)."""
    return check_readiness(app, now=now or datetime.now(UTC))


__all__ = [
    "Account",
    "AcknowledgeResult",
    "CapitalReport",
    "ConstitutionReport",
    "HaltResult",
    "Health",
    "HistoryReport",
    "LastProposal",
    "LastRun",
    "Pool",
    "Position",
    "ProposalItem",
    "ProposalsReport",
    "ReadinessReport",
    "ResumeResult",
    "RollbackResult",
    "RuleView",
    "RulesReport",
    "StatusReport",
    "UnfreezeResult",
    "VersionView",
    "capital",
    "constitution",
    "halt",
    "history",
    "proposals",
    "readiness",
    "resume",
    "rollback",
    "rules",
    "status",
    "unfreeze",
]
