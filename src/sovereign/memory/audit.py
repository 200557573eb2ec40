"""The append-only, hash-chained audit log.

Each entry's hash is ``sha256(prev_hash + canonical_json({seq, timestamp, kind, payload}))``,
with ``timestamp`` as UTC ISO-8601 and the genesis ``prev_hash`` 64 zeros. Changing, deleting or
reordering any row breaks every hash after it, and :meth:`AuditLog.verify` reports the first
bad ``seq``. Database triggers refuse UPDATE and DELETE on the table (migration 0001), so
tampering needs someone to drop them first.

Appends are serialised: on SQLite the transaction starts with ``BEGIN IMMEDIATE`` (the write
lock is taken before the tail is read); on PostgreSQL the table is locked in EXCLUSIVE mode
(readers still read). Two writers therefore cannot both extend the same tail; the primary key on
``seq`` and the unique ``hash`` are a second line of defence.

What the chain cannot show on its own is a truncated tail: dropping the last rows leaves a valid
shorter chain. Keep the head hash somewhere else (an announcement, a backup) and pass it to
``verify(expected_head=...)``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, RowMapping, insert, select, text
from sqlmodel import Session

from sovereign.memory.db import joined, session
from sovereign.memory.tables import AuditLogRow, table_of
from sovereign.rules.hashing import canonical_json

GENESIS_HASH = "0" * 64
_TABLE = table_of(AuditLogRow)


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    """One link of the chain as stored."""

    seq: int
    timestamp: datetime
    kind: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditVerification:
    """Result of recomputing the chain. ``first_bad_seq`` is the seq of the first row that does
    not check out (for a deleted row, the row after the gap); None when ``ok``."""

    ok: bool
    rows: int
    first_bad_seq: int | None = None
    reason: str = ""
    head_hash: str | None = None


def entry_hash(prev_hash: str, *, seq: int, timestamp: datetime, kind: str, payload: Any) -> str:
    """The chain hash of one entry (see the module docstring)."""
    body = canonical_json(
        {"seq": seq, "timestamp": _iso(timestamp), "kind": kind, "payload": payload}
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


class AuditLog:
    """Append to, read and verify the audit chain in ``engine``'s database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def append(
        self, kind: str, payload: Mapping[str, Any], at: datetime, *, db: Session | None = None
    ) -> AuditEntry:
        """Append one entry at time ``at`` (tz-aware) and return it as stored."""
        return self.append_many([(kind, payload, at)], db=db)[0]

    def append_many(
        self,
        entries: Iterable[tuple[str, Mapping[str, Any], datetime]],
        *,
        db: Session | None = None,
    ) -> list[AuditEntry]:
        """Append ``(kind, payload, at)`` entries in order, in one transaction (all or none).

        Payloads must be JSON objects with finite numbers; they are stored in their JSON form
        (tuples become lists), which is also what is hashed. With ``db``, the entries join the
        caller's transaction (see :func:`~sovereign.memory.db.joined`).
        """
        prepared = [(_kind(kind), _normalise(payload), _utc(at)) for kind, payload, at in entries]
        if not prepared:
            return []
        with joined(self._engine, db, immediate=True) as tx:
            self._lock(tx)
            last = tx.execute(
                select(_TABLE.c.seq, _TABLE.c.hash).order_by(_TABLE.c.seq.desc()).limit(1)
            ).first()
            seq, prev = (last[0], last[1]) if last is not None else (0, GENESIS_HASH)
            out: list[AuditEntry] = []
            for kind, payload, at in prepared:
                seq += 1
                digest = entry_hash(prev, seq=seq, timestamp=at, kind=kind, payload=payload)
                out.append(
                    AuditEntry(
                        seq=seq,
                        timestamp=at,
                        kind=kind,
                        payload=payload,
                        prev_hash=prev,
                        hash=digest,
                    )
                )
                prev = digest
            tx.execute(
                insert(_TABLE),
                [
                    {
                        "seq": e.seq,
                        "timestamp": e.timestamp,
                        "kind": e.kind,
                        "payload": e.payload,
                        "prev_hash": e.prev_hash,
                        "hash": e.hash,
                    }
                    for e in out
                ],
            )
        return out

    def tail(self, n: int = 20) -> list[AuditEntry]:
        """The last ``n`` entries, oldest first."""
        with session(self._engine) as db:
            rows = db.execute(select(_TABLE).order_by(_TABLE.c.seq.desc()).limit(n)).all()
        return [_entry(row._mapping) for row in reversed(rows)]

    def head(self) -> AuditEntry | None:
        """The last entry, or None for an empty log."""
        last = self.tail(1)
        return last[0] if last else None

    def entries(
        self, *, kind: str | None = None, since: datetime | None = None
    ) -> list[AuditEntry]:
        """Entries in chain order, optionally of one ``kind`` and at or after ``since``."""
        query = select(_TABLE).order_by(_TABLE.c.seq)
        if kind is not None:
            query = query.where(_TABLE.c.kind == kind)
        if since is not None:
            query = query.where(_TABLE.c.timestamp >= since)
        with session(self._engine) as db:
            return [_entry(row._mapping) for row in db.execute(query)]

    def verify(self, *, expected_head: str | None = None) -> AuditVerification:
        """Recompute the whole chain from genesis; stop at the first row that does not check out.

        ``expected_head`` (a hash recorded outside the database) additionally proves that no
        rows were cut from the end.
        """
        expected_seq, prev, rows = 1, GENESIS_HASH, 0
        with self._engine.connect() as conn:
            # Streamed (a server-side cursor on PostgreSQL), so a long chain is not held in memory.
            result = conn.execution_options(yield_per=2_000).execute(
                select(_TABLE).order_by(_TABLE.c.seq)
            )
            with closing(result):
                for row in result:
                    e = _entry(row._mapping)
                    problem = _check(e, expected_seq=expected_seq, prev_hash=prev)
                    if problem:
                        return AuditVerification(
                            ok=False, rows=rows, first_bad_seq=e.seq, reason=problem, head_hash=prev
                        )
                    rows, expected_seq, prev = rows + 1, e.seq + 1, e.hash
        head = prev if rows else None
        if expected_head is not None and head != expected_head:
            return AuditVerification(
                ok=False,
                rows=rows,
                first_bad_seq=expected_seq,
                reason=f"head {head} is not the expected {expected_head}: rows cut from the end",
                head_hash=head,
            )
        return AuditVerification(ok=True, rows=rows, head_hash=head)

    @staticmethod
    def _lock(db: Session) -> None:
        if db.get_bind().dialect.name == "postgresql":
            db.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))


def _check(e: AuditEntry, *, expected_seq: int, prev_hash: str) -> str:
    if e.seq != expected_seq:
        return f"seq {e.seq} follows seq {expected_seq - 1}: row(s) missing or reordered"
    if e.prev_hash != prev_hash:
        return f"seq {e.seq}: prev_hash does not match the previous row's hash"
    recomputed = entry_hash(
        e.prev_hash, seq=e.seq, timestamp=e.timestamp, kind=e.kind, payload=e.payload
    )
    if recomputed != e.hash:
        return f"seq {e.seq}: content does not match its hash (edited row)"
    return ""


def _entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        timestamp=row["timestamp"],
        kind=row["kind"],
        payload=row["payload"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _iso(at: datetime) -> str:
    return _utc(at).isoformat()


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} refused: use timezone-aware UTC")
    return at.astimezone(UTC)


def _kind(kind: str) -> str:
    if not kind or not isinstance(kind, str):
        raise ValueError(f"audit kind must be a non-empty string, got {kind!r}")
    return kind


def _normalise(payload: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(payload, Mapping):
        raise TypeError(f"audit payload must be a mapping, got {type(payload).__name__}")
    try:
        text_form = json.dumps(payload, sort_keys=True, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"audit payload is not finite JSON: {err}") from err
    normalised: dict[str, Any] = json.loads(text_form)
    return normalised


__all__ = ["GENESIS_HASH", "AuditEntry", "AuditLog", "AuditVerification", "entry_hash"]
