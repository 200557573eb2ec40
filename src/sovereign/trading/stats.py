"""Statistics the backtest gate uses to tell an improvement from noise. Pure functions.

- :func:`sharpe_ratio`: annualised Sharpe ratio of a return series (risk-free 0).
- :func:`sharpe_difference_ci`: a paired stationary-bootstrap confidence interval of
  ``SR(a) - SR(b)`` for two aligned return series (Politis & Romano 1994). Resampling the *pairs*
  keeps the two series' correlation, and random-length blocks keep their autocorrelation and
  volatility clustering.
- :func:`probabilistic_sharpe_ratio` and :func:`deflated_sharpe_ratio`: Bailey & López de Prado
  (2012, 2014). The PSR is the probability that the true Sharpe ratio exceeds a benchmark given
  the sample's length, skewness and kurtosis; the DSR sets that benchmark to the Sharpe ratio the
  best of ``trials`` skill-less attempts would be expected to show (the "false strategy" bound,
  with the Euler–Mascheroni approximation of the expected maximum of Gaussians).

Sharpe ratios inside the PSR/DSR are per period (not annualised), as in the papers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

EULER_GAMMA = 0.5772156649015329


def _as_returns(returns: np.ndarray, name: str = "returns") -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError(f"{name} must be finite")
    return r


def sharpe_ratio(returns: np.ndarray, *, periods_per_year: float = 1.0) -> float:
    """``mean / std (ddof=1) * sqrt(periods_per_year)`` of ``returns`` (n,), per-period returns.

    0.0 when there are fewer than two returns or they do not vary (the convention of
    :func:`sovereign.trading.metrics.performance`).
    """
    r = _as_returns(returns)
    if r.size < 2:
        return 0.0
    std = float(r.std(ddof=1))
    if not std > 0:
        return 0.0
    return float(r.mean()) / std * math.sqrt(periods_per_year)


def stationary_bootstrap_indices(
    n: int, n_resamples: int, mean_block: float, rng: np.random.Generator
) -> np.ndarray:
    """Row indices of ``n_resamples`` stationary-bootstrap resamples of a length-``n`` series.

    Each resample is built from blocks of geometric length (mean ``mean_block``) starting at
    uniform positions, wrapping around the end (Politis & Romano 1994). Returns an int ndarray of
    shape (n_resamples, n).
    """
    if n < 1 or n_resamples < 1:
        raise ValueError("n and n_resamples must be >= 1")
    if not mean_block >= 1:
        raise ValueError(f"mean_block must be >= 1, got {mean_block}")
    starts = rng.integers(0, n, size=(n_resamples, n))
    new_block = rng.random((n_resamples, n)) < 1.0 / mean_block
    new_block[:, 0] = True
    t = np.arange(n)
    block_start = np.maximum.accumulate(np.where(new_block, t, 0), axis=1)
    first = np.take_along_axis(starts, block_start, axis=1)
    out: np.ndarray = (first + (t - block_start)) % n
    return out


def _sharpe_rows(x: np.ndarray) -> np.ndarray:
    """Per-period Sharpe of each row of ``x`` (k, n); 0 where a row does not vary."""
    mean = x.mean(axis=1)
    std = x.std(axis=1, ddof=1)
    out = np.zeros(x.shape[0])
    np.divide(mean, std, out=out, where=std > 1e-15)
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class SharpeDifference:
    """``estimate`` = SR(a) - SR(b) annualised, with its bootstrap interval [lower, upper] at
    ``confidence`` (two-sided, percentile method)."""

    estimate: float
    lower: float
    upper: float
    confidence: float
    n_resamples: int
    mean_block: float
    n: int


def sharpe_difference_ci(
    a: np.ndarray,
    b: np.ndarray,
    *,
    rng: np.random.Generator,
    n_resamples: int = 1000,
    mean_block: float = 10.0,
    confidence: float = 0.95,
    periods_per_year: float = 252.0,
) -> SharpeDifference:
    """Paired stationary-bootstrap interval of ``SR(a) - SR(b)``.

    ``a``, ``b``: aligned per-period returns, shape (n,) each (row t of both is the same bar).
    Every resample draws the same rows from both, so their correlation is kept; the interval is
    the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled
    differences (annualised with ``periods_per_year``).
    """
    x, y = _as_returns(a, "a"), _as_returns(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must be aligned, got shapes {x.shape} and {y.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    scale = math.sqrt(periods_per_year)
    estimate = sharpe_ratio(x, periods_per_year=periods_per_year) - sharpe_ratio(
        y, periods_per_year=periods_per_year
    )
    if x.size < 2:
        return SharpeDifference(
            estimate=estimate,
            lower=float("nan"),
            upper=float("nan"),
            confidence=confidence,
            n_resamples=0,
            mean_block=mean_block,
            n=int(x.size),
        )
    idx = stationary_bootstrap_indices(x.size, n_resamples, mean_block, rng)
    diffs = (_sharpe_rows(x[idx]) - _sharpe_rows(y[idx])) * scale
    tail = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(diffs, [tail, 1.0 - tail])
    return SharpeDifference(
        estimate=estimate,
        lower=float(lower),
        upper=float(upper),
        confidence=confidence,
        n_resamples=n_resamples,
        mean_block=mean_block,
        n=int(x.size),
    )


def moments(returns: np.ndarray) -> tuple[float, float]:
    """(skewness, kurtosis) of ``returns`` (n,): plain sample moments, kurtosis *not* in excess
    (a normal sample gives about 3). (0, 3) for a series that does not vary."""
    r = _as_returns(returns)
    centred = r - r.mean()
    var = float(np.mean(centred**2))
    if r.size < 2 or not var > 0:
        return 0.0, 3.0
    return float(np.mean(centred**3) / var**1.5), float(np.mean(centred**4) / var**2)


def probabilistic_sharpe_ratio(
    sharpe: float, *, n: int, skewness: float, kurtosis: float, benchmark: float = 0.0
) -> float:
    """P(true SR > ``benchmark``) for a per-period Sharpe ``sharpe`` measured on ``n`` returns.

    ``Φ((SR - SR*) sqrt(n - 1) / sqrt(1 - γ3 SR + (γ4 - 1) / 4 SR²))`` with ``kurtosis`` = γ4
    not in excess. NaN when ``n < 2`` or the variance term is not positive (extreme moments).
    """
    if n < 2:
        return float("nan")
    denom = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not denom > 0:
        return float("nan")
    z = (sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(denom)
    return float(norm.cdf(z))


def expected_max_sharpe(trials: int, *, variance: float) -> float:
    """Expected maximum per-period Sharpe of ``trials`` independent skill-less strategies whose
    Sharpe estimates have variance ``variance`` (per period²):

    ``sqrt(V) ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))``, γ the Euler–Mascheroni constant.
    0 for a single trial (nothing was selected).
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if variance < 0:
        raise ValueError(f"variance must be >= 0, got {variance}")
    if trials == 1:
        return 0.0
    z = (1.0 - EULER_GAMMA) * norm.ppf(1.0 - 1.0 / trials) + EULER_GAMMA * norm.ppf(
        1.0 - 1.0 / (trials * math.e)
    )
    return math.sqrt(variance) * float(z)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeflatedSharpe:
    """The DSR and what went into it. ``sharpe`` and ``benchmark`` are per period."""

    dsr: float
    sharpe: float
    benchmark: float
    trials: int
    n: int
    skewness: float
    kurtosis: float
    variance: float


def deflated_sharpe_ratio(
    returns: np.ndarray, *, trials: int, variance: float | None = None
) -> DeflatedSharpe:
    """The deflated Sharpe ratio of ``returns`` (n,), per-period returns, after ``trials`` tries.

    ``variance``: the variance of the Sharpe estimates across the trials (per period²). When the
    trials' Sharpe ratios are unknown it defaults to ``1 / (n - 1)``, the sampling variance of a
    Sharpe estimate of a skill-less normal series, which makes the benchmark the Sharpe ratio the
    luckiest of ``trials`` coin-flip strategies would show on this sample length.
    """
    r = _as_returns(returns)
    n = int(r.size)
    std = float(r.std(ddof=1)) if n > 1 else 0.0
    sr = float(r.mean()) / std if std > 0 else 0.0
    skew, kurt = moments(r)
    var = variance if variance is not None else (1.0 / (n - 1) if n > 1 else float("nan"))
    bench = expected_max_sharpe(trials, variance=var) if math.isfinite(var) else float("nan")
    dsr = probabilistic_sharpe_ratio(sr, n=n, skewness=skew, kurtosis=kurt, benchmark=bench)
    if std == 0:
        dsr = 0.0 if n > 1 else float("nan")  # no variation: no evidence of anything
    return DeflatedSharpe(
        dsr=dsr,
        sharpe=sr,
        benchmark=bench,
        trials=trials,
        n=n,
        skewness=skew,
        kurtosis=kurt,
        variance=var,
    )


__all__ = [
    "EULER_GAMMA",
    "DeflatedSharpe",
    "SharpeDifference",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "moments",
    "probabilistic_sharpe_ratio",
    "sharpe_difference_ci",
    "sharpe_ratio",
    "stationary_bootstrap_indices",
]
