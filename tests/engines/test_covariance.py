"""Covariance estimators: Ledoit-Wolf against its closed form, the PCA factor model against
scikit-learn's PCA, square roots, and degenerate input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from sovereign.engines.covariance import (
    DEFAULT_MIN_VARIANCE,
    factor_model,
    factor_model_from_covariance,
    ledoit_wolf,
    psd_sqrt,
    sample_covariance,
)
from sovereign.errors import EngineError
from sovereign.market.sources import load_sample


@pytest.fixture(scope="module")
def sp500_returns() -> np.ndarray:
    """Daily simple returns of the 20 bundled stocks, last 500 sessions (no NaN there)."""
    close = load_sample("sp500").close[-501:]
    returns = close[1:] / close[:-1] - 1.0
    assert np.isfinite(returns).all()
    return returns


def ledoit_wolf_closed_form(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit & Wolf (2004), written from the paper: target mu*I, intensity min(b2, d2)/d2."""
    n, p = x.shape
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / n
    mu = np.trace(s) / p
    d2 = np.sum((s - mu * np.eye(p)) ** 2) / p
    b2 = sum(np.sum((np.outer(row, row) - s) ** 2) for row in xc) / n**2 / p
    shrink = min(b2, d2) / d2
    return (1 - shrink) * s + shrink * mu * np.eye(p), shrink


def test_ledoit_wolf_matches_the_closed_form(sp500_returns: np.ndarray) -> None:
    expected, shrink = ledoit_wolf_closed_form(sp500_returns)
    est = ledoit_wolf(sp500_returns)
    assert est.shrinkage == pytest.approx(shrink, rel=1e-10)
    assert 0.0 < est.shrinkage < 1.0
    np.testing.assert_allclose(est.covariance, expected, rtol=1e-10, atol=1e-16)
    assert est.n_observations == 500
    assert est.floored == ()


def test_annualising_multiplies_by_periods(sp500_returns: np.ndarray) -> None:
    daily = ledoit_wolf(sp500_returns).covariance
    np.testing.assert_allclose(
        ledoit_wolf(sp500_returns, periods_per_year=252).covariance, 252 * daily
    )
    sample = sample_covariance(sp500_returns)
    np.testing.assert_allclose(sample.covariance, np.cov(sp500_returns, rowvar=False, ddof=1))
    assert sample.shrinkage == 0.0


def test_shrinkage_makes_a_singular_sample_positive_definite() -> None:
    rng = np.random.default_rng(42)
    x = rng.normal(0, 0.01, size=(8, 12))  # fewer bars than assets
    x[:, 5] = x[:, 4]  # and a duplicated asset
    assert np.linalg.eigvalsh(sample_covariance(x).covariance)[0] < 1e-12
    est = ledoit_wolf(x)
    assert est.shrinkage > 0.0
    assert np.linalg.eigvalsh(est.covariance)[0] > 0.0


def test_constant_asset_gets_the_variance_floor() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.01, size=(50, 3))
    x[:, 1] = 0.002
    sample = sample_covariance(x)
    assert sample.floored == (1,)
    assert sample.covariance[1, 1] == DEFAULT_MIN_VARIANCE
    np.testing.assert_array_equal(sample.covariance[1, [0, 2]], 0.0)
    shrunk = ledoit_wolf(x)
    assert shrunk.floored == (1,)
    assert shrunk.covariance[1, 1] >= DEFAULT_MIN_VARIANCE
    assert np.linalg.eigvalsh(shrunk.covariance)[0] > 0.0


@pytest.mark.parametrize(
    ("returns", "match"),
    [
        (np.ones((1, 3)), "at least 2 rows"),
        (np.ones(10), "shape"),
        (np.array([[0.01, np.nan], [0.02, 0.01], [0.0, 0.01]]), "row 0, asset 1"),
        (np.array([[0.01, np.inf], [0.02, 0.01]]), "non-finite"),
        (np.full((20, 3), 0.001), "constant"),
    ],
)
def test_degenerate_returns_raise(returns: np.ndarray, match: str) -> None:
    for fn in (ledoit_wolf, sample_covariance):
        with pytest.raises(EngineError, match=match):
            fn(returns)


def test_factor_model_is_pca_of_the_shrunk_covariance(sp500_returns: np.ndarray) -> None:
    """Shrinking towards mu*I keeps the eigenvectors, so the loadings are sklearn's principal
    axes and the factor variances its (1/n) eigenvalues, shrunk."""
    k = 4
    fm = factor_model(sp500_returns, k)
    est = ledoit_wolf(sp500_returns)
    n = sp500_returns.shape[0]
    pca = PCA(n_components=k).fit(sp500_returns)
    dots = np.abs(np.sum(fm.loadings * pca.components_.T, axis=0))
    np.testing.assert_allclose(dots, 1.0, atol=1e-8)  # same axes up to sign
    mu = np.trace(np.cov(sp500_returns, rowvar=False, ddof=0)) / sp500_returns.shape[1]
    shrunk = (1 - est.shrinkage) * pca.explained_variance_ * (n - 1) / n + est.shrinkage * mu
    np.testing.assert_allclose(np.diag(fm.factor_covariance), shrunk, rtol=1e-8)
    # the implied covariance keeps every variance exactly
    np.testing.assert_allclose(np.diag(fm.covariance()), np.diag(est.covariance), rtol=1e-10)
    np.testing.assert_allclose(fm.loadings.T @ fm.loadings, np.eye(k), atol=1e-10)
    assert 0.0 < fm.explained < factor_model(sp500_returns, 8).explained < 1.0
    assert (fm.n_assets, fm.n_factors) == (20, 4)


def test_factor_model_with_all_factors_reproduces_the_covariance(sp500_returns: np.ndarray) -> None:
    cov = ledoit_wolf(sp500_returns, periods_per_year=252).covariance
    fm = factor_model_from_covariance(cov, 20)
    np.testing.assert_allclose(fm.covariance(), cov, rtol=1e-9, atol=1e-14)
    assert fm.explained == pytest.approx(1.0)
    with pytest.raises(EngineError, match="k=0"):
        factor_model_from_covariance(cov, 0)
    with pytest.raises(EngineError, match="k=21"):
        factor_model_from_covariance(cov, 21)
    with pytest.raises(EngineError, match="negative eigenvalue"):
        factor_model_from_covariance(np.array([[1.0, 2.0], [2.0, 1.0]]), 1)


def test_psd_sqrt_of_definite_singular_and_bad_matrices() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 6))
    definite = a @ a.T + 0.1 * np.eye(6)
    r = psd_sqrt(definite)
    np.testing.assert_allclose(r.T @ r, definite, rtol=1e-12, atol=1e-12)
    b = rng.normal(size=(6, 2))
    singular = b @ b.T  # rank 2
    r = psd_sqrt(singular)
    np.testing.assert_allclose(r.T @ r, singular, atol=1e-10)
    with pytest.raises(EngineError, match="not symmetric"):
        psd_sqrt(a)
    with pytest.raises(EngineError, match="negative eigenvalue"):
        psd_sqrt(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(EngineError, match="not finite"):
        psd_sqrt(np.array([[1.0, np.nan], [np.nan, 1.0]]))
