"""The Almgren–Chriss optimal execution trajectory: closed form and the QP it solves.

Model (Almgren & Chriss, "Optimal execution of portfolio transactions", 2000), in the discrete
form with ``N`` slices of length ``tau``: liquidate (or acquire) ``X`` shares along an inventory
path ``x_0 = X, x_1, ..., x_N = 0``, trading ``n_k = x_{k-1} - x_k`` in slice ``k``. With linear
permanent impact ``gamma``, linear temporary impact ``eta`` and a fixed cost ``epsilon`` per share,

    E[cost] = 1/2 gamma X^2 + epsilon sum |n_k| + (eta~ / tau) sum n_k^2,
    eta~    = eta - gamma tau / 2,
    Var[cost] = sigma^2 tau sum_{k=1}^{N} x_k^2,

and the schedule minimises ``E + lambda Var``. For a path that never reverses (the optimum), the
``epsilon`` and ``gamma X^2`` terms are constant, and the minimiser is

    x_k = X sinh(kappa (T - t_k)) / sinh(kappa T),   t_k = k tau,  T = N tau,

where ``kappa`` solves the discrete-time equation ``(2 / tau^2) (cosh(kappa tau) - 1) =
kappa~^2`` with ``kappa~^2 = lambda sigma^2 / eta~``; ``kappa -> kappa~`` as ``tau -> 0``, and
``lambda = 0`` gives ``kappa = 0``: the straight line, TWAP. :func:`ac_trajectory_qp` solves the
same problem numerically with cvxpy (in units of the order, so the solver sees O(1) numbers);
the two must agree, which the tests check.

Units: shares, price units ("$") per share, time in bars. ``sigma`` is $ per share per sqrt(bar)
(price times the per-bar return volatility), ``eta`` is $ per share per (share per bar),
``gamma`` is $ per share per share, ``lambda`` is 1/$.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import cvxpy as cp
import numpy as np
import numpy.typing as npt
from cvxpy.atoms.norm1 import norm1
from cvxpy.atoms.sum_squares import sum_squares

from sovereign.engines.guard import check_array, check_scalar
from sovereign.errors import EngineError

__all__ = ["ACMethod", "ACParams", "ac_cost", "ac_kappa", "ac_trajectory", "ac_trajectory_qp"]

FloatArray = npt.NDArray[np.float64]


class ACMethod(StrEnum):
    """How the trajectory is computed."""

    CLOSED_FORM = "closed_form"
    QP = "qp"


@dataclass(frozen=True, kw_only=True, slots=True)
class ACParams:
    """Almgren–Chriss coefficients (units in the module docstring), validated on construction.

    ``risk_aversion`` lambda >= 0; ``sigma`` >= 0; ``eta`` > 0; ``gamma`` >= 0 (default 0);
    ``epsilon`` >= 0 (default 0); ``tau`` > 0 bars per slice (default 1). The effective
    temporary impact ``eta - gamma tau / 2`` must stay positive, or cost is not convex.
    """

    risk_aversion: float
    sigma: float
    eta: float
    gamma: float = 0.0
    epsilon: float = 0.0
    tau: float = 1.0

    def __post_init__(self) -> None:
        src = "almgren_chriss.params"
        for name in ("risk_aversion", "sigma", "gamma", "epsilon"):
            check_scalar(f"{src}.{name}", getattr(self, name), low=0.0)
        for name in ("eta", "tau"):
            if not check_scalar(f"{src}.{name}", getattr(self, name), low=0.0) > 0.0:
                raise EngineError(f"{name} must be > 0", source=src)
        if not self.eta_tilde > 0.0:
            raise EngineError("eta - gamma * tau / 2 must be > 0 (convex cost)", source=src)

    @property
    def eta_tilde(self) -> float:
        """Temporary impact net of the permanent impact's quadratic part: ``eta - gamma tau/2``."""
        return self.eta - 0.5 * self.gamma * self.tau


def _kappa_tilde_tau_sq(params: ACParams) -> float:
    """``(kappa~ tau)^2 = lambda sigma^2 tau^2 / eta~``: the problem's one shape number."""
    value = params.risk_aversion * params.sigma**2 * params.tau**2 / params.eta_tilde
    return check_scalar("almgren_chriss.kappa_tilde", value, low=0.0)


def ac_kappa(params: ACParams) -> float:
    """The discrete-time urgency ``kappa`` (1/bar) from ``(2/tau^2)(cosh(kappa tau) - 1) =
    kappa~^2``: ``kappa tau = arccosh(1 + z)`` with ``z = (kappa~ tau)^2 / 2``, computed as
    ``log1p(z + sqrt(z (z + 2)))`` to stay exact for small ``z``."""
    z = 0.5 * _kappa_tilde_tau_sq(params)
    kappa_tau = float(np.log1p(z + np.sqrt(z * (z + 2.0))))
    return check_scalar("almgren_chriss.kappa", kappa_tau / params.tau, low=0.0)


def ac_trajectory(quantity: float, n_slices: int, params: ACParams) -> FloatArray:
    """The closed-form optimal inventory path, float64 (n_slices + 1,): ``x_0 = quantity``,
    ``x_N = 0``, ``x_k = quantity sinh(a (N - k)) / sinh(a N)`` with ``a = kappa tau``.

    Evaluated as ``exp(-a k) expm1(-2 a (N - k)) / expm1(-2 a N)``, which neither overflows for
    a large ``a N`` nor loses digits for a small one; ``a = 0`` is the straight line.
    """
    src = "almgren_chriss.trajectory"
    if n_slices < 1:
        raise EngineError(f"n_slices must be >= 1, got {n_slices}", source=src)
    k = np.arange(n_slices + 1, dtype=np.float64)
    a = ac_kappa(params) * params.tau
    if a == 0.0:
        frac = (n_slices - k) / n_slices
    else:
        frac = np.exp(-a * k) * np.expm1(-2.0 * a * (n_slices - k)) / np.expm1(-2.0 * a * n_slices)
    return check_array(src, quantity * frac, shape=(n_slices + 1,))


def ac_trajectory_qp(quantity: float, n_slices: int, params: ACParams) -> FloatArray:
    """The optimal inventory path from a cvxpy QP, float64 (n_slices + 1,).

    Minimises ``E[cost] + lambda Var[cost]`` (module docstring) over the path, in units of the
    order ``u = x / quantity`` and divided by ``eta~ quantity^2 / tau``: ``sum (u_{k-1} -
    u_k)^2 + (kappa~ tau)^2 sum u_k^2 + (epsilon tau / (eta~ |quantity|)) sum |u_{k-1} - u_k|``
    with ``u_0 = 1, u_N = 0``; the constant ``gamma X^2 / 2`` is dropped. Solved with Clarabel
    (interior point, tolerance ~1e-8); a status other than optimal raises :class:`EngineError`.
    """
    src = "almgren_chriss.trajectory_qp"
    if n_slices < 1:
        raise EngineError(f"n_slices must be >= 1, got {n_slices}", source=src)
    if quantity == 0.0 or n_slices == 1:
        return ac_trajectory(quantity, n_slices, params)
    u = cp.Variable(n_slices + 1)
    trades = u[:-1] - u[1:]
    linear = params.epsilon * params.tau / (params.eta_tilde * abs(quantity))
    objective = (
        sum_squares(trades)
        + _kappa_tilde_tau_sq(params) * sum_squares(u[1:-1])
        + linear * norm1(trades)
    )
    problem = cp.Problem(cp.Minimize(objective), [u[0] == 1.0, u[n_slices] == 0.0])
    try:
        problem.solve(solver=cp.CLARABEL)  # type: ignore[no-untyped-call]
    except cp.error.SolverError as err:
        raise EngineError(f"solver failed: {err}", source=src) from err
    if problem.status != cp.OPTIMAL or u.value is None:
        raise EngineError(f"solver status {problem.status}", source=src)
    return check_array(src, quantity * np.asarray(u.value), shape=(n_slices + 1,))


def ac_cost(inventory: npt.ArrayLike, params: ACParams) -> tuple[float, float]:
    """Expected cost and variance ($, $^2) of trading along ``inventory`` (n + 1,), shares.

    Straight from the model's definitions (no substitution): ``E = gamma sum x_k n_k + epsilon
    sum |n_k| + (eta / tau) sum n_k^2`` and ``Var = sigma^2 tau sum_{k>=1} x_k^2``, with
    ``n_k = x_{k-1} - x_k`` and ``x_k`` the inventory after slice ``k``.
    """
    src = "almgren_chriss.cost"
    x = check_array(src, inventory)
    if x.ndim != 1 or x.size < 2:
        raise EngineError(f"inventory must be (n + 1,) with n >= 1, got {x.shape}", source=src)
    n = x[:-1] - x[1:]
    expected = (
        params.gamma * float(np.sum(x[1:] * n))
        + params.epsilon * float(np.abs(n).sum())
        + params.eta / params.tau * float(np.sum(n**2))
    )
    variance = params.sigma**2 * params.tau * float(np.sum(x[1:] ** 2))
    return check_scalar(src + ".expected", expected), check_scalar(src, variance, low=0.0)
