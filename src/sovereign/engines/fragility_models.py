"""The two risk models behind the fragility engine, as precomputed stress kernels.

Everything here is pure numerics over already-cleaned arrays; :mod:`sovereign.engines.fragility`
selects the data (crisis windows, the trailing fit window, no look-ahead) and calls these.

**Stress kernel.** Every (scenario, model) pair is reduced once per refit to a
:class:`StressKernel`: a matrix of per-asset stressed moves ``moves`` of shape
``(n_outcomes, n_assets)`` (one row per bootstrapped path, per historical H-day window, or one
deterministic shock), a tail size ``tail_count``, and an optional risk term. The loss of a
weight vector ``w`` (fractions of equity, long > 0, short < 0) is::

    loss(w) = mean of the tail_count largest values of -(moves @ w)
              + risk_scale * || risk_matrix @ w ||_2

a positive fraction of equity (negative means the book gains in that scenario). Both terms are
positively homogeneous of degree 1: ``loss(c * w) == c * loss(w)`` for ``c >= 0``, so the loss is
linear in the scale of the book. Evaluating a new ``w`` is one mat-vec and a partial sort.

**Model 1, historical bootstrap** (:func:`bootstrap_paths`): moving-block bootstrap of H-day
paths of the assets' own daily returns; each path's P&L is buy-and-hold (positions are not
rebalanced during the stress): asset ``i`` returns ``prod(1 + r_t,i) - 1`` over the path, so the
path P&L ``sum_i w_i (prod(1 + r_t,i) - 1)`` is linear in ``w``. The loss is the expected
shortfall at the configured confidence of the path loss (``tail_count = ceil(n_paths * (1 -
confidence))``).

**Model 2, factor model with stressed moves** (:func:`fit_factors`): a market factor (the
equal-weight return) plus ``k`` principal components of the assets' residuals after the market,
fitted on a trailing window; betas by least squares of each asset on ``[1, factors]``; the
idiosyncratic volatility is the residual standard deviation. A historical window's stressed
moves are the H-day sums of its factor returns (:func:`factor_returns`, the fit's fixed linear
map), mapped to assets through the betas (:func:`window_sums` then ``sums @ betas.T``); the loss
is the worst window plus the idiosyncratic risk at a stressed multiple (normal expected
shortfall of ``multiple * idio_vol * sqrt(h)``). Intercepts (alpha) never enter a stress.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import norm

from sovereign.errors import EngineError

__all__ = [
    "FactorFit",
    "KernelStack",
    "ModelSettings",
    "RiskModel",
    "StressKernel",
    "bootstrap_paths",
    "factor_returns",
    "fill_with_market",
    "fit_factors",
    "historical_kernels",
    "market_gap_kernels",
    "normal_es_multiplier",
    "returns_matrix",
    "single_asset_kernels",
    "stressed_correlation_window",
    "volatility_kernels",
    "window_sums",
]

Array = npt.NDArray[np.float64]

_EIG_RTOL = 1e-10  # principal components with eigenvalue below this x the largest are dropped
_STD_FLOOR = 1e-12  # a standard deviation below this is treated as zero (a constant series)


class RiskModel(StrEnum):
    """The risk models the fragility engine runs; the worse of them is the answer."""

    HISTORICAL_BOOTSTRAP = "historical_bootstrap"
    FACTOR_STRESS = "factor_stress"


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class StressKernel:
    """One scenario under one model, precomputed: ``w -> loss`` in a mat-vec.

    ``moves``: ndarray (n_outcomes, n_assets), per-asset simple returns of each outcome.
    ``tail_count``: how many of the worst outcomes are averaged (1 = the worst).
    ``risk_matrix``: ndarray (p, n_assets) or None; ``risk_scale`` >= 0 multiplies its norm.
    """

    moves: Array
    tail_count: int
    risk_matrix: Array | None = None
    risk_scale: float = 0.0

    def loss(self, weights: Array) -> float:
        """Stressed loss of ``weights`` (ndarray (n_assets,), fractions of equity), as a fraction
        of equity; positive is a loss, negative a gain."""
        outcome_losses = -(self.moves @ weights)
        m = outcome_losses.shape[0]
        k = min(self.tail_count, m)
        if k == 1:
            tail = float(outcome_losses.max())
        elif k == m:
            tail = float(outcome_losses.mean())
        else:
            tail = float(np.partition(outcome_losses, m - k)[m - k :].mean())
        if self.risk_matrix is None or self.risk_scale == 0.0:
            return tail
        return tail + self.risk_scale * float(np.linalg.norm(self.risk_matrix @ weights))


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class KernelStack:
    """Many kernels evaluated at once (the per-bar form): one mat-vec for every kernel's moves,
    one batched partial sort per group of same-sized expected-shortfall kernels, one mat-vec for
    every risk term. :meth:`losses` equals ``[k.loss(w) for k in kernels]``.

    Build with :meth:`of`; ``moves``: ndarray (sum of n_outcomes, n_assets), kernels' rows in
    order; ``risks``: ndarray (sum of p, n_assets), the scaled risk matrices of the kernels in
    ``risk_ids``.
    """

    n_kernels: int
    moves: Array
    worst_ids: npt.NDArray[np.intp]
    worst_starts: npt.NDArray[np.intp]
    worst_end: int
    es_groups: tuple[tuple[npt.NDArray[np.intp], int, int, int], ...]
    risks: Array
    risk_ids: npt.NDArray[np.intp]
    risk_starts: npt.NDArray[np.intp]

    @classmethod
    def of(cls, kernels: list[StressKernel], n_assets: int) -> KernelStack:
        """Stack ``kernels``, each over ``n_assets`` assets."""
        worst: list[int] = []
        shapes: dict[tuple[int, int], list[int]] = {}  # (n_outcomes, tail) -> kernel ids
        for i, k in enumerate(kernels):
            rows = k.moves.shape[0]
            if min(k.tail_count, rows) == 1:
                worst.append(i)
            else:
                shapes.setdefault((rows, min(k.tail_count, rows)), []).append(i)
        order = worst + [i for ids in shapes.values() for i in ids]
        sizes = np.array([kernels[i].moves.shape[0] for i in order], dtype=np.intp)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        groups, at = [], len(worst)
        for (rows, tail), ids in shapes.items():
            start = int(offsets[at])
            groups.append((np.array(ids, dtype=np.intp), start, rows, tail))
            at += len(ids)
        risky: list[int] = []
        risks: list[Array] = []
        for i, k in enumerate(kernels):
            if k.risk_matrix is not None and k.risk_scale != 0.0:
                risky.append(i)
                risks.append(k.risk_scale * k.risk_matrix)
        risk_sizes = [r.shape[0] for r in risks]
        return cls(
            n_kernels=len(kernels),
            moves=np.vstack([np.zeros((0, n_assets))] + [kernels[i].moves for i in order]),
            worst_ids=np.array(worst, dtype=np.intp),
            worst_starts=offsets[: len(worst)],
            worst_end=int(offsets[len(worst)]),
            es_groups=tuple(groups),
            risks=np.vstack([np.zeros((0, n_assets)), *risks]),
            risk_ids=np.array(risky, dtype=np.intp),
            risk_starts=np.concatenate([[0], np.cumsum(risk_sizes)[:-1]]).astype(np.intp),
        )

    def losses(self, weights: Array) -> Array:
        """Every kernel's loss of ``weights`` (ndarray (n_assets,)): ndarray (n_kernels,)."""
        out = np.zeros(self.n_kernels)
        outcome_losses = -(self.moves @ weights)
        if self.worst_ids.size:
            out[self.worst_ids] = np.maximum.reduceat(
                outcome_losses[: self.worst_end], self.worst_starts
            )
        for ids, start, rows, tail in self.es_groups:
            block = outcome_losses[start : start + ids.size * rows].reshape(ids.size, rows)
            if tail < rows:
                block = np.partition(block, rows - tail, axis=1)[:, rows - tail :]
            out[ids] = block.mean(axis=1)
        if self.risk_ids.size:
            y = self.risks @ weights
            out[self.risk_ids] += np.sqrt(np.add.reduceat(y * y, self.risk_starts))
        return out


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class FactorFit:
    """A market + PCA factor model fitted on a trailing window.

    ``market_intercept``, ``market_beta``: ndarray (n_assets,), the first-stage regression of each
    asset on the equal-weight market; ``loadings``: ndarray (n_assets, k), orthonormal principal
    directions of that regression's residuals (k may be 0); ``betas``: ndarray (n_assets, 1 + k),
    least-squares exposures to ``[market, pc_1..pc_k]``; ``idio_vol``: ndarray (n_assets,),
    residual standard deviation per day; ``factor_cov``: ndarray (1 + k, 1 + k), the factors'
    sample covariance per day; ``returns``: ndarray (n_rows, n_assets), the filled fit window.
    """

    market_intercept: Array
    market_beta: Array
    loadings: Array
    betas: Array
    idio_vol: Array
    factor_cov: Array
    returns: Array

    @property
    def n_factors(self) -> int:
        """Number of factors including the market."""
        return int(self.betas.shape[1])


def normal_es_multiplier(confidence: float) -> float:
    """Expected shortfall of a standard normal at ``confidence``: ``pdf(z) / (1 - confidence)``
    with ``z = ppf(confidence)`` (2.665 at 0.99)."""
    z = float(norm.ppf(confidence))
    return float(norm.pdf(z)) / (1.0 - confidence)


def returns_matrix(
    returns: pd.DataFrame | npt.ArrayLike,
    timestamps: pd.DatetimeIndex | None,
    symbols: tuple[str, ...] | None,
) -> tuple[Array, pd.DatetimeIndex, tuple[str, ...]]:
    """Validated ``(values, timestamps, symbols)`` from a returns DataFrame or ndarray.

    ``returns``: DataFrame (DatetimeIndex, columns = symbols) or ndarray (n_rows, n_assets) of
    simple daily returns (NaN allowed); ``timestamps`` is required with an ndarray and
    ``symbols`` names its columns (default ``asset_<i>``). Raises EngineError unless the
    timestamps are UTC, strictly increasing, one per row, and every return is finite or NaN and
    at least -100%.
    """
    src = "fragility.returns"
    if isinstance(returns, pd.DataFrame):
        index = returns.index if timestamps is None else timestamps
        names = tuple(str(c) for c in returns.columns)
        values = returns.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = np.asarray(returns, dtype=np.float64)
        if timestamps is None:
            raise EngineError("timestamps are required with an array of returns", source=src)
        index = timestamps
        names = symbols or tuple(f"asset_{i}" for i in range(values.shape[-1]))
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise EngineError(f"expected (n_rows, n_assets) returns, got {values.shape}", source=src)
    if not isinstance(index, pd.DatetimeIndex) or len(index) != values.shape[0]:
        raise EngineError("timestamps must be a DatetimeIndex, one per row", source=src)
    if index.tz is None or str(index.tz) != "UTC":
        raise EngineError("timestamps must be UTC", source=src)
    if not index.is_monotonic_increasing or not index.is_unique:
        raise EngineError("timestamps must be strictly increasing", source=src)
    if len(names) != values.shape[1]:
        raise EngineError("one symbol per column is required", source=src)
    if np.isinf(values).any():
        raise EngineError("returns contain an infinite value", source=src)
    if (values < -1.0).any():
        raise EngineError("a simple return below -100%", source=src)
    return values, index, names


def fill_with_market(returns: Array) -> tuple[Array, npt.NDArray[np.bool_], float]:
    """Rows with at least one return, missing cells filled with that day's market return.

    ``returns``: ndarray (n_rows, n_assets), simple daily returns, NaN where an asset has none.
    The market return of a day is the mean of the assets that have one (the equal-weight
    return), so a missing asset moves with the market that day. Rows where no asset has a return
    are dropped. Returns ``(filled, kept_rows, filled_fraction)``: the filled ndarray
    (n_kept, n_assets), a bool mask (n_rows,) of the kept rows, and the share of kept cells that
    were filled.
    """
    valid = np.isfinite(returns)
    kept = valid.any(axis=1)
    block = returns[kept]
    valid = valid[kept]
    kept_mask: npt.NDArray[np.bool_] = np.asarray(kept, dtype=bool)
    if block.shape[0] == 0:
        return np.empty((0, returns.shape[1])), kept_mask, 0.0
    count = valid.sum(axis=1)
    market = np.where(valid, block, 0.0).sum(axis=1) / count
    filled: Array = np.where(valid, block, market[:, None])
    return filled, kept_mask, float((~valid).mean())


def bootstrap_paths(
    window: Array, *, horizon: int, block: int, n_paths: int, rng: np.random.Generator
) -> Array:
    """Compounded buy-and-hold returns of block-bootstrapped paths.

    ``window``: ndarray (n_rows, n_assets), simple daily returns without NaN. Each path is
    ``ceil(horizon / b)`` blocks of ``b = min(block, n_rows)`` consecutive rows, each starting at
    a uniformly drawn row (moving-block bootstrap), cut to ``horizon`` rows. Returns ndarray
    (n_paths, n_assets): ``prod_t (1 + r_t,i) - 1`` over each path.
    """
    n_rows = window.shape[0]
    if n_rows == 0:
        raise EngineError("empty window", source="fragility.bootstrap_paths")
    b = min(block, n_rows)
    n_blocks = -(-horizon // b)
    starts = rng.integers(0, n_rows - b + 1, size=(n_paths, n_blocks))
    rows = (starts[:, :, None] + np.arange(b)).reshape(n_paths, n_blocks * b)[:, :horizon]
    paths: Array = np.prod(1.0 + window[rows], axis=1) - 1.0
    return paths


def fit_factors(returns: Array, *, n_pca: int, proxied: npt.NDArray[np.bool_]) -> FactorFit:
    """Fit the market + ``n_pca`` PCA factor model on a filled trailing window.

    ``returns``: ndarray (n_rows, n_assets), simple daily returns without NaN (see
    :func:`fill_with_market`). ``proxied``: bool ndarray (n_assets,), assets whose history in the
    window is mostly filled-in market returns: their idiosyncratic volatility is set to the
    largest one among the other assets (their own residual is fictitiously small).

    The number of principal components is at most ``n_assets - 1`` and drops components with a
    (numerically) zero eigenvalue. Raises EngineError when the market factor has no variance
    (constant prices) or when there are too few rows for the regression.
    """
    src = "fragility.fit_factors"
    n_rows, n_assets = returns.shape
    market = returns.mean(axis=1)
    m_centered = market - market.mean()
    m_var = float(m_centered @ m_centered)
    if n_rows < 2 or m_var <= _STD_FLOOR**2 * n_rows:
        raise EngineError("the market factor has no variance in the fit window", source=src)
    centered = returns - returns.mean(axis=0)
    market_beta = (m_centered @ centered) / m_var
    intercept = returns.mean(axis=0) - market_beta * market.mean()
    resid = returns - intercept - np.outer(market, market_beta)
    eigval, eigvec = np.linalg.eigh(resid.T @ resid / max(n_rows - 1, 1))
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = eigval[order], eigvec[:, order]
    top = float(eigval[0]) if eigval.size else 0.0
    keep = min(n_pca, n_assets - 1, int((eigval > _EIG_RTOL * top).sum()) if top > 0 else 0)
    loadings = eigvec[:, :keep]
    factors = np.column_stack([market, resid @ loadings])
    design = np.column_stack([np.ones(n_rows), factors])
    n_regressors = design.shape[1]
    if n_rows <= n_regressors:
        raise EngineError(f"{n_rows} rows for {n_regressors} regressors", source=src)
    coef, *_ = np.linalg.lstsq(design, returns, rcond=None)
    residual = returns - design @ coef
    idio = np.sqrt((residual**2).sum(axis=0) / (n_rows - n_regressors))
    if proxied.any():
        own = idio[~proxied]
        idio = np.where(proxied, float(own.max()) if own.size else 0.0, idio)
    return FactorFit(
        market_intercept=intercept,
        market_beta=market_beta,
        loadings=loadings,
        betas=coef[1:].T.copy(),
        idio_vol=idio,
        factor_cov=np.atleast_2d(np.cov(factors, rowvar=False)),
        returns=returns,
    )


def factor_returns(fit: FactorFit, returns: Array) -> Array:
    """Factor returns of new rows through the fit's fixed linear map.

    ``returns``: ndarray (n_rows, n_assets) without NaN. Returns ndarray (n_rows, 1 + k): the
    equal-weight market return, then ``(r - intercept - market_beta * market) @ loadings``.
    """
    market = returns.mean(axis=1)
    resid = returns - fit.market_intercept - np.outer(market, fit.market_beta)
    out: Array = np.column_stack([market, resid @ fit.loadings])
    return out


def window_sums(values: Array, horizon: int) -> Array:
    """Sums over every run of ``min(horizon, n_rows)`` consecutive rows.

    ``values``: ndarray (n_rows, n_cols). Returns ndarray (n_rows - h + 1, n_cols).
    """
    h = min(horizon, values.shape[0])
    csum = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    out: Array = csum[h:] - csum[:-h]
    return out


def stressed_correlation_window(
    returns: Array, *, vol_multiplier: float, correlation: float
) -> Array:
    """The fit window rebuilt with volatilities x ``vol_multiplier`` and correlations near
    ``correlation``, keeping the data's own (fat-tailed) shapes.

    ``returns``: ndarray (n_rows, n_assets) without NaN. With ``z_m`` the standardised
    equal-weight market and ``z_i`` asset ``i``'s standardised residual against it, the stressed
    return is ``vol_multiplier * sd_i * (sqrt(rho) z_m + sqrt(1 - rho) z_i)``: its standard
    deviation is exactly ``vol_multiplier * sd_i``, and the correlation of two assets is
    ``rho + (1 - rho) corr(z_i, z_j)``, i.e. ``rho`` when the residuals are uncorrelated. The
    drift is dropped (a stress does not credit expected returns). An asset that is the market
    (residual zero) gets ``z_m`` alone; a constant asset stays at zero. Returns ndarray
    (n_rows, n_assets).
    """
    sd = returns.std(axis=0, ddof=1) if returns.shape[0] > 1 else np.zeros(returns.shape[1])
    market = returns.mean(axis=1)
    m_sd = float(market.std(ddof=1)) if market.size > 1 else 0.0
    if m_sd <= _STD_FLOOR:
        raise EngineError(
            "the market factor has no variance in the fit window",
            source="fragility.stressed_correlation_window",
        )
    z_m = (market - market.mean()) / m_sd
    safe_sd = np.where(sd > _STD_FLOOR, sd, 1.0)
    x = (returns - returns.mean(axis=0)) / safe_sd
    rho_i = (z_m @ x) / (z_m.size - 1)
    resid = x - np.outer(z_m, rho_i)
    r_sd = resid.std(axis=0, ddof=1)
    has_resid = r_sd > 1e-9
    z_i = resid / np.where(has_resid, r_sd, 1.0)
    a = np.where(has_resid, math.sqrt(correlation), 1.0)
    b = np.where(has_resid, math.sqrt(1.0 - correlation), 0.0)
    stressed = vol_multiplier * np.where(sd > _STD_FLOOR, sd, 0.0) * (np.outer(z_m, a) + b * z_i)
    out: Array = np.maximum(stressed, -1.0)
    return out


# ------------------------------------------------------------------------ scenario -> kernels


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelSettings:
    """What the kernel builders need: ``horizon`` days of the stress, bootstrap ``block`` days
    and ``n_paths``, the ES ``confidence`` and the ``idio_multiple`` on idiosyncratic vol."""

    horizon: int
    block: int
    n_paths: int
    confidence: float
    idio_multiple: float

    @property
    def tail_count(self) -> int:
        """Paths averaged by the expected shortfall: ``ceil(n_paths * (1 - confidence))``."""
        return max(1, math.ceil(self.n_paths * (1.0 - self.confidence) - 1e-9))

    def idio_scale(self, horizon: int) -> float:
        """``idio_multiple * es_z(confidence) * sqrt(horizon)``: the factor on ``||idio * w||``."""
        return self.idio_multiple * normal_es_multiplier(self.confidence) * math.sqrt(horizon)


def historical_kernels(
    window: Array, fit: FactorFit, settings: ModelSettings, rng: np.random.Generator
) -> tuple[StressKernel, StressKernel]:
    """(bootstrap, factor) kernels of a crisis window: ndarray (n_rows, n_assets) without NaN.

    Bootstrap: ES of ``n_paths`` block-bootstrapped ``horizon``-day paths. Factor: the worst
    ``h = min(horizon, n_rows)``-day sum of the window's factor returns through the betas, plus
    ``idio_scale(h) * ||idio_vol * w||``.
    """
    paths = bootstrap_paths(
        window, horizon=settings.horizon, block=settings.block, n_paths=settings.n_paths, rng=rng
    )
    h = min(settings.horizon, window.shape[0])
    sums = window_sums(factor_returns(fit, window), h)
    return (
        StressKernel(moves=paths, tail_count=settings.tail_count),
        StressKernel(
            moves=sums @ fit.betas.T,
            tail_count=1,
            risk_matrix=np.diag(fit.idio_vol),
            risk_scale=settings.idio_scale(h),
        ),
    )


def market_gap_kernels(
    fit: FactorFit, size: float, settings: ModelSettings
) -> tuple[StressKernel, StressKernel]:
    """(asset-space, factor) kernels of a market gap of ``size`` (a simple return).

    Asset space: every asset moves ``size``. Factor: the market factor moves ``size``, each asset
    ``beta_market * size``, plus ``idio_scale(horizon) * ||idio_vol * w||``.
    """
    n = fit.betas.shape[0]
    return (
        StressKernel(moves=np.full((1, n), size), tail_count=1),
        StressKernel(
            moves=size * fit.betas[:, :1].T,
            tail_count=1,
            risk_matrix=np.diag(fit.idio_vol),
            risk_scale=settings.idio_scale(settings.horizon),
        ),
    )


def single_asset_kernels(n_assets: int, size: float) -> tuple[StressKernel, StressKernel]:
    """Both models: the one asset that hurts the book most moves ``size``; the loss is
    ``max_i(-size * w_i)``. The factor model adds nothing (the event is idiosyncratic)."""
    kernel = StressKernel(moves=size * np.eye(n_assets), tail_count=1)
    return kernel, kernel


def volatility_kernels(
    fit: FactorFit,
    settings: ModelSettings,
    rng: np.random.Generator,
    *,
    vol_multiplier: float,
    rho: float,
) -> tuple[StressKernel, StressKernel]:
    """(bootstrap, factor) kernels of "volatility x ``vol_multiplier``, correlations ``rho``".

    Bootstrap: ES of block-bootstrapped paths of :func:`stressed_correlation_window` of the fit
    window. Factor: normal ES over ``horizon`` days with the factor model's asset vols
    (``sqrt(diag(B F B^T) + idio^2)``) x ``vol_multiplier`` and every correlation ``rho``:
    ``es_z sqrt(horizon) ||L^T D w||`` with ``L L^T`` the equicorrelation matrix and ``D`` the
    stressed vols.
    """
    stressed = stressed_correlation_window(
        fit.returns, vol_multiplier=vol_multiplier, correlation=rho
    )
    paths = bootstrap_paths(
        stressed, horizon=settings.horizon, block=settings.block, n_paths=settings.n_paths, rng=rng
    )
    n = fit.betas.shape[0]
    variance = np.einsum("ik,kl,il->i", fit.betas, fit.factor_cov, fit.betas) + fit.idio_vol**2
    vols = vol_multiplier * np.sqrt(np.maximum(variance, 0.0))
    corr = np.full((n, n), rho)
    np.fill_diagonal(corr, 1.0)
    matrix = np.linalg.cholesky(corr).T * vols[None, :]
    scale = normal_es_multiplier(settings.confidence) * math.sqrt(settings.horizon)
    return (
        StressKernel(moves=paths, tail_count=settings.tail_count),
        StressKernel(moves=np.zeros((1, n)), tail_count=1, risk_matrix=matrix, risk_scale=scale),
    )
