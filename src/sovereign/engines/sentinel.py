"""The crash sentinel: critical-slowing-down indicators that ask the Supervisor to cut risk.

Three indicators are computed every bar from the universe's returns, causally (bar ``t`` uses
bars ``<= t`` only):

- ``autocorrelation``: lag-1 autocorrelation of the equal-weight market return over the last
  ``window`` bars (a market losing resilience reverts more slowly: autocorrelation rises);
- ``variance``: the log of the market return's variance over the same window (``ddof=1``);
- ``turbulence``: ``log(1 + d)`` of the Kritzman-Li turbulence ``d``
  (:func:`sovereign.engines.risk.turbulence_index`, trailing ``turbulence_window`` bars),
  averaged over the last ``turbulence_smoothing`` bars (one day's turbulence is very noisy).

Each indicator becomes a z-score against **its own** trailing ``z_window`` values (the current
value excluded), clipped to ``[-z_cap, z_cap]``; when the trailing values have zero spread the
z-score is 0 if the value equals them and ``+-z_cap`` otherwise.

The composite is the mean of the three z-scores floored at 0: a component below its normal
level does not offset one above it (when the components disagree the aggregate leans to
alarm). The action, with the defaults of :class:`SentinelConfig`:

- ``STAND_DOWN`` (no new risk at all) when ``composite > 2.5``;
- ``HALVE`` (halve exposure) when ``composite > 1.5`` or at least 2 of the 3 components have a
  z-score above 2;
- ``NONE`` otherwise.

Calibration on the bundled ``sp500`` sample (20 stocks; readings from 1992-01-14 after the
warm-up): NONE on 95.7 % of all bars and 97.6 % of 2004-2006; HALVE or STAND_DOWN on 35 of
the 85 bars of Sep-Dec 2008 (first 2008-09-19) and on 35 of the 52 bars of 2020-02-15..04-30
(first 2020-02-25); STAND_DOWN on 49 bars in all (Jul-Aug 2002, Oct 2008, Aug-Sep 2015,
Feb 2018, Feb-Mar 2020). These thresholds were chosen by looking at this same sample (a few
alternatives compared, in-sample): a reasonable starting point, not a fitted optimum.

Two forms: :func:`sentinel_series` for backtests (every bar at once, about 0.2 s for 8,300
bars of 20 assets) and :func:`sentinel_reading` for the Supervisor (the last bar only, from the
last :attr:`SentinelConfig.min_history` bars; identical to the series form at that bar).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from sovereign.engines.guard import check_array, check_scalar
from sovereign.engines.risk import turbulence_index
from sovereign.errors import EngineError

__all__ = [
    "COMPONENT_NAMES",
    "SentinelAction",
    "SentinelComponents",
    "SentinelConfig",
    "SentinelReading",
    "SentinelSeries",
    "sentinel_reading",
    "sentinel_series",
]

#: Column order of :attr:`SentinelSeries.components`.
COMPONENT_NAMES: tuple[str, str, str] = ("autocorrelation", "variance", "turbulence")
_TINY_VAR = 1e-20  # added before the log of a variance, so constant returns stay finite


class SentinelAction(StrEnum):
    """What the sentinel asks of the Supervisor."""

    NONE = "none"
    HALVE = "halve"  # halve gross exposure; no new risk beyond that
    STAND_DOWN = "stand_down"  # no new risk at all; the Supervisor decides whether to flatten


#: Exposure multiplier per action level (index = :attr:`SentinelSeries.level`).
_SCALE = np.array([1.0, 0.5, 0.0])
_ACTIONS = (SentinelAction.NONE, SentinelAction.HALVE, SentinelAction.STAND_DOWN)


@dataclass(frozen=True, kw_only=True, slots=True)
class SentinelConfig:
    """Windows (bars) and thresholds (z units) of the sentinel; defaults are for daily bars.

    ``window``: bars for the autocorrelation and variance (60). ``turbulence_window``: trailing
    bars for turbulence's mean and covariance (252). ``turbulence_smoothing``: bars averaged
    (10). ``z_window``: trailing values each z-score is measured against (252). ``z_cap``: z
    clip (10). ``halve``/``stand_down``: composite thresholds (1.5 / 2.5). ``component_z``,
    ``min_components``: HALVE when at least this many components exceed this z (2.0, 2).
    """

    window: int = 60
    turbulence_window: int = 252
    turbulence_smoothing: int = 10
    z_window: int = 252
    z_cap: float = 10.0
    halve: float = 1.5
    stand_down: float = 2.5
    component_z: float = 2.0
    min_components: int = 2

    def __post_init__(self) -> None:
        if min(self.window, self.turbulence_window, self.z_window) < 3:
            raise EngineError("windows must be >= 3 bars", source="sentinel.config")
        if self.turbulence_smoothing < 1 or not 1 <= self.min_components <= 3:
            raise EngineError(
                "turbulence_smoothing must be >= 1 and min_components in 1..3",
                source="sentinel.config",
            )
        if not 0.0 < self.halve < self.stand_down or self.z_cap <= 0.0:
            raise EngineError("need 0 < halve < stand_down and z_cap > 0", source="sentinel.config")

    @property
    def start(self) -> int:
        """Index of the first bar with a reading (the warm-up is every bar before it)."""
        first = max(self.window - 1, self.turbulence_window + self.turbulence_smoothing - 1)
        return first + self.z_window

    @property
    def min_history(self) -> int:
        """Bars of returns :func:`sentinel_reading` needs (514 with the defaults)."""
        return self.start + 1


@dataclass(frozen=True, kw_only=True, slots=True)
class SentinelComponents:
    """The three z-scores of one bar (clipped to ``[-z_cap, z_cap]``, not floored)."""

    autocorrelation: float
    variance: float
    turbulence: float


@dataclass(frozen=True, kw_only=True, slots=True)
class SentinelReading:
    """The sentinel's answer for one bar.

    ``composite``: mean of the components floored at 0, in ``[0, z_cap]``. ``reasons``: one
    sentence per threshold crossed (empty for NONE).
    """

    action: SentinelAction
    composite: float
    components: SentinelComponents
    reasons: tuple[str, ...]

    @property
    def exposure_scale(self) -> float:
        """Multiplier the Supervisor applies to gross exposure: 1, 0.5 or 0."""
        return float(_SCALE[_ACTIONS.index(self.action)])


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class SentinelSeries:
    """The sentinel for every bar of a backtest.

    ``composite``: ndarray (n_bars,), NaN before ``start``. ``components``: ndarray
    (n_bars, 3) of z-scores in :data:`COMPONENT_NAMES` order, NaN before ``start``. ``level``:
    ndarray (n_bars,) int8, 0 NONE / 1 HALVE / 2 STAND_DOWN (0 during the warm-up: the caller
    decides what a bar without a reading means). ``scale``: ndarray (n_bars,) exposure
    multiplier 1 / 0.5 / 0 per level. ``config``: the configuration used.
    """

    composite: np.ndarray
    components: np.ndarray
    level: np.ndarray
    scale: np.ndarray
    start: int
    config: SentinelConfig

    def reading(self, i: int) -> SentinelReading:
        """The :class:`SentinelReading` of bar ``i`` (``i >= start``)."""
        n = self.level.shape[0]
        j = i + n if i < 0 else i
        if not self.start <= j < n:
            raise EngineError(f"bar {i} has no reading (start {self.start})", source="sentinel")
        z = self.components[j]
        action = _ACTIONS[int(self.level[j])]
        composite = float(self.composite[j])
        return SentinelReading(
            action=action,
            composite=composite,
            components=SentinelComponents(
                autocorrelation=float(z[0]), variance=float(z[1]), turbulence=float(z[2])
            ),
            reasons=_reasons(self.config, action, composite, z),
        )


def _reasons(
    cfg: SentinelConfig, action: SentinelAction, composite: float, z: np.ndarray
) -> tuple[str, ...]:
    if action is SentinelAction.NONE:
        return ()
    reasons: list[str] = []
    if action is SentinelAction.STAND_DOWN:
        reasons.append(f"composite z {composite:.2f} > stand-down threshold {cfg.stand_down:g}")
    elif composite > cfg.halve:
        reasons.append(f"composite z {composite:.2f} > halve threshold {cfg.halve:g}")
    above = [
        f"{name} z {v:.2f}"
        for name, v in zip(COMPONENT_NAMES, z, strict=True)
        if v > cfg.component_z
    ]
    if len(above) >= cfg.min_components:
        reasons.append(
            f"{len(above)} of 3 components above z {cfg.component_z:g}: {', '.join(above)}"
        )
    return tuple(reasons)


# ------------------------------------------------------------------------------------ indicators


def _lag1_autocorrelation(x: np.ndarray, window: int) -> np.ndarray:
    """Rolling lag-1 autocorrelation, (n,) -> (n - window + 1,); 0 where a side is constant.

    Pearson correlation of ``x[s-1]`` and ``x[s]`` within each window (each side its own mean,
    as :meth:`pandas.Series.autocorr`).
    """
    win = sliding_window_view(x, window)
    a = win[:, :-1] - win[:, :-1].mean(axis=1, keepdims=True)
    b = win[:, 1:] - win[:, 1:].mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    num = (a * b).sum(axis=1)
    # a side is flat when its spread is rounding noise relative to the values' own size
    flat = den <= 1e-20 * (win * win).sum(axis=1) + 1e-300
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=~flat)
    result: np.ndarray = np.clip(out, -1.0, 1.0)
    return result


def _rolling_zscore(x: np.ndarray, z_window: int, cap: float) -> np.ndarray:
    """z of ``x[t]`` against ``x[t - z_window .. t - 1]``: (n,) -> (n - z_window,), clipped."""
    hist = sliding_window_view(x[:-1], z_window)
    mean = hist.mean(axis=1)
    sd = hist.std(axis=1, ddof=1)
    dev = x[z_window:] - mean
    flat = sd <= 1e-12 * np.maximum(1.0, np.abs(mean))
    z = np.where(flat, np.sign(np.where(np.abs(dev) > 1e-12, dev, 0.0)) * cap, 0.0)
    np.divide(dev, sd, out=z, where=~flat)
    return np.clip(z, -cap, cap)


def _check_returns(returns: np.ndarray, need: int, source: str) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2 or r.shape[1] < 1:
        raise EngineError(f"expected returns (n_bars, n_assets), got {r.shape}", source=source)
    if r.shape[0] < need:
        raise EngineError(f"{r.shape[0]} bars of returns, need at least {need}", source=source)
    if not np.isfinite(r).all():
        raise EngineError("returns contain NaN or infinite values", source=source)
    return r


def sentinel_series(returns: np.ndarray, config: SentinelConfig | None = None) -> SentinelSeries:
    """The sentinel for every bar of ``returns``.

    ``returns``: ndarray (n_bars, n_assets) (or (n_bars,) for one asset), simple per-bar
    returns of the universe, finite, at least ``config.min_history`` bars. The market return is
    their equal-weight mean. Bars ``< config.start`` are the warm-up (see
    :class:`SentinelSeries`). Raises :class:`EngineError` on NaN/inf or too few bars.
    """
    cfg = config or SentinelConfig()
    source = "sentinel.sentinel_series"
    r = _check_returns(returns, cfg.min_history, source)
    n = r.shape[0]
    market = r.mean(axis=1)
    w, tw, sm = cfg.window, cfg.turbulence_window, cfg.turbulence_smoothing
    ind = np.full((n, 3), np.nan)
    ind[w - 1 :, 0] = _lag1_autocorrelation(market, w)
    ind[w - 1 :, 1] = np.log(sliding_window_view(market, w).var(axis=1, ddof=1) + _TINY_VAR)
    turb = np.log1p(turbulence_index(r, tw).index[tw:])
    ind[tw + sm - 1 :, 2] = sliding_window_view(turb, sm).mean(axis=1)
    first = cfg.start - cfg.z_window  # first bar where all three indicators exist
    comps = np.full((n, 3), np.nan)
    for c in range(3):
        comps[cfg.start :, c] = _rolling_zscore(ind[first:, c], cfg.z_window, cfg.z_cap)
    valid = comps[cfg.start :]
    check_array(f"{source}.components", valid, low=-cfg.z_cap, high=cfg.z_cap)
    composite = np.full(n, np.nan)
    composite[cfg.start :] = np.maximum(valid, 0.0).mean(axis=1)
    level = np.zeros(n, dtype=np.int8)
    over = (valid > cfg.component_z).sum(axis=1) >= cfg.min_components
    comp_valid = composite[cfg.start :]
    level[cfg.start :] = np.where(
        comp_valid > cfg.stand_down, 2, np.where((comp_valid > cfg.halve) | over, 1, 0)
    )
    return SentinelSeries(
        composite=composite,
        components=comps,
        level=level,
        scale=_SCALE[level],
        start=cfg.start,
        config=cfg,
    )


def sentinel_reading(returns: np.ndarray, config: SentinelConfig | None = None) -> SentinelReading:
    """The sentinel's reading for the last bar of ``returns`` (the Supervisor's per-bar call).

    ``returns``: ndarray (n_bars, n_assets), simple per-bar returns up to and including the
    current bar, at least ``config.min_history`` bars; only the last ``min_history`` are used,
    so the cost does not grow with the history (about 3 ms for 20 assets with the defaults).
    The answer equals :func:`sentinel_series` at that bar. Raises :class:`EngineError` on too
    few bars, NaN or inf: the Supervisor treats that as no reading and stands down.
    """
    cfg = config or SentinelConfig()
    source = "sentinel.sentinel_reading"
    r = _check_returns(returns, cfg.min_history, source)
    reading = sentinel_series(r[-cfg.min_history :], cfg).reading(-1)
    check_scalar(f"{source}.composite", reading.composite, low=0.0, high=cfg.z_cap)
    return reading
