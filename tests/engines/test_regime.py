"""HMM regime engine: planted-regime recovery, filtered (causal) confidence, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from sovereign.engines.regime import (
    REGIME_ORDER,
    RegimeEngine,
    RegimeFilter,
    RegimeState,
    fit_hmm,
    forward_filter,
    label_states,
    market_returns,
    observations_from_returns,
    regime_observations,
)
from sovereign.errors import DataError
from sovereign.rules.context import Regime

UP, DOWN, RANGING, VOLATILE, UNCERTAIN = (
    Regime.TRENDING_UP,
    Regime.TRENDING_DOWN,
    Regime.RANGING,
    Regime.VOLATILE,
    Regime.UNCERTAIN,
)


def planted(
    n: int, params: list[tuple[float, float]], *, block: int = 150, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Log returns with regimes in blocks of ``block`` bars, cycling through ``params``."""
    rng = np.random.default_rng(seed)
    state = (np.arange(n) // block) % len(params)
    mu = np.array([p[0] for p in params])[state]
    sd = np.array([p[1] for p in params])[state]
    return rng.normal(mu, sd), state


def finite_rows(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x).all(axis=1)]


# --------------------------------------------------------------------------------- observations


def test_market_returns_ignores_nan_without_warnings() -> None:
    close = np.array([[100.0, np.nan], [110.0, 50.0], [121.0, np.nan], [np.nan, np.nan]])
    out = market_returns(close)
    assert np.isnan(out[0])
    assert np.isnan(out[3])
    assert out[1] == pytest.approx(np.log(1.1))  # only symbol 0 has a return
    assert out[2] == pytest.approx(np.log(1.1))


def test_regime_observations_shape_and_warmup() -> None:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 60)))
    x = regime_observations(close, vol_window=10)
    assert x.shape == (60, 2)
    assert np.isnan(x[:10]).any(axis=1).all()  # row 0: no return; rows 1..9: vol warm-up
    assert np.isfinite(x[10:]).all()
    assert x[10, 1] == pytest.approx(np.std(x[1:11, 0], ddof=1))


# -------------------------------------------------------------------------------------- labels


def test_label_states_four_states() -> None:
    labels = label_states(np.array([0.001, -0.002, 0.0, -0.001]), np.array([1, 1, 1, 9.0]))
    assert labels == (UP, DOWN, RANGING, VOLATILE)


def test_label_states_ties_go_to_lower_index() -> None:
    labels = label_states(np.array([0.0, 0.0, 0.0, 0.0]), np.array([2.0, 2.0, 1.0, 1.0]))
    assert labels == (VOLATILE, UP, DOWN, RANGING)


@pytest.mark.parametrize(
    ("means", "variances", "expected"),
    [
        ([0.001, 0.0], [1.0, 5.0], (UP, VOLATILE)),
        ([-0.001, 0.0], [1.0, 5.0], (DOWN, VOLATILE)),
        ([0.001, -0.001, 0.0], [1.0, 1.0, 5.0], (UP, DOWN, VOLATILE)),
        (
            [0.0, 0.003, -0.003, 0.001, 0.0],
            [1, 1, 1, 1, 9.0],
            (RANGING, UP, DOWN, RANGING, VOLATILE),
        ),
    ],
)
def test_label_states_other_state_counts(
    means: list[float], variances: list[float], expected: tuple[Regime, ...]
) -> None:
    assert label_states(np.array(means), np.array(variances)) == expected


# ----------------------------------------------------------------------------------------- fit


def test_two_regime_series_is_recovered() -> None:
    r, state = planted(3000, [(0.002, 0.006), (-0.001, 0.03)], block=200)
    x = observations_from_returns(r)
    ok = np.isfinite(x).all(axis=1)
    model = fit_hmm(x[ok], n_states=2, seed=1)
    assert sorted(model.labels) == sorted([UP, VOLATILE])
    post = forward_filter(model, x).posteriors
    predicted = np.array(model.labels, dtype=object)[post.argmax(axis=1)]
    truth = np.where(state == 0, UP, VOLATILE)
    agreement = np.mean(predicted[ok] == truth[ok])
    assert agreement > 0.85, agreement


@pytest.mark.parametrize("seed", [1, 5, 8])
def test_four_regime_series_is_recovered(seed: int) -> None:
    params = [(0.004, 0.007), (0.0, 0.035), (-0.004, 0.014), (0.0, 0.003)]
    r, state = planted(4800, params, block=200, seed=3)
    x = observations_from_returns(r)
    ok = np.isfinite(x).all(axis=1)
    model = fit_hmm(x[ok], n_states=4, n_restarts=3, seed=seed)
    assert sorted(model.labels) == sorted([UP, DOWN, RANGING, VOLATILE])
    post = forward_filter(model, x).posteriors
    predicted = np.array(model.labels, dtype=object)[post.argmax(axis=1)]
    truth = np.array([UP, VOLATILE, DOWN, RANGING], dtype=object)[state]
    assert np.mean(predicted[ok] == truth[ok]) > 0.85
    for k, label in enumerate([UP, VOLATILE, DOWN, RANGING]):
        assert np.mean(predicted[ok & (state == k)] == label) > 0.75, label


def test_fit_is_deterministic_by_seed() -> None:
    r, _ = planted(1500, [(0.002, 0.006), (-0.001, 0.03)])
    x = finite_rows(observations_from_returns(r))
    a, b = fit_hmm(x, seed=11), fit_hmm(x, seed=11)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.transmat, b.transmat)
    assert a.labels == b.labels
    assert a.log_likelihood == b.log_likelihood
    assert a.hmm.covariance_type == "diag"


def test_volatility_seeds_keep_every_group_non_empty() -> None:
    from sovereign.engines.regime import _volatility_seeds

    z = np.random.default_rng(0).normal(size=(9, 2))
    for s in range(50):
        seeds = _volatility_seeds(z, 8, np.random.default_rng(s))
        assert seeds.shape == (8, 2)
        assert np.isfinite(seeds).all()


def test_fit_rejects_degenerate_input() -> None:
    x = finite_rows(observations_from_returns(planted(600, [(0.0, 0.01)])[0]))
    with pytest.raises(DataError, match="too few"):
        fit_hmm(x[:30], seed=0)
    bad = x.copy()
    bad[5, 0] = np.nan
    with pytest.raises(DataError, match="NaN or inf"):
        fit_hmm(bad, seed=0)
    with pytest.raises(DataError, match="constant"):
        fit_hmm(np.column_stack([np.full(500, 0.001), np.zeros(500)]), seed=0)


# ------------------------------------------------------------------------------ forward filter


def test_forward_log_likelihood_equals_hmmlearn_score() -> None:
    r, _ = planted(1200, [(0.002, 0.006), (-0.001, 0.03), (0.0, 0.01)], block=100)
    x = finite_rows(observations_from_returns(r))
    model = fit_hmm(x, n_states=3, seed=2)
    result = forward_filter(model, x)
    assert result.log_likelihood == pytest.approx(model.hmm.score(model.transform(x)), rel=1e-9)
    np.testing.assert_allclose(result.posteriors.sum(axis=1), 1.0)


def test_filtered_posteriors_ignore_future_rows() -> None:
    r, _ = planted(1500, [(0.002, 0.006), (-0.001, 0.03)])
    x = observations_from_returns(r)
    model = fit_hmm(finite_rows(x[:800]), seed=4)
    full = forward_filter(model, x).posteriors
    head = forward_filter(model, x[:900]).posteriors
    np.testing.assert_array_equal(head, full[:900])
    # and they differ from hmmlearn's smoothed posteriors, which look ahead
    smoothed = model.hmm.predict_proba(model.transform(finite_rows(x)))
    assert not np.allclose(smoothed, full[np.isfinite(x).all(axis=1)])


def test_filter_continues_from_log_state() -> None:
    r, _ = planted(900, [(0.002, 0.006), (-0.001, 0.03)])
    x = observations_from_returns(r)
    model = fit_hmm(finite_rows(x), seed=4)
    whole = forward_filter(model, x)
    first = forward_filter(model, x[:500])
    second = forward_filter(model, x[500:], log_state=first.log_state)
    np.testing.assert_allclose(second.posteriors, whole.posteriors[500:], atol=1e-12)
    assert first.log_likelihood + second.log_likelihood == pytest.approx(whole.log_likelihood)


# ------------------------------------------------------------------------------ engine and live


@pytest.fixture(scope="module")
def series() -> np.ndarray:
    return planted(1400, [(0.002, 0.006), (-0.002, 0.008), (0.0, 0.03)], block=120, seed=9)[0]


@pytest.fixture(scope="module")
def engine() -> RegimeEngine:
    return RegimeEngine(n_states=3, refit_every=250, min_history=400, seed=3)


def test_engine_walk_forward_shape_and_warmup(series: np.ndarray, engine: RegimeEngine) -> None:
    path = engine.run(series)
    assert path.refit_bars == (400, 650, 900, 1150)
    assert len(path.models) == 4
    assert path.models[0].n_train == 400 - 19  # bars < 400, minus the 19-bar volatility warm-up
    assert (path.regime[:400] == UNCERTAIN).all()
    assert (path.confidence[:400] == 0.0).all()
    assert np.isfinite(path.confidence).all()
    assert ((path.confidence[400:] > 0) & (path.confidence[400:] <= 1)).all()
    np.testing.assert_allclose(path.probabilities[400:].sum(axis=1), 1.0)
    low = path.confidence < engine.min_confidence
    assert (path.regime[low] == UNCERTAIN).all()
    assert (path.regime[~low] == path.raw_regime[~low]).all()
    assert (path.raw_regime[400:] != UNCERTAIN).all()
    state = path.state(1000)
    assert state.confidence == pytest.approx(max(p for _, p in state.probabilities))


def test_engine_is_causal_and_deterministic(series: np.ndarray, engine: RegimeEngine) -> None:
    full = engine.run(series)
    again = engine.run(series)
    np.testing.assert_array_equal(full.confidence, again.confidence)
    part = engine.run(series[:1000])
    assert part.refit_bars == full.refit_bars[:3]
    np.testing.assert_allclose(part.confidence, full.confidence[:1000], atol=1e-10)
    np.testing.assert_allclose(part.probabilities, full.probabilities[:1000], atol=1e-10)
    assert (part.raw_regime == full.raw_regime[:1000]).all()


def test_below_threshold_is_uncertain(series: np.ndarray) -> None:
    strict = RegimeEngine(n_states=3, refit_every=250, min_history=400, min_confidence=0.95, seed=3)
    path = strict.run(series)
    unsure = (np.arange(len(series)) >= 400) & (path.confidence < 0.95)
    assert unsure.any()
    assert (path.regime[unsure] == UNCERTAIN).all()
    assert (path.raw_regime[unsure] != UNCERTAIN).all()


def test_live_filter_agrees_with_run(series: np.ndarray, engine: RegimeEngine) -> None:
    path = engine.run(series)
    x = observations_from_returns(series, engine.vol_window)
    t0 = path.refit_bars[-1]
    live = RegimeFilter(path.models[-1], min_confidence=engine.min_confidence, history=x[:t0])
    for t in range(t0, len(series)):
        state = live.update(x[t])
        assert isinstance(state, RegimeState)
        assert state.confidence == pytest.approx(path.confidence[t], abs=1e-9)
        assert state.raw_regime == path.raw_regime[t]
        assert state.regime == path.regime[t]
        assert [r for r, _ in state.probabilities] == list(REGIME_ORDER)


def test_engine_short_series_is_all_uncertain() -> None:
    path = RegimeEngine(seed=0).run(np.random.default_rng(0).normal(0, 0.01, 300))
    assert path.refit_bars == ()
    assert path.models == ()
    assert (path.regime == UNCERTAIN).all()
    assert (path.confidence == 0).all()


def test_engine_degenerate_inputs(series: np.ndarray, engine: RegimeEngine) -> None:
    with pytest.raises(DataError, match="constant"):
        engine.run(np.zeros(800))
    bad = series.copy()
    bad[500] = np.inf
    with pytest.raises(DataError, match="infinite"):
        engine.run(bad)
    with pytest.raises(DataError, match="1-D"):
        engine.run(np.zeros((10, 2)))


def test_engine_nan_returns_are_missing_observations(
    series: np.ndarray, engine: RegimeEngine
) -> None:
    holed = series.copy()
    holed[[100, 700, 701]] = np.nan
    path = engine.run(holed)
    assert np.isfinite(path.confidence).all()
    assert ((path.confidence[400:] > 0) & (path.confidence[400:] <= 1)).all()


def test_regime_state_rejects_out_of_range_confidence() -> None:
    with pytest.raises(DataError):
        RegimeState(regime=UP, raw_regime=UP, confidence=1.5, probabilities=())
