"""The LLM side of the improvement cycle: the chat model factory and the LLM proposer.

The model is any OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, llama.cpp) through
langchain-openai's ``ChatOpenAI`` on the Chat Completions API. The proposer lets the model call
read-only tools for a bounded number of rounds, then asks for one ``ProposalBatch`` tool call
(``with_structured_output(method="function_calling", include_raw=True)``, which local servers
support) and parses every proposal in it separately: one malformed proposal does not sink the
others, and whatever does not parse is returned with its raw text and the parse error. Endpoint
failures (connection refused, 5xx, timeout) are returned, not raised.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from sovereign.errors import ConfigError
from sovereign.graph.prompts import fence, final_instruction, system_prompt, user_prompt
from sovereign.graph.services import DEFAULT_MAX_TOOL_ROUNDS, MAX_PROPOSALS_PER_BATCH
from sovereign.rules.proposals import Proposal, ProposalSource, parse_proposal

if TYPE_CHECKING:
    from sovereign.settings import LlmSettings

log = logging.getLogger(__name__)

BATCH_TOOL = "ProposalBatch"
MAX_RAW_CHARS = 20_000
"""Longest raw model text kept with an unparseable answer."""
DEFAULT_MAX_RETRIES = 2
_LOCAL_PLACEHOLDER_KEY = "unused"  # local servers (Ollama, llama.cpp) ignore the key


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """Failures of the endpoint itself, reported as LLM_UNAVAILABLE and never raised into the
    cycle: OpenAI API errors (connection, timeout, any HTTP error status), httpx transport
    errors, OS-level connection errors and timeouts. (openai is imported here, not at module
    import: a cycle without an LLM does not pay for it.)"""
    import httpx
    import openai

    return (openai.APIError, httpx.HTTPError, ConnectionError, TimeoutError)


def make_chat_model(
    settings: LlmSettings, *, environ: Mapping[str, str] | None = None
) -> BaseChatModel | None:
    """A ``ChatOpenAI`` for ``settings``, or None when no model is configured.

    ``settings.model`` names the model; the endpoint is ``settings.base_url``, else
    ``OPENAI_BASE_URL``; the key is ``settings.api_key``, else ``OPENAI_API_KEY`` (a local
    server given by URL needs none). Temperature, timeout and retries come from the settings.
    Raises ConfigError for a model on api.openai.com without a key.
    """
    env = os.environ if environ is None else environ
    if not settings.model:
        return None
    from langchain_openai import ChatOpenAI

    base_url = settings.base_url or env.get("OPENAI_BASE_URL") or None
    key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    api_key = key or env.get("OPENAI_API_KEY") or None
    if api_key is None:
        if base_url is None:
            raise ConfigError(
                f"SOVEREIGN_LLM__MODEL is {settings.model!r} but OPENAI_API_KEY is not set: set "
                "the key, or OPENAI_BASE_URL for a local OpenAI-compatible server"
            )
        api_key = _LOCAL_PLACEHOLDER_KEY
    max_retries = settings.max_retries
    return ChatOpenAI(
        model=settings.model,
        base_url=base_url,
        api_key=SecretStr(api_key),
        temperature=settings.temperature,
        timeout=settings.timeout_s,
        max_retries=max_retries,
        use_responses_api=False,
    )


class ProposalBatch(BaseModel):
    """The proposer's answer: at most 10 proposals."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    proposals: Annotated[list[Proposal], Field(max_length=MAX_PROPOSALS_PER_BATCH)]


def batch_tool_schema() -> dict[str, Any]:
    """The ``ProposalBatch`` tool in OpenAI function format, keeping the schema's ``$defs``.

    Handing the pydantic class to ``with_structured_output`` would inline every ``$ref`` of the
    recursive condition language: ~190 KB per request instead of ~17 KB.
    """
    return {
        "name": BATCH_TOOL,
        "description": (
            "Submit the final proposals (at most "
            f"{MAX_PROPOSALS_PER_BATCH}; an empty list when nothing is worth changing)."
        ),
        "parameters": ProposalBatch.model_json_schema(),
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class Unparseable:
    """Model output that is not a valid proposal: the raw text and why it failed."""

    raw: str
    error: str


@dataclass(frozen=True, kw_only=True, slots=True)
class LLMProposals:
    """What the LLM proposer produced. ``entries`` keeps the model's order (proposals, with
    source forced to "llm", and unparseable items). ``unavailable`` is the endpoint error when
    the model could not be reached (then ``entries`` is empty). ``tool_calls`` lists the tools
    the model called: ``{"name", "args", "ok"}``."""

    entries: tuple[Proposal | Unparseable, ...] = ()
    unavailable: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    rounds: int = 0

    @property
    def proposals(self) -> tuple[Proposal, ...]:
        return tuple(e for e in self.entries if not isinstance(e, Unparseable))

    @property
    def unparseable(self) -> tuple[Unparseable, ...]:
        return tuple(e for e in self.entries if isinstance(e, Unparseable))

    @property
    def batch(self) -> ProposalBatch:
        """The parsed proposals as the ``ProposalBatch`` model."""
        return ProposalBatch(proposals=list(self.proposals))


class LLMProposer:
    """A bounded tool-calling loop, then one structured answer.

    Rounds: the model (tools bound) answers; while it calls tools and fewer than
    ``max_tool_rounds`` rounds have run, each call is executed (unknown tools and tool errors
    are reported back to the model) and its result is fenced as data. Then the model is asked
    for the ``ProposalBatch`` call.
    """

    def __init__(
        self,
        llm: BaseChatModel,
        tools: Sequence[BaseTool] = (),
        *,
        max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
        max_proposals: int = MAX_PROPOSALS_PER_BATCH,
    ) -> None:
        if max_tool_rounds < 0:
            raise ValueError("max_tool_rounds must be >= 0")
        self._llm = llm
        self._tools = {t.name: t for t in tools}
        self._max_rounds = max_tool_rounds
        self._max_proposals = min(max_proposals, MAX_PROPOSALS_PER_BATCH)

    def propose(self, analysis: Mapping[str, Any], context: Mapping[str, Any]) -> LLMProposals:
        """Proposals for the weakness report ``analysis`` given ``context`` (active rules,
        constitution summary, ...). Never raises for endpoint failures or bad output."""
        messages: list[BaseMessage] = [
            SystemMessage(system_prompt(max_proposals=self._max_proposals)),
            HumanMessage(user_prompt(analysis, context, max_proposals=self._max_proposals)),
        ]
        calls: list[dict[str, Any]] = []
        rounds = 0
        try:
            rounds = self._tool_rounds(messages, calls)
            messages.append(HumanMessage(final_instruction(max_proposals=self._max_proposals)))
            structured = self._llm.with_structured_output(
                batch_tool_schema(), method="function_calling", include_raw=True
            )
            output = structured.invoke(messages)
        except unavailable_errors() as err:
            problem = _describe(err)
            log.warning("LLM endpoint unavailable: %s", problem)
            return LLMProposals(unavailable=problem, tool_calls=tuple(calls), rounds=rounds)
        raw = output.get("raw") if isinstance(output, dict) else None
        entries = parse_batch(raw, max_proposals=self._max_proposals)
        return LLMProposals(entries=entries, tool_calls=tuple(calls), rounds=rounds)

    def _tool_rounds(self, messages: list[BaseMessage], calls: list[dict[str, Any]]) -> int:
        if not self._tools or self._max_rounds == 0:
            return 0
        bound = self._llm.bind_tools(list(self._tools.values()))
        for n in range(1, self._max_rounds + 1):
            reply = bound.invoke(messages)
            messages.append(reply)
            tool_calls = reply.tool_calls if isinstance(reply, AIMessage) else []
            if not tool_calls:
                return n
            messages.extend(self._run_tool(call, calls) for call in tool_calls)
        return self._max_rounds

    def _run_tool(self, call: ToolCall, calls: list[dict[str, Any]]) -> ToolMessage:
        name = str(call.get("name", ""))
        tool = self._tools.get(name)
        ok = False
        if tool is None:
            content = f"unknown tool {name!r}; available: {', '.join(sorted(self._tools))}"
        else:
            try:
                content = str(tool.invoke(call.get("args", {})))
                ok = True
            except Exception as err:  # the arguments are the model's: report, don't crash
                log.info("tool %s failed: %s: %s", name, type(err).__name__, err)
                content = f"tool error: {type(err).__name__}: {err}"
        calls.append({"name": name, "args": call.get("args", {}), "ok": ok})
        return ToolMessage(
            content=fence(f"tool_{name}", content),
            tool_call_id=call.get("id") or "",
            name=name,
            status="success" if ok else "error",
        )


def parse_batch(
    message: Any, *, max_proposals: int = MAX_PROPOSALS_PER_BATCH
) -> tuple[Proposal | Unparseable, ...]:
    """Every proposal in the model's ``ProposalBatch`` call, each parsed on its own with its
    source forced to "llm"; anything else becomes :class:`Unparseable`."""
    if not isinstance(message, AIMessage):
        return (Unparseable(raw=_clip(repr(message)), error="the model returned no message"),)
    call = next((c for c in message.tool_calls if c.get("name") == BATCH_TOOL), None)
    if call is None:
        invalid = next((c for c in message.invalid_tool_calls if c.get("name") == BATCH_TOOL), None)
        if invalid is not None:
            error = f"{BATCH_TOOL} arguments are not valid JSON: {invalid.get('error') or ''}"
            return (Unparseable(raw=_clip(str(invalid.get("args") or "")), error=error.strip()),)
        return (
            Unparseable(
                raw=_clip(_text(message)), error=f"the model did not call the {BATCH_TOOL} tool"
            ),
        )
    items = call["args"].get("proposals") if isinstance(call["args"], dict) else None
    if not isinstance(items, list):
        return (
            Unparseable(
                raw=_clip(_dumps(call["args"])),
                error=f"{BATCH_TOOL} arguments have no 'proposals' list",
            ),
        )
    entries: list[Proposal | Unparseable] = []
    for position, item in enumerate(items):
        if position >= max_proposals:
            entries.append(
                Unparseable(
                    raw=_clip(_dumps(item)),
                    error=f"beyond the {max_proposals} proposals a batch may hold",
                )
            )
            continue
        entries.append(_parse_item(item))
    return tuple(entries)


def _parse_item(item: Any) -> Proposal | Unparseable:
    if not isinstance(item, dict):
        return Unparseable(raw=_clip(_dumps(item)), error="a proposal must be a JSON object")
    forced = {**item, "source": ProposalSource.LLM.value}
    try:
        return parse_proposal(forced)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'proposal'}: {e['msg']}"
            for e in err.errors()[:5]
        )
        return Unparseable(raw=_clip(_dumps(item)), error=problems)


def _describe(err: BaseException) -> str:
    """``Type: message``, plus the underlying cause (``ConnectError: [Errno 111] ...``)."""
    text = f"{type(err).__name__}: {err}"
    root, seen = err, {id(err)}
    while (cause := root.__cause__ or root.__context__) is not None and id(cause) not in seen:
        root = cause
        seen.add(id(cause))
    if root is not err and str(root) not in text:
        text += f" ({type(root).__name__}: {root})"
    return text


def _text(message: AIMessage) -> str:
    content = message.content
    return content if isinstance(content, str) else _dumps(content)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + "…[truncated]"


__all__ = [
    "BATCH_TOOL",
    "LLMProposals",
    "LLMProposer",
    "ProposalBatch",
    "Unparseable",
    "batch_tool_schema",
    "make_chat_model",
    "parse_batch",
    "unavailable_errors",
]
