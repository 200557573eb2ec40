"""Analytics over closed trades: a per-trade table, performance by slice and the weakness finder.

Pure: every function is handed the trades, the features and a seed; nothing is read or written.

* :func:`trade_frame` (from the backtester's round trips) and :func:`trade_frame_from_rows` (from
  trades recorded in memory) build one row per trade with the slices a rule can act on: regime,
  volume and ATR buckets, weekday, symbol, strategy x regime and losing-streak position, all taken
  at the trade's *signal bar*, where the Trader evaluated its rules.
* :func:`performance_by` aggregates that table by one slice.
* :func:`find_weaknesses` tests, for every cluster of every slice, whether its mean return per
  trade is worse than the other trades' (one-sided permutation test, seeded; or Welch's t), and
  whether each strategy's losses bunch into streaks more than its win rate explains (permutation
  of its outcome sequence). Benjamini–Hochberg controls the false discovery rate over every test
  made; only clusters with a q-value at or below ``alpha`` are reported.

Units: ``pnl`` in money (net of commissions); ``return_pct`` in percent of the entry notional
(1.5 = 1.5%); ``atr_pct`` in percent of price; ``volume_pct`` a 0..100 percentile rank.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from scipy import stats

from sovereign.engines.indicators import FeatureFrame

__all__ = [
    "NA",
    "WEEKDAYS",
    "ClosedTradeLike",
    "Dimension",
    "StreakFinding",
    "TradeRowLike",
    "Weakness",
    "WeaknessReport",
    "benjamini_hochberg",
    "find_weaknesses",
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
    consecutive losses when the signal was taken), streak_bucket ("0".."3+"), strategy_regime.
    """
    index = _utc(timestamps, "timestamps")
    n_bars = len(index)
    base = _base_columns(trades, sides=[_side(t.side) for t in trades])
    bars = np.array([t.entry_bar - signal_lag for t in trades], dtype=np.int64)
    bars[(bars < 0) | (bars >= n_bars)] = -1
    return _finish(base, bars, features, symbols, index)


def trade_frame_from_rows(
    rows: Sequence[TradeRowLike],
    features: FeatureFrame | None,
    symbols: Sequence[str],
    timestamps: Sequence[datetime] | pd.DatetimeIndex,
    *,
    signal_lag: int = 1,
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
    return _finish(base, bars, features, symbols, index)


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
        }
    )
    return frame


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


# ----------------------------------------------------------------------------- weakness finder


@dataclass(frozen=True, kw_only=True, slots=True)
class Weakness:
    """A cluster of trades whose mean return is significantly worse than the other trades'.

    ``value``: the cluster's label (a regime, "q5", "Fri", a symbol, "3+"; for
    ``strategy_regime`` the regime, with ``strategy`` set). ``low``/``high``: a bucket's edges in
    the feature's units (ATR % of price, volume percentile, losses in a row), None when open.
    ``mean_return``/``rest_mean_return``: % per trade. ``effect_size``: Cohen's d of the cluster
    against the rest (negative: worse). ``p_value``: one-sided; ``q_value``: Benjamini–Hochberg.
    """

    dimension: Dimension
    value: str
    strategy: str | None = None
    low: float | None = None
    high: float | None = None
    n: int
    total_pnl: float
    mean_pnl: float
    mean_return: float
    rest_mean_return: float
    win_rate: float
    p_value: float
    q_value: float
    effect_size: float

    @property
    def label(self) -> str:
        d = self.dimension
        if d is Dimension.STRATEGY_REGIME:
            return f"strategy {self.strategy} in regime {self.value}"
        if d in (Dimension.ATR, Dimension.VOLUME):
            unit = "%" if d is Dimension.ATR else "th pct"
            lo = f"{self.low:.4g}{unit}" if self.low is not None else "min"
            hi = f"{self.high:.4g}{unit}" if self.high is not None else "max"
            return f"{d.value} {self.value} ({lo}..{hi})"
        if d is Dimension.LOSING_STREAK:
            many = self.value.endswith("+")
            count = f"{self.value[:-1]} or more" if many else f"exactly {self.value}"
            return f"after {count} consecutive losses"
        return f"{d.value} {self.value}"

    def to_json(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)} | {
            "label": self.label
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class StreakFinding:
    """One strategy's losing streaks (its trades in exit order) against chance.

    ``runs``: how many separate runs of losses there are. With the number of losses fixed,
    fewer runs means longer ones: losses bunch together more than independent trades at this
    loss rate would. ``p_value`` is that one-sided runs test (Wald–Wolfowitz), by permuting the
    strategy's own outcome sequence, and enters the Benjamini–Hochberg correction;
    ``significant`` means ``q_value <= alpha``. ``longest`` (the longest run) and ``count``
    (runs of at least ``k`` losses) are reported with their expected values and one-sided
    p-values under the same permutations.
    """

    strategy: str
    n: int
    loss_rate: float
    k: int
    runs: int
    expected_runs: float
    longest: int
    expected_longest: float
    p_longest: float
    count: int
    expected_count: float
    p_count: float
    p_value: float
    q_value: float
    significant: bool

    def to_json(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, kw_only=True, slots=True)
class WeaknessReport:
    """What :func:`find_weaknesses` found; ``weaknesses`` are the significant clusters only,
    most significant first; ``streaks`` has every strategy that had enough trades to test."""

    n_trades: int
    total_pnl: float
    mean_return: float
    win_rate: float
    n_tests: int
    alpha: float
    method: str
    n_permutations: int
    min_trades: int
    seed: int
    strategies: tuple[str, ...]
    weaknesses: tuple[Weakness, ...]
    streaks: tuple[StreakFinding, ...]

    def to_json(self) -> dict[str, Any]:
        out = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}
        out["weaknesses"] = [w.to_json() for w in self.weaknesses]
        out["streaks"] = [s.to_json() for s in self.streaks]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WeaknessReport:
        """Inverse of :meth:`to_json` (graph state and memory store the JSON)."""

        def weakness(d: dict[str, Any]) -> Weakness:
            names = {f.name for f in fields(Weakness)}
            values = {k: v for k, v in d.items() if k in names}
            return Weakness(**(values | {"dimension": Dimension(d["dimension"])}))

        def streak(d: dict[str, Any]) -> StreakFinding:
            names = {f.name for f in fields(StreakFinding)}
            return StreakFinding(**{k: v for k, v in d.items() if k in names})

        top = {f.name for f in fields(cls)} - {"weaknesses", "streaks", "strategies"}
        return cls(
            **{k: data[k] for k in top},
            strategies=tuple(data["strategies"]),
            weaknesses=tuple(weakness(w) for w in data["weaknesses"]),
            streaks=tuple(streak(s) for s in data["streaks"]),
        )

    def summary(self, max_items: int = 8) -> str:
        """A few lines of plain text with the figures (for prompts and notifications)."""
        test = (
            f"one-sided permutation test, {self.n_permutations} permutations"
            if self.method == "permutation"
            else "one-sided Welch t-test"
        )
        lines = [
            f"{self.n_trades} trades, total P&L {self.total_pnl:+,.2f}, mean return "
            f"{self.mean_return:+.2f}% per trade, win rate {self.win_rate:.0%}. "
            f"{self.n_tests} tests ({test}; Benjamini-Hochberg FDR {self.alpha:g}); "
            f"{len(self.weaknesses)} significant weak cluster(s)"
            + (":" if self.weaknesses else ".")
        ]
        for w in self.weaknesses[:max_items]:
            lines.append(
                f"- {w.label}: n={w.n}, mean return {w.mean_return:+.2f}% vs "
                f"{w.rest_mean_return:+.2f}% for the rest, win rate {w.win_rate:.0%}, "
                f"P&L {w.total_pnl:+,.2f}, p={w.p_value:.4f}, q={w.q_value:.4f}, "
                f"d={w.effect_size:+.2f}"
            )
        if len(self.weaknesses) > max_items:
            lines.append(f"- ... and {len(self.weaknesses) - max_items} more")
        for s in self.streaks:
            verdict = "longer than chance" if s.significant else "consistent with chance"
            lines.append(
                f"Losing streaks of {s.strategy} ({s.n} trades, {s.loss_rate:.0%} losses): "
                f"{s.runs} losing runs (chance ~{s.expected_runs:.1f}), longest {s.longest} "
                f"(~{s.expected_longest:.1f}), {s.count} of >= {s.k} losses "
                f"(~{s.expected_count:.1f}); runs test p={s.p_value:.4f}, q={s.q_value:.4f}: "
                f"{verdict}."
            )
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), same order as the input.

    ``q_(i) = min over j >= i of (m * p_(j) / j)`` on the ascending p-values, capped at 1.
    Rejecting every hypothesis with ``q <= alpha`` controls the false discovery rate at alpha.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    q = np.empty(m)
    q[order] = q_sorted
    return q


@dataclass(frozen=True, kw_only=True, slots=True)
class _Test:
    dimension: Dimension
    value: str
    mask: np.ndarray  # (n_trades,) bool
    p_value: float


def find_weaknesses(
    frame: pd.DataFrame,
    *,
    min_trades: int = 20,
    alpha: float = 0.05,
    seed: int = 0,
    n_permutations: int = 1999,
    method: Literal["permutation", "welch"] = "permutation",
    streak_k: int = 3,
    dimensions: Sequence[Dimension] = tuple(Dimension),
) -> WeaknessReport:
    """Clusters of trades that do significantly worse than the rest, and losing streaks.

    ``frame``: from :func:`trade_frame`. For each dimension, every cluster with at least
    ``min_trades`` trades (and at least ``min_trades`` outside it; "n/a" clusters are not
    tested) is tested one-sided for a lower mean ``return_pct`` than the other trades: by
    ``n_permutations`` random relabellings (p = (1 + #{permuted mean <= observed}) /
    (1 + n_permutations)) or by Welch's t-test. Each strategy with ``min_trades`` trades gets a
    losing-streak runs test (see :class:`StreakFinding`; ``streak_k`` sets which streaks are
    counted as long). Benjamini–Hochberg runs over all these
    tests together; clusters with q <= ``alpha`` are reported. Deterministic by ``seed``. All
    clusters are scored on the same permutations (one pass over the trades, as in a max-T
    procedure); each cluster's test is still exact on its own.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if min_trades < 2 or n_permutations < 1 or streak_k < 1:
        raise ValueError("min_trades must be >= 2, n_permutations >= 1 and streak_k >= 1")
    r = frame["return_pct"].to_numpy(dtype=float)
    pnl = frame["pnl"].to_numpy(dtype=float)
    n = r.size
    clusters: list[tuple[Dimension, str, np.ndarray]] = []
    for dim in dimensions:
        labels = frame[dim.column].astype(str).to_numpy()
        values, counts = np.unique(labels, return_counts=True)
        clusters += [
            (dim, str(v), labels == v)
            for v, c in zip(values, counts, strict=True)
            if v != NA and min_trades <= c <= n - min_trades
        ]
    p = _cluster_p_values(
        r, [m for _, _, m in clusters], method, n_permutations, _rng(seed, "clusters")
    )
    tests = [
        _Test(dimension=d, value=v, mask=m, p_value=float(pv))
        for (d, v, m), pv in zip(clusters, p, strict=True)
    ]
    streaks = _streak_tests(frame, min_trades, streak_k, n_permutations, seed)
    q = benjamini_hochberg([t.p_value for t in tests] + [s.p_value for s in streaks])
    weaknesses = [
        _weakness(frame, t, float(qv), r, pnl)
        for t, qv in zip(tests, q[: len(tests)], strict=True)
        if qv <= alpha and r[t.mask].mean() < r[~t.mask].mean()
    ]
    order = list(Dimension)
    weaknesses.sort(
        key=lambda w: (w.q_value, w.p_value, w.effect_size, order.index(w.dimension), w.value)
    )
    streak_q = q[len(tests) :]
    findings = tuple(
        _replace_q(s, float(qv), alpha) for s, qv in zip(streaks, streak_q, strict=True)
    )
    return WeaknessReport(
        n_trades=n,
        total_pnl=float(pnl.sum()),
        mean_return=float(r.mean()) if n else 0.0,
        win_rate=float((pnl > 0).mean()) if n else 0.0,
        n_tests=len(q),
        alpha=alpha,
        method=method,
        n_permutations=n_permutations,
        min_trades=min_trades,
        seed=seed,
        strategies=tuple(sorted(set(frame["strategy"]))),
        weaknesses=tuple(weaknesses),
        streaks=findings,
    )


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


_CHUNK_CELLS = 2_000_000  # permutation work per block: ~16 MB of float64


def _cluster_p_values(
    r: np.ndarray,
    masks: list[np.ndarray],
    method: str,
    n_permutations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """One-sided p-values that each cluster's mean return is below the rest's.

    ``r``: (n_trades,) returns; ``masks``: one (n_trades,) bool per cluster.
    """
    if not masks:
        return np.zeros(0)
    if method == "welch":
        return _welch_less(r, masks)
    if method != "permutation":
        raise ValueError(f"unknown method {method!r} (permutation or welch)")
    onehot = np.column_stack(masks).astype(float)  # (n, g)
    observed = r @ onehot
    tol = 1e-9 * (float(np.abs(r).sum()) + 1.0)  # same sum in another order: not "more extreme"
    at_most = np.zeros(onehot.shape[1])
    chunk = max(1, _CHUNK_CELLS // max(r.size, 1))
    done = 0
    while done < n_permutations:
        size = min(chunk, n_permutations - done)
        shuffled = np.tile(r, (size, 1))
        rng.permuted(shuffled, axis=1, out=shuffled)
        at_most += (shuffled @ onehot <= observed + tol).sum(axis=0)
        done += size
    return (1.0 + at_most) / (1.0 + n_permutations)


def _welch_less(r: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    """One-sided Welch t-test p-values (cluster mean < rest mean), vectorised over clusters."""
    inside = np.column_stack(masks)  # (n, g)
    n1 = inside.sum(axis=0).astype(float)
    n2 = r.size - n1
    s1 = r @ inside
    m1, m2 = s1 / n1, (r.sum() - s1) / n2
    col = r[:, None]
    v1 = np.where(inside, (col - m1) ** 2, 0.0).sum(axis=0) / (n1 - 1)  # two-pass variances
    v2 = np.where(inside, 0.0, (col - m2) ** 2).sum(axis=0) / (n2 - 1)
    a, b = v1 / n1, v2 / n2
    se = np.sqrt(a + b)
    out = np.where(m1 < m2, 0.0, 1.0)  # no spread at all: the order of the means decides
    ok = se > 0
    t = (m1[ok] - m2[ok]) / se[ok]
    df = (a[ok] + b[ok]) ** 2 / (a[ok] ** 2 / (n1[ok] - 1) + b[ok] ** 2 / (n2[ok] - 1))
    out[ok] = stats.t.cdf(t, df)
    return out


def _cohen_d(a: np.ndarray, b: np.ndarray) -> float:
    dof = a.size + b.size - 2
    pooled = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / dof if dof > 0 else 0.0
    diff = float(a.mean() - b.mean())
    return diff / math.sqrt(pooled) if pooled > 0 else 0.0


def _weakness(frame: pd.DataFrame, t: _Test, q: float, r: np.ndarray, pnl: np.ndarray) -> Weakness:
    inside, rest = r[t.mask], r[~t.mask]
    low = high = None
    strategy = None
    value = t.value
    if t.dimension is Dimension.VOLUME:
        k = int(value[1:]) - 1
        edges = (0.0, *VOLUME_EDGES, 100.0)
        low, high = (edges[k] if k > 0 else None), (edges[k + 1] if k < 4 else None)
    elif t.dimension is Dimension.ATR:
        first = int(np.flatnonzero(t.mask)[0])
        lo = float(frame["atr_low"].to_numpy(dtype=float)[first])
        hi = float(frame["atr_high"].to_numpy(dtype=float)[first])
        low = lo if math.isfinite(lo) else None
        high = hi if math.isfinite(hi) else None
    elif t.dimension is Dimension.LOSING_STREAK:
        low = float(value.rstrip("+"))
        high = None if value.endswith("+") else low
    elif t.dimension is Dimension.STRATEGY_REGIME:
        strategy, value = value.split("|", 1)
    return Weakness(
        dimension=t.dimension,
        value=value,
        strategy=strategy,
        low=low,
        high=high,
        n=int(t.mask.sum()),
        total_pnl=float(pnl[t.mask].sum()),
        mean_pnl=float(pnl[t.mask].mean()),
        mean_return=float(inside.mean()),
        rest_mean_return=float(rest.mean()),
        win_rate=float((pnl[t.mask] > 0).mean()),
        p_value=t.p_value,
        q_value=q,
        effect_size=_cohen_d(inside, rest),
    )


# ------------------------------------------------------------------------------ losing streaks


def _runs(losses: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``losses`` (bool, shape (m, n)): the number of losing runs, the longest, and
    the number of runs of at least ``k`` losses; each of shape (m,)."""
    n = losses.shape[1]
    idx = np.arange(n)
    last_win = np.maximum.accumulate(np.where(losses, -1, idx), axis=1)
    run = idx - last_win  # length of the losing run ending at each trade (0 after a win)
    return (run == 1).sum(axis=1), run.max(axis=1, initial=0), (run == k).sum(axis=1)


def _streak_tests(
    frame: pd.DataFrame, min_trades: int, k: int, n_permutations: int, seed: int
) -> list[StreakFinding]:
    out = []
    for name in sorted(set(frame["strategy"])):
        mine = frame[frame["strategy"] == name]
        if len(mine) < min_trades:
            continue
        order = np.argsort(mine["exit_time"].to_numpy(), kind="stable")
        losses = (mine["pnl"].to_numpy(dtype=float) < 0)[order]
        runs, longest, count = (int(v[0]) for v in _runs(losses[None, :], k))
        rng = _rng(seed, f"streak:{name}")
        sims: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        chunk = max(1, _CHUNK_CELLS // losses.size)
        done = 0
        while done < n_permutations:
            size = min(chunk, n_permutations - done)
            block = np.tile(losses, (size, 1))
            rng.permuted(block, axis=1, out=block)
            sims.append(_runs(block, k))
            done += size
        sim_runs, sim_longest, sim_count = (np.concatenate(c) for c in zip(*sims, strict=True))

        def p(extreme: np.ndarray) -> float:
            return float((1 + extreme.sum()) / (1 + n_permutations))

        out.append(
            StreakFinding(
                strategy=name,
                n=int(losses.size),
                loss_rate=float(losses.mean()),
                k=k,
                runs=runs,
                expected_runs=float(sim_runs.mean()),
                longest=longest,
                expected_longest=float(sim_longest.mean()),
                p_longest=p(sim_longest >= longest),
                count=count,
                expected_count=float(sim_count.mean()),
                p_count=p(sim_count >= count),
                p_value=p(sim_runs <= runs),
                q_value=float("nan"),
                significant=False,
            )
        )
    return out


def _replace_q(s: StreakFinding, q: float, alpha: float) -> StreakFinding:
    return replace(s, q_value=q, significant=q <= alpha)
