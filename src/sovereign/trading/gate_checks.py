"""The gate's comparisons, as pure functions of run outcomes: slice metrics and degradation,
significance, trading activity, constitution breaches and the look-ahead guard's cut choice.
:mod:`sovereign.trading.gate` wires them together; the thresholds live in ``GateConfig``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sovereign.engines.indicators import rolling_volatility
from sovereign.engines.regime import market_returns
from sovereign.trading.events import Decision, Event, OrderSubmitted
from sovereign.trading.gate_report import Activity, Significance, SliceResult
from sovereign.trading.gate_runs import RunOutcome, TradeKey
from sovereign.trading.metrics import max_drawdown
from sovereign.trading.overlay import Overlay
from sovereign.trading.stats import deflated_sharpe_ratio, sharpe_difference_ci, sharpe_ratio

STABILITY_LABELS: tuple[str, ...] = ("stable", "fragile", "unstable")


@dataclass(frozen=True, kw_only=True, slots=True)
class Tolerances:
    """How much worse a slice may get before it counts as degraded (see ``GateConfig``)."""

    sharpe: float
    total_return: float
    t_stat: float
    min_bars: int
    scenario_return: float
    scenario_drawdown: float


def summary(returns: np.ndarray, ppy: float, *, contiguous: bool) -> dict[str, float]:
    """Sharpe (annualised), compounded total return and, for contiguous bars, max drawdown."""
    out = {
        "sharpe": sharpe_ratio(returns, periods_per_year=ppy),
        "total_return": float(np.prod(1.0 + returns) - 1.0) if returns.size else 0.0,
    }
    if contiguous:
        out["max_drawdown"] = max_drawdown(np.concatenate([[1.0], np.cumprod(1.0 + returns)]))
    return out


def excess_t(excess: np.ndarray) -> float:
    """t statistic of the mean of per-bar excess returns (candidate - baseline), (n,).

    Bar returns of held positions are close to serially independent (a position's exposure
    persists, its daily price moves do not), so the plain ``mean / (std / sqrt(n))`` is used.
    0 when the excess does not vary (the runs are identical on these bars)."""
    if excess.size < 2:
        return 0.0
    std = float(excess.std(ddof=1))
    return float(excess.mean()) / std * float(np.sqrt(excess.size)) if std > 0 else 0.0


def _delta(b: dict[str, float], c: dict[str, float]) -> dict[str, float]:
    return {k: c[k] - b[k] for k in b if k in c}


def compare_slice(
    name: str,
    kind: str,
    base: np.ndarray,
    cand: np.ndarray,
    ppy: float,
    tol: Tolerances,
    *,
    contiguous: bool,
) -> SliceResult:
    """A fold, regime or stability slice: degraded when the candidate's Sharpe falls by more
    than ``tol.sharpe`` AND its return over the slice by more than ``tol.total_return`` AND the
    per-bar excess return is negative beyond chance (t below ``-tol.t_stat``). Magnitude and
    evidence both: a wild Sharpe swing on a nearly flat slice is not damage, and with twenty
    slices a few will look bad by luck alone when a rule changes many trades."""
    b = summary(base, ppy, contiguous=contiguous)
    c = summary(cand, ppy, contiguous=contiguous)
    d = _delta(b, c)
    d["excess_t"] = excess_t(cand - base)
    judged = base.size >= tol.min_bars
    degraded = (
        judged
        and d["sharpe"] < -tol.sharpe
        and d["total_return"] < -tol.total_return
        and d["excess_t"] < -tol.t_stat
    )
    return SliceResult(
        name=name,
        kind=kind,
        bars=int(base.size),
        baseline=b,
        candidate=c,
        delta=d,
        judged=judged,
        degraded=degraded,
    )


def compare_scenario(
    name: str, description: str, base: RunOutcome, cand: RunOutcome, ppy: float, tol: Tolerances
) -> SliceResult:
    """A stress scenario: degraded when the candidate's drawdown is deeper than the baseline's
    by more than ``tol.scenario_drawdown`` while it also ends below the baseline, or when it
    loses more than the baseline (or than nothing, when the baseline gained) by more than
    ``tol.scenario_return``. Upside the candidate gives up under stress is not a stress failure
    (the folds and slices judge returns), and a deeper dip on the way to a better end is not one
    either."""
    b = summary(base.returns, ppy, contiguous=True)
    c = summary(cand.returns, ppy, contiguous=True)
    d = _delta(b, c)
    deeper = d["max_drawdown"] > tol.scenario_drawdown and d["total_return"] < 0
    loses = c["total_return"] < min(b["total_return"], 0.0) - tol.scenario_return
    return SliceResult(
        name=name,
        kind="scenario",
        bars=int(base.returns.size),
        baseline=b,
        candidate=c,
        delta=d,
        degraded=deeper or loses,
        note=description,
    )


def labelled_slices(
    base: np.ndarray,
    cand: np.ndarray,
    labels: np.ndarray,
    order: Sequence[str],
    kind: str,
    ppy: float,
    tol: Tolerances,
) -> tuple[SliceResult, ...]:
    """One :func:`compare_slice` per label in ``order`` that occurs (non-contiguous bars)."""
    out = []
    for label in order:
        mask = labels == label
        if mask.any():
            out.append(
                compare_slice(label, kind, base[mask], cand[mask], ppy, tol, contiguous=False)
            )
    return tuple(out)


def stability_labels(
    close: np.ndarray, rows: np.ndarray, overlay: Overlay | None = None, window: int = 20
) -> np.ndarray:
    """The stability bucket of each row in ``rows`` (object array of :data:`STABILITY_LABELS`),
    read at the bar *before* each row (what was known when the positions were held).

    With the panel's ``overlay`` (:mod:`sovereign.trading.overlay`) the buckets are the stability
    engine's levels. Without one, terciles of trailing market volatility stand in: the rolling
    std of the equal-weight market log return over ``window`` bars of ``close`` (n_bars,
    n_symbols), terciles over ``rows``; "unknown" where it is not available yet.
    """
    prior = np.where(rows > 0, rows - 1, 0)
    if overlay is not None:
        labels: np.ndarray = overlay.buckets()[prior]
        return labels
    vol = rolling_volatility(market_returns(close), window)
    v = vol[prior]
    out = np.full(rows.shape, "unknown", dtype=object)
    ok = np.isfinite(v)
    if ok.sum() >= 3:
        lo, hi = np.quantile(v[ok], [1 / 3, 2 / 3])
        out[ok] = np.where(
            v[ok] <= lo,
            STABILITY_LABELS[0],
            np.where(v[ok] <= hi, STABILITY_LABELS[1], STABILITY_LABELS[2]),
        )
    return out


def significance(
    base: np.ndarray,
    cand: np.ndarray,
    *,
    ppy: float,
    rule: str,
    trials: int,
    ci_confidence: float,
    min_dsr: float,
    resamples: int,
    block: float,
    rng: np.random.Generator,
) -> Significance:
    """Is the candidate better than the baseline beyond noise? Both tests, combined by ``rule``.

    The CI's confidence is Bonferroni-adjusted for ``trials`` (1 - (1 - c) / trials), so that
    under the "either" rule each leg accounts for how many ideas were tried.
    """
    conf = 1.0 - (1.0 - ci_confidence) / max(trials, 1)
    ci = sharpe_difference_ci(
        cand, base, rng=rng, n_resamples=resamples, mean_block=block, confidence=conf,
        periods_per_year=ppy,
    )  # fmt: skip
    dsr = deflated_sharpe_ratio(cand - base, trials=max(trials, 1))
    ci_ok = math.isfinite(ci.lower) and ci.lower > 0
    dsr_ok = math.isfinite(dsr.dsr) and dsr.dsr >= min_dsr and dsr.sharpe > 0
    passed = {
        "either": ci_ok or dsr_ok,
        "both": ci_ok and dsr_ok,
        "ci": ci_ok,
        "dsr": dsr_ok,
    }[rule]
    return Significance(
        rule=rule,
        passed=passed,
        sharpe_baseline=sharpe_ratio(base, periods_per_year=ppy),
        sharpe_candidate=sharpe_ratio(cand, periods_per_year=ppy),
        sharpe_difference=ci.estimate,
        ci_lower=ci.lower,
        ci_upper=ci.upper,
        ci_confidence=conf,
        ci_passed=ci_ok,
        dsr=dsr.dsr,
        dsr_threshold=min_dsr,
        dsr_passed=dsr_ok,
        excess_sharpe=dsr.sharpe,
        excess_benchmark=dsr.benchmark,
        trials=max(trials, 1),
        bars=int(base.size),
    )


def affected_trades(
    base: Sequence[TradeKey], cand: Sequence[TradeKey], changed_rules: frozenset[str] = frozenset()
) -> int:
    """Round trips the proposal changed, matched by (strategy, symbol, entry time): present in
    one run only, closed at another time, or touched by a rule in ``changed_rules`` (added,
    modified or retired by the proposal). A trade that only differs in size because the account
    had more or less equity by then is not counted: every trade after the first change would be.
    """
    b = {(t[0], t[1], t[2]): t for t in base}
    c = {(t[0], t[1], t[2]): t for t in cand}
    count = len(b.keys() ^ c.keys())
    for key in b.keys() & c.keys():
        bt, ct = b[key], c[key]
        if bt[3] != ct[3] or changed_rules.intersection(bt[4]) or changed_rules.intersection(ct[4]):
            count += 1
    return count


def activity(
    base: Sequence[RunOutcome],
    cand: Sequence[RunOutcome],
    *,
    ppy: float,
    max_per_day: int,
    changed_rules: frozenset[str] = frozenset(),
) -> Activity:
    """Trades, turnover (money traded per year / mean equity) and orders over the folds."""

    def turnover(runs: Sequence[RunOutcome]) -> float:
        bars = sum(r.returns.size for r in runs)
        equity = np.concatenate([r.equity[1:] for r in runs]) if runs else np.zeros(0)
        years = bars / ppy if ppy > 0 else 0.0
        mean = float(equity.mean()) if equity.size else 0.0
        notional = sum(r.traded_notional for r in runs)
        return notional / mean / years if mean > 0 and years > 0 else 0.0

    bt = [t for r in base for t in r.trades]
    ct = [t for r in cand for t in r.trades]
    return Activity(
        trades_baseline=len(bt),
        trades_candidate=len(ct),
        affected_trades=affected_trades(bt, ct, changed_rules),
        turnover_baseline=turnover(base),
        turnover_candidate=turnover(cand),
        orders_baseline=sum(r.orders for r in base),
        orders_candidate=sum(r.orders for r in cand),
        max_orders_per_day=max((r.max_orders_per_day for r in cand), default=0),
        max_orders_per_day_limit=max_per_day,
    )


def breaches(run: RunOutcome, max_orders_per_day: int) -> set[str]:
    """Constitution limits a run hit: a drawdown halt, a killed strategy pool, the order cap."""
    out = {"halted"} if run.halted else set()
    out |= {f"killed:{s}" for s in run.killed}
    if run.max_orders_per_day > max_orders_per_day:
        out.add("orders_per_day")
    return out


def lookahead_cuts(
    runs: Sequence[RunOutcome], timestamps: Sequence[pd.DatetimeIndex], judged_from: int, n: int
) -> list[tuple[int, int]]:
    """Where to truncate the data for the look-ahead guard: up to ``n`` (fold, bar) pairs.

    Half are bars where a rule acted in the full run (a rule fired on an entry candidate, or a
    rule exit): a rule that reads the future fires differently when the future is cut away.
    The rest are bars with an entry candidate that no rule touched (a rule that reads the future
    can also fail to fire). Both lists are thinned evenly; bars before ``judged_from`` are
    skipped (the truncated run needs its lead-in).
    """
    fired: list[tuple[int, int]] = []
    plain: list[tuple[int, int]] = []
    for k, run in enumerate(runs):
        index = timestamps[k]
        for e in run.events:
            if not isinstance(e, Decision) or e.action not in ("enter", "exit"):
                continue
            bar = int(index.searchsorted(pd.Timestamp(e.timestamp)))
            if bar < judged_from:
                continue
            acted = bool(e.rules_fired) or e.reason.startswith("rule:")
            if acted:
                fired.append((k, bar))
            elif e.action == "enter":
                plain.append((k, bar))
    fired = sorted(set(fired))
    plain = sorted(set(plain) - set(fired))
    n_fired = min(len(fired), (n + 1) // 2)
    chosen = _evenly(fired, n_fired) + _evenly(plain, min(len(plain), n - n_fired))
    if len(chosen) < n:
        chosen += _evenly(sorted(set(fired) - set(chosen)), n - len(chosen))
    return sorted(set(chosen))


def _evenly(items: list[tuple[int, int]], k: int) -> list[tuple[int, int]]:
    if k <= 0 or not items:
        return []
    if k >= len(items):
        return list(items)
    picks = np.linspace(0, len(items) - 1, k).round().astype(int)
    return [items[i] for i in picks]


def first_difference(full: Sequence[Event], cut: Sequence[Event]) -> str:
    """ "" when the two event lists are identical, else a sentence about the first difference."""
    for i, (a, b) in enumerate(zip(full, cut, strict=False)):
        if a != b:
            return f"event {i} differs: full data {_describe(a)}; truncated data {_describe(b)}"
    if len(full) != len(cut):
        longer = "full" if len(full) > len(cut) else "truncated"
        extra = full[len(cut)] if len(full) > len(cut) else cut[len(full)]
        return f"the {longer} run has more events, first extra: {_describe(extra)}"
    return ""


def _describe(e: Event) -> str:
    if isinstance(e, Decision):
        rules = f", rules {list(e.rules_fired)}" if e.rules_fired else ""
        return (
            f"{e.timestamp:%Y-%m-%d} {e.strategy} {e.symbol} {e.action} -> {e.outcome} "
            f"({e.reason}{rules})"
        )
    if isinstance(e, OrderSubmitted):
        o = e.order
        return f"{e.timestamp:%Y-%m-%d} order {o.side.value} {o.symbol} ({o.strategy})"
    return type(e).__name__
