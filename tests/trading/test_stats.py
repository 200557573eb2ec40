"""The gate's statistics against closed forms, scipy and the DSR paper's worked example."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import kurtosis, norm, skew

from sovereign.trading.stats import (
    EULER_GAMMA,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    moments,
    probabilistic_sharpe_ratio,
    sharpe_difference_ci,
    sharpe_ratio,
    stationary_bootstrap_indices,
)


def test_sharpe_ratio_closed_form() -> None:
    r = np.array([0.01, -0.005, 0.02, 0.0, 0.004])
    mean = r.sum() / 5
    std = math.sqrt(((r - mean) ** 2).sum() / 4)
    assert sharpe_ratio(r, periods_per_year=252) == pytest.approx(mean / std * math.sqrt(252))
    assert sharpe_ratio(r) == pytest.approx(mean / std)


@pytest.mark.parametrize("r", [np.zeros(10), np.full(5, 0.01), np.array([0.3])])
def test_sharpe_of_a_series_that_does_not_vary_is_zero(r: np.ndarray) -> None:
    assert sharpe_ratio(r, periods_per_year=252) == 0.0


def test_sharpe_rejects_non_finite_input() -> None:
    with pytest.raises(ValueError, match="finite"):
        sharpe_ratio(np.array([0.1, np.nan]))


def test_moments_match_scipy() -> None:
    r = np.random.default_rng(3).standard_t(4, 500) * 0.01
    s, k = moments(r)
    assert s == pytest.approx(skew(r))
    assert k == pytest.approx(kurtosis(r, fisher=False))
    assert moments(np.ones(4)) == (0.0, 3.0)


def test_stationary_bootstrap_blocks_have_the_mean_length() -> None:
    rng = np.random.default_rng(0)
    idx = stationary_bootstrap_indices(400, 300, 8.0, rng)
    assert idx.shape == (300, 400)
    assert idx.min() >= 0 and idx.max() < 400
    continues = idx[:, 1:] == (idx[:, :-1] + 1) % 400
    # A block continues with probability 1 - 1/mean_block (plus rare chance restarts).
    assert continues.mean() == pytest.approx(1 - 1 / 8, abs=0.01)
    again = stationary_bootstrap_indices(400, 300, 8.0, np.random.default_rng(0))
    assert np.array_equal(idx, again)


def test_sharpe_difference_ci_of_identical_series_is_zero() -> None:
    r = np.random.default_rng(1).normal(0.001, 0.01, 300)
    ci = sharpe_difference_ci(r, r.copy(), rng=np.random.default_rng(2), n_resamples=200)
    assert ci.estimate == 0.0 and ci.lower == 0.0 and ci.upper == 0.0


def test_sharpe_difference_ci_is_paired_and_seeded() -> None:
    rng = np.random.default_rng(4)
    market = rng.normal(0.0003, 0.01, 1500)
    base = market + rng.normal(0, 0.002, 1500)
    better = base + 0.0006  # the same risk, a higher mean: SR rises by about 0.06 per bar
    ci = sharpe_difference_ci(better, base, rng=np.random.default_rng(5), periods_per_year=252)
    truth = sharpe_ratio(better, periods_per_year=252) - sharpe_ratio(base, periods_per_year=252)
    assert ci.estimate == pytest.approx(truth)
    assert 0 < ci.lower < ci.estimate < ci.upper  # pairing keeps the noise of `market` out
    same = sharpe_difference_ci(better, base, rng=np.random.default_rng(5), periods_per_year=252)
    assert same == ci
    wider = sharpe_difference_ci(
        better, base, rng=np.random.default_rng(5), confidence=0.999, periods_per_year=252
    )
    assert wider.lower < ci.lower and wider.upper > ci.upper


def test_sharpe_difference_ci_of_unrelated_noise_covers_zero() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.normal(0, 0.01, 800), rng.normal(0, 0.01, 800)
    ci = sharpe_difference_ci(a, b, rng=np.random.default_rng(7), periods_per_year=252)
    assert ci.lower < 0 < ci.upper


def test_psr_closed_form() -> None:
    sr, n, g3, g4 = 0.08, 750, -0.5, 5.0
    z = (sr - 0.02) * math.sqrt(n - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    got = probabilistic_sharpe_ratio(sr, n=n, skewness=g3, kurtosis=g4, benchmark=0.02)
    assert got == pytest.approx(norm.cdf(z))
    assert math.isnan(probabilistic_sharpe_ratio(sr, n=1, skewness=0, kurtosis=3))


def test_expected_max_sharpe_is_the_euler_mascheroni_formula() -> None:
    v = 0.04
    z = (1 - EULER_GAMMA) * norm.ppf(1 - 1 / 20) + EULER_GAMMA * norm.ppf(1 - 1 / (20 * math.e))
    assert expected_max_sharpe(20, variance=v) == pytest.approx(math.sqrt(v) * z)
    assert expected_max_sharpe(1, variance=v) == 0.0


@pytest.mark.parametrize(("trials", "expected"), [(10, 1.5388), (100, 2.5076)])
def test_expected_max_approximates_the_mean_maximum_of_gaussians(
    trials: int, expected: float
) -> None:
    """Exact E[max of N standard normals] (tabulated): the approximation is within 3 %."""
    assert expected_max_sharpe(trials, variance=1.0) == pytest.approx(expected, rel=0.03)


def test_dsr_reproduces_the_papers_worked_example() -> None:
    """Bailey & López de Prado (2014): SR 2.5 a year over 1250 days, skew -3, kurtosis 10,
    100 trials with V[SR] = 1/2 a year: SR0 = 0.1132 per day and DSR = 0.9004."""
    sr0 = expected_max_sharpe(100, variance=0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = probabilistic_sharpe_ratio(
        2.5 / math.sqrt(250), n=1250, skewness=-3, kurtosis=10, benchmark=sr0
    )
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_dsr_of_a_series_deflates_with_trials() -> None:
    r = np.random.default_rng(8).normal(0.001, 0.01, 1000)
    one = deflated_sharpe_ratio(r, trials=1)
    s, k = moments(r)
    psr = probabilistic_sharpe_ratio(one.sharpe, n=1000, skewness=s, kurtosis=k, benchmark=0.0)
    assert one.dsr == pytest.approx(psr) and one.benchmark == 0.0
    many = deflated_sharpe_ratio(r, trials=100)
    assert many.benchmark == pytest.approx(expected_max_sharpe(100, variance=1 / 999))
    assert many.dsr < one.dsr
    assert deflated_sharpe_ratio(np.zeros(50), trials=5).dsr == 0.0
