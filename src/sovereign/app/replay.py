"""A replay's job functions, run by the simulated driver over the one job list.

`sovereign run` replays history through the same job list as the live loop
(:func:`sovereign.app.jobs.build_jobs`, with :data:`~sovereign.app.jobs.REPLAY_SCHEDULE`) on a
:class:`~sovereign.app.scheduler.SimulatedDriver`. The calendar is the data's own
(:func:`~sovereign.market.session.bar_calendar`: the NYSE session of each bar's day, or the
whole day for a day the NYSE does not trade), so:

- ``trading_cycle`` fires at each session's close and steps every bar stamped before it, each
  decided at its own timestamp (daily bars are stamped 00:00 UTC of their session day);
- ``end_of_day`` flushes the day's events and persists the Supervisor;
- ``improvement`` (an hour after the close) runs a cycle when the improver's cadence says so;
- ``heartbeat`` records progress; ``health`` asks the kill switch, so a person's
  ``sovereign halt`` (or the halt file) reaches a running replay within a simulated day.

The replay ends at the last bar, or once the Supervisor has HALTED and every position is
closed: the driver stops and no job runs after that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sovereign.app.context import App
from sovereign.app.jobs import REPLAY_SCHEDULE, JobContext, JobFunctions, build_jobs
from sovereign.app.killswitch import KillSwitch, halt_file
from sovereign.app.persist import MemorySink
from sovereign.app.replay_improver import ReplayImprover
from sovereign.app.scheduler import JobRun, SimulatedDriver
from sovereign.market.clock import SimulatedClock, TimeWarp
from sovereign.market.session import bar_calendar
from sovereign.trading.loop import BarLoop
from sovereign.trading.supervisor import SupervisorState

REPLAY_ACCOUNT = "paper-replay"
"""The books a replay's Supervisor state belongs to (each replay starts a fresh paper account)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Progress:
    bar: int
    bars: int
    timestamp: datetime
    equity: float
    drawdown: float
    state: str


class Replay:
    """The state of one replay and its job functions. ``bars``: the panel indices
    ``(loop_start, first, last)``: warm-up from ``loop_start``, the campaign proper (progress,
    improvement, canary) from ``first``, to ``last`` inclusive."""

    def __init__(
        self,
        app: App,
        *,
        run_id: str,
        loop: BarLoop,
        improver: ReplayImprover,
        sink: MemorySink,
        bars: tuple[int, int, int],
        speed: float = 0.0,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.app = app
        self.run_id = run_id
        self.loop = loop
        self.trader = loop.trader
        self.supervisor = loop.trader.supervisor
        self.improver = improver
        self.sink = sink
        self.loop_start, self.first, self.last = bars
        self.on_progress = on_progress
        self.killswitch = KillSwitch(app, app.settings.data_dir)
        self.stamps = list(loop.panel.timestamps.to_pydatetime())
        self.start = self.stamps[self.loop_start]
        self.clock = SimulatedClock(self.start)
        self.warp = TimeWarp(speed)
        self.next_bar = self.loop_start
        self.equity = loop.exchange.portfolio.account_report(self.start).equity
        self.stopped: str | None = None
        calendar = bar_calendar([t.date() for t in self.stamps[self.loop_start : self.last + 1]])
        self.driver = SimulatedDriver(
            build_jobs(
                JobFunctions(
                    trading_cycle=self.trading_cycle,
                    end_of_day=self.end_of_day,
                    improvement=self.improvement,
                    heartbeat=self.heartbeat,
                    health=self.health,
                ),
                REPLAY_SCHEDULE,
            ),
            self.clock,
            calendar=calendar,
            raise_errors=True,
        )
        self.end = calendar.last.close + REPLAY_SCHEDULE.improvement_offset

    @property
    def runs(self) -> list[JobRun]:
        return self.driver.runs

    def run(self) -> None:
        """Drive the job list to the end of the data (or the halt)."""
        self.driver.start()
        self.driver.run_until(self.end)
        if self.stopped is None:
            self._step_until(None)  # bars stamped after the last session's close, if any

    # ---- jobs ------------------------------------------------------------------------

    def trading_cycle(self, ctx: JobContext) -> None:
        self._step_until(ctx.now)

    def end_of_day(self, ctx: JobContext) -> None:
        self.sink.flush()
        self.app.save_supervisor(self.supervisor, ctx.now, account=REPLAY_ACCOUNT)

    def improvement(self, ctx: JobContext) -> None:
        i = self.next_bar - 1
        if i < self.first or self.supervisor.state is SupervisorState.HALTED:
            return
        if self.improver.due(i, ctx.now):
            self.sink.flush()  # the cycle studies the trades recorded so far
            self.improver.cycle(i, ctx.now, self.equity)

    def heartbeat(self, ctx: JobContext) -> None:
        self.app.supervisor_store.save_state(
            f"heartbeat:{REPLAY_ACCOUNT}",
            {
                "run_id": self.run_id,
                "at": ctx.now.isoformat(),
                "bar": self.stamps[max(self.next_bar - 1, 0)].isoformat(),
                "equity": self.equity,
                "state": self.supervisor.state.value,
            },
            ctx.now,
        )

    def health(self, ctx: JobContext) -> None:
        decision = self.killswitch.check(ctx.now)
        if not decision.trade and self.supervisor.state is not SupervisorState.HALTED:
            self.trader.halt(ctx.now, decision.reason)
            self._maybe_stop(ctx.now)

    # ---- bars ------------------------------------------------------------------------

    def _step_until(self, now: datetime | None) -> None:
        """Step every bar stamped before ``now`` (None: every remaining bar)."""
        while self.next_bar <= self.last and self.stopped is None:
            ts = self.stamps[self.next_bar]
            if now is not None and ts >= now:
                return
            self._step(self.next_bar, ts)
            self.next_bar += 1

    def _step(self, i: int, ts: datetime) -> None:
        self.warp.pace(ts - self.start)
        account = self.loop.step(i, now=ts)
        self.equity = account.equity
        if i >= self.first:
            if self.on_progress is not None:
                self.on_progress(
                    Progress(
                        bar=i - self.first + 1,
                        bars=self.last - self.first + 1,
                        timestamp=ts,
                        equity=account.equity,
                        drawdown=self.supervisor.drawdown(account.equity),
                        state=self.supervisor.state.value,
                    )
                )
            if self.supervisor.state is not SupervisorState.HALTED:
                self.improver.watch(ts, account.equity)
        if halt_file(self.app).exists() and self.supervisor.state is not SupervisorState.HALTED:
            self.trader.halt(ts, f"halt file {halt_file(self.app)} found")
        self._maybe_stop(ts)

    def _maybe_stop(self, ts: datetime) -> None:
        if self.supervisor.state is SupervisorState.HALTED and not self.trader.book.open:
            self.stopped = f"HALTED on {ts:%Y-%m-%d}: {self.supervisor.reason}"
            self.driver.stop()


__all__ = ["REPLAY_ACCOUNT", "Progress", "Replay"]
