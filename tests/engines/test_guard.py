import math

import numpy as np
import pytest

from sovereign.engines.guard import check_array, check_probability, check_scalar
from sovereign.errors import DataError, EngineError


def test_scalar_passes_a_finite_value_in_range() -> None:
    assert check_scalar("risk.var", 0.02, low=0.0) == 0.02


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_scalar_rejects_non_finite(value: float) -> None:
    with pytest.raises(EngineError, match=r"risk\.var: not finite"):
        check_scalar("risk.var", value)


def test_scalar_rejects_out_of_range_and_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"outside \[0, 1\]"):
        check_probability("edge.p", 1.2)


def test_scalar_rejects_non_numbers() -> None:
    with pytest.raises(EngineError, match="not a number"):
        check_scalar("x", "abc")  # type: ignore[arg-type]


def test_array_names_the_first_bad_position() -> None:
    with pytest.raises(EngineError, match=r"not finite at \(1, 0\)"):
        check_array("portfolio.w", [[0.1, 0.2], [math.nan, 0.3]])
    with pytest.raises(EngineError, match=r"at \(2,\) is outside"):
        check_array("portfolio.w", [0.1, 0.2, 0.7], high=0.5)


def test_array_checks_shape_and_returns_float64() -> None:
    out = check_array("w", [1, 2], shape=(2,))
    assert out.dtype == np.float64
    with pytest.raises(EngineError, match="shape"):
        check_array("w", [1, 2, 3], shape=(2,))
