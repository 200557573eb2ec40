"""The live loop (`sovereign run --broker alpaca`) over real HTTP against the Alpaca stub.

In-process: a trading cycle on the wall-clock driver sends an `sma_cross` entry (fast=10,
slow=20 over 40 daily bars whose last bar jumps through the slow average) with the
deterministic client order id, the stub fills it, the next cycle feeds the fill to the Trader
and memory, and the audit chain verifies. Acceptance: a real `sovereign run --broker alpaca`
subprocess is SIGKILLed right after its order reaches the stub; a restarted one reconciles,
sends no second order, and memory's positions match the stub's. A halt file refuses the start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sovereign.app.context import App
from sovereign.app.jobs import JobContext
from sovereign.app.live import CycleReport, LiveLoop, LiveOptions, run_live
from sovereign.app.reconcile import Reconciler
from sovereign.brokers.alpaca import AlpacaBroker, AlpacaData, RetryPolicy
from sovereign.brokers.models import Side, client_order_id
from sovereign.errors import HaltTrading
from sovereign.rules.rule import RuleSet
from sovereign.settings import Settings
from tests.brokers.alpaca_stub import KEY, SECRET, AlpacaStub

ACCOUNT = "test-account"
FAST = RetryPolicy(attempts=3, backoff_s=0.0, timeout_s=3.0)
N_BARS = 40


def _days() -> pd.DatetimeIndex:
    """N_BARS business days ending well before today (every bar has closed)."""
    end = pd.Timestamp(datetime.now(UTC).date()) - pd.offsets.BDay(3)
    return pd.bdate_range(end=end, periods=N_BARS)


def _bars(closes: list[float], days: pd.DatetimeIndex) -> list[dict[str, Any]]:
    """Daily bars stamped like Alpaca (05:00 UTC = 00:00 New York in winter)."""
    return [
        {
            "t": f"{day:%Y-%m-%d}T05:00:00Z",
            "o": c,
            "h": c + 0.5,
            "l": c - 0.5,
            "c": c,
            "v": 10_000 + k,
            "n": 100,
            "vw": c,
        }
        for k, (day, c) in enumerate(zip(days, closes, strict=True))
    ]


def make_stub() -> AlpacaStub:
    """AAA falls for 39 bars, then jumps: its 10-bar SMA crosses above the 20-bar SMA on the
    last bar. BBB rises steadily: no cross. Fills happen at 150 (AAA) / 70 (BBB)."""
    days = _days()
    aaa = [100 - 0.5 * k for k in range(N_BARS - 1)] + [150.0]
    bbb = [50 + 0.5 * k for k in range(N_BARS)]
    return AlpacaStub(
        symbols=("AAA", "BBB"),
        prices={"AAA": [150.0] * 50, "BBB": [70.0] * 50},
        bars={"AAA": _bars(aaa, days), "BBB": _bars(bbb, days)},
        now=days[-1].to_pydatetime().replace(tzinfo=UTC) + timedelta(days=1),
    )


def expected_coid(last_bar: datetime) -> str:
    return client_order_id(
        strategy="sma_cross",
        ruleset_version=RuleSet().id,
        symbol="AAA",
        signal_time=last_bar,
        leg="entry",
        namespace=ACCOUNT,
    )


def last_bar_time() -> datetime:
    return datetime.combine(_days()[-1].date(), datetime.min.time(), tzinfo=UTC)


@pytest.fixture
def stub() -> Iterator[AlpacaStub]:
    with make_stub() as s:
        yield s


@pytest.fixture
def app(home: Path) -> Iterator[App]:
    ctx = App.open(Settings())
    yield ctx
    ctx.dispose()


def _options(**kw: Any) -> LiveOptions:
    base: dict[str, Any] = {
        "symbols": ("AAA", "BBB"),
        "account": ACCOUNT,
        "strategies": ("sma_cross",),
        "poll": timedelta(seconds=0.2),
        "session_only": False,
        "lookback": timedelta(days=120),
        "improve": False,
    }
    return LiveOptions(**{**base, **kw})


def _clients(stub: AlpacaStub) -> tuple[AlpacaBroker, AlpacaData]:
    data = AlpacaData(
        api_key=KEY, secret_key=SECRET, data_url=stub.url, policy=FAST, sleep=lambda _s: None
    )
    broker = AlpacaBroker(
        api_key=KEY,
        secret_key=SECRET,
        base_url=stub.url,
        paper=True,
        policy=FAST,
        last_price=data.last_price,
        sleep=lambda _s: None,
    )
    return broker, data


# ------------------------------------------------------------------------- in process


def test_live_cycles_send_a_deterministic_order_and_book_its_fill(
    app: App, stub: AlpacaStub
) -> None:
    broker, data = _clients(stub)
    stop = threading.Event()
    cycles: list[CycleReport] = []

    def on_cycle(c: CycleReport) -> None:
        cycles.append(c)
        if len(cycles) == 1:
            stub.advance()  # the broker fills the entry before the next cycle
        elif len(cycles) >= 2:
            stop.set()

    report = run_live(
        app,
        _options(),
        broker=broker,
        data=data,
        stop=stop,
        on_cycle=on_cycle,
        handle_signals=False,
    )

    coid = expected_coid(last_bar_time())
    assert [o.client_order_id for o in stub.orders.values()] == [coid]
    posted = stub.requests_to("POST", "/v2/orders")
    assert [r.body["client_order_id"] for r in posted] == [coid]
    assert posted[0].body["symbol"] == "AAA" and posted[0].body["side"] == "buy"
    qty = float(posted[0].body["qty"])
    assert qty == 33  # 5% of 100,000 equity (max_position_size) at the last trade 150

    assert cycles[0].bar == last_bar_time() and cycles[0].orders == 1
    assert cycles[1].bar is None and cycles[1].fills == 1  # no new bar; the fill came back

    orders = app.memory.orders(run_id=report.run_id)
    assert [(o.client_order_id, o.status) for o in orders] == [(coid, "accepted")]
    fills = app.memory.fills(run_id=report.run_id)
    assert [(f.client_order_id, f.quantity, f.price, f.side) for f in fills] == [
        (coid, qty, 150.0, Side.BUY.value)
    ]
    run = app.memory.run(report.run_id)
    assert run is not None and run.mode == "paper-alpaca" and run.finished_at is not None
    assert run.config["account"] == ACCOUNT
    assert report.cycles >= 2 and report.orders == 1 and report.fills == 1
    assert app.audit.verify().ok
    kinds = {e.kind for e in app.audit.entries()}
    assert {"run.started", "reconcile.clean", "order.submitted", "order.filled"} <= kinds


def test_a_restarted_loop_recognises_its_order_and_rebuilds_its_position(
    app: App, stub: AlpacaStub
) -> None:
    reports = []
    for _ in range(2):
        broker, data = _clients(stub)  # a fresh adapter, as in a new process
        stop = threading.Event()
        reports.append(
            run_live(
                app,
                _options(),
                broker=broker,
                data=data,
                stop=stop,
                on_cycle=lambda _c, s=stop: s.set(),  # type: ignore[misc]
                handle_signals=False,
            )
        )
        stub.advance()  # the first run's order fills between the runs
    assert len(stub.orders) == 1
    assert len(stub.requests_to("POST", "/v2/orders")) == 1
    first, second = reports
    assert first.orders == 1 and first.positions == {}  # stopped before the fill
    # The restart derived the same client order id, the broker answered with the filled order,
    # and its fill (recorded by the reconciliation) rebuilt the Trader's book.
    assert second.fills == 1 and second.positions == {"AAA": 33.0}
    assert stub.positions["AAA"][0] == 33.0
    fills = [f for r in reports for f in app.memory.fills(run_id=r.run_id)]
    assert len(fills) == 1
    assert app.audit.verify().ok


def test_a_restart_restores_the_book_so_old_positions_keep_their_exits(
    app: App, stub: AlpacaStub
) -> None:
    broker, data = _clients(stub)
    stop = threading.Event()
    cycles: list[CycleReport] = []

    def on_cycle(c: CycleReport) -> None:
        cycles.append(c)
        if len(cycles) == 1:
            stub.advance()  # the entry fills before the second cycle
        else:
            stop.set()

    first = run_live(
        app,
        _options(),
        broker=broker,
        data=data,
        stop=stop,
        on_cycle=on_cycle,
        handle_signals=False,
    )
    assert first.positions == {"AAA": 33.0}
    saved = app.supervisor_store.load_state(f"book:{ACCOUNT}")
    assert saved is not None and {"book", "working", "pools", "last_bar_time"} <= set(saved)
    assert saved["pools"]["last_bar"] is not None  # the allocator saw the bars

    broker, data = _clients(stub)  # a new process
    loop = LiveLoop(app, _options(), broker=broker, data=data, now=stub.now)
    trade = loop.trader.book.open[("sma_cross", "AAA")]
    assert (trade.quantity, trade.entry_price, trade.side) == (33.0, 150.0, 1)
    assert trade.entry_reason and trade.ruleset_version == RuleSet().id  # why, and under what
    loop.trading_cycle(
        JobContext(name="trading_cycle", now=stub.now, market_open=True, simulated=False)
    )
    assert loop.panel is not None
    entry_bar = int(loop.panel.timestamps.searchsorted(trade.entry_time, side="right")) - 1
    assert loop.trader.book.open[("sma_cross", "AAA")].entry_bar == entry_bar >= 0
    assert len(stub.requests_to("POST", "/v2/orders")) == 1  # no second entry, no duplicate
    assert loop.trader.pools.snapshot()["last_bar"] == loop.last_i  # re-based on the new panel
    assert app.memory.fills(run_id=loop.run_id) == []  # the fill is not booked twice
    report = loop.close(stub.now)
    assert report.positions == {"AAA": 33.0}


def test_an_unreadable_saved_book_is_reported_and_ignored(
    app: App, stub: AlpacaStub, caplog: pytest.LogCaptureFixture
) -> None:
    app.supervisor_store.save_state(f"book:{ACCOUNT}", {"book": {"version": 9}}, stub.now)
    broker, data = _clients(stub)
    loop = LiveLoop(app, _options(), broker=broker, data=data, now=stub.now)
    assert loop.trader.book.open == {}
    assert "cannot be read" in caplog.text
    loop.close(stub.now)


def test_an_unreconciled_account_sends_no_new_risk(app: App, stub: AlpacaStub) -> None:
    stub.positions["BBB"] = (10.0, 50.0)  # a position we never traded: blocks new orders
    broker, data = _clients(stub)
    stop = threading.Event()
    cycles: list[CycleReport] = []

    def on_cycle(c: CycleReport) -> None:
        cycles.append(c)
        stop.set()

    report = run_live(
        app,
        _options(),
        broker=broker,
        data=data,
        stop=stop,
        on_cycle=on_cycle,
        handle_signals=False,
    )
    assert stub.requests_to("POST", "/v2/orders") == []
    assert cycles[0].orders == 0 and "not reconciled" in cycles[0].note
    orders = app.memory.orders(run_id=report.run_id)
    assert [(o.client_order_id, o.status) for o in orders] == [
        (expected_coid(last_bar_time()), "rejected")
    ]
    assert "not reconciled" in orders[0].reason


def test_the_live_loop_refuses_to_start_when_the_kill_switch_says_no(
    app: App, stub: AlpacaStub
) -> None:
    broker, data = _clients(stub)
    (app.settings.data_dir / "HALT").write_text("halted by a person\n")
    with pytest.raises(HaltTrading, match="halt file"):
        run_live(app, _options(), broker=broker, data=data, handle_signals=False)
    assert stub.requests == []  # not even a reconciliation
    assert app.memory.runs() == []


# ---------------------------------------------------------------------------- crash test


def _env(home: Path, stub: AlpacaStub) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOVEREIGN_", "APCA_"))}
    env.update(
        APCA_API_KEY_ID=KEY,
        APCA_API_SECRET_KEY=SECRET,
        SOVEREIGN_ALPACA__BASE_URL=stub.url,
        SOVEREIGN_ALPACA__DATA_URL=stub.url,
        SOVEREIGN_DATA_DIR=str(home / "var"),
        SOVEREIGN_CONSTITUTION_PATH=str(home / "constitution.toml"),
        SOVEREIGN_RUN__SEED="42",
    )
    return env


def _start(home: Path, stub: AlpacaStub, log: Path, out: Path) -> subprocess.Popen[bytes]:
    cli = Path(sys.executable).parent / "sovereign"
    args = [str(cli), "run", "--broker", "alpaca", "--symbol", "AAA", "--symbol", "BBB"]
    args += ["--strategy", "sma_cross", "--poll-seconds", "0.3", "--any-time"]
    args += ["--account", ACCOUNT, "--json"]
    with log.open("wb") as err, out.open("wb") as stdout:
        return subprocess.Popen(args, env=_env(home, stub), stdout=stdout, stderr=err, cwd=home)


def _wait_for(predicate: Any, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(
                f"the process exited ({proc.returncode}) before {what}:\n{log.read_text()}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()}")
        time.sleep(0.05)


def test_sigkill_after_submit_then_restart_reconciles_without_a_duplicate(
    home: Path, stub: AlpacaStub
) -> None:
    first_log, second_log = home / "first.log", home / "second.log"
    first = _start(home, stub, first_log, home / "first.json")
    _wait_for(lambda: stub.requests_to("POST", "/v2/orders"), first, first_log, "the order POST")
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL
    stub.advance()  # the order fills while nobody is watching

    before = len(stub.requests)
    second = _start(home, stub, second_log, home / "second.json")
    _wait_for(
        lambda: "cycle" in second_log.read_text() and "bar -" in second_log.read_text(),
        second,
        second_log,
        "a second cycle of the restarted process",
    )
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0, second_log.read_text()
    summary = json.loads((home / "second.json").read_text().strip().splitlines()[-1])
    # The re-derived entry was answered with the broker's filled order, whose fill rebuilt the
    # restarted Trader's book.
    assert summary["positions"] == {"AAA": 33.0}

    coid = expected_coid(last_bar_time())
    posts = stub.requests_to("POST", "/v2/orders")
    assert [r.body["client_order_id"] for r in posts] == [coid]  # one order, never re-sent
    assert [o.client_order_id for o in stub.orders.values()] == [coid]
    looked_up = [
        r.query["client_order_id"][0]
        for r in stub.requests[before:]
        if r.path == "/v2/orders:by_client_order_id"
    ]
    assert coid in looked_up  # the restart asked the broker about its pending order

    app = App.open(Settings(data_dir=home / "var"))
    try:
        runs = [r for r in app.memory.runs() if r.mode == "paper-alpaca"]
        assert len(runs) == 2
        killed, restarted = sorted(runs, key=lambda r: r.started_at)
        assert killed.finished_at is None and restarted.finished_at is not None
        positions: dict[str, float] = {}
        for run in runs:
            for f in app.memory.fills(run_id=run.run_id):
                positions[f.symbol] = positions.get(f.symbol, 0.0) + f.quantity * Side(f.side).sign
        assert positions == {s: q for s, (q, _) in stub.positions.items()}
        assert positions["AAA"] > 0
        rec = Reconciler(
            app,
            AlpacaBroker(api_key=KEY, secret_key=SECRET, base_url=stub.url, paper=True),
            run_id=restarted.run_id,
            run_ids=[killed.run_id],
            key=f"reconciliation:{ACCOUNT}",  # the account's gate, as the live loop keeps it
        )
        assert rec.may_trade(), rec.state()  # the restart's reconciliation found nothing blocking
        assert app.audit.verify().ok
    finally:
        app.dispose()


def test_a_halt_and_a_resume_by_a_person_reach_the_running_loop(app: App, stub: AlpacaStub) -> None:
    from sovereign.app import control

    broker, data = _clients(stub)
    stop = threading.Event()
    states: list[str] = []

    def on_cycle(c: CycleReport) -> None:
        states.append(c.state)
        if len(states) == 1:
            control.halt(app, by="alice", reason="news", now=c.at)
        elif len(states) == 2:
            control.resume(app, by="alice", now=c.at)
        elif len(states) >= 3:
            stop.set()

    run_live(
        app,
        _options(),
        broker=broker,
        data=data,
        stop=stop,
        on_cycle=on_cycle,
        handle_signals=False,
    )
    assert states[:3] == ["NORMAL", "HALTED", "NORMAL"]
    # The running loop did not overwrite the person's decisions with its own state.
    assert control.status(app).to_json()["supervisor_state"] == "NORMAL"
