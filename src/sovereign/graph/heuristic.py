"""The offline heuristic proposer: significant weaknesses in, risk-reducing rule proposals out.

Used when no LLM is configured (and as a baseline for the LLM proposer's evals). Deterministic:
the same report, rule set and constitution give the same proposals in the same order, most
significant first. Every proposal still goes through the constitution validator and the backtest
gate like any other; this module only makes sure it does not propose what would obviously be
refused (an active rule or family, a feature the data lacks, more than the budget allows).

Mapping, per significant cluster (see :class:`~sovereign.engines.analytics.Weakness`):

==================  ===============================================================  ========
cluster             condition                                                        scope
==================  ===============================================================  ========
regime              ``regime_is``                                                    all
strategy x regime   ``regime_is``                                                    strategy
ATR bucket          ``atr_above`` its lower edge / ``atr_below`` its upper edge      all
volume bucket       ``volume_below`` / ``volume_above`` its edges (needs VOLUME)     all
weekday             ``day_of_week`` (weak days of one action merged)                 all
symbol              ``symbol_in`` (weak symbols of one action merged)                all
losing streak       ``consecutive_losses_above`` (k - 1)                             all
streak finding      ``consecutive_losses_above`` (k - 1)                             strategy
==================  ===============================================================  ========

Only clusters that lose on average (mean return < 0) get a rule: one that merely earns less
than the rest still earns, and cutting it would cost P&L. Action: a clear loser (effect size
``d <= -SKIP_EFFECT``) is skipped (a symbol is blocked with ``block_symbol``); a milder one has
its size halved (``scale_position`` 0.5). Losing streaks are always scaled, never skipped: a
skip conditioned only on trade history can never clear, because the streak resets only by
trading.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sovereign.constitution import Constitution
from sovereign.engines.analytics import (
    WEEKDAYS,
    Dimension,
    StreakFinding,
    Weakness,
    WeaknessReport,
)
from sovereign.rules.actions import Action, BlockSymbol, ScalePosition, SkipTrade
from sovereign.rules.conditions import (
    All,
    AtrAbove,
    AtrBelow,
    Condition,
    ConsecutiveLossesAbove,
    DayOfWeek,
    RegimeIs,
    SymbolIn,
    VolumeAbove,
    VolumeBelow,
)
from sovereign.rules.context import Regime, RuleFeature
from sovereign.rules.proposals import AddRule, Proposal, ProposalSource, RetireRule
from sovereign.rules.rule import Rule, RuleSet
from sovereign.trading.counterfactual import Counterfactual

__all__ = ["BLOCK_DAYS", "SCALE_FACTOR", "SKIP_EFFECT", "propose"]

SCALE_FACTOR = 0.5
BLOCK_DAYS = 30
SKIP_EFFECT = 0.5  # |Cohen's d| from which a losing cluster is skipped rather than scaled
_NAME_BAD = re.compile(r"[^\w.\- ]")

Evidence = Weakness | StreakFinding


@dataclass(frozen=True, kw_only=True, slots=True)
class _Candidate:
    rule: Rule
    evidence: tuple[Evidence, ...]


def propose(
    report: WeaknessReport,
    *,
    ruleset: RuleSet,
    constitution: Constitution,
    features_available: frozenset[RuleFeature],
    max_proposals: int,
    seed: int = 0,
    counterfactuals: Sequence[Counterfactual] = (),
) -> list[Proposal]:
    """Risk-reducing proposals for the significant findings of ``report``.

    At most ``min(max_proposals, constitution.max_proposals_per_cycle)`` proposals, and no more
    new rules than ``constitution.max_active_rules`` leaves room for. Never a rule whose id or
    family is active, never two of one family (weak symbols or weekdays with the same action
    are merged into one rule), never a strategy-scoped rule already covered by the same rule for
    all strategies, never a condition on a feature outside ``features_available``.

    ``counterfactuals`` (optional): per-rule counterfactuals (see
    :meth:`Counterfactual.rule_value`); an active rule that cost P&L without improving the
    Sharpe ratio is proposed for retirement, after the new rules.

    ``seed`` is accepted for parity with the LLM proposer; this mapping uses no randomness, so
    the output does not depend on it.
    """
    del seed
    limit = min(max_proposals, constitution.max_proposals_per_cycle)
    if limit <= 0:
        return []
    room = max(constitution.max_active_rules - len(ruleset), 0)
    picked = _candidates(report, ruleset, features_available)[: min(limit, room)]
    out: list[Proposal] = [_add(c, report) for c in picked]
    out += _retirements(ruleset, counterfactuals)[: limit - len(out)]
    return out


# ------------------------------------------------------------------------------- candidates


def _ranked(report: WeaknessReport) -> list[Evidence]:
    findings: list[Evidence] = [*report.weaknesses, *(s for s in report.streaks if s.significant)]
    order = list(Dimension)

    def key(e: Evidence) -> tuple[float, float, int, str]:
        if isinstance(e, Weakness):
            return (e.q_value, e.p_value, order.index(e.dimension), e.value)
        return (e.q_value, e.p_value, len(order), e.strategy)

    return sorted(findings, key=key)


def _candidates(
    report: WeaknessReport, ruleset: RuleSet, features: frozenset[RuleFeature]
) -> list[_Candidate]:
    active_ids = {r.id for r in ruleset.rules}
    families = {r.family() for r in ruleset.rules}
    global_families = {r.family() for r in ruleset.rules if r.strategy is None}
    pending: list[_Candidate] = []
    for evidence in _ranked(report):
        rule = _rule_for(evidence)
        if rule is None or not rule.features() <= features or rule.id in active_ids:
            continue
        family = rule.family()
        if family in families:
            continue
        unscoped = rule.model_copy(update={"strategy": None}).family()
        pending_global = {c.rule.family() for c in pending if c.rule.strategy is None}
        if rule.strategy is not None and unscoped in global_families | pending_global:
            continue  # the same rule already applies to every strategy
        same = next((i for i, c in enumerate(pending) if c.rule.family() == family), None)
        if same is None:
            pending.append(_Candidate(rule=rule, evidence=(evidence,)))
        elif (merged := _merge(pending[same], rule, evidence)) is not None:
            pending[same] = merged
    return pending


def _rule_for(e: Evidence) -> Rule | None:
    """The rule that answers one finding, or None when there is no sensible one."""
    if isinstance(e, StreakFinding):
        return _rule(
            ConsecutiveLossesAbove(count=e.k - 1),
            ScalePosition(factor=SCALE_FACTOR),
            e.strategy,
            f"scale after {e.k} losses",
        )
    when = _condition(e)
    if when is None or e.mean_return >= 0:
        return None
    scale = e.effect_size > -SKIP_EFFECT or e.dimension is Dimension.LOSING_STREAK
    then: Action
    if scale:
        then, verb = ScalePosition(factor=SCALE_FACTOR), "scale"
    elif e.dimension is Dimension.SYMBOL:
        then, verb = BlockSymbol(days=BLOCK_DAYS), "block"
    else:
        reason = (
            f"heuristic: {e.label} loses on average ({e.mean_return:+.2f}% per trade, "
            f"n={e.n}, q={e.q_value:.3g})"
        )
        then, verb = SkipTrade(reason=reason[:200]), "skip"
    return _rule(when, then, e.strategy, f"{verb} {e.label}")


def _condition(w: Weakness) -> Condition | None:
    d = w.dimension
    if d in (Dimension.REGIME, Dimension.STRATEGY_REGIME):
        try:
            return RegimeIs(regime=Regime(w.value))
        except ValueError:
            return None
    if d is Dimension.ATR:
        return _band(lambda v: AtrAbove(pct=v), lambda v: AtrBelow(pct=v), w.low, w.high)
    if d is Dimension.VOLUME:
        return _band(
            lambda v: VolumeAbove(percentile=v), lambda v: VolumeBelow(percentile=v), w.low, w.high
        )
    if d is Dimension.WEEKDAY:
        return DayOfWeek(days=(WEEKDAYS.index(w.value),)) if w.value in WEEKDAYS else None
    if d is Dimension.SYMBOL:
        return SymbolIn(symbols=(w.value,))
    if d is Dimension.LOSING_STREAK and w.low is not None and w.low >= 1:
        return ConsecutiveLossesAbove(count=int(w.low) - 1)
    return None


def _band(
    above: Callable[[float], Condition],
    below: Callable[[float], Condition],
    low: float | None,
    high: float | None,
) -> Condition | None:
    """``low < x < high`` with whichever edges exist (edges must be > 0)."""
    parts = [make(edge) for make, edge in ((above, low), (below, high)) if edge and edge > 0]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else All(all=tuple(parts))


def _rule(when: Condition, then: Action, strategy: str | None, what: str) -> Rule:
    scope = f" for {strategy}" if strategy else ""
    name = _NAME_BAD.sub("_", f"heuristic {what}{scope}")[:80].rstrip()
    return Rule(name=name, strategy=strategy, when=when, then=then)


def _merge(c: _Candidate, rule: Rule, evidence: Evidence) -> _Candidate | None:
    """Weak symbols (or weekdays) with the same action and scope become one rule."""
    old, new = c.rule.when, rule.when
    when: Condition
    if isinstance(old, SymbolIn) and isinstance(new, SymbolIn):
        when = SymbolIn(symbols=tuple(dict.fromkeys((*old.symbols, *new.symbols))))
        what = "symbols " + " ".join(when.symbols)
    elif isinstance(old, DayOfWeek) and isinstance(new, DayOfWeek):
        when = DayOfWeek(days=tuple(sorted({*old.days, *new.days})))
        what = "weekdays " + " ".join(WEEKDAYS[d] for d in when.days)
    else:
        return None  # e.g. two ATR buckets: keep the more significant one
    verb = {"block_symbol": "block", "scale_position": "scale", "skip_trade": "skip"}[
        c.rule.then.type
    ]
    then = c.rule.then
    if isinstance(then, SkipTrade):
        then = SkipTrade(reason=f"heuristic: {what} lose on average"[:200])
    merged = _rule(when, then, c.rule.strategy, f"{verb} {what}")
    return _Candidate(rule=merged, evidence=(*c.evidence, evidence))


# -------------------------------------------------------------------------------- proposals


def _add(c: _Candidate, report: WeaknessReport) -> AddRule:
    return AddRule(
        rule=c.rule,
        rationale=" ".join(_because(e, report) for e in c.evidence)[:4000],
        source=ProposalSource.HEURISTIC,
        expected_effect=_effect(c)[:1000],
    )


def _because(e: Evidence, report: WeaknessReport) -> str:
    if isinstance(e, StreakFinding):
        return (
            f"Losses of {e.strategy} come in streaks more than its loss rate "
            f"({e.loss_rate:.0%} of {e.n} trades) explains: {e.count} runs of at least {e.k} "
            f"losses against {e.expected_count:.1f} expected by chance, longest {e.longest} "
            f"(chance ~{e.expected_longest:.1f}); permutation p={e.p_value:.4f}, "
            f"Benjamini-Hochberg q={e.q_value:.4f} over {report.n_tests} tests."
        )
    test = "one-sided permutation test" if report.method == "permutation" else "Welch t-test"
    return (
        f"Trades in {e.label} (n={e.n}) returned {e.mean_return:+.2f}% on average against "
        f"{e.rest_mean_return:+.2f}% for the other trades, win rate {e.win_rate:.0%}, total "
        f"P&L {e.total_pnl:+,.2f}; {test} p={e.p_value:.4f}, Benjamini-Hochberg "
        f"q={e.q_value:.4f} over {report.n_tests} tests; effect size d={e.effect_size:+.2f}."
    )


def _effect(c: _Candidate) -> str:
    weak = [e for e in c.evidence if isinstance(e, Weakness)]
    action = c.rule.then
    if not weak:
        return (
            f"Halves new positions of {c.rule.strategy} while it is on a losing streak, "
            "cutting the losses of the streaks' tails; sizes return to normal after a win."
        )
    n = sum(w.n for w in weak)
    pnl = sum(w.total_pnl for w in weak)
    if isinstance(action, ScalePosition):
        return (
            f"Halves the size of trades like the {n} analysed ones (their P&L "
            f"{pnl:+,.2f} would have been about {pnl * action.factor:+,.2f})."
        )
    return (
        f"Avoids trades like the {n} analysed ones (total P&L {pnl:+,.2f}); mean return per "
        f"trade should move towards the rest's {weak[0].rest_mean_return:+.2f}%."
    )


def _retirements(ruleset: RuleSet, counterfactuals: Sequence[Counterfactual]) -> list[Proposal]:
    found: dict[str, tuple[float, RetireRule]] = {}
    for cf in counterfactuals:
        for rule in ruleset.rules:
            value = cf.rule_value(rule.id)
            if value is None or value >= 0 or rule.id in found:
                continue
            with_rule, without = (
                (cf.candidate, cf.baseline)
                if any(r.id == rule.id for r in cf.candidate_ruleset.rules)
                else (cf.baseline, cf.candidate)
            )
            if with_rule.sharpe > without.sharpe:
                continue  # it costs P&L but buys risk-adjusted return: keep it
            affected = len(cf.removed) + len(cf.added) + len(cf.changed)
            found[rule.id] = (
                value,
                RetireRule(
                    rule_id=rule.id,
                    rationale=(
                        f"Counterfactual backtest over the same data: with rule {rule.name!r} "
                        f"({rule.id}) P&L was {with_rule.pnl:+,.2f}, without it "
                        f"{without.pnl:+,.2f} (it cost {-value:,.2f}); Sharpe "
                        f"{with_rule.sharpe:.2f} with it against {without.sharpe:.2f} without; "
                        f"max drawdown {with_rule.max_drawdown:.1%} against "
                        f"{without.max_drawdown:.1%}; {affected} trades differ."
                    ),
                    source=ProposalSource.HEURISTIC,
                    expected_effect=(
                        f"About {-value:,.2f} more P&L over the tested period, with a Sharpe "
                        f"ratio no lower."
                    ),
                ),
            )
    return [p for _, p in sorted(found.values(), key=lambda vp: (vp[0], vp[1].rule_id))]
