"""From the baseline's and the candidate's runs to the gate's reasons and evidence, including
the look-ahead guard's truncated re-runs. Called by :func:`sovereign.trading.gate.evaluate`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sovereign.constitution import Constitution
from sovereign.engines.indicators import compute_features
from sovereign.rules.context import Regime
from sovereign.trading.backtest import Prepared
from sovereign.trading.gate_checks import (
    STABILITY_LABELS,
    Tolerances,
    activity,
    breaches,
    compare_scenario,
    compare_slice,
    first_difference,
    labelled_slices,
    lookahead_cuts,
    significance,
    stability_labels,
)
from sovereign.trading.gate_report import (
    GATE_CONSTITUTION_BREACH,
    GATE_LOOKAHEAD,
    GATE_NOT_SIGNIFICANT,
    GATE_SLICE_DEGRADED,
    GATE_TOO_FEW_TRADES,
    GATE_TURNOVER,
    Activity,
    GateReason,
    LookaheadCut,
    Significance,
    SliceResult,
)
from sovereign.trading.gate_runs import (
    RunOutcome,
    Side,
    Window,
    cut_prepared,
    events_until,
    run_window,
)
from sovereign.trading.metrics import periods_per_year

if TYPE_CHECKING:
    from sovereign.trading.gate import GateConfig, Plan


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """The reasons and the evidence, to be spread into a ``GateReport``."""

    reasons: tuple[GateReason, ...]
    window: dict[str, Any]
    folds: tuple[SliceResult, ...]
    regimes: tuple[SliceResult, ...]
    stability: tuple[SliceResult, ...]
    scenarios: tuple[SliceResult, ...]
    significance: Significance
    activity: Activity
    lookahead: tuple[LookaheadCut, ...]
    lookahead_passed: bool
    breaches: dict[str, tuple[str, ...]]
    expected_max_drawdown: float

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def judge(
    *,
    plan: Plan,
    base_runs: tuple[RunOutcome, ...],
    cand_runs: tuple[RunOutcome, ...],
    cand_side: Side,
    changed_rules: frozenset[str],
    constitution: Constitution,
    cfg: GateConfig,
    trials: int,
    seed: int,
    lead: int,
    step: Callable[[str], None],
) -> Verdict:
    """Every check of the gate on the runs of :func:`evaluate` (folds first, then scenarios)."""
    k = len(plan.folds)
    base_f, cand_f = base_runs[:k], cand_runs[:k]
    rows = np.concatenate([w.offset + r.bars for w, r in zip(plan.folds, base_f, strict=True)])
    stamps = plan.panel.timestamps[rows]
    ppy = periods_per_year(pd.DatetimeIndex(stamps))
    tol = Tolerances(
        sharpe=cfg.slice_sharpe_tolerance,
        total_return=cfg.slice_return_tolerance,
        t_stat=cfg.slice_t_threshold,
        min_bars=cfg.min_slice_bars,
        scenario_return=cfg.scenario_return_tolerance,
        scenario_drawdown=cfg.scenario_drawdown_tolerance,
    )
    base = np.concatenate([r.returns for r in base_f])
    cand = np.concatenate([r.returns for r in cand_f])

    folds = tuple(
        compare_slice(w.name, "fold", b.returns, c.returns, ppy, tol, contiguous=True)
        for w, b, c in zip(plan.folds, base_f, cand_f, strict=True)
    )
    regime_at = np.array([r.value for r in plan.prepared.regimes.regime[np.maximum(rows - 1, 0)]])
    regimes = labelled_slices(base, cand, regime_at, [r.value for r in Regime], "regime", ppy, tol)
    buckets = stability_labels(plan.panel.close, rows, plan.prepared.overlay)
    stability = labelled_slices(base, cand, buckets, STABILITY_LABELS, "stability", ppy, tol)

    scenarios: list[SliceResult] = []
    pairs: list[tuple[str, RunOutcome, RunOutcome]] = [
        (w.name, b, c) for w, b, c in zip(plan.folds, base_f, cand_f, strict=True)
    ]
    i = k
    for sc, window in plan.scenarios:
        if window is None:
            scenarios.append(
                SliceResult(
                    name=sc.name,
                    kind="scenario",
                    bars=0,
                    judged=False,
                    covered=False,
                    note=sc.description,
                )
            )
            continue
        b, c = base_runs[i], cand_runs[i]
        i += 1
        s_ppy = periods_per_year(pd.DatetimeIndex(window.panel.timestamps))
        scenarios.append(compare_scenario(sc.name, sc.description, b, c, s_ppy, tol))
        pairs.append((sc.name, b, c))

    sig = significance(
        base,
        cand,
        ppy=ppy,
        rule=cfg.significance,
        trials=trials,
        ci_confidence=cfg.ci_confidence,
        min_dsr=cfg.min_dsr,
        resamples=cfg.bootstrap_resamples,
        block=cfg.bootstrap_block,
        rng=np.random.default_rng(seed),
    )
    act = activity(
        base_f,
        cand_f,
        ppy=ppy,
        max_per_day=constitution.max_orders_per_day,
        changed_rules=changed_rules,
    )
    new_breaches, report_breaches = _breaches(pairs, constitution, cfg.breach_near_miss)
    cuts = _lookahead(plan, cand_side, cand_f, lead, cfg.lookahead_cuts, step)
    look_ok = all(c.identical for c in cuts)

    reasons = _reasons(
        new_breaches=new_breaches,
        sig=sig,
        slices=(*folds, *regimes, *stability, *scenarios),
        act=act,
        cuts=cuts,
        cfg=cfg,
    )
    return Verdict(
        reasons=reasons,
        window={
            "source": plan.panel.source,
            "start": stamps[0].isoformat(),
            "end": stamps[-1].isoformat(),
            "bars": int(rows.size),
            "folds": k,
            "lead_in": lead,
            "periods_per_year": ppy,
        },
        folds=folds,
        regimes=regimes,
        stability=stability,
        scenarios=tuple(scenarios),
        significance=sig,
        activity=act,
        lookahead=cuts,
        lookahead_passed=look_ok,
        breaches=report_breaches,
        expected_max_drawdown=max((r.max_drawdown for r in cand_f), default=0.0),
    )


def _breaches(
    pairs: list[tuple[str, RunOutcome, RunOutcome]], constitution: Constitution, near_miss: float
) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """New candidate breaches (not near misses of the baseline), and every breach per side.

    A halt is a near miss when the baseline's drawdown on the same bars reached ``near_miss`` of
    ``max_drawdown``; a killed pool when the baseline's pool loss reached ``near_miss`` of its
    limit. The orders-per-day cap has no near miss."""
    new: list[str] = []
    seen: dict[str, list[str]] = {"baseline": [], "candidate": []}
    per_day = constitution.max_orders_per_day
    for name, b, c in pairs:
        bb, cb = breaches(b, per_day), breaches(c, per_day)
        seen["baseline"] += [f"{name}: {x}" for x in sorted(bb)]
        seen["candidate"] += [f"{name}: {x}" for x in sorted(cb)]
        for x in sorted(cb - bb):
            if x == "halted":
                edge = b.max_drawdown >= near_miss * constitution.max_drawdown
            elif x.startswith("killed:"):
                s = x.split(":", 1)[1]
                edge = b.pool_loss.get(s, 0.0) >= near_miss * b.pool_limit.get(s, 1.0)
            else:
                edge = False
            if not edge:
                new.append(f"{name}: {x}")
    return new, {k: tuple(v) for k, v in seen.items()}


def _lookahead(
    plan: Plan,
    side: Side,
    runs: tuple[RunOutcome, ...],
    lead: int,
    n_cuts: int,
    step: Callable[[str], None],
) -> tuple[LookaheadCut, ...]:
    """Re-run the candidate on data truncated after each chosen bar and compare the decisions
    and orders up to that bar with the full run's. Features are recomputed on the truncated
    panel (rows 0..cut of the source, so indicator memory is the same); the regime path, causal
    by construction, is cut."""
    stamps = [w.panel.timestamps for w in plan.folds]
    out = []
    for k, bar in lookahead_cuts(runs, stamps, lead, n_cuts):
        w = plan.folds[k]
        end = w.offset + bar + 1
        features = compute_features(plan.panel.slice(0, end))
        truncated = cut_prepared(
            Prepared(
                features=features, regimes=plan.prepared.regimes, overlay=plan.prepared.overlay
            ),
            w.offset,
            end,
        )
        window = Window(
            name=f"{w.name} cut",
            panel=plan.panel.slice(w.offset, end),
            prepared=truncated,
            judged_from=lead,
            offset=w.offset,
        )
        rerun = run_window(window, side, keep_events=True)
        at = stamps[k][bar]
        full = events_until(runs[k].events, at)
        diff = first_difference(full, rerun.events)
        out.append(
            LookaheadCut(
                fold=w.name,
                timestamp=at.isoformat(),
                identical=not diff,
                events_compared=len(full),
                difference=diff,
            )
        )
        step(f"look-ahead {w.name} {at:%Y-%m-%d}")
    return tuple(out)


def _reasons(
    *,
    new_breaches: list[str],
    sig: Significance,
    slices: tuple[SliceResult, ...],
    act: Activity,
    cuts: tuple[LookaheadCut, ...],
    cfg: GateConfig,
) -> tuple[GateReason, ...]:
    out: list[GateReason] = []
    if new_breaches:
        out.append(
            GateReason(
                code=GATE_CONSTITUTION_BREACH,
                message="the candidate hits limits the baseline did not: "
                + "; ".join(new_breaches),
            )
        )
    if not sig.passed:
        out.append(
            GateReason(
                code=GATE_NOT_SIGNIFICANT,
                message=(
                    f"Sharpe {sig.sharpe_candidate:.2f} vs {sig.sharpe_baseline:.2f} "
                    f"(difference {sig.sharpe_difference:+.2f}) is not beyond noise: "
                    f"{sig.ci_confidence:.1%} CI lower bound {sig.ci_lower:+.3f} (needs > 0), "
                    f"deflated Sharpe of the excess {sig.dsr:.3f} after {sig.trials} trial(s) "
                    f"(needs >= {sig.dsr_threshold:.2f}); rule: {sig.rule}"
                ),
            )
        )
    degraded = [s for s in slices if s.degraded]
    if degraded:
        parts = [
            f"{s.kind} {s.name}: Sharpe {s.delta.get('sharpe', 0.0):+.2f}, return "
            f"{s.delta.get('total_return', 0.0):+.2%}"
            + (
                f", drawdown {s.delta['max_drawdown']:+.2%}"
                if s.kind == "scenario" and "max_drawdown" in s.delta
                else ""
            )
            for s in degraded
        ]
        out.append(
            GateReason(
                code=GATE_SLICE_DEGRADED, message="degraded beyond tolerance: " + "; ".join(parts)
            )
        )
    if act.affected_trades < cfg.min_affected_trades:
        out.append(
            GateReason(
                code=GATE_TOO_FEW_TRADES,
                message=f"only {act.affected_trades} round trips differ from the baseline "
                f"(at least {cfg.min_affected_trades} needed)",
            )
        )
    turnover_cap = max(
        cfg.max_turnover_ratio * act.turnover_baseline, act.turnover_baseline + cfg.turnover_slack
    )
    orders_cap = max(
        cfg.max_orders_ratio * act.orders_baseline, act.orders_baseline + cfg.orders_slack
    )
    problems = []
    if act.turnover_candidate > turnover_cap:
        problems.append(
            f"turnover {act.turnover_candidate:.1f}x equity a year vs the baseline's "
            f"{act.turnover_baseline:.1f}x (cap {turnover_cap:.1f}x)"
        )
    if act.orders_candidate > orders_cap:
        problems.append(
            f"{act.orders_candidate} orders vs the baseline's {act.orders_baseline} (cap {orders_cap:.0f})"
        )
    if act.max_orders_per_day > act.max_orders_per_day_limit:
        problems.append(
            f"{act.max_orders_per_day} orders on one day (constitution: {act.max_orders_per_day_limit})"
        )
    if problems:
        out.append(GateReason(code=GATE_TURNOVER, message="; ".join(problems)))
    bad = [c for c in cuts if not c.identical]
    if bad:
        out.append(
            GateReason(
                code=GATE_LOOKAHEAD,
                message=f"{len(bad)} of {len(cuts)} truncated re-runs decided differently: "
                + bad[0].difference,
            )
        )
    return tuple(out)
