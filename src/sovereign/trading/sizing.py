"""Portfolio sizing: the Trader's candidate entries of a bar, sized together by the cvxpy
optimiser so that correlated bets share their risk.

Each strategy first sizes its own signal (Kelly-tempered from its calibrated confidence, capped by
the Supervisor and the engines' limits): the *desired* fraction ``d_j`` (signed, of equity). The
sizer then solves, over every symbol, with :class:`~sovereign.engines.portfolio.PortfolioOptimiser`

    maximise  mu'w - (gamma / 2) w' S w - rho ||w||^2,   mu = 2 rho d,

which is ``-rho ||w - d||^2 - (gamma / 2) w' S w`` up to a constant: the portfolio closest to the
desired one, shrunk along the directions of covariance risk (first-order solution
``w = (I + lambda S)^-1 d`` with ``lambda = gamma / (2 rho)``, :attr:`SizingConfig.risk_aversion`).
``S`` is the Ledoit-Wolf covariance of the last ``window`` bars' returns, annualised and
refreshed every ``refresh_every`` bars; held positions (not being exited) are fixed at their
current weights (their covariance with a candidate counts), each candidate is boxed between 0 and
its desired size, and every other symbol is 0. So a lone, uncorrelated bet keeps most of its size
and a cluster of bets on the same move is cut back.

Only the candidates are free, so the QP is small: it is solved exactly by an active-set method
over the candidates (microseconds; tests check it against the solver), and the cvxpy optimiser
(:class:`~sovereign.engines.portfolio.PortfolioOptimiser`, built once per universe size with
Parameters and re-solved) answers whenever the active set does not converge, with its fallback
chain. A candidate never grows beyond what its
strategy, the rules, the Supervisor and the engines allowed.

Fail closed: too little history for a covariance (fewer than ``min_history`` bars) leaves the
desired sizes as they are (the Supervisor's caps still hold, and the reason says so); a solve
that ends anywhere but ``optimal`` or ``relaxed`` on the optimiser's fallback chain gives no new
entries at that bar, with the step recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sovereign.engines.covariance import ledoit_wolf
from sovereign.engines.portfolio import (
    FallbackStep,
    Limits,
    OptimiserConfig,
    PortfolioOptimiser,
)
from sovereign.trading.overlay import filled_returns

__all__ = ["PortfolioSizer", "SizingConfig", "SizingResult"]


@dataclass(frozen=True, kw_only=True, slots=True)
class SizingConfig:
    """``enabled=False``: every desired size is used as is. ``risk_aversion``: lambda, the
    shrink per unit of annualised variance. ``window``/``refresh_every``/``min_history``: bars
    of returns for the covariance, how often it is re-estimated, and the least it needs."""

    enabled: bool = True
    risk_aversion: float = 2.0
    window: int = 252
    refresh_every: int = 21
    min_history: int = 60

    def __post_init__(self) -> None:
        if not self.risk_aversion > 0 or self.refresh_every < 1:
            raise ValueError("sizing: risk_aversion > 0 and refresh_every >= 1")
        if not 20 <= self.min_history <= self.window:
            raise ValueError("sizing: need 20 <= min_history <= window")


@dataclass(frozen=True, kw_only=True, slots=True)
class SizingResult:
    """Final fractions of equity per candidate column (same sign as desired, never larger);
    ``step``: the optimiser's fallback step ("desired" when it was not used); ``note``: why."""

    fractions: dict[int, float]
    step: str
    note: str = ""


_RHO = 1.0  # the l2 weight; only gamma / (2 rho) matters


def _box_qp(
    q: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_iter: int = 100
) -> np.ndarray | None:
    """``argmin 1/2 x'qx - b'x`` subject to ``lo <= x <= hi`` for positive definite ``q``
    (k, k): a primal active-set method (bounds enter the working set one at a time, the most
    violated first; one leaves when its multiplier has the wrong sign). Exact at convergence;
    None when ``max_iter`` steps were not enough."""
    k = len(b)
    at: dict[int, float] = {}  # index -> the bound it is held at
    for _ in range(max_iter):
        free = [i for i in range(k) if i not in at]
        x = np.zeros(k)
        for i, v in at.items():
            x[i] = v
        if free:
            fixed = list(at)
            rhs = b[free] - (q[np.ix_(free, fixed)] @ x[fixed] if fixed else 0.0)
            x[free] = np.linalg.solve(q[np.ix_(free, free)], rhs)
        below = np.where(np.isin(np.arange(k), free), lo - x, 0.0)
        above = np.where(np.isin(np.arange(k), free), x - hi, 0.0)
        worst = int(np.argmax(np.maximum(below, above)))
        if max(below[worst], above[worst]) > 1e-12:
            at[worst] = float(lo[worst] if below[worst] > above[worst] else hi[worst])
            continue
        grad = q @ x - b  # at the lower bound the multiplier is grad_i >= 0, at the upper <= 0
        wrong = {
            i: (-grad[i] if v == lo[i] and lo[i] != hi[i] else grad[i] if lo[i] != hi[i] else 0.0)
            for i, v in at.items()
        }
        if not wrong or max(wrong.values()) <= 1e-12:
            return np.clip(x, lo, hi)
        del at[max(wrong, key=lambda i: wrong[i])]
    return None


@lru_cache(maxsize=8)
def _compiled(n: int, risk_aversion: float) -> PortfolioOptimiser:
    return PortfolioOptimiser(
        n,
        config=OptimiserConfig(
            risk_aversion=2.0 * _RHO * risk_aversion,
            l2_penalty=_RHO,
            turnover_penalty=0.0,
            robustness=0.0,
            long_only=False,
        ),
    )


class PortfolioSizer:
    """One per Trader (per universe); the optimiser is built once and re-solved per bar."""

    def __init__(self, n_symbols: int, config: SizingConfig | None = None) -> None:
        self.config = config or SizingConfig()
        self.n = n_symbols
        self._risk_bar: int | None = None
        self._cov = np.zeros((n_symbols, n_symbols))
        self.always_solve = False  # True: always the cvxpy optimiser (tests compare the two)

    def size(
        self,
        close: np.ndarray,
        i: int,
        *,
        desired: Mapping[int, float],
        held: np.ndarray,
    ) -> SizingResult:
        """Size ``desired`` (column -> signed fraction of equity) at bar ``i`` given the
        ``held`` weights (n_symbols,) of positions that stay; ``close``: (n_bars, n_symbols)."""
        cfg = self.config
        if not desired:
            return SizingResult(fractions={}, step="desired")
        if not cfg.enabled:
            return SizingResult(fractions=dict(desired), step="desired", note="sizing off")
        if i + 1 < cfg.min_history:
            return SizingResult(
                fractions=dict(desired),
                step="desired",
                note=f"{i + 1} bars of history, the covariance needs {cfg.min_history}",
            )
        self._refresh(close, i)
        lower = held.astype(float).copy()
        upper = held.astype(float).copy()
        d = np.zeros(self.n)
        for j, frac in desired.items():
            d[j] = frac
            lower[j] += min(0.0, frac)
            upper[j] += max(0.0, frac)
        target = held + d
        if not self.always_solve:
            fast = self._active_set(desired, held, target, lower, upper)
            if fast is not None:
                return fast
        optimiser = self._solver()
        gross = float(np.abs(lower).sum() + np.abs(upper).sum()) + 1e-9
        result = optimiser.solve(
            2.0 * _RHO * target,
            target,
            limits=Limits(
                lower=lower, upper=upper, max_gross=gross, net_low=-gross, net_high=gross
            ),
        )
        if result.step not in (FallbackStep.OPTIMAL, FallbackStep.RELAXED):
            return SizingResult(
                fractions={},
                step=str(result.step),
                note="portfolio sizing failed: " + "; ".join(result.attempts),
            )
        out = {}
        for j, frac in desired.items():
            size = float(result.weights[j] - held[j])
            # within the box up to solver tolerance: clip to [0, |desired|] on the desired side
            out[j] = float(np.sign(frac) * min(abs(frac), max(0.0, np.sign(frac) * size)))
        return SizingResult(fractions=out, step=str(result.step))

    def _active_set(
        self,
        desired: Mapping[int, float],
        held: np.ndarray,
        target: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
    ) -> SizingResult | None:
        """The same QP restricted to the candidates (every other weight is fixed), solved
        exactly by a primal active-set method: ``min 1/2 x'Qx - b'x`` on the box, ``Q = 2 rho I
        + gamma S_ff`` (positive definite), ``b = 2 rho t_f - gamma S_fo h_o``. A handful of
        candidates converge in a few steps; None (the cvxpy optimiser decides) if it does not
        within its iteration budget. Tests check it against the solver."""
        f = np.array(sorted(desired), dtype=np.int64)
        o = np.setdiff1d(np.arange(self.n), f)
        gamma = 2.0 * _RHO * self.config.risk_aversion
        s = self._cov
        q = 2.0 * _RHO * np.eye(len(f)) + gamma * s[np.ix_(f, f)]
        b = 2.0 * _RHO * target[f] - gamma * (s[np.ix_(f, o)] @ held[o])
        x = _box_qp(q, b, lower[f], upper[f])
        if x is None:
            return None
        out = {}
        for k, j in enumerate(f.tolist()):
            frac = desired[j]
            size = float(x[k] - held[j])
            out[j] = float(np.sign(frac) * min(abs(frac), max(0.0, np.sign(frac) * size)))
        return SizingResult(fractions=out, step=str(FallbackStep.OPTIMAL))

    def _refresh(self, close: np.ndarray, i: int) -> None:
        """Re-estimate the covariance every ``refresh_every`` bars (EngineError on a degenerate
        window: the caller stands down)."""
        cfg = self.config
        last = self._risk_bar
        if last is not None and last <= i < last + cfg.refresh_every:
            return
        lo = max(0, i + 1 - cfg.window)
        returns = filled_returns(close[lo : i + 1])[1:]
        self._cov = ledoit_wolf(returns, periods_per_year=252).covariance
        self._risk_bar = i

    def _solver(self) -> PortfolioOptimiser:
        """The compiled optimiser for this universe size, given the current covariance (it is
        shared by every sizer of that size in the process: compiling the problem costs ~30 ms,
        a re-solve ~5 ms, and each solve sets every parameter, risk included)."""
        optimiser = _compiled(self.n, self.config.risk_aversion)
        optimiser.set_risk(self._cov)
        return optimiser
