"""The memory schema as SQLModel tables.

Every timestamp is :class:`~sovereign.memory.coltypes.UTCDateTime` (tz-aware UTC in and out), every
free-form structure is JSON. The tables live in their own :data:`metadata` (not SQLModel's global
one) with a naming convention, so Alembic's migrations name every constraint and index the same
way on SQLite and PostgreSQL. The migrations under ``memory/migrations`` create exactly this
schema; ``tests/memory/test_migrations.py`` compares the two.

    runs ─┬─ orders, fills, trades, decisions, equity_snapshots, position_snapshots  (run_id FK)
    rules ── ruleset_versions (rule_ids, ordered; params) ── active_pointer ("rules" -> version)
    proposals ─┬─ verdicts                  (proposal_id FK; one per stage reached)
               └─ deployments ── rollbacks  (to_version/from_version FK ruleset_versions)
    constitution_snapshots, supervisor_transitions, kv_state, audit_log (append-only, chained)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, MetaData, Table, Text
from sqlmodel import Field, SQLModel

from sovereign.memory.coltypes import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

HASH_LENGTH = 64
"""Length of a hex SHA-256, the audit chain's link."""


class MemoryModel(SQLModel):
    """Base of every memory table; owns the schema's :data:`metadata`."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = MemoryModel.metadata


def table_of(model: type[SQLModel]) -> Table:
    """The Core table behind a table model (SQLModel's stubs do not declare ``__table__``)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def _utc(*, nullable: bool = False, index: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=UTCDateTime, nullable=True, index=index)
    return Field(sa_type=UTCDateTime, nullable=False, index=index)


def _json(*, nullable: bool = False, default_factory: Any = dict) -> Any:
    if nullable:
        return Field(default=None, sa_type=JSON, nullable=True)
    return Field(default_factory=default_factory, sa_type=JSON, nullable=False)


# --- runs and what happened in them ---------------------------------------------------------


class RunRow(MemoryModel, table=True):
    """One backtest, paper, chaos or live session."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_started_at", "started_at"),)

    run_id: str = Field(primary_key=True)
    started_at: datetime = _utc()
    finished_at: datetime | None = _utc(nullable=True)
    mode: str
    seed: int | None = None
    config: dict[str, Any] = _json()
    summary: dict[str, Any] | None = _json(nullable=True)


class OrderRow(MemoryModel, table=True):
    """An order as submitted; its ``status`` is updated in place by re-adding it."""

    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_run_id_submitted_at", "run_id", "submitted_at"),)

    client_order_id: str = Field(primary_key=True)
    run_id: str = Field(foreign_key="runs.run_id")
    strategy: str
    symbol: str
    side: str
    quantity: float | None = None
    equity_fraction: float | None = None
    order_type: str = "market"
    limit_price: float | None = None
    status: str
    submitted_at: datetime = _utc()
    reason: str = ""
    ruleset_version: str | None = None


class FillRow(MemoryModel, table=True):
    """One execution. ``client_order_id`` is indexed but not a foreign key: a broker may report a
    fill for an order this database never saw (placed by hand, or before a restore)."""

    __tablename__ = "fills"
    __table_args__ = (Index("ix_fills_run_id_timestamp", "run_id", "timestamp"),)

    fill_id: str = Field(primary_key=True)
    client_order_id: str = Field(index=True)
    symbol: str
    side: str
    quantity: float
    price: float
    commission: float = 0.0
    slippage_cost: float = 0.0
    timestamp: datetime = _utc()
    strategy: str = ""
    run_id: str = Field(foreign_key="runs.run_id")


class TradeRow(MemoryModel, table=True):
    """A round trip: entry to exit, with why it was opened and closed."""

    __tablename__ = "trades"
    __table_args__ = (
        Index("ix_trades_run_id_exit_time", "run_id", "exit_time"),
        Index("ix_trades_strategy_exit_time", "strategy", "exit_time"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.run_id")
    strategy: str
    symbol: str
    side: str
    quantity: float
    entry_time: datetime = _utc()
    exit_time: datetime = _utc()
    entry_price: float
    exit_price: float
    pnl: float
    return_pct: float
    entry_reason: str = ""
    exit_reason: str = ""
    regime_at_entry: str | None = None
    confidence: float | None = None
    rules_touched: list[str] = _json(default_factory=list)
    ruleset_version: str | None = None


class PositionSnapshotRow(MemoryModel, table=True):
    """A position as held at ``timestamp`` (signed quantity: > 0 long, < 0 short)."""

    __tablename__ = "position_snapshots"
    __table_args__ = (Index("ix_position_snapshots_run_id_timestamp", "run_id", "timestamp"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.run_id")
    timestamp: datetime = _utc()
    symbol: str
    strategy: str = ""
    quantity: float
    avg_price: float
    market_price: float | None = None
    unrealized_pnl: float | None = None


class EquitySnapshotRow(MemoryModel, table=True):
    """The account at ``timestamp``; ``drawdown`` is a fraction of the running peak."""

    __tablename__ = "equity_snapshots"
    __table_args__ = (Index("ix_equity_snapshots_run_id_timestamp", "run_id", "timestamp"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.run_id")
    timestamp: datetime = _utc()
    equity: float
    cash: float
    drawdown: float = 0.0
    gross_exposure: float = 0.0  # money: the gross value of the positions (not a fraction)
    supervisor_state: str = ""


class DecisionRow(MemoryModel, table=True):
    """One decision of the pipeline, with references to its inputs so it can be replayed:
    ``inputs`` holds e.g. the bar timestamp, feature values and the rule set version."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_run_id_timestamp", "run_id", "timestamp"),
        Index("ix_decisions_strategy_timestamp", "strategy", "timestamp"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.run_id")
    timestamp: datetime = _utc()
    strategy: str
    symbol: str
    action: str
    confidence: float | None = None
    regime: str | None = None
    outcome: str = ""
    reason: str = ""
    rules_fired: list[str] = _json(default_factory=list)
    inputs: dict[str, Any] = _json()


# --- rules and their versions ---------------------------------------------------------------


class RuleRow(MemoryModel, table=True):
    """A rule by content hash; its body is the rule's JSON dump. Never updated."""

    __tablename__ = "rules"

    rule_id: str = Field(primary_key=True)
    body: dict[str, Any] = _json()
    family: str = Field(index=True)
    created_at: datetime = _utc()


class RuleSetVersionRow(MemoryModel, table=True):
    """Version ``n`` of the rule set: the ordered rule ids and where it came from."""

    __tablename__ = "ruleset_versions"
    __table_args__ = {"sqlite_autoincrement": True}

    version: int | None = Field(default=None, primary_key=True)
    ruleset_id: str = Field(index=True)
    rule_ids: list[str] = _json(default_factory=list)
    # strategy -> parameter -> value (RuleSet.params); "{}" for rows written before 0002.
    params: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSON,
        nullable=False,
        sa_column_kwargs={"server_default": "{}"},
    )
    parent_version: int | None = Field(default=None, foreign_key="ruleset_versions.version")
    reason: str = ""
    source: str = ""
    created_at: datetime = _utc()


class ActivePointerRow(MemoryModel, table=True):
    """Named pointer to the version in force (``"rules"`` -> the active rule set)."""

    __tablename__ = "active_pointer"

    name: str = Field(primary_key=True)
    version: int = Field(foreign_key="ruleset_versions.version")
    updated_at: datetime = _utc()


# --- self-modification: proposals, verdicts, deployments, rollbacks -------------------------


class ProposalRow(MemoryModel, table=True):
    """A proposal as received, by content hash (``"p-…"``). ``body`` is the proposal's
    ``model_dump(mode="json")``; input that did not parse is kept too, as whatever JSON came in,
    with ``kind`` ``"unparseable"``, no family and an id ``"p-raw-…"`` (hash of the raw text)."""

    __tablename__ = "proposals"

    proposal_id: str = Field(primary_key=True)
    kind: str
    family: str | None = Field(default=None, index=True)
    source: str
    body: Any = Field(sa_type=JSON, nullable=False)
    summary: str = ""
    cycle_id: str | None = Field(default=None, index=True)
    created_at: datetime = _utc()


class VerdictRow(MemoryModel, table=True):
    """How far a proposal got in one attempt: ``stage`` is ``"propose"`` (the proposer's own
    output failed), ``"validate"``, ``"gate"`` or ``"deploy"``; ``violations`` are ``{code,
    field, message}`` objects, ``codes`` their codes."""

    __tablename__ = "verdicts"

    id: int | None = Field(default=None, primary_key=True)
    proposal_id: str = Field(foreign_key="proposals.proposal_id", index=True)
    cycle_id: str | None = None
    stage: str
    accepted: bool
    codes: list[str] = _json(default_factory=list)
    violations: list[dict[str, Any]] = _json(default_factory=list)
    gate_report: dict[str, Any] | None = _json(nullable=True)
    created_at: datetime = _utc(index=True)


class DeploymentRow(MemoryModel, table=True):
    """A proposal put in force as rule set version ``to_version``. One per proposal (UNIQUE):
    deploying it again is a no-op. ``status`` is ``"active"``, ``"superseded"`` (a later
    deployment replaced it) or ``"rolled_back"``."""

    __tablename__ = "deployments"

    id: int | None = Field(default=None, primary_key=True)
    proposal_id: str = Field(foreign_key="proposals.proposal_id", unique=True)
    from_version: int | None = Field(default=None, foreign_key="ruleset_versions.version")
    to_version: int = Field(foreign_key="ruleset_versions.version")
    ruleset_id: str
    deployed_at: datetime = _utc(index=True)
    expected_max_drawdown: float
    baseline_equity: float | None = None
    status: str = "active"
    rolled_back_at: datetime | None = _utc(nullable=True)
    rollback_reason: str | None = None


class RollbackRow(MemoryModel, table=True):
    """The active rule set put back to an earlier version, by a person or by the canary."""

    __tablename__ = "rollbacks"

    id: int | None = Field(default=None, primary_key=True)
    from_version: int | None = Field(default=None, foreign_key="ruleset_versions.version")
    to_version: int = Field(foreign_key="ruleset_versions.version")
    ruleset_id: str
    at: datetime = _utc(index=True)
    by: str
    reason: str = ""
    deployment_id: int | None = Field(default=None, foreign_key="deployments.id")


# --- constitution, supervisor, flags, audit -------------------------------------------------


class ConstitutionSnapshotRow(MemoryModel, table=True):
    """The constitution file as recorded on first start and on each person's amendment."""

    __tablename__ = "constitution_snapshots"

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(index=True, max_length=HASH_LENGTH)
    content: str = Field(sa_type=Text)
    recorded_at: datetime = _utc()
    amended_by: str | None = None
    note: str = ""


class SupervisorTransitionRow(MemoryModel, table=True):
    """A Supervisor state change; ``scope`` is ``"global"`` or ``"strategy:<name>"``. Not tied
    to a run by foreign key: a halt outlives the run that triggered it."""

    __tablename__ = "supervisor_transitions"
    __table_args__ = (Index("ix_supervisor_transitions_scope_timestamp", "scope", "timestamp"),)

    id: int | None = Field(default=None, primary_key=True)
    timestamp: datetime = _utc(index=True)
    scope: str
    from_state: str
    to_state: str
    reason: str = ""
    run_id: str | None = Field(default=None, index=True)


class KVStateRow(MemoryModel, table=True):
    """Small persisted flags (the HALTED state, last reconciliation, ...)."""

    __tablename__ = "kv_state"

    key: str = Field(primary_key=True)
    value: dict[str, Any] = _json()
    updated_at: datetime = _utc()


class AuditLogRow(MemoryModel, table=True):
    """One link of the audit chain. Append-only: triggers refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    timestamp: datetime = _utc(index=True)
    kind: str = Field(index=True)
    payload: dict[str, Any] = _json()
    prev_hash: str = Field(max_length=HASH_LENGTH)
    hash: str = Field(max_length=HASH_LENGTH, unique=True)


__all__ = [
    "HASH_LENGTH",
    "NAMING_CONVENTION",
    "ActivePointerRow",
    "AuditLogRow",
    "ConstitutionSnapshotRow",
    "DecisionRow",
    "DeploymentRow",
    "EquitySnapshotRow",
    "FillRow",
    "KVStateRow",
    "MemoryModel",
    "OrderRow",
    "PositionSnapshotRow",
    "ProposalRow",
    "RollbackRow",
    "RuleRow",
    "RuleSetVersionRow",
    "RunRow",
    "SupervisorTransitionRow",
    "TradeRow",
    "VerdictRow",
    "metadata",
    "table_of",
]
