"""IBKR history as a validated panel, through a fake at the ib_async boundary."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from ib_async import BarData

from sovereign.brokers.ibkr import IBKRData
from sovereign.brokers.ibkr.parsing import bar_size, bar_stamps, duration_str
from sovereign.errors import BrokerUnavailable, ConfigError, DataError
from tests.brokers.ib_fake import FakeIB

NOW = datetime(2024, 3, 1, 21, 0, tzinfo=UTC)


def daily(closes: list[float], end: date = date(2024, 2, 29)) -> list[BarData]:
    days = pd.bdate_range(end=end, periods=len(closes))
    return [
        BarData(date=d.date(), open=c, high=c + 1, low=c - 1, close=c, volume=1000 + k)
        for k, (d, c) in enumerate(zip(days, closes, strict=True))
    ]


def test_duration_bar_size_and_stamps() -> None:
    assert duration_str(NOW - timedelta(days=30), NOW) == "30 D"
    assert duration_str(NOW - timedelta(days=1100), NOW) == "4 Y"
    assert bar_size("1Day") == "1 day" and bar_size("5Min") == "5 mins"
    with pytest.raises(ConfigError, match="no IB bar size"):
        bar_size("3Day")
    days = pd.Series([datetime(2024, 2, 28, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC)])
    assert list(bar_stamps(days, "1Day")) == [
        pd.Timestamp("2024-02-28", tz="UTC"),
        pd.Timestamp("2024-02-29", tz="UTC"),
    ]
    opens = pd.Series([datetime(2024, 2, 29, 14, 30, tzinfo=UTC)])
    assert bar_stamps(opens, "5Min")[0] == pd.Timestamp("2024-02-29 14:35", tz="UTC")


def test_bars_make_a_panel_in_the_order_asked_from_start() -> None:
    fake = FakeIB(
        {"AAA": [10.0], "BBB": [20.0]},
        history={"AAA": daily([10.0 + k for k in range(30)]), "BBB": daily([20.0] * 25)},
    )
    data = IBKRData(fake, clock=lambda: NOW)
    panel = data.bars(["BBB", "AAA"], datetime(2024, 2, 1, tzinfo=UTC))
    assert panel.symbols == ("BBB", "AAA")
    assert panel.timestamps[0] == pd.Timestamp("2024-02-01", tz="UTC")
    assert panel.timestamps[-1] == pd.Timestamp("2024-02-29", tz="UTC")
    assert panel.close[-1, 1] == 39.0 and panel.volume[-1, 1] == 1029
    request = fake.history_requests[0]
    assert request["bar_size"] == "1 day" and request["what"] == "TRADES"
    assert request["rth"] is True and request["format"] == 2 and request["duration"] == "30 D"


def test_no_bars_bad_bars_and_a_lost_connection() -> None:
    fake = FakeIB({"AAA": [10.0]}, history={"AAA": daily([10.0] * 5)})
    data = IBKRData(fake, clock=lambda: NOW)
    with pytest.raises(DataError, match="no bars for ZZZ"):
        data.bars(["AAA", "ZZZ"], datetime(2024, 2, 1, tzinfo=UTC))
    bad = FakeIB({"AAA": [10.0]}, history={"AAA": daily([10.0, -1.0, 10.0])})
    with pytest.raises(DataError):
        IBKRData(bad, clock=lambda: NOW).bars(["AAA"], datetime(2024, 2, 1, tzinfo=UTC))
    fake.connected = False
    with pytest.raises(BrokerUnavailable, match="IB history for AAA"):
        data.bars(["AAA"], datetime(2024, 2, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="timezone-aware"):
        data.bars(["AAA"], datetime(2024, 2, 1))  # noqa: DTZ001
