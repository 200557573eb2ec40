"""The constitution validator: ``validate(proposal, state, now) -> Verdict``.

Pure and total. It is handed everything it needs (the constitution, the active rule set, the
strategies' declared parameter bounds, which features the data source has, the persisted history
of deployments and rejections) and ``now``; it reads no clock, no file and no database. Any input,
however malformed (a dict missing fields, a JSON string, a number, a 10 MB blob), returns a
:class:`Verdict` listing every violation; it never raises.

Stable codes (scripts, tests and the history view match on them):

==================================  =============================================================
``PROPOSAL_MALFORMED``              the input is not a valid proposal (``field`` says where)
``PROPOSAL_UNKNOWN_KIND``           ``kind`` is missing or not one of the proposal kinds
``PROPOSAL_RATIONALE_SUSPICIOUS``   free text carries instructions aimed at the system
``PROPOSAL_NO_CHANGE``              the change would leave behaviour exactly as it is
``CONST_FORBIDDEN_MODIFICATION``    a change to max_drawdown, the constitution or its forbidden list
``CONST_IMMUTABLE``                 any other constitution change: only a person may amend it
``PARAM_UNKNOWN_STRATEGY``          tuning a strategy that is not running
``PARAM_UNKNOWN``                   a parameter the strategy does not declare
``PARAM_OUT_OF_BOUNDS``             outside the parameter's declared bounds (or not a number)
``PARAM_STEP_TOO_LARGE``            a bigger move than the maximum step per change
``RULE_ACTION_NOT_RISK_REDUCING``   an action that would raise size, remove a stop or lift a halt
``RULE_UNKNOWN_ID``                 modifying or retiring a rule that is not active
``RULE_UNKNOWN_STRATEGY``           a rule scoped to a strategy that is not running
``RULE_UNKNOWN_SYMBOL``             a condition on a symbol that is not traded
``RULE_FEATURE_UNAVAILABLE``        a condition on a feature the data source cannot provide
``RULE_LOOKAHEAD``                  a condition that reads a bar that has not happened yet
``RULE_SELF_LOCKING``               a skip that can never clear (it depends only on trading
                                    history or drawdown, which cannot change without trades)
``RULE_DUPLICATE``                  an exact duplicate of an active rule
``BUDGET_DAILY_CHANGES``            max_rule_changes_per_day deployed changes already today (UTC)
``BUDGET_ACTIVE_RULES``             the rule set would exceed max_active_rules
``BUDGET_PROPOSALS_PER_CYCLE``      more proposals in one cycle than max_proposals_per_cycle
``FAMILY_BLACKLISTED``              this idea was rejected blacklist_after_rejections times within
                                    blacklist_window_days
``VALIDATOR_INTERNAL_ERROR``        the validator itself failed: reject, never deploy blind
==================================  =============================================================
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from sovereign.constitution.model import Constitution
from sovereign.constitution.verdict import Verdict, Violation
from sovereign.rules.actions import ScalePosition, SetTakeProfit, SkipTrade, TightenStop
from sovereign.rules.conditions import All, Any_, Not, ReturnAbove, ReturnBelow, SymbolIn
from sovereign.rules.config import ParamSpec
from sovereign.rules.context import RuleFeature
from sovereign.rules.proposals import (
    PROPOSAL_KINDS,
    AddRule,
    ModifyConstitution,
    ModifyRule,
    Proposal,
    RetireRule,
    TuneParameter,
    parse_proposal,
)
from sovereign.rules.rule import Rule, RuleSet

ACTION_TYPES: tuple[str, ...] = (
    "skip_trade",
    "scale_position",
    "tighten_stop",
    "set_take_profit",
    "exit_position",
    "block_symbol",
)
# Features whose value only changes when the system trades: a skip on them alone never clears.
_TRADING_STATE: frozenset[RuleFeature] = frozenset(
    {RuleFeature.TRADE_HISTORY, RuleFeature.DRAWDOWN}
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ValidatorState:
    """What the validator checks a proposal against (all of it handed in, nothing read).

    ``strategies``: the running strategies' declared parameter bounds. ``params``: current
    effective values (defaults, operator settings and deployed overrides merged).
    ``features``: inputs the data source provides. ``deployments``: times of deployed changes
    (persisted history; rollbacks are not in it). ``rejections``: family -> rejection times.
    ``index_in_cycle``: how many proposals came before this one in the same cycle.
    ``symbols``: the traded universe (None = not checked).
    """

    constitution: Constitution
    ruleset: RuleSet = field(default_factory=RuleSet)
    strategies: Mapping[str, Mapping[str, ParamSpec]] = field(default_factory=dict)
    params: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    features: frozenset[RuleFeature] = frozenset(RuleFeature)
    deployments: tuple[datetime, ...] = ()
    rejections: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)
    index_in_cycle: int = 0
    symbols: frozenset[str] | None = None


def validate(proposal: object, state: ValidatorState, now: datetime) -> Verdict:
    """Every constitutional problem with ``proposal`` (a Proposal, a dict or JSON text)."""
    try:
        return _validate(proposal, state, now)
    except Exception as err:
        return Verdict(
            accepted=False,
            violations=(
                Violation(
                    code="VALIDATOR_INTERNAL_ERROR",
                    field="",
                    message=f"the validator failed ({type(err).__name__}); rejected to be safe",
                ),
            ),
        )


def _validate(raw: object, state: ValidatorState, now: datetime) -> Verdict:
    if not isinstance(state, ValidatorState) or not isinstance(now, datetime):
        raise TypeError("validate needs a ValidatorState and a datetime")
    try:
        proposal = parse_proposal(raw)
    except ValidationError as err:
        loose = _loads(raw)
        violations = list(_parse_violations(err, raw))
        violations += _constitution_attempt(loose, state.constitution)
        return Verdict(accepted=False, violations=tuple(_unique(violations)), kind=_kind_of(loose))
    except (TypeError, ValueError, UnicodeError, RecursionError) as err:
        return Verdict(
            accepted=False,
            violations=(
                Violation(
                    code="PROPOSAL_MALFORMED",
                    field="",
                    message=f"not a proposal: {type(err).__name__}",
                ),
            ),
        )
    violations = list(_check(proposal, state, now))
    return Verdict(
        accepted=not violations,
        violations=tuple(_unique(violations)),
        proposal_id=proposal.id,
        family=proposal.family,
        kind=proposal.kind,
    )


# ---- parse failures ------------------------------------------------------------------------


def _loads(raw: object) -> object:
    """JSON text as data (for classifying a failed parse), anything else as it is."""
    if isinstance(raw, str | bytes | bytearray):
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            return None
    return raw


def _kind_of(raw: object) -> str | None:
    kind = raw.get("kind") if isinstance(raw, Mapping) else None
    return kind if isinstance(kind, str) and kind in PROPOSAL_KINDS else None


def _parse_violations(err: ValidationError, raw: object) -> Iterator[Violation]:
    for e in err.errors(include_url=False, include_input=False):
        loc = [str(p) for p in e["loc"]]
        if not loc and e["type"] in ("union_tag_not_found", "union_tag_invalid"):
            yield Violation(
                code="PROPOSAL_UNKNOWN_KIND",
                field="kind",
                message="kind must be one of " + ", ".join(PROPOSAL_KINDS),
            )
            continue
        path = loc[1:] if loc and loc[0] in PROPOSAL_KINDS else loc
        if "then" in path:
            yield _action_violation(path, e)
            continue
        yield Violation(
            code="PROPOSAL_MALFORMED",
            field=".".join(path),
            message=f"{'.'.join(path) or 'proposal'}: {e['msg']}",
        )


def _action_violation(path: list[str], e: Mapping[str, Any]) -> Violation:
    at = path.index("then")
    where = ".".join(path[: at + 1])
    if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
        ctx = e.get("ctx") or {}
        tag = ctx.get("tag", "?")
        return Violation(
            code="RULE_ACTION_NOT_RISK_REDUCING",
            field=where,
            message=(
                f"action {tag!r} is not allowed: a rule may only reduce risk "
                f"({', '.join(ACTION_TYPES)}); nothing can raise size, remove a stop or lift a halt"
            ),
        )
    detail = ".".join(path[at + 2 :]) or path[-1]
    return Violation(
        code="RULE_ACTION_NOT_RISK_REDUCING",
        field=".".join(path),
        message=(
            f"{where} {detail}: {e['msg']} — actions may only keep or reduce risk "
            "(scale factors in (0, 1], stops only tighter)"
        ),
    )


def _constitution_attempt(raw: object, constitution: Constitution) -> list[Violation]:
    """A malformed ``modify_constitution`` is still an attempt on the constitution: say so."""
    if not isinstance(raw, Mapping) or raw.get("kind") != "modify_constitution":
        return []
    target = raw.get("field")
    if not isinstance(target, str):
        return []
    return [_constitution_violation(target, constitution)]


def _constitution_violation(target: str, constitution: Constitution) -> Violation:
    if constitution.is_forbidden(target) or target.strip().lower() in _FORBIDDEN_ALIASES:
        return Violation(
            code="CONST_FORBIDDEN_MODIFICATION",
            field="field",
            message=(
                f"{target!r} can never be changed by a proposal, whatever its source "
                f"(forbidden: {', '.join(constitution.forbidden_modifications)})"
            ),
        )
    known = target in Constitution.model_fields
    return Violation(
        code="CONST_IMMUTABLE",
        field="field",
        message=(
            (f"{target!r} is a constitutional limit" if known else f"{target!r} is not a limit")
            + ": the constitution is immutable at run time; only a person can amend its file "
            "(`sovereign constitution amend --by NAME --note WHY`)"
        ),
    )


_FORBIDDEN_ALIASES = frozenset(
    {"max_drawdown", "constitution", "forbidden_modifications", "drawdown", "kill_switch", "halt"}
)


# ---- checks on a parsed proposal -----------------------------------------------------------


def _check(p: Proposal, state: ValidatorState, now: datetime) -> Iterator[Violation]:
    c = state.constitution
    yield from _suspicious_text(p)
    if state.index_in_cycle >= c.max_proposals_per_cycle:
        yield Violation(
            code="BUDGET_PROPOSALS_PER_CYCLE",
            field="",
            message=(
                f"proposal #{state.index_in_cycle + 1} of this cycle; at most "
                f"{c.max_proposals_per_cycle} proposals per cycle are considered"
            ),
        )
    yield from _blacklist(p, state, now)
    if isinstance(p, ModifyConstitution):
        yield _constitution_violation(p.field, c)
        return
    yield from _daily_budget(state, now)
    if isinstance(p, AddRule):
        yield from _add_checks(p, state)
    elif isinstance(p, ModifyRule):
        yield from _modify_checks(p, state)
    elif isinstance(p, RetireRule):
        if state.ruleset.get(p.rule_id) is None:
            yield _unknown_rule(p.rule_id, state.ruleset)
    elif isinstance(p, TuneParameter):
        yield from _param_checks(p, state)


def _add_checks(p: AddRule, state: ValidatorState) -> Iterator[Violation]:
    limit = state.constitution.max_active_rules
    yield from _rule_checks(p.rule, state)
    if state.ruleset.get(p.rule.id) is not None:
        yield _duplicate(p.rule)
    if len(state.ruleset) + 1 > limit:
        yield Violation(
            code="BUDGET_ACTIVE_RULES",
            field="rule",
            message=(
                f"{len(state.ruleset)} rules are active; adding one would exceed "
                f"max_active_rules = {limit} (retire one first)"
            ),
        )


def _modify_checks(p: ModifyRule, state: ValidatorState) -> Iterator[Violation]:
    old = state.ruleset.get(p.rule_id)
    if old is None:
        yield _unknown_rule(p.rule_id, state.ruleset)
    yield from _rule_checks(p.rule, state)
    if old is not None and old.id == p.rule.id:
        yield Violation(
            code="PROPOSAL_NO_CHANGE", field="rule", message="the new rule equals the old one"
        )
    elif state.ruleset.get(p.rule.id) is not None:
        yield _duplicate(p.rule)


def _duplicate(rule: Rule) -> Violation:
    return Violation(
        code="RULE_DUPLICATE",
        field="rule",
        message=f"rule {rule.id} ({rule.name!r}) is already active",
    )


def _unknown_rule(rule_id: str, ruleset: RuleSet) -> Violation:
    active = ", ".join(r.id for r in ruleset.rules[:10]) or "none"
    return Violation(
        code="RULE_UNKNOWN_ID",
        field="rule_id",
        message=f"rule {rule_id} is not in the active rule set (active: {active})",
    )


def _daily_budget(state: ValidatorState, now: datetime) -> Iterator[Violation]:
    c = state.constitution
    day = _utc_date(now)
    today = [t for t in state.deployments if _utc_date(t) == day]
    if len(today) >= c.max_rule_changes_per_day:
        yield Violation(
            code="BUDGET_DAILY_CHANGES",
            field="",
            message=(
                f"{len(today)} changes were already deployed on {day.isoformat()} (UTC); the "
                f"constitution allows {c.max_rule_changes_per_day} per day"
            ),
        )


def _utc_date(t: datetime) -> date:
    return (t if t.tzinfo is None else t.astimezone(UTC)).date()


def _blacklist(p: Proposal, state: ValidatorState, now: datetime) -> Iterator[Violation]:
    c = state.constitution
    since = now - timedelta(days=c.blacklist_window_days)
    times = [t for t in state.rejections.get(p.family, ()) if since <= t <= now]
    if len(times) >= c.blacklist_after_rejections:
        yield Violation(
            code="FAMILY_BLACKLISTED",
            field="",
            message=(
                f"this idea (family {p.family}) was rejected {len(times)} times in the last "
                f"{c.blacklist_window_days} days; it is blacklisted until "
                f"{(min(times) + timedelta(days=c.blacklist_window_days)).date().isoformat()}"
            ),
        )


def _param_checks(p: TuneParameter, state: ValidatorState) -> Iterator[Violation]:
    specs = state.strategies.get(p.strategy)
    if specs is None:
        known = ", ".join(sorted(state.strategies)) or "none"
        yield Violation(
            code="PARAM_UNKNOWN_STRATEGY",
            field="strategy",
            message=f"strategy {p.strategy!r} is not running (running: {known})",
        )
        return
    spec = specs.get(p.parameter)
    if spec is None:
        yield Violation(
            code="PARAM_UNKNOWN",
            field="parameter",
            message=(
                f"{p.strategy} has no parameter {p.parameter!r} "
                f"(parameters: {', '.join(sorted(specs))})"
            ),
        )
        return
    problem = spec.check(p.parameter, p.value) if math.isfinite(p.value) else "not finite"
    if problem:
        yield Violation(code="PARAM_OUT_OF_BOUNDS", field="value", message=problem)
        return
    current = state.params.get(p.strategy, {}).get(p.parameter, spec.default)
    step = min(spec.max_step, state.constitution.max_param_step) * (spec.high - spec.low)
    if p.value == current:
        yield Violation(
            code="PROPOSAL_NO_CHANGE",
            field="value",
            message=f"{p.strategy}.{p.parameter} is already {current:g}",
        )
    elif abs(p.value - current) > step + 1e-12:
        yield Violation(
            code="PARAM_STEP_TOO_LARGE",
            field="value",
            message=(
                f"{p.strategy}.{p.parameter}: {current:g} -> {p.value:g} moves "
                f"{abs(p.value - current):g}; at most {step:g} per change"
            ),
        )


def _rule_checks(rule: Rule, state: ValidatorState) -> Iterator[Violation]:
    if rule.strategy is not None and rule.strategy not in state.strategies:
        known = ", ".join(sorted(state.strategies)) or "none"
        yield Violation(
            code="RULE_UNKNOWN_STRATEGY",
            field="rule.strategy",
            message=f"rule targets strategy {rule.strategy!r}, which is not running ({known})",
        )
    missing = rule.features() - state.features
    if missing:
        yield Violation(
            code="RULE_FEATURE_UNAVAILABLE",
            field="rule.when",
            message=(
                "the data source cannot provide "
                + ", ".join(sorted(f.value for f in missing))
                + "; a condition on it would never be evaluated honestly"
            ),
        )
    conditions = list(_walk(rule.when))
    if any(isinstance(c, ReturnAbove | ReturnBelow) and c.lag < 0 for c in conditions):
        yield Violation(
            code="RULE_LOOKAHEAD",
            field="rule.when",
            message="a negative lag reads a bar that has not happened yet (look-ahead)",
        )
    if state.symbols is not None:
        unknown = {s for c in conditions if isinstance(c, SymbolIn) for s in c.symbols}
        unknown -= state.symbols
        if unknown:
            yield Violation(
                code="RULE_UNKNOWN_SYMBOL",
                field="rule.when",
                message="symbols not in the traded universe: " + ", ".join(sorted(unknown)),
            )
    yield from _action_checks(rule)
    if isinstance(rule.then, SkipTrade) and rule.features() and rule.features() <= _TRADING_STATE:
        yield Violation(
            code="RULE_SELF_LOCKING",
            field="rule",
            message=(
                "a skip that depends only on losing streaks or drawdown never clears: both "
                "change only by trading. Scale positions down instead."
            ),
        )


def _action_checks(rule: Rule) -> Iterator[Violation]:
    """Defence in depth: the types already forbid these values; check them again anyway."""
    a = rule.then
    bad = (
        (isinstance(a, ScalePosition) and not 0 < a.factor <= 1)
        or (isinstance(a, TightenStop | SetTakeProfit) and not a.atr_mult > 0)
        or (isinstance(a, TightenStop | SetTakeProfit) and not math.isfinite(a.atr_mult))
    )
    if bad:
        yield Violation(
            code="RULE_ACTION_NOT_RISK_REDUCING",
            field="rule.then",
            message="actions may only keep or reduce risk",
        )


def _walk(cond: object) -> Iterator[object]:
    yield cond
    if isinstance(cond, All):
        for c in cond.all:
            yield from _walk(c)
    elif isinstance(cond, Any_):
        for c in cond.any:
            yield from _walk(c)
    elif isinstance(cond, Not):
        yield from _walk(cond.cond)


# ---- untrusted text ------------------------------------------------------------------------

_SUSPICIOUS = re.compile(
    "|".join(
        (
            r"\bignore\b.{0,30}\b(instruction|rule|limit|constitution|prompt)s?\b",
            r"\bdisregard\b.{0,40}\b(instruction|rule|limit|constitution|validator|gate)s?\b",
            r"\b(bypass|override|skip|disable|turn off|circumvent)\b.{0,20}"
            r"\b(validator|validation|gate|constitution|limits?|checks?|kill switch|halt)\b",
            r"\b(pre-?approved|auto-?approve|already approved|approve (this|it|me))\b",
            r"(^|\s)(system|assistant|developer)\s*:",
            r"</?\s*(system|instructions?|admin)\s*>",
            r"\byou (are|must) now\b",
            r"\b(jailbreak|developer mode|do anything now)\b",
            r"\bnew instructions?\b",
        )
    ),
    re.IGNORECASE,
)


def _suspicious_text(p: Proposal) -> Iterator[Violation]:
    texts: list[tuple[str, str]] = [("rationale", p.rationale)]
    if p.expected_effect:
        texts.append(("expected_effect", p.expected_effect))
    rule = getattr(p, "rule", None)
    if isinstance(rule, Rule) and isinstance(rule.then, SkipTrade):
        texts.append(("rule.then.reason", rule.then.reason))
    for where, text in texts:
        normal = " ".join(unicodedata.normalize("NFKC", text).split())
        if _SUSPICIOUS.search(normal):
            yield Violation(
                code="PROPOSAL_RATIONALE_SUSPICIOUS",
                field=where,
                message=(
                    f"{where} contains instructions aimed at the system; free text is data, "
                    "never instructions, and such proposals are rejected"
                ),
            )


def _unique(violations: list[Violation]) -> Iterator[Violation]:
    seen: set[tuple[str, str]] = set()
    for v in violations:
        key = (v.code, v.field)
        if key not in seen:
            seen.add(key)
            yield v


__all__ = ["ACTION_TYPES", "ValidatorState", "validate"]
