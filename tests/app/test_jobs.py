"""The job list and the one schedule both drivers use, checked by hand against the NYSE calendar
around Thanksgiving 2024 (Thursday 28 closed, Friday 29 closes at 13:00 New York = 18:00 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from sovereign.app.jobs import (
    REPLAY_SCHEDULE,
    AtClose,
    Every,
    Job,
    JobContext,
    JobFunctions,
    PerBar,
    Schedule,
    Trigger,
    Weekly,
    build_jobs,
    next_fire_time,
    validate_jobs,
)
from sovereign.errors import ConfigError
from sovereign.market.session import MarketCalendar, nyse


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(scope="module")
def cal() -> MarketCalendar:
    return nyse()


def fires(
    trigger: Trigger,
    cal: MarketCalendar,
    start: datetime,
    n: int,
    *,
    session_only: bool = False,
) -> list[datetime]:
    out: list[datetime] = []
    previous: datetime | None = None
    for _ in range(n):
        t = next_fire_time(
            trigger, session_only=session_only, previous=previous, now=start, calendar=cal
        )
        assert t is not None
        out.append(t)
        previous = t
    return out


def test_daily_bars_fire_at_each_close_including_the_early_close(cal: MarketCalendar) -> None:
    assert fires(PerBar(), cal, utc(2024, 11, 27, 12), 3) == [
        utc(2024, 11, 27, 21),
        utc(2024, 11, 29, 18),  # early close; Thanksgiving skipped
        utc(2024, 12, 2, 21),
    ]


def test_hourly_bars_end_inside_the_session_and_at_the_close(cal: MarketCalendar) -> None:
    hourly = PerBar(interval=timedelta(hours=1))
    assert fires(hourly, cal, utc(2024, 11, 29, 12), 5) == [
        utc(2024, 11, 29, 15, 30),
        utc(2024, 11, 29, 16, 30),
        utc(2024, 11, 29, 17, 30),
        utc(2024, 11, 29, 18, 0),  # a half-hour last bar at the early close
        utc(2024, 12, 2, 15, 30),
    ]
    # From inside a bar, the next bar end.
    nxt = next_fire_time(
        hourly, session_only=False, previous=None, now=utc(2024, 12, 2, 20, 45), calendar=cal
    )
    assert nxt == utc(2024, 12, 2, 21, 0)


def test_at_close_with_positive_and_negative_offsets(cal: MarketCalendar) -> None:
    assert fires(AtClose(offset=timedelta(minutes=15)), cal, utc(2024, 11, 27, 21, 10), 2) == [
        utc(2024, 11, 27, 21, 15),
        utc(2024, 11, 29, 18, 15),
    ]
    before = AtClose(offset=timedelta(minutes=-10))
    assert fires(before, cal, utc(2024, 11, 29, 17, 55), 2) == [
        utc(2024, 12, 2, 20, 50),
        utc(2024, 12, 3, 20, 50),
    ]


def test_weekly_follows_new_york_wall_time_across_daylight_saving() -> None:
    sat_9am = Weekly(weekday=5, at=time(9, 0))
    cal = nyse()
    assert fires(sat_9am, cal, utc(2024, 10, 25), 3) == [
        utc(2024, 10, 26, 13),  # EDT
        utc(2024, 11, 2, 13),  # EDT (clocks change on Sunday 3 November)
        utc(2024, 11, 9, 14),  # EST
    ]


def test_session_only_interval_defers_to_the_open(cal: MarketCalendar) -> None:
    every_2h = Every(interval=timedelta(hours=2))
    assert fires(every_2h, cal, utc(2024, 11, 29, 12), 4, session_only=True) == [
        utc(2024, 11, 29, 14, 30),  # 14:00 is before the open
        utc(2024, 11, 29, 16, 30),
        utc(2024, 12, 2, 14, 30),  # 18:30 is after the early close
        utc(2024, 12, 2, 16, 30),
    ]
    assert fires(every_2h, cal, utc(2024, 11, 29, 12), 2) == [
        utc(2024, 11, 29, 14),
        utc(2024, 11, 29, 16),
    ]


def test_no_fire_time_past_the_calendar(cal: MarketCalendar) -> None:
    assert (
        next_fire_time(
            PerBar(), session_only=False, previous=None, now=utc(2036, 1, 5), calendar=cal
        )
        is None
    )


def test_trigger_specs_validate() -> None:
    with pytest.raises(ValueError, match="positive"):
        Every(interval=timedelta(0))
    with pytest.raises(ValueError, match="weekday"):
        Weekly(weekday=7)
    with pytest.raises(ValueError, match="positive"):
        PerBar(interval=timedelta(minutes=-5))
    with pytest.raises(ValueError, match="job name"):
        Job(name="bad name", trigger=PerBar(), func=lambda ctx: None)


def test_default_job_list() -> None:
    calls: list[str] = []

    def record(ctx: JobContext) -> None:
        calls.append(ctx.name)

    funcs = JobFunctions(
        trading_cycle=record,
        end_of_day=record,
        improvement=record,
        negative_control=record,
        reconcile=record,
        heartbeat=record,
        health=record,
    )
    jobs = build_jobs(funcs, Schedule(reconcile_every=timedelta(minutes=10)))
    by_name = {j.name: j for j in jobs}
    assert [j.name for j in jobs] == [
        "trading_cycle",
        "reconcile",
        "end_of_day",
        "improvement",
        "negative_control",
        "heartbeat",
        "health",
    ]
    assert by_name["trading_cycle"].session_only and not by_name["trading_cycle"].cpu_bound
    assert by_name["reconcile"].trigger == Every(interval=timedelta(minutes=10))
    assert {j.name for j in jobs if j.cpu_bound} == {
        "end_of_day",
        "improvement",
        "negative_control",
    }
    assert by_name["negative_control"].trigger == Weekly(weekday=5, at=time(9, 0))
    with pytest.raises(ConfigError, match="two jobs named"):
        validate_jobs([*jobs, jobs[0]])


def test_replay_schedule_turns_off_reconcile_and_controls() -> None:
    def record(ctx: JobContext) -> None:
        pass

    funcs = JobFunctions(
        trading_cycle=record, end_of_day=record, improvement=record, heartbeat=record, health=record
    )
    jobs = build_jobs(funcs, REPLAY_SCHEDULE)
    assert [j.name for j in jobs] == [
        "trading_cycle",
        "end_of_day",
        "improvement",
        "heartbeat",
        "health",
    ]
    assert {j.name: j.trigger for j in jobs}["heartbeat"] == Every(interval=timedelta(days=1))
    with pytest.raises(ConfigError, match="no reconcile function"):
        build_jobs(funcs, Schedule())
