"""Market stability: three independent components, a conservative aggregate, fast-change alerts.

Each component is a score in [0, 1] (1 = stable) with its raw measures; within a component the
worst sub-score counts.

* **liquidity** (per asset, then the mean over assets): today's volume over its trailing mean
  (``volume_window`` bars, today excluded; sub-score ``min(1, ratio)``, thin volume is less
  stable) and the Corwin-Schultz spread averaged over ``spread_window`` bars against its
  ``spread_baseline``-bar mean (sub-score 1 up to a ratio of 1, 0 at ``spread_ratio_max``; see
  :func:`~sovereign.engines.stability_components.corwin_schultz` for the Parkinson fallback).
  Closes-only data (no volume, no high/low): ``available=False``, never a made-up score.
* **volatility** (equal-weight market log return): realised vol over ``vol_window`` bars and a
  GARCH(1,1) one-step forecast (``arch``, percent returns, refitted every ``refit_every`` bars on
  the last ``garch_window`` returns; EWMA lambda 0.94 and ``garch_fallback=True`` if the fit
  fails or its forecast is not finite), both annualised. Sub-scores: ``1 - percentile`` of
  ``max(realised, forecast)`` among the previous ``rank_window`` realised vols, and
  ``forecast / realised`` (vols floored at ``vol_floor``; 1 up to a ratio of 1, 0 at
  ``vol_ratio_max``: rising vol is less stable).
* **contagion**: average pairwise correlation and absorption ratio over ``corr_window`` bars;
  score ``1 - max`` of their percentiles among their own previous ``rank_window`` values (as
  Kritzman et al. read the absorption ratio by its shift, not its level, which also keeps a
  naturally correlated universe such as two indices from reading as permanently unstable).
  Fewer than 2 assets with a full window: ``available=False``.

Aggregate (:func:`aggregate`): ``score = w * min + (1 - w) * mean`` over the available
components (``w = min_weight`` = 0.5), so it lies between their minimum and their mean and
sinks further below the mean the more they disagree. No component available: score 0,
UNSTABLE and a ``STABILITY_NO_COMPONENT`` alert (fail closed). Levels: UNSTABLE below
``unstable_below`` (0.2), FRAGILE below ``fragile_below`` (0.4), else STABLE. Alerts: the
aggregate or a component fell by more than ``alert_drop`` (0.25) since ``previous`` (the reading
``alert_lookback`` = 5 bars earlier, in the series and the live engine).

Calibration (bundled data, after a 600-bar warm-up): the S&P 500 sample (closes only) reads 44%
STABLE / 28% FRAGILE / 29% UNSTABLE, the indices (OHLCV) 56 / 30 / 14; the next 20 bars'
realised vol of the equal-weight market is 13% / 16% / 20% (indices 15 / 17 / 25%) after
STABLE / FRAGILE / UNSTABLE readings, and 2008-10, 2011-08 and 2020-03 read UNSTABLE.

Degenerate input, documented: constant prices give a volatility score of 1 (zero realised and
forecast vol rank at the calm end; ``garch_fallback=True``, nothing to fit), flat volume and
spread (liquidity 1), and no contagion (constant series have no correlation). Warm-up bars, before any component has its
history, are UNSTABLE with the no-component alert.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np

from sovereign.engines.guard import check_array, check_probability
from sovereign.engines.indicators import log_returns, rolling_volatility
from sovereign.engines.stability_components import (
    ContagionPath,
    GarchFit,
    PanelInputs,
    corwin_schultz,
    fit_garch,
    forecast_segment,
    n_eigenvectors,
    prepare_inputs,
    ramp,
    rolling_contagion,
    row_mean,
    trailing_mean,
    trailing_rank,
    walk_forward_garch,
)

__all__ = [
    "COMPONENT_ORDER",
    "DEFAULT_CONFIG",
    "AlertCode",
    "Component",
    "ComponentReading",
    "ContagionReading",
    "LiquidityReading",
    "StabilityAlert",
    "StabilityConfig",
    "StabilityEngine",
    "StabilityLevel",
    "StabilityMeasures",
    "StabilityPath",
    "StabilityReading",
    "VolatilityReading",
    "aggregate",
    "stability_bucket",
    "stability_series",
]


class Component(StrEnum):
    LIQUIDITY = "liquidity"
    VOLATILITY = "volatility"
    CONTAGION = "contagion"


#: Column order of every (n_bars, 3) component array.
COMPONENT_ORDER = (Component.LIQUIDITY, Component.VOLATILITY, Component.CONTAGION)


class StabilityLevel(StrEnum):
    STABLE = "stable"
    FRAGILE = "fragile"
    UNSTABLE = "unstable"


class AlertCode(StrEnum):
    SCORE_DROP = "STABILITY_SCORE_DROP"
    COMPONENT_DROP = "STABILITY_COMPONENT_DROP"
    NO_COMPONENT = "STABILITY_NO_COMPONENT"


@dataclass(frozen=True, kw_only=True, slots=True)
class StabilityConfig:
    """Windows in bars (defaults for daily bars); the rest as in the module docstring."""

    bars_per_year: int = 252
    volume_window: int = 20
    spread_window: int = 20
    spread_baseline: int = 252
    spread_ratio_max: float = 2.0
    vol_window: int = 21
    rank_window: int = 252
    rank_min: int = 63
    vol_ratio_max: float = 2.0
    vol_floor: float = 0.01  # annualised
    garch_window: int = 756
    garch_min: int = 252
    refit_every: int = 63
    ewma_lambda: float = 0.94
    corr_window: int = 63
    absorption_fraction: float = 0.2
    min_weight: float = 0.5
    fragile_below: float = 0.4
    unstable_below: float = 0.2
    alert_drop: float = 0.25
    alert_lookback: int = 5

    def __post_init__(self) -> None:
        sizes = (self.bars_per_year, self.volume_window, self.spread_window, self.spread_baseline)
        if min(sizes) < 1 or self.refit_every < 1 or self.alert_lookback < 1:
            raise ValueError("windows, refit_every and alert_lookback must be >= 1")
        if self.vol_window < 2 or self.corr_window < 3:
            raise ValueError("need vol_window >= 2 and corr_window >= 3")
        if not 1 <= self.rank_min <= self.rank_window:
            raise ValueError("need 1 <= rank_min <= rank_window")
        if not 10 <= self.garch_min <= self.garch_window:
            raise ValueError("need 10 <= garch_min <= garch_window")
        if min(self.spread_ratio_max, self.vol_ratio_max) <= 1.0 or self.vol_floor <= 0.0:
            raise ValueError("ratio maxima must be > 1 and vol_floor > 0")
        if not 0.0 < self.ewma_lambda < 1.0 or not 0.0 < self.absorption_fraction <= 0.5:
            raise ValueError("need 0 < ewma_lambda < 1 and 0 < absorption_fraction <= 0.5")
        if not 0.0 <= self.min_weight <= 1.0 or not 0.0 < self.alert_drop <= 1.0:
            raise ValueError("need 0 <= min_weight <= 1 and 0 < alert_drop <= 1")
        if not 0.0 < self.unstable_below <= self.fragile_below <= 1.0:
            raise ValueError("need 0 < unstable_below <= fragile_below <= 1")

    def level(self, score: float) -> StabilityLevel:
        """UNSTABLE below ``unstable_below``, FRAGILE below ``fragile_below``, else STABLE."""
        if score < self.unstable_below:
            return StabilityLevel.UNSTABLE
        return StabilityLevel.FRAGILE if score < self.fragile_below else StabilityLevel.STABLE

    @property
    def live_window(self) -> int:
        """Rows of history a live call needs to reproduce :func:`stability_series` exactly."""
        return 1 + max(
            self.garch_window + self.refit_every,
            self.rank_window + max(self.vol_window, self.corr_window) + 1,
            self.spread_baseline + 1,
            self.volume_window + 1,
        )


DEFAULT_CONFIG = StabilityConfig()


# ------------------------------------------------------------------------------------ readings


@dataclass(frozen=True, kw_only=True, slots=True)
class ComponentReading:
    """Base of the component readings: ``score`` in [0, 1], or None when the component is
    unavailable (``reason`` says why). Raw measures are None where they cannot be computed."""

    component: ClassVar[Component]
    score: float | None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.score is not None:
            check_probability(f"stability.{self.component}", self.score)

    @property
    def available(self) -> bool:
        return self.score is not None


@dataclass(frozen=True, kw_only=True, slots=True)
class LiquidityReading(ComponentReading):
    """``volume_ratio``: mean over assets of ``V_t / mean(V_{t-w..t-1})``. ``spread``: mean over
    assets of the ``spread_window``-bar mean spread, fraction of price. ``spread_ratio``: that
    over its ``spread_baseline``-bar mean. ``n_assets``: assets with a score."""

    component: ClassVar[Component] = Component.LIQUIDITY
    volume_ratio: float | None = None
    spread: float | None = None
    spread_ratio: float | None = None
    n_assets: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class VolatilityReading(ComponentReading):
    """Vols annualised (0.2 = 20%). ``vol_percentile``: share of the trailing realised vols below
    ``max(realised, forecast)``. ``vol_ratio``: forecast / realised (floored).
    ``garch_fallback``: the forecast is the EWMA stand-in's, not a GARCH fit's."""

    component: ClassVar[Component] = Component.VOLATILITY
    realised_vol: float | None = None
    forecast_vol: float | None = None
    vol_percentile: float | None = None
    vol_ratio: float | None = None
    garch_fallback: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class ContagionReading(ComponentReading):
    """``mean_correlation`` in [-1, 1]; ``absorption_ratio`` in [k/N, 1] with
    ``k = n_eigenvectors``, ``N = n_assets``; ``percentile``: the larger of their percentiles
    in their own trailing history."""

    component: ClassVar[Component] = Component.CONTAGION
    mean_correlation: float | None = None
    absorption_ratio: float | None = None
    percentile: float | None = None
    n_assets: int = 0
    n_eigenvectors: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class StabilityAlert:
    """A fast change: ``code``, the component (None for the aggregate), the drop, a sentence."""

    code: AlertCode
    component: Component | None
    drop: float | None
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class StabilityReading:
    """Stability at one bar: ``score`` in [0, 1], its ``level``, the component readings given
    to :func:`aggregate` (unavailable ones included) and the alerts."""

    score: float
    level: StabilityLevel
    components: tuple[ComponentReading, ...]
    alerts: tuple[StabilityAlert, ...] = ()

    def __post_init__(self) -> None:
        check_probability("stability.score", self.score)

    def component(self, name: Component) -> ComponentReading | None:
        """The reading of component ``name``, or None if the aggregate was not given one."""
        return next((c for c in self.components if c.component is name), None)

    @property
    def bucket(self) -> str:
        """``"stable"`` / ``"fragile"`` / ``"unstable"``."""
        return self.level.value


def aggregate(
    components: Sequence[ComponentReading],
    previous: StabilityReading | None = None,
    *,
    config: StabilityConfig = DEFAULT_CONFIG,
) -> StabilityReading:
    """Combine component readings (at most one per component) into a :class:`StabilityReading`
    by the rule in the module docstring; ``previous`` is the reading to compare for alerts."""
    names = [c.component for c in components]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate components: {names}")
    scores = [c.score for c in components if c.score is not None]
    alerts = []
    score = 0.0
    if scores:
        mean = sum(scores) / len(scores)
        score = min(max(config.min_weight * min(scores) + (1 - config.min_weight) * mean, 0), 1)
    else:
        msg = "no stability component is available: treated as unstable"
        alerts.append(
            StabilityAlert(code=AlertCode.NO_COMPONENT, component=None, drop=None, message=msg)
        )
    pairs: list[tuple[Component | None, float | None, float | None]] = []
    if previous is not None:
        pairs.append((None, previous.score, score))
        for comp in components:
            before = previous.component(comp.component)
            pairs.append((comp.component, None if before is None else before.score, comp.score))
    for name, was, now in pairs:
        if was is not None and now is not None and was - now > config.alert_drop:
            code = AlertCode.SCORE_DROP if name is None else AlertCode.COMPONENT_DROP
            msg = f"{name or 'stability'} fell from {was:.2f} to {now:.2f}"
            alerts.append(StabilityAlert(code=code, component=name, drop=was - now, message=msg))
    return StabilityReading(
        score=score, level=config.level(score), components=tuple(components), alerts=tuple(alerts)
    )


def stability_bucket(score: float, config: StabilityConfig = DEFAULT_CONFIG) -> str:
    """``"stable"`` / ``"fragile"`` / ``"unstable"`` for an aggregate score, for analytics slicing.
    A non-finite or out-of-range score raises EngineError rather than being put in a bucket."""
    return config.level(check_probability("stability.bucket", score)).value


# ------------------------------------------------------------------------------------ measures


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class StabilityMeasures:
    """Per-bar raw measures (units as in the component readings), read-only float arrays
    (n_bars,) with NaN where not available at that bar, unless noted.

    ``scores``: (n_bars, 3) in :data:`COMPONENT_ORDER`, NaN = component unavailable.
    ``liquidity_assets``/``contagion_assets``: int. ``garch_fallback``: bool.
    ``has_volume``/``has_range``: volume / high-low were given at all.
    """

    scores: np.ndarray
    volume_ratio: np.ndarray
    spread: np.ndarray
    spread_ratio: np.ndarray
    liquidity_assets: np.ndarray
    realised_vol: np.ndarray
    forecast_vol: np.ndarray
    vol_percentile: np.ndarray
    vol_ratio: np.ndarray
    garch_fallback: np.ndarray
    mean_correlation: np.ndarray
    absorption_ratio: np.ndarray
    contagion_percentile: np.ndarray
    contagion_assets: np.ndarray
    has_volume: bool
    has_range: bool

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                value.setflags(write=False)


def _liquidity(inp: PanelInputs, cfg: StabilityConfig) -> tuple[np.ndarray, ...]:
    """(score, volume_ratio, spread, spread_ratio, n_assets), each (n,)."""
    shape = inp.close.shape
    asset = np.full(shape, np.nan)  # per-asset score: the worse of the sub-scores it has
    v_ratio = spread = s_ratio = np.full(shape, np.nan)
    if inp.volume is not None:
        w = cfg.volume_window
        base = trailing_mean(inp.volume, w, min_count=math.ceil(w / 2), include_current=False)
        v_ratio = np.full(shape, np.nan)
        np.divide(inp.volume, base, out=v_ratio, where=base > 0.0)  # NaN compares False
        asset = np.fmin(asset, np.minimum(v_ratio, 1.0))
    if inp.high is not None and inp.low is not None:
        cs = corwin_schultz(inp.high, inp.low, inp.close)
        sw, sb = cfg.spread_window, cfg.spread_baseline
        spread = trailing_mean(cs, sw, min_count=math.ceil(sw / 2))
        base = trailing_mean(cs, sb, min_count=math.ceil(sb / 2))
        s_ratio = np.fmax(spread, 1e-6) / np.fmax(base, 1e-6)  # 0/0 spreads compare as equal
        s_ratio[np.isnan(spread) | np.isnan(base)] = np.nan
        asset = np.fmin(asset, ramp(s_ratio, cfg.spread_ratio_max))
    score, count = row_mean(asset)
    return score, row_mean(v_ratio)[0], row_mean(spread)[0], row_mean(s_ratio)[0], count


def _volatility(
    mret: np.ndarray, forecast_var: np.ndarray, cfg: StabilityConfig, first: int
) -> tuple[np.ndarray, ...]:
    """(score, realised, forecast, percentile, ratio), each (n,); vols annualised."""
    ann = math.sqrt(cfg.bars_per_year)
    realised = rolling_volatility(mret, cfg.vol_window) * ann
    forecast = np.sqrt(forecast_var) / 100.0 * ann
    level = np.fmax(realised, forecast)
    level[np.isnan(realised) | np.isnan(forecast)] = np.nan
    pct = trailing_rank(level, realised, cfg.rank_window, min_count=cfg.rank_min, first=first)
    ratio = np.fmax(forecast, cfg.vol_floor) / np.fmax(realised, cfg.vol_floor)
    ratio[np.isnan(level)] = np.nan
    return np.minimum(1.0 - pct, ramp(ratio, cfg.vol_ratio_max)), realised, forecast, pct, ratio


def _measure(
    inp: PanelInputs,
    cfg: StabilityConfig,
    rets: np.ndarray,
    garch: tuple[np.ndarray, np.ndarray],
    contagion: ContagionPath,
    first: int,
) -> StabilityMeasures:
    """All measures; the ranks only for rows >= ``first``.

    ``rets``: (n, m) log returns. ``garch``: (forecast variance (n,), EWMA flags (n,)).
    ``contagion``: :func:`rolling_contagion` of ``rets``, needed from ``first - rank_window``.
    """
    liq, v_ratio, spread, s_ratio, liq_n = _liquidity(inp, cfg)
    vol, realised, forecast, vol_pct, ratio = _volatility(row_mean(rets)[0], garch[0], cfg, first)
    cp = contagion
    ranks = [
        trailing_rank(x, x, cfg.rank_window, min_count=cfg.rank_min, first=first)
        for x in (cp.mean_correlation, cp.absorption_ratio)
    ]
    con_pct = np.fmax(*ranks)
    con_pct[np.isnan(ranks[0]) | np.isnan(ranks[1])] = np.nan
    scores = np.column_stack([liq, vol, 1.0 - con_pct])
    check_array("stability.scores", scores[np.isfinite(scores)], low=0.0, high=1.0)
    return StabilityMeasures(
        scores=scores,
        volume_ratio=v_ratio,
        spread=spread,
        spread_ratio=s_ratio,
        liquidity_assets=liq_n,
        realised_vol=realised,
        forecast_vol=forecast,
        vol_percentile=vol_pct,
        vol_ratio=ratio,
        garch_fallback=garch[1],
        mean_correlation=cp.mean_correlation,
        absorption_ratio=cp.absorption_ratio,
        contagion_percentile=con_pct,
        contagion_assets=cp.n_assets,
        has_volume=inp.volume is not None,
        has_range=inp.high is not None,
    )


def _opt(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _components_at(
    m: StabilityMeasures, t: int, cfg: StabilityConfig
) -> tuple[ComponentReading, ...]:
    """The three component readings at bar ``t``."""
    liq, vol, con = (_opt(float(s)) for s in m.scores[t])
    n_con = int(m.contagion_assets[t])
    wait = "not enough history yet at this bar"
    liq_why = wait if m.has_volume or m.has_range else "closes only: no volume, no high/low"
    con_why = wait if n_con >= 2 else f"needs >= 2 assets with full, non-flat windows, has {n_con}"
    return (
        LiquidityReading(
            score=liq,
            volume_ratio=_opt(m.volume_ratio[t]),
            spread=_opt(m.spread[t]),
            spread_ratio=_opt(m.spread_ratio[t]),
            n_assets=int(m.liquidity_assets[t]),
            reason="" if liq is not None else liq_why,
        ),
        VolatilityReading(
            score=vol,
            realised_vol=_opt(m.realised_vol[t]),
            forecast_vol=_opt(m.forecast_vol[t]),
            vol_percentile=_opt(m.vol_percentile[t]),
            vol_ratio=_opt(m.vol_ratio[t]),
            garch_fallback=bool(m.garch_fallback[t]),
            reason="" if vol is not None else wait,
        ),
        ContagionReading(
            score=con,
            mean_correlation=_opt(m.mean_correlation[t]),
            absorption_ratio=_opt(m.absorption_ratio[t]),
            percentile=_opt(m.contagion_percentile[t]),
            n_assets=n_con,
            n_eigenvectors=n_eigenvectors(n_con, cfg.absorption_fraction) if n_con >= 2 else 0,
            reason="" if con is not None else con_why,
        ),
    )


# -------------------------------------------------------------------------------------- series


def _aggregate_rows(scores: np.ndarray, cfg: StabilityConfig) -> np.ndarray:
    """Vectorised :func:`aggregate` score: (n, 3) component scores (NaN = unavailable) -> (n,)."""
    avail = np.isfinite(scores)
    count = avail.sum(axis=1)
    low = np.where(avail, scores, np.inf).min(axis=1)
    total = np.zeros(scores.shape[0])
    for j in range(scores.shape[1]):  # left to right, like the scalar sum()
        total = total + np.where(avail[:, j], scores[:, j], 0.0)
    mixed = cfg.min_weight * low + (1 - cfg.min_weight) * (total / np.maximum(count, 1))
    return np.clip(np.where(count > 0, mixed, 0.0), 0.0, 1.0)


def _alert_rows(score: np.ndarray, scores: np.ndarray, cfg: StabilityConfig) -> np.ndarray:
    """(n,) bool: the reading at t has an alert, against the reading at t - alert_lookback."""
    lag = cfg.alert_lookback
    alert: np.ndarray = ~np.isfinite(scores).any(axis=1)
    if score.shape[0] > lag:
        alert[lag:] |= (score[:-lag] - score[lag:]) > cfg.alert_drop
        with np.errstate(invalid="ignore"):
            alert[lag:] |= ((scores[:-lag] - scores[lag:]) > cfg.alert_drop).any(axis=1)
    return alert


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class StabilityPath:
    """Per-bar stability of a series (:func:`stability_series`).

    ``score``: float64 (n_bars,) in [0, 1]. ``level``: object (n_bars,) of StabilityLevel.
    ``alert``: bool (n_bars,), the bar's reading has an alert. ``measures``: raw measures and
    component scores. ``fits[k]``: the GARCH fit at bar ``refit_bars[k]`` (on bars ``<=`` it),
    used up to the next refit.
    """

    score: np.ndarray
    level: np.ndarray
    alert: np.ndarray
    measures: StabilityMeasures
    refit_bars: tuple[int, ...]
    fits: tuple[GarchFit, ...]
    config: StabilityConfig

    @property
    def components(self) -> np.ndarray:
        """(n_bars, 3) component scores in :data:`COMPONENT_ORDER`, NaN = unavailable."""
        return self.measures.scores

    @property
    def buckets(self) -> np.ndarray:
        """object (n_bars,) of "stable" / "fragile" / "unstable", for analytics slicing."""
        return np.array([level.value for level in self.level], dtype=object)

    def reading(self, t: int) -> StabilityReading:
        """The reading at bar ``t``, with alerts against bar ``t - alert_lookback``."""
        n, lag = self.score.shape[0], self.config.alert_lookback
        if not -n <= t < n:
            raise IndexError(f"bar {t} out of range for {n} bars")
        t %= n
        previous = None
        if t >= lag:
            previous = aggregate(
                _components_at(self.measures, t - lag, self.config), config=self.config
            )
        return aggregate(
            _components_at(self.measures, t, self.config), previous, config=self.config
        )


def stability_series(
    close: np.ndarray,
    volume: np.ndarray | None = None,
    high: np.ndarray | None = None,
    low: np.ndarray | None = None,
    *,
    config: StabilityConfig = DEFAULT_CONFIG,
) -> StabilityPath:
    """Causal per-bar stability of a panel, for backtests and analytics.

    ``close``: ndarray (n_bars, n_assets) or (n_bars,), prices > 0, NaN where an asset has no
    bar; ``volume`` (>= 0) and ``high``/``low`` (both or neither): same shape, optional. Bar
    ``t`` uses bars ``<= t`` only: appending bars leaves earlier bars unchanged. Cost: O(n_bars
    x n_assets^3) vectorised (the contagion eigenvalues) plus one ``arch`` fit per
    ``refit_every`` bars, the dominant part (8,000 bars: ~125 fits of a few ms each).

    Raises EngineError on an empty panel, mismatched shapes, an infinite value, a non-positive
    price, negative volume, or a high below its low.
    """
    inp = prepare_inputs(close, volume, high, low, "stability.stability_series")
    rets = log_returns(inp.close)
    garch = walk_forward_garch(
        row_mean(rets)[0] * 100.0,
        window=config.garch_window,
        min_obs=config.garch_min,
        refit_every=config.refit_every,
        ewma_lambda=config.ewma_lambda,
    )
    cp = rolling_contagion(rets, config.corr_window, fraction=config.absorption_fraction)
    m = _measure(inp, config, rets, (garch.variance, garch.ewma), cp, first=0)
    score = check_array(
        "stability.stability_series", _aggregate_rows(m.scores, config), low=0, high=1
    )
    return StabilityPath(
        score=score,
        level=np.array([config.level(float(s)) for s in score], dtype=object),
        alert=_alert_rows(score, m.scores, config),
        measures=m,
        refit_bars=garch.refit_bars,
        fits=garch.fits,
        config=config,
    )


# ----------------------------------------------------------------------------------------- live


class StabilityEngine:
    """Per-bar stability for the live Supervisor: one :meth:`update` per new bar, in order.

    Each call gets the trailing window ending at the new bar; ``config.live_window`` rows
    reproduce :func:`stability_series` (fewer work: components wait for their history, and the
    GARCH filter starts at the window's first row). GARCH is fitted on the first call with
    ``garch_min`` market returns, then every ``refit_every`` calls; the last ``alert_lookback``
    readings are kept for alerts, and the last ``rank_window + 1`` contagion values (so each
    call decomposes one correlation matrix; the first call, or a window too short to rank in,
    computes them all). Cost per call, 20 assets, ``live_window`` rows: ~1 ms, plus an
    ``arch`` fit (~10 ms) every ``refit_every``-th call.
    """

    def __init__(self, config: StabilityConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self.fit: GarchFit | None = None
        self._age = 0
        self._train_rows = 0
        self._recent: deque[StabilityReading] = deque(maxlen=config.alert_lookback)
        # (mean correlation, absorption ratio, n assets) of the last rank_window + 1 bars
        self._contagion: deque[tuple[float, float, int]] = deque(maxlen=config.rank_window + 1)

    def update(
        self,
        close: np.ndarray,
        volume: np.ndarray | None = None,
        high: np.ndarray | None = None,
        low: np.ndarray | None = None,
    ) -> StabilityReading:
        """The reading at the window's last bar; arrays as in :func:`stability_series`."""
        cfg = self.config
        inp = prepare_inputs(close, volume, high, low, "stability.StabilityEngine.update")
        rets = log_returns(inp.close)
        n = rets.shape[0]
        garch = self._forecast(row_mean(rets)[0] * 100.0)
        m = _measure(inp, cfg, rets, garch, self._contagion_path(rets), first=n - 1)
        previous = self._recent[0] if len(self._recent) == cfg.alert_lookback else None
        reading = aggregate(_components_at(m, n - 1, cfg), previous, config=cfg)
        self._recent.append(reading)
        return reading

    def _contagion_path(self, rets: np.ndarray) -> ContagionPath:
        """Contagion of the window's last ``rank_window + 1`` rows: the stored history plus the
        newest window (all of them, batched, until the history is full)."""
        cfg, n = self.config, rets.shape[0]
        primed = len(self._contagion) == self._contagion.maxlen and n > cfg.rank_window
        first = n - 1 if primed else max(0, n - 1 - cfg.rank_window)
        fresh = rolling_contagion(
            rets, cfg.corr_window, fraction=cfg.absorption_fraction, first=first
        )
        if not primed:
            self._contagion.clear()
        for t in range(first, n):
            row = (fresh.mean_correlation[t], fresh.absorption_ratio[t], fresh.n_assets[t])
            self._contagion.append((float(row[0]), float(row[1]), int(row[2])))
        k = len(self._contagion)
        corr, ar, count = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=np.int64)
        corr[n - k :], ar[n - k :], count[n - k :] = (
            np.array(c) for c in zip(*self._contagion, strict=True)
        )
        return ContagionPath(mean_correlation=corr, absorption_ratio=ar, n_assets=count)

    def _forecast(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(forecast variance (n,), EWMA flags (n,)) for percent returns ``r``, last row only."""
        cfg = self.config
        n = r.shape[0]
        var, ewma = np.full(n, np.nan), np.zeros(n, dtype=bool)
        if self.fit is not None:
            self._age += 1
        if self.fit is None or self._age >= cfg.refit_every:
            s = max(1, n - cfg.garch_window)
            if np.isfinite(r[s:]).sum() >= cfg.garch_min:
                self.fit = fit_garch(r[s:], ewma_lambda=cfg.ewma_lambda, min_obs=cfg.garch_min)
                self._age, self._train_rows = 0, n - s
        if self.fit is not None:
            s = max(1, n - self._age - self._train_rows)
            f, used = forecast_segment(self.fit, r[s:], cfg.ewma_lambda)
            var[-1], ewma[-1] = f[-1], used[-1]
        return var, ewma
