"""Portfolio sizing of a bar's candidate entries with the cvxpy optimiser."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign.engines.covariance import ledoit_wolf
from sovereign.trading.overlay import filled_returns
from sovereign.trading.sizing import PortfolioSizer, SizingConfig


def prices(seed: int, n_bars: int = 300, rho: float = 0.0, n: int = 4) -> np.ndarray:
    """Closes of ``n`` assets; the first three share a common factor with correlation ``rho``."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.015, (n_bars, 1))
    own = rng.normal(0, 0.015, (n_bars, n))
    r = own.copy()
    r[:, :3] = np.sqrt(rho) * common + np.sqrt(1 - rho) * own[:, :3]
    return 100 * np.exp(np.cumsum(r, axis=0))


def test_a_lone_candidate_shrinks_by_its_own_variance() -> None:
    close = prices(1)
    i = close.shape[0] - 1
    sizer = PortfolioSizer(4, SizingConfig(risk_aversion=2.0))
    result = sizer.size(close, i, desired={3: 0.05}, held=np.zeros(4))
    s = ledoit_wolf(filled_returns(close[i + 1 - 252 : i + 1])[1:], periods_per_year=252)
    expected = 0.05 / (1 + 2.0 * s.covariance[3, 3])  # w = d / (1 + lambda S_jj)
    assert result.step == "optimal"
    assert result.fractions[3] == pytest.approx(expected, rel=1e-3)


def test_correlated_bets_are_cut_back_more_than_independent_ones() -> None:
    close = prices(2, rho=0.9)
    i = close.shape[0] - 1
    sizer = PortfolioSizer(4)
    cluster = sizer.size(close, i, desired={0: 0.05, 1: 0.05, 2: 0.05}, held=np.zeros(4))
    alone = sizer.size(close, i, desired={0: 0.05}, held=np.zeros(4))
    assert sum(cluster.fractions.values()) / 3 < alone.fractions[0]
    # a held position on the same move also counts against a new one
    held = np.array([0.0, 0.1, 0.1, 0.0])
    with_held = sizer.size(close, i, desired={0: 0.05}, held=held)
    assert with_held.fractions[0] < alone.fractions[0]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 1000),
    sizes=st.lists(st.floats(-0.05, 0.05).filter(lambda x: abs(x) > 1e-4), min_size=1, max_size=4),
)
def test_never_larger_than_desired_and_same_side(seed: int, sizes: list[float]) -> None:
    close = prices(seed, n_bars=120)
    sizer = PortfolioSizer(4)
    desired = dict(enumerate(sizes))
    result = sizer.size(close, 119, desired=desired, held=np.zeros(4))
    for j, d in desired.items():
        f = result.fractions[j]
        assert np.sign(f) in (0.0, np.sign(d)) and abs(f) <= abs(d) + 1e-12


def test_short_history_or_disabled_keeps_the_desired_sizes() -> None:
    close = prices(3, n_bars=40)
    short = PortfolioSizer(4).size(close, 39, desired={0: 0.05}, held=np.zeros(4))
    assert short.fractions == {0: 0.05} and "covariance needs" in short.note
    off = PortfolioSizer(4, SizingConfig(enabled=False)).size(
        prices(3), 299, desired={1: -0.03}, held=np.zeros(4)
    )
    assert off.fractions == {1: -0.03}
    with pytest.raises(ValueError, match="min_history"):
        SizingConfig(min_history=10)


@pytest.mark.parametrize("held_j", [0.0, 0.04])
def test_the_active_set_answer_is_the_solvers(held_j: float) -> None:
    close = prices(4, rho=0.6)
    held = np.array([0.0, 0.08, 0.05, held_j])
    fast = PortfolioSizer(4)
    solver = PortfolioSizer(4)
    solver.always_solve = True
    cases = ({3: 0.05}, {0: -0.04}, {1: 0.03}, {0: 0.05, 1: 0.05, 2: 0.05}, {0: 0.05, 3: -0.05})
    for desired in cases:
        a = fast.size(close, 299, desired=desired, held=held)
        b = solver.size(close, 299, desired=desired, held=held)
        assert a.step == b.step == "optimal"
        for j in desired:
            assert a.fractions[j] == pytest.approx(b.fractions[j], abs=2e-5)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 500),
    sizes=st.lists(st.floats(-0.08, 0.08).filter(lambda x: abs(x) > 1e-3), min_size=2, max_size=4),
    held=st.lists(st.floats(-0.1, 0.1), min_size=4, max_size=4),
)
def test_the_active_set_matches_cvxpy_on_random_books(
    seed: int, sizes: list[float], held: list[float]
) -> None:
    close = prices(seed, n_bars=150, rho=0.5)
    h = np.array(held)
    for j in range(len(sizes)):
        h[j] = 0.0  # a candidate's own symbol is not held
    fast, solver = PortfolioSizer(4), PortfolioSizer(4)
    solver.always_solve = True
    desired = dict(enumerate(sizes))
    a = fast.size(close, 149, desired=desired, held=h)
    b = solver.size(close, 149, desired=desired, held=h)
    for j in desired:
        assert a.fractions[j] == pytest.approx(b.fractions[j], abs=5e-5)
