"""The kill switch fails closed: a real SQLite file, a real halt file, a real lock and a
database URL that cannot be opened."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sovereign.app.context import App
from sovereign.app.killswitch import KillSwitch
from sovereign.errors import HaltTrading
from sovereign.memory import (
    AuditLog,
    ConstitutionStore,
    ProposalStore,
    RuleStore,
    SupervisorStore,
    TradeMemory,
    make_engine,
)
from sovereign.settings import Settings

NOW = datetime(2024, 12, 2, 15, tzinfo=UTC)


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings()


def test_a_fresh_system_may_trade(settings: Settings) -> None:
    switch = KillSwitch(App.open(settings), settings.data_dir)
    decision = switch.check(NOW)
    assert decision.trade, decision.reason


def test_halted_survives_a_restart_and_only_a_person_resumes(settings: Settings) -> None:
    app = App.open(settings)
    switch = KillSwitch(app, settings.data_dir)
    halted = switch.halt("alice", "broker outage", NOW)
    assert not halted.trade
    assert switch.halt_file.exists()
    assert "broker outage" in switch.halt_file.read_text()
    app.dispose()

    switch.halt_file.unlink()  # the file gone, the persisted HALTED still holds ...
    restarted = App.open(settings)  # ... across a restart on the same database file
    again = KillSwitch(restarted, settings.data_dir)
    decision = again.check(NOW)
    assert not decision.trade
    assert "HALTED" in decision.reason and "broker outage" in decision.reason

    with pytest.raises(HaltTrading, match="not a person"):
        again.resume("scheduler", NOW)
    switch.halt_file.write_text("halted again by hand\n")
    with pytest.raises(HaltTrading, match="still exists"):
        again.resume("alice", NOW)
    switch.halt_file.unlink()
    resumed = again.resume("alice", NOW)
    assert resumed.trade, resumed.reason
    kinds = [e.kind for e in restarted.audit.tail(5)]
    assert {"supervisor.halt", "supervisor.resume"} <= set(kinds)
    assert restarted.supervisor_store.transitions()[-1].to_state == "NORMAL"


def test_the_halt_file_halts_with_or_without_a_database(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "HALT").write_text("stop\n")
    assert not KillSwitch(App.open(settings), settings.data_dir).check(NOW).trade
    decision = KillSwitch(None, settings.data_dir).check(NOW)
    assert not decision.trade and "halt file" in decision.reason


def test_no_database_means_no_trading(settings: Settings) -> None:
    decision = KillSwitch(None, settings.data_dir).check(NOW)
    assert not decision.trade and "no database" in decision.reason


def unreachable_app(settings: Settings, tmp_path: Path) -> App:
    """An App whose database URL names a directory: SQLite cannot open it."""
    directory = tmp_path / "not-a-database"
    directory.mkdir()
    engine = make_engine(f"sqlite:///{directory}")
    return App(
        settings=settings,
        engine=engine,
        memory=TradeMemory(engine),
        rules=RuleStore(engine),
        proposals=ProposalStore(engine),
        constitutions=ConstitutionStore(engine),
        supervisor_store=SupervisorStore(engine),
        audit=AuditLog(engine),
    )


def test_an_unreachable_database_halts_and_says_why(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    switch = KillSwitch(unreachable_app(settings, tmp_path), settings.data_dir)
    with caplog.at_level(logging.ERROR, logger="sovereign.app.killswitch"):
        decision = switch.check(NOW)
    assert not decision.trade
    assert "unreadable" in decision.reason and "unable to open database" in decision.reason
    assert "kill switch closed" in caplog.text

    # A halt still lands in the halt file, which then halts on its own.
    halted = switch.halt("alice", "db down", NOW)
    assert not halted.trade and "database failed" in halted.reason
    assert switch.halt_file.exists()
    assert "halt file" in switch.check(NOW).reason


def test_a_database_that_does_not_answer_in_time_halts(settings: Settings) -> None:
    app = App.open(settings)
    KillSwitch(app, settings.data_dir).check(NOW)  # state readable: fine
    db_file = settings.db_url.removeprefix("sqlite:///")
    app.engine.dispose()
    blocker = sqlite3.connect(db_file, isolation_level=None)
    try:
        blocker.execute("PRAGMA locking_mode=EXCLUSIVE")
        blocker.execute("BEGIN EXCLUSIVE")
        blocker.execute("UPDATE kv_state SET key = key")  # holds the file until released
        decision = KillSwitch(app, settings.data_dir, timeout=0.3).check(NOW)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert not decision.trade
    assert "TimeoutError" in decision.reason and "0.3 s" in decision.reason
