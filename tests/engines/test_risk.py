"""VaR/ES against scipy and numpy, Cornish-Fisher, volatility targeting, turbulence vs scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import integrate, stats
from scipy.spatial.distance import mahalanobis

from sovereign.engines.risk import (
    RiskMethod,
    cornish_fisher_var_es,
    normal_var_es,
    portfolio_var_es,
    turbulence_index,
    var_es,
    vol_target_scale,
)
from sovereign.errors import EngineError

METHODS = tuple(RiskMethod)


def sample(n: int = 500, seed: int = 42) -> np.ndarray:
    """Fat-tailed daily-like returns (Student-t, 4 dof, ~1 % scale, slight drift)."""
    return 0.0003 + 0.01 * np.random.default_rng(seed).standard_t(4, n)


# ------------------------------------------------------------------------------------ parametric


@pytest.mark.parametrize("alpha", [0.95, 0.99, 0.975])
def test_parametric_matches_scipy_norm(alpha: float) -> None:
    r = sample()
    mu, sigma = r.mean(), r.std(ddof=1)
    q = stats.norm.ppf(1 - alpha, loc=mu, scale=sigma)  # the return-side quantile
    tail_mean = stats.norm.expect(lambda x: x, loc=mu, scale=sigma, ub=q, conditional=True)
    est = var_es(r, alpha, RiskMethod.PARAMETRIC)
    assert est.var == pytest.approx(-q, rel=1e-12)
    assert est.es == pytest.approx(-tail_mean, rel=1e-7)
    assert est.method is RiskMethod.PARAMETRIC
    assert est.fallback is None
    assert est.n_obs == r.size


def test_parametric_golden_unit_normal() -> None:
    var, es = normal_var_es(0.0, 1.0, 0.99)
    assert var == pytest.approx(2.3263478740408408)
    assert es == pytest.approx(2.6652142203457770)


# ------------------------------------------------------------------------------------ historical


def test_historical_hand_sample() -> None:
    # losses are -0.05, -0.049, ..., 0.049; the 0.95 quantile (linear) sits at position 94.05
    r = -(np.arange(1, 101) - 51) / 1000.0
    est = var_es(r, 0.95, "historical")
    assert est.var == pytest.approx(0.04405)
    assert est.es == pytest.approx(0.047)  # mean of 0.045 .. 0.049


@pytest.mark.parametrize("alpha", [0.9, 0.95, 0.99])
def test_historical_matches_numpy_quantile(alpha: float) -> None:
    r = sample(257, seed=7)
    losses = -r
    q = np.quantile(losses, alpha)
    tail = [x for x in losses if x >= q]
    est = var_es(r, alpha, RiskMethod.HISTORICAL)
    assert est.var == pytest.approx(q, rel=1e-12)
    assert est.es == pytest.approx(sum(tail) / len(tail), rel=1e-12)


# -------------------------------------------------------------------------------- Cornish-Fisher


@pytest.mark.parametrize("alpha", [0.95, 0.99])
def test_cornish_fisher_without_skew_or_kurtosis_is_parametric(alpha: float) -> None:
    cf = cornish_fisher_var_es(0.001, 0.02, 0.0, 0.0, alpha)
    assert cf is not None
    normal = normal_var_es(0.001, 0.02, alpha)
    assert cf[0] == pytest.approx(normal[0], rel=1e-12)
    assert cf[1] == pytest.approx(normal[1], rel=1e-10)


def test_cornish_fisher_matches_quadrature_over_probability() -> None:
    """Independent ES: integrate the CF quantile over p in (0, 1 - alpha) with scipy.quad."""
    r = sample(800, seed=3)
    alpha = 0.99
    mu, sigma = r.mean(), r.std(ddof=1)
    s = stats.skew(r, bias=True)
    k = stats.kurtosis(r, fisher=True, bias=True)

    def quantile(p: float) -> float:
        z = stats.norm.ppf(p)
        zc = z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36
        return float(mu + sigma * zc)

    tail, _ = integrate.quad(quantile, 0.0, 1 - alpha, limit=200)
    est = var_es(r, alpha, RiskMethod.CORNISH_FISHER)
    assert est.method is RiskMethod.CORNISH_FISHER
    assert est.var == pytest.approx(-quantile(1 - alpha), rel=1e-10)
    assert est.es == pytest.approx(-tail / (1 - alpha), rel=1e-5)
    assert est.es > est.var


def test_cornish_fisher_non_monotone_falls_back_to_historical() -> None:
    # 95 % at -1 %, 5 % at +19 %: skew ~4.1, excess kurtosis ~15 < 4/3 skew^2 -> CF turns over
    r = np.where(np.arange(200) % 20 == 0, 0.19, -0.01)
    assert cornish_fisher_var_es(0.0, 1.0, stats.skew(r), stats.kurtosis(r), 0.99) is None
    est = var_es(r, 0.99, RiskMethod.CORNISH_FISHER)
    hist = var_es(r, 0.99, RiskMethod.HISTORICAL)
    assert est.method is RiskMethod.HISTORICAL
    assert est.fallback is not None
    assert "Cornish-Fisher" in est.fallback
    assert (est.var, est.es) == (hist.var, hist.es)


@settings(max_examples=150, deadline=None)
@given(skew=st.floats(-6, 6), kurt=st.floats(-2, 60))
def test_cornish_fisher_validity_matches_a_dense_grid(skew: float, kurt: float) -> None:
    """None exactly when the CF quantile turns down somewhere in the tail (dense-grid check)."""
    z = np.linspace(-8.5, stats.norm.ppf(0.01), 20_001)
    q = z + (z**2 - 1) * skew / 6 + (z**3 - 3 * z) * kurt / 24 - (2 * z**3 - 5 * z) * skew**2 / 36
    slope = 1 + z * skew / 3 + (3 * z**2 - 3) * kurt / 24 - (6 * z**2 - 5) * skew**2 / 36
    cf = cornish_fisher_var_es(0.0, 1.0, skew, kurt, 0.99)
    if slope.min() > 1e-6:
        assert cf is not None
        assert np.all(np.diff(q) > 0)
        assert cf[1] >= cf[0]
    elif slope.min() < -1e-6:
        assert cf is None


# ---------------------------------------------------------------------------------- invariants


@settings(max_examples=60, deadline=None)
@given(
    r=arrays(
        np.float64,
        st.integers(30, 120),
        elements=st.floats(-0.5, 0.5, allow_nan=False, allow_subnormal=False),
    ),
    alpha=st.sampled_from([0.9, 0.95, 0.99]),
)
def test_var_never_exceeds_es(r: np.ndarray, alpha: float) -> None:
    for method in METHODS:
        est = var_es(r, alpha, method)
        assert 0.0 <= est.var <= est.es
        assert np.isfinite(est.es)


# ---------------------------------------------------------------------------------- degenerate


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("value", "expected"), [(0.0, 0.0), (0.002, 0.0), (-0.01, 0.01)])
def test_constant_returns_give_finite_measures(
    method: RiskMethod, value: float, expected: float
) -> None:
    est = var_es(np.full(60, value), 0.99, method)
    assert est.var == pytest.approx(expected)
    assert est.es == pytest.approx(expected)
    assert est.fallback is None


def test_too_few_observations_raise() -> None:
    with pytest.raises(EngineError, match="need at least 30"):
        var_es(sample(29), 0.99)
    assert var_es(sample(10), 0.9, min_obs=10).n_obs == 10


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_returns_raise(bad: float) -> None:
    r = sample(100)
    r[17] = bad
    with pytest.raises(EngineError, match="index 17"):
        var_es(r, 0.99, RiskMethod.PARAMETRIC)


def test_bad_alpha_and_method_raise() -> None:
    with pytest.raises(EngineError, match="alpha"):
        var_es(sample(), 1.0)
    with pytest.raises(EngineError, match="unknown method"):
        var_es(sample(), 0.99, "montecarlo")
    with pytest.raises(EngineError, match=r"\(n_bars,\)"):
        var_es(sample().reshape(-1, 2), 0.99)


# ---------------------------------------------------------------------------------- portfolio


def test_portfolio_parametric_is_w_sigma_w() -> None:
    rng = np.random.default_rng(42)
    x = rng.multivariate_normal([0.0005, 0.0002, 0.0], np.diag([1e-4, 4e-4, 2e-4]), 400)
    w = np.array([0.5, 0.3, -0.2])
    sigma = np.sqrt(w @ np.cov(x.T) @ w)
    mu = x.mean(axis=0) @ w
    est = portfolio_var_es(w, x, 0.99, RiskMethod.PARAMETRIC)
    assert est.var == pytest.approx(-mu + sigma * stats.norm.ppf(0.99), rel=1e-10)
    assert portfolio_var_es(w, x, 0.95).var == var_es(x @ w, 0.95).var


def test_portfolio_shape_mismatch_raises() -> None:
    with pytest.raises(EngineError, match="do not match"):
        portfolio_var_es(np.ones(2), np.zeros((50, 3)))
    x = np.zeros((50, 2))
    x[3, 1] = np.nan
    with pytest.raises(EngineError, match="NaN"):
        portfolio_var_es(np.ones(2), x)


# ------------------------------------------------------------------------------ vol targeting


def test_vol_target_rolling_golden() -> None:
    r = np.tile([0.01, -0.01], 30)  # last 20: std (ddof=1) = 0.01 * sqrt(20/19)
    vol = 0.01 * np.sqrt(20 / 19) * np.sqrt(252)
    assert vol_target_scale(r, 0.10, window=20, cap=5.0, ewma=False) == pytest.approx(0.10 / vol)
    assert vol_target_scale(r, 10.0, window=20, cap=3.0, ewma=False) == 3.0  # capped


def test_vol_target_ewma_matches_pandas() -> None:
    r = sample(300, seed=11)
    ewm_var = pd.Series(r**2).ewm(span=30, adjust=True).mean().iloc[-1]
    expected = 0.15 / np.sqrt(ewm_var * 252)
    assert vol_target_scale(r, 0.15, window=30, cap=10.0) == pytest.approx(expected, rel=1e-10)


def test_vol_target_zero_volatility_is_cap_and_errors() -> None:
    assert vol_target_scale(np.zeros(40), 0.1, window=20, cap=1.5) == 1.5
    assert vol_target_scale(np.full(40, 0.003), 0.1, window=20, cap=1.5, ewma=False) == 1.5
    with pytest.raises(EngineError, match="need at least 20"):
        vol_target_scale(np.zeros(19), 0.1, window=20)
    with pytest.raises(EngineError):
        vol_target_scale(np.zeros(40), -0.1)


# ---------------------------------------------------------------------------------- turbulence


def test_turbulence_matches_scipy_mahalanobis() -> None:
    y = 0.01 * np.random.default_rng(42).standard_t(5, (300, 4))
    window = 60
    turb = turbulence_index(y, window)
    ref = np.array(
        [
            mahalanobis(
                y[t], y[t - window : t].mean(axis=0), np.linalg.inv(np.cov(y[t - window : t].T))
            )
            ** 2
            for t in range(window, 300)
        ]
    )
    assert turb.start == window
    assert np.isnan(turb.index[:window]).all()
    np.testing.assert_allclose(turb.index[window:], ref, rtol=1e-9)
    assert turb.percentile == pytest.approx(100 * np.mean(ref <= ref[-1]))
    assert turb.rank == 4


def test_turbulence_singular_covariance_uses_pseudo_inverse() -> None:
    y = 0.01 * np.random.default_rng(1).normal(size=(200, 3))
    base = turbulence_index(y, 50)
    dup = turbulence_index(np.column_stack([y, y[:, 0]]), 50)  # a duplicated asset
    np.testing.assert_allclose(dup.index[50:], base.index[50:], rtol=1e-7)
    assert dup.rank == 3
    flat = y.copy()
    flat[:, 1] = 0.0  # a constant asset
    out = turbulence_index(flat, 50)
    assert out.rank == 2
    assert np.isfinite(out.index[50:]).all()
    ref = turbulence_index(y[:, [0, 2]], 50)
    np.testing.assert_allclose(out.index[50:], ref.index[50:], rtol=1e-7)
    assert (turbulence_index(np.zeros((80, 2)), 50).index[50:] == 0.0).all()
    shock = np.zeros((80, 2))
    shock[60] = [0.05, -0.04]  # a move after a flat window lies outside its (empty) span: 0
    assert turbulence_index(shock, 50).index[60] == 0.0


def test_turbulence_degenerate_inputs_raise() -> None:
    with pytest.raises(EngineError, match="n_bars > window"):
        turbulence_index(np.zeros((50, 2)), 50)
    y = np.zeros((80, 2))
    y[60, 0] = np.inf
    with pytest.raises(EngineError, match="NaN or infinite"):
        turbulence_index(y, 50)


def test_turbulence_one_asset_is_squared_zscore() -> None:
    y = sample(120, seed=5)
    turb = turbulence_index(y, 40)
    hist = y[79:119]
    assert turb.index[119] == pytest.approx((y[119] - hist.mean()) ** 2 / hist.var(ddof=1))
