"""Broker port value objects: commands in (Order), reports out (OrderReport, Fill, Position,
AccountReport, MassStatus). Every timestamp is timezone-aware UTC; money is in the account
currency; quantities are shares (float, so fractional brokers fit), positive for both sides."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    DAY = "day"  # unfilled rest cancelled at the end of the bar it first trades in
    GTC = "gtc"  # unfilled rest carried to later bars
    IOC = "ioc"  # whatever fills in the first bar, the rest cancelled


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


def client_order_id(
    *,
    strategy: str,
    ruleset_version: str,
    symbol: str,
    signal_time: datetime,
    leg: str,
    namespace: str = "",
) -> str:
    """Deterministic, idempotent client order id.

    The same (namespace, strategy, rule set version, symbol, signal time, leg) always gives the
    same id, so a resubmission after a timeout is recognised by the broker instead of doubling
    the order. ``namespace`` keeps accounts apart: the live account's name (stable across
    restarts, so a restarted process recognises its own orders), or a replay run's id (so two
    replays of the same history do not collide). Short enough for Alpaca's and IBKR's limits.
    """
    key = f"{namespace}|{strategy}|{ruleset_version}|{symbol}|{signal_time.isoformat()}|{leg}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"sv-{strategy[:4]}-{digest}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Order:
    """An order command.

    Exactly one of ``quantity`` (shares) or ``equity_fraction`` (a fraction of account equity,
    resolved into whole shares at fill time) is set.
    """

    client_order_id: str
    symbol: str
    side: Side
    quantity: float | None = None
    equity_fraction: float | None = None
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    strategy: str = ""
    created_at: datetime | None = None
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if (self.quantity is None) == (self.equity_fraction is None):
            raise ValueError("Order needs exactly one of quantity or equity_fraction")
        if self.quantity is not None and not self.quantity > 0:
            raise ValueError(f"Order quantity must be > 0, got {self.quantity}")
        if self.equity_fraction is not None and not 0 < self.equity_fraction <= 1:
            raise ValueError(f"Order equity_fraction must be in (0, 1], got {self.equity_fraction}")
        if self.order_type is OrderType.LIMIT and self.limit_price is None:
            raise ValueError("a limit order needs limit_price")


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderReport:
    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    status: OrderStatus
    quantity: float | None
    filled_quantity: float
    avg_fill_price: float | None
    timestamp: datetime
    strategy: str = ""
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Fill:
    """One execution. ``price`` includes half-spread and slippage; ``commission`` is separate."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    commission: float
    timestamp: datetime
    strategy: str = ""
    slippage_cost: float = 0.0  # spread + slippage paid vs the reference price, in money

    @property
    def signed_quantity(self) -> float:
        return self.quantity * self.side.sign


@dataclass(frozen=True, kw_only=True, slots=True)
class Position:
    symbol: str
    quantity: float  # signed: > 0 long, < 0 short
    avg_price: float
    market_price: float | None = None

    @property
    def market_value(self) -> float:
        price = self.avg_price if self.market_price is None else self.market_price
        return self.quantity * price


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountReport:
    cash: float
    equity: float
    gross_exposure: float
    net_exposure: float
    realized_pnl: float
    unrealized_pnl: float
    timestamp: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class MassStatus:
    """Everything the broker knows, for reconciliation."""

    account: AccountReport
    open_orders: tuple[OrderReport, ...] = field(default=())
    positions: tuple[Position, ...] = field(default=())
    fills: tuple[Fill, ...] = field(default=())
