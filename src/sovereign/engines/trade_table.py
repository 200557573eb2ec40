"""The per-trade table that analytics work on, and performance by slice.

Pure: every function is handed the trades, the features and the bar timestamps.

* :func:`trade_frame` (from the backtester's round trips) and :func:`trade_frame_from_rows` (from
  trades recorded in memory) build one row per trade with the slices a rule can act on: regime,
  volume and ATR buckets, weekday, symbol, strategy x regime and losing-streak position, all taken
  at the trade's *signal bar*, where the Trader evaluated its rules.
* :func:`performance_by` aggregates that table by one slice.

Units: ``pnl`` in money (net of commissions); ``return_pct`` in percent of the entry notional
(1.5 = 1.5%); ``atr_pct`` in percent of price; ``volume_pct`` a 0..100 percentile rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import pandas as pd

from sovereign.engines.indicators import FeatureFrame

__all__ = [
    "NA",
    "STREAK_CAP",
    "VOLUME_EDGES",
    "WEEKDAYS",
    "ClosedTradeLike",
    "Dimension",
    "TradeRowLike",
    "performance_by",
    "trade_frame",
    "trade_frame_from_rows",
]

NA = "n/a"
"""Bucket label of a trade whose feature is unknown (no volume in the source, no ATR yet)."""
WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
VOLUME_EDGES: tuple[float, ...] = (20.0, 40.0, 60.0, 80.0)
"""Volume buckets are fixed percentile quintiles: q1 = [0, 20), ..., q5 = [80, 100]."""
STREAK_CAP = 3
"""Losing-streak buckets: "0", "1", "2", "3+" consecutive losses before the trade's signal."""


class Dimension(StrEnum):
    """A slice of the trade table, and the frame column that holds its cluster labels."""

    REGIME = "regime"
    VOLUME = "volume"
    ATR = "atr"
    WEEKDAY = "weekday"
    SYMBOL = "symbol"
    STRATEGY_REGIME = "strategy_regime"
    LOSING_STREAK = "losing_streak"
    STABILITY = "stability"

    @property
    def column(self) -> str:
        return _COLUMNS[self]


_COLUMNS: dict[Dimension, str] = {
    Dimension.REGIME: "regime",
    Dimension.VOLUME: "volume_bucket",
    Dimension.ATR: "atr_bucket",
    Dimension.WEEKDAY: "weekday",
    Dimension.SYMBOL: "symbol",
    Dimension.STRATEGY_REGIME: "strategy_regime",
    Dimension.LOSING_STREAK: "streak_bucket",
    Dimension.STABILITY: "stability_bucket",
}


class _TradeLike(Protocol):
    # Structural types: the core's engines may not import trading (ClosedTrade) or memory
    # (TradeRow), and need not: these are the attributes read.
    @property
    def strategy(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def entry_time(self) -> datetime: ...
    @property
    def exit_time(self) -> datetime: ...
    @property
    def pnl(self) -> float: ...
    @property
    def return_pct(self) -> float: ...


class ClosedTradeLike(_TradeLike, Protocol):
    """What :func:`trade_frame` reads of a round trip (``trading.events.ClosedTrade`` fits)."""

    @property
    def side(self) -> int: ...
    @property
    def regime_at_entry(self) -> str: ...
    @property
    def entry_bar(self) -> int: ...


class TradeRowLike(_TradeLike, Protocol):
    """What :func:`trade_frame_from_rows` reads of a stored trade (``memory.tables.TradeRow``)."""

    @property
    def side(self) -> str: ...
    @property
    def regime_at_entry(self) -> str | None: ...


# ------------------------------------------------------------------------------- trade table


def trade_frame(
    trades: Sequence[ClosedTradeLike],
    features: FeatureFrame | None,
    symbols: Sequence[str],
    timestamps: Sequence[datetime] | pd.DatetimeIndex,
    *,
    signal_lag: int = 1,
    stability: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per round trip, with the slices the weakness finder tests.

    The *signal bar* is ``entry_bar - signal_lag``: the Trader decides at the close of bar ``i``
    (that is where rules read the weekday, ATR and volume percentile), the paper exchange fills
    at the open of bar ``i + latency_bars``, and ``ClosedTrade.entry_bar`` is the fill's bar. So
    ``signal_lag`` is the exchange's ``latency_bars`` (1 by default).

    ``features``: the run's :class:`FeatureFrame` (arrays of shape (n_bars, n_symbols)), or None
    (volume and ATR buckets are then ``"n/a"``). ``symbols``: its columns. ``timestamps``: its
    rows, tz-aware UTC, length n_bars.

    Columns: strategy, symbol, side ("long"/"short"), entry_time, exit_time, signal_bar (-1 when
    unknown), signal_time, pnl (money), return_pct (%), win (pnl > 0), regime, weekday ("Mon"..
    of the signal bar), volume_pct (0..100), volume_bucket ("q1".."q5" or "n/a"), atr_pct
    (% of price), atr_bucket ("q1".."q5" quintiles of the trades' atr_pct, or "n/a"),
    atr_low/atr_high (that bucket's edges; NaN at the open ends), losing_streak (the strategy's
    consecutive losses when the signal was taken), streak_bucket ("0".."3+"), strategy_regime,
    stability_bucket (the stability engine's bucket of the signal bar, "stable" / "fragile" /
    "unstable", from ``stability``: object ndarray (n_bars,) aligned with ``timestamps``, e.g.
    ``Overlay.buckets()``; "n/a" without it).
    """
    index = _utc(timestamps, "timestamps")
    n_bars = len(index)
    base = _base_columns(trades, sides=[_side(t.side) for t in trades])
    bars = np.array([t.entry_bar - signal_lag for t in trades], dtype=np.int64)
    bars[(bars < 0) | (bars >= n_bars)] = -1
    return _finish(base, bars, features, symbols, index, stability)


def trade_frame_from_rows(
    rows: Sequence[TradeRowLike],
    features: FeatureFrame | None,
    symbols: Sequence[str],
    timestamps: Sequence[datetime] | pd.DatetimeIndex,
    *,
    signal_lag: int = 1,
    stability: np.ndarray | None = None,
) -> pd.DataFrame:
    """:func:`trade_frame` for trades read back from memory (which store no bar index).

    The entry bar is the row of ``timestamps`` equal to ``entry_time`` (the fill's bar) and the
    signal bar is ``signal_lag`` rows before it. A trade whose entry time is not one of
    ``timestamps`` has signal bar -1: its weekday and losing streak are taken at the entry time
    and its volume and ATR buckets are ``"n/a"``.
    """
    index = _utc(timestamps, "timestamps")
    base = _base_columns(rows, sides=[_side(r.side) for r in rows])
    entry = pd.DatetimeIndex(base["entry_time"]).asi8
    stamps = index.asi8
    pos = np.searchsorted(stamps, entry)
    found = (pos < len(stamps)) & (stamps[np.minimum(pos, len(stamps) - 1)] == entry)
    bars = np.where(found, pos - signal_lag, -1).astype(np.int64)
    bars[bars < 0] = -1
    return _finish(base, bars, features, symbols, index, stability)


def _side(side: int | str) -> str:
    if isinstance(side, str):
        return "short" if side.lower() in ("short", "sell", "-1") else "long"
    return "long" if side > 0 else "short"


def _utc(values: Iterable[datetime], what: str = "trade times") -> pd.DatetimeIndex:
    """A UTC, nanosecond DatetimeIndex; naive datetimes are refused."""
    index = pd.DatetimeIndex(list(values))
    if len(index) and index.tz is None:
        raise ValueError(f"{what} must be timezone-aware (UTC)")
    return (index.tz_convert("UTC") if len(index) else pd.DatetimeIndex([], tz="UTC")).as_unit("ns")


def _base_columns(
    trades: Sequence[ClosedTradeLike] | Sequence[TradeRowLike], *, sides: list[str]
) -> dict[str, Any]:
    return {
        "strategy": [t.strategy for t in trades],
        "symbol": [t.symbol for t in trades],
        "side": sides,
        "entry_time": _utc(t.entry_time for t in trades),
        "exit_time": _utc(t.exit_time for t in trades),
        "pnl": np.array([t.pnl for t in trades], dtype=float),
        "return_pct": np.array([t.return_pct for t in trades], dtype=float),
        "regime": [t.regime_at_entry or "unknown" for t in trades],
    }


def _finish(
    base: dict[str, Any],
    bars: np.ndarray,
    features: FeatureFrame | None,
    symbols: Sequence[str],
    index: pd.DatetimeIndex,
    stability: np.ndarray | None = None,
) -> pd.DataFrame:
    n = len(bars)
    column = {s: j for j, s in enumerate(symbols)}
    cols = np.array([column.get(s, -1) for s in base["symbol"]], dtype=np.int64)
    known = (bars >= 0) & (cols >= 0)
    volume = np.full(n, np.nan)
    atr = np.full(n, np.nan)
    if features is not None:
        if features.shape != (len(index), len(symbols)):
            raise ValueError(
                f"features have shape {features.shape}, expected "
                f"({len(index)} timestamps, {len(symbols)} symbols)"
            )
        volume[known] = features.volume_percentile[bars[known], cols[known]]
        atr[known] = features.atr_pct[bars[known], cols[known]]
    entry = base["entry_time"]
    signal_ns = entry.asi8.copy()
    signal_ns[bars >= 0] = index.asi8[bars[bars >= 0]]
    signal = pd.DatetimeIndex(signal_ns.astype("datetime64[ns]")).tz_localize("UTC")
    streak = _losing_streaks(base["strategy"], base["pnl"], base["exit_time"].asi8, signal.asi8)
    atr_bucket, atr_low, atr_high = _atr_buckets(atr)
    frame = pd.DataFrame(
        {
            "strategy": base["strategy"],
            "symbol": base["symbol"],
            "side": base["side"],
            "entry_time": entry,
            "exit_time": base["exit_time"],
            "signal_bar": bars,
            "signal_time": signal,
            "pnl": base["pnl"],
            "return_pct": base["return_pct"],
            "win": base["pnl"] > 0,
            "regime": base["regime"],
            "weekday": [WEEKDAYS[d] for d in signal.day_of_week],
            "volume_pct": volume,
            "volume_bucket": _volume_buckets(volume),
            "atr_pct": atr,
            "atr_bucket": atr_bucket,
            "atr_low": atr_low,
            "atr_high": atr_high,
            "losing_streak": streak,
            "streak_bucket": [str(s) if s < STREAK_CAP else f"{STREAK_CAP}+" for s in streak],
            "strategy_regime": [
                f"{s}|{r}" for s, r in zip(base["strategy"], base["regime"], strict=True)
            ],
            "stability_bucket": _stability_buckets(stability, bars, len(index)),
        }
    )
    return frame


def _stability_buckets(stability: np.ndarray | None, bars: np.ndarray, n_bars: int) -> list[str]:
    if stability is None:
        return [NA] * len(bars)
    if len(stability) != n_bars:
        raise ValueError(f"stability has {len(stability)} bars, expected {n_bars}")
    return [str(stability[b]) if b >= 0 else NA for b in bars]


def _volume_buckets(volume: np.ndarray) -> list[str]:
    idx = np.searchsorted(np.asarray(VOLUME_EDGES), volume, side="right")  # [lo, hi)
    return [NA if math.isnan(v) else f"q{k + 1}" for v, k in zip(volume, idx, strict=True)]


def _atr_buckets(atr: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Quintiles of the trades' own ATR%: bucket k covers (edge[k-1], edge[k]]."""
    n = len(atr)
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    finite = np.isfinite(atr)
    if not finite.any():
        return [NA] * n, low, high
    edges = np.quantile(atr[finite], [0.2, 0.4, 0.6, 0.8])
    k = np.searchsorted(edges, atr, side="left")
    padded = np.concatenate([[np.nan], edges, [np.nan]])
    low[finite] = padded[k[finite]]
    high[finite] = padded[k[finite] + 1]
    labels = [f"q{b + 1}" if ok else NA for b, ok in zip(k, finite, strict=True)]
    return labels, low, high


def _losing_streaks(
    strategies: list[str], pnl: np.ndarray, exits: np.ndarray, signals: np.ndarray
) -> np.ndarray:
    """Each trade's strategy's consecutive losses (pnl < 0) closed at or before its signal.

    That is the Trader's ``book.losing_streak`` when it evaluated the trade's entry rules: a
    trade whose exit filled at bar ``e`` is booked before the decision at the close of ``e``.
    """
    out = np.zeros(len(pnl), dtype=np.int64)
    names = np.asarray(strategies, dtype=object)
    for name in dict.fromkeys(strategies):
        idx = np.flatnonzero(names == name)
        order = idx[np.argsort(exits[idx], kind="stable")]
        run, after = 0, np.empty(len(order), dtype=np.int64)
        for m, i in enumerate(order):
            run = run + 1 if pnl[i] < 0 else 0
            after[m] = run
        closed = np.searchsorted(exits[order], signals[idx], side="right")
        out[idx] = np.where(closed > 0, after[np.maximum(closed - 1, 0)], 0)
    return out


def performance_by(frame: pd.DataFrame, dimension: Dimension | str) -> pd.DataFrame:
    """Trades grouped by one slice (a :class:`Dimension` or any frame column).

    Index: the slice's values. Columns: ``n`` trades, ``pnl`` (total, money), ``mean_pnl``,
    ``mean_return`` (% per trade), ``win_rate`` (0..1).
    """
    name = str(dimension)
    column = Dimension(name).column if name in {d.value for d in Dimension} else name
    if column not in frame.columns:
        raise ValueError(f"no column {column!r} in the trade frame")
    grouped = frame.groupby(column, sort=False)
    out = pd.DataFrame(
        {
            "n": grouped.size(),
            "pnl": grouped["pnl"].sum(),
            "mean_pnl": grouped["pnl"].mean(),
            "mean_return": grouped["return_pct"].mean(),
            "win_rate": grouped["win"].mean(),
        }
    )
    key = WEEKDAYS.index if column == "weekday" else str
    return out.loc[sorted(out.index, key=lambda v: (v == NA, key(v)))]
