"""Fragility engine: golden numbers (factor world, constant window), the worse-of rule, the
exposure multiplier, degenerate input, determinism, no look-ahead, the bundled S&P 500 sample."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import norm

from sovereign.engines.fragility import (
    DEFAULT_SCENARIOS,
    FragilityConfig,
    FragilityProfile,
    RiskModel,
    Scenario,
    ScenarioKind,
    ShockDirection,
    SyntheticShock,
    assess,
    build_profile,
    exposure_multiplier,
)
from sovereign.engines.fragility_models import (
    KernelStack,
    bootstrap_paths,
    fill_with_market,
    normal_es_multiplier,
    stressed_correlation_window,
)
from sovereign.errors import ConfigError, EngineError

BOOT, FACTOR = RiskModel.HISTORICAL_BOOTSTRAP, RiskModel.FACTOR_STRESS


def utc(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def window_scenario(name: str, start: str, end: str) -> Scenario:
    return Scenario(
        name=name,
        kind=ScenarioKind.HISTORICAL,
        direction=ShockDirection.DOWN,
        description="test window",
        start=utc(start),
        end=utc(end),
    )


def gap(name: str, size: float) -> Scenario:
    return Scenario(
        name=name,
        kind=ScenarioKind.SYNTHETIC,
        direction=ShockDirection.DOWN if size < 0 else ShockDirection.UP,
        description="test gap",
        shock=SyntheticShock.MARKET_GAP,
        size=size,
        horizon_days=1,
    )


def factor_world(start: str = "2007-01-01", end: str = "2010-12-31", n: int = 5, seed: int = 42):
    """Daily simple returns of ``n`` assets with a market factor and idiosyncratic noise."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range(start, end, tz="UTC")
    market = rng.standard_t(4, len(index)) * 0.008
    betas = np.linspace(0.6, 1.4, n)
    values = np.outer(market, betas) + rng.normal(0, 0.01, (len(index), n))
    return pd.DataFrame(values, index=index, columns=[f"S{i}" for i in range(n)])


SMALL = FragilityConfig(n_paths=200, fit_window_days=250)


@functools.cache
def small_profile() -> FragilityProfile:
    return build_profile(factor_world(), seed=3, config=SMALL)


@functools.cache
def sp500_returns() -> pd.DataFrame:
    from sovereign.market.sources import load_sample

    panel = load_sample("sp500")
    close = pd.DataFrame(panel.close, index=panel.timestamps, columns=list(panel.symbols))
    return close.pct_change().iloc[1:]


@functools.cache
def sp500_profile() -> FragilityProfile:
    return build_profile(sp500_returns(), seed=11)


# ------------------------------------------------------------------------------- golden numbers


def test_factor_model_loss_matches_hand_computation_in_a_two_factor_world() -> None:
    """r = b_m m + b_2 g + e with m the equal-weight market, g orthogonal to it, e orthogonal to
    both with rows summing to zero and covariance s^2 (I - J/n). The fit must recover the betas
    (b_m, b_2/|b_2|) and idiosyncratic variance (T-1)/(T-3) s^2 (1 - 1/n - v_i^2); the crisis
    loss is the worst 10-day sum of b_m M + b_2 G, plus the stressed idiosyncratic term."""
    rng = np.random.default_rng(7)
    n, t_fit, t_crisis, s = 6, 300, 16, 0.004
    b_m = np.array([0.6, 0.8, 1.0, 1.1, 1.2, 1.3])  # mean 1
    b_2 = np.array([1.0, -1.0, 0.5, -0.5, 2.0, -2.0])  # mean 0
    m = rng.normal(0, 0.01, t_fit)
    m -= m.mean()
    basis = np.column_stack([np.ones(t_fit), m, rng.normal(size=(t_fit, n + 1))])
    q, _ = np.linalg.qr(basis)
    g = q[:, 2] * 0.008 * math.sqrt(t_fit - 1)
    u, _ = np.linalg.qr(np.column_stack([np.ones(n), rng.normal(size=(n, n - 1))]))
    e = s * math.sqrt(t_fit - 1) * q[:, 3 : 3 + n - 1] @ u[:, 1:].T  # rows sum to 0
    fit_rows = np.outer(m, b_m) + np.outer(g, b_2) + e
    big_m = np.array(
        [-0.03, 0.01, -0.05, -0.02, 0.04, -0.06, -0.01, 0.02, -0.04, -0.03] + [0.01] * 6
    )
    big_g = np.array([0.01, -0.02, 0.03, 0.00, -0.01, 0.02, 0.01, -0.03, 0.02, 0.01] + [-0.02] * 6)
    crisis_rows = np.outer(big_m, b_m) + np.outer(big_g, b_2)
    index = pd.bdate_range("2015-01-05", periods=t_crisis + t_fit, tz="UTC")
    frame = pd.DataFrame(np.vstack([crisis_rows, fit_rows]), index=index)
    scenario = window_scenario("crisis", "2015-01-02", str(index[t_crisis - 1].date()))
    config = FragilityConfig(fit_window_days=t_fit, n_pca_factors=1, scenarios=(scenario,))
    w = np.array([0.3, -0.1, 0.25, 0.2, -0.15, 0.4])
    report = assess(w, frame, seed=0, config=config)

    v = b_2 / np.linalg.norm(b_2)
    idio_var = (t_fit - 1) / (t_fit - 3) * s**2 * (1 - 1 / n - v**2)
    es99 = integrate.quad(norm.ppf, 0.99, 1.0)[0] / 0.01
    sums = [
        w @ b_m * big_m[i : i + 10].sum() + w @ b_2 * big_g[i : i + 10].sum()
        for i in range(t_crisis - 9)
    ]
    expected = -min(sums) + 2.0 * es99 * math.sqrt(10) * math.sqrt(np.sum(w**2 * idio_var))
    assert report.loss("crisis", FACTOR) == pytest.approx(expected, rel=1e-9)
    assert report.results[0].rows == t_crisis


def test_bootstrap_of_a_constant_window_is_exactly_the_compounded_loss() -> None:
    world = factor_world("2012-01-02", "2013-06-28", n=3)
    crisis = world.loc["2012-03-01":"2012-03-20"].index  # 14 rows
    world.loc[crisis] = np.array([0.01, -0.02, -0.03])
    scenario = window_scenario("flat", "2012-02-29", "2012-03-20")
    config = FragilityConfig(n_paths=500, fit_window_days=300, scenarios=(scenario,))
    w = np.array([0.5, 0.3, -0.4])
    report = assess(w, world, seed=5, config=config)
    expected = -(w @ ((1 + np.array([0.01, -0.02, -0.03])) ** 10 - 1))
    assert report.loss("flat", BOOT) == pytest.approx(expected, rel=1e-12)


def test_bootstrap_block_of_the_whole_window_is_the_window() -> None:
    window = np.random.default_rng(1).normal(0, 0.02, (10, 3))
    paths = bootstrap_paths(window, horizon=10, block=10, n_paths=4, rng=np.random.default_rng(0))
    np.testing.assert_allclose(paths, np.tile(np.prod(1 + window, axis=0) - 1, (4, 1)))


def test_normal_expected_shortfall_multiplier_matches_integration() -> None:
    for alpha in (0.95, 0.99, 0.975):
        reference = integrate.quad(norm.ppf, alpha, 1.0)[0] / (1 - alpha)
        assert normal_es_multiplier(alpha) == pytest.approx(reference, rel=1e-8)


def test_stressed_correlation_window_scales_vol_exactly_and_lifts_correlation() -> None:
    returns = factor_world().to_numpy()
    stressed = stressed_correlation_window(returns, vol_multiplier=3.0, correlation=0.9)
    np.testing.assert_allclose(stressed.std(axis=0, ddof=1), 3 * returns.std(axis=0, ddof=1))
    corr = np.corrcoef(stressed, rowvar=False)[np.triu_indices(returns.shape[1], 1)]
    assert corr.min() > 0.85
    assert corr.mean() == pytest.approx(0.9, abs=0.03)


def test_fill_with_market_uses_the_days_average_and_drops_empty_rows() -> None:
    returns = np.array([[0.01, np.nan, 0.03], [np.nan, np.nan, np.nan], [0.02, -0.02, np.nan]])
    filled, kept, share = fill_with_market(returns)
    np.testing.assert_allclose(filled, [[0.01, 0.02, 0.03], [0.02, -0.02, 0.0]])
    assert kept.tolist() == [True, False, True]
    assert share == pytest.approx(2 / 6)


# ----------------------------------------------------------------------------------- the rules


def test_worse_model_is_the_answer_and_is_recorded() -> None:
    report = sp500_profile().evaluate(np.full(20, 0.05))
    covered = [r for r in report.results if r.covered]
    worst = max(covered, key=lambda r: r.loss or 0.0)
    assert report.worst_loss == worst.loss
    assert (report.binding_model, report.binding_scenario) == (worst.model, worst.scenario)
    for name in {r.scenario for r in covered}:
        both = [r.loss for r in covered if r.scenario == name]
        assert report.scenario_loss(name) == max(both)


def test_market_neutral_book_under_a_gap_is_bound_by_the_factor_model() -> None:
    """Asset space (every asset -20%) sees no loss on a zero-net book; the betas do."""
    config = FragilityConfig(n_paths=200, fit_window_days=250, scenarios=(gap("gap", -0.2),))
    w = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])  # short the low betas, long the high betas
    report = assess(w, factor_world(), seed=0, config=config)
    assert report.loss("gap", BOOT) == pytest.approx(0.0, abs=1e-15)
    assert report.loss("gap", FACTOR) > 0.02
    assert report.binding_model is FACTOR
    assert report.worst_loss == report.loss("gap", FACTOR)


def test_losses_are_linear_in_scale_and_zero_for_an_empty_book() -> None:
    profile = small_profile()
    w = np.array([0.2, -0.1, 0.3, 0.05, -0.2])
    base, scaled = profile.evaluate(w), profile.evaluate(2.5 * w)
    for a, b in zip(base.results, scaled.results, strict=True):
        assert (a.loss is None) == (b.loss is None)
        if a.loss is not None:
            assert b.loss == pytest.approx(2.5 * a.loss, rel=1e-9, abs=1e-15)
    empty = profile.evaluate(np.zeros(5))
    assert empty.worst_loss == 0.0
    assert all(r.loss == 0.0 for r in empty.results if r.covered)


@settings(max_examples=40, deadline=None)
@given(
    w=st.lists(st.floats(-1, 1, allow_nan=False), min_size=5, max_size=5),
    budget=st.floats(0.0, 0.5),
    extra=st.floats(0.0, 0.5),
)
def test_exposure_multiplier_is_bounded_monotone_and_keeps_the_loss_in_budget(
    w: list[float], budget: float, extra: float
) -> None:
    profile = small_profile()
    weights = np.array(w)
    report = profile.evaluate(weights)
    scale = exposure_multiplier(report, budget)
    assert 0.0 <= scale <= 1.0
    assert exposure_multiplier(report, budget + extra) >= scale
    assert profile.evaluate(scale * weights).worst_loss <= budget + 1e-12


def test_exposure_multiplier_edges() -> None:
    report = small_profile().evaluate(np.full(5, 0.2))
    assert exposure_multiplier(report, 0.0) == 0.0
    assert exposure_multiplier(report, -0.01) == 0.0
    assert exposure_multiplier(report, 10.0) == 1.0
    assert exposure_multiplier(small_profile().evaluate(np.zeros(5)), 0.05) == 1.0
    assert exposure_multiplier(report, report.worst_loss / 4) == pytest.approx(0.25)
    with pytest.raises(EngineError):
        exposure_multiplier(report, float("nan"))


@settings(max_examples=25, deadline=None)
@given(w=st.lists(st.floats(-2, 2, allow_nan=False), min_size=5, max_size=5))
def test_stacked_evaluation_equals_kernel_by_kernel(w: list[float]) -> None:
    profile = small_profile()
    kernels = [p.kernel for p in profile.prepared if p.kernel is not None]
    weights = np.array(w)
    stacked = KernelStack.of(kernels, 5).losses(weights)
    np.testing.assert_allclose(stacked, [k.loss(weights) for k in kernels], atol=1e-14)


# --------------------------------------------------------------------------- degenerate input


def test_window_not_in_the_data_is_reported_uncovered_not_zero() -> None:
    report = small_profile().evaluate(np.full(5, 0.2))
    assert "covid_2020" in report.uncovered
    assert "dotcom_2000_2002" in report.uncovered
    for r in report.results:
        if r.scenario == "covid_2020":
            assert (r.covered, r.loss, r.rows) == (False, None, 0)
            assert "need 10" in r.note
    assert report.scenario_loss("covid_2020") is None
    assert report.scenario_loss("gfc_2007_2009") is not None


def test_nan_column_is_a_market_proxy_with_the_largest_idiosyncratic_risk() -> None:
    world = factor_world()
    world["S2"] = np.nan
    profile = build_profile(world, seed=3, config=SMALL)
    assert profile.proxied == ("S2",)
    gfc = [p for p in profile.prepared if p.scenario.name == "gfc_2007_2009"]
    assert gfc[0].filled_fraction == pytest.approx(0.2)
    report = profile.evaluate(np.array([0.0, 0.0, 1.0, 0.0, 0.0]))
    assert report.worst_loss > 0.05
    assert all(np.isfinite(r.loss) for r in report.results if r.loss is not None)


def test_one_asset_works() -> None:
    world = factor_world()[["S0"]]
    report = assess(np.array([1.0]), world, seed=1, config=SMALL)
    assert report.loss("equity_gap_down", FACTOR) == pytest.approx(0.2, rel=1e-9)
    assert report.scenario_loss("gfc_2007_2009") > 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.iloc[:40], "need 60"),
        (lambda f: f * np.nan, "need 60"),
        (lambda f: f * 0.0, "no variance"),
        (lambda f: f.replace(f.iloc[5, 1], np.inf), "infinite"),
        (lambda f: f.replace(f.iloc[5, 1], -1.5), "below -100%"),
        (lambda f: f.tz_convert("America/New_York"), "UTC"),
        (lambda f: f.iloc[::-1], "increasing"),
    ],
)
def test_degenerate_data_raises_engine_error(mutate, message: str) -> None:
    with pytest.raises(EngineError, match=message):
        build_profile(mutate(factor_world()), seed=0, config=SMALL)


def test_bad_arguments_raise() -> None:
    world = factor_world()
    with pytest.raises(EngineError, match="timestamps"):
        build_profile(world.to_numpy(), seed=0, config=SMALL)
    with pytest.raises(EngineError, match="timezone"):
        build_profile(world, seed=0, config=SMALL, as_of=datetime(2009, 1, 1))  # noqa: DTZ001
    with pytest.raises(EngineError, match="weights"):
        small_profile().evaluate(np.ones(4))
    with pytest.raises(EngineError, match="weights"):
        small_profile().evaluate(np.array([0.1, np.nan, 0, 0, 0]))
    with pytest.raises(ConfigError):
        FragilityConfig(confidence=1.0)
    with pytest.raises(ConfigError):
        FragilityConfig(scenarios=(gap("a", -0.1), gap("a", -0.2)))
    with pytest.raises(ConfigError):
        Scenario(name="x", kind=ScenarioKind.SYNTHETIC, direction=ShockDirection.UP, description="")


def test_ndarray_input_equals_dataframe_input() -> None:
    world = factor_world()
    w = np.array([0.2, 0.2, -0.1, 0.3, 0.1])
    by_frame = assess(w, world, seed=4, config=SMALL)
    by_array = assess(w, world.to_numpy(), world.index, seed=4, config=SMALL)
    assert [r.loss for r in by_frame.results] == [r.loss for r in by_array.results]


# ------------------------------------------------------------------ determinism, no look-ahead


def test_same_seed_same_report_other_seed_other_bootstrap() -> None:
    world = factor_world()
    w = np.full(5, 0.2)
    a = assess(w, world, seed=9, config=SMALL)
    b = assess(w, world, seed=9, config=SMALL)
    c = assess(w, world, seed=10, config=SMALL)
    assert a == b
    assert a.loss("gfc_2007_2009", BOOT) != c.loss("gfc_2007_2009", BOOT)
    assert a.loss("gfc_2007_2009", FACTOR) == c.loss("gfc_2007_2009", FACTOR)


def test_only_data_before_as_of_is_used() -> None:
    world = factor_world()
    as_of = utc("2008-11-03")
    w = np.array([0.3, 0.1, 0.2, -0.1, 0.4])
    report = assess(w, world, seed=2, config=SMALL, as_of=as_of)
    future = world.copy()
    future.loc[future.index >= as_of] *= 5.0
    assert assess(w, future, seed=2, config=SMALL, as_of=as_of).results == report.results
    truncated = assess(w, world.loc[world.index < as_of], seed=2, config=SMALL)
    assert truncated.results == report.results
    gfc = [r for r in report.results if r.scenario == "gfc_2007_2009"]
    assert gfc[0].rows == int(((world.index > utc("2007-10-09")) & (world.index < as_of)).sum())
    assert "gfc_rebound_2009" in report.uncovered


# ------------------------------------------------------------------------ bundled real data


def test_sp500_equal_weight_long_book_loses_over_ten_percent_in_2008() -> None:
    report = sp500_profile().evaluate(np.full(20, 0.05))
    assert report.loss("gfc_2007_2009", BOOT) > 0.10
    assert report.loss("gfc_2007_2009", FACTOR) > 0.10
    assert report.uncovered == ()
    assert report.worst_loss >= report.scenario_loss("gfc_2007_2009")


def test_sp500_short_book_loses_in_every_up_shock() -> None:
    report = sp500_profile().evaluate(np.full(20, -0.05))
    up = [s.name for s in DEFAULT_SCENARIOS if s.direction is ShockDirection.UP]
    assert len(up) >= 4
    for name in up:
        assert report.loss(name, BOOT) > 0, name
        assert report.loss(name, FACTOR) > 0, name
