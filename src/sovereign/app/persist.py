"""An event sink that writes the trading core's events to memory in batches.

Orders, fills, round trips, decisions and equity points are buffered and written together on
:meth:`MemorySink.flush` (every ``flush_every`` events and at the end); orders, fills, trades and
Supervisor transitions also enter the hash-chained audit log. A Supervisor transition is written
at once, with the Supervisor's state, so a HALT is durable before the next order could go out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sovereign.brokers.models import Fill
from sovereign.memory import AuditLog, SupervisorStore, TradeMemory
from sovereign.trading.events import (
    ClosedTrade,
    Decision,
    EquityPoint,
    Event,
    OrderSubmitted,
    Transition,
)


class MemorySink:
    def __init__(
        self,
        *,
        run_id: str,
        memory: TradeMemory,
        audit: AuditLog,
        supervisor_store: SupervisorStore,
        on_transition: Callable[[Transition], None] | None = None,
        flush_every: int = 5_000,
    ) -> None:
        self.run_id = run_id
        self.memory = memory
        self.audit = audit
        self.supervisor_store = supervisor_store
        self.on_transition = on_transition
        self.flush_every = flush_every
        self._orders: list[dict[str, Any]] = []
        self._fills: list[dict[str, Any]] = []
        self._trades: list[dict[str, Any]] = []
        self._decisions: list[dict[str, Any]] = []
        self._equity: list[dict[str, Any]] = []
        self._audit: list[tuple[str, dict[str, Any], datetime]] = []
        self.counts: dict[str, int] = {"orders": 0, "fills": 0, "trades": 0, "decisions": 0}

    def emit(self, event: Event) -> None:
        if isinstance(event, EquityPoint):
            self._equity.append(
                {
                    "run_id": self.run_id,
                    "timestamp": event.timestamp,
                    "equity": event.equity,
                    "cash": event.cash,
                    "drawdown": event.drawdown,
                    "gross_exposure": event.gross_exposure,
                    "supervisor_state": event.state,
                }
            )
        elif isinstance(event, Decision):
            self._decisions.append(
                {
                    "run_id": self.run_id,
                    "timestamp": event.timestamp,
                    "strategy": event.strategy,
                    "symbol": event.symbol,
                    "action": event.action,
                    "confidence": event.confidence,
                    "regime": event.regime,
                    "outcome": event.outcome,
                    "reason": event.reason,
                    "rules_fired": list(event.rules_fired),
                    "inputs": event.inputs,
                }
            )
        elif isinstance(event, OrderSubmitted):
            self._order(event)
        elif isinstance(event, Fill):
            self._fill(event)
        elif isinstance(event, ClosedTrade):
            self._trade(event)
        elif isinstance(event, Transition):
            self._transition(event)
        if self._pending() >= self.flush_every:
            self.flush()

    def _order(self, event: OrderSubmitted) -> None:
        o = event.order
        row = {
            "client_order_id": o.client_order_id,
            "run_id": self.run_id,
            "strategy": o.strategy,
            "symbol": o.symbol,
            "side": o.side.value,
            "quantity": o.quantity,
            "equity_fraction": o.equity_fraction,
            "order_type": o.order_type.value,
            "limit_price": o.limit_price,
            "status": event.status,
            "submitted_at": event.timestamp,
            "reason": event.reason,
            "ruleset_version": event.ruleset_version,
        }
        self._orders.append(row)
        self._audit.append(
            (
                "order.submitted",
                {k: v for k, v in row.items() if k != "submitted_at"},
                event.timestamp,
            )
        )

    def _fill(self, f: Fill) -> None:
        row = {
            "fill_id": f.fill_id,
            "client_order_id": f.client_order_id,
            "symbol": f.symbol,
            "side": f.side.value,
            "quantity": f.quantity,
            "price": f.price,
            "commission": f.commission,
            "slippage_cost": f.slippage_cost,
            "timestamp": f.timestamp,
            "strategy": f.strategy,
            "run_id": self.run_id,
        }
        self._fills.append(row)
        self._audit.append(
            ("order.filled", {k: v for k, v in row.items() if k != "timestamp"}, f.timestamp)
        )

    def _trade(self, t: ClosedTrade) -> None:
        row = trade_row(self.run_id, t)
        self._trades.append(row)
        self._audit.append(
            (
                "trade.closed",
                {
                    "strategy": t.strategy,
                    "symbol": t.symbol,
                    "pnl": round(t.pnl, 2),
                    "exit_reason": t.exit_reason,
                },
                t.exit_time,
            )
        )

    def _transition(self, t: Transition) -> None:
        self.flush()
        self.supervisor_store.record_transition(
            at=t.timestamp,
            scope=t.scope,
            from_state=t.from_state,
            to_state=t.to_state,
            reason=t.reason,
            run_id=self.run_id,
        )
        self.audit.append(
            "supervisor.transition",
            {
                "scope": t.scope,
                "from": t.from_state,
                "to": t.to_state,
                "reason": t.reason,
                "run_id": self.run_id,
            },
            t.timestamp,
        )
        if self.on_transition is not None:
            self.on_transition(t)

    def _pending(self) -> int:
        return (
            len(self._orders)
            + len(self._fills)
            + len(self._trades)
            + len(self._decisions)
            + len(self._equity)
        )

    def flush(self) -> None:
        """Write everything buffered; orders before the fills that reference them."""
        if self._orders:
            self.memory.add_orders(self._orders)
        if self._fills:
            self.memory.add_fills(self._fills)
        if self._trades:
            self.memory.add_trades(self._trades)
        if self._decisions:
            self.memory.add_decisions(self._decisions)
        if self._equity:
            self.memory.add_equity_snapshots(self._equity)
        if self._audit:
            self.audit.append_many(self._audit)
        self.counts["orders"] += len(self._orders)
        self.counts["fills"] += len(self._fills)
        self.counts["trades"] += len(self._trades)
        self.counts["decisions"] += len(self._decisions)
        for buf in (
            self._orders,
            self._fills,
            self._trades,
            self._decisions,
            self._equity,
            self._audit,
        ):
            buf.clear()


def trade_row(run_id: str, t: ClosedTrade) -> dict[str, object]:
    """A closed round trip as a row of the ``trades`` table."""
    return {
        "run_id": run_id,
        "strategy": t.strategy,
        "symbol": t.symbol,
        "side": "long" if t.side > 0 else "short",
        "quantity": t.quantity,
        "entry_time": t.entry_time,
        "exit_time": t.exit_time,
        "entry_price": t.entry_price,
        "exit_price": t.exit_price,
        "pnl": t.pnl,
        "return_pct": t.return_pct,
        "entry_reason": t.entry_reason,
        "exit_reason": t.exit_reason,
        "regime_at_entry": t.regime_at_entry,
        "confidence": t.confidence,
        "rules_touched": list(t.rules),
        "ruleset_version": t.ruleset_version,
    }
