"""The improvement cycle as a LangGraph graph.

::

    collect -> analyse -> propose -(Send, one per proposal)-> review -> notify
                                  \\-(no proposals)----------------------^
    review (a subgraph, one run per proposal):
        START -> validate -> gate -> deploy -> END
                    |         |        |
                    +---------+--------+--> reject -> END      (and START -> reject for input
                                                               rejected at "propose")

Each proposal gets its own ``review`` branch, checkpointed under its own namespace, and the
branches join at ``notify``. Branches run one at a time, in proposal order
(``max_concurrency=1``): each proposal is validated against the state its predecessors left
(a change budget spent by an earlier deployment in the same cycle counts), and deployments,
rejections and their audit entries happen in the same order on every run.

Crash safety: the graph is run with ``durability="sync"``, so every step is in the checkpoint
before the next starts. A resumed cycle re-runs only unfinished steps, from their start; that is
why ``deploy`` and ``reject`` must be idempotent (see :mod:`sovereign.graph.services`).
``notify`` is at-least-once: a crash between it and its checkpoint announces twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send
from pydantic import ValidationError

from sovereign.graph.llm import LLMProposer, Unparseable
from sovereign.graph.services import (
    AUTODEPLOY_FROZEN,
    DEFAULT_MAX_TOOL_ROUNDS,
    DEPLOY_REFUSED,
    GATE_REJECTED,
    LLM_UNAVAILABLE,
    LLM_UNPARSEABLE,
    MAX_PROPOSALS_PER_BATCH,
    NOTIFY_FAILED,
    PROPOSAL_DUPLICATE,
    VERDICT_REJECTED,
    CycleContext,
    CycleServices,
)
from sovereign.graph.state import CycleResult, CycleState, ReviewOutput, ReviewState
from sovereign.rules.proposals import Proposal, parse_proposal

log = logging.getLogger(__name__)

REVIEW = "review"
_DERIVED_KEYS = ("id", "family")  # added by Proposal.to_json(), not fields

CycleGraph = CompiledStateGraph[CycleState, CycleContext, CycleState, CycleState]


# --- collect, analyse, propose ----------------------------------------------------------------


def collect(state: CycleState, runtime: Runtime[CycleContext]) -> dict[str, Any]:
    now = datetime.fromisoformat(state["now"])
    return {"snapshot": runtime.context.services.collect(state["cycle_id"], now)}


def analyse(state: CycleState, runtime: Runtime[CycleContext]) -> dict[str, Any]:
    return {"analysis": runtime.context.services.analyse(state["snapshot"])}


def propose(state: CycleState, runtime: Runtime[CycleContext]) -> dict[str, Any]:
    """The LLM proposer when a model is configured, else the heuristic one. An unreachable LLM
    is recorded (an ``LLM_UNAVAILABLE`` item, rejected at "propose") and the heuristic proposer
    runs instead; the fallback is stated in ``proposer`` and ``notes``."""
    ctx = runtime.context
    analysis = state["analysis"]
    items: list[dict[str, Any]] = []
    notes: list[str] = []
    proposer: dict[str, Any] = {"source": "heuristic"}
    if ctx.llm is not None:
        items, proposer, notes = _llm_proposals(ctx, ctx.llm, analysis)
    if proposer["source"] == "heuristic":
        raws = ctx.services.heuristic_proposals(analysis, MAX_PROPOSALS_PER_BATCH)
        items += [_json_item(raw, n) for n, raw in enumerate(raws[:MAX_PROPOSALS_PER_BATCH])]
    _mark_duplicates(items)
    return {"proposer": proposer, "proposals": items, "notes": notes}


def _llm_proposals(
    ctx: CycleContext, llm: BaseChatModel, analysis: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """Items, proposer description and notes from the LLM; ``proposer["source"]`` becomes
    "heuristic" (with ``fallback_from``) when the endpoint failed."""
    proposer_ = LLMProposer(llm, ctx.tools, max_tool_rounds=ctx.max_tool_rounds)
    out = proposer_.propose(analysis, ctx.services.context_for_llm(analysis))
    proposer: dict[str, Any] = {
        "source": "llm",
        "model": _model_name(llm),
        "tool_rounds": out.rounds,
        "tool_calls": list(out.tool_calls),
    }
    if out.unavailable is None:
        return [_llm_item(entry, n) for n, entry in enumerate(out.entries)], proposer, []
    proposer |= {"source": "heuristic", "fallback_from": "llm", "llm_error": out.unavailable}
    failure = {
        "key": "llm",
        "index": None,
        "raw": {"llm_error": out.unavailable},
        "error": _reason(LLM_UNAVAILABLE, out.unavailable),
    }
    return (
        [failure],
        proposer,
        [f"LLM unavailable ({out.unavailable}); used the heuristic proposer"],
    )


def fan_out(state: CycleState) -> list[Send] | Literal["notify"]:
    """One ``review`` branch per proposal item, or straight to notify when there are none."""
    items = state.get("proposals") or []
    if not items:
        return "notify"
    return [Send(REVIEW, {"cycle_id": state["cycle_id"], "item": item}) for item in items]


# --- one proposal's review --------------------------------------------------------------------


def validate(state: ReviewState, runtime: Runtime[CycleContext]) -> dict[str, Any]:
    item = state["item"]
    verdict = runtime.context.services.validate(_subject(item), item["index"], state["cycle_id"])
    update: dict[str, Any] = {"verdict": verdict}
    if verdict.get("accepted") is not True:
        reasons = _reasons(verdict.get("violations"), default_code=VERDICT_REJECTED)
        update |= {
            "stage": "validate",
            "reasons": reasons or [_reason(VERDICT_REJECTED, "the validator did not accept it")],
        }
    elif "proposal" not in item:  # fail closed: nothing unparsed goes further
        update |= {
            "stage": "validate",
            "reasons": [_reason(VERDICT_REJECTED, "accepted, but it is not a valid proposal")],
        }
    return update


def gate(state: ReviewState, runtime: Runtime[CycleContext]) -> dict[str, Any]:
    report = runtime.context.services.gate(state["item"]["proposal"], state["cycle_id"])
    update: dict[str, Any] = {"gate": report}
    if report.get("accepted") is not True:
        reasons = _reasons(report.get("reasons"), default_code=GATE_REJECTED)
        default = [_reason(GATE_REJECTED, "the backtest gate did not accept it")]
        update |= {"stage": "gate", "reasons": reasons or default}
    return update


def deploy(state: ReviewState, runtime: Runtime[CycleContext]) -> dict[str, Any]:
    """Deploy unless automatic deployment is frozen or ``deploy`` declines; relies on
    ``services.deploy`` being idempotent by proposal id (a resumed branch calls it again)."""
    services = runtime.context.services
    frozen = services.autodeploy_frozen()
    if frozen:
        message = f"automatic deployment is frozen: {frozen}"
        return {"stage": "deploy", "reasons": [_reason(AUTODEPLOY_FROZEN, message)]}
    record = services.deploy(state["item"]["proposal"], state.get("gate") or {}, state["cycle_id"])
    if record.get("deployed") is False:
        reasons = _reasons(record.get("reasons"), default_code=DEPLOY_REFUSED)
        return {
            "deployment": record,
            "stage": "deploy",
            "reasons": reasons or [_reason(DEPLOY_REFUSED, "deploy declined")],
        }
    outcome = _outcome(state, status="deployed", stage="deploy", record=record, reasons=[])
    return {"deployment": record, "outcomes": {outcome["key"]: outcome}}


def reject(state: ReviewState, runtime: Runtime[CycleContext]) -> dict[str, Any]:
    """Record the rejection through ``services.reject`` (idempotent)."""
    item = state["item"]
    stage = state.get("stage") or "propose"
    reasons = state.get("reasons") or ([item["error"]] if item.get("error") else [])
    record = runtime.context.services.reject(
        _subject(item), stage, reasons, state.get("gate"), state["cycle_id"]
    )
    outcome = _outcome(state, status="rejected", stage=stage, record=record, reasons=reasons)
    return {"outcomes": {outcome["key"]: outcome}}


def _entry(state: ReviewState) -> Literal["validate", "reject"]:
    return "reject" if state["item"].get("error") else "validate"


def _after_validate(state: ReviewState) -> Literal["gate", "reject"]:
    return "reject" if state.get("stage") else "gate"


def _after_gate(state: ReviewState) -> Literal["deploy", "reject"]:
    return "reject" if state.get("stage") else "deploy"


def _after_deploy(state: ReviewState) -> Literal["reject", "__end__"]:
    return "reject" if state.get("stage") else "__end__"


# --- notify -----------------------------------------------------------------------------------


def notify(state: CycleState, runtime: Runtime[CycleContext]) -> dict[str, Any]:
    """Announce the summary. A failing ``notify`` is logged and kept in ``errors``."""
    summary = cycle_summary(state)
    errors: list[dict[str, Any]] = []
    try:
        runtime.context.services.notify(summary)
    except Exception as err:  # the cycle's decisions stand whether or not the message went out
        log.exception("notify failed for cycle %s", state["cycle_id"])
        errors.append(_reason(NOTIFY_FAILED, f"{type(err).__name__}: {err}"))
    return {"summary": summary, "errors": errors}


def cycle_summary(state: CycleState) -> dict[str, Any]:
    """The JSON announced at the end of a cycle."""
    outcomes = sorted(
        (state.get("outcomes") or {}).values(),
        key=lambda o: (-1 if o.get("index") is None else o["index"], o["key"]),
    )
    proposer = state.get("proposer") or {}
    return {
        "cycle_id": state["cycle_id"],
        "now": state["now"],
        "proposer": proposer.get("source"),
        "fallback_from": proposer.get("fallback_from"),
        "proposals": sum(1 for p in state.get("proposals") or () if p["index"] is not None),
        "deployed": [
            {"proposal_id": o.get("proposal_id"), "summary": o.get("summary")}
            for o in outcomes
            if o["status"] == "deployed"
        ],
        "rejected": [
            {
                "proposal_id": o.get("proposal_id"),
                "summary": o.get("summary"),
                "stage": o["stage"],
                "codes": [r.get("code") for r in o.get("reasons") or ()],
            }
            for o in outcomes
            if o["status"] == "rejected"
        ],
        "notes": list(state.get("notes") or ()),
    }


# --- building and running ---------------------------------------------------------------------


def build_review_graph() -> CompiledStateGraph[
    ReviewState, CycleContext, ReviewState, ReviewOutput
]:
    """One proposal's path: validate -> gate -> deploy, any refusal -> reject."""
    builder = StateGraph(ReviewState, context_schema=CycleContext, output_schema=ReviewOutput)
    builder.add_node("validate", validate)
    builder.add_node("gate", gate)
    builder.add_node("deploy", deploy)
    builder.add_node("reject", reject)
    builder.add_conditional_edges(START, _entry, ["validate", "reject"])
    builder.add_conditional_edges("validate", _after_validate, ["gate", "reject"])
    builder.add_conditional_edges("gate", _after_gate, ["deploy", "reject"])
    builder.add_conditional_edges("deploy", _after_deploy, ["reject", END])
    builder.add_edge("reject", END)
    return builder.compile(name=REVIEW)


def build_cycle_graph(checkpointer: BaseCheckpointSaver[Any] | None = None) -> CycleGraph:
    """The compiled improvement cycle (``thread_id`` = cycle id). Draw it with
    ``get_graph(xray=True).draw_mermaid()`` to see the review branch's steps."""
    builder = StateGraph(CycleState, context_schema=CycleContext)
    builder.add_node("collect", collect)
    builder.add_node("analyse", analyse)
    builder.add_node("propose", propose)
    builder.add_node(REVIEW, build_review_graph())
    builder.add_node("notify", notify)
    builder.add_edge(START, "collect")
    builder.add_edge("collect", "analyse")
    builder.add_edge("analyse", "propose")
    builder.add_conditional_edges("propose", fan_out, [REVIEW, "notify"])
    builder.add_edge(REVIEW, "notify")
    builder.add_edge("notify", END)
    return builder.compile(checkpointer=checkpointer, name="improvement_cycle")


def run_cycle(
    services: CycleServices,
    *,
    cycle_id: str,
    now: datetime,
    checkpointer: BaseCheckpointSaver[Any] | None,
    llm: BaseChatModel | None = None,
    tools: Sequence[BaseTool] = (),
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
) -> CycleResult:
    """Run improvement cycle ``cycle_id``, resume it, or read it back.

    With a checkpointer that already holds ``cycle_id``: an unfinished cycle is resumed where it
    stopped (with its original ``now``; the ``now`` given here is ignored) and a finished one is
    returned as stored, without calling any service. Without a checkpointer the cycle simply
    runs. An exception from a service propagates; the checkpoint keeps the finished steps.
    """
    if now.utcoffset() is None:
        raise ValueError(f"naive datetime {now.isoformat()} refused: use timezone-aware UTC")
    graph = build_cycle_graph(checkpointer)
    config: RunnableConfig = {"configurable": {"thread_id": cycle_id}, "max_concurrency": 1}
    context = CycleContext(
        services=services, llm=llm, tools=tuple(tools), max_tool_rounds=max_tool_rounds
    )
    start: Literal["fresh", "resumed"] = "fresh"
    cycle_input: CycleState | None = {"cycle_id": cycle_id, "now": now.isoformat()}
    if checkpointer is not None:
        existing = graph.get_state(config)
        if existing.created_at is not None:
            if not existing.next:
                return CycleResult.from_state(dict(existing.values), start="finished")
            start, cycle_input = "resumed", None
            log.info("resuming improvement cycle %s at %s", cycle_id, ", ".join(existing.next))
    durability: Literal["sync"] | None = None if checkpointer is None else "sync"
    values = graph.invoke(cycle_input, config, context=context, durability=durability)
    return CycleResult.from_state(dict(values), start=start)


# --- helpers ----------------------------------------------------------------------------------


def _proposal_item(proposal: Proposal, index: int) -> dict[str, Any]:
    return {
        "key": str(index),
        "index": index,
        "proposal": proposal.model_dump(mode="json"),
        "proposal_id": proposal.id,
        "kind": proposal.kind,
        "summary": proposal.summary(),
        "source": proposal.source.value,
    }


def _llm_item(entry: Proposal | Unparseable, index: int) -> dict[str, Any]:
    if isinstance(entry, Unparseable):
        return {
            "key": str(index),
            "index": index,
            "raw": entry.raw,
            "error": _reason(LLM_UNPARSEABLE, entry.error),
        }
    return _proposal_item(entry, index)


def _json_item(raw: Any, index: int) -> dict[str, Any]:
    """A heuristic proposal; one that does not parse goes to the validator as raw input."""
    data = (
        {k: v for k, v in raw.items() if k not in _DERIVED_KEYS} if isinstance(raw, dict) else raw
    )
    try:
        return _proposal_item(parse_proposal(data), index)
    except (ValidationError, ValueError, TypeError):
        return {"key": str(index), "index": index, "raw": raw, "error": None}


def _mark_duplicates(items: list[dict[str, Any]]) -> None:
    first: dict[str, str] = {}
    for item in items:
        pid = item.get("proposal_id")
        if pid is None:
            continue
        if pid in first:
            message = f"the same proposal as item {first[pid]} of this cycle"
            item["error"] = _reason(PROPOSAL_DUPLICATE, message)
        else:
            first[pid] = item["key"]


def _subject(item: dict[str, Any]) -> Any:
    return item["proposal"] if "proposal" in item else item.get("raw")


def _outcome(
    state: ReviewState,
    *,
    status: Literal["deployed", "rejected"],
    stage: str,
    record: dict[str, Any],
    reasons: list[dict[str, Any]],
) -> dict[str, Any]:
    item = state["item"]
    verdict = state.get("verdict")
    return {
        "key": item["key"],
        "index": item.get("index"),
        "status": status,
        "stage": stage,
        "proposal_id": item.get("proposal_id") or (verdict or {}).get("proposal_id"),
        "kind": item.get("kind") or (verdict or {}).get("kind"),
        "source": item.get("source"),
        "summary": item.get("summary") or _raw_summary(item),
        "reasons": reasons,
        "verdict": verdict,
        "gate": state.get("gate"),
        "record": record,
    }


def _raw_summary(item: dict[str, Any]) -> str:
    if item.get("index") is None:
        return "the LLM proposer could not be reached"
    return "input that is not a valid proposal"


def _reason(code: str, message: str, field: str = "") -> dict[str, Any]:
    return {"code": code, "field": field, "message": message}


def _reasons(raw: Any, *, default_code: str) -> list[dict[str, Any]]:
    """Reasons as ``{"code", "field", "message"}``: dicts with a code pass through (extra keys
    kept); anything else becomes a message under ``default_code``."""
    out: list[dict[str, Any]] = []
    for reason in raw or ():
        if isinstance(reason, dict) and reason.get("code"):
            out.append({"field": "", "message": "", **reason})
        else:
            text = reason if isinstance(reason, str) else json.dumps(reason, default=str)
            out.append(_reason(default_code, text))
    return out


def _model_name(llm: BaseChatModel) -> str:
    name = getattr(llm, "model_name", None) or getattr(llm, "model", None)
    return str(name) if name else type(llm).__name__


__all__ = [
    "REVIEW",
    "CycleGraph",
    "build_cycle_graph",
    "build_review_graph",
    "cycle_summary",
    "run_cycle",
]
