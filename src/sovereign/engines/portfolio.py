"""Robust mean-variance portfolio optimiser (cvxpy), built once and re-solved per bar.

Problem, over the weights ``w`` (fractions of equity, ndarray (n_assets,))::

    maximise   mu'w - (gamma / 2) w' S w - kappa ||w - w_prev||_1 - rho ||w||_2^2
               - delta ||S^(1/2) w||_2
    subject to lower <= w <= upper          (per asset; w >= 0 too when long_only)
               sum_i |w_i| <= max_gross     (gross)
               net_low <= sum_i w_i <= net_high
               sum_{i in s} |w_i| <= cap_s  (gross weight per sector s, when sectors are given)

``mu`` (expected returns) and ``S`` (covariance) must be in the same units, per bar or
annualised (the defaults below are sized for annualised inputs). ``delta ||S^(1/2) w||`` is the
worst case of ``mu'w`` over the ellipsoid ``{mu + delta S^(1/2) u : ||u|| <= 1}``: ``delta`` is
a haircut on the Sharpe ratio the estimates are trusted to. With ``rho = kappa = delta = 0`` and
no binding constraint the answer is ``S^-1 mu / gamma``. (skfolio's ``MeanRisk`` with
``risk_aversion=a`` maximises ``mu'w - a w'Sw``: the same problem for ``a = gamma / 2``.)

Risk form. ``S = R'R`` enters as ``||R w||^2`` with an auxiliary variable ``y == R w`` (so every
term is DPP: parameters only multiply parameter-free expressions). Full form: ``R`` is the
(n, n) square root of ``S``. Factor form (automatic above :data:`FACTOR_FORM_ABOVE` assets, or
by ``OptimiserConfig.factor_form``): ``S = F Sf F' + diag(d)`` with ``R = [Sf^(1/2) F'; diag(
sqrt d)]``, which is O(n k) instead of O(n^2) and keeps a 500-asset re-solve in milliseconds.

Re-solving. Every number (mu, w_prev, the risk roots, gamma, kappa, rho, delta, the bounds,
gross, net, sector caps) is a ``cp.Parameter``; :meth:`PortfolioOptimiser.solve` assigns
``.value`` and calls ``problem.solve(warm_start=True)``: cvxpy reuses the canonicalisation (the
problem is DPP) and Clarabel updates its data in place instead of rebuilding the solver (it has
no iterate warm start). The objective is scaled by ``objective_scale = 1 / mean variance`` so
the solver's absolute tolerances mean the same in per-bar and annualised units.
Measured (``benchmarks/optimizer.py``, 2 shared cores): a re-solve takes ~3 ms at 20 assets,
~30-90 ms at 100 (full form), ~30 ms at 500 (factor form).

Fallback chain (each step recorded in ``OptimiserResult.step`` and ``attempts``): an answer is
accepted only if the status is ``optimal``, the weights are finite and every constraint holds
within ``OptimiserConfig.tolerance``. OPTIMAL -> RELAXED (same constraints, robustness and
turnover penalties dropped, optionally another solver) -> ALLOCATOR (inverse volatility fitted
into the box with total ``clip(1, net_low, min(net_high, max_gross))``, if it meets every
constraint) -> KEEP_PREVIOUS (``w_prev`` unchanged: no trade). Hard limits are never relaxed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import cvxpy as cp
import numpy as np
import numpy.typing as npt

from sovereign.engines.allocators import inverse_volatility
from sovereign.engines.covariance import FactorModel, factor_model_from_covariance, psd_sqrt
from sovereign.engines.guard import check_array, check_scalar
from sovereign.errors import EngineError

__all__ = [
    "FACTOR_FORM_ABOVE",
    "FallbackStep",
    "Limits",
    "OptimiserConfig",
    "OptimiserResult",
    "PortfolioOptimiser",
]

FloatArray = npt.NDArray[np.float64]
SolverOptions = tuple[tuple[str, float | int | bool], ...]

# cvxpy re-exports its atoms with a star import that mypy --strict does not follow.
atoms: Any = cp

#: Universes with more assets than this use the factor form unless the config says otherwise.
FACTOR_FORM_ABOVE = 100


class FallbackStep(StrEnum):
    """Which step of the fallback chain produced the weights."""

    OPTIMAL = "optimal"
    RELAXED = "relaxed"
    ALLOCATOR = "allocator"
    KEEP_PREVIOUS = "keep_previous"


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Limits:
    """Hard constraints, all in fractions of equity.

    ``lower``/``upper``: per-asset bounds, a float for all assets or ndarray (n_assets,);
    infinite bounds are replaced by ``-/+max_gross`` (equivalent, since ``|w_i| <= gross``).
    ``sector_caps``: sector label -> cap on that sector's gross weight; sectors without a cap
    are limited by ``max_gross`` only. Defaults: long-only fully-invested-or-less, no leverage.
    """

    lower: float | FloatArray = 0.0
    upper: float | FloatArray = 1.0
    max_gross: float = 1.0
    net_low: float = 0.0
    net_high: float = 1.0
    sector_caps: Mapping[str, float] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class OptimiserConfig:
    """Penalties (units of ``mu``; defaults sized for annualised inputs) and solver settings.

    ``risk_aversion`` gamma >= 0; ``turnover_penalty`` kappa, cost per unit of L1 turnover;
    ``l2_penalty`` rho; ``robustness`` delta, the Sharpe haircut of the mean's uncertainty
    ellipsoid. ``factor_form``: None = automatic (> FACTOR_FORM_ABOVE assets); ``n_factors``:
    factors kept when a covariance has to be turned into a factor model. ``solver_options``
    apply to the first attempt; the relaxed attempt uses ``relaxed_solver`` (default: the same)
    with ``relaxed_solver_options`` (default: the same options). ``tolerance``: constraint
    violation accepted from a solver.
    """

    risk_aversion: float = 2.0
    turnover_penalty: float = 1e-3
    l2_penalty: float = 0.0
    robustness: float = 0.05
    long_only: bool = True
    factor_form: bool | None = None
    n_factors: int = 15
    solver: str = "CLARABEL"
    solver_options: SolverOptions = ()
    relaxed_solver: str | None = None
    relaxed_solver_options: SolverOptions | None = None
    tolerance: float = 1e-6


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class OptimiserResult:
    """``weights``: ndarray (n_assets,). ``step``: the fallback step used. ``status``: the
    solver status of the answer (``optimal``), or ``inverse_volatility`` / ``kept``.
    ``objective``: the nominal utility (the maximised expression with the configured penalties)
    at ``weights``. ``attempts``: one line per step tried, e.g. ``"optimal: infeasible"``."""

    weights: FloatArray
    step: FallbackStep
    status: str
    objective: float
    attempts: tuple[str, ...]


def _vector(value: float | FloatArray, n: int, name: str) -> FloatArray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()
    if np.isnan(arr).any():
        raise EngineError("NaN bound", source=f"portfolio.limits.{name}")
    return arr


class PortfolioOptimiser:
    """The optimiser for one universe of ``n_assets`` (module docstring has the problem).

    ``sectors``: one label per asset (fixes the sector structure; caps come with the limits).
    Build once; call :meth:`solve` per bar. The risk model is kept between calls: pass
    ``covariance`` or ``factors`` when it changes (and on the first call).
    """

    def __init__(
        self,
        n_assets: int,
        *,
        config: OptimiserConfig | None = None,
        limits: Limits | None = None,
        sectors: Sequence[str] | None = None,
    ) -> None:
        if n_assets < 1:
            raise EngineError(f"n_assets={n_assets} < 1", source="portfolio.PortfolioOptimiser")
        self.config = config or OptimiserConfig()
        self.limits = limits or Limits()
        self.n_assets = n = n_assets
        cfg = self.config
        self.factor_form = n > FACTOR_FORM_ABOVE if cfg.factor_form is None else cfg.factor_form
        self.sectors = tuple(dict.fromkeys(sectors)) if sectors is not None else ()
        if sectors is not None and len(sectors) != n:
            raise EngineError(f"{len(sectors)} sector labels for {n} assets", source="portfolio")
        self._k = min(cfg.n_factors, n) if self.factor_form else n
        for name in ("risk_aversion", "turnover_penalty", "l2_penalty", "robustness"):
            check_scalar(f"portfolio.config.{name}", getattr(cfg, name), low=0.0)
        # the risk model in input units (numpy), and the objective scale (see set_risk)
        self._root_np = np.zeros((self._k, n))
        self._idio_np = np.zeros(n)
        self._mu_np = np.zeros(n)
        self._prev_np = np.zeros(n)
        #: the solver minimises ``-objective_scale * utility`` (set with the risk model)
        self.objective_scale = 1.0
        self._risk_set = False
        self._cached_solver_ok = False  # the solver cached by cvxpy has the primary settings

        self.w = cp.Variable(n, name="w")
        self._mu = cp.Parameter(n, name="mu")
        self._w_prev = cp.Parameter(n, name="w_prev")
        self._half_gamma = cp.Parameter(nonneg=True, name="half_gamma")
        self._kappa = cp.Parameter(nonneg=True, name="kappa")
        self._rho = cp.Parameter(nonneg=True, name="rho")
        self._delta = cp.Parameter(nonneg=True, name="delta")
        self._lower = cp.Parameter(n, name="lower")
        self._upper = cp.Parameter(n, name="upper")
        self._gross = cp.Parameter(nonneg=True, name="gross")
        self._net_low = cp.Parameter(name="net_low")
        self._net_high = cp.Parameter(name="net_high")
        self._root = cp.Parameter((self._k, n), name="risk_root")
        y = cp.Variable(self._k, name="y")
        cons = [y == self._root @ self.w]
        if self.factor_form:
            self._idio = cp.Parameter(n, nonneg=True, name="idio_sqrt")
            d = cp.Variable(n, name="d")
            cons.append(d == atoms.multiply(self._idio, self.w))
            risk = atoms.hstack([y, d])
        else:
            risk = y
        trade = cp.Variable(n, name="trade")  # w - w_prev, so the turnover term is DPP
        cons.append(trade == self.w - self._w_prev)
        # long only: |w| == w, which saves the solver n auxiliary variables and 2n constraints
        absw = self.w if cfg.long_only else atoms.abs(self.w)
        gross = atoms.sum(absw)
        cons += [
            self.w >= self._lower,
            self.w <= self._upper,
            gross <= self._gross,
            atoms.sum(self.w) >= self._net_low,
            atoms.sum(self.w) <= self._net_high,
        ]
        if self.sectors:
            labels = list(sectors or ())
            member = np.array([[lab == s for lab in labels] for s in self.sectors], dtype=float)
            self._member = member
            self._caps = cp.Parameter(len(self.sectors), nonneg=True, name="sector_caps")
            cons.append(member @ absw <= self._caps)
        objective = cp.Minimize(
            -self._mu @ self.w
            + self._half_gamma * atoms.sum_squares(risk)
            + self._kappa * atoms.norm1(trade)
            + self._rho * atoms.sum_squares(self.w)
            + self._delta * atoms.norm2(risk)
        )
        self.problem = cp.Problem(objective, cons)

    # ------------------------------------------------------------------------------- risk model

    def set_risk(
        self, covariance: npt.ArrayLike | None = None, *, factors: FactorModel | None = None
    ) -> None:
        """Set the risk model from a covariance (n, n) or a :class:`FactorModel` (same units as
        mu). Full form turns factors into their covariance; factor form turns a covariance into
        ``n_factors`` PCA factors (an eigendecomposition: do it when the risk model changes,
        not every bar)."""
        source, n = "portfolio.set_risk", self.n_assets
        given: FactorModel | FloatArray
        if factors is not None and covariance is None:
            given = factors
        elif covariance is not None and factors is None:
            given = check_array(f"{source}.covariance", covariance, shape=(n, n))
        else:
            raise EngineError("give exactly one of covariance or factors", source=source)
        if self.factor_form:
            if isinstance(given, FactorModel):
                fm = given
            else:
                fm = factor_model_from_covariance(given, self._k)
            if fm.n_assets != n or fm.n_factors > self._k:
                raise EngineError(
                    f"factor model has {fm.n_assets} assets, {fm.n_factors} factors; "
                    f"expected {n} assets, at most {self._k} factors",
                    source=source,
                )
            exposure = psd_sqrt(fm.factor_covariance, source=source) @ fm.loadings.T
            root = np.zeros((self._k, n))
            root[: exposure.shape[0]] = exposure
            self._root_np = check_array(f"{source}.root", root)
            self._idio_np = np.sqrt(check_array(f"{source}.idio", fm.idiosyncratic, low=0.0))
        else:
            cov = given.covariance() if isinstance(given, FactorModel) else given
            if cov.shape != (n, n):
                raise EngineError(f"covariance shape {cov.shape}, expected {(n, n)}", source=source)
            self._root_np = psd_sqrt(cov, source=source)
        mean_var = float(self._variances().mean())
        if not mean_var > 0.0:
            raise EngineError("every variance is zero", source=source)
        # Solver tolerances are absolute: scale the objective so the risk term is O(1) whatever
        # the units (daily variances ~1e-4 would otherwise leave weights accurate to ~1e-3).
        self.objective_scale = 1.0 / mean_var
        root_scale = float(np.sqrt(self.objective_scale))
        self._root.value = root_scale * self._root_np
        if self.factor_form:
            self._idio.value = root_scale * self._idio_np
        self._risk_set = True

    def _risk_vector(self, w: FloatArray) -> FloatArray:
        """``R w`` with ``R'R`` the covariance, so that ``w'Sw == ||R w||^2`` (input units)."""
        r = self._root_np @ w
        if self.factor_form:
            r = np.concatenate([r, self._idio_np * w])
        return np.asarray(r, dtype=np.float64)

    def _variances(self) -> FloatArray:
        return np.asarray((self._root_np**2).sum(axis=0) + self._idio_np**2, dtype=np.float64)

    def _load_penalties(self, *, relaxed: bool) -> None:
        """Penalty parameters in the scaled objective (``objective_scale`` times the nominal)."""
        cfg, c = self.config, self.objective_scale
        self._half_gamma.value = 0.5 * cfg.risk_aversion  # the roots carry sqrt(c)
        self._rho.value = c * cfg.l2_penalty
        self._kappa.value = 0.0 if relaxed else c * cfg.turnover_penalty
        self._delta.value = 0.0 if relaxed else float(np.sqrt(c)) * cfg.robustness

    # ------------------------------------------------------------------------------------ solve

    def _set_limits(self, limits: Limits) -> None:
        n, src = self.n_assets, "portfolio.limits"
        gross = check_scalar(f"{src}.max_gross", limits.max_gross, low=0.0)
        floor = 0.0 if self.config.long_only else -gross
        self._lo = np.maximum(_vector(limits.lower, n, "lower"), floor)
        self._hi = np.minimum(_vector(limits.upper, n, "upper"), gross)
        self._net = (
            check_scalar(f"{src}.net_low", limits.net_low),
            check_scalar(f"{src}.net_high", limits.net_high),
        )
        caps = dict(limits.sector_caps or {})
        self._cap = np.array(
            [
                min(check_scalar(f"{src}.sector_caps", caps.get(s, gross), low=0.0), gross)
                for s in self.sectors
            ]
        )
        self._lower.value, self._upper.value, self._gross.value = self._lo, self._hi, gross
        self._net_low.value, self._net_high.value = self._net
        if self.sectors:
            self._caps.value = self._cap

    def _violation(self, w: FloatArray) -> str | None:
        """Why ``w`` breaks a constraint (beyond the tolerance), or None."""
        tol = self.config.tolerance
        if not np.isfinite(w).all():
            return "non-finite weights"
        if (w < self._lo - tol).any() or (w > self._hi + tol).any():
            return "outside the box"
        if float(np.abs(w).sum()) > self.limits.max_gross + tol:
            return "gross above the cap"
        if not self._net[0] - tol <= float(w.sum()) <= self._net[1] + tol:
            return "net outside its bounds"
        if self.sectors and (self._member @ np.abs(w) > self._cap + tol).any():
            return "sector cap exceeded"
        return None

    def utility(self, weights: npt.ArrayLike) -> float:
        """The nominal objective (to maximise) at ``weights``: the configured penalties, the
        current risk model, and ``mu``/``w_prev`` of the last :meth:`solve`."""
        cfg = self.config
        w = check_array("portfolio.utility.weights", weights, shape=(self.n_assets,))
        r = self._risk_vector(w)
        value = (
            float(self._mu_np @ w)
            - 0.5 * cfg.risk_aversion * float(r @ r)
            - cfg.turnover_penalty * float(np.abs(w - self._prev_np).sum())
            - cfg.l2_penalty * float(w @ w)
            - cfg.robustness * float(np.sqrt(r @ r))
        )
        return check_scalar("portfolio.utility", value)

    def _attempt(
        self, solver: str, options: SolverOptions, *, warm: bool
    ) -> tuple[FloatArray | None, str]:
        try:
            with warnings.catch_warnings():
                # an inaccurate status is handled below (it moves down the chain); no need to warn
                warnings.filterwarnings("ignore", "Solution may be inaccurate", UserWarning)
                self.problem.solve(solver=solver, warm_start=warm, **dict(options))  # type: ignore[no-untyped-call]
        except cp.error.SolverError as err:
            return None, f"solver error: {str(err).splitlines()[0][:80]}"
        status = str(self.problem.status)
        if status != cp.OPTIMAL or self.w.value is None:
            return None, status
        w = np.asarray(self.w.value, dtype=np.float64).copy()
        why = self._violation(w)
        return (None, f"{status} but {why}") if why else (w, status)

    def solve(
        self,
        mu: npt.ArrayLike,
        w_prev: npt.ArrayLike | None = None,
        *,
        covariance: npt.ArrayLike | None = None,
        factors: FactorModel | None = None,
        limits: Limits | None = None,
    ) -> OptimiserResult:
        """Target weights for expected returns ``mu`` (n_assets,) from the current weights
        ``w_prev`` (n_assets,; default all zero), walking the fallback chain.

        ``covariance``/``factors`` update the risk model (see :meth:`set_risk`); ``limits``
        replaces the constraints for this and later calls. Raises :class:`EngineError` for
        non-finite or mis-shaped inputs and when no risk model was ever given; an infeasible
        or failed problem is not an error (the chain answers).
        """
        n, cfg = self.n_assets, self.config
        if covariance is not None or factors is not None:
            self.set_risk(covariance, factors=factors)
        if not self._risk_set:
            raise EngineError("no risk model: pass covariance or factors", source="portfolio.solve")
        if limits is not None:
            self.limits = limits
        self._set_limits(self.limits)
        self._mu_np = check_array("portfolio.mu", mu, shape=(n,))
        self._mu.value = self.objective_scale * self._mu_np
        prev = (
            np.zeros(n) if w_prev is None else check_array("portfolio.w_prev", w_prev, shape=(n,))
        )
        self._w_prev.value = self._prev_np = prev
        self._load_penalties(relaxed=False)

        attempts: list[str] = []
        w, status = self._attempt(cfg.solver, cfg.solver_options, warm=self._cached_solver_ok)
        self._cached_solver_ok = True
        attempts.append(f"{FallbackStep.OPTIMAL}: {status}")
        step = FallbackStep.OPTIMAL
        if w is None:
            self._load_penalties(relaxed=True)
            options = (
                cfg.solver_options
                if cfg.relaxed_solver_options is None
                else cfg.relaxed_solver_options
            )
            # a fresh solver: a warm-started one would keep the settings of the failed attempt
            w, status = self._attempt(cfg.relaxed_solver or cfg.solver, options, warm=False)
            self._cached_solver_ok = False
            self._load_penalties(relaxed=False)
            attempts.append(f"{FallbackStep.RELAXED}: {status}")
            step = FallbackStep.RELAXED
        if w is None:
            w, status = self._allocator()
            attempts.append(f"{FallbackStep.ALLOCATOR}: {status}")
            step = FallbackStep.ALLOCATOR
        if w is None:
            w, status, step = prev.copy(), "kept", FallbackStep.KEEP_PREVIOUS
            attempts.append(f"{FallbackStep.KEEP_PREVIOUS}: kept")
        return OptimiserResult(
            weights=check_array("portfolio.weights", w, shape=(n,)),
            step=step,
            status=status,
            objective=self.utility(w),
            attempts=tuple(attempts),
        )

    def _allocator(self) -> tuple[FloatArray | None, str]:
        total = min(max(1.0, self._net[0]), self._net[1], self.limits.max_gross)
        try:
            w = inverse_volatility(
                np.diag(self._variances()), total=total, lower=self._lo, upper=self._hi
            )
        except EngineError as err:
            return None, f"inverse_volatility failed: {err.reason}"
        why = self._violation(w)
        return (None, f"inverse_volatility but {why}") if why else (w, "inverse_volatility")
