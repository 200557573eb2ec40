"""Bars from a broker's history endpoint -> a validated :class:`BarPanel`, shared by the
adapters: each turns its wire format into the documented long frame (``timestamp, symbol, open,
high, low, close, volume``) and a function that re-stamps bar times the project's way; this does
the rest (strict validation before and after re-stamping, alignment on the union of times)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from sovereign.market.bars import OHLCV_COLUMNS, BarPanel, Feature
from sovereign.market.validation import normalize_frame

FEATURES = frozenset({Feature.CLOSE, Feature.OHLC, Feature.VOLUME})

Stamper = Callable[[pd.Series, str], pd.Series]
"""(the bars' times as the broker sent them, timeframe) -> the project's bar stamps."""


def assemble_panel(
    frame: pd.DataFrame,
    names: Sequence[str],
    timeframe: str,
    *,
    stamp: Stamper,
    source: str,
    gap_tolerance: float | None,
) -> BarPanel:
    """A panel with ``names`` as columns (in that order) and the sorted union of the bar stamps
    as rows, NaN where a symbol has no bar. Raises DataError (naming ``source``) for invalid
    bars, or two bars of one symbol that the re-stamping puts on the same time."""
    clean = normalize_frame(frame, source=source, gap_tolerance=None)
    clean["timestamp"] = stamp(clean["timestamp"], timeframe)
    # Again after re-stamping: two bars of one session would now collide.
    clean = normalize_frame(clean, source=source, gap_tolerance=gap_tolerance)
    stamps = pd.DatetimeIndex(clean["timestamp"])
    times, row_of = np.unique(stamps.asi8, return_inverse=True)
    col_of = pd.Index(list(names)).get_indexer(pd.Index(clean["symbol"]))
    arrays = {}
    for column in OHLCV_COLUMNS:
        arr = np.full((len(times), len(names)), np.nan)
        arr[row_of, col_of] = clean[column].to_numpy(dtype=np.float64)
        arrays[column] = arr
    return BarPanel(
        timestamps=pd.DatetimeIndex(pd.to_datetime(times, unit=stamps.unit, utc=True)),
        symbols=tuple(names),
        features=FEATURES,
        source=source,
        open=arrays["open"],
        high=arrays["high"],
        low=arrays["low"],
        close=arrays["close"],
        volume=arrays["volume"],
    )


__all__ = ["FEATURES", "Stamper", "assemble_panel"]
