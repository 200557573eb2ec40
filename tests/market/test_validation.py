"""Every bad-data case as a small CSV: the DataError must say where (file, row, column) and why."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sovereign.errors import DataError
from sovereign.market import load_file, validate_frame
from sovereign.market.validation import normalize_frame

HEADER = "timestamp,symbol,open,high,low,close,volume"
GOOD = [
    "2024-01-02T21:00:00+00:00,AAA,10,11,9,10.5,100",
    "2024-01-02T21:00:00+00:00,BBB,20,21,19,20.5,200",
    "2024-01-03T21:00:00+00:00,AAA,10.5,12,10,11,150",
    "2024-01-03T21:00:00+00:00,BBB,20.5,22,20,21,250",
]


def write(tmp_path: Path, lines: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def error_for(path: Path, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        load_file(path, **kwargs)
    assert info.value.source == str(path)
    return info.value


def test_clean_file_loads(tmp_path):
    panel = load_file(write(tmp_path, GOOD))
    assert panel.symbols == ("AAA", "BBB")
    assert panel.n_bars == 2


def test_missing_required_column(tmp_path):
    path = write(tmp_path, ["2024-01-02T21:00:00+00:00,AAA,10"], header="timestamp,symbol,open")
    err = error_for(path)
    assert (err.row, err.column) == (None, "close")
    assert "missing required column 'close'" in err.reason


def test_unknown_column_lists_allowed(tmp_path):
    path = write(
        tmp_path, ["2024-01-02T21:00:00+00:00,AAA,10,1"], header="timestamp,symbol,close,vwap"
    )
    err = error_for(path)
    assert (err.row, err.column) == (None, "vwap")
    assert "timestamp, symbol, open, high, low, close, volume" in err.reason


def test_partial_ohlc_group(tmp_path):
    path = write(
        tmp_path,
        ["2024-01-02T21:00:00+00:00,AAA,10,11,10.5"],
        header="timestamp,symbol,open,high,close",
    )
    err = error_for(path)
    assert (err.row, err.column) == (None, "low")
    assert "as a group" in err.reason


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("02/01/2024 21:00", "cannot parse timestamp '02/01/2024 21:00'"),
        ("yesterday", "cannot parse timestamp 'yesterday'"),
        ("", "timestamp is empty"),
    ],
)
def test_unparseable_timestamp(tmp_path, bad, expected):
    lines = [*GOOD[:2], f"{bad},AAA,10.5,12,10,11,150", GOOD[3]]
    err = error_for(write(tmp_path, lines))
    assert (err.row, err.column) == (3, "timestamp")
    assert expected in err.reason
    assert "ISO 8601" in err.reason or "empty" in err.reason


@pytest.mark.parametrize("naive", ["2024-01-03T21:00:00", "2024-01-03", "2024-01-03 21:00"])
def test_naive_timestamp(tmp_path, naive):
    lines = [*GOOD[:3], f"{naive},BBB,20.5,22,20,21,250"]
    err = error_for(write(tmp_path, lines))
    assert (err.row, err.column) == (4, "timestamp")
    assert "add a UTC offset such as +00:00" in err.reason


@pytest.mark.parametrize(
    "stamp", ["2024-01-03T21:00:00Z", "2024-01-03T16:00:00-05:00", "2024-01-03T21:00:00.5+0000"]
)
def test_offsets_accepted_and_converted_to_utc(tmp_path, stamp):
    lines = [*GOOD[:2], f"{stamp},AAA,10.5,12,10,11,150"]
    panel = load_file(write(tmp_path, lines))
    assert str(panel.timestamps.tz) == "UTC"
    assert panel.timestamps[-1].hour == 21


@pytest.mark.parametrize(
    ("cell_line", "column", "words"),
    [
        ("2024-01-03T21:00:00+00:00,AAA,10.5,12,10,,150", "close", "empty or NaN"),
        ("2024-01-03T21:00:00+00:00,AAA,10.5,NaN,10,11,150", "high", "empty or NaN"),
        ("2024-01-03T21:00:00+00:00,AAA,10.5,12,10,11,", "volume", "empty or NaN"),
        ("2024-01-03T21:00:00+00:00,,10.5,12,10,11,150", "symbol", "symbol is empty"),
        ("2024-01-03T21:00:00+00:00,AAA,abc,12,10,11,150", "open", "'abc' is not a finite number"),
        ("2024-01-03T21:00:00+00:00,AAA,10.5,12,10,inf,150", "close", "not a finite number"),
    ],
)
def test_empty_or_nan_cell(tmp_path, cell_line, column, words):
    err = error_for(write(tmp_path, [*GOOD[:2], cell_line, GOOD[3]]))
    assert (err.row, err.column) == (3, column)
    assert words in err.reason


def test_first_row_wins_then_column_order(tmp_path):
    lines = [
        GOOD[0],
        "2024-01-02T21:00:00+00:00,BBB,20,21,19,20.5,",  # row 2: volume empty
        "2024-01-03T21:00:00+00:00,AAA,,12,10,11,150",  # row 3: open empty (later row)
    ]
    err = error_for(write(tmp_path, lines))
    assert (err.row, err.column) == (2, "volume")
    lines[1] = "2024-01-02T21:00:00+00:00,BBB,20,,19,,1"  # high and close empty on the same row
    err = error_for(write(tmp_path, lines))
    assert (err.row, err.column) == (2, "high")


@pytest.mark.parametrize("price", ["0", "-1"])
def test_non_positive_price(tmp_path, price):
    err = error_for(
        write(tmp_path, [*GOOD[:3], f"2024-01-03T21:00:00+00:00,BBB,{price},22,{price},21,250"])
    )
    assert (err.row, err.column) == (4, "open")
    assert "not positive" in err.reason


def test_negative_volume(tmp_path):
    err = error_for(write(tmp_path, [GOOD[0], "2024-01-02T21:00:00+00:00,BBB,20,21,19,20.5,-5"]))
    assert (err.row, err.column) == (2, "volume")
    assert "negative" in err.reason


def test_zero_volume_is_allowed(tmp_path):
    panel = load_file(write(tmp_path, [GOOD[0], "2024-01-02T21:00:00+00:00,BBB,20,21,19,20.5,0"]))
    assert panel.volume[0, 1] == 0


def test_high_below_low(tmp_path):
    err = error_for(write(tmp_path, [GOOD[0], "2024-01-02T21:00:00+00:00,BBB,20,19,21,20,5"]))
    assert (err.row, err.column) == (2, "high")
    assert "below low" in err.reason


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ("2024-01-02T21:00:00+00:00,BBB,22,21,19,20.5,5", "open"),
        ("2024-01-02T21:00:00+00:00,BBB,20,21,19,18,5", "close"),
    ],
)
def test_open_or_close_outside_range(tmp_path, line, column):
    err = error_for(write(tmp_path, [GOOD[0], line]))
    assert (err.row, err.column) == (2, column)
    assert "outside the bar's range" in err.reason


def test_duplicate_symbol_timestamp(tmp_path):
    err = error_for(write(tmp_path, [*GOOD, GOOD[1]]))
    assert (err.row, err.column) == (5, "timestamp")
    assert "duplicate bar for symbol 'BBB'" in err.reason
    assert "first at row 2" in err.reason


def test_duplicate_with_different_offset_spelling(tmp_path):
    lines = [GOOD[0], "2024-01-02T16:00:00-05:00,AAA,10,11,9,10.5,100"]
    err = error_for(write(tmp_path, lines))
    assert (err.row, err.column) == (2, "timestamp")


def test_out_of_order_within_symbol(tmp_path):
    lines = [GOOD[2], GOOD[1], GOOD[0], GOOD[3]]  # AAA goes back in time at row 3
    err = error_for(write(tmp_path, lines))
    assert (err.row, err.column) == (3, "timestamp")
    assert "earlier than its previous bar at row 1" in err.reason


def test_interleaved_symbols_in_order_are_fine(tmp_path):
    lines = [GOOD[1], GOOD[3], GOOD[0], GOOD[2]]  # BBB's bars, then AAA's: each symbol in order
    panel = load_file(write(tmp_path, lines))
    assert panel.symbols == ("BBB", "AAA")


def _daily(symbol: str, days: list[int]) -> list[str]:
    base = pd.Timestamp("2024-01-01T21:00:00+00:00")
    return [f"{(base + pd.Timedelta(days=d)).isoformat()},{symbol},10,11,9,10.5,100" for d in days]


def test_gap_larger_than_tolerance(tmp_path):
    lines = _daily("AAA", list(range(10))) + _daily("BBB", [0, 1, 2, 3, 20, 21])
    err = error_for(write(tmp_path, lines))
    assert (err.row, err.column) == (15, "timestamp")
    assert "gap of 17 days" in err.reason
    assert "'BBB'" in err.reason
    assert "after row 14" in err.reason
    # A looser tolerance or None accepts it.
    assert load_file(write(tmp_path, lines), gap_tolerance=20).n_bars == 12
    assert load_file(write(tmp_path, lines), gap_tolerance=None).n_bars == 12


def test_gap_is_relative_to_each_symbols_median(tmp_path):
    # Weekly AAA next to daily BBB: a 7-day step is normal for AAA.
    lines = _daily("AAA", [0, 7, 14, 21]) + _daily("BBB", list(range(22)))
    panel = load_file(write(tmp_path, lines), gap_tolerance=3)
    assert np.isnan(panel.close[1, 0])


def test_check_order_reports_earlier_check_first(tmp_path):
    # Row 1 has high < low, row 2 a negative volume; the volume check runs before high < low.
    lines = [
        "2024-01-02T21:00:00+00:00,AAA,10,9,11,10,100",
        "2024-01-02T21:00:00+00:00,BBB,20,21,19,20,-1",
    ]
    err = error_for(write(tmp_path, lines))
    assert (err.row, err.column) == (2, "volume")


def test_typed_frame_naive_datetime_column():
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2024-01-02", "2024-01-03"]),
            "symbol": "A",
            "close": [1.0, 2.0],
        }
    )
    with pytest.raises(DataError, match=r"add a UTC offset such as \+00:00") as info:
        validate_frame(frame, source="mem")
    assert (info.value.source, info.value.row, info.value.column) == ("mem", 1, "timestamp")


def test_typed_frame_nat_and_nan():
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2024-01-02", None], utc=True),
            "symbol": ["A", "A"],
            "close": [1.0, 2.0],
        }
    )
    with pytest.raises(DataError, match="timestamp is empty") as info:
        validate_frame(frame, source="mem")
    assert info.value.row == 2
    frame["timestamp"] = pd.to_datetime(["2024-01-02", "2024-01-03"], utc=True)
    frame.loc[1, "close"] = np.nan
    with pytest.raises(DataError, match="empty or NaN") as info:
        validate_frame(frame, source="mem")
    assert (info.value.row, info.value.column) == (2, "close")


def test_normalize_frame_types():
    frame = pd.DataFrame(
        {
            "timestamp": ["2024-01-02T10:00:00-05:00", "2024-01-03T15:00:00Z"],
            "symbol": [" A ", "A"],
            "close": ["1.5", "2"],
        }
    )
    out = normalize_frame(frame, source="mem")
    assert list(out.columns) == ["timestamp", "symbol", "close"]
    assert str(out["timestamp"].dt.tz) == "UTC"
    assert out["timestamp"].iloc[0] == pd.Timestamp("2024-01-02T15:00:00+00:00")
    assert out["symbol"].tolist() == ["A", "A"]
    assert out["close"].dtype == np.float64


def test_gap_tolerance_must_be_positive():
    with pytest.raises(ValueError, match="gap_tolerance"):
        validate_frame(pd.DataFrame(), source="x", gap_tolerance=0)


def test_200k_rows_validate_fast():
    n_sym, n_t = 20, 10_000
    stamps = pd.date_range("2000-01-01", periods=n_t, freq="h", tz="UTC")
    text = np.tile(stamps.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_numpy(), n_sym)
    frame = pd.DataFrame(
        {
            "timestamp": text,
            "symbol": np.repeat([f"S{i}" for i in range(n_sym)], n_t),
            "open": "10",
            "high": "11",
            "low": "9",
            "close": "10.5",
            "volume": "100",
        }
    ).astype(str)
    began = time.perf_counter()
    validate_frame(frame, source="big")
    assert time.perf_counter() - began < 1.0


def test_all_timestamps_missing():
    frame = pd.DataFrame({"timestamp": [None, None], "symbol": ["A", "A"], "close": [1.0, 2.0]})
    with pytest.raises(DataError, match="timestamp is empty") as info:
        validate_frame(frame, source="mem")
    assert info.value.row == 1
