"""Proposals: the only way anything (an LLM, the heuristic proposer, chat, a person) asks to change
Sovereign's behaviour.

A proposal is a pydantic discriminated union on ``kind``. It says *what* to change, never how to
deploy it: the constitution validator and the backtest gate decide. ``family`` fingerprints the
idea behind a proposal while ignoring its numbers, so "the same broken rule with other
thresholds" counts against the same family when the validator blacklists repeat offenders.

``modify_constitution`` exists so that such attempts parse, are recorded, and are rejected with a
clear code; the constitution changes only through ``sovereign constitution amend`` by a person.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, JsonValue, TypeAdapter

from sovereign.rules.hashing import ContentAddressed, content_hash
from sovereign.rules.rule import Rule, RuleSet

RuleId = Annotated[str, Field(min_length=3, max_length=40, pattern=r"^r-[0-9a-f]+$")]
Identifier = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[A-Za-z_][\w.]*$")]


class ProposalSource(StrEnum):
    LLM = "llm"
    HEURISTIC = "heuristic"
    CHAT = "chat"
    HUMAN = "human"


class _Proposal(ContentAddressed):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rationale: Annotated[str, Field(min_length=1, max_length=4000)]
    source: ProposalSource
    expected_effect: Annotated[str, Field(max_length=1000)] | None = None

    @cached_property
    def id(self) -> str:
        """Content hash of everything the proposal says (rationale and source included)."""
        return content_hash(self.model_dump(mode="json"), prefix="p-")

    @property
    def family(self) -> str:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def summary(self) -> str:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The proposal as JSON plus its derived ``id`` and ``family``."""
        return {**self.model_dump(mode="json"), "id": self.id, "family": self.family}


class AddRule(_Proposal):
    kind: Literal["add_rule"] = "add_rule"
    rule: Rule

    @property
    def family(self) -> str:
        return self.rule.family()

    def summary(self) -> str:
        return f"add rule {self.rule.name!r} ({self.rule.id})"


class ModifyRule(_Proposal):
    kind: Literal["modify_rule"] = "modify_rule"
    rule_id: RuleId
    rule: Rule

    @property
    def family(self) -> str:
        return self.rule.family()

    def summary(self) -> str:
        return f"replace rule {self.rule_id} with {self.rule.name!r} ({self.rule.id})"


class RetireRule(_Proposal):
    kind: Literal["retire_rule"] = "retire_rule"
    rule_id: RuleId

    @property
    def family(self) -> str:
        return content_hash({"kind": self.kind, "rule_id": self.rule_id}, prefix="f-")

    def summary(self) -> str:
        return f"retire rule {self.rule_id}"


class TuneParameter(_Proposal):
    kind: Literal["tune_parameter"] = "tune_parameter"
    strategy: Identifier
    parameter: Identifier
    value: float

    @property
    def family(self) -> str:
        return content_hash(
            {"kind": self.kind, "strategy": self.strategy, "parameter": self.parameter},
            prefix="f-",
        )

    def summary(self) -> str:
        return f"set {self.strategy}.{self.parameter} = {self.value:g}"


class ModifyConstitution(_Proposal):
    kind: Literal["modify_constitution"] = "modify_constitution"
    field: Annotated[str, Field(min_length=1, max_length=80)]
    value: JsonValue = None

    @property
    def family(self) -> str:
        return content_hash({"kind": self.kind, "field": self.field}, prefix="f-")

    def summary(self) -> str:
        return f"change constitution {self.field} to {self.value!r}"


Proposal = Annotated[
    AddRule | ModifyRule | RetireRule | TuneParameter | ModifyConstitution,
    Field(discriminator="kind"),
]
PROPOSAL_KINDS: tuple[str, ...] = (
    "add_rule",
    "modify_rule",
    "retire_rule",
    "tune_parameter",
    "modify_constitution",
)
_ADAPTER: TypeAdapter[Proposal] = TypeAdapter(Proposal)  # type: ignore[arg-type]


def parse_proposal(raw: object) -> Proposal:
    """A Proposal from a dict, a model or a JSON string; raises pydantic's ValidationError."""
    if isinstance(raw, _Proposal):
        return raw  # type: ignore[return-value]
    if isinstance(raw, str | bytes | bytearray):
        return _ADAPTER.validate_json(raw)
    return _ADAPTER.validate_python(raw)


def proposal_schema() -> dict[str, Any]:
    """JSON schema of a proposal (what an LLM is asked to produce)."""
    return _ADAPTER.json_schema()


def apply_proposal(proposal: Proposal, ruleset: RuleSet) -> RuleSet:
    """The rule set that deploying ``proposal`` on ``ruleset`` would produce.

    Pure. Raises ValueError for a rule id that is not in ``ruleset`` and for a constitution
    change (which no deployment can make). Run the validator first: this only applies.
    """
    if isinstance(proposal, AddRule):
        return ruleset.with_rules((*ruleset.rules, proposal.rule))
    if isinstance(proposal, ModifyRule | RetireRule):
        if ruleset.get(proposal.rule_id) is None:
            raise ValueError(f"rule {proposal.rule_id} is not in the active rule set")
        if isinstance(proposal, RetireRule):
            return ruleset.with_rules(r for r in ruleset.rules if r.id != proposal.rule_id)
        return ruleset.with_rules(
            proposal.rule if r.id == proposal.rule_id else r for r in ruleset.rules
        )
    if isinstance(proposal, TuneParameter):
        return ruleset.with_param(proposal.strategy, proposal.parameter, proposal.value)
    raise ValueError("a constitution change cannot be applied to a rule set")


__all__ = [
    "PROPOSAL_KINDS",
    "AddRule",
    "ModifyConstitution",
    "ModifyRule",
    "Proposal",
    "ProposalSource",
    "RetireRule",
    "TuneParameter",
    "apply_proposal",
    "parse_proposal",
    "proposal_schema",
]
