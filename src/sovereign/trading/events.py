"""What the trading core tells the outside world. The core never persists anything itself: it
emits these to an :class:`EventSink`, and the app wires a sink that writes them to memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sovereign.brokers.models import Fill, Order


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """One decision about one candidate or position, with references to its inputs."""

    timestamp: datetime
    strategy: str
    symbol: str
    action: str  # enter, exit, skip, block, stand_down, flatten
    outcome: str  # ordered, skipped, blocked
    reason: str
    confidence: float | None = None
    regime: str | None = None
    rules_fired: tuple[str, ...] = ()
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class ClosedTrade:
    """A round trip. ``pnl`` is net of both sides' commissions, in money."""

    strategy: str
    symbol: str
    side: int  # +1 long, -1 short
    quantity: float
    entry_time: datetime
    exit_time: datetime
    entry_price: float
    exit_price: float
    pnl: float
    commission: float
    entry_reason: str
    exit_reason: str
    regime_at_entry: str
    confidence: float
    rules: tuple[str, ...]
    ruleset_version: str
    entry_bar: int
    exit_bar: int

    @property
    def return_pct(self) -> float:
        basis = self.entry_price * self.quantity
        return 100.0 * self.pnl / basis if basis else 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class EquityPoint:
    timestamp: datetime
    equity: float
    cash: float
    drawdown: float
    gross_exposure: float
    state: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Transition:
    """A Supervisor state change. ``scope`` is "global" or "strategy:<name>"."""

    timestamp: datetime
    scope: str
    from_state: str
    to_state: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderSubmitted:
    order: Order
    timestamp: datetime
    ruleset_version: str
    status: str
    reason: str = ""


Event = Decision | ClosedTrade | EquityPoint | Transition | OrderSubmitted | Fill


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


class NullSink:
    """Drops everything (benchmarks)."""

    def emit(self, event: Event) -> None:
        return None


class ListSink:
    """Keeps everything in memory, in order (tests, backtests)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]
