"""load_file / write_csv: formats, alignment, filtering, round trips."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sovereign.errors import DataError
from sovereign.market import BarPanel, Feature, generate, load_file, write_csv

CLOSES_ONLY = """timestamp,symbol,close
2024-01-02T21:00:00+00:00,AAA,10.0
2024-01-03T21:00:00+00:00,AAA,11.0
2024-01-03T21:00:00+00:00,BBB,20.0
2024-01-04T21:00:00+00:00,BBB,21.0
"""


def assert_same(a: BarPanel, b: BarPanel) -> None:
    assert a.symbols == b.symbols
    assert a.features == b.features
    assert a.timestamps.equals(b.timestamps)
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_closes_only_alignment(tmp_path):
    path = tmp_path / "closes.csv"
    path.write_text(CLOSES_ONLY)
    panel = load_file(path)
    assert panel.features == frozenset({Feature.CLOSE})
    assert panel.symbols == ("AAA", "BBB")
    assert panel.source == str(path)
    assert list(panel.timestamps) == list(
        pd.to_datetime(["2024-01-02T21:00Z", "2024-01-03T21:00Z", "2024-01-04T21:00Z"])
    )
    expected = np.array([[10.0, np.nan], [11.0, 20.0], [np.nan, 21.0]])
    np.testing.assert_array_equal(panel.close, expected)
    np.testing.assert_array_equal(panel.open, expected)
    np.testing.assert_array_equal(panel.high, expected)
    np.testing.assert_array_equal(panel.low, expected)
    assert np.isnan(panel.volume).all()


def test_volume_without_ohlc(tmp_path):
    path = tmp_path / "cv.csv"
    path.write_text("symbol,timestamp,volume,close\nAAA,2024-01-02T21:00:00Z,5,10\n")
    panel = load_file(path)
    assert panel.features == frozenset({Feature.CLOSE, Feature.VOLUME})
    assert panel.volume[0, 0] == 5
    assert panel.open[0, 0] == 10


def test_symbols_filter_keeps_requested_order(tmp_path):
    path = tmp_path / "closes.csv"
    path.write_text(CLOSES_ONLY)
    panel = load_file(path, symbols=["BBB"])
    assert panel.symbols == ("BBB",)
    assert panel.n_bars == 2  # only BBB's timestamps
    both = load_file(path, symbols=["BBB", "AAA"])
    assert both.symbols == ("BBB", "AAA")
    np.testing.assert_array_equal(both.close[:, 1], [10.0, 11.0, np.nan])


def test_unknown_symbol_lists_available(tmp_path):
    path = tmp_path / "closes.csv"
    path.write_text(CLOSES_ONLY)
    with pytest.raises(DataError, match="'ZZZ' not in the file; available: AAA, BBB") as info:
        load_file(path, symbols=["AAA", "ZZZ"])
    assert info.value.column == "symbol"


def test_filter_still_validates_whole_file(tmp_path):
    path = tmp_path / "closes.csv"
    path.write_text(CLOSES_ONLY + "2024-01-05T21:00:00+00:00,BBB,-1\n")
    with pytest.raises(DataError, match="not positive") as info:
        load_file(path, symbols=["AAA"])
    assert info.value.row == 5


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=r"file not found; expected a \.csv, \.csv\.gz, \.parquet"):
        load_file(path)


@pytest.mark.parametrize("name", ["bars.json", "bars.xlsx", "bars"])
def test_unsupported_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text("x")
    with pytest.raises(
        DataError, match=r"unsupported file type.*supported: \.csv, \.csv\.gz"
    ) as info:
        load_file(path)
    assert info.value.source == str(path)


def test_empty_and_header_only_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_file(empty)
    header = tmp_path / "header.csv"
    header.write_text("timestamp,symbol,close\n")
    with pytest.raises(DataError, match="no data rows"):
        load_file(header)


def test_ragged_csv_is_a_data_error(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("timestamp,symbol,close\n2024-01-02T21:00:00Z,AAA,1,2,3\n")
    with pytest.raises(DataError, match=r"cannot read the file.*Expected 3 fields") as info:
        load_file(path)
    assert info.value.row == 1


def test_short_row_reports_empty_cell(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text(
        "timestamp,symbol,close\n2024-01-02T21:00:00Z,AAA,1\n2024-01-03T21:00:00Z,AAA\n"
    )
    with pytest.raises(DataError, match="close is empty") as info:
        load_file(path)
    assert (info.value.row, info.value.column) == (2, "close")


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_round_trip(tmp_path, suffix):
    panel = generate(symbols=3, n_bars=50, interval="4h", seed=7).panel
    path = tmp_path / f"bars{suffix}"
    write_csv(panel, path)
    if suffix == ".csv.gz":
        with gzip.open(path, "rt") as fh:
            assert fh.readline().strip() == "timestamp,symbol,open,high,low,close,volume"
    loaded = load_file(path)
    assert_same(loaded, panel)


def test_round_trip_closes_only_with_gaps(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(CLOSES_ONLY)
    panel = load_file(src)
    out = tmp_path / "out.csv"
    write_csv(panel, out)
    text = out.read_text().splitlines()
    assert text[0] == "timestamp,symbol,close"
    assert text[1] == "2024-01-02T21:00:00+00:00,AAA,10.0"
    assert len(text) == 5  # NaN cells skipped
    assert_same(load_file(out), panel)


def test_write_csv_subsecond_timestamps(tmp_path):
    panel = generate(symbols=1, n_bars=5, interval="250ms", seed=1).panel
    path = tmp_path / "fast.csv"
    write_csv(panel, path)
    assert "T00:00:00.250000+00:00" in path.read_text()
    assert_same(load_file(path), panel)


def test_parquet_with_aware_timestamps(tmp_path):
    panel = generate(symbols=2, n_bars=30, seed=3).panel
    path = tmp_path / "bars.parquet"
    panel.to_frame().to_parquet(path)
    assert_same(load_file(path), panel)


def test_parquet_naive_timestamps_refused(tmp_path):
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2024-01-02", "2024-01-03"]),
            "symbol": "A",
            "close": [1.0, 2.0],
        }
    )
    path = tmp_path / "naive.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match=r"add a UTC offset such as \+00:00") as info:
        load_file(path)
    assert (info.value.source, info.value.row, info.value.column) == (str(path), 1, "timestamp")


def test_parquet_bad_value_reports_row(tmp_path):
    frame = generate(symbols=2, n_bars=10, seed=3).panel.to_frame()
    frame.loc[7, "low"] = frame.loc[7, "high"] * 1.1
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match="below low") as info:
        load_file(path)
    assert (info.value.row, info.value.column) == (8, "high")


def test_write_csv_rejects_other_suffix(tmp_path):
    panel = generate(symbols=1, n_bars=3, seed=1).panel
    with pytest.raises(DataError, match=r"\.csv or \.csv\.gz"):
        write_csv(panel, tmp_path / "x.parquet")


def test_large_csv_loads_quickly(tmp_path):
    panel = generate(symbols=20, n_bars=2_000, interval="1h", seed=5).panel
    path = tmp_path / "big.csv"
    write_csv(panel, path)
    loaded = load_file(Path(path))
    assert loaded.close.shape == (2_000, 20)
