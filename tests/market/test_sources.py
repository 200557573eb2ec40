"""Bundled samples: shapes, date ranges, features, repairs, caching."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sovereign.errors import ConfigError
from sovereign.market import (
    SAMPLES,
    Feature,
    available_samples,
    load_sample,
    sample_repairs,
    validate_frame,
)

OHLCV = frozenset({Feature.CLOSE, Feature.OHLC, Feature.VOLUME})


def utc(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def test_registry():
    assert available_samples() == ("sp500", "sp500_index", "nasdaq_index", "indices")
    assert SAMPLES["sp500"].features == frozenset({Feature.CLOSE})
    assert SAMPLES["indices"].features == OHLCV


def test_sp500_closes_only():
    panel = load_sample()
    assert panel.close.shape == (8313, 20)
    assert panel.symbols == SAMPLES["sp500"].symbols
    assert panel.features == SAMPLES["sp500"].features
    assert panel.timestamps[0] == utc("1990-01-02")
    assert panel.timestamps[-1] == utc("2022-12-28")
    assert (panel.timestamps.hour == 0).all()
    assert panel.timestamps.is_monotonic_increasing
    assert np.isfinite(panel.close).all()
    assert (panel.close > 0).all()
    np.testing.assert_array_equal(panel.open, panel.close)
    assert np.isnan(panel.volume).all()
    assert panel.source == "sample:sp500"


@pytest.mark.parametrize(("name", "symbol"), [("sp500_index", "SPX"), ("nasdaq_index", "IXIC")])
def test_index_samples(name, symbol):
    panel = load_sample(name)
    assert panel.symbols == (symbol,)
    assert panel.features == OHLCV
    assert panel.close.shape == (5031, 1)
    assert panel.timestamps[0] == utc("1999-01-04")
    assert panel.timestamps[-1] == utc("2018-12-31")
    assert (panel.high >= np.maximum(panel.open, panel.close)).all()
    assert (panel.low <= np.minimum(panel.open, panel.close)).all()
    assert (panel.low > 0).all()
    assert (panel.volume[np.isfinite(panel.volume)] > 0).all()


def test_known_values_from_arch():
    spx = load_sample("sp500_index").bar(0, "SPX")
    assert spx.timestamp == utc("1999-01-04").to_pydatetime()
    assert spx.open == pytest.approx(1229.229980)
    assert spx.high == pytest.approx(1248.810059)
    assert spx.volume == 877_000_000


def test_nasdaq_zero_volume_becomes_nan():
    panel = load_sample("nasdaq_index")
    missing = panel.timestamps[np.isnan(panel.volume[:, 0])]
    assert list(missing) == [utc("2015-05-12"), utc("2018-01-09")]
    assert sample_repairs("nasdaq_index").zero_volume_to_nan == 2
    assert sample_repairs("sp500_index").zero_volume_to_nan == 0
    for name in available_samples():
        repairs = sample_repairs(name)
        assert (repairs.high_raised, repairs.low_lowered) == (0, 0)


def test_indices_aligned():
    both = load_sample("indices")
    assert both.symbols == ("SPX", "IXIC")
    np.testing.assert_array_equal(both.close[:, 0], load_sample("sp500_index").close[:, 0])
    np.testing.assert_array_equal(both.close[:, 1], load_sample("nasdaq_index").close[:, 0])


def test_index_sample_passes_file_validation():
    frame = load_sample("sp500_index").to_frame()
    validate_frame(frame, source="sample")


def test_cached_and_read_only():
    first = load_sample("sp500_index")
    assert load_sample("sp500_index") is first
    with pytest.raises(ValueError, match="read-only"):
        first.close[0, 0] = 1.0
    # select/slice give copies: changing one leaves the cached panel intact.
    part = first.slice(0, 10)
    part.close[0, 0] = 1.0
    assert first.close[0, 0] != 1.0


def test_unknown_sample_is_config_error():
    with pytest.raises(ConfigError, match="unknown sample 'ftse'; valid names: sp500, sp500_index"):
        load_sample("ftse")
    with pytest.raises(ConfigError):
        sample_repairs("ftse")
