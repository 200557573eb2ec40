"""The backtest gate: is a proposal's candidate rule set better than the baseline, beyond noise,
everywhere that matters, without cheating?

``evaluate(proposal, baseline, data, seed)`` backtests the baseline and the candidate
(``apply_proposal(proposal, baseline.ruleset)``) on the same bars and accepts only if ALL hold;
otherwise it rejects with every failing reason, each with a stable code:

- ``GATE_NOT_APPLICABLE``: a constitution change, or a proposal that cannot be applied (unknown
  rule id, a parameter the strategy rejects). Nothing is run.
- ``GATE_CONSTITUTION_BREACH``: a candidate run hits a limit (drawdown halt, a strategy pool
  killed, the orders-per-day cap) that the baseline's run on the same bars did not.
- ``GATE_NOT_SIGNIFICANT``: the improvement of the Sharpe ratio is not beyond noise. Both tests
  run on the concatenated out-of-sample fold returns and both values are always reported:
  (a) a paired stationary-bootstrap CI of SR(candidate) - SR(baseline), whose lower bound must
  be > 0, its confidence Bonferroni-adjusted for ``trials`` (a rule that was the best of 120
  picks needs a 99.96 % interval above zero); (b) the deflated Sharpe ratio of the candidate's
  excess return (candidate - baseline per bar) against ``min_dsr``, counting ``trials``.
  The default decision uses (a) alone (``GateConfig.significance = "ci"``), because it tests
  the target metric itself and is robust where (b) is not: the excess of a rule that changes a
  few dozen trades is sparse and fat-tailed, where the DSR's moment-based normal approximation
  misjudges it (a planted inefficiency with a CI lower bound of +0.43 Sharpe got a DSR of
  0.93), and taken alone ("either") the DSR accepts a change that only adds market exposure in
  a rising market, whose excess has a high Sharpe that is beta, not an improvement of the
  Sharpe ratio. "dsr", "either" and "both" are available in ``GateConfig``.
- ``GATE_SLICE_DEGRADED``: some out-of-sample fold, regime slice, stability bucket or stress
  scenario got worse beyond its tolerance.
- ``GATE_TOO_FEW_TRADES``: fewer than ``min_affected_trades`` round trips differ: a verdict on a
  handful of trades would be a verdict on luck.
- ``GATE_TURNOVER``: the candidate trades (notional or order count) more than
  ``max_turnover_ratio`` / ``max_orders_ratio`` times the baseline, or more orders on one day than
  the constitution's ``max_orders_per_day``.
- ``GATE_LOOKAHEAD``: re-running the candidate on data truncated after a bar (features
  recomputed on the truncated panel, the causal regime path cut) changes any decision or order
  up to that bar: something read the future.

Evaluation data: the last ``evaluation_years`` of ``data.panel`` (7, the window `sovereign run`
replays) split into ``folds`` sequential out-of-sample folds. Each fold is an independent run (a
fresh account after a lead-in of the strategies' warm-up bars), so a halt or a killed pool in
one fold does not silence the next. Regime slices group the fold bars by the prepared regime of
the bar before (what was known when the positions were held). Stability buckets are the
stability engine's levels (stable / fragile / unstable) from the panel's overlay, read the same
way (volatility terciles stand in when the prepared data has no overlay). Stress scenarios
are :mod:`sovereign.trading.scenarios` (real crash windows cut from ``data.crash_panel``, and the
synthetic stresses seeded by ``seed``).

Deterministic: the same inputs and seed give the same ``to_json()``. The baseline's runs are
cached in a :class:`GateCache` across the proposals of a cycle.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from sovereign.constitution import Constitution
from sovereign.engines.indicators import compute_features
from sovereign.errors import ConfigError, DataError
from sovereign.market.bars import BarPanel
from sovereign.rules.proposals import ModifyConstitution, Proposal, apply_proposal
from sovereign.rules.rule import RuleSet
from sovereign.trading.backtest import BacktestConfig, Prepared, RegimeConfig, prepare
from sovereign.trading.catalog import DEFAULT_STRATEGIES, build
from sovereign.trading.gate_report import (
    GATE_NOT_APPLICABLE,
    GateReason,
    GateReport,
)
from sovereign.trading.gate_runs import (
    GateCache,
    RunOutcome,
    Side,
    Window,
    cut_prepared,
    run_window,
    same_features,
)
from sovereign.trading.gate_verdict import judge
from sovereign.trading.overlay import OverlayConfig
from sovereign.trading.scenarios import Scenario, crash_windows, synthetic_scenarios

#: The window `sovereign run` replays by default (sovereign.app.campaign.DEFAULT_YEARS).
DEFAULT_EVALUATION_YEARS = 7

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class GateConfig:
    """Every threshold of the gate, with its default and why.

    ``folds`` (5): out-of-sample folds of the evaluation window; 7 years give ~1.4 years each,
    long enough for a fold Sharpe to mean something, and five chances to catch a rule that only
    works in one period. ``evaluation_years`` (7): the default window when ``GateData.start`` is
    None, the window `sovereign run` replays.

    ``significance`` ("ci"): which test decides, see the module docstring. ``ci_confidence``
    (0.95): two-sided, so the lower bound is a one-sided 2.5 % test, before the Bonferroni
    adjustment for trials.
    ``min_dsr`` (0.95): the DSR is a probability; 0.95 is the customary bar of the DSR paper.
    ``bootstrap_resamples`` (1000): quantiles at 2.5 % are stable to ~0.01 Sharpe at this count.
    ``bootstrap_block`` (10 bars): mean block length, about the holding time of a trade, so a
    resample keeps the dependence a position creates between consecutive bars.

    ``slice_sharpe_tolerance`` (0.5) and ``slice_return_tolerance`` (0.01): a fold, regime or
    stability slice is degraded when its annualised Sharpe falls by more than 0.5 AND its
    compounded return by more than 1 % of equity AND the per-bar excess return's t statistic is
    below -``slice_t_threshold`` (2.0). A slice Sharpe over a year of bars has a standard error
    near 1, so the magnitudes alone would flag noise: a rule that changes a hundred trades moves
    twenty slices at random, and some look bad by luck. The t test keeps only systematic damage
    (about a 2.3 % one-sided false alarm per slice).
    ``min_slice_bars`` (40): slices with fewer bars are reported, not judged.
    ``scenario_return_tolerance`` (0.02), ``scenario_drawdown_tolerance`` (0.02): a stress
    scenario is degraded when the candidate's drawdown is more than 2 points deeper while it
    also ends below the baseline, or it loses more than 2 % beyond the baseline's loss (see
    ``gate_checks.compare_scenario``). Stress tests are about surviving, not about upside.

    ``min_affected_trades`` (10): fewer changed round trips cannot move a Sharpe estimate beyond
    noise. ``max_turnover_ratio`` (1.5), ``max_orders_ratio`` (1.5): the candidate may trade at
    most 1.5 times the baseline's notional and orders (costs and capacity grow with turnover),
    with an absolute slack of ``turnover_slack`` (0.5 of equity per year) and ``orders_slack``
    (20 orders) so a baseline that barely trades does not forbid all change.

    ``breach_near_miss`` (0.8): a candidate's drawdown halt or killed pool counts as a breach
    only where the baseline stayed below 80 % of ``max_drawdown`` on the same bars; when both
    were at the edge, which one crossed it is a coin flip of exposure at the worst bar. Such a
    near miss is still listed in ``breaches``, and a materially deeper drawdown still fails the
    slice check.

    ``lookahead_cuts`` (6): truncated re-runs of the candidate; half at bars where a rule acted.
    ``stress`` (True): run the stress scenarios. ``scenario_symbols`` (12), ``scenario_history``
    (300 bars: regime fits need 250, momentum's warm-up 253), ``scenario_bars`` (260 stressed
    bars, about a year) and ``scenario_regime`` (regime fits from bar 250, refit every 250) size
    the synthetic scenarios so the whole set costs well under a second per side.
    """

    folds: int = 5
    evaluation_years: float = DEFAULT_EVALUATION_YEARS
    significance: Literal["either", "ci", "dsr", "both"] = "ci"
    ci_confidence: float = 0.95
    min_dsr: float = 0.95
    bootstrap_resamples: int = 1000
    bootstrap_block: float = 10.0
    slice_sharpe_tolerance: float = 0.5
    slice_return_tolerance: float = 0.01
    slice_t_threshold: float = 2.0
    min_slice_bars: int = 40
    scenario_return_tolerance: float = 0.02
    scenario_drawdown_tolerance: float = 0.02
    min_affected_trades: int = 10
    max_turnover_ratio: float = 1.5
    max_orders_ratio: float = 1.5
    turnover_slack: float = 0.5
    orders_slack: int = 20
    breach_near_miss: float = 0.8
    lookahead_cuts: int = 6
    stress: bool = True
    scenario_symbols: int = 12
    scenario_history: int = 300
    scenario_bars: int = 260
    scenario_regime: RegimeConfig = field(
        default_factory=lambda: RegimeConfig(min_history=250, refit_every=250)
    )

    def __post_init__(self) -> None:
        if self.folds < 1:
            raise ConfigError(f"GateConfig.folds must be >= 1, got {self.folds}")
        if self.significance not in ("either", "ci", "dsr", "both"):
            raise ConfigError(f"GateConfig.significance {self.significance!r} is not known")
        if not 0 < self.ci_confidence < 1 or not 0 < self.min_dsr < 1:
            raise ConfigError("GateConfig.ci_confidence and min_dsr must be in (0, 1)")


@dataclass(frozen=True, kw_only=True, slots=True)
class Baseline:
    """What is live: the rule set (rules and parameter overrides), the strategies with the
    operator's parameter settings (the rule set's overrides win), the constitution and the
    backtest settings (costs, cash, regime model)."""

    ruleset: RuleSet
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    params: dict[str, dict[str, float]] = field(default_factory=dict)
    constitution: Constitution = field(default_factory=Constitution)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class GateData:
    """What the gate judges on.

    ``panel``: the data; ``prepared``: its features and regimes from
    :func:`sovereign.trading.backtest.prepare` (the regime fits are the slow part: pass them in,
    or the gate prepares and caches them). ``start``: first bar of the evaluation window (None:
    the last ``GateConfig.evaluation_years``). ``crash_panel``/``crash_prepared``: real data to
    cut the crash windows from (None: those scenarios are reported as not covered).
    """

    panel: BarPanel
    prepared: Prepared | None = None
    start: datetime | None = None
    crash_panel: BarPanel | None = None
    crash_prepared: Prepared | None = None


def evaluate(
    proposal: Proposal,
    baseline: Baseline,
    data: GateData,
    seed: int,
    *,
    config: GateConfig | None = None,
    trials: int = 1,
    cache: GateCache | None = None,
    on_progress: Progress | None = None,
) -> GateReport:
    """The gate's verdict on ``proposal`` against ``baseline`` (see the module docstring).

    ``seed`` seeds the backtests' paper exchange, the synthetic scenarios and the bootstrap.
    ``trials``: how many ideas were tried to find this one (the DSR and the CI count them).
    ``cache``: reuse the baseline's runs across the proposals of a cycle. ``on_progress(stage,
    done, total)`` is called after each backtest. Raises ConfigError when ``data.prepared`` does
    not belong to ``data.panel``, and DataError when the evaluation window is too short for the
    folds (no verdict: a rejection would count against the proposal's family for a reason that
    is not its own).
    """
    started = time.perf_counter()
    cfg = config or GateConfig()
    cache = cache if cache is not None else GateCache()

    def report(**fields: Any) -> GateReport:
        return GateReport(
            proposal_id=proposal.id,
            family=proposal.family,
            kind=proposal.kind,
            baseline_ruleset_id=baseline.ruleset.id,
            seed=seed,
            trials=trials,
            config=_config_json(cfg),
            elapsed_s=time.perf_counter() - started,
            **fields,
        )

    try:
        candidate = _candidate(proposal, baseline)
        base_side = _side(baseline, baseline.ruleset, seed)
        cand_side = _side(baseline, candidate, seed)
        lead = max(_warmup(base_side), _warmup(cand_side))
    except (ValueError, ConfigError) as err:
        reason = GateReason(code=GATE_NOT_APPLICABLE, message=str(err))
        return report(accepted=False, reasons=(reason,), candidate_ruleset_id=None)
    plan = _plan(data, baseline, cfg, lead, seed, cache)
    windows = plan.folds + tuple(w for _, w in plan.scenarios if w is not None)
    total = len(windows) * 2 + cfg.lookahead_cuts
    done = 0

    def step(stage: str) -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(stage, done, total)

    key = _baseline_key(baseline, base_side, plan, cfg, lead, seed, cache)
    base_runs = cache.runs.get(key)
    if base_runs is None:
        cache.misses += 1
        runs = []
        for w in windows:
            runs.append(run_window(w, base_side))
            step(f"baseline {w.name}")
        base_runs = cache.runs[key] = tuple(runs)
    else:
        cache.hits += 1
        done += len(windows)
    cand_runs: list[RunOutcome] = []
    for k, w in enumerate(windows):
        cand_runs.append(run_window(w, cand_side, keep_events=k < len(plan.folds)))
        step(f"candidate {w.name}")
    verdict = judge(
        plan=plan,
        base_runs=base_runs,
        cand_runs=tuple(cand_runs),
        cand_side=cand_side,
        changed_rules=frozenset(
            {r.id for r in candidate.rules} ^ {r.id for r in baseline.ruleset.rules}
        ),
        constitution=baseline.constitution,
        cfg=cfg,
        trials=trials,
        seed=seed,
        lead=lead,
        step=step,
    )
    return report(
        accepted=not verdict.reasons, candidate_ruleset_id=candidate.id, **verdict.fields()
    )


# -- setup -------------------------------------------------------------------------------------


def _candidate(proposal: Proposal, baseline: Baseline) -> RuleSet:
    if isinstance(proposal, ModifyConstitution):
        raise ValueError(
            f"{proposal.summary()}: the constitution is changed only by a person "
            "(`sovereign constitution amend`), never by a deployment"
        )
    try:
        return apply_proposal(proposal, baseline.ruleset)
    except ValueError as err:
        raise ValueError(f"{proposal.summary()} cannot be applied: {err}") from err


def _side(baseline: Baseline, rules: RuleSet, seed: int) -> Side:
    names = baseline.strategies
    params = {
        s: {**baseline.params.get(s, {}), **rules.params.get(s, {})}
        for s in sorted({*names, *baseline.params, *rules.params})
    }
    unknown = sorted(s for s in rules.params if rules.params[s] and s not in names)
    if unknown:
        raise ValueError(f"parameters for strategies that do not run: {', '.join(unknown)}")
    build(names, params)  # ConfigError names a bad parameter before anything runs
    return Side(
        strategies=names,
        params=params,
        rules=rules,
        constitution=baseline.constitution,
        config=replace(baseline.backtest, seed=seed),
    )


def _warmup(side: Side) -> int:
    return max((s.warmup_bars for s in build(side.strategies, side.params)), default=0)


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Plan:
    """The windows both sides run on. ``folds``: the out-of-sample folds of the main panel;
    ``scenarios``: every stress scenario with its window (None when not covered)."""

    panel: BarPanel
    prepared: Prepared
    folds: tuple[Window, ...]
    scenarios: tuple[tuple[Scenario, Window | None], ...]
    data_key: str


def _plan(
    data: GateData, baseline: Baseline, cfg: GateConfig, lead: int, seed: int, cache: GateCache
) -> Plan:
    panel = data.panel
    overlay = baseline.backtest.overlay
    prepared = _prepared(panel, data.prepared, baseline.backtest.regime, seed, cache, overlay)
    idx = panel.timestamps
    start = data.start or (
        idx[-1].to_pydatetime() - timedelta(days=round(365 * cfg.evaluation_years))
    )
    first = max(int(idx.searchsorted(start, side="left")), lead)
    if panel.n_bars - first < cfg.folds * cfg.min_slice_bars:
        raise DataError(
            f"too little history to judge: the evaluation window has "
            f"{max(panel.n_bars - first, 0)} bars after a lead-in of {lead}; {cfg.folds} folds "
            f"need at least {cfg.folds * cfg.min_slice_bars}",
            source=panel.source,
        )
    bounds = np.linspace(first, panel.n_bars, cfg.folds + 1).round().astype(int)
    folds = tuple(
        Window(
            name=f"fold {k + 1}",
            panel=panel.slice(int(lo) - lead, int(hi)),
            prepared=cut_prepared(prepared, int(lo) - lead, int(hi)),
            judged_from=lead,
            offset=int(lo) - lead,
        )
        for k, (lo, hi) in enumerate(itertools.pairwise(bounds))
    )
    scenarios: list[tuple[Scenario, Window | None]] = []
    keys = [cache.fingerprint(panel), str(first)]
    if cfg.stress:
        crash = data.crash_panel
        crash_prep = None
        if crash is not None:
            crash_prep = (
                prepared
                if crash is panel
                else _prepared(
                    crash, data.crash_prepared, baseline.backtest.regime, seed, cache, overlay
                )
            )
            keys.append(cache.fingerprint(crash))
        for sc in crash_windows(crash, lead_in=lead):
            if sc.panel is None or sc.source_rows is None or crash_prep is None:
                scenarios.append((sc, None))
                continue
            lo, hi = sc.source_rows
            window = Window(
                name=sc.name,
                panel=sc.panel,
                prepared=cut_prepared(crash_prep, lo, hi),
                judged_from=sc.judged_from,
                offset=lo,
            )
            scenarios.append((sc, window))
        for sc, prep in _synthetic(
            seed,
            cfg.scenario_symbols,
            cfg.scenario_history,
            cfg.scenario_bars,
            cfg.scenario_regime,
            overlay,
        ):
            assert sc.panel is not None  # noqa: S101 - synthetic scenarios always have data
            # Only the lead-in the strategies need is run; the regimes of the history before it
            # are fitted once per seed and cut, so the run sees what a full run would.
            lo = max(0, sc.judged_from - lead)
            window = Window(
                name=sc.name,
                panel=sc.panel.slice(lo, sc.panel.n_bars),
                prepared=cut_prepared(prep, lo, sc.panel.n_bars),
                judged_from=sc.judged_from - lo,
            )
            scenarios.append((sc, window))
    return Plan(
        panel=panel,
        prepared=prepared,
        folds=folds,
        scenarios=tuple(scenarios),
        data_key="/".join(keys),
    )


def _prepared(
    panel: BarPanel,
    given: Prepared | None,
    regime: RegimeConfig,
    seed: int,
    cache: GateCache,
    overlay: OverlayConfig,
) -> Prepared:
    fp = cache.fingerprint(panel)
    if given is None:
        key = f"{fp}/{regime!r}/{overlay!r}/{seed}"
        if key not in cache.prepared:
            cache.prepared[key] = prepare(panel, regime, seed=seed, overlay=overlay)
        return cache.prepared[key]
    shape = given.features.shape
    if shape != (panel.n_bars, panel.n_symbols) or len(given.regimes.regime) != panel.n_bars:
        raise ConfigError(
            f"the prepared features {shape} and regimes ({len(given.regimes.regime)} bars) do not "
            f"match the panel ({panel.n_bars} bars x {panel.n_symbols} symbols)"
        )
    key = f"checked/{fp}/{cache.prepared_key(given)}"
    if key not in cache.prepared:
        # The look-ahead guard recomputes features on truncated data and needs them to be the
        # very features the full runs used.
        if not same_features(given.features, compute_features(panel)):
            raise ConfigError(
                "the prepared features are not compute_features(panel) of this panel; "
                "prepare them with sovereign.trading.backtest.prepare(panel, ...)"
            )
        cache.prepared[key] = given
    return given


@lru_cache(maxsize=16)
def _synthetic(
    seed: int,
    n_symbols: int,
    history: int,
    stress: int,
    regime: RegimeConfig,
    overlay: OverlayConfig,
) -> tuple[tuple[Scenario, Prepared], ...]:
    """The synthetic scenarios of ``seed`` with their regime fits and overlays, built once per
    process."""
    out = []
    for sc in synthetic_scenarios(seed, n_symbols=n_symbols, history=history, stress=stress):
        assert sc.panel is not None  # noqa: S101 - synthetic scenarios always have data
        out.append((sc, prepare(sc.panel, regime, seed=seed, overlay=overlay)))
    return tuple(out)


def _baseline_key(
    baseline: Baseline,
    side: Side,
    plan: Plan,
    cfg: GateConfig,
    lead: int,
    seed: int,
    cache: GateCache,
) -> str:
    return "|".join(
        (
            baseline.ruleset.id,
            repr(side.strategies),
            repr(sorted((k, sorted(v.items())) for k, v in side.params.items())),
            baseline.constitution.model_dump_json(),
            repr(side.config),
            plan.data_key,
            cache.prepared_key(plan.prepared),
            repr(cfg),
            str(lead),
            str(seed),
        )
    )


def _config_json(cfg: GateConfig) -> dict[str, object]:
    out = asdict(cfg)
    out["scenario_regime"] = asdict(cfg.scenario_regime)
    return out


__all__ = [
    "DEFAULT_EVALUATION_YEARS",
    "Baseline",
    "GateCache",
    "GateConfig",
    "GateData",
    "GateReport",
    "Plan",
    "evaluate",
]
