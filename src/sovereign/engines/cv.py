"""Purged walk-forward cross-validation with an embargo (Lopez de Prado, AFML ch. 7).

A sample ``i`` is observed at bar ``t_i`` and its label (a forward return over ``horizon`` bars)
uses the bars ``[t_i, t_i + horizon]``. Ordinary K-fold leaks twice on such data: a training
label whose span reaches into the test period was computed from test-period prices, and serially
correlated features carry that information across the boundary. :class:`PurgedWalkForward`
prevents both:

* **Walk-forward.** Samples (sorted by time) are cut into ``n_splits + 1`` contiguous blocks, as
  scikit-learn's ``TimeSeriesSplit`` does: the first block (plus the remainder of the division)
  only ever trains, and block ``k`` is the test fold of split ``k``. Training samples are always
  strictly earlier than the test fold: the model never sees the future.
* **Purge.** A training sample is dropped when its label span ``[t_i, t_i + horizon]`` reaches
  the first test bar ``T`` (``t_i + horizon >= T``): its label was computed from test-period
  prices.
* **Embargo.** In Lopez de Prado's interleaved K-fold the embargo drops training samples in the
  ``embargo`` bars *after* a test fold. In walk-forward nothing trains after the test fold, so
  the embargo here is the same safety margin on the only side that exists: a further
  ``embargo`` bars of gap between the end of the last training label and the test fold, for
  features that remember more than the label horizon (rolling windows). Together a training
  sample is kept only if ``t_i + horizon + embargo < T``.
* **Window.** ``EXPANDING`` (default) trains on everything that survives the purge;
  ``ROLLING`` keeps only the latest ``max_train_size`` surviving samples, for models that
  should forget old regimes.

The splitter is scikit-learn compatible (``split(X, y, groups)`` yields ``(train, test)`` index
arrays, ``get_n_splits``). The sample times travel in ``groups`` (integer bar positions,
non-decreasing); with ``groups=None`` sample ``i`` is taken to be observed at bar ``i``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from sovereign.errors import EngineError

__all__ = ["PurgedWalkForward", "Window", "sample_times"]

_SOURCE = "cv.PurgedWalkForward"


class Window(StrEnum):
    """How much of the past a walk-forward split trains on."""

    EXPANDING = "expanding"  # every purged sample before the test fold
    ROLLING = "rolling"  # only the latest ``max_train_size`` purged samples


def sample_times(t_index: npt.ArrayLike | None, n_samples: int) -> npt.NDArray[np.int64]:
    """Validated sample times: ndarray (n_samples,) of int64 bar positions, non-decreasing.

    ``t_index``: the bar position at which each sample is observed (several samples may share a
    bar, e.g. signals on several symbols); ``None`` means ``arange(n_samples)``. Raises
    :class:`EngineError` on a wrong length, a non-integer or non-finite value, or a decrease.
    """
    if t_index is None:
        return np.arange(n_samples, dtype=np.int64)
    raw = np.asarray(t_index)
    if raw.ndim != 1 or raw.shape[0] != n_samples:
        raise EngineError(
            f"t_index has shape {raw.shape}, expected ({n_samples},)", source="cv.sample_times"
        )
    if raw.dtype.kind not in "iuf":
        raise EngineError(
            f"t_index must hold integer bar positions, got dtype {raw.dtype}",
            source="cv.sample_times",
        )
    as_float = raw.astype(np.float64)
    if not np.isfinite(as_float).all() or not np.array_equal(as_float, np.round(as_float)):
        raise EngineError(
            "t_index must hold finite integer bar positions", source="cv.sample_times"
        )
    times = as_float.astype(np.int64)
    if n_samples > 1 and bool((np.diff(times) < 0).any()):
        first = int(np.argmax(np.diff(times) < 0)) + 1
        raise EngineError(
            f"t_index must be non-decreasing (sort samples by time); it decreases at sample {first}",
            source="cv.sample_times",
        )
    return times


@dataclass(frozen=True, kw_only=True, slots=True)
class PurgedWalkForward:
    """Walk-forward splitter with purging and an embargo (see the module docstring).

    ``n_splits``: number of test folds (>= 2). ``horizon``: label span in bars (>= 0; a label
    observed at ``t`` uses bars ``t .. t + horizon``). ``embargo``: extra gap in bars between the
    end of the last training label and the test fold (>= 0). ``window``: expanding or rolling;
    ``max_train_size``: the rolling window in samples (required for ``ROLLING``, ignored for
    ``EXPANDING``).
    """

    n_splits: int = 5
    horizon: int = 1
    embargo: int = 0
    window: Window = Window.EXPANDING
    max_train_size: int | None = None

    def __post_init__(self) -> None:
        if self.n_splits < 2:
            raise EngineError(f"n_splits must be >= 2, got {self.n_splits}", source=_SOURCE)
        if self.horizon < 0 or self.embargo < 0:
            raise EngineError(
                f"horizon and embargo must be >= 0, got {self.horizon} and {self.embargo}",
                source=_SOURCE,
            )
        if self.window is Window.ROLLING and (
            self.max_train_size is None or self.max_train_size < 1
        ):
            raise EngineError("a rolling window needs max_train_size >= 1", source=_SOURCE)

    def get_n_splits(
        self, X: object = None, y: object = None, groups: object = None
    ) -> int:  # sklearn's signature
        """The number of ``(train, test)`` pairs :meth:`split` yields."""
        return self.n_splits

    def split(
        self, X: npt.ArrayLike, y: object = None, groups: npt.ArrayLike | None = None
    ) -> Iterator[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
        """Yield ``(train, test)`` index arrays, oldest test fold first.

        ``X``: array-like with ``n_samples`` rows, in time order. ``groups``: ndarray
        (n_samples,) of integer bar positions (see :func:`sample_times`). Every yielded train
        index ``i`` satisfies ``t_i + horizon + embargo < t[test[0]]``; the test fold is a
        contiguous block. Raises :class:`EngineError` when there are fewer samples than folds or
        when the purge leaves a split with no training sample (too few samples for the horizon).
        """
        n_samples = int(np.asarray(X).shape[0])
        times = sample_times(groups, n_samples)
        test_size = n_samples // (self.n_splits + 1)
        if test_size < 1:
            raise EngineError(
                f"{n_samples} samples cannot make {self.n_splits} walk-forward test folds",
                source=_SOURCE,
            )
        first_test = n_samples - self.n_splits * test_size
        gap = self.horizon + self.embargo
        for k in range(self.n_splits):
            start = first_test + k * test_size
            test = np.arange(start, start + test_size, dtype=np.intp)
            # times are sorted: the samples that survive the purge form a prefix [0, n_train)
            n_train = int(np.searchsorted(times, times[start] - gap, side="left"))
            lo = 0
            if self.window is Window.ROLLING and self.max_train_size is not None:
                lo = max(0, n_train - self.max_train_size)
            if n_train - lo < 1:
                raise EngineError(
                    f"split {k}: no training sample survives the purge "
                    f"(horizon {self.horizon} + embargo {self.embargo} bars before bar "
                    f"{int(times[start])}); use fewer splits or more samples",
                    source=_SOURCE,
                )
            yield np.arange(lo, n_train, dtype=np.intp), test
