"""Exploration: the offline proposer's ideas when the weakness finder has nothing to say.

The weakness finder only speaks when a loss cluster is statistically significant, which on a few
hundred trades is rare. Between such findings the offline proposer still tries one idea per
cycle: first the rules of a small playbook of well-known risk reductions (:data:`PLAYBOOK`),
then bounded steps of one tunable parameter of the strategy that earned least over the window
studied (:func:`explore`). Exploration is cheap to propose and expensive to pass: every idea goes
through the validator (bounds, maximum step, the blacklist of an idea that keeps failing) and the
backtest gate, whose significance test counts every trial made so far.

Deterministic: the playbook is tried in order; the parameter and direction rotate with
``attempt`` (how many exploration steps came before), in sorted parameter order, up then down.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sovereign.rules.actions import Action, ScalePosition, SetTakeProfit, SkipTrade
from sovereign.rules.conditions import AtrAbove, Condition, DrawdownAbove, RegimeIs
from sovereign.rules.config import ParamSpec
from sovereign.rules.context import Regime
from sovereign.rules.proposals import AddRule, ProposalSource, TuneParameter
from sovereign.rules.rule import Rule, RuleSet

STEP_FRACTION = 0.1
"""An exploration step, as a fraction of the parameter's declared range (the constitution's
maximum step per change is 0.25 by default)."""


def explore(
    *,
    specs: Mapping[str, Mapping[str, ParamSpec]],
    params: Mapping[str, Mapping[str, float]],
    pnl_by_strategy: Mapping[str, float],
    attempt: int,
    step_fraction: float = STEP_FRACTION,
) -> TuneParameter | None:
    """One parameter step for the strategy with the lowest P&L, or None when nothing can move.

    ``specs``: declared bounds per strategy. ``params``: the values in force. ``pnl_by_strategy``:
    realised P&L (money) over the studied window; strategies without trades are not explored.
    """
    ranked = sorted((pnl, name) for name, pnl in pnl_by_strategy.items() if specs.get(name))
    if not ranked:
        return None
    pnl, strategy = ranked[0]
    names = sorted(specs[strategy])
    for k in range(2 * len(names)):
        slot = attempt + k
        name = names[slot % len(names)]
        direction = 1.0 if (slot // len(names)) % 2 == 0 else -1.0
        spec = specs[strategy][name]
        current = float(params.get(strategy, {}).get(name, spec.default))
        value = _step(spec, current, direction * step_fraction)
        if value != current:
            return TuneParameter(
                strategy=strategy,
                parameter=name,
                value=value,
                source=ProposalSource.HEURISTIC,
                rationale=(
                    f"Exploration: no significant weakness to act on; {strategy} earned least "
                    f"over the studied window ({pnl:+,.0f}). Trying {name} {current:g} -> "
                    f"{value:g} ({'up' if direction > 0 else 'down'} "
                    f"{step_fraction:.0%} of its range)."
                ),
                expected_effect=(
                    "Unknown in advance: the gate decides on out-of-sample folds, regimes and "
                    "stress scenarios."
                ),
            )
    return None


def _step(spec: ParamSpec, current: float, fraction: float) -> float:
    value = current + fraction * (spec.high - spec.low)
    value = min(max(value, spec.low), spec.high)
    if spec.integer:
        value = float(round(value))
        if value == current:  # a small range: move by one whole unit
            value = min(max(current + (1 if fraction > 0 else -1), spec.low), spec.high)
    return round(value, 6)


__all__ = ["STEP_FRACTION", "explore"]


def _rule(name: str, when: Condition, then: Action, why: str) -> tuple[Rule, str]:
    return Rule(name=name, when=when, then=then), why


PLAYBOOK: tuple[tuple[Rule, str], ...] = (
    _rule(
        "derisk-in-drawdown",
        DrawdownAbove(value=0.05),
        ScalePosition(factor=0.5),
        "halve new positions while the account is more than 5% under its peak, well before the "
        "10% hard stop",
    ),
    _rule(
        "no-entries-when-volatile",
        RegimeIs(regime=Regime.VOLATILE),
        SkipTrade(reason="volatile regime"),
        "do not open positions in the volatile regime, where stops are hit by noise",
    ),
    _rule(
        "take-profit-when-volatile",
        RegimeIs(regime=Regime.VOLATILE),
        SetTakeProfit(atr_mult=3.0),
        "bank gains at 3 ATR in the volatile regime instead of riding them back down",
    ),
    _rule(
        "half-size-when-volatile",
        RegimeIs(regime=Regime.VOLATILE),
        ScalePosition(factor=0.5),
        "halve new positions in the volatile regime",
    ),
    _rule(
        "half-size-on-wild-atr",
        AtrAbove(pct=4.0),
        ScalePosition(factor=0.5),
        "halve positions whose daily ATR exceeds 4% of price",
    ),
)
"""Well-known risk-reduction rules the offline proposer tries, in this order, when the weakness
finder has nothing significant: each is a hypothesis for the gate, never a default."""


def playbook_idea(ruleset: RuleSet, *, skip: Collection[str]) -> AddRule | None:
    """The first playbook rule that is not active (by id or family), not in ``skip`` (rule ids
    the caller does not want retried yet) and not made moot by an active rule that already skips
    every entry under the same condition, as a proposal."""
    active = {r.id for r in ruleset.rules} | {r.family() for r in ruleset.rules}
    # A condition under which every entry is already skipped leaves nothing for another rule.
    skipped = {r.when.model_dump_json() for r in ruleset.rules if isinstance(r.then, SkipTrade)}
    for rule, why in PLAYBOOK:
        if rule.id in active or rule.family() in active or rule.id in skip:
            continue
        if rule.when.model_dump_json() in skipped:
            continue
        return AddRule(
            rule=rule,
            source=ProposalSource.HEURISTIC,
            rationale=(
                f"Playbook: no significant weakness to act on; trying a well-known risk rule: {why}."
            ),
            expected_effect="lower drawdowns at a small cost in return, if the gate agrees",
        )
    return None
