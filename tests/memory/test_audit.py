"""The hash-chained audit log: appends, verification, every kind of tampering, triggers."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, timedelta, timezone

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine

from sovereign.memory import GENESIS_HASH, AuditLog, entry_hash, make_engine

from .conftest import T0


@pytest.fixture
def log(engine: Engine) -> AuditLog:
    return AuditLog(engine)


def _fill(log: AuditLog, n: int = 5) -> None:
    log.append_many(
        [("deploy", {"version": i, "note": f"n{i}"}, T0 + timedelta(minutes=i)) for i in range(n)]
    )


def _raw(engine: Engine, *statements: str | tuple[str, tuple[object, ...]]) -> None:
    """Tamper as an attacker with write access would: drop the triggers, then edit."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_delete")
        for statement in statements:
            sql, params = statement if isinstance(statement, tuple) else (statement, ())
            conn.exec_driver_sql(sql, params)


def test_first_entry_links_to_genesis_with_the_documented_hash(log: AuditLog) -> None:
    entry = log.append("halt", {"reason": "drawdown", "value": 0.1}, T0)
    assert entry.seq == 1
    assert entry.prev_hash == GENESIS_HASH == "0" * 64
    body = json.dumps(
        {
            "seq": 1,
            "timestamp": "2024-01-02T14:30:00+00:00",
            "kind": "halt",
            "payload": {"reason": "drawdown", "value": 0.1},
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    assert entry.hash == hashlib.sha256(("0" * 64 + body).encode()).hexdigest()


def test_appends_chain_and_verify(log: AuditLog) -> None:
    a = log.append("deploy", {"version": 1}, T0)
    b = log.append("rollback", {"to": 1, "ids": (1, 2)}, T0 + timedelta(hours=1))
    assert b.seq == 2
    assert b.prev_hash == a.hash
    assert b.payload == {"to": 1, "ids": [1, 2]}  # stored (and hashed) in JSON form
    result = log.verify()
    assert result.ok
    assert result.rows == 2
    assert result.first_bad_seq is None
    assert result.head_hash == b.hash


def test_append_many_and_tail(log: AuditLog) -> None:
    _fill(log, 10)
    tail = log.tail(3)
    assert [e.seq for e in tail] == [8, 9, 10]
    assert all(e.timestamp.tzinfo is UTC for e in tail)
    assert tail[-1].payload == {"version": 9, "note": "n9"}
    head = log.head()
    assert head is not None
    assert head.seq == 10
    assert [e.seq for e in log.entries(kind="deploy", since=T0 + timedelta(minutes=8))] == [9, 10]
    assert log.append_many([]) == []
    assert log.verify().rows == 10


def test_stored_rows_recompute_to_their_hash(log: AuditLog) -> None:
    other_zone = timezone(timedelta(hours=-5))
    log.append("note", {"x": 1.5, "nested": {"b": [1, None, "é"]}}, T0.astimezone(other_zone))
    (e,) = log.tail(1)
    assert e.timestamp == T0
    assert e.hash == entry_hash(
        e.prev_hash, seq=e.seq, timestamp=e.timestamp, kind=e.kind, payload=e.payload
    )


def test_empty_log_verifies(log: AuditLog) -> None:
    result = log.verify()
    assert (result.ok, result.rows, result.head_hash) == (True, 0, None)


@pytest.mark.parametrize(
    "payload",
    [{"x": float("nan")}, {"x": float("inf")}, {"x": object()}, {1: "a", "b": 2}],
    ids=["nan", "inf", "object", "mixed-keys"],
)
def test_payload_must_be_finite_json(log: AuditLog, payload: dict[object, object]) -> None:
    with pytest.raises(ValueError, match="not finite JSON"):
        log.append("bad", payload, T0)  # type: ignore[arg-type]
    assert log.verify().rows == 0


def test_naive_timestamp_is_refused(log: AuditLog) -> None:
    with pytest.raises(ValueError, match="naive"):
        log.append("x", {}, T0.replace(tzinfo=None))


def test_a_bad_entry_in_a_batch_writes_nothing(log: AuditLog) -> None:
    with pytest.raises(ValueError, match="not finite JSON"):
        log.append_many([("a", {}, T0), ("b", {"x": float("nan")}, T0)])
    assert log.verify().rows == 0


def test_triggers_refuse_update_and_delete(engine: Engine, log: AuditLog) -> None:
    _fill(log, 2)
    for statement in (
        "UPDATE audit_log SET kind = 'forged' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_log",
    ):
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"), engine.begin() as c:
            c.exec_driver_sql(statement)
    assert log.verify().ok
    assert log.verify().rows == 2


def test_edited_payload_is_detected(engine: Engine, log: AuditLog) -> None:
    _fill(log)
    _raw(engine, """UPDATE audit_log SET payload = '{"version": 99, "note": "n2"}' WHERE seq = 3""")
    result = log.verify()
    assert not result.ok
    assert result.first_bad_seq == 3
    assert result.rows == 2
    assert "edited" in result.reason


def test_edited_row_with_recomputed_hash_breaks_the_next_link(
    engine: Engine, log: AuditLog
) -> None:
    _fill(log)
    (third,) = [e for e in log.tail(5) if e.seq == 3]
    forged = {"version": 99, "note": "n2"}
    new_hash = entry_hash(
        third.prev_hash, seq=3, timestamp=third.timestamp, kind="deploy", payload=forged
    )
    _raw(
        engine,
        (
            "UPDATE audit_log SET payload = ?, hash = ? WHERE seq = 3",
            (json.dumps(forged), new_hash),
        ),
    )
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "prev_hash" in result.reason


def test_deleted_row_is_detected(engine: Engine, log: AuditLog) -> None:
    _fill(log)
    _raw(engine, "DELETE FROM audit_log WHERE seq = 2")
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.rows) == (False, 3, 1)
    assert "missing" in result.reason


def test_reordered_rows_are_detected(engine: Engine, log: AuditLog) -> None:
    _fill(log)
    # Swap the contents of rows 2 and 3 (keeping each row's own hash), via a free seq.
    _raw(
        engine,
        "UPDATE audit_log SET seq = 100 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 100",
    )
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 2)


def test_truncated_tail_is_detected_against_an_external_head(engine: Engine, log: AuditLog) -> None:
    _fill(log)
    head = log.verify().head_hash
    assert head is not None
    assert log.verify(expected_head=head).ok
    _raw(engine, "DELETE FROM audit_log WHERE seq = 5")
    assert log.verify().ok  # a shorter chain is still a valid chain ...
    result = log.verify(expected_head=head)  # ... but not the one that was announced
    assert (result.ok, result.first_bad_seq, result.rows) == (False, 5, 4)


def test_concurrent_writers_do_not_fork_the_chain(engine: Engine) -> None:
    writers, per_writer = 4, 25
    errors: list[BaseException] = []

    def write(w: int) -> None:
        eng = make_engine(engine.url)  # its own connection pool, like another process
        try:
            log = AuditLog(eng)
            for i in range(per_writer):
                log.append("tick", {"writer": w, "i": i}, T0 + timedelta(seconds=i))
        except BaseException as err:
            errors.append(err)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = AuditLog(engine).verify()
    assert result.ok
    assert result.rows == writers * per_writer
