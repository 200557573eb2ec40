"""Checks an engine's output before anyone acts on it (fail closed).

Every engine result that reaches the Trader or the Supervisor passes through these: a NaN, an
infinity or a value outside its documented range raises :class:`~sovereign.errors.EngineError`
naming the engine output, and the caller stands down instead of trading on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from sovereign.errors import EngineError

__all__ = ["check_array", "check_probability", "check_scalar"]


def check_scalar(
    name: str,
    value: float,
    *,
    low: float = -math.inf,
    high: float = math.inf,
) -> float:
    """``value`` as a float if finite and within ``[low, high]``; :class:`EngineError` if not."""
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise EngineError(f"not a number: {value!r}", source=name) from err
    if not math.isfinite(number):
        raise EngineError(f"not finite: {number}", source=name)
    if number < low or number > high:
        raise EngineError(f"{number:.6g} is outside [{low:.6g}, {high:.6g}]", source=name)
    return number


def check_probability(name: str, value: float) -> float:
    """A finite value in ``[0, 1]``."""
    return check_scalar(name, value, low=0.0, high=1.0)


def check_array(
    name: str,
    values: npt.ArrayLike | Iterable[float],
    *,
    low: float = -math.inf,
    high: float = math.inf,
    shape: tuple[int, ...] | None = None,
) -> npt.NDArray[np.float64]:
    """``values`` as a float64 array if every element is finite and within ``[low, high]``.

    ``shape``, when given, must match exactly. The message names the first bad position.
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise EngineError(f"not numeric: {err}", source=name) from err
    if shape is not None and array.shape != shape:
        raise EngineError(f"shape {array.shape}, expected {shape}", source=name)
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise EngineError(f"not finite at {where}: {array[where]}", source=name)
    outside = (array < low) | (array > high)
    if outside.any():
        where = tuple(int(i) for i in np.argwhere(outside)[0])
        raise EngineError(
            f"{array[where]:.6g} at {where} is outside [{low:.6g}, {high:.6g}]", source=name
        )
    return array
