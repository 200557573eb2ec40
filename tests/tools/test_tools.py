"""The read-only memory tools on a real, migrated SQLite file (and on a real PostgreSQL server
when one can be started): what they return, and that nothing can write through them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy.exc
from pydantic import ValidationError
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from sovereign.constitution import Constitution, default_path, file_sha256
from sovereign.errors import ConfigError
from sovereign.memory import ConstitutionStore, RuleStore, TradeMemory, make_engine, upgrade
from sovereign.rules import Regime, RegimeIs, Rule, RuleSet, ScalePosition
from sovereign.tools import (
    memory_tools,
    read_only_connect_args,
    read_only_engine,
    readonly_memory_tools,
    sqlite_read_only_url,
)

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)  # a Monday
RULE = Rule(
    name="halve-volatile", when=RegimeIs(regime=Regime.VOLATILE), then=ScalePosition(factor=0.5)
)

# (strategy, symbol, regime, entry day offset from Monday, pnl, return_pct, exit reason)
TRADES = [
    ("momentum", "AAPL", "volatile", 0, -30.0, -3.0, "stop"),
    ("momentum", "AAPL", "volatile", 0, 10.0, 1.0, "take profit"),
    ("momentum", "MSFT", "trending_up", 2, 50.0, 5.0, "regime change"),
    ("regime_entry", "MSFT", None, 2, -10.0, -1.0, "x" * 300),
]


def _trade(i: int, strategy: str, symbol: str, regime, day: int, pnl, ret, reason) -> dict:
    entry = T0 + timedelta(days=day)
    return {
        "run_id": "run-1",
        "strategy": strategy,
        "symbol": symbol,
        "side": "long",
        "quantity": 10.0,
        "entry_time": entry,
        "exit_time": entry + timedelta(hours=1 + i),
        "entry_price": 100.0,
        "exit_price": 100.0 + pnl / 10,
        "pnl": pnl,
        "return_pct": ret,
        "regime_at_entry": regime,
        "exit_reason": reason,
    }


def fill(engine: Engine) -> None:
    memory = TradeMemory(engine)
    memory.record_run_start("run-1", started_at=T0 - timedelta(days=1), mode="paper")
    memory.add_trades([_trade(i, *t) for i, t in enumerate(TRADES)])
    RuleStore(engine).save_version(RuleSet(), reason="empty", source="human", at=T0)
    RuleStore(engine).save_version(
        RuleSet(rules=(RULE,)), reason="deploy p-1", source="heuristic", at=T0 + timedelta(days=1)
    )
    path = default_path()
    ConstitutionStore(engine).record(file_sha256(path), path.read_text(), at=T0)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'memory.db'}"
    engine = make_engine(url)
    upgrade(engine)
    fill(engine)
    engine.dispose()
    return url


@pytest.fixture
def tools(db_url: str) -> Iterator[dict]:
    engine, built = readonly_memory_tools(db_url)
    yield {t.name: t for t in built}
    engine.dispose()


def call(tools: dict, name: str, **args: object) -> dict:
    out = tools[name].invoke(args)
    assert isinstance(out, str) and ": " not in out and ", " not in out[:200]  # compact JSON
    return json.loads(out)


def test_writes_through_the_tools_engine_fail(db_url: str) -> None:
    engine = read_only_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM trades")).scalar() == 4
            assert conn.execute(text("PRAGMA query_only")).scalar() == 1
        with pytest.raises(sqlalchemy.exc.OperationalError, match="readonly database"):  # noqa: SIM117
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM trades"))
        # switching query_only off does not help: the file itself is open read-only
        insert = text("INSERT INTO kv_state (key, value, updated_at) VALUES ('k', '{}', '2024')")
        with engine.begin() as conn:
            conn.execute(text("PRAGMA query_only=OFF"))
            assert conn.execute(text("PRAGMA query_only")).scalar() == 0
            with pytest.raises(sqlalchemy.exc.OperationalError, match="readonly database"):
                conn.execute(insert)
    finally:
        engine.dispose()
    writer = make_engine(db_url)
    with writer.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM trades")).scalar() == 4
        assert conn.execute(text("SELECT count(*) FROM kv_state")).scalar() == 0
    writer.dispose()


def test_the_tools_see_what_the_application_writes_meanwhile(db_url: str, tools: dict) -> None:
    writer = make_engine(db_url)
    TradeMemory(writer).add_trades([_trade(9, "momentum", "NVDA", "ranging", 4, 7.0, 0.7, "tp")])
    writer.dispose()
    newest = call(tools, "recent_trades", n=1)["trades"][0]
    assert (newest["symbol"], newest["pnl"]) == ("NVDA", 7.0)


def test_recent_trades_newest_first_with_filter_and_clipped_text(tools: dict) -> None:
    out = call(tools, "recent_trades", n=3)
    assert out["count"] == 3
    assert [(t["symbol"], t["pnl"]) for t in out["trades"]] == [
        ("MSFT", -10.0),
        ("MSFT", 50.0),
        ("AAPL", 10.0),
    ]
    assert out["trades"][0]["exit_reason"] == "x" * 200 + "…"
    assert out["trades"][0]["regime"] is None
    assert out["trades"][1]["entry_time"] == "2024-03-06T15:00:00+00:00"
    only = call(tools, "recent_trades", n=10, strategy="regime_entry")
    assert [t["strategy"] for t in only["trades"]] == ["regime_entry"]


def test_performance_by_regime_and_weekday(tools: dict) -> None:
    by_regime = call(tools, "performance_by", dimension="regime")
    assert by_regime["groups"] == [
        {"key": "trending_up", "trades": 1, "wins": 1, "win_rate": 1.0, "total_pnl": 50.0, "avg_pnl": 50.0, "avg_return_pct": 5.0},
        {"key": "unknown", "trades": 1, "wins": 0, "win_rate": 0.0, "total_pnl": -10.0, "avg_pnl": -10.0, "avg_return_pct": -1.0},
        {"key": "volatile", "trades": 2, "wins": 1, "win_rate": 0.5, "total_pnl": -20.0, "avg_pnl": -10.0, "avg_return_pct": -1.0},
    ]  # fmt: skip
    by_day = call(tools, "performance_by", dimension="weekday")["groups"]
    assert [(g["key"], g["trades"], g["total_pnl"]) for g in by_day] == [
        ("Monday", 2, -20.0),
        ("Wednesday", 2, 40.0),
    ]
    by_symbol = call(tools, "performance_by", dimension="symbol", strategy="momentum")["groups"]
    assert [(g["key"], g["trades"], g["win_rate"]) for g in by_symbol] == [
        ("AAPL", 2, 0.5),
        ("MSFT", 1, 1.0),
    ]
    by_strategy = call(tools, "performance_by", dimension="strategy")["groups"]
    assert [(g["key"], g["total_pnl"]) for g in by_strategy] == [
        ("momentum", 30.0),
        ("regime_entry", -10.0),
    ]


def test_rules_history_and_constitution(tools: dict, db_url: str) -> None:
    active = call(tools, "active_rules")
    assert active["version"] == 2 and active["ruleset_id"] == RuleSet(rules=(RULE,)).id
    assert active["rules"] == [{"id": RULE.id, **RULE.model_dump(mode="json")}]
    history = call(tools, "rule_history", n=5)["versions"]
    assert [(v["version"], v["rules"], v["reason"], v["parent_version"]) for v in history] == [
        (2, 1, "deploy p-1", 1),
        (1, 0, "empty", None),
    ]
    summary = call(tools, "constitution_summary")
    assert summary["sha256"] == file_sha256(default_path())
    assert summary["constitution"]["max_drawdown"] == 0.1
    given = Constitution(max_position_size=0.02)
    engine = read_only_engine(db_url)
    explicit = {t.name: t for t in memory_tools(engine, constitution=given)}
    assert call(explicit, "constitution_summary")["constitution"]["max_position_size"] == 0.02
    engine.dispose()


def test_arguments_are_validated(tools: dict) -> None:
    with pytest.raises(ValidationError):
        tools["recent_trades"].invoke({"n": 0})
    with pytest.raises(ValidationError):
        tools["performance_by"].invoke({"dimension": "moon_phase"})
    with pytest.raises(ValidationError):
        tools["rule_history"].invoke({"n": 10, "drop": "table"})


def test_engines_that_cannot_be_read_only_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_only_engine(f"sqlite:///{tmp_path / 'missing.db'}")
    with pytest.raises(ConfigError, match="file path"):
        read_only_engine("sqlite://")
    with pytest.raises(ConfigError, match="mysql"):
        read_only_engine("mysql://u@127.0.0.1/db")
    url = sqlite_read_only_url(tmp_path / "a b.db")
    assert url.database == f"file:{(tmp_path / 'a%20b.db').as_posix()}"
    assert dict(url.query) == {"mode": "ro", "uri": "true"}
    assert read_only_connect_args("postgresql+psycopg://u@h/db") == {
        "options": "-c default_transaction_read_only=on"
    }


# --- PostgreSQL -------------------------------------------------------------------------------

try:  # a real server, started by the memory tests' fixture (skips when none can be)
    from tests.memory.test_postgres import _admin, pg_admin_url
except pytest.skip.Exception:  # psycopg missing
    pg_admin_url = None


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    name = f"sovereign_tools_{uuid.uuid4().hex[:12]}"
    _admin(pg_admin_url, f'CREATE DATABASE "{name}"')
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    fill(engine)
    engine.dispose()
    try:
        yield url
    finally:
        _admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.skipif(pg_admin_url is None, reason="psycopg is not installed")
def test_postgres_tools_read_and_cannot_write(pg_url: str) -> None:
    engine, built = readonly_memory_tools(pg_url)
    tools = {t.name: t for t in built}
    try:
        assert call(tools, "recent_trades", n=2)["count"] == 2
        assert call(tools, "active_rules")["version"] == 2
        with pytest.raises(sqlalchemy.exc.InternalError, match="read-only transaction"):  # noqa: SIM117
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM trades"))
    finally:
        engine.dispose()
