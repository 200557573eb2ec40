"""Allocators: ERC and HRP against closed forms and skfolio on the bundled S&P 500 sample; Kelly
and inverse volatility against closed forms; invariants; degenerate input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skfolio.cluster import HierarchicalClustering, LinkageMethod
from skfolio.measures import RiskMeasure
from skfolio.optimization import HierarchicalRiskParity, RiskBudgeting
from skfolio.seriation import HierarchicalSeriation

from sovereign.engines.allocators import (
    equal_risk_contribution,
    hrp,
    inverse_volatility,
    kelly_weights,
    risk_contributions,
)
from sovereign.errors import EngineError
from sovereign.market.sources import load_sample


@pytest.fixture(scope="module")
def sp500_returns() -> np.ndarray:
    close = load_sample("sp500").close[-751:]
    returns = close[1:] / close[:-1] - 1.0
    assert np.isfinite(returns).all()
    return returns


def random_covariance(seed: int, n: int, *, rank: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.02, size=(n, rank or n))
    vols = rng.uniform(0.005, 0.03, size=n)
    return a @ a.T + (np.diag(vols**2) if rank is None else 0.0)


def two_assets(s1: float, s2: float, rho: float) -> np.ndarray:
    return np.array([[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]])


# ------------------------------------------------------------------------------------------ ERC


@pytest.mark.parametrize("rho", [0.0, 0.6, -0.3])
def test_two_asset_erc_is_inverse_volatility(rho: float) -> None:
    """For two assets the ERC portfolio is w_i ~ 1/sigma_i whatever the correlation."""
    w = equal_risk_contribution(two_assets(0.1, 0.3, rho))
    np.testing.assert_allclose(w, np.array([1 / 0.1, 1 / 0.3]) / (1 / 0.1 + 1 / 0.3), atol=1e-12)


def test_erc_matches_skfolio_risk_budgeting(sp500_returns: np.ndarray) -> None:
    ref = RiskBudgeting(risk_measure=RiskMeasure.VARIANCE).fit(sp500_returns).weights_
    ours = equal_risk_contribution(np.cov(sp500_returns, rowvar=False))
    np.testing.assert_allclose(ours, ref, atol=1e-5)  # skfolio's interior-point tolerance
    np.testing.assert_allclose(
        risk_contributions(ours, np.cov(sp500_returns, rowvar=False)), 1 / 20, atol=1e-10
    )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 9), budgeted=st.booleans())
def test_erc_risk_contributions_equal_the_budgets(seed: int, n: int, budgeted: bool) -> None:
    cov = random_covariance(seed, n)
    budgets = np.random.default_rng(seed).uniform(0.1, 1.0, n) if budgeted else None
    w = equal_risk_contribution(cov, budgets)
    assert w.sum() == pytest.approx(1.0)
    assert (w > 0).all()
    expected = np.full(n, 1 / n) if budgets is None else budgets / budgets.sum()
    np.testing.assert_allclose(risk_contributions(w, cov), expected, atol=1e-9)


def test_erc_handles_a_singular_covariance() -> None:
    cov = random_covariance(7, 5, rank=2)
    w = equal_risk_contribution(cov)
    np.testing.assert_allclose(risk_contributions(w, cov), 0.2, atol=1e-8)


def test_erc_rejects_zero_variance_and_bad_budgets() -> None:
    with pytest.raises(EngineError, match="zero variance"):
        equal_risk_contribution(np.diag([0.01, 0.0]))
    with pytest.raises(EngineError, match="positive"):
        equal_risk_contribution(np.diag([0.01, 0.02]), [1.0, 0.0])
    with pytest.raises(EngineError, match="not finite"):
        equal_risk_contribution(np.array([[np.nan, 0.0], [0.0, 1.0]]))
    with pytest.raises(EngineError, match="not symmetric"):
        equal_risk_contribution(np.array([[1.0, 0.5], [0.1, 1.0]]))


# ------------------------------------------------------------------------------------------ HRP


def test_hrp_matches_skfolio_single_linkage(sp500_returns: np.ndarray) -> None:
    ref = HierarchicalRiskParity(
        risk_measure=RiskMeasure.VARIANCE,
        seriation_estimator=HierarchicalSeriation(
            hierarchical_clustering_estimator=HierarchicalClustering(
                linkage_method=LinkageMethod.SINGLE
            ),
            optimal_ordering=False,
        ),
    ).fit(sp500_returns)
    ours = hrp(np.cov(sp500_returns, rowvar=False), linkage_method="single")
    np.testing.assert_allclose(ours, ref.weights_, atol=1e-6)


def test_hrp_closed_forms() -> None:
    """Two assets: inverse variance. One asset: everything. Uncorrelated equal-variance assets:
    equal weights."""
    w = hrp(two_assets(0.1, 0.2, 0.3))
    np.testing.assert_allclose(w, np.array([1 / 0.01, 1 / 0.04]) / (1 / 0.01 + 1 / 0.04))
    np.testing.assert_array_equal(hrp(np.array([[0.04]])), [1.0])
    np.testing.assert_allclose(hrp(np.eye(8) * 0.01), 1 / 8)
    with pytest.raises(EngineError, match="unknown linkage"):
        hrp(np.eye(3), linkage_method="median")
    with pytest.raises(EngineError, match="zero variance"):
        hrp(np.diag([0.01, 0.0, 0.02]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 12))
def test_hrp_weights_are_positive_and_sum_to_one(seed: int, n: int) -> None:
    w = hrp(random_covariance(seed, n))
    assert (w > 0).all()
    assert w.sum() == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------------------------------- Kelly


def test_kelly_matches_the_closed_form() -> None:
    cov = random_covariance(11, 4)
    mu = np.array([0.001, -0.0005, 0.0008, 0.0002])
    np.testing.assert_allclose(
        kelly_weights(mu, cov, fraction=0.25), 0.25 * np.linalg.solve(cov, mu), rtol=1e-12
    )
    one = kelly_weights([0.0004], [[0.0001]], fraction=1.0)  # mu / sigma^2
    np.testing.assert_allclose(one, [4.0])


def test_kelly_caps_by_box_then_by_volatility_budget() -> None:
    cov = two_assets(0.01, 0.02, 0.0)
    mu = np.array([0.001, 0.001])
    raw = kelly_weights(mu, cov, fraction=1.0)  # [10, 2.5]
    np.testing.assert_allclose(raw, [10.0, 2.5])
    boxed = kelly_weights(mu, cov, fraction=1.0, lower=-1.0, upper=1.0)
    np.testing.assert_allclose(boxed, [1.0, 1.0])
    budget = 0.005
    capped = kelly_weights(mu, cov, fraction=1.0, lower=-1.0, upper=1.0, max_volatility=budget)
    assert np.sqrt(capped @ cov @ capped) == pytest.approx(budget)
    np.testing.assert_allclose(capped[0], capped[1])  # scaled, not reshaped
    loose = kelly_weights(mu, cov, fraction=0.1, max_volatility=1.0)
    np.testing.assert_allclose(loose, 0.1 * raw)  # budget not binding: never scaled up


def test_kelly_rejects_bad_input() -> None:
    cov = two_assets(0.01, 0.02, 0.0)
    with pytest.raises(EngineError, match="fraction"):
        kelly_weights([0.001, 0.001], cov, fraction=0.0)
    with pytest.raises(EngineError, match="outside"):
        kelly_weights([0.001, 0.001], cov, fraction=1.5)
    with pytest.raises(EngineError, match="not finite"):
        kelly_weights([np.nan, 0.001], cov)
    with pytest.raises(EngineError, match="contain 0"):
        kelly_weights([0.001, 0.001], cov, lower=0.1)
    with pytest.raises(EngineError, match="singular"):
        kelly_weights([0.001, 0.001], np.full((2, 2), 1e-4))


# --------------------------------------------------------------------------- inverse volatility


def test_inverse_volatility_without_binding_bounds() -> None:
    cov = np.diag([0.01, 0.04, 0.09])
    w = inverse_volatility(cov, total=1.0, lower=0.0, upper=1.0)
    np.testing.assert_allclose(w, np.array([1 / 0.1, 1 / 0.2, 1 / 0.3]) / (10 + 5 + 10 / 3))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 10),
    total_frac=st.floats(0.05, 0.95),
    floor_frac=st.floats(0.0, 0.9),
)
def test_inverse_volatility_fits_the_box(
    seed: int, n: int, total_frac: float, floor_frac: float
) -> None:
    rng = np.random.default_rng(seed)
    cov = random_covariance(seed, n)
    upper = rng.uniform(0.05, 0.5, n)
    lower = floor_frac * rng.uniform(0.0, 1.0, n) * upper
    total = lower.sum() + total_frac * (upper.sum() - lower.sum())
    w = inverse_volatility(cov, total=total, lower=lower, upper=upper)
    assert w.sum() == pytest.approx(total, abs=1e-9)
    assert (w >= lower - 1e-12).all()
    assert (w <= upper + 1e-12).all()
    free = (w > lower + 1e-9) & (w < upper - 1e-9)
    if free.sum() >= 2:  # assets off their bounds stay proportional to 1 / sigma
        ratio = w[free] * np.sqrt(np.diag(cov))[free]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)


def test_inverse_volatility_infeasible_box_raises() -> None:
    cov = np.diag([0.01, 0.04])
    with pytest.raises(EngineError, match="above"):
        inverse_volatility(cov, total=0.5, lower=0.3, upper=1.0)
    with pytest.raises(EngineError, match="cannot hold"):
        inverse_volatility(cov, total=1.0, lower=0.0, upper=0.4)
