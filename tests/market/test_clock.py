"""Clocks: event ordering, refusals, pacing without real sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sovereign.market import Clock, SimulatedClock, TimeWarp, WallClock

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_wall_clock_is_aware_utc():
    now = WallClock().now()
    assert now.tzinfo is UTC
    assert isinstance(WallClock(), Clock)
    assert isinstance(SimulatedClock(T0), Clock)


def test_events_run_in_time_order_ties_in_scheduling_order():
    clock = SimulatedClock(T0)
    seen: list[tuple[str, datetime]] = []

    def record(name: str):
        return lambda: seen.append((name, clock.now()))

    clock.schedule(at(10), record("late"), name="late")
    clock.schedule(at(5), record("tie-1"), name="tie-1")
    clock.schedule(at(5), record("tie-2"), name="tie-2")
    clock.schedule(at(1), record("early"), name="early")
    clock.schedule(at(30), record("future"), name="future")
    assert clock.advance_to(at(10)) == 4
    assert seen == [
        ("early", at(1)),
        ("tie-1", at(5)),
        ("tie-2", at(5)),
        ("late", at(10)),
    ]
    assert clock.now() == at(10)
    assert [name for _, _, name in clock.pending()] == ["future"]


def test_callback_can_schedule_events_that_run_in_the_same_advance():
    clock = SimulatedClock(T0)
    seen: list[str] = []

    def first():
        seen.append("first")
        clock.schedule(at(2), lambda: seen.append("chained"), name="chained")
        clock.schedule(clock.now(), lambda: seen.append("now"), name="now")
        clock.schedule(at(20), lambda: seen.append("too late"), name="later")

    clock.schedule(at(1), first, name="first")
    clock.schedule(at(3), lambda: seen.append("third"), name="third")
    clock.run_until(at(5))
    assert seen == ["first", "now", "chained", "third"]
    assert clock.now() == at(5)
    clock.advance(timedelta(minutes=15))
    assert seen[-1] == "too late"


def test_cancel():
    clock = SimulatedClock(T0)
    seen: list[str] = []
    keep = clock.schedule(at(1), lambda: seen.append("keep"), name="keep")
    drop = clock.schedule(at(2), lambda: seen.append("drop"), name="drop")
    assert clock.cancel(drop) is True
    assert clock.cancel(drop) is False
    assert clock.cancel(999) is False
    clock.advance_to(at(5))
    assert seen == ["keep"]
    assert clock.cancel(keep) is False  # already ran


def test_event_ids_are_unique():
    clock = SimulatedClock(T0)
    ids = {clock.schedule(at(1), lambda: None, name=str(i)) for i in range(5)}
    assert len(ids) == 5


def test_refuses_naive_datetimes():
    naive = datetime(2024, 1, 2)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive"):
        SimulatedClock(naive)
    clock = SimulatedClock(T0)
    with pytest.raises(ValueError, match="naive"):
        clock.schedule(naive, lambda: None, name="x")
    with pytest.raises(ValueError, match="naive"):
        clock.advance_to(naive)


def test_refuses_going_backwards_or_scheduling_in_the_past():
    clock = SimulatedClock(T0)
    clock.advance_to(at(10))
    with pytest.raises(ValueError, match="backwards"):
        clock.advance_to(at(9))
    with pytest.raises(ValueError, match="before the clock's current time"):
        clock.schedule(at(9), lambda: None, name="past")
    clock.advance_to(at(10))  # standing still is fine


def test_other_timezones_are_converted_to_utc():
    tokyo = timezone(timedelta(hours=9))
    clock = SimulatedClock(datetime(2024, 1, 2, 23, 30, tzinfo=tokyo))
    assert clock.now() == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_callback_error_propagates_and_clock_stays_usable():
    clock = SimulatedClock(T0)
    seen: list[str] = []

    def boom():
        raise RuntimeError("boom")

    clock.schedule(at(1), boom, name="boom")
    clock.schedule(at(2), lambda: seen.append("after"), name="after")
    with pytest.raises(RuntimeError, match="boom"):
        clock.advance_to(at(5))
    assert clock.now() == at(1)
    clock.advance_to(at(5))
    assert seen == ["after"]


def test_reentrant_advance_refused():
    clock = SimulatedClock(T0)
    clock.schedule(at(1), lambda: clock.advance_to(at(2)), name="nested")
    with pytest.raises(RuntimeError, match="inside a scheduled callback"):
        clock.advance_to(at(3))


class FakeTime:
    """A monotonic clock that moves only when slept on (or when told to)."""

    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def test_time_warp_paces_simulated_time():
    fake = FakeTime()
    warp = TimeWarp(60.0, sleep=fake.sleep, monotonic=fake.monotonic)
    assert warp.pace(timedelta(0)) == 0.0  # anchors wall time
    assert warp.pace(timedelta(minutes=1)) == pytest.approx(1.0)
    fake.t += 0.25  # work took a quarter second of wall time
    assert warp.pace(timedelta(minutes=2)) == pytest.approx(0.75)
    fake.t += 5.0  # fell behind: no sleep, no attempt to go back
    assert warp.pace(timedelta(minutes=3)) == 0.0
    assert fake.sleeps == pytest.approx([1.0, 0.75])


def test_time_warp_zero_is_unpaced_and_negative_refused():
    fake = FakeTime()
    warp = TimeWarp(0, sleep=fake.sleep, monotonic=fake.monotonic)
    assert warp.pace(timedelta(days=365)) == 0.0
    assert fake.sleeps == []
    with pytest.raises(ValueError, match="factor"):
        TimeWarp(-1)


def test_time_warp_reset_reanchors():
    fake = FakeTime()
    warp = TimeWarp(2.0, sleep=fake.sleep, monotonic=fake.monotonic)
    warp.pace(timedelta(0))
    fake.t += 100
    warp.reset()
    assert warp.pace(timedelta(seconds=10)) == pytest.approx(5.0)


def test_simulated_clock_driven_with_time_warp():
    fake = FakeTime()
    clock = SimulatedClock(T0)
    warp = TimeWarp(3600.0, sleep=fake.sleep, monotonic=fake.monotonic)
    for hour in range(1, 4):
        clock.advance_to(T0 + timedelta(hours=hour))
        warp.pace(clock.now() - T0)
    assert fake.t - 100.0 == pytest.approx(3.0)  # three simulated hours, three wall seconds
