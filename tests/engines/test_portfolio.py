"""The cvxpy optimiser: closed forms, skfolio's MeanRisk, DPP re-solves, constraint invariants
(hypothesis), the fallback chain and degenerate input."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skfolio.measures import RiskMeasure
from skfolio.optimization import MeanRisk, ObjectiveFunction

from sovereign.engines.allocators import inverse_volatility
from sovereign.engines.covariance import factor_model_from_covariance
from sovereign.engines.portfolio import (
    FACTOR_FORM_ABOVE,
    FallbackStep,
    Limits,
    OptimiserConfig,
    PortfolioOptimiser,
)
from sovereign.errors import EngineError
from sovereign.market.sources import load_sample

TOL = 1e-6
PLAIN = {"turnover_penalty": 0.0, "robustness": 0.0, "l2_penalty": 0.0}
WIDE = Limits(lower=-100.0, upper=100.0, max_gross=1e4, net_low=-1e4, net_high=1e4)


def random_covariance(seed: int, n: int) -> np.ndarray:
    """Annualised-looking covariance: two factors plus idiosyncratic variance."""
    rng = np.random.default_rng(seed)
    b = rng.normal(0, 0.15, size=(n, 2))
    return b @ b.T + np.diag(rng.uniform(0.01, 0.09, size=n))


def random_mu(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed + 1).normal(0.06, 0.08, size=n)


@pytest.fixture(scope="module")
def sp500_returns() -> np.ndarray:
    close = load_sample("sp500").close[-751:]
    returns = close[1:] / close[:-1] - 1.0
    assert np.isfinite(returns).all()
    return returns


# ---------------------------------------------------------------------------------- golden numbers


@pytest.mark.parametrize("factor_form", [False, True])
def test_unconstrained_solution_is_the_closed_form(factor_form: bool) -> None:
    n, gamma = 6, 4.0
    cov, mu = random_covariance(0, n), random_mu(0, n)
    config = OptimiserConfig(
        risk_aversion=gamma, long_only=False, factor_form=factor_form, n_factors=n, **PLAIN
    )
    opt = PortfolioOptimiser(n, config=config, limits=WIDE)
    result = opt.solve(mu, covariance=cov)
    assert result.step is FallbackStep.OPTIMAL
    assert opt.factor_form is factor_form
    np.testing.assert_allclose(
        result.weights, np.linalg.solve(cov, mu) / gamma, rtol=1e-6, atol=1e-8
    )
    # the reported objective is the maximised utility; the solver minimised -scale * utility
    assert result.objective == pytest.approx(-opt.problem.value / opt.objective_scale, rel=1e-6)
    closed = mu @ np.linalg.solve(cov, mu) / (2 * gamma)
    assert result.objective == pytest.approx(closed, rel=1e-6)


def test_objective_includes_every_penalty() -> None:
    n = 5
    cov, mu = random_covariance(1, n), random_mu(1, n)
    config = OptimiserConfig(
        risk_aversion=3.0, turnover_penalty=0.01, l2_penalty=0.02, robustness=0.1
    )
    opt = PortfolioOptimiser(n, config=config)
    result = opt.solve(mu, np.full(n, 0.1), covariance=cov)
    assert result.step is FallbackStep.OPTIMAL
    w, prev = result.weights, np.full(n, 0.1)
    expected = (
        mu @ w
        - 1.5 * w @ cov @ w
        - 0.01 * np.abs(w - prev).sum()
        - 0.02 * w @ w
        - 0.1 * np.sqrt(w @ cov @ w)
    )
    assert result.objective == pytest.approx(expected, rel=1e-9)
    assert result.objective == pytest.approx(-opt.problem.value / opt.objective_scale, rel=1e-6)


def test_matches_skfolio_mean_risk(sp500_returns: np.ndarray) -> None:
    """skfolio's MAXIMIZE_UTILITY maximises mu'w - a w'Sw, ours mu'w - (gamma/2) w'Sw: the same
    problem for a = gamma / 2 (the one deliberate difference). Long only, fully invested, a 30%
    box, no penalties, the same sample mean and covariance (ddof=1)."""
    gamma = 3.0
    ref = MeanRisk(
        objective_function=ObjectiveFunction.MAXIMIZE_UTILITY,
        risk_measure=RiskMeasure.VARIANCE,
        risk_aversion=gamma / 2,
        min_weights=0.0,
        max_weights=0.3,
    ).fit(sp500_returns)
    opt = PortfolioOptimiser(
        20,
        config=OptimiserConfig(risk_aversion=gamma, **PLAIN),
        limits=Limits(upper=0.3, net_low=1.0, net_high=1.0),
    )
    result = opt.solve(sp500_returns.mean(axis=0), covariance=np.cov(sp500_returns, rowvar=False))
    assert result.step is FallbackStep.OPTIMAL
    np.testing.assert_allclose(result.weights, ref.weights_, atol=2e-5)  # both solvers' accuracy
    assert result.objective >= opt.utility(ref.weights_) - 1e-12


def test_large_turnover_penalty_keeps_a_feasible_previous_portfolio() -> None:
    n = 5
    prev = np.full(n, 0.2)
    opt = PortfolioOptimiser(n, config=OptimiserConfig(turnover_penalty=10.0))
    result = opt.solve(random_mu(2, n), prev, covariance=random_covariance(2, n))
    assert result.step is FallbackStep.OPTIMAL
    np.testing.assert_allclose(result.weights, prev, atol=1e-7)


def test_robustness_lowers_risk() -> None:
    n = 8
    cov, mu = random_covariance(3, n), random_mu(3, n)

    def vol(delta: float) -> float:
        config = OptimiserConfig(turnover_penalty=0.0, robustness=delta)
        w = PortfolioOptimiser(n, config=config).solve(mu, covariance=cov).weights
        return float(np.sqrt(w @ cov @ w))

    assert vol(0.5) < vol(0.0) - 1e-4


# ------------------------------------------------------------------------------- DPP and re-solves


@pytest.mark.parametrize("factor_form", [False, True])
@pytest.mark.parametrize("long_only", [False, True])
def test_problem_is_dpp_and_a_resolve_equals_a_fresh_build(
    factor_form: bool, long_only: bool
) -> None:
    n = 8
    sectors = ["tech", "tech", "tech", "energy", "energy", "health", "health", "health"]
    config = OptimiserConfig(long_only=long_only, factor_form=factor_form, n_factors=3)
    limits = Limits(
        lower=-0.3, upper=0.4, max_gross=1.5, net_low=0.5, net_high=1.0, sector_caps={"tech": 0.6}
    )
    opt = PortfolioOptimiser(n, config=config, limits=limits, sectors=sectors)
    assert opt.problem.is_dpp()
    first = opt.solve(random_mu(4, n), covariance=random_covariance(4, n))
    assert first.step is FallbackStep.OPTIMAL
    # re-solve with new mu, w_prev and risk model on the built problem ...
    mu, cov = random_mu(5, n), random_covariance(5, n)
    again = opt.solve(mu, first.weights, covariance=cov)
    # ... and on a fresh build
    fresh = PortfolioOptimiser(n, config=config, limits=limits, sectors=sectors)
    expected = fresh.solve(mu, first.weights, covariance=cov)
    assert again.step is expected.step is FallbackStep.OPTIMAL
    # the same answer to the solver's accuracy (a cached solver and a new one stop at slightly
    # different interior points; observed differences are ~1e-6)
    np.testing.assert_allclose(again.weights, expected.weights, atol=2e-5)
    assert again.objective == pytest.approx(expected.objective, rel=1e-7, abs=1e-9)
    assert not np.allclose(again.weights, first.weights, atol=1e-3)  # it did move


def test_default_solver_is_installed() -> None:
    assert OptimiserConfig().solver in cp.installed_solvers()


def test_factor_form_is_automatic_above_the_threshold() -> None:
    assert not PortfolioOptimiser(FACTOR_FORM_ABOVE).factor_form
    big = PortfolioOptimiser(FACTOR_FORM_ABOVE + 1)
    assert big.factor_form
    assert big.problem.is_dpp()
    assert not PortfolioOptimiser(
        FACTOR_FORM_ABOVE + 1, config=OptimiserConfig(factor_form=False)
    ).factor_form


def test_factor_risk_input_equals_its_covariance() -> None:
    n = 7
    cov, mu = random_covariance(6, n), random_mu(6, n)
    fm = factor_model_from_covariance(cov, 3)
    full = PortfolioOptimiser(n, config=OptimiserConfig(factor_form=False))
    factored = PortfolioOptimiser(n, config=OptimiserConfig(factor_form=True, n_factors=3))
    a = full.solve(mu, covariance=fm.covariance())
    b = factored.solve(mu, factors=fm)
    np.testing.assert_allclose(a.weights, b.weights, atol=TOL)


# ------------------------------------------------------------------------------------- invariants

N_INV = 6
SECTORS = ["a", "a", "b", "b", "c", "c"]
_OPTIMISERS: dict[bool, PortfolioOptimiser] = {}


def optimiser(long_only: bool) -> PortfolioOptimiser:
    """One optimiser per mode, re-solved across hypothesis examples (as the Trader would)."""
    if long_only not in _OPTIMISERS:
        config = OptimiserConfig(
            long_only=long_only, turnover_penalty=0.002, l2_penalty=0.01, robustness=0.1
        )
        _OPTIMISERS[long_only] = PortfolioOptimiser(N_INV, config=config, sectors=SECTORS)
    return _OPTIMISERS[long_only]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    long_only=st.booleans(),
    slack=st.floats(0.0, 0.3),
    gross_room=st.floats(0.0, 1.0),
)
def test_weights_respect_every_constraint(
    seed: int, long_only: bool, slack: float, gross_room: float
) -> None:
    """Limits are drawn around a random feasible point, so the problem is feasible; the answer
    must then be optimal and within every limit to 1e-6."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0 if long_only else -0.3, 0.4, N_INV)
    lower = x - rng.uniform(0.0, 0.3, N_INV)
    upper = x + rng.uniform(0.0, 0.3, N_INV)
    gross = float(np.abs(x).sum()) + gross_room
    net = float(x.sum())
    member = np.array([[s == t for s in SECTORS] for t in "abc"], dtype=float)
    sector_gross = member @ np.abs(x)
    caps = {t: float(sector_gross[i] + slack) for i, t in enumerate("abc")}
    limits = Limits(
        lower=lower,
        upper=upper,
        max_gross=gross,
        net_low=net - slack,
        net_high=net + slack,
        sector_caps=caps,
    )
    prev = rng.uniform(-0.2, 0.2, N_INV)
    result = optimiser(long_only).solve(
        random_mu(seed, N_INV), prev, covariance=random_covariance(seed, N_INV), limits=limits
    )
    assert result.step is FallbackStep.OPTIMAL, result.attempts
    w = result.weights
    floor = np.maximum(lower, 0.0) if long_only else lower
    assert (w >= floor - TOL).all()
    assert (w <= upper + TOL).all()
    assert np.abs(w).sum() <= gross + TOL
    assert net - slack - TOL <= w.sum() <= net + slack + TOL
    assert (member @ np.abs(w) <= sector_gross + slack + TOL).all()


# ------------------------------------------------------------------------------- fallback chain


def test_solver_failure_falls_back_to_the_relaxed_problem() -> None:
    n = 5
    config = OptimiserConfig(solver_options=(("max_iter", 1),), relaxed_solver_options=())
    result = PortfolioOptimiser(n, config=config).solve(
        random_mu(7, n), covariance=random_covariance(7, n)
    )
    assert result.step is FallbackStep.RELAXED
    assert result.attempts == ("optimal: user_limit", "relaxed: optimal")
    assert result.status == "optimal"
    assert (result.weights >= -TOL).all()
    assert result.weights.sum() <= 1.0 + TOL


def test_relaxed_failure_falls_back_to_inverse_volatility_in_the_box() -> None:
    n = 5
    cov = random_covariance(8, n)
    config = OptimiserConfig(solver_options=(("max_iter", 1),))
    limits = Limits(upper=0.3, net_low=0.0, net_high=1.0)
    opt = PortfolioOptimiser(n, config=config, limits=limits)
    result = opt.solve(random_mu(8, n), covariance=cov)
    assert result.step is FallbackStep.ALLOCATOR
    assert result.attempts[-1] == "allocator: inverse_volatility"
    np.testing.assert_allclose(
        result.weights, inverse_volatility(cov, total=1.0, lower=0.0, upper=0.3), atol=1e-12
    )
    assert result.objective == pytest.approx(opt.utility(result.weights))
    # after the failures, a healthy re-solve is optimal again (no stale solver settings)
    healthy = PortfolioOptimiser(n, limits=limits).solve(random_mu(8, n), covariance=cov)
    assert healthy.step is FallbackStep.OPTIMAL


def test_infeasible_limits_end_at_keep_previous() -> None:
    n = 4
    prev = np.array([0.1, 0.2, 0.3, 0.1])
    limits = Limits(lower=0.3, upper=1.0, net_low=0.0, net_high=1.0)  # the lower bounds sum to 1.2
    opt = PortfolioOptimiser(n, limits=limits)
    result = opt.solve(random_mu(9, n), prev, covariance=random_covariance(9, n))
    assert result.step is FallbackStep.KEEP_PREVIOUS
    assert result.status == "kept"
    np.testing.assert_array_equal(result.weights, prev)
    assert [a.split(":")[0] for a in result.attempts] == [
        "optimal",
        "relaxed",
        "allocator",
        "keep_previous",
    ]
    assert result.attempts[0] == "optimal: infeasible"
    # the same optimiser recovers when the limits are sane again
    ok = opt.solve(random_mu(9, n), prev, limits=Limits())
    assert ok.step is FallbackStep.OPTIMAL


# ----------------------------------------------------------------------------------- degenerate


def test_one_asset() -> None:
    opt = PortfolioOptimiser(1, config=OptimiserConfig(**PLAIN), limits=Limits(upper=0.5))
    assert opt.solve([0.5], covariance=[[0.04]]).weights == pytest.approx([0.5], abs=TOL)  # capped
    assert opt.solve([-0.1], covariance=[[0.04]]).weights == pytest.approx(
        [0.0], abs=TOL
    )  # long only


def test_singular_covariance_is_solved_within_limits() -> None:
    n = 4
    b = np.random.default_rng(10).normal(0, 0.2, size=(n, 1))
    singular = b @ b.T  # rank 1: every asset is the same bet
    result = PortfolioOptimiser(n, limits=Limits(upper=0.5)).solve(
        random_mu(10, n), covariance=singular
    )
    assert result.step is FallbackStep.OPTIMAL
    assert (result.weights <= 0.5 + TOL).all()
    assert result.weights.sum() <= 1.0 + TOL


def test_bad_inputs_raise() -> None:
    n = 3
    cov = random_covariance(11, n)
    opt = PortfolioOptimiser(n)
    with pytest.raises(EngineError, match="no risk model"):
        opt.solve(np.zeros(n))
    with pytest.raises(EngineError, match=r"portfolio\.mu"):
        opt.solve([0.1, np.nan, 0.1], covariance=cov)
    with pytest.raises(EngineError, match="shape"):
        opt.solve([0.1, 0.1], covariance=cov)
    with pytest.raises(EngineError, match="w_prev"):
        opt.solve([0.1, 0.1, 0.1], [0.0, np.inf, 0.0], covariance=cov)
    with pytest.raises(EngineError, match="negative eigenvalue"):
        opt.solve([0.1, 0.1, 0.1], covariance=np.array([[1, 2, 0], [2, 1, 0], [0, 0, 1.0]]))
    with pytest.raises(EngineError, match="NaN bound"):
        opt.solve(
            [0.1, 0.1, 0.1], covariance=cov, limits=Limits(upper=np.array([0.5, np.nan, 0.5]))
        )
    with pytest.raises(EngineError, match="sector labels"):
        PortfolioOptimiser(n, sectors=["a", "b"])
    with pytest.raises(EngineError, match="exactly one"):
        opt.set_risk(cov, factors=factor_model_from_covariance(cov, 2))
