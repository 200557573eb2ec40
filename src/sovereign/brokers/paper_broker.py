"""The paper broker: the :class:`~sovereign.brokers.port.Broker` port over a PaperExchange.

The exchange is driven bar by bar by its owner (the backtester or the paper loop); this adapter
only turns port calls into exchange calls, stamping commands with the injected clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sovereign.brokers.models import AccountReport, Fill, MassStatus, Order, OrderReport, Position
from sovereign.brokers.paper_exchange import PaperExchange


class PaperBroker:
    """Broker port over ``exchange``; ``clock()`` returns the current tz-aware UTC time.

    ``account().gross_exposure`` and ``net_exposure`` are in money (divide by ``equity`` for
    fractions).
    """

    name = "paper"

    def __init__(self, exchange: PaperExchange, *, clock: Callable[[], datetime]) -> None:
        self._exchange = exchange
        self._clock = clock

    @property
    def exchange(self) -> PaperExchange:
        return self._exchange

    def submit(self, order: Order) -> OrderReport:
        return self._exchange.submit(order, self._clock())

    def cancel(self, client_order_id: str) -> OrderReport:
        return self._exchange.cancel(client_order_id, self._clock())

    def get_order(self, client_order_id: str) -> OrderReport | None:
        return self._exchange.get_order(client_order_id)

    def open_orders(self) -> list[OrderReport]:
        return self._exchange.open_orders()

    def positions(self) -> list[Position]:
        return self._exchange.portfolio.positions()

    def account(self) -> AccountReport:
        return self._exchange.portfolio.account_report(self._clock())

    def fills_since(self, since: datetime | None) -> list[Fill]:
        """Fills with ``timestamp >= since`` (inclusive, so dedupe by ``fill_id``); all if None."""
        return self._exchange.fills_since(since)

    def mass_status(self) -> MassStatus:
        return MassStatus(
            account=self.account(),
            open_orders=tuple(self.open_orders()),
            positions=tuple(self.positions()),
            fills=tuple(self.fills_since(None)),
        )
