"""Two drivers over the one job list (:mod:`sovereign.app.jobs`).

:class:`SimulatedDriver` runs the jobs on a :class:`~sovereign.market.clock.SimulatedClock`
(replay, chaos): deterministic, every fire time in order, jobs due at the same time in job-list
order, each on the calling thread.

:class:`WallClockDriver` runs them on the wall clock with APScheduler 3's ``AsyncIOScheduler``:

- Job state lives in a ``SQLAlchemyJobStore`` (table ``apscheduler_jobs``) on the app's
  database, so a restart sees its jobs and their next run times. APScheduler pickles a job as a
  textual reference to its function plus its arguments and trigger, and our job functions are
  closures that cannot be pickled; so every stored job is the module-level coroutine
  :func:`fire_job` with the arguments ``(driver name, job name)``, and the trigger is a
  :class:`SpecTrigger` holding only the (picklable) spec. :func:`fire_job` looks the running
  driver up in a process-wide registry and the job up by name.
- ``coalesce=True`` (a backlog of missed runs runs once), ``max_instances=1`` (a job still
  running when it is due again is skipped, and counted), ``misfire_grace_time`` (a run later than
  that is dropped as missed).
- Session awareness: a ``session_only`` job's fire times are deferred to the next NYSE open by
  the trigger, and a run that starts outside the session anyway (a late misfire) is skipped.
- Nothing runs on the event loop: ``cpu_bound`` jobs run in a small dedicated thread pool (heavy
  numerics queue there instead of starving the other jobs), the others in the loop's default
  executor. The loop stays free for the bots and the ticker.
- SIGINT/SIGTERM: :meth:`WallClockDriver.run` stops taking new runs, waits for the running ones
  (APScheduler's asyncio executor cannot wait on its own), shuts the scheduler down
  (``shutdown(wait=True)``), and then calls the injected ``on_shutdown`` to flush state.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from sovereign.app.jobs import Job, JobContext, Trigger, next_fire_time, validate_jobs
from sovereign.errors import ConfigError
from sovereign.market.clock import SimulatedClock
from sovereign.market.session import MarketCalendar, nyse
from sovereign.memory import make_engine

log = logging.getLogger(__name__)

Outcome = Literal["ran", "skipped", "failed"]
FIRE_JOB_REF = "sovereign.app.scheduler:fire_job"
JOBS_TABLE = "apscheduler_jobs"


@dataclass(frozen=True, kw_only=True, slots=True)
class JobRun:
    """One run of a job: ``at`` is the driver's time when it started; ``detail`` says why it
    was skipped or how it failed."""

    name: str
    at: datetime
    outcome: Outcome
    detail: str = ""


def _context(job: Job, now: datetime, calendar: MarketCalendar, *, simulated: bool) -> JobContext:
    return JobContext(
        name=job.name, now=now, market_open=calendar.is_open(now), simulated=simulated
    )


def _outside_session(job: Job, now: datetime, calendar: MarketCalendar) -> bool:
    return job.session_only and calendar.session_at(now, include_close=True) is None


# ----------------------------------------------------------------------------- simulated


class SimulatedDriver:
    """Runs ``jobs`` at their simulated fire times on ``clock``.

    Call :meth:`start` once (first fire times are computed from ``clock.now()``), then move the
    clock (:meth:`run_until`, or ``clock.advance_to`` by the owner). A job that raises is
    recorded as ``failed`` and logged; with ``raise_errors`` the exception then propagates (the
    schedule stays intact).
    """

    def __init__(
        self,
        jobs: Sequence[Job],
        clock: SimulatedClock,
        *,
        calendar: MarketCalendar | None = None,
        raise_errors: bool = False,
    ) -> None:
        self.jobs = validate_jobs(jobs)
        self.clock = clock
        self.calendar = calendar or nyse()
        self.raise_errors = raise_errors
        self.runs: list[JobRun] = []
        self._next: dict[str, datetime | None] = {}
        self._event: int | None = None
        self._stopped = False

    def start(self) -> None:
        if self._next:
            raise RuntimeError("the simulated driver is already started")
        now = self.clock.now()
        for job in self.jobs:
            self._next[job.name] = self._fire_time(job, None, now)
        self._schedule()

    def stop(self) -> None:
        """No job runs after this (a job may call it: the jobs due with it still finish)."""
        self._stopped = True
        if self._event is not None:
            self.clock.cancel(self._event)
            self._event = None

    def next_times(self) -> dict[str, datetime | None]:
        """Each job's next fire time (None: no more within the calendar)."""
        return dict(self._next)

    def run_until(self, t: datetime) -> list[JobRun]:
        """Advance the clock to ``t``, running every job due on the way; returns those runs."""
        before = len(self.runs)
        self.clock.advance_to(t)
        return self.runs[before:]

    def _fire_time(self, job: Job, previous: datetime | None, now: datetime) -> datetime | None:
        return next_fire_time(
            job.trigger,
            session_only=job.session_only,
            previous=previous,
            now=now,
            calendar=self.calendar,
        )

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _schedule(self) -> None:
        pending = [t for t in self._next.values() if t is not None]
        self._event = None
        if pending and not self._stopped:
            self._event = self.clock.schedule(min(pending), self._tick, name="scheduler")

    def _tick(self) -> None:
        now = self.clock.now()
        due = [job for job in self.jobs if self._next[job.name] == now]
        if self._stopped:
            return
        for job in due:
            self._next[job.name] = self._fire_time(job, now, now)
        error: BaseException | None = None
        try:
            for job in due:
                error = self._run(job, now) or error
        finally:
            self._schedule()
        if error is not None and self.raise_errors:
            raise error

    def _run(self, job: Job, now: datetime) -> BaseException | None:
        if _outside_session(job, now, self.calendar):
            self.runs.append(
                JobRun(name=job.name, at=now, outcome="skipped", detail="market closed")
            )
            return None
        try:
            job.func(_context(job, now, self.calendar, simulated=True))
        except Exception as err:
            log.exception("job %s failed at %s", job.name, now.isoformat())
            self.runs.append(JobRun(name=job.name, at=now, outcome="failed", detail=repr(err)))
            return err
        self.runs.append(JobRun(name=job.name, at=now, outcome="ran"))
        return None


# ---------------------------------------------------------------------------- wall clock

_DRIVERS: dict[str, WallClockDriver] = {}
"""Running wall-clock drivers by name: how a stored job finds its function again."""


async def fire_job(driver_name: str, job_name: str) -> None:
    """The function every stored APScheduler job calls (by its textual reference)."""
    driver = _DRIVERS.get(driver_name)
    if driver is None:
        log.error("job %s fired for driver %r, which is not running here", job_name, driver_name)
        return
    await driver.run_job(job_name)


class SpecTrigger(BaseTrigger):  # type: ignore[misc]  # apscheduler ships no type hints
    """An APScheduler trigger over a job's spec; picklable (it holds only data).

    The calendar is the named driver's (the NYSE calendar when that driver is not running).
    """

    __slots__ = ("driver", "session_only", "spec")

    def __init__(self, spec: Trigger, *, session_only: bool, driver: str) -> None:
        self.spec = spec
        self.session_only = session_only
        self.driver = driver

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        running = _DRIVERS.get(self.driver)
        calendar = running.calendar if running is not None else nyse()
        return next_fire_time(
            self.spec,
            session_only=self.session_only,
            previous=previous_fire_time,
            now=now,
            calendar=calendar,
        )

    def __getstate__(self) -> dict[str, Any]:
        return {
            "version": 1,
            "spec": self.spec,
            "session_only": self.session_only,
            "driver": self.driver,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version") != 1:
            raise ValueError(f"SpecTrigger state version {state.get('version')} is not 1")
        self.spec = state["spec"]
        self.session_only = state["session_only"]
        self.driver = state["driver"]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpecTrigger):
            return NotImplemented
        return (self.spec, self.session_only, self.driver) == (
            other.spec,
            other.session_only,
            other.driver,
        )

    def __hash__(self) -> int:
        return hash((self.spec, self.session_only, self.driver))

    def __str__(self) -> str:
        scope = ", session only" if self.session_only else ""
        return f"spec[{self.spec}{scope}]"

    def __repr__(self) -> str:
        return (
            f"<SpecTrigger {self.spec!r} session_only={self.session_only} driver={self.driver!r}>"
        )


class WallClockDriver:
    """Runs ``jobs`` on the wall clock; see the module docstring.

    ``database_url``: where the job store lives (the app's ``settings.db_url``). ``on_shutdown``:
    called once after the scheduler has stopped (flush state there). ``misfire_grace``: a run
    later than this is dropped (whole seconds, >= 1). ``cpu_workers``: threads for ``cpu_bound``
    jobs. ``clock``: the wall clock, injectable for the session check and the job context.
    ``name``: the driver's key in the job store's job arguments; one running driver per name.
    ``history``: how many of the latest runs :attr:`runs` keeps.
    """

    def __init__(
        self,
        jobs: Sequence[Job],
        *,
        database_url: str,
        on_shutdown: Callable[[], None] | None = None,
        calendar: MarketCalendar | None = None,
        misfire_grace: timedelta = timedelta(seconds=60),
        cpu_workers: int = 1,
        clock: Callable[[], datetime] | None = None,
        name: str = "sovereign",
        history: int = 10_000,
    ) -> None:
        grace = int(misfire_grace.total_seconds())
        if grace < 1:
            raise ConfigError(f"misfire_grace must be at least one second, got {misfire_grace}")
        self.jobs = validate_jobs(jobs)
        self.name = name
        self.calendar = calendar or nyse()
        self.on_shutdown = on_shutdown
        self.runs: deque[JobRun] = deque(maxlen=history)
        self.overlaps: Counter[str] = Counter()  # runs skipped: the previous one still running
        self.missed: Counter[str] = Counter()  # runs dropped: later than misfire_grace
        # (job, how many due run times one submission covered: 1 with coalescing)
        self.submissions: deque[tuple[str, int]] = deque(maxlen=history)
        self._by_name = {job.name: job for job in self.jobs}
        self._clock = clock or (lambda: datetime.now(UTC))
        self._cpu_workers = cpu_workers
        self._cpu_pool: ThreadPoolExecutor | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._engine = make_engine(database_url)
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            jobstores={"default": SQLAlchemyJobStore(engine=self._engine, tablename=JOBS_TABLE)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        )
        self._scheduler.add_listener(
            self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_SUBMITTED
        )
        self._stopped = False

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running) and not self._stopped

    async def start(self) -> None:
        """Start on the running event loop: reconcile the stored jobs with the job list (a stored
        job whose spec is unchanged keeps its next run time), then begin processing."""
        if _DRIVERS.get(self.name) is not None:
            raise ConfigError(f"a wall-clock driver named {self.name!r} is already running")
        _DRIVERS[self.name] = self
        try:
            self._cpu_pool = ThreadPoolExecutor(
                max_workers=self._cpu_workers, thread_name_prefix=f"{self.name}-cpu"
            )
            self._scheduler.start(paused=True)
            self._register_jobs()
            self._scheduler.resume()
        except BaseException:
            del _DRIVERS[self.name]
            raise

    def _register_jobs(self) -> None:
        stored = {job.id: job for job in self._scheduler.get_jobs()}
        for job in self.jobs:
            trigger = SpecTrigger(job.trigger, session_only=job.session_only, driver=self.name)
            old = stored.pop(job.name, None)
            if old is not None and old.trigger == trigger and old.func_ref == FIRE_JOB_REF:
                continue  # unchanged: keep its persisted next run time (a backlog coalesces)
            self._scheduler.add_job(
                FIRE_JOB_REF,
                trigger=trigger,
                args=(self.name, job.name),
                id=job.name,
                name=job.name,
                replace_existing=True,
            )
        for stale in stored:
            self._scheduler.remove_job(stale)

    async def run(self, *, stop: asyncio.Event | None = None, handle_signals: bool = True) -> None:
        """Start, run until SIGINT/SIGTERM (or ``stop`` is set), then shut down gracefully."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            await stop.wait()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await self.shutdown()

    async def shutdown(self, *, timeout: float = 60.0) -> None:
        """Stop taking runs, wait (up to ``timeout`` s) for running jobs, stop the scheduler,
        then call ``on_shutdown``. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self._scheduler.running:
                self._scheduler.pause()
                if self._inflight:
                    _, late = await asyncio.wait(set(self._inflight), timeout=timeout)
                    if late:
                        log.error(
                            "%d job(s) still running after %.0f s at shutdown", len(late), timeout
                        )
                self._scheduler.shutdown(wait=True)  # runs on the loop: let it happen
                while self._scheduler.running:
                    await asyncio.sleep(0.01)
            if self._cpu_pool is not None:
                self._cpu_pool.shutdown(wait=True)
        finally:
            if _DRIVERS.get(self.name) is self:
                del _DRIVERS[self.name]
            self._engine.dispose()
            if self.on_shutdown is not None:
                self.on_shutdown()

    def stored_jobs(self) -> dict[str, datetime | None]:
        """Job name -> next run time, as the job store holds them (while started)."""
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    # ---- running one job -----------------------------------------------------------------

    async def run_job(self, name: str) -> None:
        """Run job ``name`` now, off the event loop (called by :func:`fire_job`)."""
        job = self._by_name.get(name)
        if job is None:
            log.error("job %s is not in this driver's job list", name)
            return
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self._execute(job)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _execute(self, job: Job) -> None:
        now = self._clock()
        if _outside_session(job, now, self.calendar):
            self.runs.append(
                JobRun(name=job.name, at=now, outcome="skipped", detail="market closed")
            )
            return
        ctx = _context(job, now, self.calendar, simulated=False)
        loop = asyncio.get_running_loop()
        pool = self._cpu_pool if job.cpu_bound else None
        try:
            await loop.run_in_executor(pool, job.func, ctx)
        except Exception as err:
            log.exception("job %s failed", job.name)
            self.runs.append(JobRun(name=job.name, at=now, outcome="failed", detail=repr(err)))
            return
        self.runs.append(JobRun(name=job.name, at=now, outcome="ran"))

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.overlaps[event.job_id] += 1
        elif event.code == EVENT_JOB_MISSED:
            self.missed[event.job_id] += 1
        elif isinstance(event, JobSubmissionEvent):
            self.submissions.append((event.job_id, len(event.scheduled_run_times)))


__all__ = [
    "FIRE_JOB_REF",
    "JOBS_TABLE",
    "JobRun",
    "SimulatedDriver",
    "SpecTrigger",
    "WallClockDriver",
    "fire_job",
]
