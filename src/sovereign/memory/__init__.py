"""Persistence: SQLModel tables, repositories, the hash-chained audit log, Alembic migrations.

SQLite (WAL) by default, PostgreSQL by URL. Create or update the schema with :func:`upgrade`.
"""

from sovereign.memory.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditLog,
    AuditVerification,
    entry_hash,
)
from sovereign.memory.coltypes import UTCDateTime
from sovereign.memory.db import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    downgrade,
    joined,
    make_engine,
    session,
    upgrade,
)
from sovereign.memory.errors import NotFound
from sovereign.memory.rule_store import RULES_POINTER, RuleStore
from sovereign.memory.stores import ConstitutionStore, SupervisorStore
from sovereign.memory.tables import (
    ActivePointerRow,
    AuditLogRow,
    ConstitutionSnapshotRow,
    DecisionRow,
    EquitySnapshotRow,
    FillRow,
    KVStateRow,
    MemoryModel,
    OrderRow,
    PositionSnapshotRow,
    RuleRow,
    RuleSetVersionRow,
    RunRow,
    SupervisorTransitionRow,
    TradeRow,
    metadata,
)
from sovereign.memory.trade_memory import TradeMemory

__all__ = [
    "GENESIS_HASH",
    "MIGRATIONS_DIR",
    "RULES_POINTER",
    "ActivePointerRow",
    "AuditEntry",
    "AuditLog",
    "AuditLogRow",
    "AuditVerification",
    "ConstitutionSnapshotRow",
    "ConstitutionStore",
    "DecisionRow",
    "EquitySnapshotRow",
    "FillRow",
    "KVStateRow",
    "MemoryModel",
    "NotFound",
    "OrderRow",
    "PositionSnapshotRow",
    "RuleRow",
    "RuleSetVersionRow",
    "RuleStore",
    "RunRow",
    "SupervisorStore",
    "SupervisorTransitionRow",
    "TradeMemory",
    "TradeRow",
    "UTCDateTime",
    "alembic_config",
    "current_revision",
    "downgrade",
    "entry_hash",
    "joined",
    "make_engine",
    "metadata",
    "session",
    "upgrade",
]
