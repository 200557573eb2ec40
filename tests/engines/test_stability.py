"""Stability engine: golden numbers (Corwin-Schultz, absorption ratio, GARCH vs arch), the
conservative aggregate, degenerate inputs, causality, live == series, and real-data sanity."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from arch import arch_model
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign.engines.stability import (
    COMPONENT_ORDER,
    AlertCode,
    Component,
    ContagionReading,
    LiquidityReading,
    StabilityConfig,
    StabilityEngine,
    StabilityLevel,
    StabilityPath,
    StabilityReading,
    VolatilityReading,
    aggregate,
    stability_bucket,
    stability_series,
)
from sovereign.engines.stability_components import (
    GarchFit,
    absorption_ratio,
    corwin_schultz,
    ewma_fit,
    fit_garch,
    forecast_segment,
    garch_filter,
    n_eigenvectors,
    parkinson_range,
    rolling_contagion,
    trailing_rank,
    walk_forward_garch,
)
from sovereign.errors import EngineError
from sovereign.market.sources import load_sample

#: Small windows so that a few hundred bars exercise every component (and arch fits are few).
SMALL = StabilityConfig(
    volume_window=10,
    spread_window=5,
    spread_baseline=40,
    vol_window=10,
    rank_window=50,
    rank_min=20,
    garch_window=150,
    garch_min=100,
    refit_every=40,
    corr_window=20,
)


def ohlcv(n: int, m: int, *, seed: int = 7) -> tuple[np.ndarray, ...]:
    """Correlated GBM closes with a vol burst in the last third; highs/lows around them."""
    rng = np.random.default_rng(seed)
    sigma = np.where(np.arange(n) > 2 * n // 3, 0.03, 0.01)[:, None]
    shocks = 0.6 * rng.normal(size=(n, 1)) + 0.8 * rng.normal(size=(n, m))
    close = 100.0 * np.exp(np.cumsum(sigma * shocks, axis=0))
    wiggle = np.abs(rng.normal(0.0, 0.005, size=(n, m)))
    high = close * np.exp(wiggle + 0.002)
    low = close * np.exp(-wiggle - 0.002)
    volume = rng.lognormal(13.0, 0.3, size=(n, m))
    return close, volume, high, low


def market_pct(close: np.ndarray) -> np.ndarray:
    r = np.diff(np.log(close), axis=0).mean(axis=1) * 100.0
    return np.concatenate([[np.nan], r])


@pytest.fixture(scope="module")
def sp500_pct() -> np.ndarray:
    return market_pct(load_sample("sp500").close)


# ------------------------------------------------------------------------------ Corwin-Schultz


def test_corwin_schultz_hand_computed() -> None:
    # beta = ln(105/95)^2 + ln(104/96)^2 = 0.0100167 + 0.0064068 = 0.0164235
    # gamma = ln(105/95)^2 = 0.0100167 (two-bar high 105, low 95)
    # alpha = (sqrt(2 beta) - sqrt(beta)) / (3 - 2 sqrt 2) - sqrt(gamma / (3 - 2 sqrt 2))
    #       = (0.181238 - 0.128154) / 0.171573 - sqrt(0.0583818) = 0.309397 - 0.241623
    # S = 2 (e^alpha - 1) / (1 + e^alpha) = 0.0677432
    high = np.array([[105.0], [104.0]])
    low = np.array([[95.0], [96.0]])
    out = corwin_schultz(high, low)
    assert out[1, 0] == pytest.approx(0.0677432, rel=1e-5)
    # row 0 has no previous bar: the Parkinson range ln(H/L) / sqrt(4 ln 2)
    assert out[0, 0] == pytest.approx(math.log(105 / 95) / (2 * math.sqrt(math.log(2))))
    assert parkinson_range(high, low)[0, 0] == out[0, 0]


def test_corwin_schultz_gap_adjustment_and_floor() -> None:
    # bar 1 trades wholly 3 above the previous close (low 99 > close 96): shifted down by the
    # gap it is exactly the pair of the golden example above
    high = np.array([[105.0], [107.0]])
    low = np.array([[95.0], [99.0]])
    close = np.array([[96.0], [100.0]])
    gapped = corwin_schultz(high, low, close)
    assert gapped[1, 0] == pytest.approx(0.0677432, rel=1e-5)
    assert corwin_schultz(high, low)[1, 0] != pytest.approx(gapped[1, 0])  # without the fix
    # a two-bar range much wider than each bar's (a trend): negative estimate -> 0
    trend = corwin_schultz(np.array([[101.0], [111.0]]), np.array([[100.0], [110.0]]))
    assert trend[1, 0] == 0.0
    # NaN previous bar -> Parkinson; NaN own bar -> NaN
    holes = corwin_schultz(
        np.array([[np.nan], [101.0], [np.nan]]), np.array([[99.0], [99.0], [99.0]])
    )
    assert holes[1, 0] == pytest.approx(math.log(101 / 99) / (2 * math.sqrt(math.log(2))))
    assert np.isnan(holes[[0, 2], 0]).all()


# --------------------------------------------------------------------------- absorption ratio


def test_absorption_ratio_equicorrelation_closed_form() -> None:
    # equicorrelation rho over N assets: eigenvalues 1 + (N-1) rho once, 1 - rho N-1 times
    n, rho = 10, 0.5
    corr = np.full((n, n), rho) + (1 - rho) * np.eye(n)
    k = n_eigenvectors(n)
    assert k == 2
    assert absorption_ratio(corr) == pytest.approx((1 + (n - 1) * rho + (k - 1) * (1 - rho)) / n)
    assert absorption_ratio(np.eye(n)) == pytest.approx(k / n)  # no co-movement: the floor


def test_absorption_ratio_matches_numpy_eigen_on_a_covariance() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(20, 20))
    cov = a @ a.T
    eig = np.sort(np.linalg.eigvals(cov).real)[::-1]
    assert absorption_ratio(cov) == pytest.approx(eig[:4].sum() / eig.sum(), rel=1e-12)
    assert [n_eigenvectors(m) for m in (2, 3, 7, 8, 20)] == [1, 1, 1, 2, 4]


def test_absorption_ratio_rejects_degenerate_matrices() -> None:
    for bad in (np.ones((1, 1)), np.zeros((3, 3)), np.full((2, 2), np.nan), np.ones((2, 3))):
        with pytest.raises(EngineError):
            absorption_ratio(bad)


def test_rolling_contagion_matches_numpy_per_window() -> None:
    rng = np.random.default_rng(11)
    x = 0.01 * (0.7 * rng.normal(size=(120, 1)) + rng.normal(size=(120, 6)))
    x[50, 2] = np.nan  # asset 2 drops out of every window holding bar 50
    x[:, 5] = np.where(np.arange(120) >= 90, 0.0, x[:, 5])  # asset 5 goes flat
    out = rolling_contagion(x, 20, chunk_cells=20 * 36)  # several chunks
    for t in (19, 49, 60, 75, 119):
        win = x[t - 19 : t + 1]
        keep = [j for j in range(6) if np.isfinite(win[:, j]).all() and win[:, j].std() > 0]
        corr = np.corrcoef(win[:, keep].T)
        k = len(keep)
        assert out.n_assets[t] == k
        assert out.mean_correlation[t] == pytest.approx(corr[~np.eye(k, dtype=bool)].mean())
        top = np.sort(np.linalg.eigvalsh(corr))[::-1][: n_eigenvectors(k)]
        assert out.absorption_ratio[t] == pytest.approx(top.sum() / k)
    assert out.n_assets[[60, 119]].tolist() == [5, 5]  # asset 2 missing, then asset 5 flat
    assert np.isnan(out.mean_correlation[:19]).all()
    single = rolling_contagion(x[:, :1], 20)
    assert np.isnan(single.absorption_ratio).all()


# ------------------------------------------------------------------------------------- GARCH


def test_garch_filter_matches_arch_conditional_volatility(sp500_pct: np.ndarray) -> None:
    r = sp500_pct[1:1001]
    res = arch_model(r, mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fit(disp="off")
    omega, alpha, beta = res.params.to_numpy()
    fit = GarchFit(omega=omega, alpha=alpha, beta=beta, fallback=False, n_obs=1000)
    path = garch_filter(fit, r)
    np.testing.assert_allclose(np.sqrt(path[:-1]), res.conditional_volatility, rtol=1e-10)
    # the element after the last return is arch's own one-step forecast
    forecast = res.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0]
    assert path[-1] == pytest.approx(forecast, rel=1e-10)
    # fit_garch is the same arch fit (from fixed starting values instead of arch's grid)
    ours = fit_garch(r)
    assert not ours.fallback
    assert (ours.omega, ours.alpha, ours.beta) == pytest.approx((omega, alpha, beta), rel=1e-3)
    assert ours.log_likelihood == pytest.approx(res.loglikelihood, abs=1e-4)


def test_walk_forward_forecast_is_arch_fixed_params_forecast(sp500_pct: np.ndarray) -> None:
    r = sp500_pct[:700]
    wf = walk_forward_garch(r, window=300, min_obs=250, refit_every=100)
    assert wf.refit_bars == (250, 350, 450, 550, 650)
    k, t = 2, 512  # bar 512 is forecast by the fit made at bar 450 on rows 151..450
    fit = wf.fits[k]
    start = wf.refit_bars[k] - 300 + 1
    fixed = arch_model(r[start : t + 1], mean="Zero", vol="GARCH", rescale=False).fix(
        [fit.omega, fit.alpha, fit.beta]
    )
    expected = fixed.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0]
    assert wf.variance[t] == pytest.approx(expected, rel=1e-10)
    assert np.isnan(wf.variance[:250]).all() and np.isfinite(wf.variance[250:]).all()


def test_garch_fallbacks_are_recorded_and_ewma_is_riskmetrics() -> None:
    short = fit_garch(np.ones(50))
    assert short.fallback and "50 returns" in short.reason
    flat = fit_garch(np.zeros(400))
    assert flat.fallback and flat.reason == "constant returns"
    # returns of 1e-9 percent: arch's optimiser stops without converging (exit mode 4)
    stuck = fit_garch(np.random.default_rng(0).normal(0.0, 1e-9, 300))
    assert stuck.fallback and stuck.reason.startswith("not converged")
    assert (stuck.omega, stuck.alpha, stuck.beta) == (0.0, pytest.approx(0.06), 0.94)
    r = np.random.default_rng(1).normal(size=30)
    f, used = forecast_segment(ewma_fit(0.94), r)
    s2 = np.sum(0.94 ** np.arange(30) * r**2) / np.sum(0.94 ** np.arange(30))  # backcast
    for x in r:
        s2 = 0.94 * s2 + 0.06 * x * x
    assert used.all()
    assert f[-1] == pytest.approx(s2)
    # a NaN return is a missing bar: the forecast does not move
    gap = garch_filter(ewma_fit(), np.array([1.0, np.nan, 2.0]))
    assert gap[2] == gap[1]


def test_trailing_rank_counts_strictly_below() -> None:
    hist = np.array([1.0, 2.0, 2.0, np.nan, 3.0, 0.0])
    out = trailing_rank(np.full(6, 2.0), hist, 4, min_count=2)
    # bar 5 sees hist[1..4] = 2, 2, NaN, 3: none strictly below 2
    assert np.isnan(out[:2]).all()
    assert out[2] == pytest.approx(0.5)  # {1, 2}
    assert out[5] == 0.0


# ----------------------------------------------------------------------------------- aggregate


def liq(score: float | None) -> LiquidityReading:
    return LiquidityReading(score=score, reason="" if score is not None else "closes only")


def vol(score: float | None) -> VolatilityReading:
    return VolatilityReading(score=score)


def con(score: float | None) -> ContagionReading:
    return ContagionReading(score=score)


def test_aggregate_rule_and_levels() -> None:
    reading = aggregate([liq(0.9), vol(0.1), con(0.8)])
    # w = 0.5: 0.5 * min + 0.5 * mean = 0.05 + 0.3
    assert reading.score == pytest.approx(0.35)
    assert reading.level is StabilityLevel.FRAGILE  # the mean alone (0.6) would be STABLE
    assert aggregate([liq(None), vol(0.5), con(0.7)]).score == pytest.approx(0.55)  # 2 count
    strict = StabilityConfig(min_weight=1.0)
    assert aggregate([vol(0.5), con(0.9)], config=strict).score == 0.5
    cfg = StabilityConfig()
    assert [cfg.level(s) for s in (0.0, 0.199, 0.2, 0.399, 0.4, 1.0)] == [
        StabilityLevel.UNSTABLE,
        StabilityLevel.UNSTABLE,
        StabilityLevel.FRAGILE,
        StabilityLevel.FRAGILE,
        StabilityLevel.STABLE,
        StabilityLevel.STABLE,
    ]
    assert [stability_bucket(s) for s in (0.1, 0.3, 0.9)] == ["unstable", "fragile", "stable"]
    for bad in (math.nan, -0.1, 1.5):
        with pytest.raises(EngineError):
            stability_bucket(bad)


def test_aggregate_fails_closed_without_components() -> None:
    reading = aggregate([liq(None), vol(None), con(None)])
    assert reading.score == 0.0
    assert reading.level is StabilityLevel.UNSTABLE
    assert [a.code for a in reading.alerts] == [AlertCode.NO_COMPONENT]
    assert aggregate([]).level is StabilityLevel.UNSTABLE
    with pytest.raises(ValueError, match="duplicate"):
        aggregate([vol(0.5), vol(0.6)])
    with pytest.raises(EngineError):
        VolatilityReading(score=1.2)


def test_aggregate_alerts_on_fast_drops_only() -> None:
    before = aggregate([liq(0.9), vol(0.9), con(0.8)])
    small = aggregate([liq(0.8), vol(0.8), con(0.7)], before)
    assert small.alerts == ()
    after = aggregate([liq(0.9), vol(0.2), con(0.8)], before)
    codes = {(a.code, a.component) for a in after.alerts}
    assert codes == {
        (AlertCode.SCORE_DROP, None),
        (AlertCode.COMPONENT_DROP, Component.VOLATILITY),
    }
    drop = next(a for a in after.alerts if a.component is Component.VOLATILITY)
    assert drop.drop == pytest.approx(0.7)
    assert "volatility fell from 0.90 to 0.20" in drop.message
    # a component that was unavailable before cannot have dropped
    assert aggregate([liq(0.1)], aggregate([liq(None), vol(0.9)])).alerts[0].code is (
        AlertCode.SCORE_DROP
    )


scores = st.one_of(st.none(), st.floats(0.0, 1.0))


@settings(max_examples=200, deadline=None)
@given(a=scores, b=scores, c=scores, w=st.floats(0.0, 1.0))
def test_aggregate_is_bounded_and_conservative(
    a: float | None, b: float | None, c: float | None, w: float
) -> None:
    reading = aggregate([liq(a), vol(b), con(c)], config=StabilityConfig(min_weight=w))
    got = [s for s in (a, b, c) if s is not None]
    assert 0.0 <= reading.score <= 1.0
    if got:
        mean = sum(got) / len(got)
        assert min(got) - 1e-12 <= reading.score <= mean + 1e-12  # <= mean <= max
    else:
        assert reading.level is StabilityLevel.UNSTABLE


# -------------------------------------------------------------------------------------- series


@pytest.fixture(scope="module")
def panel() -> tuple[np.ndarray, ...]:
    return ohlcv(300, 4)


@pytest.fixture(scope="module")
def small_path(panel: tuple[np.ndarray, ...]) -> StabilityPath:
    close, volume, high, low = panel
    return stability_series(close, volume, high, low, config=SMALL)


def test_series_components_and_reading_agree(
    small_path: StabilityPath, panel: tuple[np.ndarray, ...]
) -> None:
    path = small_path
    n = panel[0].shape[0]
    assert path.score.shape == (n,) and path.components.shape == (n, 3)
    later = path.components[150:]
    assert np.isfinite(later).all()  # every component available once warmed up
    assert ((later >= 0) & (later <= 1)).all()
    assert path.refit_bars == (100, 140, 180, 220, 260)
    for t in (0, 30, 120, 199, 250, n - 1):
        reading = path.reading(t)
        assert reading.score == pytest.approx(path.score[t], abs=1e-15)
        assert reading.level is path.level[t]
        assert bool(reading.alerts) == path.alert[t]
        assert [c.component for c in reading.components] == list(COMPONENT_ORDER)
    warm = path.reading(0)
    assert warm.level is StabilityLevel.UNSTABLE
    assert warm.alerts[0].code is AlertCode.NO_COMPONENT
    assert path.buckets[0] == "unstable"
    # the vol burst at bar 200 reads less stable than the calm before it
    assert path.score[200:225].mean() < 0.6 * path.score[140:170].mean()
    assert path.reading(-1).score == path.reading(n - 1).score


def test_series_is_causal(small_path: StabilityPath, panel: tuple[np.ndarray, ...]) -> None:
    close, volume, high, low = panel
    for k in (130, 221):
        short = stability_series(close[:k], volume[:k], high[:k], low[:k], config=SMALL)
        np.testing.assert_array_equal(short.score, small_path.score[:k])
        np.testing.assert_array_equal(short.components, small_path.components[:k])
        np.testing.assert_array_equal(short.alert, small_path.alert[:k])


def test_live_engine_reproduces_the_series(
    small_path: StabilityPath, panel: tuple[np.ndarray, ...]
) -> None:
    close, volume, high, low = panel
    engine = StabilityEngine(SMALL)
    w = SMALL.live_window
    for t in range(close.shape[0]):
        s = max(0, t + 1 - w)
        reading = engine.update(
            close[s : t + 1], volume[s : t + 1], high[s : t + 1], low[s : t + 1]
        )
        expected = small_path.reading(t)
        assert reading.score == pytest.approx(expected.score, abs=1e-9), t
        assert [a.code for a in reading.alerts] == [a.code for a in expected.alerts], t
        for got, want in zip(reading.components, expected.components, strict=True):
            assert (got.score is None) == (want.score is None), (t, got)
    assert engine.fit is not None and engine.fit == small_path.fits[-1]


def test_closes_only_and_one_asset(panel: tuple[np.ndarray, ...]) -> None:
    close = panel[0]
    path = stability_series(close, config=SMALL)
    assert np.isnan(path.components[:, 0]).all()
    liquidity = path.reading(-1).component(Component.LIQUIDITY)
    assert liquidity is not None and not liquidity.available
    assert "closes only" in liquidity.reason
    # a closes-only BarPanel's filler (NaN volume, high = low = close) is no data, not a spread
    filler = stability_series(close, np.full(close.shape, np.nan), close, close, config=SMALL)
    np.testing.assert_array_equal(filler.score, path.score)
    assert "closes only" in filler.reading(-1).components[0].reason
    one = stability_series(close[:, 0], config=SMALL)
    assert np.isnan(one.components[:, 2]).all()
    contagion = one.reading(-1).component(Component.CONTAGION)
    assert contagion is not None and "needs >= 2 assets" in contagion.reason
    assert np.isfinite(one.components[150:, 1]).all()  # volatility still there
    live = StabilityEngine(SMALL).update(close[:, 0])  # one call: GARCH fitted on the spot
    assert [c.available for c in live.components] == [False, True, False]
    assert live.score == live.components[1].score  # the only component counts alone


def test_volatility_waits_for_its_rank_history(panel: tuple[np.ndarray, ...]) -> None:
    cfg = replace(SMALL, rank_window=150, rank_min=150)
    vol = stability_series(panel[0], config=cfg).components[:, 1]
    # realised vol from bar 10 (vol_window returns), 150 of them to rank against: bar 160,
    # although the GARCH forecast exists from bar 100
    assert np.flatnonzero(np.isfinite(vol))[0] == 160


def test_constant_prices_give_the_documented_result() -> None:
    close = np.full((200, 3), 50.0)
    high, low = close * 1.01, close * 0.99
    path = stability_series(close, np.full((200, 3), 1e6), high, low, config=SMALL)
    assert np.isfinite(path.score).all()
    later = path.reading(-1)
    volatility = later.component(Component.VOLATILITY)
    assert isinstance(volatility, VolatilityReading)
    assert volatility.score == 1.0 and volatility.garch_fallback
    assert volatility.realised_vol == 0.0 and volatility.forecast_vol == 0.0
    liquidity = later.component(Component.LIQUIDITY)
    assert isinstance(liquidity, LiquidityReading)
    assert liquidity.score == 1.0 and liquidity.spread_ratio == pytest.approx(1.0)
    assert liquidity.volume_ratio == 1.0
    assert not later.component(Component.CONTAGION).available  # type: ignore[union-attr]
    assert later.level is StabilityLevel.STABLE
    assert all(fit.fallback for fit in path.fits)


def test_nan_holes_stay_out_of_the_scores(panel: tuple[np.ndarray, ...]) -> None:
    close, volume, high, low = (a.copy() for a in panel)
    close[:60, 3] = np.nan  # an asset that lists late
    close[200, :] = np.nan  # a bar with no data at all
    volume[100:110, 1] = np.nan
    high[150, 0] = low[150, 0] = np.nan
    path = stability_series(close, volume, high, low, config=SMALL)
    assert np.isfinite(path.score).all()
    comps = path.components[np.isfinite(path.components)]
    assert ((comps >= 0) & (comps <= 1)).all()
    assert np.isfinite(path.components[230:]).all()  # recovers after the windows pass the gap


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"close": np.empty((0, 2))}, "shape"),
        ({"close": np.array([[1.0, np.inf]])}, "infinite"),
        ({"close": np.array([[1.0, -1.0]])}, "> 0"),
        ({"close": np.ones((3, 2)), "volume": np.ones((3, 1))}, "shape"),
        ({"close": np.ones((3, 2)), "volume": -np.ones((3, 2))}, ">= 0"),
        ({"close": np.ones((3, 2)), "high": np.ones((3, 2))}, "both"),
        ({"close": np.ones((3, 2)), "high": np.ones((3, 2)), "low": np.full((3, 2), 2.0)}, "below"),
    ],
)
def test_bad_input_raises_engine_error(kwargs: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(EngineError, match=message):
        stability_series(**kwargs)
    with pytest.raises(EngineError, match=message):
        StabilityEngine().update(**kwargs)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    m=st.integers(1, 3),
    holes=st.floats(0.0, 0.2),
    flat=st.booleans(),
)
def test_scores_stay_in_unit_interval(seed: int, m: int, holes: float, flat: bool) -> None:
    close, volume, high, low = ohlcv(160, m, seed=seed)
    rng = np.random.default_rng(seed)
    mask = rng.random(close.shape) < holes
    close[mask] = np.nan
    if flat:
        close[:, 0] = 10.0
        high[:, 0] = low[:, 0] = 10.0
    high, low = np.fmax(high, close), np.fmin(low, close)
    cfg = replace(SMALL, garch_min=60, garch_window=100)
    path = stability_series(close, volume, high, low, config=cfg)
    assert ((path.score >= 0) & (path.score <= 1)).all()
    comps = path.components[np.isfinite(path.components)]
    assert ((comps >= 0) & (comps <= 1)).all()
    got = np.where(np.isfinite(path.components), path.components, np.inf).min(axis=1)
    has = np.isfinite(path.components).any(axis=1)
    assert (path.score[has] >= got[has] - 1e-12).all()
    assert (path.score[~has] == 0).all()


# ------------------------------------------------------------------------------- real data


def test_crises_read_unstable_on_the_bundled_sp500() -> None:
    panel = load_sample("sp500")
    dates = panel.timestamps.tz_localize(None)
    cfg = StabilityConfig(refit_every=252)
    path = stability_series(panel.close, config=cfg)
    for day in ("2008-10-10", "2011-08-10", "2020-03-16"):
        assert path.level[dates.searchsorted(day)] is StabilityLevel.UNSTABLE, day
    # sanity mapping: the next 20 bars are more volatile after UNSTABLE readings than STABLE ones
    mret = np.nan_to_num(market_pct(panel.close))
    future = np.array([mret[t + 1 : t + 21].std() for t in range(len(mret) - 21)])
    level = path.level[: len(future)]
    start = 600  # past the warm-up
    unstable = future[start:][level[start:] == StabilityLevel.UNSTABLE].mean()
    stable = future[start:][level[start:] == StabilityLevel.STABLE].mean()
    assert unstable > 1.3 * stable


def test_indices_use_all_three_components() -> None:
    panel = load_sample("indices")
    dates = panel.timestamps.tz_localize(None)
    cut = dates.searchsorted("2009-01-01")
    path = stability_series(
        panel.close[:cut],
        panel.volume[:cut],
        panel.high[:cut],
        panel.low[:cut],
        config=StabilityConfig(refit_every=252),
    )
    reading: StabilityReading = path.reading(dates.searchsorted("2008-10-10"))
    assert all(c.available for c in reading.components)
    assert reading.level is StabilityLevel.UNSTABLE
    calm = path.reading(dates.searchsorted("2006-06-01") - 40)
    assert calm.score > reading.score
