"""ConstitutionStore and SupervisorStore."""

from __future__ import annotations

import hashlib
from datetime import UTC, timedelta

import pytest
from sqlalchemy import Engine

from sovereign.memory import ConstitutionStore, SupervisorStore

from .conftest import T0

TOML = "max_drawdown = 0.10\nmax_position_size = 0.05\n"


def test_constitution_snapshots(engine: Engine) -> None:
    store = ConstitutionStore(engine)
    assert store.latest() is None
    first = hashlib.sha256(TOML.encode()).hexdigest()
    store.record(first, TOML, at=T0)
    amended = TOML + "max_daily_loss = 0.02\n"
    second = hashlib.sha256(amended.encode()).hexdigest()
    store.record(second, amended, at=T0 + timedelta(days=3), amended_by="alice", note="tighter")
    latest = store.latest()
    assert latest is not None
    assert (latest.sha256, latest.content, latest.amended_by, latest.note) == (
        second, amended, "alice", "tighter",
    )  # fmt: skip
    assert latest.recorded_at == T0 + timedelta(days=3)
    assert latest.recorded_at.tzinfo is UTC
    assert [s.sha256 for s in store.history()] == [first, second]


def test_constitution_hash_must_be_a_sha256(engine: Engine) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        ConstitutionStore(engine).record("abc", TOML, at=T0)


def test_supervisor_transitions(engine: Engine) -> None:
    store = SupervisorStore(engine)
    for minutes, scope, from_state, to_state, reason, run_id in [
        (0, "global", "running", "halted", "drawdown 10.2%", "live-1"),
        (1, "strategy:momentum", "active", "stood_down", "stale data", None),
        (60, "global", "halted", "running", "resumed by alice", None),
    ]:
        store.record_transition(
            at=T0 + timedelta(minutes=minutes),
            scope=scope,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            run_id=run_id,
        )
    everything = store.transitions()
    assert [t.to_state for t in everything] == ["halted", "stood_down", "running"]
    assert [t.to_state for t in store.transitions(scope="global")] == ["halted", "running"]
    assert [t.to_state for t in store.transitions(limit=1)] == ["running"]
    assert [t.reason for t in store.transitions(run_id="live-1")] == ["drawdown 10.2%"]
    assert len(store.transitions(since=T0 + timedelta(minutes=1))) == 2
    with pytest.raises(ValueError, match="scope"):
        store.record_transition(at=T0, scope="momentum", from_state="a", to_state="b")


def test_kv_state_round_trip(engine: Engine) -> None:
    store = SupervisorStore(engine)
    assert store.load_state("halted") is None
    store.save_state("halted", {"halted": True, "reason": "drawdown", "by": None}, T0)
    store.save_state("halted", {"halted": False}, T0 + timedelta(hours=1))
    assert store.load_state("halted") == {"halted": False}
    assert store.state_updated_at("halted") == T0 + timedelta(hours=1)
    with pytest.raises(ValueError, match="finite JSON"):
        store.save_state("x", {"v": float("nan")}, T0)
    assert store.load_state("x") is None
