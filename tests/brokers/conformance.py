"""A broker conformance suite: the behaviour every Broker adapter must show.

Subclass :class:`BrokerConformance` as ``TestXxxConformance`` and implement ``make_broker`` to
return a fresh ``(broker, advance)`` pair: ``broker`` implements the Broker port, ``advance()``
lets the market move one bar (or tick) so that working market orders can fill. Set ``symbol`` to
a tradable symbol, ``quantity`` to a small order size that fills fully within one ``advance()``,
and ``far_limit_price`` to a buy limit that cannot fill. Nothing here depends on a particular
broker: only the port, its value objects and :class:`~sovereign.errors.BrokerError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import ClassVar

import pytest

from sovereign.brokers.models import (
    AccountReport,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from sovereign.brokers.port import Broker
from sovereign.errors import BrokerError

Advance = Callable[[], None]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def _account_fields(a: AccountReport) -> tuple[float, ...]:
    return (a.cash, a.equity, a.gross_exposure, a.net_exposure, a.realized_pnl, a.unrealized_pnl)


class BrokerConformance:
    """Mixin of tests; pytest collects them through a ``Test*`` subclass."""

    symbol: ClassVar[str] = "AAA"
    quantity: ClassVar[float] = 10.0
    far_limit_price: ClassVar[float] = 1.0

    def make_broker(self) -> tuple[Broker, Advance]:
        raise NotImplementedError

    # ------------------------------------------------------------------------ helpers

    def _market(self, cid: str, side: Side = Side.BUY, qty: float | None = None) -> Order:
        return Order(
            client_order_id=cid,
            symbol=self.symbol,
            side=side,
            quantity=self.quantity if qty is None else qty,
            strategy="conformance",
        )

    def _far_limit(self, cid: str) -> Order:
        return Order(
            client_order_id=cid,
            symbol=self.symbol,
            side=Side.BUY,
            quantity=self.quantity,
            order_type=OrderType.LIMIT,
            limit_price=self.far_limit_price,
            time_in_force=TimeInForce.GTC,
            strategy="conformance",
        )

    def _fills_of(self, broker: Broker, cid: str) -> list[Fill]:
        return [f for f in broker.fills_since(None) if f.client_order_id == cid]

    # -------------------------------------------------------------------------- tests

    def test_implements_the_port(self) -> None:
        broker, _ = self.make_broker()
        assert isinstance(broker, Broker)
        assert isinstance(broker.name, str)
        assert broker.name

    def test_accepts_a_valid_order_and_reports_it(self) -> None:
        broker, _ = self.make_broker()
        report = broker.submit(self._market("conf-accept"))
        assert report.client_order_id == "conf-accept"
        assert report.symbol == self.symbol
        assert report.side is Side.BUY
        assert report.status not in (OrderStatus.REJECTED, OrderStatus.CANCELED)
        assert report.broker_order_id
        assert report.timestamp.tzinfo is not None
        again = broker.get_order("conf-accept")
        assert again is not None
        assert again.broker_order_id == report.broker_order_id
        if report.status.is_open:
            assert "conf-accept" in {r.client_order_id for r in broker.open_orders()}

    def test_unknown_order_is_none(self) -> None:
        broker, _ = self.make_broker()
        assert broker.get_order("conf-never-submitted") is None

    def test_market_order_fills_and_reports_filled(self) -> None:
        broker, advance = self.make_broker()
        broker.submit(self._market("conf-fill"))
        advance()
        report = broker.get_order("conf-fill")
        assert report is not None
        assert report.status is OrderStatus.FILLED
        assert _close(report.filled_quantity, self.quantity)
        fills = self._fills_of(broker, "conf-fill")
        assert fills
        assert _close(sum(f.quantity for f in fills), self.quantity)
        vwap = sum(f.quantity * f.price for f in fills) / sum(f.quantity for f in fills)
        assert report.avg_fill_price is not None
        assert _close(report.avg_fill_price, vwap)
        assert "conf-fill" not in {r.client_order_id for r in broker.open_orders()}

    def test_submit_is_idempotent_by_client_order_id(self) -> None:
        broker, advance = self.make_broker()
        first = broker.submit(self._market("conf-dup"))
        second = broker.submit(self._market("conf-dup"))
        assert second.broker_order_id == first.broker_order_id
        ids = [r.client_order_id for r in broker.open_orders()]
        assert ids.count("conf-dup") <= 1
        advance()
        third = broker.submit(self._market("conf-dup"))
        assert third.broker_order_id == first.broker_order_id
        advance()
        fills = self._fills_of(broker, "conf-dup")
        assert _close(sum(f.quantity for f in fills), self.quantity)
        held = {p.symbol: p.quantity for p in broker.positions()}
        assert _close(held.get(self.symbol, 0.0), self.quantity)

    def test_cancels_an_open_order(self) -> None:
        broker, advance = self.make_broker()
        broker.submit(self._far_limit("conf-cancel"))
        advance()
        assert "conf-cancel" in {r.client_order_id for r in broker.open_orders()}
        report = broker.cancel("conf-cancel")
        assert report.client_order_id == "conf-cancel"
        assert report.status is OrderStatus.CANCELED
        looked_up = broker.get_order("conf-cancel")
        assert looked_up is not None
        assert looked_up.status is OrderStatus.CANCELED
        assert "conf-cancel" not in {r.client_order_id for r in broker.open_orders()}
        advance()
        assert self._fills_of(broker, "conf-cancel") == []

    def test_cancel_of_an_unknown_order_raises(self) -> None:
        broker, _ = self.make_broker()
        with pytest.raises(BrokerError):
            broker.cancel("conf-never-submitted")

    def test_positions_and_account_agree_with_fills(self) -> None:
        broker, advance = self.make_broker()
        before = broker.account()
        broker.submit(self._market("conf-buy", Side.BUY, self.quantity * 3))
        advance()
        broker.submit(self._market("conf-sell", Side.SELL, self.quantity))
        advance()
        fills = broker.fills_since(None)
        assert {f.client_order_id for f in fills} == {"conf-buy", "conf-sell"}
        net = sum(f.signed_quantity for f in fills if f.symbol == self.symbol)
        assert _close(net, self.quantity * 2)
        positions = {p.symbol: p for p in broker.positions()}
        assert _close(positions[self.symbol].quantity, net)
        account = broker.account()
        spent = sum(f.signed_quantity * f.price + f.commission for f in fills)
        assert _close(account.cash, before.cash - spent)
        values = [p.market_value for p in positions.values()]
        assert _close(account.equity, account.cash + sum(values))
        assert _close(account.gross_exposure, sum(abs(v) for v in values))
        assert _close(account.net_exposure, sum(values))

    def test_fills_since(self) -> None:
        broker, advance = self.make_broker()
        assert broker.fills_since(None) == []
        broker.submit(self._market("conf-f1"))
        advance()
        broker.submit(self._market("conf-f2"))
        advance()
        every = broker.fills_since(None)
        assert {f.client_order_id for f in every} == {"conf-f1", "conf-f2"}
        assert len({f.fill_id for f in every}) == len(every)
        first_f2 = min(f.timestamp for f in every if f.client_order_id == "conf-f2")
        later = broker.fills_since(first_f2)
        assert {f.client_order_id for f in later} == {"conf-f2"}
        assert all(f.timestamp >= first_f2 for f in later)
        last = max(f.timestamp for f in every)
        assert broker.fills_since(last + timedelta(seconds=1)) == []

    def test_mass_status_agrees_with_individual_calls(self) -> None:
        broker, advance = self.make_broker()
        broker.submit(self._market("conf-m1"))
        advance()
        broker.submit(self._far_limit("conf-m2"))
        status = broker.mass_status()
        assert _account_fields(status.account) == pytest.approx(_account_fields(broker.account()))
        assert [r.client_order_id for r in status.open_orders] == [
            r.client_order_id for r in broker.open_orders()
        ]
        assert "conf-m2" in {r.client_order_id for r in status.open_orders}
        assert sorted((p.symbol, p.quantity) for p in status.positions) == sorted(
            (p.symbol, p.quantity) for p in broker.positions()
        )
        assert [f.fill_id for f in status.fills] == [f.fill_id for f in broker.fills_since(None)]
