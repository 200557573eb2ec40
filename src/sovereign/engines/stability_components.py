"""The numerics behind :mod:`sovereign.engines.stability`: spread proxy, GARCH, contagion.

Everything here is causal (row ``t`` uses rows ``<= t`` only), vectorised down axis 0 and
free of numpy warnings; NaN marks "no value" and is documented per function.

* :func:`corwin_schultz` -- the Corwin & Schultz (2012) high-low spread estimator, two bars at a
  time, with their overnight-gap adjustment; :func:`parkinson_range` stands in when a bar has no
  usable previous bar.
* :func:`fit_garch` -- a zero-mean GARCH(1,1) fitted with the ``arch`` library on returns in
  percent; falls back to the RiskMetrics EWMA (lambda 0.94) when the fit fails.
  :func:`garch_filter` runs the variance recursion forward with fixed parameters (the same
  recursion and backcast as ``arch``, as an IIR filter in C via :func:`scipy.signal.lfilter`).
* :func:`rolling_contagion` -- average pairwise correlation and the absorption ratio
  (Kritzman, Li, Page & Rigobon 2011) over a trailing window; :func:`absorption_ratio` for one
  matrix.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from arch import arch_model
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

from sovereign.errors import EngineError

__all__ = [
    "ContagionPath",
    "GarchFit",
    "GarchPath",
    "PanelInputs",
    "absorption_ratio",
    "corwin_schultz",
    "ewma_fit",
    "fit_garch",
    "forecast_segment",
    "garch_filter",
    "n_eigenvectors",
    "parkinson_range",
    "prepare_inputs",
    "ramp",
    "rolling_contagion",
    "row_mean",
    "trailing_mean",
    "trailing_rank",
    "walk_forward_garch",
]

_K_CS = 3.0 - 2.0 * math.sqrt(2.0)  # the Corwin-Schultz constant 3 - 2*sqrt(2)
_PARKINSON = 1.0 / (2.0 * math.sqrt(math.log(2.0)))  # sigma = ln(H/L) / sqrt(4 ln 2)
_BACKCAST_BARS = 75  # arch's GARCH backcast: 0.94-weighted mean of the first 75 squared resids
_BACKCAST_DECAY = 0.94
_FLAT_STD = 1e-10  # a per-bar return std below this is a constant series (no correlation)


# ------------------------------------------------------------------------------------- helpers


def trailing_mean(
    a: np.ndarray, window: int, *, min_count: int, include_current: bool = True
) -> np.ndarray:
    """Mean of the finite values in a trailing window, down axis 0.

    ``a``: ndarray (n_bars, n_cols). The window is rows ``t - window + 1 .. t`` (or
    ``t - window .. t - 1`` without ``include_current``); NaN values are skipped, and the mean
    is NaN when fewer than ``min_count`` values are finite. Prefix sums: row ``t`` depends only
    on rows ``<= t``, and appending rows leaves earlier rows bit-for-bit unchanged.
    """
    if window < 1 or not 1 <= min_count <= window:
        raise ValueError("need window >= 1 and 1 <= min_count <= window")
    finite = np.isfinite(a)
    n = a.shape[0]
    zero_row = np.zeros((1, *a.shape[1:]))
    total = np.concatenate([zero_row, np.cumsum(np.where(finite, a, 0.0), axis=0)])
    count = np.concatenate([zero_row, np.cumsum(finite, axis=0, dtype=np.float64)])
    end = np.arange(n) + (1 if include_current else 0)  # exclusive end of each row's window
    start = np.maximum(end - window, 0)
    s = total[end] - total[start]
    c = count[end] - count[start]
    out = np.full(a.shape, np.nan)
    np.divide(s, c, out=out, where=c >= min_count)
    return out


def trailing_rank(
    x: np.ndarray, history: np.ndarray, window: int, *, min_count: int, first: int = 0
) -> np.ndarray:
    """Share of the finite ``history[t - window .. t - 1]`` strictly below ``x[t]``, in [0, 1].

    ``x``/``history``: ndarray (n,). Ties count as not below, so a flat history ranks 0.
    NaN where ``x[t]`` is NaN, fewer than ``min_count`` history values are finite, or
    ``t < first`` (rows not computed).
    """
    n = x.shape[0]
    out = np.full(n, np.nan)
    if first >= n:
        return out
    padded = np.concatenate([np.full(window, np.nan), history])
    view = sliding_window_view(padded, window)[first:n]  # row t -> history[t - window .. t - 1]
    count = np.isfinite(view).sum(axis=1)
    below = (view < x[first:, None]).sum(axis=1)  # NaN compares False
    part = np.full(n - first, np.nan)
    np.divide(below, count, out=part, where=(count >= min_count) & np.isfinite(x[first:]))
    out[first:] = part
    return out


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class PanelInputs:
    """Validated float64 panels (n_bars, n_assets); volume/high/low None when not given."""

    close: np.ndarray
    volume: np.ndarray | None
    high: np.ndarray | None
    low: np.ndarray | None


def _checked_panel(
    a: np.ndarray, name: str, source: str, shape: tuple[int, ...] | None
) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or 0 in arr.shape or (shape is not None and arr.shape != shape):
        raise EngineError(f"{name}: shape {arr.shape}, expected (n_bars, n_assets)", source=source)
    if np.isinf(arr).any():
        raise EngineError(f"{name} has an infinite value", source=source)
    if (arr < 0.0 if name == "volume" else arr <= 0.0).any():  # NaN compares False
        raise EngineError(f"{name} must be {'>= 0' if name == 'volume' else '> 0'}", source=source)
    return arr


def prepare_inputs(
    close: np.ndarray,
    volume: np.ndarray | None,
    high: np.ndarray | None,
    low: np.ndarray | None,
    source: str,
) -> PanelInputs:
    """Check and convert the stability inputs; a 1-D array is one asset.

    What a closes-only :class:`~sovereign.market.bars.BarPanel` carries as filler is treated as
    absent: an all-NaN volume is no volume, and high == low on every bar (high = low = close)
    is no high/low -- so passing a panel's arrays as they are never yields a made-up spread.
    Raises EngineError (``source`` names the caller) on an empty or mis-shaped panel, an
    infinite value, a price <= 0, volume < 0, high without low (or the reverse), or high < low.
    """
    c = _checked_panel(close, "close", source, None)
    v = None if volume is None else _checked_panel(volume, "volume", source, c.shape)
    if (high is None) != (low is None):
        raise EngineError("give both high and low, or neither", source=source)
    h = None if high is None else _checked_panel(high, "high", source, c.shape)
    lo = None if low is None else _checked_panel(low, "low", source, c.shape)
    if h is not None and lo is not None and (h < lo).any():
        raise EngineError("a high is below its low", source=source)
    if h is not None and lo is not None and np.array_equal(h, lo, equal_nan=True):
        h = lo = None
    if v is not None and not np.isfinite(v).any():
        v = None
    return PanelInputs(close=c, volume=v, high=h, low=lo)


def row_mean(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN-skipping mean over axis 1 of (n, m) -> (mean (n,), NaN where none; count (n,))."""
    finite = np.isfinite(a)
    count = finite.sum(axis=1)
    out = np.full(a.shape[0], np.nan)
    np.divide(np.where(finite, a, 0.0).sum(axis=1), count, out=out, where=count > 0)
    return out, count


def ramp(ratio: np.ndarray, top: float) -> np.ndarray:
    """1 for ``ratio <= 1``, linear down to 0 at ``ratio >= top``; NaN stays NaN."""
    return np.clip((top - ratio) / (top - 1.0), 0.0, 1.0)


# ---------------------------------------------------------------------------------- liquidity


def parkinson_range(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Parkinson (1980) one-bar range estimate ``ln(H/L) / sqrt(4 ln 2)``, per-bar log units.

    ``high``/``low``: ndarray (n_bars, n_assets), prices > 0 (NaN allowed: NaN out).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        out: np.ndarray = np.abs(np.log(high / low)) * _PARKINSON
    out[~np.isfinite(out)] = np.nan
    return out


def corwin_schultz(
    high: np.ndarray, low: np.ndarray, close: np.ndarray | None = None
) -> np.ndarray:
    """Corwin-Schultz (2012) bid-ask spread estimate per bar, as a fraction of price.

    ``high``/``low``/``close``: ndarray (n_bars, n_assets), prices > 0, NaN where a bar is
    missing. Row ``t`` is the two-bar estimate from bars ``t - 1`` and ``t``::

        beta  = ln(H_{t-1}/L_{t-1})^2 + ln(H_t/L_t)^2
        gamma = ln(max(H_{t-1}, H_t) / min(L_{t-1}, L_t))^2
        alpha = (sqrt(2 beta) - sqrt(beta)) / (3 - 2 sqrt 2) - sqrt(gamma / (3 - 2 sqrt 2))
        S     = 2 (e^alpha - 1) / (1 + e^alpha)

    Negative estimates are set to 0 (the paper's first option). With ``close``, the paper's
    overnight adjustment is applied first: when bar ``t``'s low is above the previous close
    (or its high below it), bar ``t``'s high and low are shifted by the gap.

    Fallback, by design: a bar whose previous bar is unusable (row 0, or a NaN high/low at
    ``t - 1``) gets the one-bar Parkinson range (:func:`parkinson_range`) instead -- a
    volatility-scale number, so a gap nudges a window's average spread up rather than dropping
    out silently. NaN where bar ``t``'s own high or low is NaN.
    """
    h = np.asarray(high, dtype=np.float64)
    lo = np.asarray(low, dtype=np.float64)
    out = parkinson_range(h, lo)
    if h.shape[0] < 2:
        return out
    h0, l0, h1, l1 = h[:-1], lo[:-1], h[1:].copy(), lo[1:].copy()
    if close is not None:
        c0 = np.asarray(close, dtype=np.float64)[:-1]
        with np.errstate(invalid="ignore"):
            up = np.where(l1 > c0, l1 - c0, 0.0)  # gap up: shift bar t down
            down = np.where(h1 < c0, c0 - h1, 0.0)  # gap down: shift bar t up
        shift = np.nan_to_num(down - up)  # NaN close: no adjustment
        h1 += shift
        l1 += shift
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.log(h0 / l0) ** 2 + np.log(h1 / l1) ** 2
        gamma = np.log(np.fmax(h0, h1) / np.fmin(l0, l1)) ** 2
        alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / _K_CS - np.sqrt(gamma / _K_CS)
        ea = np.exp(np.clip(alpha, -50.0, 50.0))
        spread = np.maximum(2.0 * (ea - 1.0) / (1.0 + ea), 0.0)
    two_bar = np.isfinite(spread)
    out[1:] = np.where(two_bar, spread, out[1:])
    return out


# ------------------------------------------------------------------------------------- GARCH


@dataclass(frozen=True, kw_only=True, slots=True)
class GarchFit:
    """GARCH(1,1) parameters for returns in PERCENT per bar: ``s2_{t+1} = omega + alpha e_t^2 +
    beta s2_t``.

    ``omega``: percent^2 per bar. ``fallback``: True when this is the EWMA stand-in
    (``omega=0, alpha=1-lambda, beta=lambda``) rather than an ``arch`` fit, with ``reason``
    saying why. ``n_obs``: returns the fit saw. ``log_likelihood``: arch's, None for EWMA.
    """

    omega: float
    alpha: float
    beta: float
    fallback: bool
    n_obs: int
    reason: str = ""
    log_likelihood: float | None = None

    @property
    def persistence(self) -> float:
        """``alpha + beta`` (1 for EWMA: no mean reversion)."""
        return self.alpha + self.beta


def ewma_fit(ewma_lambda: float = 0.94, *, n_obs: int = 0, reason: str = "") -> GarchFit:
    """The RiskMetrics EWMA variance ``s2_{t+1} = lambda s2_t + (1 - lambda) e_t^2`` as a fit."""
    if not 0.0 < ewma_lambda < 1.0:
        raise ValueError("ewma_lambda must be in (0, 1)")
    return GarchFit(
        omega=0.0,
        alpha=1.0 - ewma_lambda,
        beta=ewma_lambda,
        fallback=True,
        n_obs=n_obs,
        reason=reason,
    )


def fit_garch(
    returns_pct: np.ndarray, *, ewma_lambda: float = 0.94, min_obs: int = 100
) -> GarchFit:
    """Fit a zero-mean Gaussian GARCH(1,1) with ``arch`` on ``returns_pct`` (n,), percent/bar.

    NaN entries are dropped. Deterministic (no randomness anywhere): SLSQP starts from
    ``(0.02 var, 0.08, 0.90)``, whose unconditional variance is the sample's -- this skips
    arch's grid search for starting values (~30% of a fit) and reaches the same optimum on the
    bundled data. ``disp="off"``, no rescaling (the caller passes percent).
    Falls back to :func:`ewma_fit` (``fallback=True``, ``reason`` set) when there are fewer
    than ``min_obs`` returns, the returns are constant, arch raises, the optimiser reports
    non-convergence, or the parameters are not finite / not a valid GARCH
    (negative, or ``alpha + beta > 1``). Optimiser warnings are captured, never printed: the
    convergence flag decides.
    """
    r = np.asarray(returns_pct, dtype=np.float64)
    r = r[np.isfinite(r)]
    n = int(r.shape[0])
    if n < min_obs:
        return ewma_fit(ewma_lambda, n_obs=n, reason=f"{n} returns < {min_obs} needed to fit")
    if float(np.std(r)) < _FLAT_STD:
        return ewma_fit(ewma_lambda, n_obs=n, reason="constant returns")
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # arch/scipy noise; judged by the flag below
            start = np.array([0.02 * float(np.var(r)), 0.08, 0.90])  # uncond. var = var(r)
            res = arch_model(r, mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fit(
                disp="off", show_warning=False, starting_values=start
            )
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:
        return ewma_fit(ewma_lambda, n_obs=n, reason=f"arch failed: {err}")
    omega, alpha, beta = (float(x) for x in np.asarray(res.params, dtype=np.float64))
    ll = float(res.loglikelihood)
    if res.convergence_flag != 0:
        return ewma_fit(ewma_lambda, n_obs=n, reason=f"not converged (flag {res.convergence_flag})")
    valid = (
        all(math.isfinite(x) for x in (omega, alpha, beta, ll))
        and omega >= 0.0
        and alpha >= 0.0
        and beta >= 0.0
        and alpha + beta <= 1.0 + 1e-9
    )
    if not valid:
        return ewma_fit(
            ewma_lambda, n_obs=n, reason=f"invalid parameters ({omega:g}, {alpha:g}, {beta:g})"
        )
    return GarchFit(omega=omega, alpha=alpha, beta=beta, fallback=False, n_obs=n, log_likelihood=ll)


def garch_filter(fit: GarchFit, returns_pct: np.ndarray) -> np.ndarray:
    """Conditional variances of ``returns_pct`` (n,), percent/bar, under fixed ``fit``.

    Returns ndarray (n + 1,), percent^2 per bar: element 0 is ``s2_0``, the variance of the first
    return before seeing it (``omega + (alpha + beta) * backcast``, with arch's backcast: the
    0.94-weighted mean of the first 75 squared returns); element ``t + 1`` is the one-step
    forecast for the bar after ``t``, given returns ``<= t``. So ``out[:-1]`` equals arch's
    ``conditional_volatility ** 2`` on the same data (arch's variance bounds, which only bind on
    pathological data, are not applied) and ``out[t + 1]`` uses data ``<= t`` only.

    A NaN return is a missing bar: the state does not move (``out[t + 1] = out[t]``). All NaN:
    every element is NaN.
    """
    r = np.asarray(returns_pct, dtype=np.float64)
    n = r.shape[0]
    out = np.full(n + 1, np.nan)
    finite = np.flatnonzero(np.isfinite(r))
    if finite.size == 0:
        return out
    e2 = r[finite] ** 2
    tau = min(_BACKCAST_BARS, e2.shape[0])
    w = _BACKCAST_DECAY ** np.arange(tau)
    backcast = float(np.sum(e2[:tau] * w) / np.sum(w))
    s2_0 = fit.omega + (fit.alpha + fit.beta) * backcast
    # y_t = beta y_{t-1} + omega + alpha e2_t, with y_{-1} = s2_0: y_t is the forecast after t
    y, _ = lfilter([1.0], [1.0, -fit.beta], fit.omega + fit.alpha * e2, zi=[fit.beta * s2_0])
    out[0] = s2_0
    # element t + 1 takes the forecast after the last finite return at or before t
    pos = np.searchsorted(finite, np.arange(n), side="right") - 1
    has = pos >= 0
    out[1:][has] = y[pos[has]]
    out[1:][~has] = s2_0
    return out


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class GarchPath:
    """Walk-forward forecasts (:func:`walk_forward_garch`).

    ``variance``: (n,) one-step forecast variance after each bar, percent^2 per bar, NaN before
    the first fit. ``ewma``: (n,) bool, the EWMA stand-in produced that forecast.
    ``fits[k]`` was fitted at ``refit_bars[k]`` on returns of bars ``<=`` it.
    """

    variance: np.ndarray
    ewma: np.ndarray
    refit_bars: tuple[int, ...]
    fits: tuple[GarchFit, ...]


def forecast_segment(
    fit: GarchFit, returns_pct: np.ndarray, ewma_lambda: float = 0.94
) -> tuple[np.ndarray, np.ndarray]:
    """One-step forecasts after each row of ``returns_pct`` (n,) under ``fit`` (filtered from row
    0), and a bool mask (n,) of rows whose forecast is the EWMA's (the fit is the fallback, or
    its forecast was not finite there and the EWMA's replaced it)."""
    f = garch_filter(fit, returns_pct)[1:]
    used = np.full(f.shape[0], fit.fallback)
    bad = ~np.isfinite(f)
    if bad.any() and np.isfinite(returns_pct).any():
        f[bad] = garch_filter(ewma_fit(ewma_lambda), returns_pct)[1:][bad]
        used |= bad
    return f, used


def walk_forward_garch(
    returns_pct: np.ndarray,
    *,
    window: int = 756,
    min_obs: int = 252,
    refit_every: int = 63,
    ewma_lambda: float = 0.94,
) -> GarchPath:
    """Refit GARCH on the past on a schedule and filter forward with fixed parameters.

    ``returns_pct``: (n,) returns in percent per bar, NaN = missing (row 0 usually). The first
    fit is at the first bar ``t`` with ``min_obs`` finite returns at or before it, then every
    ``refit_every`` bars; the fit at ``t`` sees rows ``max(1, t - window + 1) .. t`` and its
    filter starts at that window's first row, so bar ``t``'s forecast uses rows ``<= t`` only.
    Cost: one :func:`fit_garch` per refit (a few ms each) plus O(n) filtering.
    """
    r = np.asarray(returns_pct, dtype=np.float64)
    n = r.shape[0]
    var = np.full(n, np.nan)
    ewma = np.zeros(n, dtype=bool)
    first = int(np.searchsorted(np.cumsum(np.isfinite(r)), min_obs))
    refits = tuple(range(first, n, refit_every))
    fits = []
    for t in refits:
        s = max(1, t - window + 1)
        fit = fit_garch(r[s : t + 1], ewma_lambda=ewma_lambda, min_obs=min_obs)
        end = min(n, t + refit_every)
        f, used = forecast_segment(fit, r[s:end], ewma_lambda)
        var[t:end], ewma[t:end] = f[t - s :], used[t - s :]
        fits.append(fit)
    return GarchPath(variance=var, ewma=ewma, refit_bars=refits, fits=tuple(fits))


# ---------------------------------------------------------------------------------- contagion


def n_eigenvectors(n_assets: int, fraction: float = 0.2) -> int:
    """Eigenvectors in the absorption ratio's numerator: ``max(1, round(fraction * n))``, half
    up (20 assets -> 4, 2 -> 1)."""
    return max(1, math.floor(fraction * n_assets + 0.5))


def absorption_ratio(matrix: np.ndarray, fraction: float = 0.2) -> float:
    """Share of total variance explained by the top ``n_eigenvectors(m, fraction)`` eigenvectors.

    ``matrix``: ndarray (m, m), a symmetric positive semi-definite covariance or correlation
    matrix, m >= 2. Returns ``sum(top k eigenvalues) / trace`` in ``[k/m, 1]`` (Kritzman et al.
    2011). Raises EngineError on a non-finite, non-square, too small or zero-trace matrix.
    """
    a = np.asarray(matrix, dtype=np.float64)
    src = "stability.absorption_ratio"
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 2:
        raise EngineError(f"need a square matrix with m >= 2, got shape {a.shape}", source=src)
    if not np.isfinite(a).all():
        raise EngineError("matrix has a non-finite entry", source=src)
    trace = float(np.trace(a))
    if trace <= 0.0:
        raise EngineError("matrix has zero variance", source=src)
    eig = np.linalg.eigvalsh(0.5 * (a + a.T))[::-1]
    k = n_eigenvectors(a.shape[0], fraction)
    return float(np.clip(eig[:k].sum() / trace, 0.0, 1.0))


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class ContagionPath:
    """Output of :func:`rolling_contagion`; arrays of shape (n_bars,).

    ``mean_correlation``: mean off-diagonal correlation of the valid assets, in [-1, 1].
    ``absorption_ratio``: top-k eigenvalue share of their correlation matrix, in [k/N, 1].
    ``n_assets``: valid assets in the window (int). Both float arrays are NaN where fewer than
    two assets are valid or the row was not computed (before ``first``).
    """

    mean_correlation: np.ndarray
    absorption_ratio: np.ndarray
    n_assets: np.ndarray


def rolling_contagion(
    returns: np.ndarray,
    window: int,
    *,
    fraction: float = 0.2,
    first: int = 0,
    chunk_cells: int = 500_000,
) -> ContagionPath:
    """Average pairwise correlation and absorption ratio over a trailing window, per bar.

    ``returns``: ndarray (n_bars, n_assets), log returns per bar, NaN where missing. Row ``t``
    uses rows ``t - window + 1 .. t``; an asset counts in that window only if all ``window``
    returns are finite and their std is above 1e-10 (a constant series has no correlation).
    The absorption ratio is taken on the CORRELATION matrix of the valid assets (Kritzman et al.
    used the covariance; the correlation keeps one volatile asset from dominating, and puts the
    "no co-movement" floor at exactly ``k/N``). Rows before ``first`` are not computed (NaN),
    which the live call uses to evaluate the last row only.

    Window sums come from prefix sums of the outer products, in time chunks of at most
    ``chunk_cells`` cells (memory ~ chunk rows x n_assets^2); the eigenvalues are one batched
    ``eigvalsh`` per chunk. Cost ~ O(n_bars * n_assets^3).
    """
    x = np.asarray(returns, dtype=np.float64)
    n, m = x.shape
    corr_out = np.full(n, np.nan)
    ar_out = np.full(n, np.nan)
    count_out = np.zeros(n, dtype=np.int64)
    first = max(first, window - 1)
    if n <= first or m < 2:
        return ContagionPath(mean_correlation=corr_out, absorption_ratio=ar_out, n_assets=count_out)
    rows_per_chunk = max(1, chunk_cells // (m * m) - window)
    for a in range(first, n, rows_per_chunk):
        b = min(n, a + rows_per_chunk)
        mc, ar, cnt = _contagion_chunk(x[a - window + 1 : b], window, fraction)
        corr_out[a:b], ar_out[a:b], count_out[a:b] = mc, ar, cnt
    return ContagionPath(mean_correlation=corr_out, absorption_ratio=ar_out, n_assets=count_out)


def _contagion_chunk(
    x: np.ndarray, window: int, fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contagion for every full window of ``x`` (rows ``window - 1 ..``), see the caller."""
    rows, m = x.shape[0] - window + 1, x.shape[1]
    finite = np.isfinite(x)
    z = np.where(finite, x, 0.0)
    s1 = np.zeros((x.shape[0] + 1, m))
    np.cumsum(z, axis=0, out=s1[1:])
    nf = np.zeros((x.shape[0] + 1, m))
    np.cumsum(finite, axis=0, out=nf[1:])
    prod = np.zeros((x.shape[0] + 1, m, m))
    np.multiply(z[:, :, None], z[:, None, :], out=prod[1:])
    np.cumsum(prod[1:], axis=0, out=prod[1:])
    sx = s1[window:] - s1[:rows]  # (rows, m) window sums
    # (w - 1) x the window covariance; the factor cancels in the correlation
    c = prod[window:] - prod[:rows]
    c -= sx[:, :, None] * (sx[:, None, :] / window)
    var = np.maximum(np.diagonal(c, axis1=1, axis2=2), 0.0) / (window - 1)
    valid = ((nf[window:] - nf[:rows]) == window) & (np.sqrt(var) > _FLAT_STD)
    inv_sd = np.where(valid, 1.0 / np.sqrt(np.where(valid, var * (window - 1), 1.0)), 0.0)
    c *= inv_sd[:, :, None]
    c *= inv_sd[:, None, :]
    np.clip(c, -1.0, 1.0, out=c)
    diag = np.arange(m)
    c[:, diag, diag] = valid  # 1 on a valid asset's diagonal; an invalid asset's row is all 0
    k = valid.sum(axis=1)
    enough = k >= 2
    mean_corr = np.where(enough, (c.sum(axis=(1, 2)) - k) / np.maximum(k * (k - 1), 1), np.nan)
    eig = np.cumsum(np.linalg.eigvalsh(c)[:, ::-1], axis=1)  # descending; invalid assets add 0s
    top = np.clip(np.floor(fraction * k + 0.5).astype(np.int64), 1, m)
    explained = eig[np.arange(rows), top - 1]
    ar = np.where(enough, np.clip(explained / np.maximum(k, 1), 0.0, 1.0), np.nan)
    return mean_corr, ar, k
