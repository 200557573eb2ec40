"""Crash sentinel: bundled-data behaviour (2004-06 calm, 2008 and 2020 alarms), a pandas
reference of the components, causality, the per-bar form, degenerate inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sovereign.engines.risk import turbulence_index
from sovereign.engines.sentinel import (
    COMPONENT_NAMES,
    SentinelAction,
    SentinelConfig,
    sentinel_reading,
    sentinel_series,
)
from sovereign.errors import EngineError
from sovereign.market.sources import load_sample

SMALL = SentinelConfig(window=20, turbulence_window=30, turbulence_smoothing=3, z_window=40)


@pytest.fixture(scope="module")
def sp500() -> tuple[np.ndarray, pd.DatetimeIndex]:
    panel = load_sample("sp500")
    close = panel.close
    return close[1:] / close[:-1] - 1.0, panel.timestamps[1:]


def calm_then_crash(seed: int, n_calm: int = 700, n_crash: int = 40) -> np.ndarray:
    """5 assets: independent 1 % noise, then a crash with 4x volatility and 0.9 correlation."""
    rng = np.random.default_rng(seed)
    calm = 0.01 * rng.normal(size=(n_calm, 5))
    common = rng.normal(size=(n_crash, 1))
    crash = 0.04 * (np.sqrt(0.9) * common + np.sqrt(0.1) * rng.normal(size=(n_crash, 5)))
    return np.vstack([calm, crash - 0.01])


# ---------------------------------------------------------------------------------- bundled data


def test_bundled_sample_calm_years_and_crises(sp500: tuple[np.ndarray, pd.DatetimeIndex]) -> None:
    returns, stamps = sp500
    series = sentinel_series(returns)
    level = pd.Series(series.level, index=stamps).iloc[series.start :]
    calm = level.loc["2004":"2006"]
    assert (calm == 0).mean() > 0.8
    assert (level == 0).mean() > 0.9  # NONE most of the time overall
    for first, last in [("2008-09-01", "2008-12-31"), ("2020-02-15", "2020-04-30")]:
        assert (level.loc[first:last] >= 1).any(), f"no alarm in {first}..{last}"
    assert (level == 2).sum() > 0  # STAND_DOWN happens, and only in stress (it is rare)
    assert (level == 2).mean() < 0.02
    assert set(np.unique(series.scale)) <= {0.0, 0.5, 1.0}
    np.testing.assert_array_equal(series.scale, np.array([1.0, 0.5, 0.0])[series.level])


def test_per_bar_reading_equals_series(sp500: tuple[np.ndarray, pd.DatetimeIndex]) -> None:
    returns, _ = sp500
    series = sentinel_series(returns)
    alarms = np.flatnonzero(series.level > 0)
    rng = np.random.default_rng(42)
    bars = [*rng.integers(series.start, returns.shape[0], 6), alarms[0], alarms[-1]]
    for t in bars:
        reading = sentinel_reading(returns[: t + 1])
        expected = series.reading(int(t))
        assert reading.action is expected.action
        assert reading.composite == pytest.approx(expected.composite, abs=1e-9)
        assert reading.components.variance == pytest.approx(expected.components.variance, abs=1e-9)
        assert bool(reading.reasons) == (reading.action is not SentinelAction.NONE)
        assert (
            reading.exposure_scale == {"none": 1.0, "halve": 0.5, "stand_down": 0.0}[reading.action]
        )


# ------------------------------------------------------------------------------------ reference


def reference_components(r: np.ndarray, cfg: SentinelConfig) -> np.ndarray:
    """The three z-scores with pandas rolling windows (independent of the module's arithmetic)."""
    market = pd.Series(r.mean(axis=1))
    acf = market.rolling(cfg.window).apply(lambda s: s.autocorr(lag=1), raw=False)
    logvar = np.log(market.rolling(cfg.window).var() + 1e-20)
    turb = pd.Series(np.log1p(turbulence_index(r, cfg.turbulence_window).index))
    turb = turb.rolling(cfg.turbulence_smoothing).mean()
    out = []
    for ind in (acf, logvar, turb):
        hist = ind.shift(1).rolling(cfg.z_window)
        z = (ind - hist.mean()) / hist.std()
        out.append(z.clip(-cfg.z_cap, cfg.z_cap).to_numpy())
    return np.column_stack(out)


def test_components_match_pandas_reference() -> None:
    r = calm_then_crash(seed=3, n_calm=180, n_crash=20)
    series = sentinel_series(r, SMALL)
    ref = reference_components(r, SMALL)
    assert series.start == SMALL.start == 32 + 40
    np.testing.assert_allclose(series.components[SMALL.start :], ref[SMALL.start :], atol=1e-9)
    assert np.isnan(series.components[: SMALL.start]).all()
    composite = np.maximum(ref[SMALL.start :], 0).mean(axis=1)
    np.testing.assert_allclose(series.composite[SMALL.start :], composite, atol=1e-9)
    assert COMPONENT_NAMES == ("autocorrelation", "variance", "turbulence")


def test_thresholds_map_to_actions() -> None:
    r = calm_then_crash(seed=5, n_calm=180, n_crash=20)
    s = sentinel_series(r, SMALL)
    z = s.components[SMALL.start :]
    comp = s.composite[SMALL.start :]
    over = (z > 2.0).sum(axis=1) >= 2
    expected = np.where(comp > 2.5, 2, np.where((comp > 1.5) | over, 1, 0))
    np.testing.assert_array_equal(s.level[SMALL.start :], expected)
    assert (s.level[: SMALL.start] == 0).all()


# ------------------------------------------------------------------------------------ behaviour


def test_planted_crash_stands_down_and_calm_is_quiet() -> None:
    r = calm_then_crash(seed=42)
    s = sentinel_series(r)
    calm = s.level[s.start : 700]
    assert (calm == 0).mean() > 0.9
    assert (s.level[700:] == 2).any()
    first = int(np.argmax(s.level[700:] > 0))
    assert first <= 5  # within a few bars of the crash starting


def test_causal_future_bars_do_not_change_the_past() -> None:
    r = calm_then_crash(seed=8)
    base = sentinel_series(r[:650])
    shocked = r.copy()
    shocked[650:] *= 5.0
    full = sentinel_series(shocked)
    np.testing.assert_allclose(full.composite[:650], base.composite, atol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(full.level[:650], base.level)


def test_seeded_determinism() -> None:
    a = sentinel_series(calm_then_crash(seed=11), SMALL)
    b = sentinel_series(calm_then_crash(seed=11), SMALL)
    np.testing.assert_array_equal(a.composite, b.composite)
    np.testing.assert_array_equal(a.level, b.level)


# ---------------------------------------------------------------------------------- degenerate


@pytest.mark.parametrize("value", [0.0, 0.003, -0.0123])
def test_constant_returns_read_none_not_nan(value: float) -> None:
    s = sentinel_series(np.full((SMALL.min_history + 20, 3), value), SMALL)
    assert np.isfinite(s.composite[SMALL.start :]).all()
    assert (s.composite[SMALL.start :] == 0.0).all()
    assert (s.level == 0).all()


def test_sudden_move_after_flat_history_is_an_alarm() -> None:
    r = np.zeros((SMALL.min_history + 5, 2))
    r[-1] = [-0.03, -0.05]
    reading = sentinel_reading(r, SMALL)
    assert reading.components.variance == SMALL.z_cap  # zero trailing spread: +cap
    assert reading.components.autocorrelation == 0.0  # undefined on a flat window: 0
    assert reading.composite == pytest.approx(SMALL.z_cap / 3)
    assert reading.action is SentinelAction.STAND_DOWN
    assert "stand-down" in reading.reasons[0]


def test_degenerate_inputs_raise() -> None:
    with pytest.raises(EngineError, match="need at least 514"):
        sentinel_reading(np.zeros((513, 3)))
    r = calm_then_crash(seed=1, n_calm=200, n_crash=10)
    r[100, 2] = np.nan
    with pytest.raises(EngineError, match="NaN"):
        sentinel_series(r, SMALL)
    with pytest.raises(EngineError, match="has no reading"):
        sentinel_series(np.zeros((200, 2)), SMALL).reading(3)
    with pytest.raises(EngineError, match="halve < stand_down"):
        SentinelConfig(halve=3.0, stand_down=2.0)
