"""The application context: settings, the database and its stores, the pinned constitution."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from sovereign.constitution import Constitution, check_pin, default_path
from sovereign.constitution import load as load_constitution
from sovereign.memory import (
    AuditLog,
    ConstitutionStore,
    ProposalStore,
    RuleStore,
    SupervisorStore,
    TradeMemory,
    make_engine,
    upgrade,
)
from sovereign.settings import Settings
from sovereign.trading.supervisor import Supervisor, SupervisorState

SUPERVISOR_KEY = "supervisor"


@dataclass(kw_only=True)
class App:
    settings: Settings
    engine: Engine
    memory: TradeMemory
    rules: RuleStore
    proposals: ProposalStore
    constitutions: ConstitutionStore
    supervisor_store: SupervisorStore
    audit: AuditLog

    @classmethod
    def open(cls, settings: Settings | None = None, *, migrate: bool = True) -> App:
        """Open (and by default migrate) the database named by ``settings``."""
        settings = settings or Settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.db_url)
        if migrate:
            upgrade(engine)
        return cls(
            settings=settings,
            engine=engine,
            memory=TradeMemory(engine),
            rules=RuleStore(engine),
            proposals=ProposalStore(engine),
            constitutions=ConstitutionStore(engine),
            supervisor_store=SupervisorStore(engine),
            audit=AuditLog(engine),
        )

    @property
    def constitution_path(self) -> Path:
        return self.settings.constitution_path or default_path()

    def constitution(self, *, now: datetime | None = None) -> tuple[Constitution, str]:
        """Load the constitution and enforce its hash pin.

        On the very first start its hash is recorded (and audited); afterwards a file whose hash
        differs raises ConstitutionTampered until a person amends it.
        """
        path = self.constitution_path
        constitution, sha = load_constitution(path)
        latest = self.constitutions.latest()
        if latest is None:
            at = now or datetime.now(UTC)
            self.constitutions.record(sha, path.read_text(), at=at, note="first start")
            self.audit.append("constitution.recorded", {"sha256": sha, "path": str(path)}, at)
        else:
            check_pin(path, sha, latest.sha256)
        return constitution, sha

    def amend_constitution(self, *, by: str, note: str, now: datetime | None = None) -> str:
        """A person accepts the current file as the constitution; returns its new hash."""
        if not by.strip():
            raise ValueError("an amendment needs the name of the person making it (--by)")
        path = self.constitution_path
        _, sha = load_constitution(path)
        at = now or datetime.now(UTC)
        previous = self.constitutions.latest()
        self.constitutions.record(sha, path.read_text(), at=at, amended_by=by, note=note)
        self.audit.append(
            "constitution.amended",
            {
                "sha256": sha,
                "previous": previous.sha256 if previous else None,
                "by": by,
                "note": note,
            },
            at,
        )
        return sha

    def load_supervisor(
        self, constitution: Constitution, *, account: str | None = None
    ) -> Supervisor:
        """The persisted Supervisor (HALTED survives restarts), or a fresh one.

        With ``account``, the persisted books (peak equity, day, pools) are used only if they
        were saved for that account: a replay's million-dollar peak means nothing to a live
        account. A halt is global and survives either way.
        """
        data = self.supervisor_store.load_state(SUPERVISOR_KEY)
        if data is None:
            return Supervisor(constitution=constitution)
        if account is not None and data.get("account") != account:
            if data.get("state") == SupervisorState.HALTED.value:
                return Supervisor(
                    constitution=constitution,
                    state=SupervisorState.HALTED,
                    reason=str(data.get("reason", "")),
                )
            return Supervisor(constitution=constitution)
        return Supervisor.restore(constitution, data)

    def save_supervisor(
        self, supervisor: Supervisor, at: datetime, *, account: str | None = None
    ) -> None:
        """Persist ``supervisor``, tagged with the account whose books it holds (kept from the
        stored state when not given, e.g. by a person's halt or resume)."""
        snapshot = supervisor.snapshot()
        if account is None:
            stored = self.supervisor_store.load_state(SUPERVISOR_KEY) or {}
            account = stored.get("account")
        if account is not None:
            snapshot["account"] = account
        self.supervisor_store.save_state(SUPERVISOR_KEY, snapshot, at)

    def dispose(self) -> None:
        self.engine.dispose()
