"""The improvement cycle inside a replay: when it runs, what it sees, how its decisions reach the
running Trader, and the canary that takes a bad deployment back.

Every ``every_days`` simulated days (after the first ``min_days`` of trading) the campaign
flushes its events to memory and runs one improvement cycle at the simulated ``now`` on the bars
known by then (the panel cut at the current bar: the gate can never see the future of a replay).
A deployment takes effect at the next bar (rules and tuned parameters); the canary then watches
the paper equity since the deployment and rolls it back, announced in the summary and the audit
log, when its drawdown exceeds the gate's backtested expectation plus ``canary_margin``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from langchain_core.language_models import BaseChatModel

from sovereign.app import deploy as deployment
from sovereign.app.announce import Announcer
from sovereign.app.context import App
from sovereign.app.improvement import ImprovementInputs, run_improvement
from sovereign.constitution import Constitution
from sovereign.errors import DataError
from sovereign.market.bars import BarPanel
from sovereign.rules.rule import RuleSet
from sovereign.trading.backtest import BacktestConfig, Prepared
from sovereign.trading.gate import GateConfig
from sovereign.trading.gate_runs import cut_prepared
from sovereign.trading.trader import Trader

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class ImproverOptions:
    """``every_days``: simulated days between cycles (0: never). ``min_days``: trading days of
    history before the first cycle. ``canary_margin``: drawdown beyond the gate's expectation
    (a fraction) that rolls a deployment back. ``gate_years``: the gate's evaluation window, the
    years before ``now`` (longer than the 7 the default replay shows: an improvement of a few
    hundredths of Sharpe needs that much history to stand out of the noise)."""

    every_days: int = 61
    min_days: int = 180
    canary_margin: float = 0.03
    gate_years: float = 12.0
    seed: int = 42
    llm: BaseChatModel | None = None


@dataclass(kw_only=True)
class ImproverLog:
    cycles: list[dict[str, Any]] = field(default_factory=list)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Compact: each proposal's what, when and why (full gate reports are in memory)."""
        outcomes = [_brief(c["now"], o) for c in self.cycles for o in c["outcomes"]]
        return {
            "cycles": len(self.cycles),
            "proposals": len(outcomes),
            "deployed": [o for o in outcomes if o["status"] == "deployed"],
            "rejected": [o for o in outcomes if o["status"] == "rejected"],
            "rollbacks": [
                {k: r[k] for k in ("at", "from_version", "to_version", "by", "reason")}
                for r in self.rollbacks
            ],
        }


def _brief(now: str, o: dict[str, Any]) -> dict[str, Any]:
    record = o.get("record") or {}
    return {
        "at": now,
        "proposal_id": o["proposal_id"],
        "kind": o["kind"],
        "source": o["source"],
        "summary": o["summary"],
        "status": o["status"],
        "stage": o["stage"],
        "reasons": [f"{r['code']}: {r['message']}" for r in o["reasons"]],
        "version": record.get("to_version"),
    }


class ReplayImprover:
    """Runs improvement cycles on the simulated clock of one campaign."""

    def __init__(
        self,
        app: App,
        *,
        run_id: str,
        panel: BarPanel,
        prepared: Prepared,
        strategies: tuple[str, ...],
        constitution: Constitution,
        trader: Trader,
        start: datetime,
        backtest: BacktestConfig,
        options: ImproverOptions,
        announce: Announcer | None = None,
    ) -> None:
        self.app = app
        self.run_id = run_id
        self.panel = panel
        self.prepared = prepared
        self.strategies = strategies
        self.constitution = constitution
        self.trader = trader
        self.backtest = backtest
        self.options = options
        self.announce = announce
        self.log = ImproverLog()
        self.next_cycle = start + timedelta(days=options.min_days)
        self._expected: float | None = None  # the watched deployment's expected drawdown
        self._since: list[tuple[datetime, float]] = []  # equity since that deployment

    def due(self, i: int, now: datetime) -> bool:
        """A cycle is due every ``every_days``, once the bars known at ``i`` are enough for the
        gate's out-of-sample folds after the strategies' warm-up."""
        if self.options.every_days <= 0 or now < self.next_cycle:
            return False
        gate = self._gate_config()
        return i + 1 - self.trader.warmup_bars >= gate.folds * gate.min_slice_bars

    def _gate_config(self) -> GateConfig:
        return GateConfig(evaluation_years=self.options.gate_years)

    def cycle(self, i: int, now: datetime, equity: float) -> dict[str, Any]:
        """One improvement cycle at bar ``i`` (simulated ``now``); applies what it deployed."""
        self.next_cycle = now + timedelta(days=self.options.every_days)
        gate = self._gate_config()
        inputs = ImprovementInputs(
            panel=self.panel.slice(0, i + 1),
            prepared=cut_prepared(self.prepared, 0, i + 1),
            strategies=self.strategies,
            constitution=self.constitution,
            seed=self.options.seed,
            gate=gate,
            backtest=self.backtest,
            run_id=self.run_id,
            equity=equity,
        )
        try:
            result = run_improvement(
                self.app,
                inputs,
                cycle_id=f"{self.run_id}-{now:%Y%m%d}",
                now=now,
                llm=self.options.llm,
                keep_checkpoint=False,
                on_notify=None if self.announce is None else self.announce.cycle,
            )
        except DataError as err:
            # Too little history for the gate to judge yet: nothing was decided or recorded.
            log.info("improvement cycle at %s skipped: %s", now.date(), err)
            return {"skipped": str(err)}
        summary = result.to_json()
        self.log.cycles.append(summary)
        if result.deployed:
            self.adopt_deployment()
        return summary

    def adopt_deployment(self) -> None:
        """Put the active rule set into the running Trader and let the canary watch the newest
        active deployment from now on."""
        self._apply()
        dep = self.app.proposals.active_deployments()
        self._expected = dep[0].expected_max_drawdown if dep else None
        self._since = []

    def watch(self, now: datetime, equity: float) -> None:
        """The canary: roll back the newest deployment of this run if it broke its promise."""
        if self._expected is None:
            return
        self._since.append((now, equity))
        peak = max(v for _, v in self._since)
        if 1.0 - equity / peak <= self._expected + self.options.canary_margin:
            return  # cheap pre-check; canary_check below decides on the full curve
        record = deployment.canary_check(
            self.app, equity=self._since, margin=self.options.canary_margin, at=now
        )
        if record is None:
            return
        self._expected, self._since = None, []
        if record is None:
            return
        self._apply()
        entry = record.to_json()
        self.log.rollbacks.append(entry)
        log.warning("canary rollback at %s: %s", now.date(), record.reason)
        if self.announce is not None:
            self.announce.rollback(record.to_version, by=record.by, reason=record.reason)

    def _apply(self) -> None:
        active = self.app.rules.active()
        ruleset = RuleSet() if active is None else active[1]
        self.trader.set_rules(ruleset)
        self.trader.set_params(ruleset.params)


__all__ = ["ImproverLog", "ImproverOptions", "ReplayImprover"]
