"""Covariance estimators for portfolio construction: sample, Ledoit-Wolf shrinkage, factor model.

Units. Every function takes ``returns`` as an ndarray of shape (n_bars, n_assets) of simple
per-bar returns (daily bars: daily returns) and returns covariances **per bar** (variance of a
one-bar return) unless ``periods_per_year`` is given, in which case the result is annualised by
multiplying by it (252 for daily bars). The optimiser does not care which, as long as the
expected returns it is handed are in the same units.

Degenerate input:

- fewer than 2 rows, a non-2-D array, a NaN or an infinite value: :class:`EngineError` (drop or
  fill missing rows before calling; the estimator will not guess);
- a constant column (zero sample variance): kept, with its variance raised to ``min_variance``
  (a documented floor, reported in ``floored``) so the matrix stays positive definite; the
  optimiser then sees it as (almost) riskless, which is what the data says;
- every column constant: :class:`EngineError` (there is no risk to estimate).

Ledoit-Wolf is scikit-learn's :class:`~sklearn.covariance.LedoitWolf` (target: a scaled identity
``mu * I`` with ``mu`` the mean sample variance; shrinkage intensity from the Ledoit-Wolf 2004
formula; the sample covariance inside it uses ``1/n``, not ``1/(n-1)``). A singular sample
covariance (more assets than bars, duplicated assets) becomes positive definite after shrinkage
whenever the intensity is positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.covariance import LedoitWolf

from sovereign.engines.guard import check_array, check_scalar
from sovereign.errors import EngineError

__all__ = [
    "DEFAULT_MIN_VARIANCE",
    "CovarianceEstimate",
    "FactorModel",
    "factor_model",
    "factor_model_from_covariance",
    "ledoit_wolf",
    "psd_sqrt",
    "sample_covariance",
]

FloatArray = npt.NDArray[np.float64]

#: Variance floor (per bar, i.e. a one-bar volatility of 1e-6) for constant assets and for the
#: idiosyncratic variances of a factor model.
DEFAULT_MIN_VARIANCE = 1e-12


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class CovarianceEstimate:
    """A covariance matrix and how it was obtained.

    ``covariance``: ndarray (n_assets, n_assets), symmetric positive semi-definite, per bar or
    annualised (see the module docstring). ``shrinkage``: Ledoit-Wolf intensity in [0, 1] (0 for
    the sample covariance). ``n_observations``: rows used. ``floored``: indices of the assets
    with a constant return column or an estimated variance below the floor; their variance is
    ``max(estimate, min_variance)`` (for Ledoit-Wolf a constant asset keeps the shrinkage
    target's share, ``shrinkage * mean variance``, when that is above the floor).
    """

    covariance: FloatArray
    shrinkage: float
    n_observations: int
    floored: tuple[int, ...]


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class FactorModel:
    """``Sigma ~= loadings @ factor_covariance @ loadings.T + diag(idiosyncratic)``.

    ``loadings``: ndarray (n_assets, k), exposure of each asset to each factor.
    ``factor_covariance``: ndarray (k, k), covariance of the factor returns (same units as the
    covariance it came from). ``idiosyncratic``: ndarray (n_assets,), residual variances, each at
    least the floor. ``explained``: fraction of the total variance (trace) the factors carry.
    """

    loadings: FloatArray
    factor_covariance: FloatArray
    idiosyncratic: FloatArray
    explained: float

    @property
    def n_assets(self) -> int:
        return int(self.loadings.shape[0])

    @property
    def n_factors(self) -> int:
        return int(self.loadings.shape[1])

    def covariance(self) -> FloatArray:
        """The full (n_assets, n_assets) covariance the model implies."""
        full = self.loadings @ self.factor_covariance @ self.loadings.T
        return np.asarray(full + np.diag(self.idiosyncratic), dtype=np.float64)


# ----------------------------------------------------------------------------------- estimators


def _returns(returns: npt.ArrayLike, source: str) -> FloatArray:
    try:
        x = np.asarray(returns, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise EngineError(f"returns are not numeric: {err}", source=source) from err
    if x.ndim != 2:
        raise EngineError(
            f"expected returns of shape (n_bars, n_assets), got {x.shape}", source=source
        )
    if x.shape[0] < 2:
        raise EngineError(f"need at least 2 rows of returns, got {x.shape[0]}", source=source)
    if x.shape[1] < 1:
        raise EngineError("no assets (0 columns)", source=source)
    if not np.isfinite(x).all():
        row, col = (int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise EngineError(
            f"non-finite return at row {row}, asset {col}; drop or fill missing rows first",
            source=source,
        )
    return x


def _constant_columns(x: FloatArray, source: str) -> tuple[int, ...]:
    const = np.ptp(x, axis=0) == 0.0
    if const.all():
        raise EngineError("every asset's return is constant: no risk to estimate", source=source)
    return tuple(int(i) for i in np.flatnonzero(const))


def _finish(
    cov: FloatArray,
    *,
    shrinkage: float,
    n_obs: int,
    floored: tuple[int, ...],
    min_variance: float,
    periods_per_year: float | None,
    source: str,
) -> CovarianceEstimate:
    cov = 0.5 * (cov + cov.T)
    if floored:  # constant columns: rounding leaves ~1e-38 covariances; they are exactly 0
        idx = np.asarray(floored)
        keep = np.diag(cov)[idx].copy()
        cov[idx, :] = 0.0
        cov[:, idx] = 0.0
        cov[idx, idx] = keep
    diag = np.diag(cov).copy()
    low = np.flatnonzero(diag < min_variance)
    floored = tuple(sorted(set(floored) | {int(i) for i in low}))
    if floored:
        idx = np.asarray(floored)
        cov[idx, idx] = np.maximum(diag[idx], min_variance)
    if periods_per_year is not None:
        cov = cov * check_scalar(f"{source}.periods_per_year", periods_per_year, low=1e-12)
    n = cov.shape[0]
    return CovarianceEstimate(
        covariance=check_array(f"{source}.covariance", cov, shape=(n, n)),
        shrinkage=check_scalar(f"{source}.shrinkage", shrinkage, low=0.0, high=1.0),
        n_observations=n_obs,
        floored=floored,
    )


def sample_covariance(
    returns: npt.ArrayLike,
    *,
    periods_per_year: float | None = None,
    min_variance: float = DEFAULT_MIN_VARIANCE,
) -> CovarianceEstimate:
    """Unbiased sample covariance (``1/(n-1)``) of ``returns`` (n_bars, n_assets).

    Singular whenever n_bars <= n_assets or assets are collinear: prefer :func:`ledoit_wolf`
    for the optimiser. Constant columns get the variance floor.
    """
    source = "covariance.sample_covariance"
    x = _returns(returns, source)
    floored = _constant_columns(x, source)
    cov = np.atleast_2d(np.cov(x, rowvar=False, ddof=1))
    return _finish(
        cov,
        shrinkage=0.0,
        n_obs=x.shape[0],
        floored=floored,
        min_variance=min_variance,
        periods_per_year=periods_per_year,
        source=source,
    )


def ledoit_wolf(
    returns: npt.ArrayLike,
    *,
    periods_per_year: float | None = None,
    min_variance: float = DEFAULT_MIN_VARIANCE,
) -> CovarianceEstimate:
    """Ledoit-Wolf shrunk covariance of ``returns`` (n_bars, n_assets), per bar by default.

    ``periods_per_year`` (e.g. 252 for daily bars) annualises the result. Constant columns get
    the variance floor ``min_variance`` (per bar, applied before annualising).
    """
    source = "covariance.ledoit_wolf"
    x = _returns(returns, source)
    floored = _constant_columns(x, source)
    model = LedoitWolf(store_precision=False, assume_centered=False).fit(x)
    return _finish(
        np.array(model.covariance_, dtype=np.float64),
        shrinkage=float(model.shrinkage_),
        n_obs=x.shape[0],
        floored=floored,
        min_variance=min_variance,
        periods_per_year=periods_per_year,
        source=source,
    )


# -------------------------------------------------------------------------------- factor model


def psd_sqrt(matrix: npt.ArrayLike, *, source: str = "covariance.psd_sqrt") -> FloatArray:
    """A square root ``R`` with ``R.T @ R == matrix`` for a symmetric PSD (n, n) matrix.

    Cholesky (upper factor) when the matrix is positive definite, else the symmetric eigen root
    with eigenvalues below ``1e-12 * max`` set to zero (a singular covariance is fine). Raises
    :class:`EngineError` for a non-square, non-symmetric or non-finite matrix, or one with a
    clearly negative eigenvalue (below ``-1e-8 * max``): it is not a covariance.
    """
    m = check_array(source, matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise EngineError(f"expected a square matrix, got shape {m.shape}", source=source)
    scale = max(float(np.abs(m).max()), 1e-300)
    if not np.allclose(m, m.T, rtol=0.0, atol=1e-10 * scale):
        raise EngineError("matrix is not symmetric", source=source)
    m = 0.5 * (m + m.T)
    try:
        return np.asarray(np.linalg.cholesky(m).T, dtype=np.float64)
    except np.linalg.LinAlgError:
        pass  # positive semi-definite only: the eigendecomposition below handles it
    vals, vecs = np.linalg.eigh(m)
    top = max(float(vals[-1]), 0.0)
    if vals[0] < -1e-8 * max(top, 1e-300):
        raise EngineError(
            f"matrix has a negative eigenvalue {vals[0]:.3g}: not a covariance", source=source
        )
    vals = np.where(vals > 1e-12 * top, vals, 0.0)
    return np.asarray((vecs * np.sqrt(vals)).T, dtype=np.float64)


def factor_model_from_covariance(
    covariance: npt.ArrayLike, k: int, *, min_variance: float = DEFAULT_MIN_VARIANCE
) -> FactorModel:
    """Statistical (PCA) factor model of a covariance matrix (n_assets, n_assets).

    The factors are the ``k`` leading principal components: ``loadings`` the top-``k``
    eigenvectors (orthonormal columns), ``factor_covariance`` the diagonal of their eigenvalues,
    ``idiosyncratic`` the diagonal of the remainder floored at ``min_variance``. The implied
    covariance matches the input's variances exactly (unless floored) and its covariances up to
    the discarded components. ``1 <= k <= n_assets``; ``k == n_assets`` reproduces the input.
    """
    source = "covariance.factor_model"
    cov = check_array(source, covariance)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise EngineError(f"expected a square covariance, got shape {cov.shape}", source=source)
    n = cov.shape[0]
    if not 1 <= k <= n:
        raise EngineError(f"k={k} factors must be in [1, {n}]", source=source)
    cov = 0.5 * (cov + cov.T)
    vals, vecs = np.linalg.eigh(cov)
    if vals[0] < -1e-8 * max(float(vals[-1]), 1e-300):
        raise EngineError(f"covariance has a negative eigenvalue {vals[0]:.3g}", source=source)
    vals = np.maximum(vals[::-1][:k], 0.0)
    loadings = np.ascontiguousarray(vecs[:, ::-1][:, :k])
    common = (loadings**2) @ vals
    idio = np.maximum(np.diag(cov) - common, min_variance)
    total = float(np.trace(cov))
    return FactorModel(
        loadings=check_array(f"{source}.loadings", loadings, shape=(n, k)),
        factor_covariance=check_array(f"{source}.factor_covariance", np.diag(vals), low=0.0),
        idiosyncratic=check_array(f"{source}.idiosyncratic", idio, low=0.0, shape=(n,)),
        explained=check_scalar(
            f"{source}.explained", min(float(vals.sum()) / total, 1.0), low=0.0, high=1.0
        ),
    )


def factor_model(
    returns: npt.ArrayLike,
    k: int,
    *,
    periods_per_year: float | None = None,
    min_variance: float = DEFAULT_MIN_VARIANCE,
) -> FactorModel:
    """PCA factor model of the Ledoit-Wolf shrunk covariance of ``returns`` (n_bars, n_assets).

    Shrinking first keeps the small eigenvalues (and so the idiosyncratic variances) away from
    zero when n_bars is not much larger than n_assets. Units as :func:`ledoit_wolf`.
    """
    est = ledoit_wolf(returns, periods_per_year=periods_per_year, min_variance=min_variance)
    return factor_model_from_covariance(est.covariance, k, min_variance=min_variance)
