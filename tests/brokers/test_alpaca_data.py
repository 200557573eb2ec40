"""Alpaca market data over real HTTP against the stub: bars into a validated BarPanel."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sovereign.brokers.alpaca import AlpacaData, RetryPolicy
from sovereign.errors import BrokerUnavailable, DataError
from sovereign.market.bars import Feature

from .alpaca_stub import KEY, SECRET, AlpacaStub

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 2, 1, tzinfo=UTC)


def _daily(n: int, base: float, skip: int | None = None) -> list[dict[str, Any]]:
    """n weekday bars from 2024-01-02, stamped like Alpaca (00:00 New York = 05:00 UTC)."""
    days = pd.bdate_range("2024-01-02", periods=n)
    bars = []
    for i, day in enumerate(days):
        if i == skip:
            continue
        close = base + i
        bars.append(
            {
                "t": f"{day:%Y-%m-%d}T05:00:00Z",
                "o": close - 0.5,
                "h": close + 1.0,
                "l": close - 1.0,
                "c": close,
                "v": 1000 + i,
                "n": 10,
                "vw": close,
            }
        )
    return bars


@pytest.fixture
def stub() -> Iterator[AlpacaStub]:
    bars = {"AAA": _daily(8, 100.0), "BBB": _daily(8, 50.0, skip=3)}
    with AlpacaStub(bars=bars, bars_page_size=3) as s:
        yield s


def make_data(stub: AlpacaStub, attempts: int = 3) -> AlpacaData:
    policy = RetryPolicy(attempts=attempts, backoff_s=0.0, timeout_s=2.0)
    return AlpacaData(
        api_key=KEY, secret_key=SECRET, data_url=stub.url, policy=policy, sleep=lambda _s: None
    )


def test_daily_bars_round_trip_into_a_panel_across_pages(stub: AlpacaStub) -> None:
    panel = make_data(stub).bars(["BBB", "AAA"], START, END)
    assert panel.symbols == ("BBB", "AAA")
    assert panel.features == frozenset({Feature.CLOSE, Feature.OHLC, Feature.VOLUME})
    assert panel.n_bars == 8
    assert list(panel.timestamps) == list(pd.bdate_range("2024-01-02", periods=8, tz="UTC"))
    aaa = panel.column("AAA")
    np.testing.assert_array_equal(panel.close[:, aaa], 100.0 + np.arange(8))
    np.testing.assert_array_equal(panel.volume[:, aaa], 1000.0 + np.arange(8))
    np.testing.assert_array_equal(panel.high[:, aaa] - panel.low[:, aaa], np.full(8, 2.0))
    bbb = panel.close[:, panel.column("BBB")]
    assert np.isnan(bbb[3])  # the day BBB has no bar
    assert bbb[4] == 54.0
    pages = stub.requests_to("GET", "/v2/stocks/bars")
    assert len(pages) == 5  # 15 bars, 3 per page
    assert pages[0].query["symbols"] == ["BBB,AAA"]
    assert pages[0].query["timeframe"] == ["1Day"]
    assert pages[1].query["page_token"] == ["3"]


def test_intraday_bars_are_stamped_at_their_close(stub: AlpacaStub) -> None:
    t0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    stub.bars["AAA"] = [
        {
            "t": (t0 + timedelta(minutes=5 * i)).isoformat(),
            "o": 10,
            "h": 11,
            "l": 9,
            "c": 10,
            "v": 5,
        }
        for i in range(4)
    ]
    panel = make_data(stub).bars(["AAA"], t0, t0 + timedelta(hours=1), timeframe="5Min")
    assert panel.timestamps[0] == pd.Timestamp("2024-01-02T14:35:00", tz="UTC")
    assert panel.n_bars == 4
    assert stub.requests_to("GET", "/v2/stocks/bars")[0].query["timeframe"] == ["5Min"]


@pytest.mark.parametrize(
    ("patch", "column", "message"),
    [
        ({"h": 90.0}, "high", "below low"),
        ({"c": -1.0}, "close", "not positive"),
        ({"c": 200.0}, "close", "outside the bar's range"),
        ({"v": -5}, "volume", "negative"),
        ({"t": "2024-01-02T05:00:00Z"}, "timestamp", "duplicate bar"),
        ({"t": "2024-01-02T09:00:00"}, "timestamp", "no timezone"),
    ],
)
def test_invalid_bars_are_data_errors(
    stub: AlpacaStub, patch: dict[str, Any], column: str, message: str
) -> None:
    stub.bars["AAA"][2] = {**stub.bars["AAA"][2], **patch}
    with pytest.raises(DataError, match=message) as info:
        make_data(stub).bars(["AAA"], START, END)
    assert info.value.column == column
    assert info.value.source == "alpaca:bars:1Day"


def test_malformed_bar_and_missing_symbol_are_data_errors(stub: AlpacaStub) -> None:
    with pytest.raises(DataError, match="no bars for CCC"):
        make_data(stub).bars(["AAA", "CCC"], START, END)
    del stub.bars["AAA"][1]["c"]
    with pytest.raises(DataError, match="missing 'c'"):
        make_data(stub).bars(["AAA"], START, END)


def test_a_large_gap_is_a_data_error(stub: AlpacaStub) -> None:
    stub.bars["AAA"][-1] = {**stub.bars["AAA"][-1], "t": "2024-06-03T04:00:00Z"}
    with pytest.raises(DataError, match="gap of"):
        make_data(stub).bars(["AAA"], START, datetime(2024, 7, 1, tzinfo=UTC))
    panel = make_data(stub).bars(
        ["AAA"], START, datetime(2024, 7, 1, tzinfo=UTC), gap_tolerance=None
    )
    assert panel.timestamps[-1] == pd.Timestamp("2024-06-03", tz="UTC")


def test_transient_errors_are_retried_then_unavailable(stub: AlpacaStub) -> None:
    stub.fail_next(1, status=500, path="/v2/stocks/bars")
    assert make_data(stub).bars(["AAA"], START, END).n_bars == 8
    stub.fail_next(2, status=429, path="/v2/stocks/bars")
    with pytest.raises(BrokerUnavailable, match="bars: HTTP 429"):
        make_data(stub, attempts=2).bars(["AAA"], START, END)


def test_last_price(stub: AlpacaStub) -> None:
    data = make_data(stub)
    assert data.last_price("AAA") == stub.price("AAA")
    with pytest.raises(DataError, match="no latest trade for 'ZZZ'"):
        data.last_price("ZZZ")


def test_naive_bounds_are_refused(stub: AlpacaStub) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_data(stub).bars(["AAA"], datetime(2024, 1, 1), END)  # noqa: DTZ001
