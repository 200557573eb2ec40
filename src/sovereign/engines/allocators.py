"""Closed-form and heuristic allocators: equal risk contribution, HRP, Kelly, inverse volatility.

Every function takes a covariance matrix ``covariance``: ndarray (n_assets, n_assets),
symmetric positive semi-definite, in any consistent units (per bar or annualised; see
:mod:`sovereign.engines.covariance`). Weights are fractions of equity, ndarray (n_assets,).

- :func:`equal_risk_contribution`: risk budgeting (Maillard, Roncalli & Teiletche 2010) via the
  convex problem ``min 1/2 y' S y - sum_i b_i log y_i`` (``y > 0``) solved by damped Newton;
  ``w = y / sum(y)`` then has risk contributions ``w_i (S w)_i / w' S w == b_i``.
- :func:`hrp`: hierarchical risk parity (Lopez de Prado 2016): angular correlation distance
  ``sqrt((1 - rho) / 2)``, linkage (single by default) by :func:`scipy.cluster.hierarchy.linkage`
  on that distance (as skfolio does; Lopez de Prado's paper clusters the Euclidean distance
  between distance columns instead), quasi-diagonalisation by the dendrogram's leaf order,
  recursive bisection of the ordered list in halves with inverse-variance cluster portfolios.
- :func:`kelly_weights`: tempered Kelly ``w = lam * S^-1 mu`` (the maximiser of the quadratic
  growth approximation ``w' mu - 1/2 w' S w`` scaled by ``lam``), clipped to a box, then scaled
  down to a volatility budget.
- :func:`inverse_volatility`: ``w_i ~ 1 / sigma_i`` fitted into a box with a given total; the
  optimiser's closed-form fallback.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from sovereign.engines.guard import check_array, check_scalar
from sovereign.errors import EngineError

__all__ = [
    "equal_risk_contribution",
    "hrp",
    "inverse_volatility",
    "kelly_weights",
    "risk_contributions",
]

FloatArray = npt.NDArray[np.float64]
_LINKAGES = ("single", "complete", "average", "weighted", "ward")


def _covariance(covariance: npt.ArrayLike, source: str) -> FloatArray:
    cov = check_array(f"{source}.covariance", covariance)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] == 0:
        raise EngineError(f"expected a non-empty square covariance, got {cov.shape}", source=source)
    scale = float(np.abs(cov).max())
    if not np.allclose(cov, cov.T, rtol=0.0, atol=1e-10 * max(scale, 1e-300)):
        raise EngineError("covariance is not symmetric", source=source)
    if (np.diag(cov) <= 0.0).any():
        i = int(np.flatnonzero(np.diag(cov) <= 0.0)[0])
        raise EngineError(
            f"asset {i} has zero variance; floor it (covariance.ledoit_wolf)", source=source
        )
    return 0.5 * (cov + cov.T)


def risk_contributions(weights: npt.ArrayLike, covariance: npt.ArrayLike) -> FloatArray:
    """Fraction of the portfolio variance each asset contributes: ``w_i (S w)_i / w' S w``.

    Sums to 1. Raises :class:`EngineError` for a zero-variance portfolio.
    """
    w = check_array("allocators.risk_contributions.weights", weights)
    cov = check_array("allocators.risk_contributions.covariance", covariance)
    marginal = cov @ w
    total = float(w @ marginal)
    if total <= 0.0:
        raise EngineError("portfolio variance is zero", source="allocators.risk_contributions")
    return check_array("allocators.risk_contributions", w * marginal / total)


_ROUNDING_TOL = 1e-8  # gradient (scaled units) accepted when rounding stops Newton earlier


def equal_risk_contribution(
    covariance: npt.ArrayLike,
    budgets: npt.ArrayLike | None = None,
    *,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> FloatArray:
    """Long-only risk-budgeting weights (sum 1); equal risk contribution when ``budgets`` is None.

    ``budgets``: ndarray (n_assets,), positive, normalised to sum 1. Newton on the scaled
    problem (the covariance is divided by its mean variance, which leaves the weights
    unchanged) stops when the gradient's infinity norm is below ``tol`` or the Newton decrement
    reaches machine precision; not converging in
    ``max_iter`` steps raises :class:`EngineError`. A singular covariance is fine (the log
    barrier keeps the Hessian positive definite); a zero variance is not.
    """
    source = "allocators.equal_risk_contribution"
    cov = _covariance(covariance, source)
    n = cov.shape[0]
    if budgets is None:
        b = np.full(n, 1.0 / n)
    else:
        b = check_array(f"{source}.budgets", budgets, low=0.0, shape=(n,))
        if (b <= 0.0).any():
            raise EngineError("risk budgets must be positive", source=source)
        b = b / b.sum()
    s = cov / float(np.mean(np.diag(cov)))
    y = b / np.sqrt(np.diag(s))
    y = y / np.sqrt(float(y @ s @ y))

    def f(v: FloatArray) -> float:
        return float(0.5 * v @ s @ v - b @ np.log(v))

    grad = s @ y - b / y
    for _ in range(max_iter):
        if float(np.abs(grad).max()) < tol:
            break
        step = np.linalg.solve(s + np.diag(b / y**2), -grad)
        t, fy, slope = 1.0, f(y), float(grad @ step)
        if -slope < 1e-8 and (y + step > 0.0).all():
            # Near the optimum a full Newton step converges quadratically, while the line
            # search's function values no longer resolve the decrease (rounding).
            y = y + step
            grad = s @ y - b / y
            continue
        while (y + t * step <= 0.0).any() or f(y + t * step) > fy + 1e-4 * t * slope:
            t *= 0.5
            if t < 1e-12:
                break
        if t < 1e-12:
            break  # no descent left at floating-point resolution
        y = y + t * step
        grad = s @ y - b / y
    if float(np.abs(grad).max()) >= _ROUNDING_TOL:
        raise EngineError(f"Newton did not converge in {max_iter} steps", source=source)
    return check_array(source, y / y.sum(), low=0.0, high=1.0)


def hrp(covariance: npt.ArrayLike, *, linkage_method: str = "single") -> FloatArray:
    """Hierarchical risk parity weights, long only, summing to 1 (see the module docstring).

    ``linkage_method``: one of single (Lopez de Prado's choice), complete, average, weighted,
    ward. One asset gets weight 1. Zero variances raise :class:`EngineError`.
    """
    source = "allocators.hrp"
    if linkage_method not in _LINKAGES:
        raise EngineError(
            f"unknown linkage {linkage_method!r}; use one of {_LINKAGES}", source=source
        )
    cov = _covariance(covariance, source)
    n = cov.shape[0]
    if n == 1:
        return np.ones(1)
    std = np.sqrt(np.diag(cov))
    corr = np.clip(cov / np.outer(std, std), -1.0, 1.0)
    dist = np.sqrt(np.clip(0.5 * (1.0 - corr), 0.0, 1.0))
    dist = 0.5 * (dist + dist.T)
    np.fill_diagonal(dist, 0.0)
    order = leaves_list(linkage(squareform(dist, checks=False), method=linkage_method))
    inv_var = 1.0 / np.diag(cov)

    def cluster_variance(ids: npt.NDArray[np.intp]) -> float:
        w = inv_var[ids] / inv_var[ids].sum()
        return float(w @ cov[np.ix_(ids, ids)] @ w)

    weights = np.ones(n)
    items: list[npt.NDArray[np.intp]] = [np.asarray(order, dtype=np.intp)]
    while items:
        nxt: list[npt.NDArray[np.intp]] = []
        for ids in items:
            if len(ids) < 2:
                continue
            left, right = ids[: len(ids) // 2], ids[len(ids) // 2 :]
            v_left, v_right = cluster_variance(left), cluster_variance(right)
            alpha = 1.0 - v_left / (v_left + v_right)
            weights[left] *= alpha
            weights[right] *= 1.0 - alpha
            nxt += [left, right]
        items = nxt
    return check_array(source, weights, low=0.0, high=1.0)


def kelly_weights(
    mu: npt.ArrayLike,
    covariance: npt.ArrayLike,
    *,
    fraction: float = 0.5,
    max_volatility: float | None = None,
    lower: float | npt.ArrayLike = -np.inf,
    upper: float | npt.ArrayLike = np.inf,
) -> FloatArray:
    """Tempered Kelly weights ``fraction * S^-1 mu``, clipped to ``[lower, upper]``, then scaled
    down (never up) so that the portfolio volatility ``sqrt(w' S w)`` is at most
    ``max_volatility`` (same units as ``sqrt`` of the covariance: per bar or annualised).

    ``mu``: ndarray (n_assets,), expected returns in the covariance's units. ``fraction`` in
    (0, 1] (1 = full Kelly). The box must contain 0 so that the scaling keeps it. A singular
    covariance raises :class:`EngineError`: shrink it first (covariance.ledoit_wolf).
    """
    source = "allocators.kelly_weights"
    cov = _covariance(covariance, source)
    n = cov.shape[0]
    m = check_array(f"{source}.mu", mu, shape=(n,))
    lam = check_scalar(f"{source}.fraction", fraction, low=0.0, high=1.0)
    if lam == 0.0:
        raise EngineError("fraction must be in (0, 1]", source=source)
    lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,))
    hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,))
    if np.isnan(lo).any() or np.isnan(hi).any() or (lo > 0.0).any() or (hi < 0.0).any():
        raise EngineError("the box [lower, upper] must contain 0 for every asset", source=source)
    if np.linalg.cond(cov) > 1e12:
        raise EngineError("covariance is singular; shrink it first", source=source)
    w = np.clip(lam * np.linalg.solve(cov, m), lo, hi)
    if max_volatility is not None:
        budget = check_scalar(f"{source}.max_volatility", max_volatility, low=0.0)
        vol = float(np.sqrt(max(float(w @ cov @ w), 0.0)))
        if vol > budget:
            w = w * (budget / vol)
    return check_array(source, w)


def inverse_volatility(
    covariance: npt.ArrayLike,
    *,
    total: float = 1.0,
    lower: float | npt.ArrayLike = 0.0,
    upper: float | npt.ArrayLike = 1.0,
) -> FloatArray:
    """Inverse-volatility weights fitted into a box: ``w = clip(t / sigma, lower, upper)`` with
    the scalar ``t >= 0`` chosen so that ``sum(w) == total`` (found by bisection, then solved
    exactly on the assets not at a bound).

    Raises :class:`EngineError` when no ``t`` reaches ``total`` (the box cannot hold it).
    """
    source = "allocators.inverse_volatility"
    cov = _covariance(covariance, source)
    n = cov.shape[0]
    raw = 1.0 / np.sqrt(np.diag(cov))
    lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,))
    hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,))
    target = check_scalar(f"{source}.total", total)
    if np.isnan(lo).any() or np.isnan(hi).any() or (lo > hi).any():
        raise EngineError("invalid box: lower > upper or NaN", source=source)

    def g(t: float) -> float:
        return float(np.clip(t * raw, lo, hi).sum())

    t_lo, t_hi = 0.0, 1.0 / raw.sum()
    if g(t_lo) > target + 1e-12:
        raise EngineError(f"the box forces a total above {target:g}", source=source)
    while g(t_hi) < target:
        t_hi *= 2.0
        if t_hi > 1e300 or not np.isfinite(g(t_hi)):
            raise EngineError(f"the box cannot hold a total of {target:g}", source=source)
    for _ in range(200):
        mid = 0.5 * (t_lo + t_hi)
        if g(mid) < target:
            t_lo = mid
        else:
            t_hi = mid
    w = np.clip(t_hi * raw, lo, hi)
    free = (t_hi * raw > lo) & (t_hi * raw < hi)
    if free.any():
        t = (target - float(w[~free].sum())) / float(raw[free].sum())
        w = np.where(free, np.clip(t * raw, lo, hi), w)
    if abs(float(w.sum()) - target) > 1e-9 * max(1.0, abs(target)):
        raise EngineError(f"could not fit a total of {target:g} into the box", source=source)
    return check_array(source, w)
