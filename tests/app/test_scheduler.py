"""The two drivers over one job list.

The simulated driver's schedule is checked by hand around Thanksgiving 2024 (Thursday 28 closed,
Friday 29 closes at 13:00 New York = 18:00 UTC). The wall-clock driver runs with real APScheduler,
a real SQLite job store, real threads and a real subprocess for SIGTERM; its assertions are on
counts and order, never on how long things took.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sovereign.app.jobs import Every, Job, JobContext, JobFunctions, Schedule, build_jobs
from sovereign.app.scheduler import JOBS_TABLE, SimulatedDriver, SpecTrigger, WallClockDriver
from sovereign.errors import ConfigError
from sovereign.market.clock import SimulatedClock
from sovereign.market.session import MarketCalendar, Session

WAIT = 20.0  # seconds a condition may take on a loaded CI machine before the test fails


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ------------------------------------------------------------------------------ simulated


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, datetime, bool]] = []

    def __call__(self, ctx: JobContext) -> None:
        assert ctx.simulated
        self.calls.append((ctx.name, ctx.now, ctx.market_open))


def default_jobs(rec: Callable[[JobContext], None]) -> tuple[Job, ...]:
    funcs = JobFunctions(
        trading_cycle=rec,
        end_of_day=rec,
        improvement=rec,
        negative_control=rec,
        reconcile=rec,
        heartbeat=rec,
        health=rec,
    )
    return build_jobs(
        funcs,
        Schedule(
            reconcile_every=timedelta(hours=2),
            heartbeat_every=timedelta(hours=6),
            health_every=timedelta(days=7),
        ),
    )


def test_simulated_driver_fires_the_hand_checked_schedule() -> None:
    rec = Recorder()
    clock = SimulatedClock(utc(2024, 11, 27, 12))
    driver = SimulatedDriver(default_jobs(rec), clock)
    driver.start()
    runs = driver.run_until(utc(2024, 12, 2, 23))

    assert all(r.outcome == "ran" for r in runs)
    assert [(r.name, r.at) for r in runs] == [(n, t) for n, t, _ in rec.calls]
    others = [(n, t) for n, t, _ in rec.calls if n != "heartbeat"]
    assert others == [
        ("reconcile", utc(2024, 11, 27, 14, 30)),  # 14:00 deferred to the open
        ("reconcile", utc(2024, 11, 27, 16, 30)),
        ("reconcile", utc(2024, 11, 27, 18, 30)),
        ("reconcile", utc(2024, 11, 27, 20, 30)),
        ("trading_cycle", utc(2024, 11, 27, 21)),
        ("end_of_day", utc(2024, 11, 27, 21, 15)),
        ("improvement", utc(2024, 11, 27, 22)),
        # Thursday 28: Thanksgiving, nothing but heartbeats.
        ("reconcile", utc(2024, 11, 29, 14, 30)),
        ("reconcile", utc(2024, 11, 29, 16, 30)),
        ("trading_cycle", utc(2024, 11, 29, 18)),  # early close
        ("end_of_day", utc(2024, 11, 29, 18, 15)),
        ("improvement", utc(2024, 11, 29, 19)),
        ("negative_control", utc(2024, 11, 30, 14)),  # Saturday 09:00 EST
        ("reconcile", utc(2024, 12, 2, 14, 30)),
        ("reconcile", utc(2024, 12, 2, 16, 30)),
        ("reconcile", utc(2024, 12, 2, 18, 30)),
        ("reconcile", utc(2024, 12, 2, 20, 30)),
        ("trading_cycle", utc(2024, 12, 2, 21)),
        ("end_of_day", utc(2024, 12, 2, 21, 15)),
        ("improvement", utc(2024, 12, 2, 22)),
    ]
    beats = [t for n, t, _ in rec.calls if n == "heartbeat"]
    assert beats[0] == utc(2024, 11, 27, 18) and beats[-1] == utc(2024, 12, 2, 18)
    assert len(beats) == 21 and all(
        b - a == timedelta(hours=6) for a, b in itertools.pairwise(beats)
    )
    # Due at the same time: job-list order (the trading cycle before the heartbeat).
    tie = [n for n, t, _ in rec.calls if t == utc(2024, 11, 29, 18)]
    assert tie == ["trading_cycle", "heartbeat"]
    market = {(n, t): is_open for n, t, is_open in rec.calls}
    assert market[("reconcile", utc(2024, 11, 29, 14, 30))] is True
    assert market[("trading_cycle", utc(2024, 11, 29, 18))] is False  # the close is not open
    assert driver.next_times()["health"] == utc(2024, 12, 4, 12)
    assert clock.now() == utc(2024, 12, 2, 23)


def test_simulated_driver_records_a_failing_job_and_keeps_the_schedule() -> None:
    ran: list[datetime] = []

    def boom(ctx: JobContext) -> None:
        raise RuntimeError("engine fault")

    jobs = [
        Job(name="boom", trigger=Every(interval=timedelta(hours=1)), func=boom),
        Job(
            name="fine",
            trigger=Every(interval=timedelta(hours=1)),
            func=lambda c: ran.append(c.now),
        ),
    ]
    clock = SimulatedClock(utc(2024, 12, 2))
    driver = SimulatedDriver(jobs, clock)
    driver.start()
    runs = driver.run_until(utc(2024, 12, 2, 2))
    assert [(r.name, r.outcome) for r in runs] == [
        ("boom", "failed"),
        ("fine", "ran"),
        ("boom", "failed"),
        ("fine", "ran"),
    ]
    assert "engine fault" in runs[0].detail
    assert ran == [utc(2024, 12, 2, 1), utc(2024, 12, 2, 2)]

    strict = SimulatedDriver(jobs, SimulatedClock(utc(2024, 12, 2)), raise_errors=True)
    strict.start()
    with pytest.raises(RuntimeError, match="engine fault"):
        strict.run_until(utc(2024, 12, 2, 2))
    assert strict.next_times()["boom"] == utc(2024, 12, 2, 2)  # still scheduled
    assert [r.name for r in strict.runs] == ["boom", "fine"]  # the rest of the tick ran


def test_spec_trigger_pickles_for_the_job_store() -> None:
    trigger = SpecTrigger(Every(interval=timedelta(minutes=5)), session_only=True, driver="d")
    clone = pickle.loads(pickle.dumps(trigger))  # noqa: S301 - our own bytes
    assert clone == trigger and clone.session_only and clone.driver == "d"
    assert clone != SpecTrigger(
        Every(interval=timedelta(minutes=5)), session_only=False, driver="d"
    )


# ----------------------------------------------------------------------------- wall clock


def run_driver(driver: WallClockDriver, done: Callable[[], bool], *, extra=None) -> None:
    """Run ``driver`` until ``done()`` (polled), then shut it down; fail after WAIT seconds."""

    async def main() -> None:
        stop = asyncio.Event()

        async def watch() -> None:
            deadline = time.monotonic() + WAIT
            while not done():
                if time.monotonic() > deadline:
                    stop.set()
                    raise AssertionError("the condition was not reached in time")
                await asyncio.sleep(0.02)
            stop.set()

        tasks = [driver.run(stop=stop, handle_signals=False), watch()]
        if extra is not None:
            tasks.append(extra(stop))
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_never_two_instances_of_a_job(tmp_path: Path) -> None:
    lock = threading.Lock()
    state = {"running": 0, "max": 0, "done": 0}

    def slow(ctx: JobContext) -> None:
        with lock:
            state["running"] += 1
            state["max"] = max(state["max"], state["running"])
        time.sleep(0.35)
        with lock:
            state["running"] -= 1
            state["done"] += 1

    job = Job(name="slow", trigger=Every(interval=timedelta(seconds=0.1)), func=slow)
    driver = WallClockDriver([job], database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    run_driver(driver, lambda: state["done"] >= 3)
    assert state["max"] == 1
    assert driver.overlaps["slow"] >= 1  # it was due while running, and was skipped
    assert [r.outcome for r in driver.runs] == ["ran"] * len(driver.runs)


def _stored_rows(db: Path) -> dict[str, float]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"SELECT id, next_run_time FROM {JOBS_TABLE}").fetchall()  # noqa: S608
    return dict(rows)


def test_job_store_survives_a_restart_and_a_backlog_runs_once(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    url = f"sqlite:///{db}"
    ticks: list[datetime] = []
    jobs = [
        Job(
            name="tick",
            trigger=Every(interval=timedelta(seconds=0.2)),
            func=lambda c: ticks.append(c.now),
        ),
        Job(name="hourly", trigger=Every(interval=timedelta(hours=1)), func=lambda c: None),
    ]
    first = WallClockDriver(jobs, database_url=url)
    run_driver(first, lambda: len(ticks) >= 2)
    persisted = _stored_rows(db)
    assert set(persisted) == {"tick", "hourly"}

    time.sleep(1.0)  # down for five or more intervals of "tick"
    second = WallClockDriver(jobs, database_url=url, misfire_grace=timedelta(seconds=30))
    seen: dict[str, datetime | None] = {}
    before = len(ticks)

    async def started(stop: asyncio.Event) -> None:
        while not second.running:
            await asyncio.sleep(0)
        seen.update(second.stored_jobs())  # before the scheduler's first wake-up

    run_driver(second, lambda: len(ticks) > before, extra=started)
    # The restart saw both jobs with the run times they had: "hourly" was not recomputed.
    assert seen["hourly"] is not None
    assert seen["hourly"].timestamp() == pytest.approx(persisted["hourly"])
    assert seen["tick"] is not None
    backlog = (datetime.now(UTC) - seen["tick"]) // timedelta(seconds=0.2)
    assert backlog >= 4
    # ... and ran the backlog once: one submission covering one run time, nothing dropped.
    assert second.submissions[0] == ("tick", 1)
    assert second.missed["tick"] == 0


def test_a_cpu_bound_job_does_not_block_the_event_loop(tmp_path: Path) -> None:
    busy = threading.Event()
    state = {"ticks_while_busy": 0, "runs": 0}

    def crunch(ctx: JobContext) -> None:
        busy.set()
        end = time.perf_counter() + 0.5
        x = 0
        while time.perf_counter() < end:
            x += 1
        busy.clear()
        state["runs"] += 1

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(0.05)
            if busy.is_set():
                state["ticks_while_busy"] += 1

    job = Job(
        name="crunch", trigger=Every(interval=timedelta(seconds=0.1)), func=crunch, cpu_bound=True
    )
    driver = WallClockDriver([job], database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    run_driver(driver, lambda: state["runs"] >= 1, extra=ticker)
    # 0.5 s of work against a 0.05 s ticker: about ten ticks; on the loop it would be none.
    assert state["ticks_while_busy"] >= 4


def _calendar(open_: datetime, close: datetime) -> MarketCalendar:
    return MarketCalendar([Session(day=open_.date(), open=open_, close=close)], name="test")


def test_session_only_jobs_wait_for_the_open(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    opens = now + timedelta(seconds=1)
    calendar = _calendar(opens, opens + timedelta(hours=1))
    calls: list[datetime] = []
    job = Job(
        name="market",
        trigger=Every(interval=timedelta(seconds=0.1)),
        func=lambda c: calls.append(c.now),
        session_only=True,
    )
    driver = WallClockDriver(
        [job], database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", calendar=calendar
    )
    seen: dict[str, datetime | None] = {}

    async def started(stop: asyncio.Event) -> None:
        while not driver.running:
            await asyncio.sleep(0)
        seen.update(driver.stored_jobs())

    run_driver(driver, lambda: len(calls) >= 1, extra=started)
    assert seen["market"] == opens  # deferred to the open, not 0.1 s after the start
    assert calls[0] >= opens


def test_session_only_job_skipped_when_it_runs_outside_the_session(tmp_path: Path) -> None:
    real_now = datetime.now(UTC)
    calendar = _calendar(real_now - timedelta(hours=1), real_now + timedelta(hours=1))
    calls: list[datetime] = []
    job = Job(
        name="market",
        trigger=Every(interval=timedelta(seconds=0.1)),
        func=lambda c: calls.append(c.now),
        session_only=True,
    )
    saturday = utc(2024, 11, 30, 15)  # the driver's clock says the market is closed
    driver = WallClockDriver(
        [job],
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        calendar=calendar,
        clock=lambda: saturday,
    )
    run_driver(driver, lambda: len(driver.runs) >= 2)
    assert calls == []
    assert {(r.outcome, r.detail, r.at) for r in driver.runs} == {
        ("skipped", "market closed", saturday)
    }


SERVICE = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from datetime import timedelta
    from pathlib import Path

    from sovereign.app.jobs import Every, Job
    from sovereign.app.scheduler import WallClockDriver

    out = Path(sys.argv[1])
    state = {"started": 0, "finished": 0}

    def slow(ctx):
        state["started"] += 1
        (out / "ready").write_text("1")
        time.sleep(0.3)
        state["finished"] += 1

    def flush():
        (out / "state.json").write_text(json.dumps(state))

    job = Job(name="slow", trigger=Every(interval=timedelta(seconds=0.1)), func=slow)
    driver = WallClockDriver(
        [job], database_url=f"sqlite:///{out / 'jobs.db'}", on_shutdown=flush
    )
    asyncio.run(driver.run())
    """
)


def test_sigterm_shuts_down_gracefully_and_flushes_state(tmp_path: Path) -> None:
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        deadline = time.monotonic() + WAIT
        while not (tmp_path / "ready").exists():
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the service never ran its job"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)  # while the first run is in its 0.3 s sleep
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["started"] >= 1
    assert state["finished"] == state["started"]  # the running job finished before the flush
    assert set(_stored_rows(tmp_path / "jobs.db")) == {"slow"}


def test_two_drivers_cannot_share_a_name(tmp_path: Path) -> None:
    job = Job(name="x", trigger=Every(interval=timedelta(hours=1)), func=lambda c: None)
    one = WallClockDriver([job], database_url=f"sqlite:///{tmp_path / 'a.sqlite'}")
    two = WallClockDriver([job], database_url=f"sqlite:///{tmp_path / 'b.sqlite'}")

    async def main() -> None:
        await one.start()
        try:
            with pytest.raises(ConfigError, match="already running"):
                await two.start()
        finally:
            await one.shutdown()

    asyncio.run(main())
