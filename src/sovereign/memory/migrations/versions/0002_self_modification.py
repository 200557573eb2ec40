"""Self-modification: rule set versions carry parameter overrides; proposals, their verdicts,
deployments and rollbacks.

Hand-written to match ``sovereign.memory.tables`` exactly (names follow the metadata's naming
convention); ``tests/memory/test_migrations.py`` checks there is no difference, on SQLite and on
PostgreSQL. ``ruleset_versions.params`` is added with the server default ``'{}'`` so versions
saved before this revision load as rule sets without overrides (their ids are unchanged: a rule
set's id only includes non-empty overrides).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _int(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), nullable=nullable)


def _json(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.JSON(), nullable=nullable)


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True, nullable=False)


def _version_fk(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["ruleset_versions.version"], name=f"fk_{table}_{column}_ruleset_versions"
    )


def _proposal_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["proposal_id"], ["proposals.proposal_id"], name=f"fk_{table}_proposal_id_proposals"
    )


def upgrade() -> None:
    op.add_column(
        "ruleset_versions",
        sa.Column("params", sa.JSON(), nullable=False, server_default="{}"),
    )

    op.create_table(
        "proposals",
        _str("proposal_id"),
        _str("kind"),
        _str("family", nullable=True),
        _str("source"),
        _json("body"),
        _str("summary"),
        _str("cycle_id", nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("proposal_id", name="pk_proposals"),
    )
    op.create_index("ix_proposals_family", "proposals", ["family"])
    op.create_index("ix_proposals_cycle_id", "proposals", ["cycle_id"])

    op.create_table(
        "verdicts",
        _id(),
        _str("proposal_id"),
        _str("cycle_id", nullable=True),
        _str("stage"),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        _json("codes"),
        _json("violations"),
        _json("gate_report", nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_verdicts"),
        _proposal_fk("verdicts"),
    )
    op.create_index("ix_verdicts_proposal_id", "verdicts", ["proposal_id"])
    op.create_index("ix_verdicts_created_at", "verdicts", ["created_at"])

    op.create_table(
        "deployments",
        _id(),
        _str("proposal_id"),
        _int("from_version", nullable=True),
        _int("to_version"),
        _str("ruleset_id"),
        _ts("deployed_at"),
        sa.Column("expected_max_drawdown", sa.Float(), nullable=False),
        sa.Column("baseline_equity", sa.Float(), nullable=True),
        _str("status"),
        _ts("rolled_back_at", nullable=True),
        _str("rollback_reason", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
        sa.UniqueConstraint("proposal_id", name="uq_deployments_proposal_id"),
        _proposal_fk("deployments"),
        _version_fk("deployments", "from_version"),
        _version_fk("deployments", "to_version"),
    )
    op.create_index("ix_deployments_deployed_at", "deployments", ["deployed_at"])

    op.create_table(
        "rollbacks",
        _id(),
        _int("from_version", nullable=True),
        _int("to_version"),
        _str("ruleset_id"),
        _ts("at"),
        _str("by"),
        _str("reason"),
        _int("deployment_id", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rollbacks"),
        _version_fk("rollbacks", "from_version"),
        _version_fk("rollbacks", "to_version"),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name="fk_rollbacks_deployment_id_deployments"
        ),
    )
    op.create_index("ix_rollbacks_at", "rollbacks", ["at"])


def downgrade() -> None:
    for table in ("rollbacks", "deployments", "verdicts", "proposals"):
        op.drop_table(table)  # their indexes go with them
    # SQLite >= 3.35 drops a plain column in place (no table copy, so the foreign keys that
    # point at ruleset_versions are untouched).
    op.drop_column("ruleset_versions", "params")
