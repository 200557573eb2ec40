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

HEAD = "0002"
TABLES_0001 = {
    "runs", "orders", "fills", "trades", "position_snapshots", "equity_snapshots", "decisions",
    "rules", "ruleset_versions", "active_pointer", "constitution_snapshots",
    "supervisor_transitions", "kv_state", "audit_log",
}  # fmt: skip
TABLES_0002 = {"proposals", "verdicts", "deployments", "rollbacks"}
EXPECTED_TABLES = TABLES_0001 | TABLES_0002


def _diff(engine: Engine, target: MetaData) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, target))


def test_migrations_ship_inside_the_package() -> None:
    assert MIGRATIONS_DIR.parent == Path(__file__).resolve().parents[2] / "src/sovereign/memory"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD]


def test_upgrade_creates_exactly_the_metadata(engine: Engine) -> None:
    assert current_revision(engine) == HEAD
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
    assert current_revision(engine) == HEAD
    assert _diff(engine, metadata) == []


def test_upgrade_by_url_on_a_fresh_file(db_url: str) -> None:
    upgrade(db_url)
    assert current_revision(db_url) == HEAD


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
    assert calls["n"] == len(TABLES_0001)  # audit_log is the last table of 0001
    eng = make_engine(db_url)
    assert inspect(eng).get_table_names() == []
    eng.dispose()


# --- 0002: self-modification -------------------------------------------------------------------


def _summary(diff: list[object]) -> set[tuple[str, str]]:
    """(operation, name) of each difference Alembic reports (columns as ``table.column``)."""
    out: set[tuple[str, str]] = set()
    for item in diff:
        assert isinstance(item, tuple), item  # a list would be a column type/nullability change
        op = item[0]
        out.add((op, f"{item[2]}.{item[3].name}" if op == "add_column" else item[1].name))
    return out


def test_downgrade_to_0001_removes_exactly_what_0002_added(engine: Engine) -> None:
    downgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    assert set(inspect(engine).get_table_names()) == TABLES_0001 | {"alembic_version"}
    # Against the head schema, the only differences left are what 0002 creates.
    new_indexes = {
        ("add_index", index.name)
        for name in TABLES_0002
        for index in metadata.tables[name].indexes
        if index.name is not None
    }
    assert _summary(_diff(engine, metadata)) == {
        ("add_table", name) for name in TABLES_0002
    } | new_indexes | {("add_column", "ruleset_versions.params")}
    upgrade(engine)
    assert _diff(engine, metadata) == []


def test_upgrade_from_0001_keeps_existing_rule_set_versions(db_url: str) -> None:
    # A database with rule set versions saved under 0001 (no params column) upgrades in place;
    # its versions load with no overrides and still hash to their recorded ids.
    from sovereign.memory import RuleStore
    from sovereign.rules import Regime, RegimeIs, Rule, RuleSet, SkipTrade

    rule = Rule(name="r1", when=RegimeIs(regime=Regime.VOLATILE), then=SkipTrade(reason="x"))
    eng = make_engine(db_url)
    try:
        upgrade(eng, "0001")
        with eng.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO rules (rule_id, body, family, created_at) VALUES (?, ?, ?, ?)",
                (rule.id, rule.model_dump_json(), rule.family(), "2024-01-02 14:30:00"),
            )
            conn.exec_driver_sql(
                "INSERT INTO ruleset_versions (ruleset_id, rule_ids, parent_version, reason, "
                "source, created_at) VALUES (?, ?, NULL, 'old', 'person', '2024-01-02 14:30:00')",
                (RuleSet(rules=(rule,)).id, f'["{rule.id}"]'),
            )
            conn.exec_driver_sql(
                "INSERT INTO active_pointer (name, version, updated_at) "
                "VALUES ('rules', 1, '2024-01-02 14:30:00')"
            )
        upgrade(eng)
        assert current_revision(eng) == HEAD
        store = RuleStore(eng)
        assert store.active() == (1, RuleSet(rules=(rule,)))
        assert store.versions()[0].params == {}
        tuned = RuleSet(rules=(rule,)).with_param("momentum", "lookback", 40.0)
        v2 = store.save_version(tuned, reason="tune", source="t")
        assert store.version(v2) == tuned
        # Downgrading drops the overrides column but keeps the versions themselves.
        downgrade(eng, "0001")
        with eng.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM ruleset_versions").scalar() == 2
    finally:
        eng.dispose()
