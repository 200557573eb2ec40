"""Synthetic markets: determinism, bar invariants, regime behaviour, stress edits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign.market import (
    DEFAULT_REGIMES,
    BarPanel,
    Feature,
    RegimeSpec,
    generate,
    random_walk,
    validate_frame,
    with_flash_crash,
    with_volatility,
)
from sovereign.rules.context import Regime

ARRAYS = ("open", "high", "low", "close", "volume")


def assert_consistent(panel: BarPanel) -> None:
    o, h, lo, c = panel.open, panel.high, panel.low, panel.close
    assert np.isfinite(c).all()
    assert (lo > 0).all()
    assert (h >= np.maximum(o, c)).all()
    assert (lo <= np.minimum(o, c)).all()


def test_shape_features_and_timestamps():
    market = generate(symbols=["A", "B", "C"], n_bars=200, interval="15min", seed=1)
    panel = market.panel
    assert panel.symbols == ("A", "B", "C")
    assert panel.close.shape == (200, 3)
    assert panel.features == frozenset({Feature.CLOSE, Feature.OHLC, Feature.VOLUME})
    assert panel.timestamps[0] == pd.Timestamp("2020-01-01", tz="UTC")
    assert (np.diff(panel.timestamps.asi8) == np.diff(panel.timestamps.asi8)[0]).all()
    assert panel.timestamps[1] - panel.timestamps[0] == pd.Timedelta(minutes=15)
    assert market.regimes.shape == (200,)
    assert set(market.regimes) <= {r.value for r in Regime}
    assert generate(symbols=4, n_bars=3, seed=1).panel.symbols == (
        "SYN00",
        "SYN01",
        "SYN02",
        "SYN03",
    )


def test_daily_bars_are_calendar_days():
    panel = generate(n_bars=10, seed=1, start="2024-01-05").panel  # a Friday
    assert panel.timestamps[1] == pd.Timestamp("2024-01-06", tz="UTC")  # Saturday is a bar


def test_same_seed_same_market_different_seed_differs():
    a, b = generate(seed=11, n_bars=300), generate(seed=11, n_bars=300)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a.panel, name), getattr(b.panel, name))
    np.testing.assert_array_equal(a.regimes, b.regimes)
    c = generate(seed=12, n_bars=300)
    assert not np.array_equal(a.panel.close, c.panel.close)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_bars=st.integers(1, 300),
    n_symbols=st.integers(1, 4),
    interval=st.sampled_from(["1min", "1h", "4h", "1D", "7D"]),
)
def test_bars_always_consistent(seed, n_bars, n_symbols, interval):
    market = generate(symbols=n_symbols, n_bars=n_bars, interval=interval, seed=seed)
    assert_consistent(market.panel)
    assert (market.panel.volume >= 0).all()
    validate_frame(market.panel.to_frame(), source="synthetic")


def test_regimes_are_sticky_and_all_visited():
    market = generate(seed=3, n_bars=5000)
    labels = market.regimes
    switches = (labels[1:] != labels[:-1]).mean()
    assert switches < 0.05  # mean durations are 40-120 bars
    assert set(labels) == {"trending_up", "trending_down", "ranging", "volatile"}


def test_regime_statistics_match_specs():
    market = generate(symbols=5, n_bars=20_000, seed=2)
    log_ret = np.diff(np.log(market.panel.close), axis=0)
    labels = market.regimes[1:]
    vol = {r: log_ret[labels == r].std() * np.sqrt(365.25) for r in set(labels)}
    drift = {r: log_ret[labels == r].mean() * 365.25 for r in set(labels)}
    assert vol["volatile"] > 2 * max(vol["trending_up"], vol["ranging"])
    assert drift["trending_up"] > 0.2
    assert drift["trending_down"] < -0.2
    volume = market.panel.volume[1:]
    assert volume[labels == "volatile"].mean() > 1.5 * volume[labels == "trending_up"].mean()


def test_symbols_are_correlated():
    panel = generate(symbols=4, n_bars=3000, seed=4, correlation=0.7).panel
    corr = np.corrcoef(np.diff(np.log(panel.close), axis=0).T)
    off = corr[~np.eye(4, dtype=bool)]
    assert (off > 0.3).all()
    flat = generate(symbols=4, n_bars=3000, seed=4, correlation=0.0).panel
    corr0 = np.corrcoef(np.diff(np.log(flat.close), axis=0).T)
    assert (np.abs(corr0[~np.eye(4, dtype=bool)]) < 0.1).all()


def test_volatility_scales_with_interval():
    def bar_sd(interval: str) -> float:
        spec = RegimeSpec(name="ranging", drift=0.0, volatility=0.3, mean_duration=10)
        panel = generate(symbols=3, n_bars=4000, interval=interval, seed=5, regimes=(spec,)).panel
        return float(np.diff(np.log(panel.close), axis=0).std())

    assert bar_sd("1D") / bar_sd("1h") == pytest.approx(np.sqrt(24), rel=0.1)


def test_custom_single_regime():
    spec = RegimeSpec(name="trending_up", drift=0.5, volatility=0.1, mean_duration=5)
    market = generate(n_bars=100, seed=1, regimes=(spec,))
    assert set(market.regimes) == {"trending_up"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "sideways", "drift": 0.0, "volatility": 0.1, "mean_duration": 5},
        {"name": "ranging", "drift": 0.0, "volatility": 0.0, "mean_duration": 5},
        {"name": "ranging", "drift": 0.0, "volatility": 0.1, "mean_duration": 1},
        {"name": "ranging", "drift": -1.0, "volatility": 0.1, "mean_duration": 5},
    ],
)
def test_bad_regime_spec(kwargs):
    with pytest.raises(ValueError, match="regime"):
        RegimeSpec(**kwargs)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_bars"):
        generate(n_bars=0, seed=1)
    with pytest.raises(ValueError, match="interval"):
        generate(interval="-1D", seed=1)
    with pytest.raises(ValueError, match="distinct"):
        generate(symbols=["A", "A"], seed=1)
    with pytest.raises(ValueError, match="correlation"):
        generate(seed=1, correlation=1.0)


def test_default_regimes_cover_rule_regimes():
    assert {s.name for s in DEFAULT_REGIMES} == {r.value for r in Regime} - {"uncertain"}


def test_random_walk_has_no_drift():
    panel = random_walk(symbols=50, n_bars=2000, seed=9, volatility=0.2)
    assert_consistent(panel)
    # Simple returns average zero: mean annualised return within 4 standard errors of 0.
    simple = panel.close[1:] / panel.close[:-1] - 1
    mean = simple.mean() * 365.25
    stderr = simple.std() * 365.25 / np.sqrt(simple.size)
    assert abs(mean) < 4 * stderr
    assert random_walk(n_bars=10, seed=1).source == "random_walk:1"


def test_flash_crash():
    panel = generate(symbols=3, n_bars=100, seed=1).panel
    crashed = with_flash_crash(panel, at=50, depth=0.3, symbols=["SYN01"], recovery_bars=10)
    ratio = crashed.close / panel.close
    np.testing.assert_allclose(ratio[:50], 1.0)
    np.testing.assert_allclose(ratio[50, 1], 0.7)
    np.testing.assert_allclose(ratio[55, 1], 1 - 0.3 * 0.5)
    np.testing.assert_allclose(ratio[60:, 1], 1.0)
    np.testing.assert_allclose(ratio[:, [0, 2]], 1.0)
    assert crashed.open[50, 1] == panel.open[50, 1]  # the bar opens before the crash
    assert_consistent(crashed)
    np.testing.assert_array_equal(crashed.volume, panel.volume)
    assert panel.close[50, 1] != crashed.close[50, 1]  # the input is not modified


def test_flash_crash_arguments():
    panel = generate(symbols=1, n_bars=10, seed=1).panel
    with pytest.raises(ValueError, match="depth"):
        with_flash_crash(panel, at=1, depth=1.0, recovery_bars=2)
    with pytest.raises(ValueError, match="outside"):
        with_flash_crash(panel, at=10, depth=0.1, recovery_bars=2)
    with pytest.raises(KeyError, match="ZZZ"):
        with_flash_crash(panel, at=1, depth=0.1, recovery_bars=2, symbols=["ZZZ"])


def test_with_volatility():
    panel = generate(symbols=2, n_bars=300, seed=8).panel
    louder = with_volatility(panel, 3.0, start=100, stop=200)
    r0 = np.diff(np.log(panel.close), axis=0)
    r1 = np.diff(np.log(louder.close), axis=0)
    np.testing.assert_allclose(r1[99:199], 3 * r0[99:199])  # returns into bars 100..199
    np.testing.assert_allclose(r1[:99], r0[:99])
    np.testing.assert_allclose(r1[199:], r0[199:])
    np.testing.assert_allclose(louder.close[:100], panel.close[:100])
    assert_consistent(louder)
    with pytest.raises(ValueError, match="factor"):
        with_volatility(panel, 0.0, start=0, stop=1)


def test_stress_edits_keep_nan_cells():
    closes = pd.DataFrame(
        {"A": [np.nan, 10.0, 11.0, 12.0], "B": [5.0, 5.5, 5.2, 5.1]},
        index=pd.date_range("2024-01-01", periods=4, tz="UTC"),
    )
    panel = BarPanel.from_closes(closes)
    crashed = with_flash_crash(panel, at=0, depth=0.5, recovery_bars=2)
    assert np.isnan(crashed.close[0, 0])
    louder = with_volatility(panel, 2.0, start=0, stop=4)
    assert np.isnan(louder.close[0, 0])
    np.testing.assert_allclose(louder.close[2, 0], 10.0 * (11.0 / 10.0) ** 2)
