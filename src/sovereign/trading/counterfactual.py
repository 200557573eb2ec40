"""Counterfactuals: what P&L a rule (or any rule-set change) would have given over a history.

The Trader is deterministic, so the answer is two backtests on the same prepared data and seed,
one without the change and one with it, and a trade-by-trade comparison. Strategies are stateful
(their confidence calibration learns from closed trades), so each run gets fresh instances.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sovereign.constitution import Constitution
from sovereign.market.bars import BarPanel
from sovereign.rules.proposals import (
    AddRule,
    ModifyConstitution,
    ModifyRule,
    RetireRule,
    TuneParameter,
    apply_proposal,
)
from sovereign.rules.rule import Rule, RuleSet
from sovereign.trading.backtest import (
    BacktestConfig,
    BacktestResult,
    Prepared,
    prepare,
    run_backtest,
)
from sovereign.trading.catalog import build
from sovereign.trading.events import ClosedTrade
from sovereign.trading.strategies.base import BaseStrategy

__all__ = ["Change", "Counterfactual", "RunSummary", "StrategyFactory", "counterfactual"]

StrategyFactory = Callable[[RuleSet], Sequence[BaseStrategy]]
"""Builds fresh strategies for one run, given the rule set (whose ``params`` it should honour)."""
Change = Rule | AddRule | ModifyRule | RetireRule | TuneParameter | ModifyConstitution


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSummary:
    """One run's outcome. ``pnl``: final equity minus starting cash (money, open positions
    marked at the last close). ``realized_pnl``: sum of closed trades' P&L. ``sharpe`` and
    ``max_drawdown`` (a fraction) are the backtester's metrics, after the warm-up bars."""

    ruleset_id: str
    pnl: float
    realized_pnl: float
    sharpe: float
    max_drawdown: float
    trades: int
    win_rate: float
    final_equity: float

    @classmethod
    def of(cls, result: BacktestResult, cash: float) -> RunSummary:
        wins = [t.pnl > 0 for t in result.trades]
        return cls(
            ruleset_id=result.ruleset_id,
            pnl=result.final_equity - cash,
            realized_pnl=float(sum(t.pnl for t in result.trades)),
            sharpe=float(result.metrics.get("sharpe", 0.0)),
            max_drawdown=float(result.metrics.get("max_drawdown", 0.0)),
            trades=len(result.trades),
            win_rate=sum(wins) / len(wins) if wins else 0.0,
            final_equity=result.final_equity,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Counterfactual:
    """Two runs, without (``baseline``) and with (``candidate``) the change, and their trades.

    Trades are matched on (strategy, symbol, entry bar). ``removed``: baseline trades the
    candidate did not take; ``added``: candidate trades the baseline did not take; ``changed``:
    (baseline, candidate) pairs of the same entry that differ in size, exit or P&L.
    """

    change: str
    baseline_ruleset: RuleSet
    candidate_ruleset: RuleSet
    baseline: RunSummary
    candidate: RunSummary
    removed: tuple[ClosedTrade, ...]
    added: tuple[ClosedTrade, ...]
    changed: tuple[tuple[ClosedTrade, ClosedTrade], ...]

    @property
    def pnl_difference(self) -> float:
        """Candidate P&L minus baseline P&L (money): > 0 means the change would have gained."""
        return self.candidate.pnl - self.baseline.pnl

    def rule_value(self, rule_id: str) -> float | None:
        """P&L that rule ``rule_id`` adds (with it minus without it), when the two rule sets
        differ by exactly that rule; None otherwise."""
        base = {r.id for r in self.baseline_ruleset.rules}
        cand = {r.id for r in self.candidate_ruleset.rules}
        if self.baseline_ruleset.params != self.candidate_ruleset.params:
            return None
        if base ^ cand != {rule_id}:
            return None
        return self.pnl_difference if rule_id in cand else -self.pnl_difference

    def to_json(self) -> dict[str, Any]:
        def run(s: RunSummary) -> dict[str, Any]:
            return {
                "ruleset_id": s.ruleset_id,
                "pnl": _num(s.pnl),
                "realized_pnl": _num(s.realized_pnl),
                "sharpe": _num(s.sharpe),
                "max_drawdown": _num(s.max_drawdown),
                "trades": s.trades,
                "win_rate": _num(s.win_rate),
                "final_equity": _num(s.final_equity),
            }

        return {
            "change": self.change,
            "baseline": run(self.baseline),
            "candidate": run(self.candidate),
            "pnl_difference": _num(self.pnl_difference),
            "removed": [_trade(t) for t in self.removed],
            "added": [_trade(t) for t in self.added],
            "changed": [{"baseline": _trade(a), "candidate": _trade(b)} for a, b in self.changed],
        }


def counterfactual(
    change: Change,
    *,
    panel: BarPanel,
    strategies: Sequence[str] | StrategyFactory,
    prepared: Prepared | None = None,
    params: Mapping[str, Mapping[str, float]] | None = None,
    ruleset: RuleSet | None = None,
    constitution: Constitution | None = None,
    config: BacktestConfig | None = None,
) -> Counterfactual:
    """Backtest ``panel`` without and with ``change`` and compare.

    ``change``: a :class:`Rule` (the baseline is ``ruleset`` without it, the candidate
    ``ruleset`` with it, whether or not it is active now: "what does rule R give") or a
    proposal (baseline ``ruleset``, candidate :func:`apply_proposal` of it; a constitution
    change raises ValueError). ``strategies``: strategy names, built fresh for each run with
    ``params`` overlaid by the rule set's tuned parameters, or a factory called once per run.
    ``prepared``: features and regimes (computed once here when None; pass them to reuse).
    Deterministic: both runs use ``config.seed``.
    """
    base_rules, cand_rules, label = _rulesets(change, ruleset or RuleSet())
    cfg = config or BacktestConfig()
    prep = prepared or prepare(panel, cfg.regime, seed=cfg.seed)
    runs = [
        run_backtest(
            panel,
            _strategies(strategies, params or {}, rules),
            rules=rules,
            constitution=constitution,
            config=cfg,
            prepared=prep,
        )
        for rules in (base_rules, cand_rules)
    ]
    base, cand = runs
    removed, added, changed = _diff(base.trades, cand.trades)
    return Counterfactual(
        change=label,
        baseline_ruleset=base_rules,
        candidate_ruleset=cand_rules,
        baseline=RunSummary.of(base, cfg.cash),
        candidate=RunSummary.of(cand, cfg.cash),
        removed=removed,
        added=added,
        changed=changed,
    )


def _rulesets(change: Change, ruleset: RuleSet) -> tuple[RuleSet, RuleSet, str]:
    if isinstance(change, Rule):
        without = ruleset.with_rules(r for r in ruleset.rules if r.id != change.id)
        return without, without.with_rules((*without.rules, change)), f"rule {change.name!r}"
    if isinstance(change, ModifyConstitution):
        raise ValueError("a constitution change has no counterfactual: no proposal can make it")
    return ruleset, apply_proposal(change, ruleset), change.summary()


def _strategies(
    strategies: Sequence[str] | StrategyFactory,
    params: Mapping[str, Mapping[str, float]],
    rules: RuleSet,
) -> Sequence[BaseStrategy]:
    if callable(strategies):
        return strategies(rules)
    names = list(strategies)
    merged = {s: {**params.get(s, {}), **rules.strategy_params(s)} for s in names}
    return build(names, merged)


def _same(a: ClosedTrade, b: ClosedTrade) -> bool:
    return (
        a.quantity == b.quantity
        and a.exit_bar == b.exit_bar
        and math.isclose(a.pnl, b.pnl, rel_tol=1e-9, abs_tol=1e-9)
    )


def _diff(
    base: Sequence[ClosedTrade], cand: Sequence[ClosedTrade]
) -> tuple[
    tuple[ClosedTrade, ...], tuple[ClosedTrade, ...], tuple[tuple[ClosedTrade, ClosedTrade], ...]
]:
    def key(t: ClosedTrade) -> tuple[str, str, int]:
        return (t.strategy, t.symbol, t.entry_bar)

    theirs = {key(t): t for t in cand}
    ours = {key(t): t for t in base}
    removed = tuple(t for t in base if key(t) not in theirs)
    added = tuple(t for t in cand if key(t) not in ours)
    changed = tuple(
        (t, theirs[key(t)]) for t in base if key(t) in theirs and not _same(t, theirs[key(t)])
    )
    return removed, added, changed


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _trade(t: ClosedTrade) -> dict[str, Any]:
    return {
        "strategy": t.strategy,
        "symbol": t.symbol,
        "side": "long" if t.side > 0 else "short",
        "entry_time": t.entry_time.isoformat(),
        "exit_time": t.exit_time.isoformat(),
        "entry_bar": t.entry_bar,
        "exit_bar": t.exit_bar,
        "quantity": t.quantity,
        "pnl": _num(t.pnl),
        "regime_at_entry": t.regime_at_entry,
        "rules": list(t.rules),
    }
