"""What the system did: runs, orders, fills, round-trip trades, decisions, snapshots.

Writers take sequences of table rows (:class:`~sovereign.memory.tables.TradeRow`, ...) or plain
mappings with the same field names, and insert them in one statement per call (executemany),
all or nothing: a multi-year backtest writes tens of thousands of rows in well under a second.
Orders are upserted by ``client_order_id`` (re-adding an order updates its status) and fills are
inserted once per ``fill_id``, so replaying a broker's reports is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import SQLModel, col, select

from sovereign.errors import IntegrityError
from sovereign.memory._bulk import row_dicts, upsert
from sovereign.memory.db import session
from sovereign.memory.errors import NotFound
from sovereign.memory.tables import (
    DecisionRow,
    EquitySnapshotRow,
    FillRow,
    OrderRow,
    PositionSnapshotRow,
    RunRow,
    TradeRow,
    table_of,
)

Rows = Iterable[SQLModel | Mapping[str, Any]]


class TradeMemory:
    """Repository of runs and everything recorded during them."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- runs ---------------------------------------------------------------------------------

    def record_run_start(
        self,
        run_id: str,
        *,
        started_at: datetime,
        mode: str,
        seed: int | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> RunRow:
        """Record a run's start. Idempotent for the same arguments; a different run under an
        existing ``run_id`` raises :class:`~sovereign.errors.IntegrityError`."""
        row = RunRow(
            run_id=run_id, started_at=started_at, mode=mode, seed=seed, config=dict(config or {})
        )
        with session(self._engine, immediate=True) as db:
            existing = db.get(RunRow, run_id)
            if existing is None:
                db.add(row)
                db.flush()
                return row
        if (existing.started_at, existing.mode, existing.seed, existing.config) != (
            row.started_at,
            row.mode,
            row.seed,
            row.config,
        ):
            raise IntegrityError(f"run {run_id!r} is already recorded with other settings")
        return existing

    def record_run_finish(
        self, run_id: str, *, finished_at: datetime, summary: Mapping[str, Any] | None = None
    ) -> RunRow:
        """Set a run's end time and summary. Raises :class:`NotFound` for an unknown run."""
        with session(self._engine) as db:
            row = db.get(RunRow, run_id)
            if row is None:
                raise NotFound(f"no run {run_id!r}")
            row.finished_at = finished_at
            row.summary = dict(summary or {})
            db.add(row)
            db.flush()
            db.refresh(row)
            return row

    def run(self, run_id: str) -> RunRow | None:
        with session(self._engine) as db:
            return db.get(RunRow, run_id)

    def latest_run(self, *, mode: str | None = None) -> RunRow | None:
        """The most recently started run (optionally of one ``mode``)."""
        query = select(RunRow).order_by(col(RunRow.started_at).desc(), col(RunRow.run_id).desc())
        if mode is not None:
            query = query.where(RunRow.mode == mode)
        with session(self._engine) as db:
            return db.exec(query.limit(1)).first()

    def runs(self, *, limit: int | None = None) -> list[RunRow]:
        """Runs, newest first."""
        query = select(RunRow).order_by(col(RunRow.started_at).desc()).limit(limit)
        with session(self._engine) as db:
            return list(db.exec(query).all())

    # --- bulk writers -------------------------------------------------------------------------

    def add_orders(self, rows: Rows) -> int:
        """Upsert orders by ``client_order_id``; a re-added order's other columns are updated."""
        params = row_dicts(OrderRow, rows)
        table = table_of(OrderRow)
        update = [c.name for c in table.columns if not c.primary_key]
        with session(self._engine) as db:
            upsert(db, table, params, key=["client_order_id"], update=update)
        return len(params)

    def add_fills(self, rows: Rows) -> int:
        """Insert fills; a ``fill_id`` already stored is skipped (replayed broker reports)."""
        params = row_dicts(FillRow, rows)
        with session(self._engine) as db:
            upsert(db, table_of(FillRow), params, key=["fill_id"])
        return len(params)

    def add_trades(self, rows: Rows) -> int:
        return self._insert(TradeRow, rows)

    def add_decisions(self, rows: Rows) -> int:
        return self._insert(DecisionRow, rows)

    def add_equity_snapshots(self, rows: Rows) -> int:
        return self._insert(EquitySnapshotRow, rows)

    def add_position_snapshots(self, rows: Rows) -> int:
        return self._insert(PositionSnapshotRow, rows)

    def _insert(self, model: type[SQLModel], rows: Rows) -> int:
        params = row_dicts(model, rows)
        if params:
            with session(self._engine) as db:
                db.execute(insert(table_of(model)), params)
        return len(params)

    # --- queries ------------------------------------------------------------------------------

    def orders(self, *, run_id: str | None = None, status: str | None = None) -> list[OrderRow]:
        query = select(OrderRow).order_by(col(OrderRow.submitted_at), col(OrderRow.client_order_id))
        query = _equal(query, OrderRow, run_id=run_id, status=status)
        with session(self._engine) as db:
            return list(db.exec(query).all())

    def fills(
        self, *, run_id: str | None = None, client_order_id: str | None = None
    ) -> list[FillRow]:
        query = select(FillRow).order_by(col(FillRow.timestamp), col(FillRow.fill_id))
        query = _equal(query, FillRow, run_id=run_id, client_order_id=client_order_id)
        with session(self._engine) as db:
            return list(db.exec(query).all())

    def trades(
        self,
        run_id: str | None = None,
        strategy: str | None = None,
        since: datetime | None = None,
        *,
        symbol: str | None = None,
    ) -> list[TradeRow]:
        """Round trips in exit order; ``since`` filters on ``exit_time`` (inclusive)."""
        query = select(TradeRow).order_by(col(TradeRow.exit_time), col(TradeRow.id))
        query = _equal(query, TradeRow, run_id=run_id, strategy=strategy, symbol=symbol)
        if since is not None:
            query = query.where(col(TradeRow.exit_time) >= since)
        with session(self._engine) as db:
            return list(db.exec(query).all())

    def equity_curve(self, run_id: str) -> list[EquitySnapshotRow]:
        """A run's equity snapshots in time order."""
        query = (
            select(EquitySnapshotRow)
            .where(EquitySnapshotRow.run_id == run_id)
            .order_by(col(EquitySnapshotRow.timestamp), col(EquitySnapshotRow.id))
        )
        with session(self._engine) as db:
            return list(db.exec(query).all())

    def position_snapshots(
        self, run_id: str, *, symbol: str | None = None
    ) -> list[PositionSnapshotRow]:
        query = (
            select(PositionSnapshotRow)
            .where(PositionSnapshotRow.run_id == run_id)
            .order_by(col(PositionSnapshotRow.timestamp), col(PositionSnapshotRow.id))
        )
        query = _equal(query, PositionSnapshotRow, symbol=symbol)
        with session(self._engine) as db:
            return list(db.exec(query).all())

    def decisions(
        self,
        run_id: str | None = None,
        *,
        strategy: str | None = None,
        symbol: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[DecisionRow]:
        """Decisions in time order; ``since`` inclusive, ``until`` exclusive."""
        query = select(DecisionRow).order_by(col(DecisionRow.timestamp), col(DecisionRow.id))
        query = _equal(query, DecisionRow, run_id=run_id, strategy=strategy, symbol=symbol)
        if since is not None:
            query = query.where(col(DecisionRow.timestamp) >= since)
        if until is not None:
            query = query.where(col(DecisionRow.timestamp) < until)
        with session(self._engine) as db:
            return list(db.exec(query.limit(limit)).all())


__all__ = ["Rows", "TradeMemory"]


def _equal(query: Any, table: type[SQLModel], **values: object) -> Any:
    """``query`` narrowed to rows whose columns equal the given values; None means any."""
    for name, value in values.items():
        if value is not None:
            query = query.where(getattr(table, name) == value)
    return query
