"""Execution schedules: split a parent order into integer child orders over successive slices.

A slice is one bar: the backtest runs on daily bars and the Trader submits one child per bar, so
``n_slices`` counts bars (the algorithms work the same on intraday bars). Quantities are signed
integer shares (positive buys, negative sells). Every schedule's children have the parent's sign,
and ``sum(child_quantities) + remainder == quantity`` exactly: real-valued targets become shares
by largest-remainder rounding (:func:`allocate_shares`), and only POV may leave a remainder,
which it reports rather than drops.

Algorithms: :func:`twap` (equal slices), :func:`vwap` (slices proportional to a volume profile),
:func:`pov` (a participation rate of the forecast volume per slice), :func:`iceberg` (visible
clips around a clip size, randomised with a seed so that they are not predictable flow) and
:func:`almgren_chriss` (the mean-variance optimal schedule, closed form or the QP it solves, in
:mod:`sovereign.engines.almgren_chriss`). :func:`plan_order` is the Trader's policy: one child
when the order is small against the average daily volume, a schedule otherwise. A zero quantity
gives the empty schedule (no children) from every function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from sovereign.engines.almgren_chriss import ACMethod, ACParams, ac_trajectory, ac_trajectory_qp
from sovereign.engines.guard import check_array, check_scalar
from sovereign.errors import EngineError

__all__ = [
    "ExecAlgo",
    "ExecutionSchedule",
    "PlanOptions",
    "allocate_shares",
    "almgren_chriss",
    "iceberg",
    "plan_order",
    "pov",
    "twap",
    "u_shape_profile",
    "vwap",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_MAX_SHARES = 2**53  # integers above this are not exact in float64 arithmetic
_MAX_CLIPS = 1_000_000  # an iceberg needing more clips than this is a mistake, not an order


class ExecAlgo(StrEnum):
    """How a schedule was made."""

    SINGLE = "single"  # one child: the order was small enough to send at once
    TWAP = "twap"
    VWAP = "vwap"
    POV = "pov"
    ICEBERG = "iceberg"
    ALMGREN_CHRISS = "almgren_chriss"


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionSchedule:
    """A parent order split into children, one per slice (bar), in submission order.

    ``quantity``: the parent, signed integer shares. ``child_quantities``: int64 ndarray (n,),
    each with the parent's sign (or zero). ``weights``: float64 ndarray (n,), the algorithm's
    real-valued target per slice as a fraction of ``|quantity|`` before rounding (>= 0; they sum
    to 1 except for a POV schedule that cannot finish). ``remainder``: signed shares the schedule
    could not place in its horizon (POV only; 0 otherwise). Checked on construction.
    """

    algo: ExecAlgo
    quantity: int
    child_quantities: IntArray
    weights: FloatArray
    remainder: int = 0

    def __post_init__(self) -> None:
        src = "execution.schedule"
        raw = np.asarray(self.child_quantities)
        if raw.dtype.kind not in "iu":
            raise EngineError(f"children must be integer shares, got {raw.dtype}", source=src)
        children = raw.astype(np.int64)  # a copy: the schedule owns its arrays
        weights = check_array(src, self.weights, low=0.0, shape=children.shape).copy()
        if children.ndim != 1:
            raise EngineError(f"children must be 1-D, got {children.shape}", source=src)
        if int(children.sum()) + self.remainder != self.quantity:
            raise EngineError(
                f"children {int(children.sum())} + remainder {self.remainder} != {self.quantity}",
                source=src,
            )
        sign = np.sign(self.quantity)
        if np.any(children * sign < 0) or (sign == 0 and np.any(children != 0)):
            raise EngineError("a child has the wrong sign", source=src)
        if self.remainder * sign < 0:
            raise EngineError("the remainder has the wrong sign", source=src)
        children.flags.writeable = False
        weights.flags.writeable = False
        object.__setattr__(self, "child_quantities", children)
        object.__setattr__(self, "weights", weights)

    @property
    def n_slices(self) -> int:
        """Number of children (bars) in the schedule."""
        return int(self.child_quantities.shape[0])

    @property
    def inventory(self) -> IntArray:
        """Signed shares still to trade before slice 0 and after each slice: int64 (n + 1,).

        For an iceberg, ``inventory[k + 1]`` is the hidden remainder while clip ``k`` shows.
        """
        done = np.concatenate(([0], np.cumsum(self.child_quantities)))
        return np.asarray(self.quantity - done, dtype=np.int64)


def allocate_shares(total: int, weights: npt.ArrayLike) -> IntArray:
    """Split ``total`` shares (int >= 0) in proportion to ``weights`` by largest remainder.

    ``weights``: (n,) non-negative, not all zero. Each slice gets ``floor(total * w_i / sum w)``
    and the shares left over go one each to the largest fractional parts (ties to the earlier
    slice). Returns int64 (n,) summing exactly to ``total``.
    """
    src = "execution.allocate_shares"
    w = check_array(src, weights, low=0.0)
    if w.ndim != 1 or w.size == 0 or not w.sum() > 0.0:
        raise EngineError("weights must be a non-empty (n,) array with a positive sum", source=src)
    if total < 0:
        raise EngineError(f"total must be >= 0, got {total}", source=src)
    w = w / w.max()  # no overflow in the sum below, whatever the scale of the weights
    raw = total * (w / w.sum())
    base = np.floor(raw)
    frac = raw - base
    short = total - int(base.sum())
    if short >= 0:  # the usual case: hand out the shares floor() left behind
        base[np.argsort(-frac, kind="stable")[:short]] += 1.0
    else:  # floating rounding pushed a floor up: take back from the smallest fractions
        candidates = np.flatnonzero(base >= 1.0)
        base[candidates[np.argsort(frac[candidates], kind="stable")[:-short]]] -= 1.0
    out: IntArray = base.astype(np.int64)
    if int(out.sum()) != total:
        raise EngineError(f"rounding lost shares: {int(out.sum())} != {total}", source=src)
    return out


def _shares(quantity: float, src: str) -> int:
    """``quantity`` as exact integer shares; :class:`EngineError` if fractional or too large."""
    value = check_scalar(src, quantity)
    if not value.is_integer() or abs(value) >= _MAX_SHARES:
        raise EngineError(
            f"quantity must be integer shares below 2**53, got {quantity}", source=src
        )
    return int(value)


def _check_slices(n_slices: int, src: str) -> None:
    if n_slices < 1:
        raise EngineError(f"n_slices must be >= 1, got {n_slices}", source=src)


def _empty(algo: ExecAlgo) -> ExecutionSchedule:
    return ExecutionSchedule(
        algo=algo, quantity=0, child_quantities=np.zeros(0, np.int64), weights=np.zeros(0)
    )


def _from_weights(algo: ExecAlgo, quantity: int, weights: FloatArray) -> ExecutionSchedule:
    w = weights / weights.sum()
    children = int(np.sign(quantity)) * allocate_shares(abs(quantity), w)
    return ExecutionSchedule(algo=algo, quantity=quantity, child_quantities=children, weights=w)


def twap(quantity: int, n_slices: int) -> ExecutionSchedule:
    """Equal slices: ``|quantity| / n_slices`` shares per bar, rounded by largest remainder."""
    _check_slices(n_slices, "execution.twap")
    q = _shares(quantity, "execution.twap")
    if q == 0:
        return _empty(ExecAlgo.TWAP)
    return _from_weights(ExecAlgo.TWAP, q, np.full(n_slices, 1.0 / n_slices))


def u_shape_profile(n_slices: int) -> FloatArray:
    """The default intraday volume profile: ``1 + 2 (2 s - 1)^2`` at slice midpoints ``s``.

    A stylised U (the usual shape of US-equity intraday volume): the first and last slices trade
    about three times the middle ones. Returns float64 (n_slices,) summing to 1.
    """
    _check_slices(n_slices, "execution.u_shape_profile")
    s = (np.arange(n_slices) + 0.5) / n_slices
    profile = 1.0 + 2.0 * (2.0 * s - 1.0) ** 2
    return np.asarray(profile / profile.sum(), dtype=np.float64)


def vwap(
    quantity: int, n_slices: int, volume_profile: npt.ArrayLike | None = None
) -> ExecutionSchedule:
    """Slices proportional to expected volume.

    ``volume_profile``: (n_slices,) expected volume per slice, any non-negative unit (shares or
    fractions); None uses :func:`u_shape_profile`. A profile that is all zero carries no
    information and falls back to equal slices (TWAP weights; the algo stays ``VWAP``).
    """
    src = "execution.vwap"
    _check_slices(n_slices, src)
    q = _shares(quantity, src)
    if volume_profile is None:
        profile = u_shape_profile(n_slices)
    else:
        profile = check_array(src, volume_profile, low=0.0, shape=(n_slices,))
    if not profile.sum() > 0.0:
        profile = np.full(n_slices, 1.0)
    if q == 0:
        return _empty(ExecAlgo.VWAP)
    return _from_weights(ExecAlgo.VWAP, q, profile)


def pov(quantity: int, volume_forecast: npt.ArrayLike, rate: float) -> ExecutionSchedule:
    """Participate at ``rate`` of the forecast volume per slice until the order is done.

    ``volume_forecast``: (n_slices,) forecast market volume per slice in shares (>= 0);
    ``rate`` in (0, 1]. Child ``k`` is ``min(shares left, floor(rate * volume_k))``, so it never
    exceeds the participation cap; children after completion are 0. What the horizon cannot
    absorb is the schedule's ``remainder`` (signed), never silently dropped.
    """
    src = "execution.pov"
    rate = check_scalar(src + ".rate", rate, low=0.0, high=1.0)
    if rate == 0.0:
        raise EngineError("rate must be in (0, 1]", source=src)
    volume = check_array(src + ".volume_forecast", volume_forecast, low=0.0)
    if volume.ndim != 1:
        raise EngineError(f"volume_forecast must be (n_slices,), got {volume.shape}", source=src)
    _check_slices(volume.shape[0], src)
    q = _shares(quantity, src)
    if q == 0:
        return _empty(ExecAlgo.POV)
    caps = np.floor(rate * volume)
    filled = np.minimum(np.cumsum(caps), abs(q))
    sizes = np.diff(filled, prepend=0.0)
    children = int(np.sign(q)) * sizes.astype(np.int64)
    left = abs(q) - int(filled[-1])
    return ExecutionSchedule(
        algo=ExecAlgo.POV,
        quantity=q,
        child_quantities=children,
        weights=sizes / abs(q),
        remainder=int(np.sign(q)) * left,
    )


def iceberg(
    quantity: int, clip_size: int, *, variation: float = 0.2, seed: int
) -> ExecutionSchedule:
    """Show the order in clips of about ``clip_size`` shares, the rest hidden.

    Each clip is ``round(clip_size * (1 + u))`` with ``u`` uniform in ``[-variation,
    +variation]`` drawn from ``numpy.random.default_rng(seed)`` (so the visible size does not
    repeat and become recognisable flow), at least 1 share; the last clip is what is left.
    ``variation`` in [0, 1). The number of children is however many clips the order needs;
    :attr:`ExecutionSchedule.inventory` gives the hidden remainder after each clip.
    """
    src = "execution.iceberg"
    variation = check_scalar(src + ".variation", variation, low=0.0, high=1.0)
    if variation >= 1.0 or clip_size < 1:
        raise EngineError("need clip_size >= 1 and variation in [0, 1)", source=src)
    q = _shares(quantity, src)
    if q == 0:
        return _empty(ExecAlgo.ICEBERG)
    smallest = max(1, round(clip_size * (1.0 - variation)))
    n_max = -(-abs(q) // smallest)
    if n_max > _MAX_CLIPS:
        raise EngineError(f"{n_max} clips needed; use a larger clip_size", source=src)
    rng = np.random.default_rng(seed)
    draws = np.rint(clip_size * (1.0 + rng.uniform(-variation, variation, size=n_max)))
    clips = np.maximum(draws, 1.0)
    cum = np.minimum(np.cumsum(clips), abs(q))
    n = int(np.searchsorted(cum, abs(q))) + 1
    sizes = np.diff(cum[:n], prepend=0.0)
    return ExecutionSchedule(
        algo=ExecAlgo.ICEBERG,
        quantity=q,
        child_quantities=int(np.sign(q)) * sizes.astype(np.int64),
        weights=sizes / abs(q),
    )


def almgren_chriss(
    quantity: int, n_slices: int, params: ACParams, *, method: ACMethod = ACMethod.CLOSED_FORM
) -> ExecutionSchedule:
    """The Almgren–Chriss mean-variance optimal schedule over ``n_slices`` slices.

    Children are the trades ``x_{k-1} - x_k`` of the optimal inventory path (closed form, or the
    cvxpy QP with ``method=ACMethod.QP``), rounded to shares by largest remainder. With
    ``params.risk_aversion == 0`` this is TWAP; more risk aversion trades earlier.
    """
    src = "execution.almgren_chriss"
    _check_slices(n_slices, src)
    q = _shares(quantity, src)
    if q == 0:
        return _empty(ExecAlgo.ALMGREN_CHRISS)
    solve = ac_trajectory if method is ACMethod.CLOSED_FORM else ac_trajectory_qp
    path = solve(1.0, n_slices, params)
    trades = np.clip(-np.diff(path), 0.0, None)  # a solver's -1e-12 is not a reversal
    return _from_weights(ExecAlgo.ALMGREN_CHRISS, q, trades)


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanOptions:
    """Per-algorithm settings for :func:`plan_order` (defaults documented per field).

    ``max_slices``: cap on the automatic number of bars (10, at least 2). ``volume_profile``:
    VWAP's expected volume per bar; its length sets the number of bars when ``n_slices`` is
    None (None: :func:`u_shape_profile`).
    ``pov_rate``: POV's participation rate (0.10 of each bar's volume, which is forecast as the
    ADV). ``iceberg_variation``: +-20% clip randomisation. ``ac``: Almgren–Chriss parameters,
    required when ``algo`` is ``ALMGREN_CHRISS``.
    """

    max_slices: int = 10
    volume_profile: tuple[float, ...] | None = None
    pov_rate: float = 0.10
    iceberg_variation: float = 0.20
    ac: ACParams | None = None

    def __post_init__(self) -> None:
        if self.max_slices < 2:
            raise EngineError(f"max_slices must be >= 2, got {self.max_slices}", source="execution")


def plan_order(
    quantity: int,
    adv: float,
    *,
    participation_threshold: float = 0.01,
    algo: ExecAlgo = ExecAlgo.TWAP,
    n_slices: int | None = None,
    seed: int,
    options: PlanOptions | None = None,
) -> ExecutionSchedule:
    """The Trader's execution policy for one parent order; submit one child per bar.

    ``quantity``: signed integer shares. ``adv``: average daily volume in shares (> 0).
    An order with ``|quantity| <= participation_threshold * adv`` (default 1% of ADV, where a
    daily-bar strategy's market impact is negligible) goes at once as one ``SINGLE`` child.
    Larger orders are split with ``algo`` (default TWAP: across daily bars the volume profile is
    flat, so TWAP is VWAP) over ``n_slices`` bars; None picks the fewest bars that keep each
    child at or under the threshold, ``ceil(|quantity| / (threshold * adv))``, clamped to
    ``[2, options.max_slices]`` (or the length of ``options.volume_profile`` for VWAP).
    ``seed`` feeds the iceberg's randomisation (ignored otherwise); its clip size is
    ``ceil(|quantity| / n_slices)``, so its randomised clips number about ``n_slices`` (at most
    ``n_slices / (1 - variation)`` plus one).
    """
    src = "execution.plan_order"
    opts = options or PlanOptions()
    q = _shares(quantity, src)
    adv = check_scalar(src + ".adv", adv, low=0.0)
    threshold = check_scalar(src + ".participation_threshold", participation_threshold, low=0.0)
    if adv == 0.0:
        raise EngineError("adv must be > 0 shares", source=src)
    if n_slices is not None:
        _check_slices(n_slices, src)
    if q == 0:
        return _empty(ExecAlgo.SINGLE)
    if abs(q) <= threshold * adv:
        return _from_weights(ExecAlgo.SINGLE, q, np.ones(1))
    return _split(q, adv, algo, _horizon(q, threshold * adv, algo, n_slices, opts), seed, opts)


def _horizon(q: int, cap: float, algo: ExecAlgo, n_slices: int | None, opts: PlanOptions) -> int:
    """The number of bars :func:`plan_order` uses (its docstring has the rule)."""
    if n_slices is not None:
        return n_slices
    if algo is ExecAlgo.VWAP and opts.volume_profile is not None:
        return len(opts.volume_profile)
    bars = abs(q) / cap if cap > 0.0 else math.inf
    return max(2, math.ceil(min(bars, opts.max_slices)))


def _split(
    q: int, adv: float, algo: ExecAlgo, n_slices: int, seed: int, opts: PlanOptions
) -> ExecutionSchedule:
    if algo is ExecAlgo.SINGLE:
        return _from_weights(ExecAlgo.SINGLE, q, np.ones(1))
    if algo is ExecAlgo.TWAP:
        return twap(q, n_slices)
    if algo is ExecAlgo.VWAP:
        return vwap(q, n_slices, opts.volume_profile)
    if algo is ExecAlgo.POV:
        return pov(q, np.full(n_slices, adv), opts.pov_rate)
    if algo is ExecAlgo.ICEBERG:
        clip = math.ceil(abs(q) / n_slices)
        return iceberg(q, clip, variation=opts.iceberg_variation, seed=seed)
    if opts.ac is None:
        raise EngineError("algo ALMGREN_CHRISS needs options.ac", source="execution.plan_order")
    return almgren_chriss(q, n_slices, opts.ac)
