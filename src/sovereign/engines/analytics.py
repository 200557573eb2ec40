"""The weakness finder: which clusters of trades do significantly worse than the rest.

Pure: handed the per-trade table (:mod:`sovereign.engines.trade_table`) and a seed.
:func:`find_weaknesses` tests, for every cluster of every slice, whether its mean return per
trade is worse than the other trades' (one-sided permutation test, seeded; or Welch's t), and
whether each strategy's losses bunch into streaks more than its win rate explains (permutation of
its outcome sequence). Benjamini–Hochberg controls the false discovery rate over every test made;
only clusters with a q-value at or below ``alpha`` are reported.

The table's names are re-exported here, so ``sovereign.engines.analytics`` is the one import for
analysing trades.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from sovereign.engines.trade_table import (
    NA,
    STREAK_CAP,
    VOLUME_EDGES,
    WEEKDAYS,
    ClosedTradeLike,
    Dimension,
    TradeRowLike,
    performance_by,
    trade_frame,
    trade_frame_from_rows,
)

__all__ = [
    "NA",
    "STREAK_CAP",
    "VOLUME_EDGES",
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
