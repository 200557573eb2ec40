"""Bars and aligned bar panels.

A :class:`BarPanel` is the unit every engine and the Trader work on: one row per timestamp, one
column per symbol, five float64 arrays of shape ``(n_bars, n_symbols)``. A symbol that has no bar
at a timestamp (not listed yet, delisted, a gap) holds NaN there. A closes-only source fills
open/high/low with the close and volume with NaN, and says so in ``features``.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import numpy as np
import pandas as pd

from sovereign.errors import DataError

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")


class Feature(StrEnum):
    """What a data source can provide beyond a close price."""

    CLOSE = "close"
    OHLC = "ohlc"  # real open/high/low: true range, support/resistance from highs and lows
    VOLUME = "volume"


@dataclass(frozen=True, kw_only=True, slots=True)
class Bar:
    """One symbol's bar. ``timestamp`` is the bar's close time, timezone-aware UTC."""

    timestamp: datetime
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class BarPanel:
    """Aligned OHLCV history of a universe.

    ``timestamps``: tz-aware UTC DatetimeIndex, strictly increasing, length n_bars.
    ``open/high/low/close/volume``: float64 ndarray of shape (n_bars, n_symbols), prices in the
    quote currency, volume in shares; NaN where a symbol has no bar.
    """

    timestamps: pd.DatetimeIndex
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    features: frozenset[Feature]
    source: str = "<memory>"
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        shape = (len(self.timestamps), len(self.symbols))
        for name in OHLCV_COLUMNS:
            arr = getattr(self, name)
            if arr.shape != shape:
                raise DataError(
                    f"array shape {arr.shape} does not match (n_bars, n_symbols) = {shape}",
                    source=self.source,
                    column=name,
                )
        if self.timestamps.tz is None:
            raise DataError("timestamps must be timezone-aware UTC", source=self.source)
        self._index.update({s: i for i, s in enumerate(self.symbols)})

    @property
    def n_bars(self) -> int:
        return len(self.timestamps)

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    def has(self, feature: Feature) -> bool:
        return feature in self.features

    def column(self, symbol: str) -> int:
        """Column index of ``symbol``; KeyError names the symbol and the universe."""
        try:
            return self._index[symbol]
        except KeyError:
            raise KeyError(f"symbol {symbol!r} not in panel {self.symbols}") from None

    def slice(self, start: int, stop: int) -> BarPanel:
        """Rows ``start:stop`` (bar indices), same symbols."""
        return self._replace(slice(start, stop), list(range(self.n_symbols)))

    def select(self, symbols: list[str] | tuple[str, ...]) -> BarPanel:
        """The same rows for a subset of symbols, in the order given."""
        cols = [self.column(s) for s in symbols]
        return self._replace(slice(None), cols)

    def between(self, start: datetime | None = None, end: datetime | None = None) -> BarPanel:
        """Bars with ``start <= timestamp <= end`` (either bound optional)."""
        lo = 0 if start is None else int(self.timestamps.searchsorted(start, side="left"))
        hi = self.n_bars if end is None else int(self.timestamps.searchsorted(end, side="right"))
        return self.slice(lo, hi)

    def bar(self, i: int, symbol: str) -> Bar:
        j = self.column(symbol)
        vol = float(self.volume[i, j])
        return Bar(
            timestamp=self.timestamps[i].to_pydatetime(),
            symbol=symbol,
            open=float(self.open[i, j]),
            high=float(self.high[i, j]),
            low=float(self.low[i, j]),
            close=float(self.close[i, j]),
            volume=None if np.isnan(vol) else vol,
        )

    def to_frame(self) -> pd.DataFrame:
        """Long format with the documented schema, rows with no bar dropped."""
        n, m = self.close.shape
        frame = pd.DataFrame(
            {
                "timestamp": np.repeat(self.timestamps.to_numpy(), m),
                "symbol": np.tile(np.array(self.symbols, dtype=object), n),
                **{c: getattr(self, c).reshape(-1) for c in OHLCV_COLUMNS},
            }
        )
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        return frame[frame["close"].notna()].reset_index(drop=True)

    def _replace(self, rows: builtins.slice, cols: list[int]) -> BarPanel:
        return BarPanel(
            timestamps=self.timestamps[rows],
            symbols=tuple(self.symbols[c] for c in cols),
            open=self.open[rows][:, cols],
            high=self.high[rows][:, cols],
            low=self.low[rows][:, cols],
            close=self.close[rows][:, cols],
            volume=self.volume[rows][:, cols],
            features=self.features,
            source=self.source,
        )

    @classmethod
    def from_closes(cls, closes: pd.DataFrame, *, source: str = "<memory>") -> BarPanel:
        """A closes-only panel from a wide frame (UTC DatetimeIndex x symbols)."""
        arr = closes.to_numpy(dtype=np.float64, copy=True)
        idx = pd.DatetimeIndex(closes.index)
        return cls(
            timestamps=idx,
            symbols=tuple(str(c) for c in closes.columns),
            open=arr.copy(),
            high=arr.copy(),
            low=arr.copy(),
            close=arr,
            volume=np.full_like(arr, np.nan),
            features=frozenset({Feature.CLOSE}),
            source=source,
        )
