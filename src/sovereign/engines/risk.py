"""Risk measures: VaR and ES (three methods), volatility targeting, the turbulence index.

Conventions, for every function here:

- Returns are simple per-bar returns as fractions (``0.01`` is +1 %). The loss is ``L = -r``.
- ``VaR_alpha`` is the ``alpha`` quantile of the loss and ``ES_alpha`` the mean loss in the tail
  at or beyond it, both reported as **positive loss fractions** (``0.03`` = a 3 % loss). When
  even the ``alpha``-worst outcome is a gain, the measure is reported as ``0.0``: no loss at that
  confidence. ``ES >= VaR`` always holds (see each method).
- Methods (:class:`RiskMethod`):

  * ``historical``: the empirical quantile of the loss with linear interpolation between order
    statistics (numpy's default ``method="linear"``, Hyndman–Fan type 7); ES is the mean of the
    losses ``>= VaR``. The largest loss is always ``>= VaR``, so the tail is never empty.
  * ``parametric``: normal with the sample mean and sample std (``ddof=1``):
    ``VaR = -mu + sigma * z_alpha`` and ``ES = -mu + sigma * phi(z_alpha) / (1 - alpha)``.
  * ``cornish_fisher``: the normal quantile corrected for sample skewness ``S`` and excess
    kurtosis ``K`` (biased moment estimators, as :func:`scipy.stats.skew` /
    :func:`scipy.stats.kurtosis` with ``bias=True``)::

        z_cf(z) = z + (z^2 - 1) S / 6 + (z^3 - 3 z) K / 24 - (2 z^3 - 5 z) S^2 / 36

    ES is ``-mu - sigma * E[z_cf(Z) | Z <= z_{1-alpha}]`` integrated numerically (96-node
    Gauss-Legendre over ``z`` from ``-8.5`` to the tail quantile, weighted by the normal density,
    self-normalised). The expansion is a valid quantile function only where ``z_cf`` increases
    in ``z``; if its derivative (a quadratic in ``z``, checked exactly) is ``<= 0`` anywhere on
    that tail (extreme skew relative to kurtosis: roughly ``K < 4 S^2 / 3``) the estimate
    **falls back to historical** and :attr:`RiskEstimate.fallback` says so. With very fat
    tails (large ``K``) the expansion overstates the tail; the historical figure is the
    cross-check.

- Degenerate input: a NaN or infinite return, or fewer than ``min_obs`` returns, raises
  :class:`~sovereign.errors.EngineError` (no silent dropna: the caller decides what a missing
  bar means). Constant returns ``c`` (zero sample std) give ``VaR = ES = max(0, -c)`` for every
  method (zero for a constant gain or zero return), never NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy.special import ndtri

from sovereign.engines.guard import check_array, check_scalar
from sovereign.errors import EngineError

__all__ = [
    "MIN_OBSERVATIONS",
    "RiskEstimate",
    "RiskMethod",
    "Turbulence",
    "cornish_fisher_var_es",
    "normal_var_es",
    "portfolio_var_es",
    "turbulence_index",
    "var_es",
    "vol_target_scale",
]

#: Fewer returns than this and VaR/ES are refused (at alpha = 0.99, 30 bars is already thin).
MIN_OBSERVATIONS = 30
_Z_FLOOR = -8.5  # lower end of the Cornish-Fisher tail grid: Phi(-8.5) ~ 1e-17, negligible mass
# Gauss-Legendre nodes and weights on [-1, 1] for the Cornish-Fisher ES integral (a smooth
# integrand: polynomial times Gaussian; 96 nodes are accurate to ~1e-12). Constants.
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(96)
_ZERO_STD = 1e-14  # a sample std below this (in return units) counts as constant returns


class RiskMethod(StrEnum):
    """How VaR and ES are estimated (see the module docstring)."""

    HISTORICAL = "historical"
    PARAMETRIC = "parametric"
    CORNISH_FISHER = "cornish_fisher"


@dataclass(frozen=True, kw_only=True, slots=True)
class RiskEstimate:
    """VaR and ES at ``alpha`` as positive loss fractions of the return's base.

    ``method`` is the method that produced the numbers; ``fallback`` is ``None`` when that is
    the method requested, otherwise the reason it was not used (Cornish-Fisher -> historical).
    ``n_obs``: the number of returns used.
    """

    var: float
    es: float
    method: RiskMethod
    alpha: float
    n_obs: int
    fallback: str | None = None


# ------------------------------------------------------------------------------------- closed forms


def _check_alpha(alpha: float, source: str) -> float:
    a = check_scalar(f"{source}.alpha", alpha)
    if not 0.5 <= a < 1.0:
        raise EngineError(f"alpha must be in [0.5, 1), got {a}", source=source)
    return a


def _as_loss(value: float) -> float:
    """A loss quantile as a positive loss fraction (a gain at that confidence is no loss: 0)."""
    return max(0.0, value)


def normal_var_es(mu: float, sigma: float, alpha: float = 0.99) -> tuple[float, float]:
    """Normal VaR and ES (raw, may be negative) for per-bar mean ``mu`` and std ``sigma >= 0``."""
    a = _check_alpha(alpha, "risk.normal_var_es")
    z = float(ndtri(a))
    var = -mu + sigma * z
    es = -mu + sigma * _normal_pdf(z) / (1.0 - a)
    return var, es


def _cf_quantile(z: np.ndarray, skew: float, kurt: float) -> np.ndarray:
    z2 = z * z
    out: np.ndarray = (
        z
        + (z2 - 1.0) * skew / 6.0
        + (z2 * z - 3.0 * z) * kurt / 24.0
        - (2.0 * z2 * z - 5.0 * z) * skew * skew / 36.0
    )
    return out


def _normal_pdf(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _cf_increasing(lo: float, hi: float, skew: float, kurt: float) -> bool:
    """Whether ``d z_cf / dz > 0`` on all of ``[lo, hi]``.

    The derivative is the quadratic ``A z^2 + B z + C`` with ``A = K/8 - S^2/6``, ``B = S/3``,
    ``C = 1 - K/8 + 5 S^2/36``; its minimum on the interval is at an end or at the vertex.
    """
    qa = kurt / 8.0 - skew * skew / 6.0
    qb = skew / 3.0
    qc = 1.0 - kurt / 8.0 + 5.0 * skew * skew / 36.0
    points = [lo, hi]
    if qa > 0.0 and lo < -qb / (2.0 * qa) < hi:
        points.append(-qb / (2.0 * qa))
    return min(qa * z * z + qb * z + qc for z in points) > 0.0


def cornish_fisher_var_es(
    mu: float, sigma: float, skew: float, excess_kurtosis: float, alpha: float = 0.99
) -> tuple[float, float] | None:
    """Cornish-Fisher VaR and ES (raw, may be negative) from the first four moments.

    ``mu``, ``sigma``: per-bar mean and std of the return; ``skew``, ``excess_kurtosis``: of the
    return (not of the loss). Returns ``None`` when the expansion is not increasing over the
    tail ``z in [-8.5, z_{1-alpha}]`` (no valid quantile function there). With ``skew = 0`` and
    ``excess_kurtosis = 0`` this equals :func:`normal_var_es` to integration accuracy (~1e-12).
    """
    a = _check_alpha(alpha, "risk.cornish_fisher_var_es")
    z_tail = float(ndtri(1.0 - a))  # the return-side quantile, negative
    if not _cf_increasing(_Z_FLOOR, z_tail, skew, excess_kurtosis):
        return None
    z = 0.5 * (z_tail - _Z_FLOOR) * _GL_NODES + 0.5 * (z_tail + _Z_FLOOR)
    dens = np.exp(-0.5 * z * z) * _GL_WEIGHTS
    tail_mean = float(np.sum(_cf_quantile(z, skew, excess_kurtosis) * dens) / np.sum(dens))
    var = -mu - sigma * float(_cf_quantile(np.array([z_tail]), skew, excess_kurtosis)[0])
    es = -mu - sigma * tail_mean
    return var, max(es, var)  # monotone => tail_mean <= z_cf(z_tail); max() absorbs rounding


# ----------------------------------------------------------------------------------------- VaR / ES


def _clean_returns(returns: np.ndarray, min_obs: int, source: str) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise EngineError(f"expected returns of shape (n_bars,), got {r.shape}", source=source)
    if r.size < max(min_obs, 2):
        raise EngineError(f"{r.size} returns, need at least {max(min_obs, 2)}", source=source)
    bad = ~np.isfinite(r)
    if bad.any():
        raise EngineError(
            f"{int(bad.sum())} non-finite returns (first at index {int(np.argmax(bad))})",
            source=source,
        )
    return r


def _historical(r: np.ndarray, alpha: float) -> tuple[float, float]:
    loss = -r
    var = float(np.quantile(loss, alpha))
    es = float(loss[loss >= var].mean())
    return var, es


def var_es(
    returns: np.ndarray,
    alpha: float = 0.99,
    method: RiskMethod | str = RiskMethod.HISTORICAL,
    *,
    min_obs: int = MIN_OBSERVATIONS,
) -> RiskEstimate:
    """VaR and ES of a return series at confidence ``alpha`` (positive loss fractions).

    ``returns``: ndarray (n_bars,), simple per-bar returns, finite, at least ``min_obs`` of them.
    ``alpha``: in ``[0.5, 1)``. ``method``: a :class:`RiskMethod` or its value. Raises
    :class:`EngineError` on degenerate input (see the module docstring).
    """
    source = "risk.var_es"
    a = _check_alpha(alpha, source)
    try:
        m = RiskMethod(method)
    except ValueError as err:
        raise EngineError(f"unknown method {method!r}", source=source) from err
    r = _clean_returns(returns, min_obs, source)
    mu = float(r.mean())
    sigma = float(r.std(ddof=1))
    fallback: str | None = None
    if sigma < _ZERO_STD:
        var = es = -mu  # constant returns: every quantile is -c
    elif m is RiskMethod.HISTORICAL:
        var, es = _historical(r, a)
    elif m is RiskMethod.PARAMETRIC:
        var, es = normal_var_es(mu, sigma, a)
    else:
        dev = r - mu
        m2 = float(np.mean(dev**2))
        skew = float(np.mean(dev**3)) / m2**1.5
        kurt = float(np.mean(dev**4)) / m2**2 - 3.0
        cf = cornish_fisher_var_es(mu, sigma, skew, kurt, a)
        if cf is None:
            var, es = _historical(r, a)
            fallback = (
                f"Cornish-Fisher quantile is not monotone in the tail (skew {skew:.3g}, "
                f"excess kurtosis {kurt:.3g}); used historical"
            )
            m = RiskMethod.HISTORICAL
        else:
            var, es = cf
    v = check_scalar(f"{source}.var", _as_loss(var), low=0.0)
    e = check_scalar(f"{source}.es", _as_loss(max(es, var)), low=v)
    return RiskEstimate(var=v, es=e, method=m, alpha=a, n_obs=int(r.size), fallback=fallback)


def portfolio_var_es(
    weights: np.ndarray,
    returns: np.ndarray,
    alpha: float = 0.99,
    method: RiskMethod | str = RiskMethod.HISTORICAL,
    *,
    min_obs: int = MIN_OBSERVATIONS,
) -> RiskEstimate:
    """VaR and ES of a fixed-weight portfolio, as fractions of its capital.

    ``weights``: ndarray (n_assets,), fractions of capital (need not sum to 1; shorts negative).
    ``returns``: ndarray (n_bars, n_assets), simple per-bar asset returns. The portfolio return
    per bar is ``returns @ weights`` (rebalanced to ``weights`` every bar); the estimate is
    :func:`var_es` of that series (for ``parametric`` this is the same as ``w' Sigma w``).
    """
    source = "risk.portfolio_var_es"
    w = np.asarray(weights, dtype=np.float64)
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 2 or w.shape != (x.shape[1],):
        raise EngineError(
            f"weights {w.shape} and returns {x.shape} do not match (n_assets,), (n_bars, n_assets)",
            source=source,
        )
    check_array(f"{source}.weights", w)
    if not np.isfinite(x).all():
        raise EngineError("returns contain NaN or infinite values", source=source)
    return var_es(x @ w, alpha, method, min_obs=min_obs)


# ------------------------------------------------------------------------------ volatility target


def vol_target_scale(
    returns: np.ndarray,
    target_vol_annual: float,
    window: int = 20,
    cap: float = 2.0,
    *,
    ewma: bool = True,
    periods_per_year: int = 252,
) -> float:
    """Leverage multiplier that brings the recent volatility to ``target_vol_annual``.

    ``returns``: ndarray (n_bars,), simple per-bar returns, finite, at least ``window`` of them;
    the last bar is the most recent. Volatility per bar is, with ``ewma=True`` (default), the
    RiskMetrics zero-mean EWMA ``sqrt(sum w_i r_i^2 / sum w_i)`` over the whole series with span
    ``window`` (decay ``1 - 2 / (window + 1)``), or with ``ewma=False`` the sample std
    (``ddof=1``) of the last ``window`` returns; it is annualised by ``sqrt(periods_per_year)``.
    Returns ``min(cap, target / vol)`` in ``[0, cap]``; zero volatility (below 1e-12 a year)
    returns ``cap``: nothing to scale against, so the cap is the limit.
    """
    source = "risk.vol_target_scale"
    target = check_scalar(f"{source}.target_vol_annual", target_vol_annual, low=0.0)
    limit = check_scalar(f"{source}.cap", cap, low=0.0)
    if window < 2 or periods_per_year < 1:
        raise EngineError(
            f"window {window} < 2 or periods_per_year {periods_per_year} < 1", source=source
        )
    r = _clean_returns(returns, window, source)
    if ewma:
        decay = 1.0 - 2.0 / (window + 1.0)
        w = decay ** np.arange(r.size - 1, -1, -1, dtype=np.float64)
        vol = math.sqrt(float(np.sum(w * r * r) / np.sum(w)))
    else:
        vol = float(r[-window:].std(ddof=1))
    vol *= math.sqrt(periods_per_year)
    scale = limit if vol < 1e-12 else min(limit, target / vol)
    return check_scalar(f"{source}.scale", scale, low=0.0, high=limit)


# ------------------------------------------------------------------------------------- turbulence


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Turbulence:
    """Kritzman-Li turbulence per bar.

    ``index``: ndarray (n_bars,), squared Mahalanobis distance of each bar's cross-section of
    returns from the trailing ``window`` bars' mean and covariance (the bar itself excluded, so
    it is causal); NaN for the first ``window`` bars (``start == window``), finite and ``>= 0``
    from ``start`` on. Under i.i.d. normal returns it is about chi-square with n_assets degrees
    of freedom. ``percentile``: where the last bar's value ranks among all finite values, in
    ``[0, 100]`` (the share ``<=`` it). ``rank``: the effective rank of the last covariance.
    """

    index: np.ndarray
    percentile: float
    start: int
    rank: int


_RCOND = 1e-10  # eigenvalues below this fraction of the largest are treated as zero (pinv)
_VAR_FLOOR = 1e-18  # ... and below this absolute variance (a 1e-9 per-bar std: rounding noise)
_CHOL_BATCH = (
    512  # covariances factored per batched Cholesky call (one failure sends its batch to eigh)
)
_CHUNK_ELEMENTS = 4_000_000  # rolling outer-product sums are built in chunks of this many floats


def _window_moments(yc: np.ndarray, window: int, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (m, k) and sample covariance (m, k, k) of bars ``t-window..t-1`` for t in [t0, t1).

    The first window's sums are computed directly, later ones by adding the bar that enters and
    removing the one that leaves (a cumulative sum within the chunk).
    """
    m = t1 - t0
    first = yc[t0 - window : t0]
    enter = yc[t0 : t1 - 1]  # bar t-1 enters the window of bar t (t = t0+1 .. t1-1)
    leave = yc[t0 - window : t1 - 1 - window]
    s1 = np.empty((m, yc.shape[1]))
    s1[0] = first.sum(axis=0)
    s1[1:] = s1[0] + np.cumsum(enter - leave, axis=0)
    s2 = np.empty((m, yc.shape[1], yc.shape[1]))
    s2[0] = first.T @ first
    outer = enter[:, :, None] * enter[:, None, :] - leave[:, :, None] * leave[:, None, :]
    s2[1:] = s2[0] + np.cumsum(outer, axis=0)
    mean = s1 / window
    cov = (s2 - window * mean[:, :, None] * mean[:, None, :]) / (window - 1)
    return mean, 0.5 * (cov + np.transpose(cov, (0, 2, 1)))


def _mahalanobis_sq(cov: np.ndarray, dev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``dev' pinv(cov) dev`` and the rank used, for a batch: cov (m, k, k), dev (m, k).

    Fast path: a batched Cholesky factor and solve, for every covariance whose smallest
    Cholesky pivot is above ``1e-10`` of its largest variance and above ``1e-18`` (then the
    inverse is the pseudo-inverse). The others (singular or nearly so) take the
    eigendecomposition path.
    """
    m, k = dev.shape
    dist = np.zeros(m)
    rank = np.full(m, k)
    top = np.einsum("tii->ti", cov).max(axis=1)
    slow = ~(top > _VAR_FLOOR)
    for c0 in range(0, m, _CHOL_BATCH):
        idx = np.arange(c0, min(m, c0 + _CHOL_BATCH))
        idx = idx[~slow[idx]]
        if idx.size == 0:
            continue
        try:
            chol = np.linalg.cholesky(cov[idx])
        except np.linalg.LinAlgError:
            slow[idx] = True
            continue
        pivots = (np.einsum("tii->ti", chol) ** 2).min(axis=1)
        good = pivots > np.maximum(_RCOND * top[idx], _VAR_FLOOR)
        slow[idx[~good]] = True
        z = np.linalg.solve(chol[good], dev[idx[good]][:, :, None])[:, :, 0]
        dist[idx[good]] = np.einsum("tj,tj->t", z, z)
    bad = np.flatnonzero(slow)
    if bad.size:
        evals, evecs = np.linalg.eigh(cov[bad])
        keep = evals > np.maximum(_RCOND * evals[:, -1:], _VAR_FLOOR)
        inv_evals = np.where(keep, 1.0 / np.where(keep, evals, 1.0), 0.0)
        proj = np.einsum("tij,ti->tj", evecs, dev[bad])
        dist[bad] = np.einsum("tj,tj->t", proj * proj, inv_evals)
        rank[bad] = keep.sum(axis=1)
    return dist, rank


def turbulence_index(returns: np.ndarray, window: int = 252) -> Turbulence:
    """Kritzman-Li turbulence of each bar vs its trailing ``window`` bars.

    ``returns``: ndarray (n_bars, n_assets), per-bar returns, finite, ``n_bars > window``.
    ``d_t = (y_t - mu_t)' pinv(S_t) (y_t - mu_t)`` with ``mu_t``, ``S_t`` the mean and sample
    covariance (``ddof=1``) of bars ``t - window .. t - 1``. The pseudo-inverse (eigenvalues
    below ``1e-10`` of the largest, or below an absolute ``1e-18``, dropped) makes a singular covariance (duplicate assets,
    ``window <= n_assets``, a constant asset) well defined: the distance is then measured in the
    subspace the window spans, and a move outside it is not counted (an all-constant window
    gives 0). All windows are computed at once: rolling sums of outer products, then a batched
    Cholesky solve, with the eigendecomposition only for (nearly) singular covariances.
    Cost: about 0.1 s for 8,000 bars of 20 assets.
    """
    source = "risk.turbulence_index"
    y = np.asarray(returns, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise EngineError(f"expected (n_bars, n_assets), got {y.shape}", source=source)
    if window < 2 or y.shape[0] <= window:
        raise EngineError(
            f"need window >= 2 and n_bars > window ({window}), got {y.shape[0]}", source=source
        )
    if not np.isfinite(y).all():
        raise EngineError("returns contain NaN or infinite values", source=source)
    n, k = y.shape
    yc = y - y.mean(axis=0)  # centring improves the precision of the rolling sums
    mean = np.empty((n - window, k))
    cov = np.empty((n - window, k, k))
    step = max(1, _CHUNK_ELEMENTS // (k * k))
    for t0 in range(window, n, step):
        t1 = min(n, t0 + step)
        mean[t0 - window : t1 - window], cov[t0 - window : t1 - window] = _window_moments(
            yc, window, t0, t1
        )
    dist, rank = _mahalanobis_sq(cov, yc[window:] - mean)
    index = np.full(n, np.nan)
    index[window:] = check_array(f"{source}.index", np.maximum(dist, 0.0), low=0.0)
    last = index[-1]
    valid = index[window:]
    percentile = check_scalar(
        f"{source}.percentile", 100.0 * float(np.mean(valid <= last)), low=0.0, high=100.0
    )
    return Turbulence(index=index, percentile=percentile, start=window, rank=int(rank[-1]))
