"""The broker port: commands in, reports out. Every adapter (paper, Alpaca, IBKR) implements it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from sovereign.brokers.models import (
    AccountReport,
    Fill,
    MassStatus,
    Order,
    OrderReport,
    Position,
)


@runtime_checkable
class Broker(Protocol):
    """A broker adapter.

    ``submit`` is idempotent by ``order.client_order_id``: submitting an id the broker already
    knows returns that order's current report and creates nothing.
    """

    name: str

    def submit(self, order: Order) -> OrderReport: ...

    def cancel(self, client_order_id: str) -> OrderReport: ...

    def get_order(self, client_order_id: str) -> OrderReport | None: ...

    def open_orders(self) -> list[OrderReport]: ...

    def positions(self) -> list[Position]: ...

    def account(self) -> AccountReport: ...

    def fills_since(self, since: datetime | None) -> list[Fill]: ...

    def mass_status(self) -> MassStatus: ...
