"""Initial memory schema: runs and their events, rule versions, constitution, supervisor,
flags and the append-only audit log.

Hand-written to match ``sovereign.memory.tables`` exactly (constraint and index names follow the
metadata's naming convention); ``tests/memory/test_migrations.py`` checks there is no
difference. Timestamps are ``DateTime(timezone=True)``; the ORM's ``UTCDateTime`` decorates it.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sovereign.errors import ConfigError

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUN_TABLES = ("orders", "fills", "trades", "position_snapshots", "equity_snapshots", "decisions")


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, *, nullable: bool = False, length: int | None = None) -> sa.Column[object]:
    return sa.Column(name, sa.String(length), nullable=nullable)


def _float(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Float(), nullable=nullable)


def _json(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.JSON(), nullable=nullable)


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True, nullable=False)


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=f"fk_{table}_run_id_runs")


def upgrade() -> None:
    _create_run_tables()
    _create_rule_tables()
    _create_governance_tables()
    _create_audit_log()


def _create_run_tables() -> None:
    op.create_table(
        "runs",
        _str("run_id"),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        _str("mode"),
        sa.Column("seed", sa.Integer(), nullable=True),
        _json("config"),
        _json("summary", nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])

    op.create_table(
        "orders",
        _str("client_order_id"),
        _str("run_id"),
        _str("strategy"),
        _str("symbol"),
        _str("side"),
        _float("quantity", nullable=True),
        _float("equity_fraction", nullable=True),
        _str("order_type"),
        _float("limit_price", nullable=True),
        _str("status"),
        _ts("submitted_at"),
        _str("reason"),
        _str("ruleset_version", nullable=True),
        sa.PrimaryKeyConstraint("client_order_id", name="pk_orders"),
        _run_fk("orders"),
    )
    op.create_index("ix_orders_run_id_submitted_at", "orders", ["run_id", "submitted_at"])

    op.create_table(
        "fills",
        _str("fill_id"),
        _str("client_order_id"),
        _str("symbol"),
        _str("side"),
        _float("quantity"),
        _float("price"),
        _float("commission"),
        _float("slippage_cost"),
        _ts("timestamp"),
        _str("strategy"),
        _str("run_id"),
        sa.PrimaryKeyConstraint("fill_id", name="pk_fills"),
        _run_fk("fills"),
    )
    op.create_index("ix_fills_client_order_id", "fills", ["client_order_id"])
    op.create_index("ix_fills_run_id_timestamp", "fills", ["run_id", "timestamp"])

    op.create_table(
        "trades",
        _id(),
        _str("run_id"),
        _str("strategy"),
        _str("symbol"),
        _str("side"),
        _float("quantity"),
        _ts("entry_time"),
        _ts("exit_time"),
        _float("entry_price"),
        _float("exit_price"),
        _float("pnl"),
        _float("return_pct"),
        _str("entry_reason"),
        _str("exit_reason"),
        _str("regime_at_entry", nullable=True),
        _float("confidence", nullable=True),
        _json("rules_touched"),
        _str("ruleset_version", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_trades"),
        _run_fk("trades"),
    )
    op.create_index("ix_trades_run_id_exit_time", "trades", ["run_id", "exit_time"])
    op.create_index("ix_trades_strategy_exit_time", "trades", ["strategy", "exit_time"])

    op.create_table(
        "position_snapshots",
        _id(),
        _str("run_id"),
        _ts("timestamp"),
        _str("symbol"),
        _str("strategy"),
        _float("quantity"),
        _float("avg_price"),
        _float("market_price", nullable=True),
        _float("unrealized_pnl", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_position_snapshots"),
        _run_fk("position_snapshots"),
    )
    op.create_index(
        "ix_position_snapshots_run_id_timestamp", "position_snapshots", ["run_id", "timestamp"]
    )

    op.create_table(
        "equity_snapshots",
        _id(),
        _str("run_id"),
        _ts("timestamp"),
        _float("equity"),
        _float("cash"),
        _float("drawdown"),
        _float("gross_exposure"),
        _str("supervisor_state"),
        sa.PrimaryKeyConstraint("id", name="pk_equity_snapshots"),
        _run_fk("equity_snapshots"),
    )
    op.create_index(
        "ix_equity_snapshots_run_id_timestamp", "equity_snapshots", ["run_id", "timestamp"]
    )

    op.create_table(
        "decisions",
        _id(),
        _str("run_id"),
        _ts("timestamp"),
        _str("strategy"),
        _str("symbol"),
        _str("action"),
        _float("confidence", nullable=True),
        _str("regime", nullable=True),
        _str("outcome"),
        _str("reason"),
        _json("rules_fired"),
        _json("inputs"),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
        _run_fk("decisions"),
    )
    op.create_index("ix_decisions_run_id_timestamp", "decisions", ["run_id", "timestamp"])
    op.create_index("ix_decisions_strategy_timestamp", "decisions", ["strategy", "timestamp"])


def _create_rule_tables() -> None:
    op.create_table(
        "rules",
        _str("rule_id"),
        _json("body"),
        _str("family"),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("rule_id", name="pk_rules"),
    )
    op.create_index("ix_rules_family", "rules", ["family"])

    op.create_table(
        "ruleset_versions",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=True, nullable=False),
        _str("ruleset_id"),
        _json("rule_ids"),
        sa.Column("parent_version", sa.Integer(), nullable=True),
        _str("reason"),
        _str("source"),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("version", name="pk_ruleset_versions"),
        sa.ForeignKeyConstraint(
            ["parent_version"],
            ["ruleset_versions.version"],
            name="fk_ruleset_versions_parent_version_ruleset_versions",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_ruleset_versions_ruleset_id", "ruleset_versions", ["ruleset_id"])

    op.create_table(
        "active_pointer",
        _str("name"),
        sa.Column("version", sa.Integer(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("name", name="pk_active_pointer"),
        sa.ForeignKeyConstraint(
            ["version"],
            ["ruleset_versions.version"],
            name="fk_active_pointer_version_ruleset_versions",
        ),
    )


def _create_governance_tables() -> None:
    op.create_table(
        "constitution_snapshots",
        _id(),
        _str("sha256", length=64),
        sa.Column("content", sa.Text(), nullable=False),
        _ts("recorded_at"),
        _str("amended_by", nullable=True),
        _str("note"),
        sa.PrimaryKeyConstraint("id", name="pk_constitution_snapshots"),
    )
    op.create_index("ix_constitution_snapshots_sha256", "constitution_snapshots", ["sha256"])

    op.create_table(
        "supervisor_transitions",
        _id(),
        _ts("timestamp"),
        _str("scope"),
        _str("from_state"),
        _str("to_state"),
        _str("reason"),
        _str("run_id", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_supervisor_transitions"),
    )
    op.create_index("ix_supervisor_transitions_timestamp", "supervisor_transitions", ["timestamp"])
    op.create_index("ix_supervisor_transitions_run_id", "supervisor_transitions", ["run_id"])
    op.create_index(
        "ix_supervisor_transitions_scope_timestamp",
        "supervisor_transitions",
        ["scope", "timestamp"],
    )

    op.create_table(
        "kv_state",
        _str("key"),
        _json("value"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("key", name="pk_kv_state"),
    )


def _create_audit_log() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        _ts("timestamp"),
        _str("kind"),
        _json("payload"),
        _str("prev_hash", length=64),
        _str("hash", length=64),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        sa.UniqueConstraint("hash", name="uq_audit_log_hash"),
    )
    op.create_index("ix_audit_log_timestamp", "audit_log", ["timestamp"])
    op.create_index("ix_audit_log_kind", "audit_log", ["kind"])
    for statement in _append_only_ddl(op.get_bind().dialect.name):
        op.execute(statement)


def _append_only_ddl(dialect: str) -> list[str]:
    """DDL that makes ``audit_log`` append-only: UPDATE, DELETE (and TRUNCATE) are refused."""
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
            f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            for verb in ("UPDATE", "DELETE")
        ]
    if dialect == "postgresql":
        return [
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'raise_exception'; "
            "END $$",
            "CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
        ]
    raise ConfigError(f"database {dialect!r} is not supported; use SQLite or PostgreSQL")


def _drop_append_only_ddl(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return [
            "DROP TRIGGER IF EXISTS audit_log_no_update",
            "DROP TRIGGER IF EXISTS audit_log_no_delete",
        ]
    if dialect == "postgresql":
        return [
            "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log",
            "DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log",
            "DROP FUNCTION IF EXISTS audit_log_append_only()",
        ]
    return []


def downgrade() -> None:
    for statement in _drop_append_only_ddl(op.get_bind().dialect.name):
        op.execute(statement)
    for table in (
        "audit_log",
        "kv_state",
        "supervisor_transitions",
        "constitution_snapshots",
        "active_pointer",
        "ruleset_versions",
        "rules",
        *reversed(_RUN_TABLES),
        "runs",
    ):
        op.drop_table(table)
