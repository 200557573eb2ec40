"""Feature drift: PSI against hand-made histograms, KS against scipy, the small-sample noise
floor, NaN handling, and a real drift (the 2020 crash against 2017-2019) on the bundled data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import ks_2samp

from sovereign.engines.drift import (
    DriftConfig,
    DriftLevel,
    drift_report,
    population_stability_index,
)
from sovereign.errors import EngineError
from sovereign.market.sources import load_sample

# 100 reference values 0.5, 1.5, ..., 99.5: quartile cuts at 25.25, 50.5 and 74.75 put 25 in each.
REFERENCE = np.arange(100) + 0.5
# 10, 20, 30 and 40 live values in the four quartile bins: shares 0.1, 0.2, 0.3, 0.4.
LIVE = np.repeat([10.0, 30.0, 60.0, 90.0], [10, 20, 30, 40])
FOUR_BINS = DriftConfig(n_bins=4, max_null_psi=1.0, min_reference_rows=10, min_live_rows=10)


def psi_by_hand(p: list[float], q: list[float]) -> float:
    return sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))


def test_psi_of_hand_made_histograms() -> None:
    expected = psi_by_hand([0.25] * 4, [0.1, 0.2, 0.3, 0.4])
    assert expected == pytest.approx(0.2282, abs=1e-4)
    assert population_stability_index(REFERENCE, LIVE, n_bins=4) == pytest.approx(expected)
    report = drift_report(REFERENCE[:, None], LIVE[:, None], ["x"], config=FOUR_BINS)
    feature = report.features[0]
    assert feature.n_bins == 4
    assert feature.psi == pytest.approx(expected)
    assert feature.level is DriftLevel.MODERATE  # 0.1 <= 0.228 <= 0.25
    assert report.drifted == ("x",)


def test_psi_floors_empty_bins_at_epsilon() -> None:
    live = np.full(40, 5.0)  # every live value in the first quartile bin
    eps = 1e-4
    expected = psi_by_hand([0.25] * 4, [1.0, eps, eps, eps])
    assert population_stability_index(REFERENCE, live, n_bins=4, epsilon=eps) == pytest.approx(
        expected
    )
    assert math.isfinite(expected)
    report = drift_report(REFERENCE[:, None], live[:, None], ["x"], config=FOUR_BINS)
    assert report.level is DriftLevel.SIGNIFICANT


@settings(max_examples=80, deadline=None)
@given(
    ref=arrays(np.float64, st.integers(5, 200), elements=st.floats(-1e6, 1e6)),
    live=arrays(np.float64, st.integers(1, 200), elements=st.floats(-1e6, 1e6)),
    n_bins=st.integers(2, 20),
)
def test_psi_is_non_negative_and_zero_on_identical_samples(
    ref: np.ndarray, live: np.ndarray, n_bins: int
) -> None:
    assert population_stability_index(ref, live, n_bins=n_bins) >= 0.0
    assert population_stability_index(ref, ref, n_bins=n_bins) == 0.0
    assert population_stability_index(ref, ref[::-1].copy(), n_bins=n_bins) == 0.0


@settings(max_examples=40, deadline=None)
@given(
    ref=arrays(np.float64, (60, 2), elements=st.floats(-100, 100)),
    live=arrays(np.float64, (30, 2), elements=st.floats(-100, 100)),
)
def test_ks_matches_scipy_and_stays_in_the_unit_interval(ref: np.ndarray, live: np.ndarray) -> None:
    cfg = DriftConfig(min_reference_rows=10, min_live_rows=10)
    report = drift_report(ref, live, ["a", "b"], config=cfg)
    for j, feature in enumerate(report.features):
        expected = ks_2samp(ref[:, j], live[:, j])
        assert feature.ks_statistic == pytest.approx(float(expected.statistic))
        assert feature.ks_pvalue == pytest.approx(float(expected.pvalue))
        assert 0.0 <= feature.ks_statistic <= 1.0
        assert feature.psi >= 0.0


def test_ks_flags_need_both_significance_and_effect_size() -> None:
    rng = np.random.default_rng(42)
    ref = rng.normal(size=(20_000, 1))
    small_shift = rng.normal(0.06, 1.0, size=(20_000, 1))  # p << 0.01, statistic ~ 0.024
    report = drift_report(ref, small_shift, ["x"])
    feature = report.features[0]
    assert feature.ks_pvalue < 0.01
    assert feature.ks_statistic < 0.1
    assert not feature.ks_drift
    assert feature.level is DriftLevel.NONE
    # The same gate with no minimum effect raises the alarm.
    loose = drift_report(ref, small_shift, ["x"], config=DriftConfig(ks_min_statistic=0.0))
    assert loose.features[0].ks_drift
    assert loose.level is DriftLevel.MODERATE


def test_constant_features_give_zero_drift_not_nan() -> None:
    ref = np.column_stack([np.full(200, 3.0), np.random.default_rng(0).normal(size=200)])
    live = np.column_stack([np.full(60, 3.0), np.random.default_rng(1).normal(size=60)])
    constant = drift_report(ref, live, ["flag", "noise"]).features[0]
    assert constant.psi == 0.0
    assert constant.ks_statistic == 0.0
    assert constant.level is DriftLevel.NONE
    moved = drift_report(ref, live + np.array([1.0, 0.0]), ["flag", "noise"]).features[0]
    assert moved.level is DriftLevel.SIGNIFICANT
    assert math.isfinite(moved.psi)


def test_bins_shrink_with_small_samples_to_bound_the_noise_floor() -> None:
    rng = np.random.default_rng(3)
    big = drift_report(rng.normal(size=(5_000, 1)), rng.normal(size=(1_000, 1)), ["x"])
    assert big.features[0].n_bins == 10
    assert big.features[0].psi_null == pytest.approx(9 * (1 / 5_000 + 1 / 1_000))
    mid = drift_report(rng.normal(size=(1_000, 1)), rng.normal(size=(250, 1)), ["x"])
    assert mid.features[0].n_bins == 5  # 4 * (1/1000 + 1/250) = 0.02
    small = drift_report(rng.normal(size=(250, 1)), rng.normal(size=(60, 1)), ["x"])
    assert small.features[0].n_bins == 2


def test_undrifted_features_rarely_raise_an_alarm() -> None:
    # 400 independent features, reference and live from the same fat-tailed distribution, at
    # the small sizes the Supervisor sees (a year of training bars, three months live).
    rng = np.random.default_rng(7)
    ref = rng.standard_t(5, size=(250, 400))
    live = rng.standard_t(5, size=(60, 400))
    report = drift_report(ref, live, [f"f{i}" for i in range(400)])
    rate = len(report.drifted) / 400
    assert rate <= 0.06
    significant = sum(f.level is DriftLevel.SIGNIFICANT for f in report.features)
    assert significant <= 2


def test_a_real_shift_is_significant() -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(size=(1_000, 2))
    live = np.column_stack([rng.normal(0.8, 1.0, 500), rng.normal(0.0, 1.0, 500)])
    report = drift_report(ref, live, ["shifted", "same"])
    assert report.drifted == ("shifted",)
    assert report.level is DriftLevel.SIGNIFICANT
    assert report.features[0].ks_drift
    assert report.features[1].level is DriftLevel.NONE


def test_the_2020_crash_drifts_from_2017_to_2019() -> None:
    panel = load_sample("sp500")
    returns = pd.DataFrame(np.log(panel.close), index=panel.timestamps).diff()
    features = pd.DataFrame(
        {
            "return": returns.mean(axis=1),
            "abs_return": returns.abs().mean(axis=1),
            "dispersion": returns.std(axis=1),
        }
    )
    reference = features.loc["2017-01-01":"2019-12-31"].to_numpy()
    live = features.loc["2020-02-20":"2020-05-31"].to_numpy()
    report = drift_report(reference, live, list(features.columns))
    assert report.level is DriftLevel.SIGNIFICANT
    assert {"abs_return", "dispersion"} <= set(report.drifted)
    calm = drift_report(
        features.loc["2017-01-01":"2018-06-30"].to_numpy(),
        features.loc["2018-07-01":"2018-09-30"].to_numpy(),
        list(features.columns),
    )
    assert calm.level is DriftLevel.NONE


def test_nan_rows_are_dropped_and_counted() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(150, 2))
    live = rng.normal(size=(70, 2))
    ref[[3, 9], 0] = np.nan
    ref[9, 1] = np.nan
    live[0, 1] = np.nan
    report = drift_report(ref, live, ("a", "b"))
    assert (report.n_reference, report.dropped_reference) == (148, 2)
    assert (report.n_live, report.dropped_live) == (69, 1)
    clean = ks_2samp(ref[~np.isnan(ref).any(axis=1), 0], live[1:, 0])
    assert report.features[0].ks_statistic == pytest.approx(float(clean.statistic))


def test_too_few_rows_and_bad_inputs_are_engine_errors() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(150, 2))
    live = rng.normal(size=(60, 2))
    with pytest.raises(EngineError, match="complete live rows"):
        drift_report(ref, np.where(np.arange(60)[:, None] < 20, np.nan, live), ["a", "b"])
    with pytest.raises(EngineError, match="complete reference rows"):
        drift_report(ref[:99], live, ["a", "b"])
    corrupt = live.copy()
    corrupt[5, 1] = -np.inf
    with pytest.raises(EngineError, match="infinite"):
        drift_report(ref, corrupt, ["a", "b"])
    with pytest.raises(EngineError, match="shape"):
        drift_report(ref, live[:, :1], ["a", "b"])
    with pytest.raises(EngineError, match="distinct"):
        drift_report(ref, live, ["a", "a"])
    with pytest.raises(EngineError):
        population_stability_index([], [1.0])
    with pytest.raises(EngineError):
        population_stability_index([1.0, np.nan], [1.0])
    with pytest.raises(EngineError):
        DriftConfig(psi_moderate=0.3, psi_significant=0.2)
