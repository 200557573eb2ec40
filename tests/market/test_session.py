"""NYSE session awareness, checked against dates looked up by hand in the NYSE holiday and
early-close notices (and the ad hoc closures: Hurricane Sandy, national days of mourning)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sovereign.market.session import MarketCalendar, Session, bar_calendar, nyse


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(scope="module")
def cal() -> MarketCalendar:
    return nyse()


def test_regular_session_hours_follow_new_york_daylight_saving(cal: MarketCalendar) -> None:
    # 09:30-16:00 New York: EST (UTC-5) before 10 March 2024, EDT (UTC-4) from then on.
    friday = cal.session_on(date(2024, 3, 8))
    monday = cal.session_on(date(2024, 3, 11))
    assert friday is not None and monday is not None
    assert (friday.open, friday.close) == (utc(2024, 3, 8, 14, 30), utc(2024, 3, 8, 21, 0))
    assert (monday.open, monday.close) == (utc(2024, 3, 11, 13, 30), utc(2024, 3, 11, 20, 0))
    assert not friday.early_close


@pytest.mark.parametrize(
    "day",
    [
        date(2024, 11, 28),  # Thanksgiving
        date(2024, 12, 25),  # Christmas
        date(2024, 3, 29),  # Good Friday
        date(2025, 1, 9),  # national day of mourning, President Carter
        date(2018, 12, 5),  # national day of mourning, President G. H. W. Bush
        date(2012, 10, 29),  # Hurricane Sandy
        date(2012, 10, 30),
        date(2024, 11, 30),  # a Saturday
    ],
)
def test_holidays_and_closures_are_not_sessions(cal: MarketCalendar, day: date) -> None:
    assert cal.session_on(day) is None
    assert not cal.is_trading_day(day)
    assert not cal.is_open(datetime(day.year, day.month, day.day, 16, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("day", "close"),
    [
        (date(2024, 11, 29), utc(2024, 11, 29, 18, 0)),  # day after Thanksgiving, 13:00 EST
        (date(2024, 12, 24), utc(2024, 12, 24, 18, 0)),  # Christmas Eve, 13:00 EST
        (date(2024, 7, 3), utc(2024, 7, 3, 17, 0)),  # eve of Independence Day, 13:00 EDT
    ],
)
def test_early_closes(cal: MarketCalendar, day: date, close: datetime) -> None:
    session = cal.session_on(day)
    assert session is not None
    assert session.early_close and cal.is_early_close(day)
    assert session.close == close
    assert cal.is_open(close - timedelta(seconds=1))
    assert not cal.is_open(close)
    assert not cal.is_early_close(date(2024, 11, 27))


def test_open_is_inclusive_and_close_exclusive(cal: MarketCalendar) -> None:
    assert cal.is_open(utc(2024, 11, 27, 14, 30))
    assert not cal.is_open(utc(2024, 11, 27, 14, 29, 59))
    assert cal.is_open(utc(2024, 11, 27, 20, 59, 59))
    assert not cal.is_open(utc(2024, 11, 27, 21, 0))
    close = utc(2024, 11, 27, 21, 0)
    assert cal.session_at(close) is None
    at_close = cal.session_at(close, include_close=True)
    assert at_close is not None and at_close.day == date(2024, 11, 27)


def test_next_open_and_close_skip_the_holiday(cal: MarketCalendar) -> None:
    after_wednesday = utc(2024, 11, 27, 21, 0)
    assert cal.next_open(after_wednesday) == utc(2024, 11, 29, 14, 30)
    assert cal.next_close(after_wednesday) == utc(2024, 11, 29, 18, 0)  # the early close
    assert cal.next_open(utc(2024, 11, 29, 14, 30)) == utc(2024, 12, 2, 14, 30)  # strictly after
    assert cal.next_close(utc(2024, 11, 29, 15, 0)) == utc(2024, 11, 29, 18, 0)
    assert cal.next_session(utc(2024, 11, 29, 15, 0)).day == date(2024, 11, 29)
    assert cal.next_session(utc(2024, 11, 29, 18, 0)).day == date(2024, 12, 2)


def test_trading_days_between_dates(cal: MarketCalendar) -> None:
    assert cal.trading_days(date(2024, 11, 25), date(2024, 12, 3)) == [
        date(2024, 11, 25),
        date(2024, 11, 26),
        date(2024, 11, 27),
        date(2024, 11, 29),
        date(2024, 12, 2),
        date(2024, 12, 3),
    ]
    # 2024: 262 weekdays less 10 weekday holidays.
    assert len(cal.trading_days(date(2024, 1, 1), date(2024, 12, 31))) == 252
    assert cal.trading_days(date(2024, 12, 3), date(2024, 12, 1)) == []


def test_sessions_between_counts_closes(cal: MarketCalendar) -> None:
    sessions = cal.sessions_between(utc(2024, 11, 27, 21, 0), utc(2024, 12, 2, 21, 0))
    assert [s.day for s in sessions] == [date(2024, 11, 29), date(2024, 12, 2)]


def test_naive_times_and_out_of_range_are_refused(cal: MarketCalendar) -> None:
    with pytest.raises(ValueError, match="naive"):
        cal.is_open(datetime(2024, 11, 27, 15, 0))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="ends on"):
        cal.next_open(utc(2036, 1, 2))
    with pytest.raises(ValueError, match="outside the calendar"):
        cal.trading_days(date(1980, 1, 1), date(1990, 6, 1))


def test_a_calendar_can_be_built_from_explicit_sessions() -> None:
    s1 = Session(day=date(2030, 1, 7), open=utc(2030, 1, 7, 9), close=utc(2030, 1, 7, 17))
    s2 = Session(
        day=date(2030, 1, 8), open=utc(2030, 1, 8, 9), close=utc(2030, 1, 8, 12), early_close=True
    )
    cal = MarketCalendar([s1, s2], name="test")
    assert cal.is_open(utc(2030, 1, 8, 11, 59))
    assert cal.next_open(utc(2030, 1, 7, 10)) == utc(2030, 1, 8, 9)
    assert cal.is_early_close(date(2030, 1, 8))
    with pytest.raises(ValueError, match="overlap"):
        MarketCalendar([s2, s1])
    with pytest.raises(ValueError, match="not before"):
        Session(day=date(2030, 1, 9), open=utc(2030, 1, 9, 12), close=utc(2030, 1, 9, 9))


def test_bar_calendar_uses_the_exchange_session_or_the_whole_day() -> None:
    # 2020-07-03 (Friday, Independence Day observed) and the weekend: no NYSE session.
    days = [
        date(2020, 7, 2),
        date(2020, 7, 3),
        date(2020, 7, 4),
        date(2020, 7, 6),
        date(2020, 7, 2),
    ]
    cal = bar_calendar(days)
    assert [s.day for s in cal.sessions_between(utc(2020, 7, 1), utc(2020, 7, 7))] == sorted(
        set(days)
    )
    thursday = cal.session_on(date(2020, 7, 2))
    assert thursday == nyse().session_on(date(2020, 7, 2))
    assert thursday is not None and thursday.close == utc(2020, 7, 2, 20, 0)
    holiday = cal.session_on(date(2020, 7, 3))
    assert holiday is not None
    assert (holiday.open, holiday.close) == (utc(2020, 7, 3), utc(2020, 7, 4))
    assert cal.session_on(date(2020, 7, 5)) is None  # no bar that day
    with pytest.raises(ValueError, match="at least one day"):
        bar_calendar([])
