"""The improvement cycle wired to the application: the real :class:`CycleServices`.

:class:`AppServices` reads trade memory, runs the weakness finder and the heuristic proposer,
builds the validator's state from persisted history (so the daily change budget and the family
blacklist survive restarts), runs the backtest gate, and deploys or rejects through
:mod:`sovereign.app.deploy` (idempotent by proposal, so a resumed cycle never deploys twice).

Everything the services judge with is *causal*: ``ImprovementInputs.panel`` holds only the bars
known at the cycle's ``now`` (a replay hands in the panel cut at the current bar), trades are
those that closed by ``now``, and the gate backtests on that panel alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from langchain_core.language_models import BaseChatModel
from sqlalchemy import func
from sqlmodel import col, select

from sovereign.app import deploy as deployment
from sovereign.app.cache import prepare_cached
from sovereign.app.context import App
from sovereign.constitution import Constitution, ValidatorState, validate
from sovereign.engines.analytics import WeaknessReport, find_weaknesses, trade_frame_from_rows
from sovereign.graph.checkpoint import open_checkpointer, prune_checkpoints
from sovereign.graph.cycle import run_cycle
from sovereign.graph.explore import explore, playbook_idea
from sovereign.graph.heuristic import propose as heuristic_propose
from sovereign.graph.state import CycleResult
from sovereign.market.bars import BarPanel
from sovereign.memory import session
from sovereign.memory.tables import ProposalRow, VerdictRow
from sovereign.rules.proposals import Proposal, TuneParameter, parse_proposal
from sovereign.rules.rule import Rule, RuleSet
from sovereign.tools.engine_tools import engine_tools
from sovereign.tools.memory_tools import readonly_memory_tools
from sovereign.trading.backtest import BacktestConfig, Prepared
from sovereign.trading.catalog import effective_params, rule_features, strategy_specs
from sovereign.trading.counterfactual import Counterfactual, counterfactual
from sovereign.trading.gate import Baseline, GateConfig, GateData, evaluate
from sovereign.trading.gate_runs import GateCache, cut_prepared

log = logging.getLogger(__name__)

TRIAL_STAGES = ("gate", "deploy")
COUNTERFACTUAL_LEAD_BARS = 300
"""Bars before a counterfactual window for the strategies' warm-up (momentum needs 253)."""


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class ImprovementInputs:
    """What one cycle judges with. ``panel``/``prepared``: the bars known at ``now`` and their
    features and regimes. ``run_id``: whose trades to study (None: every run's).
    ``equity``: the paper equity now (the canary's starting point for a deployment)."""

    panel: BarPanel
    prepared: Prepared | None  # None: computed (and cached on disk) when first needed
    strategies: tuple[str, ...]
    constitution: Constitution
    operator_params: dict[str, dict[str, float]] = field(default_factory=dict)
    seed: int = 42
    gate: GateConfig = field(default_factory=GateConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    run_id: str | None = None
    equity: float | None = None
    signal_lag: int = 1
    min_trades: int = 20
    explore: bool = True  # one playbook rule or parameter step per cycle besides the findings
    retry_days: int = 365  # a playbook rule rejected earlier is proposed again after this
    counterfactual_years: float = 3.0  # window of the active rules' counterfactual replays
    max_proposals: int | None = None  # default: the constitution's max_proposals_per_cycle


class AppServices:
    """:class:`~sovereign.graph.services.CycleServices` over the application's stores."""

    def __init__(
        self,
        app: App,
        inputs: ImprovementInputs,
        *,
        now: datetime,
        cache: GateCache | None = None,
        on_notify: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.app = app
        self.inputs = inputs
        self.now = now
        self.cache = cache if cache is not None else GateCache()
        self.on_notify = on_notify
        self._prep = inputs.prepared
        self._counterfactuals: dict[str, Counterfactual] | None = None
        self._trade_rows: list[Any] | None = None

    def prepared(self) -> Prepared:
        """The panel's features and regimes (regime fits are slow: computed once, cached)."""
        if self._prep is None:
            self._prep = prepare_cached(
                self.inputs.panel,
                self.inputs.backtest.regime,
                seed=self.inputs.seed,
                cache_dir=self.app.settings.data_dir / "cache",
            )
        return self._prep

    # ---- collect and analyse ----------------------------------------------------------------

    def _active(self) -> tuple[int | None, RuleSet]:
        active = self.app.rules.active()
        return (None, RuleSet()) if active is None else active

    def _trades(self) -> list[Any]:
        """Round trips closed by ``now``, read once per services object (one cycle: deploying
        or rejecting records no trade)."""
        if self._trade_rows is None:
            rows = self.app.memory.trades(run_id=self.inputs.run_id)
            self._trade_rows = [r for r in rows if r.exit_time <= self.now]
        return self._trade_rows

    def collect(self, cycle_id: str, now: datetime) -> dict[str, Any]:
        version, ruleset = self._active()
        trades = self._trades()
        return {
            "cycle_id": cycle_id,
            "now": now.isoformat(),
            "ruleset_version": version,
            "ruleset_id": ruleset.id,
            "active_rules": len(ruleset),
            "trades": len(trades),
            "run_id": self.inputs.run_id,
            "first_trade": trades[0].entry_time.isoformat() if trades else None,
            "last_trade": trades[-1].exit_time.isoformat() if trades else None,
            "equity": self.inputs.equity,
            "bars": self.inputs.panel.n_bars,
        }

    def analyse(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        panel, prepared = self.inputs.panel, self.prepared()
        frame = trade_frame_from_rows(
            self._trades(),
            prepared.features,
            panel.symbols,
            panel.timestamps,
            signal_lag=self.inputs.signal_lag,
            stability=None if prepared.overlay is None else prepared.overlay.buckets(),
        )
        report = find_weaknesses(frame, min_trades=self.inputs.min_trades, seed=self.inputs.seed)
        values = [
            {"rule_id": rid, **cf.to_json()} for rid, cf in self.rule_counterfactuals().items()
        ]
        summary = report.summary()
        for v in values:
            if v.get("pnl_difference") is None:
                continue
            summary += (
                f"\nActive rule {v['rule_id']}: P&L {v['pnl_difference']:+,.0f} from it over the "
                f"last {self.inputs.counterfactual_years:g} years (counterfactual replay)."
            )
        return report.to_json() | {"summary": summary, "rule_values": values}

    def rule_counterfactuals(self) -> dict[str, Counterfactual]:
        """What each active rule gave over the last ``counterfactual_years``: the same replay
        with and without it (deterministic; computed once per services object)."""
        if self._counterfactuals is None:
            _, ruleset = self._active()
            panel, prepared = self.inputs.panel, self.prepared()
            bars = int(self.inputs.counterfactual_years * 252) + COUNTERFACTUAL_LEAD_BARS
            lo = max(0, panel.n_bars - bars)
            window, cut = panel.slice(lo, panel.n_bars), cut_prepared(prepared, lo, panel.n_bars)
            self._counterfactuals = {
                rule.id: counterfactual(
                    rule,
                    panel=window,
                    prepared=cut,
                    strategies=self.inputs.strategies,
                    params=self.inputs.operator_params,
                    ruleset=ruleset,
                    constitution=self.inputs.constitution,
                    config=self.inputs.backtest,
                )
                for rule in ruleset.rules
            }
        return self._counterfactuals

    def heuristic_proposals(self, analysis: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        _, ruleset = self._active()
        proposals = heuristic_propose(
            WeaknessReport.from_json(analysis),
            ruleset=ruleset,
            constitution=self.inputs.constitution,
            features_available=rule_features(self.inputs.panel),
            max_proposals=min(limit, self._max_proposals()),
            seed=self.inputs.seed,
            counterfactuals=tuple(self.rule_counterfactuals().values()),
        )
        out = [p.model_dump(mode="json") for p in proposals]
        if self.inputs.explore and len(out) < min(limit, self._max_proposals()):
            idea = self._idea(ruleset)
            if idea is not None:
                out.append(idea.model_dump(mode="json"))
        return out

    def _idea(self, ruleset: RuleSet) -> Proposal | None:
        """One exploration idea: parameter steps and playbook rules take turns."""
        rule = playbook_idea(ruleset, skip=self._recently_tried())
        step = self._exploration(ruleset, self._judged(kind="tune_parameter"))
        first, second = (rule, step) if self._judged() % 2 else (step, rule)
        return first or second

    def _judged(self, *, kind: str | None = None) -> int:
        """How many times the heuristic proposer's ideas (of ``kind``) were judged: a retried
        idea counts again (proposals are stored once per content, verdicts per judgement)."""
        query = (
            select(func.count())
            .select_from(VerdictRow)
            .join(ProposalRow, col(VerdictRow.proposal_id) == col(ProposalRow.proposal_id))
            .where(col(ProposalRow.source) == "heuristic")
        )
        if kind is not None:
            query = query.where(col(ProposalRow.kind) == kind)
        with session(self.app.engine) as db:
            return int(db.exec(query).one())

    def _recently_tried(self) -> set[str]:
        """Ids of rules proposed within ``retry_days`` (a playbook rule is retried after that,
        on the evidence that accumulated meanwhile)."""
        since = self.now - timedelta(days=self.inputs.retry_days)
        query = (
            select(ProposalRow.body)
            .join(VerdictRow, col(VerdictRow.proposal_id) == col(ProposalRow.proposal_id))
            .where(col(ProposalRow.kind) == "add_rule", col(VerdictRow.created_at) >= since)
        )
        with session(self.app.engine) as db:
            bodies = list(db.exec(query))
        return {Rule.model_validate(b["rule"]).id for b in bodies if isinstance(b, dict)}

    def _exploration(self, ruleset: RuleSet, attempts: int) -> TuneParameter | None:
        names = self.inputs.strategies
        pnl: dict[str, float] = {}
        for t in self._trades():
            pnl[t.strategy] = pnl.get(t.strategy, 0.0) + t.pnl
        return explore(
            specs=strategy_specs(names),
            params=effective_params(names, self.inputs.operator_params, ruleset.params),
            pnl_by_strategy=pnl,
            attempt=attempts,
        )

    def _max_proposals(self) -> int:
        return self.inputs.max_proposals or self.inputs.constitution.max_proposals_per_cycle

    def context_for_llm(self, analysis: dict[str, Any]) -> dict[str, Any]:
        _, ruleset = self._active()
        names = self.inputs.strategies
        specs = strategy_specs(names)
        current = effective_params(names, self.inputs.operator_params, ruleset.params)
        return {
            "active_rules": [r.model_dump(mode="json") | {"id": r.id} for r in ruleset.rules],
            "constitution": self.inputs.constitution.model_dump(mode="json"),
            "strategies": {
                name: {
                    p: {"value": current[name][p], "low": s.low, "high": s.high}
                    for p, s in specs[name].items()
                }
                for name in names
            },
            "features_available": sorted(f.value for f in rule_features(self.inputs.panel)),
            "symbols": list(self.inputs.panel.symbols),
        }

    # ---- judge ------------------------------------------------------------------------------

    def validator_state(self, index_in_cycle: int = 0) -> ValidatorState:
        """The validator's view of now, from persisted history (survives restarts)."""
        c = self.inputs.constitution
        _, ruleset = self._active()
        names = self.inputs.strategies
        rejections = self.app.proposals.rejection_times(
            self.now - timedelta(days=c.blacklist_window_days)
        )
        return ValidatorState(
            constitution=c,
            ruleset=ruleset,
            strategies=strategy_specs(names),
            params=effective_params(names, self.inputs.operator_params, ruleset.params),
            features=rule_features(self.inputs.panel),
            deployments=tuple(self.app.proposals.deployment_times(self.now - timedelta(days=1))),
            rejections={f: tuple(ts) for f, ts in rejections.items()},
            index_in_cycle=index_in_cycle,
            symbols=frozenset(self.inputs.panel.symbols),
        )

    def validate(
        self, proposal_json: dict[str, Any], index_in_cycle: int, cycle_id: str
    ) -> dict[str, Any]:
        return validate(proposal_json, self.validator_state(index_in_cycle), self.now).to_json()

    def trials(self) -> int:
        """Every proposal the gate has judged so far, plus this one (the DSR counts them)."""
        query = select(func.count(func.distinct(VerdictRow.proposal_id))).where(
            col(VerdictRow.stage).in_(TRIAL_STAGES)
        )
        with session(self.app.engine) as db:
            return int(db.exec(query).one()) + 1

    def gate(self, proposal_json: dict[str, Any], cycle_id: str) -> dict[str, Any]:
        proposal = parse_proposal(proposal_json)
        _, ruleset = self._active()
        inputs = self.inputs
        baseline = Baseline(
            ruleset=ruleset,
            strategies=inputs.strategies,
            params=inputs.operator_params,
            constitution=inputs.constitution,
            backtest=inputs.backtest,
        )
        prepared = self.prepared()
        data = GateData(
            panel=inputs.panel,
            prepared=prepared,
            crash_panel=inputs.panel,
            crash_prepared=prepared,
        )
        return evaluate(
            proposal,
            baseline,
            data,
            inputs.seed,
            config=inputs.gate,
            trials=self.trials(),
            cache=self.cache,
        ).to_json()

    # ---- act --------------------------------------------------------------------------------

    def deploy(
        self, proposal_json: dict[str, Any], gate_report: dict[str, Any], cycle_id: str
    ) -> dict[str, Any]:
        proposal = parse_proposal(proposal_json)
        record = deployment.deploy(
            self.app,
            proposal,
            gate_report,
            at=self.now,
            cycle_id=cycle_id,
            baseline_equity=self.inputs.equity,
        )
        return {"deployed": True, **record.to_json()}

    def reject(
        self,
        proposal_json_or_raw: Any,
        stage: str,
        reasons: list[dict[str, Any]],
        gate_report: dict[str, Any] | None,
        cycle_id: str,
    ) -> dict[str, Any]:
        source = None
        if isinstance(proposal_json_or_raw, dict):
            source = proposal_json_or_raw.get("source")
        record = deployment.reject(
            self.app,
            proposal_json_or_raw,
            stage=stage,
            violations=reasons,
            gate_report_json=gate_report,
            at=self.now,
            cycle_id=cycle_id,
            source=source if isinstance(source, str) else "llm",
        )
        return record.to_json()

    def notify(self, summary: dict[str, Any]) -> None:
        try:
            log.info(
                "improvement cycle %s: %s deployed, %s rejected",
                summary.get("cycle_id"),
                len(summary.get("deployed", []) or []),
                len(summary.get("rejected", []) or []),
            )
            if self.on_notify is not None:
                self.on_notify(summary)
        except Exception:  # notification never breaks the cycle
            log.exception("notification of cycle %s failed", summary.get("cycle_id"))

    def autodeploy_frozen(self) -> str | None:
        return deployment.autodeploy_frozen(self.app)


KEEP_CYCLES = 20
"""Finished improvement cycles whose checkpoints the live loop and `propose` keep."""


def checkpointer_for(app: App) -> AbstractContextManager[Any]:
    """The improvement cycle's checkpointer: SQLite in the data dir, or PostgreSQL alongside a
    PostgreSQL application database."""
    return open_checkpointer(app.settings.db_url, app.settings.data_dir)


def run_improvement(
    app: App,
    inputs: ImprovementInputs,
    *,
    cycle_id: str,
    now: datetime,
    llm: BaseChatModel | None = None,
    cache: GateCache | None = None,
    on_notify: Callable[[dict[str, Any]], None] | None = None,
    keep_checkpoint: bool = True,
) -> CycleResult:
    """Run (or resume, or read back) improvement cycle ``cycle_id`` at ``now``.

    ``keep_checkpoint=False`` deletes the cycle's checkpoints once it is complete (its
    outcome is in memory: proposals, verdicts, deployments); a replay, which never resumes a
    finished cycle, uses it to keep the checkpoint file from growing with every run. Otherwise
    (the live loop, `sovereign propose`) only the :data:`KEEP_CYCLES` newest cycles keep theirs.
    """
    services = AppServices(app, inputs, now=now, cache=cache, on_notify=on_notify)
    reader, tools = (
        (None, [])
        if llm is None
        else readonly_memory_tools(app.settings.db_url, constitution=inputs.constitution)
    )
    if llm is not None:  # and the engines, over the bars known at this cycle
        tools = [*tools, *engine_tools(inputs.panel, seed=inputs.seed)]
    try:
        with checkpointer_for(app) as saver:
            result = run_cycle(
                services, cycle_id=cycle_id, now=now, checkpointer=saver, llm=llm, tools=tools
            )
            if result.complete and not keep_checkpoint:
                saver.delete_thread(cycle_id)
            elif result.complete:
                prune_checkpoints(saver, keep=KEEP_CYCLES, protect=cycle_id)
            return result
    finally:
        if reader is not None:
            reader.dispose()


__all__ = ["KEEP_CYCLES", "AppServices", "ImprovementInputs", "checkpointer_for", "run_improvement"]
