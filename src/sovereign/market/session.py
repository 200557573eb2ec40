"""Market session awareness: when the NYSE is open, from exchange_calendars' bundled XNYS data.

A :class:`MarketCalendar` is an ordered list of :class:`Session` s, each a trading day with its
open and close as timezone-aware UTC datetimes (holidays are absent; early closes, such as the
day after Thanksgiving at 13:00 New York time, carry ``early_close=True``). Every query is pure:
UTC in, UTC out, no clock reads and no network. :func:`nyse` builds (once per range, cached) the
calendar of the New York Stock Exchange; tests and simulations may build any calendar from
explicit sessions.

Conventions: the market is *open* at ``t`` when ``open <= t < close``; ``next_open`` /
``next_close`` are the first open / close strictly after ``t``; a time outside the calendar's
range raises ``ValueError`` (build a wider calendar) rather than guessing.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import numpy as np

NYSE_DEFAULT_START = date(1990, 1, 1)
NYSE_DEFAULT_END = date(2035, 12, 31)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class Session:
    """One trading day. ``open``/``close``: tz-aware UTC; ``early_close``: closes before the
    regular time (NYSE: 13:00 New York instead of 16:00)."""

    day: date
    open: datetime
    close: datetime
    early_close: bool = False

    def __post_init__(self) -> None:
        for what, value in (("open", self.open), ("close", self.close)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"session {self.day}: {what} {value!r} must be timezone-aware")
        if not self.open < self.close:
            raise ValueError(
                f"session {self.day}: open {self.open} is not before close {self.close}"
            )


def _utc(t: datetime, what: str = "time") -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} {t.isoformat()} is naive; pass a timezone-aware UTC datetime")
    return t.astimezone(UTC)


def _micros(t: datetime) -> int:
    """Microseconds since the Unix epoch (exact, unlike ``timestamp()``)."""
    return (_utc(t) - _EPOCH) // _MICRO


class MarketCalendar:
    """Trading sessions in time order; see the module docstring for the conventions.

    ``sessions``: non-overlapping, strictly increasing sessions. ``name``: for messages.
    """

    def __init__(self, sessions: Sequence[Session], *, name: str = "calendar") -> None:
        if not sessions:
            raise ValueError(f"{name}: a calendar needs at least one session")
        ordered = tuple(sessions)
        for prev, cur in itertools.pairwise(ordered):
            if not (prev.close <= cur.open and prev.day < cur.day):
                raise ValueError(
                    f"{name}: sessions {prev.day} and {cur.day} overlap or are unordered"
                )
        self.name = name
        self._sessions = ordered
        self._opens = np.array([_micros(s.open) for s in ordered], dtype=np.int64)
        self._closes = np.array([_micros(s.close) for s in ordered], dtype=np.int64)
        self._days = {s.day: i for i, s in enumerate(ordered)}

    # ---------------------------------------------------------------------------- range

    @property
    def first(self) -> Session:
        return self._sessions[0]

    @property
    def last(self) -> Session:
        return self._sessions[-1]

    def __len__(self) -> int:
        return len(self._sessions)

    # -------------------------------------------------------------------------- queries

    def is_open(self, t: datetime) -> bool:
        """True when ``t`` lies in a session: ``open <= t < close``."""
        return self.session_at(t) is not None

    def session_at(self, t: datetime, *, include_close: bool = False) -> Session | None:
        """The session in progress at ``t`` (``open <= t < close``; ``<= close`` with
        ``include_close``), or None when the market is closed."""
        us = _micros(t)
        i = int(np.searchsorted(self._opens, us, side="right")) - 1
        if i < 0:
            return None
        close = int(self._closes[i])
        inside = us <= close if include_close else us < close
        return self._sessions[i] if inside else None

    def next_session(self, t: datetime) -> Session:
        """The first session whose close is strictly after ``t``: the one in progress at ``t``,
        or the next one. Raises ``ValueError`` past the calendar's last session."""
        i = int(np.searchsorted(self._closes, _micros(t), side="right"))
        if i >= len(self._sessions):
            raise ValueError(
                f"{self.name}: no session after {_utc(t).isoformat()}; the calendar ends on "
                f"{self.last.day} (build it with a later end)"
            )
        return self._sessions[i]

    def next_open(self, t: datetime) -> datetime:
        """The first session open strictly after ``t`` (UTC)."""
        i = int(np.searchsorted(self._opens, _micros(t), side="right"))
        if i >= len(self._sessions):
            raise ValueError(
                f"{self.name}: no open after {_utc(t).isoformat()}; the calendar ends on "
                f"{self.last.day}"
            )
        return self._sessions[i].open

    def next_close(self, t: datetime) -> datetime:
        """The first session close strictly after ``t`` (UTC)."""
        return self.next_session(t).close

    def session_on(self, day: date) -> Session | None:
        """The session of calendar day ``day``, or None (weekend, holiday, out of range)."""
        i = self._days.get(day)
        return None if i is None else self._sessions[i]

    def is_trading_day(self, day: date) -> bool:
        return day in self._days

    def is_early_close(self, day: date) -> bool:
        """True when ``day`` is a session that closes early."""
        s = self.session_on(day)
        return s is not None and s.early_close

    def trading_days(self, start: date, end: date) -> list[date]:
        """Session days ``d`` with ``start <= d <= end`` (both inclusive), in order.

        Raises ``ValueError`` when the range reaches outside the calendar (the answer would be
        silently short otherwise).
        """
        if end < start:
            return []
        if start < self.first.day or end > self.last.day:
            raise ValueError(
                f"{self.name}: {start}..{end} is outside the calendar's range "
                f"{self.first.day}..{self.last.day}"
            )
        return [s.day for s in self._sessions if start <= s.day <= end]

    def sessions_between(self, start: datetime, end: datetime) -> list[Session]:
        """Sessions that close in ``(start, end]``, in order."""
        lo = int(np.searchsorted(self._closes, _micros(start), side="right"))
        hi = int(np.searchsorted(self._closes, _micros(end), side="right"))
        return list(self._sessions[lo:hi])


@lru_cache(maxsize=4)
def nyse(start: date = NYSE_DEFAULT_START, end: date = NYSE_DEFAULT_END) -> MarketCalendar:
    """The NYSE (XNYS) calendar for sessions from ``start`` to ``end``, built from the data that
    ships with exchange_calendars (no network). Cached per range; about 0.2 s to build."""
    import exchange_calendars as xcals  # deferred: a heavy import most commands never need

    with warnings.catch_warnings():
        # exchange_calendars 4.x reads tz-aware Series through ``.values``, which pandas 3.1
        # deprecates (Pandas4Warning); third-party noise, harmless for the arrays read here.
        warnings.filterwarnings(
            "ignore", message="Series.values returning an ndarray", category=DeprecationWarning
        )
        cal = xcals.get_calendar("XNYS", start=start.isoformat(), end=end.isoformat())
        opens = cal.opens.dt.tz_convert(None).to_numpy()
        closes = cal.closes.dt.tz_convert(None).to_numpy()
        days = [ts.date() for ts in cal.sessions]
        early = {ts.date() for ts in cal.early_closes}
    sessions = [
        Session(
            day=day,
            open=_from_numpy(o),
            close=_from_numpy(c),
            early_close=day in early,
        )
        for day, o, c in zip(days, opens, closes, strict=True)
    ]
    return MarketCalendar(sessions, name="XNYS")


def bar_calendar(days: Sequence[date], base: MarketCalendar | None = None) -> MarketCalendar:
    """A calendar with one session per distinct day in ``days``: the ``base`` calendar's session
    that day (default: the NYSE's), or, for a day the base does not trade (a weekend bar in
    user data, a day before 1990), the whole UTC day. A replay schedules its jobs on this, so
    every bar of the data falls into a session whatever exchange it came from."""
    if base is None:
        base = nyse()
    sessions: list[Session] = []
    for day in sorted(set(days)):
        session = base.session_on(day)
        if session is None:
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
            session = Session(day=day, open=midnight, close=midnight + timedelta(days=1))
        sessions.append(session)
    if not sessions:
        raise ValueError("bar_calendar needs at least one day")
    return MarketCalendar(sessions, name=f"bars({base.name})")


def _from_numpy(value: np.datetime64) -> datetime:
    """A naive-UTC numpy datetime64 as a tz-aware UTC datetime (microsecond precision)."""
    us = int(value.astype("datetime64[us]").astype(np.int64))
    return _EPOCH + timedelta(microseconds=us)


__all__ = [
    "NYSE_DEFAULT_END",
    "NYSE_DEFAULT_START",
    "MarketCalendar",
    "Session",
    "bar_calendar",
    "nyse",
]
