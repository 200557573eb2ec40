"""Injected time: the only place the system reads a clock.

Backtest, paper, chaos and live run the same code; only the :class:`Clock` differs. Every time is
a timezone-aware UTC ``datetime``; naive times are refused with ``ValueError``.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of the current time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class WallClock:
    """The real clock (live and paper trading)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{what} {value.isoformat()} is naive; pass a timezone-aware UTC datetime "
            "(e.g. datetime(2024, 1, 2, tzinfo=UTC))"
        )
    return value.astimezone(UTC)


@dataclass(order=True)
class _Event:
    at: datetime
    seq: int
    name: str = field(compare=False)
    callback: Callable[[], object] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class SimulatedClock:
    """A clock that moves only when told to, running scheduled callbacks on the way.

    Callbacks take no arguments; while one runs, :meth:`now` returns its scheduled time. Events
    run in time order, ties in the order they were scheduled. An exception from a callback
    propagates; that event is consumed and the clock stays at its time.
    """

    def __init__(self, start: datetime) -> None:
        self._now = _utc(start, "start")
        self._queue: list[_Event] = []
        self._events: dict[int, _Event] = {}
        self._seq = itertools.count(1)
        self._running = False

    def now(self) -> datetime:
        return self._now

    def schedule(self, at: datetime, callback: Callable[[], object], *, name: str) -> int:
        """Run ``callback`` when the clock reaches ``at`` (not before now); returns an event id."""
        when = _utc(at, "event time")
        if when < self._now:
            raise ValueError(
                f"cannot schedule {name!r} at {when.isoformat()}: that is before the clock's "
                f"current time {self._now.isoformat()}"
            )
        event = _Event(at=when, seq=next(self._seq), name=name, callback=callback)
        heapq.heappush(self._queue, event)
        self._events[event.seq] = event
        return event.seq

    def cancel(self, event_id: int) -> bool:
        """Cancel a pending event; False if it already ran, was cancelled or never existed."""
        event = self._events.pop(event_id, None)
        if event is None:
            return False
        event.cancelled = True
        return True

    def pending(self) -> list[tuple[int, datetime, str]]:
        """Pending events as (id, time, name), in the order they would run."""
        return [(e.seq, e.at, e.name) for e in sorted(self._events.values())]

    def advance_to(self, t: datetime) -> int:
        """Move to ``t``, running every event due at or before ``t``; returns how many ran.

        Events a callback schedules for a time ``<= t`` run in the same call.
        """
        target = _utc(t, "target time")
        if target < self._now:
            raise ValueError(
                f"cannot move the clock backwards from {self._now.isoformat()} "
                f"to {target.isoformat()}"
            )
        if self._running:
            raise RuntimeError("advance_to was called from inside a scheduled callback")
        ran = 0
        self._running = True
        try:
            while self._queue and self._queue[0].at <= target:
                event = heapq.heappop(self._queue)
                if event.cancelled:
                    continue
                del self._events[event.seq]
                self._now = event.at
                ran += 1
                event.callback()
            self._now = target
        finally:
            self._running = False
        return ran

    def run_until(self, t: datetime) -> int:
        """Same as :meth:`advance_to`: run everything due up to ``t`` and stop at ``t``."""
        return self.advance_to(t)

    def advance(self, delta: timedelta) -> int:
        """:meth:`advance_to` ``now() + delta``."""
        return self.advance_to(self._now + delta)


class TimeWarp:
    """Paces a simulation so simulated time runs ``factor`` times faster than wall time.

    ``factor`` 0 means no pacing (as fast as possible); 60 means one simulated minute per wall
    second. Wall time is measured from the first :meth:`pace` call (or :meth:`reset`).
    ``sleep`` and ``monotonic`` are injectable so tests need not sleep.
    """

    def __init__(
        self,
        factor: float,
        *,
        sleep: Callable[[float], object] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not factor >= 0:
            raise ValueError(f"factor must be >= 0 (0 = no pacing), got {factor}")
        self.factor = factor
        self._sleep = sleep
        self._monotonic = monotonic
        self._origin: float | None = None

    def reset(self) -> None:
        """Start measuring wall time now (simulated elapsed time 0 is now)."""
        self._origin = self._monotonic()

    def pace(self, sim_elapsed: timedelta) -> float:
        """Sleep until wall time since the start is ``sim_elapsed / factor``; return seconds slept.

        ``sim_elapsed``: simulated time since the simulation started.
        """
        if self.factor == 0:
            return 0.0
        origin = self._origin
        if origin is None:
            origin = self._origin = self._monotonic()
        due = sim_elapsed.total_seconds() / self.factor
        wait = due - (self._monotonic() - origin)
        if wait <= 0:
            return 0.0
        self._sleep(wait)
        return wait
