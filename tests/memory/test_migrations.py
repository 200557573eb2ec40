"""The packaged Alembic migrations create exactly the SQLModel schema, and undo it."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, Integer, MetaData, inspect

from sovereign.memory import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    downgrade,
    make_engine,
    metadata,
    upgrade,
)

EXPECTED_TABLES = {
    "runs", "orders", "fills", "trades", "position_snapshots", "equity_snapshots", "decisions",
    "rules", "ruleset_versions", "active_pointer", "constitution_snapshots",
    "supervisor_transitions", "kv_state", "audit_log",
}  # fmt: skip


def _diff(engine: Engine, target: MetaData) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, target))


def test_migrations_ship_inside_the_package() -> None:
    assert MIGRATIONS_DIR.parent == Path(__file__).resolve().parents[2] / "src/sovereign/memory"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == ["0001"]


def test_upgrade_creates_exactly_the_metadata(engine: Engine) -> None:
    assert current_revision(engine) == "0001"
    assert set(inspect(engine).get_table_names()) == EXPECTED_TABLES | {"alembic_version"}
    assert _diff(engine, metadata) == []


def test_comparison_is_not_vacuous(engine: Engine) -> None:
    # Negative control: a metadata with one extra column must show up as a difference.
    changed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        copy = table.to_metadata(changed)
        if table.name == "runs":
            copy.append_column(Column("extra", Integer(), nullable=True))
    diff = _diff(engine, changed)
    assert len(diff) == 1
    assert "extra" in str(diff[0])


def test_downgrade_removes_everything_and_upgrade_is_repeatable(engine: Engine) -> None:
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    with engine.connect() as conn:
        triggers = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='trigger'")
        assert triggers.all() == []
    upgrade(engine)
    upgrade(engine)  # already at head: a no-op
    assert current_revision(engine) == "0001"
    assert _diff(engine, metadata) == []


def test_upgrade_by_url_on_a_fresh_file(db_url: str) -> None:
    upgrade(db_url)
    assert current_revision(db_url) == "0001"


def test_sqlite_triggers_make_the_audit_log_append_only(engine: Engine) -> None:
    with engine.connect() as conn:
        names = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type='trigger' ORDER BY name"
        )
        assert [row[0] for row in names] == ["audit_log_no_delete", "audit_log_no_update"]


def test_a_failing_migration_leaves_no_tables(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The whole upgrade runs in one transaction: a failure in the middle rolls back every table.
    import sovereign.memory.db as db

    calls = {"n": 0}
    real = db.command.upgrade

    def failing_upgrade(cfg, revision):  # type: ignore[no-untyped-def]
        from alembic.operations import Operations

        real_create = Operations.create_table

        def create_then_fail(self, name, *cols, **kw):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if name == "audit_log":
                raise RuntimeError("disk on fire")
            return real_create(self, name, *cols, **kw)

        monkeypatch.setattr(Operations, "create_table", create_then_fail)
        real(cfg, revision)

    monkeypatch.setattr(db.command, "upgrade", failing_upgrade)
    with pytest.raises(RuntimeError, match="disk on fire"):
        upgrade(db_url)
    assert calls["n"] == len(EXPECTED_TABLES)
    eng = make_engine(db_url)
    assert inspect(eng).get_table_names() == []
    eng.dispose()
