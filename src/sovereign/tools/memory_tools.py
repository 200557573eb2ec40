"""LangChain tools over memory, for LLM nodes (the improvement cycle's proposer, chat). READ-ONLY.

Build them on a :func:`~sovereign.tools.readonly.read_only_engine`: the tools only select, and
the engine cannot write even if one tried. Every tool returns one compact JSON object as a
string (keys sorted, money rounded to cents, fractions to 4 decimals). Text from memory (trade
reasons, rule names) is returned as is; the caller fences it as data before a model sees it.

Tools: ``recent_trades(n, strategy?)``, ``performance_by(dimension, strategy?)`` with dimension
regime, symbol, strategy or weekday (of the entry, UTC), ``active_rules()``,
``rule_history(n)``, ``constitution_summary()``.
"""

from __future__ import annotations

import json
import tomllib
from collections import defaultdict
from typing import Annotated, Any, Literal

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from sovereign.constitution import Constitution
from sovereign.memory import ConstitutionStore, RuleStore, TradeRow
from sovereign.tools.readonly import read_only_engine

MAX_TRADES = 100
MAX_VERSIONS = 50
MAX_TEXT = 200
"""Longest free text (a trade's entry or exit reason) a tool returns."""
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
Dimension = Literal["regime", "symbol", "strategy", "weekday"]


class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RecentTradesArgs(_Args):
    n: Annotated[int, Field(ge=1, le=MAX_TRADES, description="how many trades, newest first")] = 20
    strategy: Annotated[str | None, Field(description="only this strategy's trades")] = None


class PerformanceByArgs(_Args):
    dimension: Annotated[Dimension, Field(description="what to group the closed trades by")]
    strategy: Annotated[str | None, Field(description="only this strategy's trades")] = None


class RuleHistoryArgs(_Args):
    n: Annotated[
        int, Field(ge=1, le=MAX_VERSIONS, description="how many rule set versions, newest first")
    ] = 10


class _NoArgs(_Args):
    pass


def memory_tools(engine: Engine, *, constitution: Constitution | None = None) -> list[BaseTool]:
    """The read-only memory tools on ``engine`` (use :func:`read_only_engine`).

    ``constitution`` is the one in force; without it, ``constitution_summary`` reads the latest
    recorded constitution snapshot from memory.
    """
    reader = MemoryReader(engine, constitution=constitution)
    return [
        StructuredTool.from_function(
            func=lambda n=20, strategy=None: _dumps(reader.recent_trades(n, strategy)),
            name="recent_trades",
            description=(
                "The most recent closed trades (newest first): symbol, side, entry and exit "
                "times, pnl, return_pct, regime at entry, confidence, entry and exit reasons."
            ),
            args_schema=RecentTradesArgs,
        ),
        StructuredTool.from_function(
            func=lambda dimension, strategy=None: _dumps(
                reader.performance_by(dimension, strategy)
            ),
            name="performance_by",
            description=(
                "Closed-trade performance grouped by regime, symbol, strategy or weekday: "
                "trades, wins, win_rate, total_pnl, avg_pnl, avg_return_pct per group."
            ),
            args_schema=PerformanceByArgs,
        ),
        StructuredTool.from_function(
            func=lambda: _dumps(reader.active_rules()),
            name="active_rules",
            description="The rule set in force: version, id, every rule with its id and body.",
            args_schema=_NoArgs,
        ),
        StructuredTool.from_function(
            func=lambda n=10: _dumps(reader.rule_history(n)),
            name="rule_history",
            description=(
                "Recent rule set versions (newest first): version, rule set id, parent, "
                "number of rules, reason, source, time."
            ),
            args_schema=RuleHistoryArgs,
        ),
        StructuredTool.from_function(
            func=lambda: _dumps(reader.constitution_summary()),
            name="constitution_summary",
            description="The constitution's hard limits and change budgets (immutable).",
            args_schema=_NoArgs,
        ),
    ]


def readonly_memory_tools(
    db_url: str, *, constitution: Constitution | None = None
) -> tuple[Engine, list[BaseTool]]:
    """A :func:`read_only_engine` on ``db_url`` and the tools on it (dispose the engine when
    done)."""
    engine = read_only_engine(db_url)
    return engine, memory_tools(engine, constitution=constitution)


class MemoryReader:
    """The queries behind the tools, returning JSON-compatible dicts."""

    def __init__(self, engine: Engine, *, constitution: Constitution | None = None) -> None:
        self._engine = engine
        self._constitution = constitution

    def recent_trades(self, n: int = 20, strategy: str | None = None) -> dict[str, Any]:
        n = max(1, min(int(n), MAX_TRADES))
        query = select(TradeRow).order_by(col(TradeRow.exit_time).desc(), col(TradeRow.id).desc())
        if strategy is not None:
            query = query.where(TradeRow.strategy == strategy)
        with Session(self._engine) as db:
            rows = list(db.exec(query.limit(n)).all())
        return {"count": len(rows), "trades": [_trade(r) for r in rows]}

    def performance_by(self, dimension: Dimension, strategy: str | None = None) -> dict[str, Any]:
        if dimension == "weekday":
            groups = self._by_weekday(strategy)
        else:
            groups = self._by_column(dimension, strategy)
        return {"dimension": dimension, "strategy": strategy, "groups": groups}

    def active_rules(self) -> dict[str, Any]:
        active = RuleStore(self._engine).active()
        if active is None:
            return {"version": None, "ruleset_id": None, "rules": [], "params": {}}
        version, ruleset = active
        return {
            "version": version,
            "ruleset_id": ruleset.id,
            "rules": [{"id": r.id, **r.model_dump(mode="json")} for r in ruleset.rules],
            "params": ruleset.params,
        }

    def rule_history(self, n: int = 10) -> dict[str, Any]:
        n = max(1, min(int(n), MAX_VERSIONS))
        rows = RuleStore(self._engine).versions()[-n:]
        return {
            "versions": [
                {
                    "version": r.version,
                    "ruleset_id": r.ruleset_id,
                    "parent_version": r.parent_version,
                    "rules": len(r.rule_ids),
                    "reason": _clip(r.reason),
                    "source": r.source,
                    "created_at": r.created_at.isoformat(),
                }
                for r in reversed(rows)
            ]
        }

    def constitution_summary(self) -> dict[str, Any]:
        if self._constitution is not None:
            return {"constitution": self._constitution.model_dump(mode="json"), "sha256": None}
        latest = ConstitutionStore(self._engine).latest()
        if latest is None:
            return {"constitution": None, "sha256": None, "error": "no constitution recorded"}
        constitution = Constitution.model_validate(tomllib.loads(latest.content))
        return {"constitution": constitution.model_dump(mode="json"), "sha256": latest.sha256}

    def _by_column(self, dimension: Dimension, strategy: str | None) -> list[dict[str, Any]]:
        key = {
            "regime": col(TradeRow.regime_at_entry),
            "symbol": col(TradeRow.symbol),
            "strategy": col(TradeRow.strategy),
        }[dimension]
        pnl = col(TradeRow.pnl)
        query = sa_select(
            key,
            func.count(),
            func.sum(case((pnl > 0, 1), else_=0)),
            func.sum(pnl),
            func.sum(col(TradeRow.return_pct)),
        ).group_by(key)
        if strategy is not None:
            query = query.where(col(TradeRow.strategy) == strategy)
        with Session(self._engine) as db:
            rows = db.execute(query).all()
        return sorted(
            (_group("unknown" if k is None else str(k), n, w, p, r) for k, n, w, p, r in rows),
            key=lambda g: str(g["key"]),
        )

    def _by_weekday(self, strategy: str | None) -> list[dict[str, Any]]:
        query = select(TradeRow.entry_time, TradeRow.pnl, TradeRow.return_pct)
        if strategy is not None:
            query = query.where(TradeRow.strategy == strategy)
        sums: dict[int, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
        with Session(self._engine) as db:
            for entry_time, pnl, ret in db.exec(query):
                acc = sums[entry_time.weekday()]
                acc[0] += 1
                acc[1] += pnl > 0
                acc[2] += pnl
                acc[3] += ret
        return [
            _group(WEEKDAYS[day], int(n), int(w), p, r)
            for day, (n, w, p, r) in sorted(sums.items())
        ]


def _group(key: str, n: Any, wins: Any, pnl_sum: Any, ret_sum: Any) -> dict[str, Any]:
    """One group's figures from raw sums (SQL aggregates may come back as None or Decimal)."""
    count, won = int(n), int(wins or 0)
    total = float(pnl_sum or 0.0)
    return {
        "key": key,
        "trades": count,
        "wins": won,
        "win_rate": round(won / count, 4) if count else None,
        "total_pnl": round(total, 2),
        "avg_pnl": round(total / count, 2) if count else None,
        "avg_return_pct": round(float(ret_sum or 0.0) / count, 4) if count else None,
    }


def _trade(row: TradeRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "run_id": row.run_id,
        "strategy": row.strategy,
        "symbol": row.symbol,
        "side": row.side,
        "quantity": row.quantity,
        "entry_time": row.entry_time.isoformat(),
        "exit_time": row.exit_time.isoformat(),
        "entry_price": row.entry_price,
        "exit_price": row.exit_price,
        "pnl": round(row.pnl, 2),
        "return_pct": round(row.return_pct, 4),
        "regime": row.regime_at_entry,
        "confidence": None if row.confidence is None else round(row.confidence, 4),
        "entry_reason": _clip(row.entry_reason),
        "exit_reason": _clip(row.exit_reason),
        "rules_touched": list(row.rules_touched),
    }


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


__all__ = [
    "MAX_TRADES",
    "MAX_VERSIONS",
    "MemoryReader",
    "memory_tools",
    "readonly_memory_tools",
]
