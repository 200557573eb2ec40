"""The IBKR adapter on a fake ib_async ``IB``: the shared conformance suite, idempotency by
``orderRef`` across a reconnect, faults (disconnection, placeOrder raising, a silently dropped
order), and the missing optional extra."""

from __future__ import annotations

import socket
import subprocess
import sys
import types

import ib_async
import pytest

from sovereign.brokers import Broker, Fill, Order, OrderStatus, OrderType, Side, TimeInForce
from sovereign.brokers.ibkr import INSTALL_HINT, IBKRBroker, ib_api
from sovereign.brokers.ibkr import parsing as ibp
from sovereign.errors import BrokerError, BrokerUnavailable, ConfigError, TransientError
from sovereign.settings import IbkrSettings

from .conformance import Advance, BrokerConformance
from .ib_fake import ACCOUNT, FakeIB

PATHS = {
    "AAA": [100.0, 100.5, 101.25, 100.75, 102.0, 101.5, 103.0],
    "BBB": [50.0, 49.5, 49.75, 50.25, 51.0, 50.5, 50.0],
}


def make(**kwargs: object) -> tuple[IBKRBroker, FakeIB]:
    fake = FakeIB(PATHS, **kwargs)  # type: ignore[arg-type]
    return IBKRBroker(fake, clock=lambda: fake.now), fake  # type: ignore[arg-type]


def market(cid: str, qty: float = 10.0, side: Side = Side.BUY, **kw: object) -> Order:
    return Order(client_order_id=cid, symbol="AAA", side=side, quantity=qty, **kw)  # type: ignore[arg-type]


def far_limit(cid: str) -> Order:
    return Order(
        client_order_id=cid,
        symbol="AAA",
        side=Side.BUY,
        quantity=10.0,
        order_type=OrderType.LIMIT,
        limit_price=1.0,
        time_in_force=TimeInForce.GTC,
    )


def placed(fake: FakeIB) -> int:
    return fake.calls.count("placeOrder")


class TestIBKRConformance(BrokerConformance):
    symbol = "AAA"
    quantity = 10.0
    far_limit_price = 1.0

    def make_broker(self) -> tuple[Broker, Advance]:
        broker, fake = make()
        return broker, fake.advance


class TestIBKRConformanceOnBBB(BrokerConformance):
    symbol = "BBB"
    quantity = 7.0
    far_limit_price = 0.5

    def make_broker(self) -> tuple[Broker, Advance]:
        broker, fake = make(commission_per_share=0.01, min_commission=0.35)
        return broker, fake.advance


# ------------------------------------------------------------------------ wire mapping


def test_orders_reach_ib_with_order_ref_tif_and_account() -> None:
    broker, fake = make()
    broker.submit(far_limit("lim-1"))
    trade = fake.trades()[-1]
    assert isinstance(trade.order, ib_async.LimitOrder)
    assert (trade.order.action, trade.order.totalQuantity, trade.order.lmtPrice) == (
        "BUY",
        10.0,
        1.0,
    )
    assert (trade.order.tif, trade.order.orderRef, trade.order.account) == ("GTC", "lim-1", ACCOUNT)
    assert (trade.contract.symbol, trade.contract.exchange, trade.contract.currency) == (
        "AAA",
        "SMART",
        "USD",
    )
    assert broker.account_code == ACCOUNT


def test_strategy_is_carried_to_reports_and_fills() -> None:
    broker, fake = make()
    assert broker.submit(market("s1", strategy="momentum")).strategy == "momentum"
    fake.advance()
    assert [f.strategy for f in broker.fills_since(None)] == ["momentum"]
    report = broker.get_order("s1")
    assert report is not None
    assert report.strategy == "momentum"


def test_fill_report_prices_and_commission() -> None:
    broker, fake = make()
    broker.submit(market("p1", qty=300))
    fake.advance()
    (fill,) = broker.fills_since(None)
    assert (fill.side, fill.quantity, fill.price) == (Side.BUY, 300, 100.5)
    assert fill.commission == pytest.approx(1.5)  # 0.005/share above the 1.0 minimum
    assert fill.timestamp == fake.now
    report = broker.get_order("p1")
    assert report is not None
    assert report.timestamp == fake.now  # stamped by TWS's log, not by our clock


def test_partial_fills_report_partially_filled_then_filled() -> None:
    broker, fake = make(max_fill_per_advance=4)
    broker.submit(market("part"))
    fake.advance()
    report = broker.get_order("part")
    assert report is not None
    assert (report.status, report.filled_quantity, report.avg_fill_price) == (
        OrderStatus.PARTIALLY_FILLED,
        4,
        100.5,
    )
    assert [r.client_order_id for r in broker.open_orders()] == ["part"]
    fake.advance()
    fake.advance()
    report = broker.get_order("part")
    assert report is not None
    assert report.status is OrderStatus.FILLED
    assert report.avg_fill_price == pytest.approx((4 * 100.5 + 4 * 101.25 + 2 * 100.75) / 10)


def test_ioc_rest_is_cancelled_after_the_first_price() -> None:
    broker, fake = make()
    order = Order(
        client_order_id="ioc",
        symbol="AAA",
        side=Side.BUY,
        quantity=5,
        order_type=OrderType.LIMIT,
        limit_price=90.0,
        time_in_force=TimeInForce.IOC,
    )
    broker.submit(order)
    assert fake.trades()[-1].order.tif == "IOC"
    fake.advance()
    report = broker.get_order("ioc")
    assert report is not None
    assert report.status is OrderStatus.CANCELED
    assert broker.fills_since(None) == []


def test_submit_and_cancel_wait_for_tws_to_answer() -> None:
    broker, fake = make(ack_on_wait=True)
    assert broker.submit(far_limit("slow")).status is OrderStatus.ACCEPTED
    assert broker.cancel("slow").status is OrderStatus.CANCELED
    assert fake.calls.count("waitOnUpdate") == 2


def test_an_answer_later_than_ack_timeout_is_reported_as_it_stands() -> None:
    fake = FakeIB(PATHS, ack_on_wait=True)
    broker = IBKRBroker(fake, ack_timeout=0.0)  # type: ignore[arg-type]
    assert broker.submit(far_limit("late")).status is OrderStatus.NEW
    assert fake.calls.count("waitOnUpdate") == 0
    assert fake.waitOnUpdate()  # the acknowledgement arrives
    report = broker.get_order("late")
    assert report is not None
    assert report.status is OrderStatus.ACCEPTED
    assert broker.submit(far_limit("late")).broker_order_id == report.broker_order_id


def test_unknown_symbol_is_reported_with_ibs_error() -> None:
    broker, _ = make()
    report = broker.submit(Order(client_order_id="zz", symbol="ZZZ", side=Side.BUY, quantity=1))
    assert report.status is OrderStatus.CANCELED
    assert report.reason == "error 200: No security definition has been found"


# ------------------------------------------------------------------ refused before IB


def test_equity_fraction_order_is_rejected_without_reaching_ib() -> None:
    broker, fake = make()
    order = Order(client_order_id="frac", symbol="AAA", side=Side.BUY, equity_fraction=0.1)
    report = broker.submit(order)
    assert report.status is OrderStatus.REJECTED
    assert "equity_fraction" in report.reason
    assert broker.submit(order) == report
    assert broker.get_order("frac") == report
    assert broker.cancel("frac") == report
    assert placed(fake) == 0


def test_reduce_only_is_capped_at_the_position_and_refused_without_one() -> None:
    broker, fake = make()
    refused = broker.submit(market("ro-0", side=Side.SELL, reduce_only=True))
    assert refused.status is OrderStatus.REJECTED
    assert refused.reason == "reduce-only: no position to reduce"
    broker.submit(market("buy", qty=30))
    fake.advance()
    capped = broker.submit(market("ro-1", qty=50, side=Side.SELL, reduce_only=True))
    assert capped.quantity == 30
    fake.advance()
    assert broker.positions() == []
    assert placed(fake) == 2


# ------------------------------------------------------------ idempotency by orderRef


@pytest.mark.parametrize("startup_completed", [True, False])
def test_a_new_adapter_after_a_reconnect_finds_the_old_orders(startup_completed: bool) -> None:
    broker, fake = make(startup_completed=startup_completed)
    filled = broker.submit(market("old-fill", strategy="momentum"))
    working = broker.submit(far_limit("old-limit"))
    fake.advance()
    fills_before = broker.fills_since(None)
    fake.disconnect()
    with pytest.raises(BrokerUnavailable):
        broker.get_order("old-fill")
    fake.connect()
    again = IBKRBroker(fake, clock=lambda: fake.now)  # type: ignore[arg-type]

    resubmitted = again.submit(market("old-fill"))
    assert resubmitted.broker_order_id == filled.broker_order_id
    assert resubmitted.status is OrderStatus.FILLED
    assert resubmitted.filled_quantity == 10
    assert resubmitted.avg_fill_price == 100.5
    assert again.submit(far_limit("old-limit")).broker_order_id == working.broker_order_id
    assert placed(fake) == 2
    assert [r.client_order_id for r in again.open_orders()] == ["old-limit"]

    def key(f: Fill) -> tuple[str, str, float, float, float]:
        return (f.fill_id, f.client_order_id, f.quantity, f.price, f.commission)

    assert [key(f) for f in again.fills_since(None)] == [key(f) for f in fills_before]
    assert [f.strategy for f in fills_before] == ["momentum"]  # remembered per instance only
    assert again.cancel("old-limit").status is OrderStatus.CANCELED
    assert again.get_order("never") is None


def test_completed_orders_are_looked_up_with_req_completed_orders() -> None:
    broker, fake = make(startup_completed=False)
    broker.submit(market("done"))
    fake.advance()
    fake.disconnect()
    fake.connect()
    assert all(t.order.orderRef != "done" for t in fake.trades())
    again = IBKRBroker(fake, clock=lambda: fake.now)  # type: ignore[arg-type]
    calls = len(fake.calls)
    assert again.submit(market("done")).status is OrderStatus.FILLED
    assert "reqCompletedOrders" in fake.calls[calls:]
    assert placed(fake) == 1


# ------------------------------------------------------------------------------ faults


def test_disconnection_raises_broker_unavailable_everywhere() -> None:
    broker, fake = make()
    fake.connected = False
    calls = [
        lambda: broker.submit(market("x")),
        lambda: broker.cancel("x"),
        lambda: broker.get_order("x"),
        broker.open_orders,
        broker.positions,
        broker.account,
        lambda: broker.fills_since(None),
        broker.mass_status,
    ]
    for call in calls:
        with pytest.raises(BrokerUnavailable) as info:
            call()
        assert isinstance(info.value, TransientError)
    with pytest.raises(BrokerUnavailable):
        IBKRBroker(fake)  # type: ignore[arg-type]


def test_a_connection_error_while_placing_is_transient_and_the_retry_places_once() -> None:
    broker, fake = make()
    fake.place_error = ConnectionError("socket closed")
    with pytest.raises(BrokerUnavailable, match="socket closed"):
        broker.submit(market("retry"))
    report = broker.submit(market("retry"))
    assert report.status is OrderStatus.ACCEPTED
    assert broker.submit(market("retry")).broker_order_id == report.broker_order_id
    fake.advance()
    assert sum(f.quantity for f in broker.fills_since(None)) == 10


def test_place_order_raising_otherwise_is_a_broker_error() -> None:
    broker, fake = make()
    fake.place_error = ValueError("bad order field")
    with pytest.raises(BrokerError, match="bad order field"):
        broker.submit(market("bad"))
    assert broker.get_order("bad") is None


def test_a_silently_dropped_order_is_confirmed_lost_then_placed_again() -> None:
    broker, fake = make()
    fake.drop_next = 1
    first = broker.submit(market("drop"))
    assert first.status is OrderStatus.NEW  # never acknowledged: no permId
    assert first.broker_order_id == "7.1"
    assert "waitOnUpdate" in fake.calls
    assert [r.status for r in broker.open_orders()] == [OrderStatus.NEW]
    fake.advance()
    assert broker.fills_since(None) == []

    second = broker.submit(market("drop"))
    assert "reqOpenOrders" in fake.calls
    assert second.status is OrderStatus.ACCEPTED
    assert second.broker_order_id != first.broker_order_id
    assert placed(fake) == 2
    assert broker.submit(market("drop")).broker_order_id == second.broker_order_id
    fake.advance()
    report = broker.get_order("drop")
    assert report is not None
    assert (report.status, report.filled_quantity) == (OrderStatus.FILLED, 10)
    assert broker.open_orders() == []
    assert sum(f.quantity for f in broker.fills_since(None)) == 10


def test_an_acknowledged_order_is_never_placed_twice() -> None:
    broker, fake = make()
    broker.submit(far_limit("ack"))
    for _ in range(3):
        broker.submit(far_limit("ack"))
    assert placed(fake) == 1
    assert "reqOpenOrders" not in fake.calls


def test_cancel_of_a_dropped_order_cancels_it_locally() -> None:
    broker, fake = make()
    fake.drop_next = 1
    broker.submit(market("gone"))
    report = broker.cancel("gone")
    assert report.status is OrderStatus.CANCELED
    assert "10147" in report.reason


# -------------------------------------------------------------------- accounts, connect


def test_a_login_with_several_accounts_needs_one_chosen() -> None:
    fake = FakeIB(PATHS, accounts=(ACCOUNT, "DU7654321"))
    with pytest.raises(ConfigError, match="account="):
        IBKRBroker(fake)  # type: ignore[arg-type]
    broker = IBKRBroker(fake, account=ACCOUNT, clock=lambda: fake.now)  # type: ignore[arg-type]
    assert broker.account().equity == 100_000.0


def test_connect_to_a_closed_port_is_broker_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = IbkrSettings(host="127.0.0.1", port=port, client_id=99)
    with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port}"):
        IBKRBroker.connect(settings, timeout=2.0)


# ------------------------------------------------------------------- the optional extra


def test_missing_extra_is_a_config_error_naming_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ib_async", None)
    monkeypatch.setitem(sys.modules, "ib_insync", None)
    with pytest.raises(ConfigError) as info:
        ib_api()
    assert INSTALL_HINT in str(info.value)
    assert "pip install 'sovereign[ibkr]'" in str(info.value)
    with pytest.raises(ConfigError, match=r"sovereign\[ibkr\]"):
        IBKRBroker.connect(IbkrSettings())
    with pytest.raises(ConfigError, match=r"sovereign\[ibkr\]"):
        ibp.to_ib_order(market("x"))


def test_ib_insync_is_used_when_ib_async_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in = types.ModuleType("ib_insync")
    stand_in.Stock = ib_async.Stock  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ib_async", None)
    monkeypatch.setitem(sys.modules, "ib_insync", stand_in)
    assert ib_api() is stand_in
    assert ibp.to_ib_contract("AAA").symbol == "AAA"


def test_importing_the_adapter_does_not_import_ib_async() -> None:
    code = "import sys, sovereign.brokers.ibkr; print('ib_async' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
