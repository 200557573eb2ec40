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
and a cluster of bets on the same move is cut back. A bar with a single candidate has one free
variable, whose exact solution is a closed form (used instead of the solver: the answer is the
same, a test checks it, and most bars have one candidate). A candidate never grows beyond what its
strategy, the rules, the Supervisor and the engines allowed.

Fail closed: too little history for a covariance (fewer than ``min_history`` bars) leaves the
desired sizes as they are (the Supervisor's caps still hold, and the reason says so); a solve
that ends anywhere but ``optimal`` or ``relaxed`` on the optimiser's fallback chain gives no new
entries at that bar, with the step recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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


class PortfolioSizer:
    """One per Trader (per universe); the optimiser is built once and re-solved per bar."""

    def __init__(self, n_symbols: int, config: SizingConfig | None = None) -> None:
        self.config = config or SizingConfig()
        self.n = n_symbols
        self._optimiser: PortfolioOptimiser | None = None
        self._risk_bar: int | None = None
        self._solver_bar: int | None = None
        self._cov = np.zeros((n_symbols, n_symbols))
        self.always_solve = False  # True: cvxpy even for a single candidate (tests)

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
        if len(desired) == 1 and not self.always_solve:
            return self._one(desired, held)
        optimiser = self._solver()
        lower = held.astype(float).copy()
        upper = held.astype(float).copy()
        d = np.zeros(self.n)
        for j, frac in desired.items():
            d[j] = frac
            lower[j] += min(0.0, frac)
            upper[j] += max(0.0, frac)
        target = held + d
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

    def _one(self, desired: Mapping[int, float], held: np.ndarray) -> SizingResult:
        """One free variable: the QP's exact solution in closed form (the solver gives the same
        answer; a test checks it), clipped to its box. With the others fixed at ``held`` (h),
        the new part of the position is ``(2 rho d_j - gamma (S h)_j) / (2 rho + gamma S_jj)``."""
        ((j, frac),) = desired.items()
        s = self._cov
        gamma = 2.0 * _RHO * self.config.risk_aversion
        others = float(s[j] @ held - s[j, j] * held[j])
        new = (2.0 * _RHO * frac - gamma * (others + s[j, j] * held[j])) / (
            2.0 * _RHO + gamma * s[j, j]
        )
        size = float(np.sign(frac) * min(abs(frac), max(0.0, np.sign(frac) * new)))
        return SizingResult(fractions={j: size}, step=str(FallbackStep.OPTIMAL))

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
        """The optimiser, built on first use and given the current covariance."""
        if self._optimiser is None:
            self._optimiser = PortfolioOptimiser(
                self.n,
                config=OptimiserConfig(
                    risk_aversion=2.0 * _RHO * self.config.risk_aversion,
                    l2_penalty=_RHO,
                    turnover_penalty=0.0,
                    robustness=0.0,
                    long_only=False,
                ),
            )
        if self._solver_bar != self._risk_bar:
            self._optimiser.set_risk(self._cov)
            self._solver_bar = self._risk_bar
        return self._optimiser
