"""TradeMemory: runs, bulk writers (50k rows), idempotent orders and fills, queries."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine

from sovereign.errors import IntegrityError
from sovereign.memory import (
    DecisionRow,
    EquitySnapshotRow,
    NotFound,
    OrderRow,
    TradeRow,
)
from sovereign.memory.trade_memory import TradeMemory

from .conftest import T0


@pytest.fixture
def mem(engine: Engine) -> TradeMemory:
    m = TradeMemory(engine)
    m.record_run_start("bt-1", started_at=T0, mode="backtest", seed=42, config={"years": 3})
    return m


def _trade(i: int, *, run_id: str = "bt-1", strategy: str = "momentum") -> dict[str, Any]:
    entry = T0 + timedelta(hours=i)
    return {
        "run_id": run_id,
        "strategy": strategy,
        "symbol": f"S{i % 20:02d}",
        "side": "buy",
        "quantity": 10.0 + i,
        "entry_time": entry,
        "exit_time": entry + timedelta(hours=5),
        "entry_price": 100.0,
        "exit_price": 101.0 + i * 1e-4,
        "pnl": 10.0,
        "return_pct": 0.01,
        "entry_reason": "signal",
        "exit_reason": "take_profit",
        "regime_at_entry": "trending_up",
        "confidence": 0.7,
        "rules_touched": ["r-abc"],
        "ruleset_version": "3",
    }


def test_runs_start_finish_latest(mem: TradeMemory) -> None:
    mem.record_run_start("paper-1", started_at=T0 + timedelta(days=1), mode="paper")
    latest = mem.latest_run()
    assert latest is not None
    assert latest.run_id == "paper-1"
    bt = mem.latest_run(mode="backtest")
    assert bt is not None
    assert (bt.run_id, bt.seed, bt.config) == ("bt-1", 42, {"years": 3})
    done = mem.record_run_finish(
        "bt-1", finished_at=T0 + timedelta(hours=2), summary={"sharpe": 1.2}
    )
    assert done.finished_at == T0 + timedelta(hours=2)
    assert done.finished_at.tzinfo is UTC
    stored = mem.run("bt-1")
    assert stored is not None
    assert stored.summary == {"sharpe": 1.2}
    assert [r.run_id for r in mem.runs()] == ["paper-1", "bt-1"]


def test_run_start_is_idempotent_but_not_overwritable(mem: TradeMemory) -> None:
    again = mem.record_run_start(
        "bt-1", started_at=T0, mode="backtest", seed=42, config={"years": 3}
    )
    assert again.run_id == "bt-1"
    with pytest.raises(IntegrityError, match="other settings"):
        mem.record_run_start("bt-1", started_at=T0, mode="backtest", seed=7)


def test_finish_of_unknown_run_is_not_found(mem: TradeMemory) -> None:
    with pytest.raises(NotFound):
        mem.record_run_finish("nope", finished_at=T0)


def test_bulk_insert_of_50k_trades(mem: TradeMemory, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [_trade(i) for i in range(50_000)]
    started = time.perf_counter()
    assert mem.add_trades(rows) == 50_000
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n  bulk insert of 50,000 trades into SQLite: {elapsed:.2f}s")
    assert elapsed < 30  # generous bound: a row-by-row ORM add would take minutes
    trades = mem.trades(run_id="bt-1")
    assert len(trades) == 50_000
    assert trades[123].quantity == 133.0
    assert trades[123].rules_touched == ["r-abc"]
    assert trades[0].exit_time.tzinfo is UTC


def test_failed_bulk_insert_writes_nothing(mem: TradeMemory) -> None:
    rows = [_trade(i) for i in range(1_000)]
    rows[-1]["exit_time"] = datetime(2024, 1, 1)  # noqa: DTZ001 - the bad row
    with pytest.raises(sqlalchemy.exc.StatementError, match="naive"):
        mem.add_trades(rows)
    rows[-1] = _trade(999, run_id="no-such-run")
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="FOREIGN KEY"):
        mem.add_trades(rows)
    assert mem.trades() == []


def test_rows_are_checked_for_unknown_and_missing_columns(mem: TradeMemory) -> None:
    with pytest.raises(ValueError, match=r"row 1: unknown column\(s\) \['colour'\]"):
        mem.add_trades([_trade(0), {**_trade(1), "colour": "red"}])
    incomplete = _trade(0)
    del incomplete["pnl"]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['pnl'\]"):
        mem.add_trades([incomplete])
    with pytest.raises(TypeError, match="expected a TradeRow or a mapping"):
        mem.add_trades([42])  # type: ignore[list-item]


def test_table_objects_and_defaults(mem: TradeMemory) -> None:
    minimal = {k: v for k, v in _trade(0).items() if k not in {"rules_touched", "entry_reason"}}
    assert mem.add_trades([TradeRow(**_trade(1)), minimal]) == 2
    by_qty = {t.quantity: t for t in mem.trades()}
    assert by_qty[10.0].rules_touched == []
    assert by_qty[10.0].entry_reason == ""
    assert by_qty[11.0].rules_touched == ["r-abc"]


def test_trade_queries_filter(mem: TradeMemory) -> None:
    mem.record_run_start("bt-2", started_at=T0, mode="backtest")
    mem.add_trades([_trade(i) for i in range(10)])
    mem.add_trades([_trade(i, run_id="bt-2", strategy="meanrev") for i in range(4)])
    assert len(mem.trades()) == 14
    assert len(mem.trades(strategy="meanrev")) == 4
    assert len(mem.trades(run_id="bt-1", strategy="meanrev")) == 0
    since = T0 + timedelta(hours=5 + 7)  # exits at T0 + i h + 5 h
    assert [t.quantity for t in mem.trades(run_id="bt-1", since=since)] == [17.0, 18.0, 19.0]
    assert len(mem.trades(symbol="S01")) == 2


def _order(coid: str, status: str) -> dict[str, Any]:
    return {
        "client_order_id": coid,
        "run_id": "bt-1",
        "strategy": "momentum",
        "symbol": "AAPL",
        "side": "buy",
        "equity_fraction": 0.02,
        "status": status,
        "submitted_at": T0,
        "ruleset_version": "1",
    }


def test_orders_upsert_by_client_order_id(mem: TradeMemory) -> None:
    mem.add_orders([_order("sv-a", "new"), _order("sv-b", "new")])
    mem.add_orders([OrderRow(**_order("sv-a", "filled"))])
    orders = {o.client_order_id: o for o in mem.orders(run_id="bt-1")}
    assert (orders["sv-a"].status, orders["sv-b"].status) == ("filled", "new")
    assert orders["sv-a"].quantity is None
    assert orders["sv-a"].order_type == "market"
    assert [o.client_order_id for o in mem.orders(status="new")] == ["sv-b"]


def test_fills_are_recorded_once(mem: TradeMemory) -> None:
    fill = {
        "fill_id": "f1",
        "client_order_id": "sv-a",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": 5.0,
        "price": 190.5,
        "commission": 1.0,
        "slippage_cost": 0.25,
        "timestamp": T0,
        "strategy": "momentum",
        "run_id": "bt-1",
    }
    mem.add_fills([fill])
    mem.add_fills([fill, {**fill, "fill_id": "f2", "quantity": 3.0}])  # a replayed report
    fills = mem.fills(client_order_id="sv-a")
    assert [(f.fill_id, f.quantity) for f in fills] == [("f1", 5.0), ("f2", 3.0)]


def test_equity_curve_in_time_order(mem: TradeMemory) -> None:
    snaps = [
        EquitySnapshotRow(
            run_id="bt-1", timestamp=T0 + timedelta(days=d), equity=100.0 + d, cash=50.0
        )
        for d in (2, 0, 1)
    ]
    assert mem.add_equity_snapshots(snaps) == 3
    curve = mem.equity_curve("bt-1")
    assert [s.equity for s in curve] == [100.0, 101.0, 102.0]
    assert curve[0].supervisor_state == ""
    assert mem.equity_curve("other") == []


def test_position_snapshots(mem: TradeMemory) -> None:
    mem.add_position_snapshots(
        [
            {
                "run_id": "bt-1",
                "timestamp": T0,
                "symbol": "AAPL",
                "quantity": -3.0,
                "avg_price": 1.0,
            },
            {
                "run_id": "bt-1",
                "timestamp": T0,
                "symbol": "MSFT",
                "quantity": 2.0,
                "avg_price": 2.0,
            },
        ]
    )
    assert [p.quantity for p in mem.position_snapshots("bt-1", symbol="AAPL")] == [-3.0]


def test_decisions_keep_their_inputs(mem: TradeMemory) -> None:
    decisions = [
        DecisionRow(
            run_id="bt-1",
            timestamp=T0 + timedelta(days=i),
            strategy="momentum",
            symbol="AAPL",
            action="skip" if i % 2 else "enter",
            confidence=0.55,
            regime="volatile",
            outcome="blocked_by_rule" if i % 2 else "ordered",
            reason="r1: too volatile" if i % 2 else "",
            rules_fired=["r-1"] if i % 2 else [],
            inputs={"bar_time": (T0 + timedelta(days=i)).isoformat(), "atr_pct": 2.5, "ruleset": 3},
        )
        for i in range(6)
    ]
    assert mem.add_decisions(decisions) == 6
    got = mem.decisions("bt-1", since=T0 + timedelta(days=1), until=T0 + timedelta(days=4))
    assert [d.timestamp.day for d in got] == [3, 4, 5]
    assert got[0].inputs == {"bar_time": "2024-01-03T14:30:00+00:00", "atr_pct": 2.5, "ruleset": 3}
    assert len(mem.decisions(symbol="MSFT")) == 0
    assert len(mem.decisions(strategy="momentum", limit=2)) == 2


def test_empty_writes_are_no_ops(mem: TradeMemory) -> None:
    assert mem.add_trades([]) == 0
    assert mem.add_orders([]) == 0
    assert mem.add_fills([]) == 0
