"""Edge model: skill and calibration on a planted edge, none on noise, the unstable-feature
flag, no leakage from later folds, scikit-learn reference figures, determinism, degenerate input.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from sovereign.engines.assessment import (
    CalibrationMethod,
    EdgeAssessment,
    EdgeConfig,
    EstimatorKind,
    calibration_table,
    edge_labels,
    fit_edge_model,
)
from sovereign.engines.cv import Window
from sovereign.errors import EngineError

N = 1500
HORIZON = 5
NAMES = ("momentum", "volume", "spread", "noise")


def features(n: int = N, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, len(NAMES)))


def bernoulli(logit: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(logit.size) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)


def fit(x: np.ndarray, y: np.ndarray, **kwargs: object) -> EdgeAssessment:
    return fit_edge_model(
        x, y, np.arange(len(y)), horizon=HORIZON, seed=11, feature_names=NAMES, **kwargs
    )  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def edge() -> tuple[np.ndarray, np.ndarray, EdgeAssessment]:
    """A real edge: the forward return loads on momentum and volume; cost 10 bp."""
    x = features()
    rng = np.random.default_rng(1)
    forward = 0.004 * (x[:, 0] + 0.5 * x[:, 1]) + rng.normal(0.0, 0.006, N)
    y = edge_labels(forward, cost=0.001)
    return x, y, fit(x, y)


# ------------------------------------------------------------------------------ skill, calibration


def test_real_edge_has_skill_and_a_calibrated_table(edge) -> None:
    result = edge[2]
    assert result.skill > 0.1
    assert result.model.method is CalibrationMethod.SIGMOID  # folds of ~80 samples < 1000
    populated = [b for b in result.calibration if b.count >= 30]
    assert len(populated) >= 6
    for b in populated:
        assert abs(b.observed_frequency - b.mean_predicted) <= 0.1, b
        assert b.lower <= b.mean_predicted <= b.upper
    assert sum(b.count for b in result.calibration) == result.oof_index.size
    assert result.concentration.feature == "momentum"
    assert not result.concentration.flagged  # a strong but stable leading feature is fine


def test_brier_scores_match_scikit_learn(edge) -> None:
    _, y, result = edge
    y_oof = y[result.oof_index]
    assert result.brier == pytest.approx(brier_score_loss(y_oof, result.oof_probability), abs=1e-12)
    base = np.full(y_oof.size, y_oof.mean())
    assert result.base_rate == pytest.approx(y_oof.mean())
    assert result.brier_reference == pytest.approx(brier_score_loss(y_oof, base), abs=1e-12)
    assert result.skill == pytest.approx(1 - result.brier / result.brier_reference)


def test_out_of_fold_covers_every_test_fold_once(edge) -> None:
    _, _, result = edge
    test_size = N // 6
    np.testing.assert_array_equal(result.oof_index, np.arange(N - 5 * test_size, N))
    assert result.oof_probability.shape == result.oof_index.shape
    assert np.all((result.oof_probability >= 0) & (result.oof_probability <= 1))


def test_calibration_table_matches_sklearn_calibration_curve(edge) -> None:
    _, y, result = edge
    prob_true, prob_pred = calibration_curve(
        y[result.oof_index], result.oof_probability, n_bins=10, strategy="uniform"
    )
    np.testing.assert_allclose([b.observed_frequency for b in result.calibration], prob_true)
    np.testing.assert_allclose([b.mean_predicted for b in result.calibration], prob_pred)


def test_model_survives_pickling(edge) -> None:
    x, _, result = edge
    clone = pickle.loads(pickle.dumps(result.model))  # noqa: S301 -- our own bytes
    np.testing.assert_array_equal(clone.predict_proba(x[:9]), result.model.predict_proba(x[:9]))


def test_calibration_table_golden() -> None:
    p = np.array([0.05, 0.15, 0.2, 0.95, 1.0])  # 0.2 sits on an inner edge: lower bin
    y = np.array([0, 1, 0, 1, 1])
    table = calibration_table(p, y, n_bins=5)
    assert [(b.lower, b.count) for b in table] == [(0.0, 3), (0.8, 2)]
    assert table[0].mean_predicted == pytest.approx(0.4 / 3)
    assert table[0].observed_frequency == pytest.approx(1 / 3)
    assert table[1].observed_frequency == 1.0


def test_pure_noise_has_no_skill() -> None:
    x = features(seed=3)
    y = bernoulli(np.full(N, -0.4), seed=4)
    result = fit(x, y)
    assert result.skill <= 0.01
    assert all(b.mean_predicted < 0.6 for b in result.calibration)


@settings(max_examples=20, deadline=None)
@given(arrays(np.float64, (3, len(NAMES)), elements=st.floats(-1e6, 1e6)))
def test_predictions_are_probabilities(edge, rows: np.ndarray) -> None:
    model = edge[2].model
    p = model.predict_proba(rows)
    assert p.shape == (3,)
    assert np.all((p >= 0) & (p <= 1))
    assert model.probability(rows[0]) == pytest.approx(p[0])


# ------------------------------------------------------------------------- unstable-feature check


def test_single_feature_that_flips_sign_is_flagged() -> None:
    x = features(seed=5)
    sign = np.where(np.arange(N) < N // 2, 1.0, -1.0)
    result = fit(x, bernoulli(2.0 * sign * x[:, 0], seed=6))
    c = result.concentration
    assert c.flagged
    assert c.feature == "momentum"
    assert c.share > 0.6
    assert c.fold_cv > 1.0
    assert "momentum" in c.reason
    assert result.skill < 0.0  # what it learned early hurts later: the flag is warranted


def test_stable_multi_feature_model_is_not_flagged() -> None:
    x = features(seed=8)
    result = fit(x, bernoulli(x[:, 0] + x[:, 1] + x[:, 2], seed=9))
    c = result.concentration
    assert not c.flagged
    assert c.share < 0.6
    assert not c.sign_flips
    assert sum(c.shares) == pytest.approx(1.0)
    assert c.shares[3] < 0.05  # the noise column carries almost nothing


# -------------------------------------------------------------------- leakage, options, determinism


def test_later_labels_never_change_earlier_predictions(edge) -> None:
    # flip every label from the third test fold on: the predictions of folds 0..2 were made by
    # models trained strictly before each fold, so they must not move; later folds must
    x, y, result = edge
    test_size = N // 6
    third = N - 5 * test_size + 2 * test_size
    changed = y.copy()
    changed[third:] = 1 - changed[third:]
    other = fit(x, changed)
    np.testing.assert_array_equal(other.oof_index, result.oof_index)
    upto = result.oof_index < third + test_size
    np.testing.assert_array_equal(other.oof_probability[upto], result.oof_probability[upto])
    assert not np.allclose(other.oof_probability[~upto], result.oof_probability[~upto])


def test_gradient_boosting_is_seeded_and_deterministic() -> None:
    x = features(n=500, seed=12)
    y = bernoulli(1.5 * x[:, 0], seed=13)
    config = EdgeConfig(
        estimator=EstimatorKind.GRADIENT_BOOSTING, calibration_splits=2, permutation_repeats=2
    )
    a = fit_edge_model(x, y, np.arange(500), horizon=2, n_splits=3, seed=5, config=config)
    b = fit_edge_model(x, y, np.arange(500), horizon=2, n_splits=3, seed=5, config=config)
    np.testing.assert_array_equal(a.oof_probability, b.oof_probability)
    assert a.concentration == b.concentration
    assert a.brier == b.brier
    np.testing.assert_array_equal(a.model.predict_proba(x[:50]), b.model.predict_proba(x[:50]))
    assert a.skill > 0.05


def test_isotonic_with_enough_samples_and_a_rolling_window() -> None:
    x = features(seed=14)
    y = bernoulli(1.5 * x[:, 0], seed=15)
    config = EdgeConfig(isotonic_min_samples=100, window=Window.ROLLING, max_train_size=900)
    result = fit(x, y, config=config)
    assert result.model.method is CalibrationMethod.ISOTONIC  # final: 900 rows -> folds of 225
    assert CalibrationMethod.SIGMOID in result.fold_methods  # the first folds are too small
    assert result.skill > 0.1
    p = result.model.predict_proba(x)
    assert np.all((p >= 0) & (p <= 1))


def test_constant_feature_is_dropped_and_named() -> None:
    x = features(n=400, seed=16)
    x[:, 2] = 3.0
    y = bernoulli(1.5 * x[:, 0], seed=17)
    names = pd.Index(NAMES)  # any sequence of names, a DataFrame's columns included
    result = fit_edge_model(
        x, y, np.arange(400), horizon=1, n_splits=3, seed=0, feature_names=names
    )
    assert result.dropped_features == ("spread",)
    assert result.feature_names == ("momentum", "volume", "noise")
    assert len(result.concentration.shares) == 3
    assert result.model.predict_proba(x[:7]).shape == (7,)  # still takes full-width rows
    with pytest.raises(EngineError, match=r"expected shape \(n, 4\)"):
        result.model.predict_proba(x[:7, :3])
    with pytest.raises(EngineError, match="not finite"):
        result.model.predict_proba(np.full((1, 4), np.nan))


# -------------------------------------------------------------------------------------- degenerate


def _small() -> tuple[np.ndarray, np.ndarray]:
    x = features(n=300, seed=18)
    return x, bernoulli(x[:, 0], seed=19)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda x, y: (np.where(np.arange(300)[:, None] == 7, np.nan, x), y), "row 7, column 0"),
        (lambda x, y: (np.where(np.arange(4) == 2, np.inf, x), y), "column 2"),
        (lambda x, y: (x, np.zeros_like(y)), "one class only"),
        (lambda x, y: (x, y * 2), "0/1"),
        (lambda x, y: (x, y[:-1]), "0/1 of shape"),
        (lambda x, y: (x[:150], y[:150]), "150 samples < min_samples 200"),
        (lambda x, y: (np.ones_like(x), y), "every feature is constant"),
        (lambda x, y: (x[:, 0], y), "shape"),
    ],
)
def test_degenerate_input_raises(mutate, match: str) -> None:
    x, y = mutate(*_small())
    with pytest.raises(EngineError, match=match):
        fit_edge_model(x, y, np.arange(len(y)), horizon=1, seed=0)


def test_rare_label_leaves_a_fold_with_one_class() -> None:
    x, _ = _small()
    y = np.zeros(300, dtype=np.int64)
    y[[5, 250, 260, 270]] = 1
    with pytest.raises(EngineError, match="one class in its"):
        fit_edge_model(x, y, np.arange(300), horizon=1, seed=0)


def test_bad_seed_names_and_times() -> None:
    x, y = _small()
    with pytest.raises(EngineError, match="seed"):
        fit_edge_model(x, y, np.arange(300), horizon=1, seed=-1)
    with pytest.raises(EngineError, match="feature names"):
        fit_edge_model(x, y, np.arange(300), horizon=1, seed=0, feature_names=("a",))
    with pytest.raises(EngineError, match="non-decreasing"):
        fit_edge_model(x, y, np.arange(300)[::-1], horizon=1, seed=0)


def test_edge_labels() -> None:
    np.testing.assert_array_equal(
        edge_labels(np.array([-0.01, 0.001, 0.0011, 0.05]), cost=0.001), [0, 0, 1, 1]
    )
    with pytest.raises(EngineError, match="not finite"):
        edge_labels(np.array([0.01, np.nan]), cost=0.001)
