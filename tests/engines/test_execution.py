"""Execution schedules: exact integer splits, POV caps, seeded icebergs, Almgren–Chriss closed
form against hand algebra and against its QP, and the Trader's plan_order policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign.engines.almgren_chriss import (
    ACMethod,
    ACParams,
    ac_cost,
    ac_kappa,
    ac_trajectory,
    ac_trajectory_qp,
)
from sovereign.engines.execution import (
    ExecAlgo,
    ExecutionSchedule,
    PlanOptions,
    allocate_shares,
    almgren_chriss,
    iceberg,
    plan_order,
    pov,
    twap,
    u_shape_profile,
    vwap,
)
from sovereign.errors import EngineError

quantities = st.integers(min_value=-10_000_000, max_value=10_000_000)
slices = st.integers(min_value=1, max_value=40)
AC = ACParams(risk_aversion=2e-6, sigma=0.5, eta=2.5e-6, gamma=2.5e-7)


def assert_exact(s: ExecutionSchedule, quantity: int) -> None:
    """The invariants every schedule keeps: exact sum, parent's sign, matching shapes."""
    assert s.quantity == quantity
    assert s.child_quantities.dtype == np.int64
    assert int(s.child_quantities.sum()) + s.remainder == quantity
    assert np.all(s.child_quantities * np.sign(quantity) >= 0)
    assert s.remainder * quantity >= 0
    assert s.weights.shape == s.child_quantities.shape
    assert np.all(s.weights >= 0)
    assert s.inventory[0] == quantity
    assert s.inventory[-1] == s.remainder


# ------------------------------------------------------------------------- largest remainder


def test_largest_remainder_golden() -> None:
    # 7 x (0.5, 0.3, 0.2) = 3.5, 2.1, 1.4: floors 3, 2, 1 leave one share for the 0.5 part.
    assert allocate_shares(7, [0.5, 0.3, 0.2]).tolist() == [4, 2, 1]
    # Plain rounding would give 1 + 1 + 1 = 3; ties go to the earlier slice.
    assert allocate_shares(2, [1, 1, 1]).tolist() == [1, 1, 0]
    assert allocate_shares(10, [1, 1, 1]).tolist() == [4, 3, 3]
    assert allocate_shares(0, [1, 2]).tolist() == [0, 0]


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(0, 2**52),
    weights=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=30),
)
def test_largest_remainder_is_exact_and_close(total: int, weights: list[float]) -> None:
    w = np.asarray(weights)
    if not w.sum() > 0:
        with pytest.raises(EngineError):
            allocate_shares(total, w)
        return
    out = allocate_shares(total, w)
    assert int(out.sum()) == total
    assert np.all(out >= 0)
    assert np.all(np.abs(out - total * w / w.sum()) <= 1.0 + 1e-9 * total)


# ----------------------------------------------------------------------------- invariants


@settings(max_examples=60, deadline=None)
@given(q=quantities, n=slices)
def test_twap_is_exact_and_even(q: int, n: int) -> None:
    s = twap(q, n)
    if q == 0:
        assert s.n_slices == 0
        return
    assert_exact(s, q)
    assert s.n_slices == n
    assert s.remainder == 0
    assert np.ptp(s.child_quantities) <= 1  # equal up to one share


@settings(max_examples=60, deadline=None)
@given(q=quantities, profile=st.lists(st.floats(0, 1e9, allow_nan=False), min_size=1, max_size=30))
def test_vwap_is_exact_and_follows_the_profile(q: int, profile: list[float]) -> None:
    s = vwap(q, len(profile), profile)
    if q == 0:
        assert s.n_slices == 0
        return
    assert_exact(s, q)
    p = np.asarray(profile)
    expected = p / p.sum() if p.sum() > 0 else np.full(p.size, 1 / p.size)
    assert np.allclose(s.weights, expected)
    assert np.all(np.abs(s.child_quantities - q * expected) <= 1.0 + 1e-9 * abs(q))


@settings(max_examples=80, deadline=None)
@given(
    q=quantities,
    volume=st.lists(st.floats(0, 1e8, allow_nan=False), min_size=1, max_size=30),
    rate=st.floats(1e-4, 1.0),
)
def test_pov_never_exceeds_its_cap_and_reports_the_remainder(
    q: int, volume: list[float], rate: float
) -> None:
    s = pov(q, volume, rate)
    if q == 0:
        assert s.n_slices == 0
        return
    assert_exact(s, q)
    assert np.all(np.abs(s.child_quantities) <= rate * np.asarray(volume))
    if s.remainder != 0:  # nothing left undone while there was room
        assert np.all(np.abs(s.child_quantities) == np.floor(rate * np.asarray(volume)))
    done = np.flatnonzero(s.inventory[1:] == 0)
    if done.size:  # after completion every child is zero
        assert np.all(s.child_quantities[done[0] + 1 :] == 0)


@settings(max_examples=60, deadline=None)
@given(
    q=st.integers(-200_000, 200_000),
    clip=st.integers(1, 5_000),
    variation=st.floats(0, 0.9),
    seed=st.integers(0, 2**32 - 1),
)
def test_iceberg_clips_stay_within_their_band(
    q: int, clip: int, variation: float, seed: int
) -> None:
    if abs(q) // max(1, round(clip * (1 - variation))) > 50_000:
        return  # too many clips to be worth the time
    s = iceberg(q, clip, variation=variation, seed=seed)
    if q == 0:
        assert s.n_slices == 0
        return
    assert_exact(s, q)
    sizes = np.abs(s.child_quantities)
    low = max(1, math.floor(clip * (1 - variation)))
    high = math.ceil(clip * (1 + variation))
    assert np.all(sizes[:-1] >= low)
    assert np.all(sizes <= high)
    assert sizes[-1] >= 1
    assert np.all(s.inventory[1:-1] * np.sign(q) > 0)  # hidden remainder while clips show


@settings(max_examples=40, deadline=None)
@given(
    q=quantities,
    n=slices,
    lam=st.floats(0, 1e-3),
    sigma=st.floats(0, 5),
    eta=st.floats(1e-7, 1e-3),
)
def test_almgren_chriss_is_exact_and_front_loaded(
    q: int, n: int, lam: float, sigma: float, eta: float
) -> None:
    s = almgren_chriss(q, n, ACParams(risk_aversion=lam, sigma=sigma, eta=eta))
    if q == 0:
        assert s.n_slices == 0
        return
    assert_exact(s, q)
    assert s.remainder == 0
    assert np.all(np.diff(s.weights) <= 1e-12)  # never accelerates
    assert s.weights.sum() == pytest.approx(1.0)


# ------------------------------------------------------------------------- Almgren–Chriss


def test_ac_two_slices_matches_hand_algebra() -> None:
    # N = 2: minimise eta ((X - x1)^2 + x1^2) + lambda sigma^2 x1^2  =>  x1 = X / (2 + k2),
    # k2 = lambda sigma^2 / eta = 2e-6 * 1 / 1e-6 = 2, so x1 = 1000 / 4 = 250.
    params = ACParams(risk_aversion=2e-6, sigma=1.0, eta=1e-6)
    assert ac_trajectory(1000.0, 2, params) == pytest.approx([1000.0, 250.0, 0.0], abs=1e-9)
    assert almgren_chriss(1000, 2, params).child_quantities.tolist() == [750, 250]
    assert almgren_chriss(-1000, 2, params).child_quantities.tolist() == [-750, -250]
    # kappa: cosh(kappa) = 1 + k2 / 2 = 2.
    assert ac_kappa(params) == pytest.approx(math.acosh(2.0), rel=1e-12)


@pytest.mark.parametrize("n", [3, 10])
def test_ac_closed_form_solves_the_first_order_conditions(n: int) -> None:
    # Interior optimality: (2 + c) u_k - u_{k-1} - u_{k+1} = 0, u_0 = 1, u_N = 0, c = (k~ tau)^2.
    params = ACParams(risk_aversion=1e-6, sigma=0.8, eta=2e-6, gamma=1e-6, tau=0.5)
    c = params.risk_aversion * params.sigma**2 * params.tau**2 / params.eta_tilde
    a = np.diag(np.full(n - 1, 2 + c)) - np.eye(n - 1, k=1) - np.eye(n - 1, k=-1)
    rhs = np.zeros(n - 1)
    rhs[0] = 1.0
    expected = np.concatenate(([1.0], np.linalg.solve(a, rhs), [0.0]))
    assert ac_trajectory(1.0, n, params) == pytest.approx(expected, abs=1e-12)


def test_discrete_kappa_equation_and_its_continuous_limit() -> None:
    params = ACParams(risk_aversion=3e-6, sigma=0.7, eta=1e-6, gamma=2e-7, tau=2.0)
    kappa = ac_kappa(params)
    k_tilde_sq = params.risk_aversion * params.sigma**2 / params.eta_tilde
    lhs = 2 / params.tau**2 * (math.cosh(kappa * params.tau) - 1)
    assert lhs == pytest.approx(k_tilde_sq, rel=1e-12)
    fine = ACParams(risk_aversion=3e-6, sigma=0.7, eta=1e-6, tau=1e-4)
    assert ac_kappa(fine) == pytest.approx(math.sqrt(3e-6 * 0.49 / 1e-6), rel=1e-7)


@pytest.mark.parametrize(
    ("n", "params"),
    [
        (2, AC),
        (5, AC),
        (20, AC),
        (30, ACParams(risk_aversion=1e-9, sigma=0.3, eta=1e-5)),  # nearly TWAP
        (15, ACParams(risk_aversion=1e-4, sigma=2.0, eta=1e-6)),  # very urgent
        (12, ACParams(risk_aversion=5e-7, sigma=1.0, eta=3e-6, gamma=1e-6, epsilon=0.02, tau=0.5)),
    ],
)
def test_closed_form_and_qp_agree(n: int, params: ACParams) -> None:
    x = 250_000.0
    closed = ac_trajectory(x, n, params)
    qp = ac_trajectory_qp(x, n, params)
    assert np.max(np.abs(closed - qp)) < 1e-4 * x
    qp_schedule = almgren_chriss(250_000, n, params, method=ACMethod.QP)
    cf_schedule = almgren_chriss(250_000, n, params)
    assert (
        np.max(np.abs(qp_schedule.child_quantities - cf_schedule.child_quantities)) <= 1 + 1e-4 * x
    )


def test_zero_risk_aversion_is_twap() -> None:
    line = np.linspace(1000.0, 0.0, 9)
    exact = ACParams(risk_aversion=0.0, sigma=1.0, eta=1e-6)
    assert np.array_equal(ac_trajectory(1000.0, 8, exact), line)
    assert ac_trajectory_qp(1000.0, 8, exact) == pytest.approx(line, abs=1e-4 * 1000)
    gaps = [
        np.abs(ac_trajectory(1000.0, 8, ACParams(risk_aversion=lam, sigma=1.0, eta=1e-6)) - line)
        for lam in (1e-9, 1e-12, 1e-15)
    ]
    assert gaps[0].max() > gaps[1].max() > gaps[2].max()  # converges to the line as lambda -> 0
    assert gaps[2].max() < 1e-5 * 1000
    for params in (exact, ACParams(risk_aversion=1e-15, sigma=1.0, eta=1e-6)):
        assert np.array_equal(
            almgren_chriss(1003, 8, params).child_quantities, twap(1003, 8).child_quantities
        )


def test_more_risk_aversion_trades_earlier() -> None:
    first = [
        almgren_chriss(10_000, 10, ACParams(risk_aversion=lam, sigma=0.5, eta=1e-6)).weights[0]
        for lam in (0.0, 1e-7, 1e-6, 1e-5)
    ]
    assert first == sorted(first)
    assert first[0] == pytest.approx(0.1)
    assert first[-1] > 0.5


def test_ac_cost_matches_the_substituted_form_and_the_optimum_beats_perturbations() -> None:
    params = ACParams(risk_aversion=1e-6, sigma=0.6, eta=2e-6, gamma=1e-6, epsilon=0.01)
    x = 50_000.0
    path = ac_trajectory(x, 10, params)
    expected, variance = ac_cost(path, params)
    trades = -np.diff(path)
    substituted = (
        0.5 * params.gamma * x**2 + params.epsilon * x + params.eta_tilde * np.sum(trades**2)
    )
    assert expected == pytest.approx(substituted, rel=1e-12)
    assert variance == pytest.approx(params.sigma**2 * np.sum(path[1:] ** 2), rel=1e-12)
    best = expected + params.risk_aversion * variance
    rng = np.random.default_rng(42)
    for _ in range(50):
        other = path.copy()
        other[1:-1] += rng.normal(0, 0.01 * x, size=9)
        e, v = ac_cost(other, params)
        assert best <= e + params.risk_aversion * v
    e_twap, v_twap = ac_cost(np.linspace(x, 0, 11), params)
    assert best < e_twap + params.risk_aversion * v_twap


def test_ac_extreme_urgency_stays_finite() -> None:
    params = ACParams(risk_aversion=1.0, sigma=100.0, eta=1e-9)  # kappa * N in the thousands
    path = ac_trajectory(1e6, 50, params)
    assert np.all(np.isfinite(path))
    assert path[1] == pytest.approx(0.0, abs=1e-6)
    assert almgren_chriss(1_000_000, 50, params).child_quantities[0] == 1_000_000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"risk_aversion": -1e-6, "sigma": 1.0, "eta": 1e-6},
        {"risk_aversion": 1e-6, "sigma": 1.0, "eta": 0.0},
        {"risk_aversion": 1e-6, "sigma": 1.0, "eta": 1e-6, "gamma": 4e-6},  # eta~ < 0
        {"risk_aversion": 1e-6, "sigma": math.nan, "eta": 1e-6},
        {"risk_aversion": 1e-6, "sigma": 1.0, "eta": 1e-6, "tau": 0.0},
    ],
)
def test_ac_params_reject_ill_posed_problems(kwargs: dict[str, float]) -> None:
    with pytest.raises(EngineError):
        ACParams(**kwargs)


# ------------------------------------------------------------------------------- degenerate


def test_zero_quantity_gives_the_empty_schedule_everywhere() -> None:
    for s in (
        twap(0, 5),
        vwap(0, 5),
        pov(0, [100.0, 100.0], 0.1),
        iceberg(0, 100, seed=1),
        almgren_chriss(0, 5, AC),
        plan_order(0, 1e6, seed=1),
    ):
        assert s.n_slices == 0
        assert s.quantity == 0
        assert s.remainder == 0
        assert s.inventory.tolist() == [0]


def test_fewer_than_one_slice_is_an_error() -> None:
    for call in (
        lambda: twap(100, 0),
        lambda: vwap(100, -1),
        lambda: pov(100, [], 0.1),
        lambda: almgren_chriss(100, 0, AC),
        lambda: ac_trajectory_qp(100.0, 0, AC),
        lambda: u_shape_profile(0),
        lambda: plan_order(10**6, 1e6, n_slices=0, seed=1),
    ):
        with pytest.raises(EngineError, match="n_slices must be >= 1"):
            call()


def test_zero_volume_profile_falls_back_to_twap() -> None:
    s = vwap(1001, 4, [0.0, 0.0, 0.0, 0.0])
    assert s.algo is ExecAlgo.VWAP
    assert np.array_equal(s.child_quantities, twap(1001, 4).child_quantities)


def test_default_vwap_profile_is_a_u() -> None:
    p = u_shape_profile(7)
    assert p.sum() == pytest.approx(1.0)
    assert p[0] == pytest.approx(p[-1])
    assert p[3] == p.min()
    assert p[0] / p[3] == pytest.approx(1 + 2 * (6 / 7) ** 2, rel=1e-12)  # s = 1/14 vs 1/2
    assert np.array_equal(vwap(700, 7).child_quantities, allocate_shares(700, p))


@pytest.mark.parametrize(
    "call",
    [
        lambda: twap(10.5, 3),  # type: ignore[arg-type]
        lambda: twap(math.nan, 3),  # type: ignore[arg-type]
        lambda: vwap(100, 3, [1.0, 2.0]),
        lambda: vwap(100, 2, [1.0, math.nan]),
        lambda: vwap(100, 2, [1.0, -1.0]),
        lambda: pov(100, [10.0, 10.0], 0.0),
        lambda: pov(100, [10.0, 10.0], 1.5),
        lambda: pov(100, [[10.0]], 0.5),
        lambda: iceberg(100, 0, seed=1),
        lambda: iceberg(100, 10, variation=1.0, seed=1),
        lambda: iceberg(10**12, 1, seed=1),
    ],
)
def test_bad_inputs_are_engine_errors(call: object) -> None:
    with pytest.raises(EngineError):
        call()  # type: ignore[operator]


def test_pov_with_no_volume_keeps_the_whole_order_as_remainder() -> None:
    s = pov(-500, [0.0, 0.0, 0.0], 0.2)
    assert s.child_quantities.tolist() == [0, 0, 0]
    assert s.remainder == -500
    golden = pov(1000, [1000.0, 2000.0, 10_000.0, 10_000.0], 0.25)
    assert golden.child_quantities.tolist() == [250, 500, 250, 0]
    assert golden.remainder == 0


def test_schedule_rejects_inconsistent_values_and_is_read_only() -> None:
    with pytest.raises(EngineError, match="remainder"):
        ExecutionSchedule(
            algo=ExecAlgo.TWAP, quantity=10, child_quantities=np.array([5, 4]), weights=np.ones(2)
        )
    with pytest.raises(EngineError, match="wrong sign"):
        ExecutionSchedule(
            algo=ExecAlgo.TWAP, quantity=1, child_quantities=np.array([2, -1]), weights=np.ones(2)
        )
    with pytest.raises(EngineError, match="wrong sign"):
        ExecutionSchedule(
            algo=ExecAlgo.TWAP, quantity=0, child_quantities=np.array([1, -1]), weights=np.ones(2)
        )
    with pytest.raises(EngineError, match="integer shares"):
        ExecutionSchedule(
            algo=ExecAlgo.TWAP,
            quantity=5,
            child_quantities=np.array([2.5, 2.5]),
            weights=np.ones(2),
        )
    s = twap(10, 2)
    with pytest.raises(ValueError, match="read-only"):
        s.child_quantities[0] = 3


# --------------------------------------------------------------------------------- iceberg


def test_iceberg_is_deterministic_by_seed_and_varies_across_seeds() -> None:
    a = iceberg(100_000, 1_000, variation=0.2, seed=7)
    b = iceberg(100_000, 1_000, variation=0.2, seed=7)
    c = iceberg(100_000, 1_000, variation=0.2, seed=8)
    assert np.array_equal(a.child_quantities, b.child_quantities)
    assert not np.array_equal(a.child_quantities[:10], c.child_quantities[:10])
    assert len(set(a.child_quantities[:-1].tolist())) > 20  # the visible size does not repeat


def test_iceberg_without_variation_shows_fixed_clips() -> None:
    s = iceberg(-2_500, 1_000, variation=0.0, seed=3)
    assert s.child_quantities.tolist() == [-1_000, -1_000, -500]
    assert s.inventory.tolist() == [-2_500, -1_500, -500, 0]


# ------------------------------------------------------------------------------ plan_order


def test_small_orders_go_at_once() -> None:
    s = plan_order(-10_000, 1_000_000, seed=0)  # exactly 1% of ADV
    assert s.algo is ExecAlgo.SINGLE
    assert s.child_quantities.tolist() == [-10_000]


def test_large_orders_are_split_so_each_child_fits_under_the_threshold() -> None:
    s = plan_order(35_000, 1_000_000, seed=0)
    assert s.algo is ExecAlgo.TWAP
    assert s.n_slices == 4  # ceil(35_000 / 10_000)
    assert s.child_quantities.tolist() == [8_750] * 4
    capped = plan_order(1_000_000, 1_000_000, seed=0)
    assert capped.n_slices == PlanOptions().max_slices
    assert plan_order(1_000_000, 1_000_000, n_slices=3, seed=0).n_slices == 3


@pytest.mark.parametrize("algo", list(ExecAlgo))
def test_plan_order_runs_every_algorithm(algo: ExecAlgo) -> None:
    options = PlanOptions(ac=AC, volume_profile=(3.0, 1.0, 1.0, 3.0))
    s = plan_order(-123_457, 500_000, algo=algo, n_slices=4, seed=11, options=options)
    assert_exact(s, -123_457)
    assert s.algo is algo
    if algo is ExecAlgo.POV:  # 10% of a 500k ADV per bar: 50k a bar, done in 3 bars
        assert s.child_quantities.tolist() == [-50_000, -50_000, -23_457, 0]
    if algo is ExecAlgo.ICEBERG:
        again = plan_order(-123_457, 500_000, algo=algo, n_slices=4, seed=11, options=options)
        assert np.array_equal(s.child_quantities, again.child_quantities)


def test_plan_order_vwap_takes_its_horizon_from_the_profile() -> None:
    options = PlanOptions(volume_profile=(1.0, 2.0, 1.0))
    s = plan_order(40_000, 1_000_000, algo=ExecAlgo.VWAP, seed=0, options=options)
    assert s.child_quantities.tolist() == [10_000, 20_000, 10_000]
    with pytest.raises(EngineError, match="max_slices"):
        PlanOptions(max_slices=1)


def test_plan_order_iceberg_clips_number_about_n_slices() -> None:
    counts = [
        plan_order(1_000_003, 1_000_000, algo=ExecAlgo.ICEBERG, seed=seed).n_slices
        for seed in range(30)
    ]
    assert max(counts) <= math.ceil(10 / 0.8) + 1
    assert min(counts) >= math.floor(10 / 1.2)


def test_plan_order_reports_pov_remainder_instead_of_dropping_it() -> None:
    options = PlanOptions(pov_rate=0.02)
    s = plan_order(100_000, 1_000_000, algo=ExecAlgo.POV, n_slices=3, seed=0, options=options)
    assert s.child_quantities.tolist() == [20_000, 20_000, 20_000]
    assert s.remainder == 40_000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quantity": 100_000, "adv": 0.0},
        {"quantity": 100_000, "adv": math.nan},
        {"quantity": 100_000, "adv": 1e6, "participation_threshold": -0.1},
        {"quantity": 100_000, "adv": 1e6, "algo": ExecAlgo.ALMGREN_CHRISS},  # no AC params
        {"quantity": 100_000.5, "adv": 1e6},
    ],
)
def test_plan_order_rejects_bad_inputs(kwargs: dict[str, object]) -> None:
    with pytest.raises(EngineError):
        plan_order(**kwargs, seed=0)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    q=quantities,
    adv=st.floats(1.0, 1e9),
    threshold=st.floats(0.0, 0.2),
    algo=st.sampled_from([a for a in ExecAlgo if a is not ExecAlgo.ALMGREN_CHRISS]),
    seed=st.integers(0, 1000),
)
def test_plan_order_is_always_exact(
    q: int, adv: float, threshold: float, algo: ExecAlgo, seed: int
) -> None:
    s = plan_order(q, adv, participation_threshold=threshold, algo=algo, seed=seed)
    if q == 0:
        assert s.n_slices == 0
        return
    assert_exact(s, q)
    if abs(q) <= threshold * adv:
        assert s.algo is ExecAlgo.SINGLE
