"""The one job list: what runs when, as data, for both scheduler drivers.

A :class:`Job` is a name, a trigger spec, the function to call with a :class:`JobContext`, and
two flags: ``cpu_bound`` (the wall-clock driver runs it in its CPU pool, so a long improvement
cycle never holds the event loop or the threads the trading cycle needs) and ``session_only``
(it only runs while the NYSE session is in progress, close included: a fire time outside the
session is deferred to the next open, and a late run outside the session is skipped).

Trigger specs (all times UTC; sessions from :mod:`sovereign.market.session`):

- :class:`Every` ``(interval)``: every ``interval`` after the driver starts (after the open for a
  ``session_only`` job, which then fires at each open and every ``interval`` after it).
- :class:`AtClose` ``(offset)``: once per session, at its close (13:00 New York on an early
  close) plus ``offset``.
- :class:`Weekly` ``(weekday, at)``: once a week, ``weekday`` (0 = Monday) at ``at``, New York
  wall time (so it follows daylight saving).
- :class:`PerBar` ``(interval)``: when a bar completes. ``None`` means daily bars: at each
  session's close. An intraday ``interval`` fires at ``open + k·interval`` inside the session and
  at the close (a shorter last bar on an early close).

:func:`next_fire_time` is the single, pure schedule both drivers use; :func:`build_jobs` is the
default job list, with the functions injected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sovereign.errors import ConfigError
from sovereign.market.session import MarketCalendar

NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True, kw_only=True, slots=True)
class Every:
    """Every ``interval`` (> 0)."""

    interval: timedelta

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0):
            raise ValueError(f"Every needs a positive interval, got {self.interval}")


@dataclass(frozen=True, kw_only=True, slots=True)
class AtClose:
    """At each session's close plus ``offset`` (may be negative: before the close)."""

    offset: timedelta = timedelta(0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Weekly:
    """Weekly on ``weekday`` (0 = Monday .. 6 = Sunday) at ``at``, New York wall time."""

    weekday: int
    at: time = time(9, 0)

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) .. 6 (Sunday), got {self.weekday}")
        if self.at.tzinfo is not None:
            raise ValueError("Weekly.at is New York wall time; pass a naive time")


@dataclass(frozen=True, kw_only=True, slots=True)
class PerBar:
    """When a bar completes: ``None`` = daily bars (at each close), else the intraday bar length."""

    interval: timedelta | None = None

    def __post_init__(self) -> None:
        if self.interval is not None and self.interval <= timedelta(0):
            raise ValueError(f"PerBar needs a positive interval, got {self.interval}")


Trigger = Every | AtClose | Weekly | PerBar


@dataclass(frozen=True, kw_only=True, slots=True)
class JobContext:
    """What a job function is told. ``now``: the (simulated or wall) time of this run, tz-aware
    UTC. ``market_open``: the NYSE session is in progress at ``now``. ``simulated``: run by the
    simulated driver (replay, chaos)."""

    name: str
    now: datetime
    market_open: bool
    simulated: bool


JobFunc = Callable[[JobContext], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class Job:
    name: str
    trigger: Trigger
    func: JobFunc = field(compare=False)
    cpu_bound: bool = False
    session_only: bool = False

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"job name must be a non-empty [A-Za-z0-9_-] word, got {self.name!r}")


def validate_jobs(jobs: Sequence[Job]) -> tuple[Job, ...]:
    """The job list as a tuple; raises :class:`ConfigError` on duplicate names."""
    seen: set[str] = set()
    for job in jobs:
        if job.name in seen:
            raise ConfigError(f"the job list has two jobs named {job.name!r}")
        seen.add(job.name)
    return tuple(jobs)


# ------------------------------------------------------------------------------- schedule


def next_fire_time(
    trigger: Trigger,
    *,
    session_only: bool,
    previous: datetime | None,
    now: datetime,
    calendar: MarketCalendar,
) -> datetime | None:
    """The next time a job with ``trigger`` fires, tz-aware UTC; None past the calendar's end.

    ``previous``: its last fire time (None before the first); the answer is strictly after it
    (after ``now`` for calendar triggers when None; ``now + interval`` for :class:`Every`).
    A ``session_only`` job's time outside a session (close included) moves to the next open.
    """
    now = now.astimezone(UTC)
    ref = now if previous is None else previous.astimezone(UTC)
    try:
        t = _raw_next(trigger, ref, calendar)
        if session_only and calendar.session_at(t, include_close=True) is None:
            t = calendar.next_open(t)
    except ValueError:  # past the calendar's last session
        return None
    return t


def _raw_next(trigger: Trigger, ref: datetime, calendar: MarketCalendar) -> datetime:
    if isinstance(trigger, Every):
        return ref + trigger.interval
    if isinstance(trigger, AtClose):
        return calendar.next_session(ref - trigger.offset).close + trigger.offset
    if isinstance(trigger, Weekly):
        return _next_weekly(trigger, ref)
    return _next_bar_end(trigger.interval, ref, calendar)


def _next_weekly(trigger: Weekly, ref: datetime) -> datetime:
    local = ref.astimezone(NEW_YORK)
    for days in range(8):
        day = local.date() + timedelta(days=days)
        if day.weekday() != trigger.weekday:
            continue
        candidate = datetime.combine(day, trigger.at, tzinfo=NEW_YORK).astimezone(UTC)
        if candidate > ref:
            return candidate
    raise AssertionError("unreachable: a weekday recurs within 8 days")  # pragma: no cover


def _next_bar_end(interval: timedelta | None, ref: datetime, calendar: MarketCalendar) -> datetime:
    session = calendar.next_session(ref)  # the session in progress at ref, or the next one
    if interval is None:
        return session.close
    if ref < session.open:
        return min(session.open + interval, session.close)
    k = (ref - session.open) // interval + 1
    return min(session.open + k * interval, session.close)


# ------------------------------------------------------------------------------ the list


@dataclass(frozen=True, kw_only=True, slots=True)
class JobFunctions:
    """The real work, injected by the application (tests pass small real functions).

    ``negative_control`` and ``reconcile`` may be None only when the :class:`Schedule` turns
    those jobs off (a replay on the paper exchange: its book is the broker, and a weekly control
    run would cost more than the replay itself)."""

    trading_cycle: JobFunc
    end_of_day: JobFunc
    improvement: JobFunc
    heartbeat: JobFunc
    health: JobFunc
    negative_control: JobFunc | None = None
    reconcile: JobFunc | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Schedule:
    """When the default jobs run. ``bar_interval``: None for daily bars (the trading cycle runs
    at each close), else the intraday bar length. Offsets are after the session close.
    ``negative_control`` / ``reconcile_every`` None: that job is not in the list."""

    bar_interval: timedelta | None = None
    end_of_day_offset: timedelta = timedelta(minutes=15)
    improvement_offset: timedelta = timedelta(hours=1)
    negative_control: Weekly | None = field(
        default_factory=lambda: Weekly(weekday=5, at=time(9, 0))
    )
    reconcile_every: timedelta | None = timedelta(minutes=5)
    heartbeat_every: timedelta = timedelta(minutes=1)
    health_every: timedelta = timedelta(minutes=5)


REPLAY_SCHEDULE = Schedule(
    negative_control=None,
    reconcile_every=None,
    heartbeat_every=timedelta(days=1),
    health_every=timedelta(days=1),
)
"""A replay on the simulated clock: daily bars, the paper exchange as the books (nothing to
reconcile), no weekly control run, and a daily heartbeat and health check (a per-minute one
would be millions of simulated runs over a multi-year replay)."""


def build_jobs(funcs: JobFunctions, schedule: Schedule | None = None) -> tuple[Job, ...]:
    """The default job list, in the order jobs due at the same time run.

    The trading cycle is not ``cpu_bound`` on purpose: it must never queue behind an improvement
    cycle in the CPU pool. Reconciliation runs during sessions (and at each open).
    """
    s = schedule or Schedule()
    jobs = [
        Job(
            name="trading_cycle",
            trigger=PerBar(interval=s.bar_interval),
            func=funcs.trading_cycle,
            session_only=True,
        )
    ]
    if s.reconcile_every is not None:
        jobs.append(
            Job(
                name="reconcile",
                trigger=Every(interval=s.reconcile_every),
                func=_required(funcs.reconcile, "reconcile"),
                session_only=True,
            )
        )
    jobs += [
        Job(
            name="end_of_day",
            trigger=AtClose(offset=s.end_of_day_offset),
            func=funcs.end_of_day,
            cpu_bound=True,
        ),
        Job(
            name="improvement",
            trigger=AtClose(offset=s.improvement_offset),
            func=funcs.improvement,
            cpu_bound=True,
        ),
    ]
    if s.negative_control is not None:
        jobs.append(
            Job(
                name="negative_control",
                trigger=s.negative_control,
                func=_required(funcs.negative_control, "negative_control"),
                cpu_bound=True,
            )
        )
    jobs += [
        Job(name="heartbeat", trigger=Every(interval=s.heartbeat_every), func=funcs.heartbeat),
        Job(name="health", trigger=Every(interval=s.health_every), func=funcs.health),
    ]
    return validate_jobs(jobs)


def _required(func: JobFunc | None, name: str) -> JobFunc:
    if func is None:
        raise ConfigError(
            f"the schedule runs the {name!r} job but no {name} function was given; pass one, "
            f"or turn the job off in the Schedule"
        )
    return func


__all__ = [
    "NEW_YORK",
    "REPLAY_SCHEDULE",
    "AtClose",
    "Every",
    "Job",
    "JobContext",
    "JobFunc",
    "JobFunctions",
    "PerBar",
    "Schedule",
    "Trigger",
    "Weekly",
    "build_jobs",
    "next_fire_time",
    "validate_jobs",
]
