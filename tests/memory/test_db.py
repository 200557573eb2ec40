"""Engines, pragmas, sessions and the UTC timestamp type on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, func, select, text

from sovereign.errors import ConfigError
from sovereign.memory import KVStateRow, RunRow, make_engine, session

from .conftest import T0


def test_sqlite_file_and_parent_directory_are_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "memory.db"
    eng = make_engine(f"sqlite:///{path}")
    with eng.connect() as conn:
        conn.execute(text("select 1"))
    eng.dispose()
    assert path.exists()


def test_pragmas_are_set_on_every_connection(engine: Engine) -> None:
    # Two connections checked out at once: two distinct DBAPI connections, each configured.
    with engine.connect() as a, engine.connect() as b:
        for conn in (a, b):
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="FOREIGN KEY"), engine.begin() as c:
        c.exec_driver_sql(
            "INSERT INTO active_pointer (name, version, updated_at) "
            "VALUES ('rules', 99, '2024-01-01 00:00:00')"
        )


def test_invalid_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid database URL"):
        make_engine("not a url at all")


def test_session_commits_on_success(engine: Engine) -> None:
    with session(engine) as db:
        db.add(KVStateRow(key="a", value={"x": 1}, updated_at=T0))
    with session(engine) as db:
        assert db.get(KVStateRow, "a") is not None


def test_failed_transaction_leaves_nothing_half_written(engine: Engine) -> None:
    def write_then_fail() -> None:
        with session(engine) as db:
            db.add(KVStateRow(key="a", value={"x": 1}, updated_at=T0))
            db.add(RunRow(run_id="r1", started_at=T0, mode="backtest"))
            db.flush()  # both rows are in the database's transaction now
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    with session(engine) as db:
        assert db.scalar(select(func.count()).select_from(KVStateRow)) == 0
        assert db.scalar(select(func.count()).select_from(RunRow)) == 0


def test_immediate_session_takes_the_write_lock_up_front(engine: Engine) -> None:
    with session(engine, immediate=True) as db:
        # While this transaction holds the write lock, another writer cannot start one.
        other = make_engine(engine.url, busy_timeout=0.05)
        with pytest.raises(sqlalchemy.exc.OperationalError, match="locked"), other.begin() as c:
            c.execute(text("INSERT INTO kv_state VALUES ('other', '{}', '2024-01-01 00:00:00')"))
        other.dispose()
        db.add(KVStateRow(key="held", value={}, updated_at=T0))


def test_timestamps_round_trip_as_aware_utc(engine: Engine) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2024, 3, 1, 16, 0, 0, 123456, tzinfo=plus_two)
    with session(engine) as db:
        db.add(RunRow(run_id="r1", started_at=local, finished_at=None, mode="paper"))
    with session(engine) as db:
        row = db.get(RunRow, "r1")
        assert row is not None
        assert row.started_at.tzinfo is UTC
        assert row.started_at == local  # same instant
        assert row.started_at == datetime(2024, 3, 1, 14, 0, 0, 123456, tzinfo=UTC)
        # Comparisons in SQL are done in UTC too.
        later = db.exec(select(RunRow).where(RunRow.started_at > T0)).all()  # type: ignore[call-overload]
        assert len(later) == 1


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    with (
        pytest.raises(sqlalchemy.exc.StatementError, match="naive datetime"),
        session(engine) as db,
    ):
        db.add(RunRow(run_id="r1", started_at=datetime(2024, 1, 1), mode="paper"))  # noqa: DTZ001
