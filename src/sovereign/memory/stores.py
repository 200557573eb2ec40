"""Small repositories: the constitution's recorded snapshots and the Supervisor's history and
persisted flags."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from sovereign.memory._bulk import upsert
from sovereign.memory.db import session
from sovereign.memory.tables import (
    ConstitutionSnapshotRow,
    KVStateRow,
    SupervisorTransitionRow,
    table_of,
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SCOPE = re.compile(r"^(global|strategy:.+)$")


class ConstitutionStore:
    """The constitution file as recorded on first start and after each amendment by a person."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(
        self,
        sha256: str,
        content: str,
        *,
        at: datetime,
        amended_by: str | None = None,
        note: str = "",
    ) -> ConstitutionSnapshotRow:
        """Append a snapshot. ``sha256`` is the file's lowercase hex SHA-256."""
        if not _SHA256.match(sha256):
            raise ValueError(f"sha256 must be 64 lowercase hex characters, got {sha256!r}")
        row = ConstitutionSnapshotRow(
            sha256=sha256, content=content, recorded_at=at, amended_by=amended_by, note=note
        )
        with session(self._engine) as db:
            db.add(row)
            db.flush()
            db.refresh(row)
        return row

    def latest(self) -> ConstitutionSnapshotRow | None:
        """The most recent snapshot (the pinned hash), or None if none was recorded."""
        query = select(ConstitutionSnapshotRow).order_by(col(ConstitutionSnapshotRow.id).desc())
        with session(self._engine) as db:
            return db.exec(query.limit(1)).first()

    def history(self) -> list[ConstitutionSnapshotRow]:
        """Every snapshot, oldest first."""
        query = select(ConstitutionSnapshotRow).order_by(col(ConstitutionSnapshotRow.id))
        with session(self._engine) as db:
            return list(db.exec(query).all())


class SupervisorStore:
    """Supervisor state transitions and persisted flags (``kv_state``), e.g. the HALTED state."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record_transition(
        self,
        *,
        at: datetime,
        scope: str,
        from_state: str,
        to_state: str,
        reason: str = "",
        run_id: str | None = None,
    ) -> SupervisorTransitionRow:
        """Append a transition. ``scope`` is ``"global"`` or ``"strategy:<name>"``."""
        if not _SCOPE.match(scope):
            raise ValueError(f"scope must be 'global' or 'strategy:<name>', got {scope!r}")
        row = SupervisorTransitionRow(
            timestamp=at,
            scope=scope,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            run_id=run_id,
        )
        with session(self._engine) as db:
            db.add(row)
            db.flush()
            db.refresh(row)
        return row

    def transitions(
        self,
        *,
        scope: str | None = None,
        run_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[SupervisorTransitionRow]:
        """Transitions in time order; ``limit`` keeps the most recent ones."""
        query = select(SupervisorTransitionRow).order_by(
            col(SupervisorTransitionRow.timestamp).desc(), col(SupervisorTransitionRow.id).desc()
        )
        if scope is not None:
            query = query.where(SupervisorTransitionRow.scope == scope)
        if run_id is not None:
            query = query.where(SupervisorTransitionRow.run_id == run_id)
        if since is not None:
            query = query.where(col(SupervisorTransitionRow.timestamp) >= since)
        with session(self._engine) as db:
            rows = list(db.exec(query.limit(limit)).all())
        rows.reverse()
        return rows

    def save_state(self, key: str, value: Mapping[str, Any], at: datetime) -> None:
        """Set flag ``key`` to the JSON object ``value`` (replacing any previous value)."""
        try:
            payload = json.loads(json.dumps(dict(value), allow_nan=False))
        except (TypeError, ValueError) as err:
            raise ValueError(f"state {key!r} is not finite JSON: {err}") from err
        with session(self._engine) as db:
            upsert(
                db,
                table_of(KVStateRow),
                [{"key": key, "value": payload, "updated_at": at}],
                key=["key"],
                update=["value", "updated_at"],
            )

    def load_state(self, key: str) -> dict[str, Any] | None:
        """The value saved under ``key``, or None."""
        with session(self._engine) as db:
            row = db.get(KVStateRow, key)
            return None if row is None else dict(row.value)

    def state_updated_at(self, key: str) -> datetime | None:
        with session(self._engine) as db:
            row = db.get(KVStateRow, key)
            return None if row is None else row.updated_at


__all__ = ["ConstitutionStore", "SupervisorStore"]
