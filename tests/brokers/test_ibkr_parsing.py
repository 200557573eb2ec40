"""The IBKR wire mapping, on objects built from ib_async's own classes."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta, timezone

import ib_async
import pytest
from ib_async import (
    AccountValue,
    CommissionReport,
    Execution,
    LimitOrder,
    MarketOrder,
    PortfolioItem,
    Stock,
    Trade,
)
from ib_async import Fill as IBFill
from ib_async import OrderStatus as IBStatus
from ib_async import Position as IBPosition
from ib_async.objects import TradeLogEntry

from sovereign.brokers import Order, OrderStatus, OrderType, Side, TimeInForce
from sovereign.brokers.ibkr import parsing as ibp
from sovereign.errors import BrokerError

T = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
NEW_YORK = timezone(timedelta(hours=-5))
AAA = Stock("AAA", "SMART", "USD")


def _order(**kw: object) -> Order:
    base: dict[str, object] = {"client_order_id": "sv-x-1", "symbol": "AAA", "side": Side.BUY}
    base.update(kw)
    if "quantity" not in base and "equity_fraction" not in base:
        base["quantity"] = 12.0
    return Order(**base)  # type: ignore[arg-type]


def _execution(exec_id: str, shares: float, price: float, side: str = "BOT") -> IBFill:
    execution = Execution(
        execId=exec_id, time=T, side=side, shares=shares, price=price, orderRef="sv-x-1"
    )
    return IBFill(AAA, execution, CommissionReport(execId=exec_id, commission=1.25), T)


# -------------------------------------------------------------------------------- commands


def test_market_order_maps_to_an_ib_market_order() -> None:
    ib_order = ibp.to_ib_order(_order(side=Side.SELL, time_in_force=TimeInForce.IOC))
    assert isinstance(ib_order, MarketOrder)
    assert (ib_order.orderType, ib_order.action, ib_order.totalQuantity) == ("MKT", "SELL", 12.0)
    assert (ib_order.tif, ib_order.orderRef, ib_order.account) == ("IOC", "sv-x-1", "")


def test_limit_order_maps_to_an_ib_limit_order_with_account() -> None:
    order = _order(order_type=OrderType.LIMIT, limit_price=99.5, time_in_force=TimeInForce.GTC)
    ib_order = ibp.to_ib_order(order, account="DU1")
    assert isinstance(ib_order, LimitOrder)
    assert (ib_order.orderType, ib_order.action, ib_order.lmtPrice) == ("LMT", "BUY", 99.5)
    assert (ib_order.tif, ib_order.orderRef, ib_order.account) == ("GTC", "sv-x-1", "DU1")


def test_tables_cover_every_member_of_our_enums() -> None:
    assert set(ibp.ORDER_ACTION) == set(Side)
    assert set(ibp.TIME_IN_FORCE) == set(TimeInForce)
    assert set(ibp.ORDER_TYPE) == set(OrderType)
    assert dict(ibp.TIME_IN_FORCE) == {
        TimeInForce.DAY: "DAY",
        TimeInForce.GTC: "GTC",
        TimeInForce.IOC: "IOC",
    }
    for side, action in ibp.ORDER_ACTION.items():
        assert ibp.side_of_action(action) is side


def test_contract_is_a_smart_routed_usd_stock() -> None:
    contract = ibp.to_ib_contract("MSFT")
    assert isinstance(contract, Stock)
    assert (contract.symbol, contract.exchange, contract.currency, contract.secType) == (
        "MSFT",
        "SMART",
        "USD",
        "STK",
    )


def test_equity_fraction_order_cannot_be_sent_to_ib() -> None:
    with pytest.raises(BrokerError, match="equity_fraction"):
        ibp.to_ib_order(_order(equity_fraction=0.05))


# ------------------------------------------------------------------------- order status


def test_status_table_covers_every_status_ib_async_declares() -> None:
    declared = {v for k, v in vars(IBStatus).items() if k[:1].isupper() and isinstance(v, str)}
    assert declared == set(ibp.ORDER_STATUS)
    for status in IBStatus.DoneStates:
        assert not ibp.ORDER_STATUS[status].is_open
    for status in IBStatus.ActiveStates:
        assert ibp.ORDER_STATUS[status].is_open


@pytest.mark.parametrize(
    ("ib_status", "filled", "expected"),
    [
        ("PendingSubmit", 0, OrderStatus.NEW),
        ("ApiPending", 0, OrderStatus.NEW),
        ("PreSubmitted", 0, OrderStatus.ACCEPTED),
        ("Submitted", 0, OrderStatus.ACCEPTED),
        ("Submitted", 3, OrderStatus.PARTIALLY_FILLED),
        ("PendingCancel", 0, OrderStatus.ACCEPTED),
        ("PendingCancel", 3, OrderStatus.PARTIALLY_FILLED),
        ("ValidationError", 0, OrderStatus.ACCEPTED),
        ("ApiUpdate", 0, OrderStatus.ACCEPTED),
        ("Filled", 12, OrderStatus.FILLED),
        ("Cancelled", 0, OrderStatus.CANCELED),
        ("Cancelled", 3, OrderStatus.CANCELED),
        ("ApiCancelled", 0, OrderStatus.CANCELED),
        ("Inactive", 0, OrderStatus.REJECTED),
    ],
)
def test_order_status_table(ib_status: str, filled: float, expected: OrderStatus) -> None:
    assert ibp.order_status(ib_status, filled) is expected


@pytest.mark.parametrize("ib_status", ["", "Rejected", "submitted"])
def test_unknown_status_is_a_broker_error(ib_status: str) -> None:
    with pytest.raises(BrokerError, match="unknown IBKR order status"):
        ibp.order_status(ib_status, 0)


# ------------------------------------------------------------------------ order reports


def _trade(
    status: IBStatus, *, perm_id: int = 4242, log: list[TradeLogEntry] | None = None
) -> Trade:
    order = MarketOrder("BUY", 12, orderRef="sv-x-1", orderId=3, clientId=7, permId=perm_id)
    return Trade(AAA, order, status, [], [TradeLogEntry(T, status.status)] if log is None else log)


def test_report_of_a_partly_filled_trade_uses_its_fills() -> None:
    trade = _trade(IBStatus(status="Submitted", filled=5, remaining=7, avgFillPrice=100.4))
    trade.fills += [_execution("e1", 2, 100.0), _execution("e2", 3, 100.5)]
    report = ibp.order_report(trade, now=T + timedelta(hours=1), strategy="mom")
    assert report.client_order_id == "sv-x-1"
    assert report.broker_order_id == "4242"
    assert (report.symbol, report.side, report.strategy) == ("AAA", Side.BUY, "mom")
    assert report.status is OrderStatus.PARTIALLY_FILLED
    assert (report.quantity, report.filled_quantity) == (12, 5)
    assert report.avg_fill_price == pytest.approx(100.4)
    assert report.timestamp == T  # from TWS's log, not ``now``


def test_report_takes_vwap_of_fills_when_the_status_lags() -> None:
    trade = _trade(IBStatus(status="Submitted", filled=0, remaining=12))
    trade.fills += [_execution("e1", 2, 100.0), _execution("e2", 3, 100.5)]
    report = ibp.order_report(trade, now=T)
    assert report.filled_quantity == 5
    assert report.avg_fill_price == pytest.approx((200.0 + 301.5) / 5)


def test_report_of_a_completed_order_from_req_completed_orders() -> None:
    trade = _trade(IBStatus(status="Filled"), log=[])
    trade.order.filledQuantity = 12
    now = datetime(2024, 3, 5, tzinfo=UTC)
    bare = ibp.order_report(trade, now=now)
    assert (bare.status, bare.filled_quantity, bare.avg_fill_price) == (
        OrderStatus.FILLED,
        12,
        None,
    )
    assert bare.timestamp == now
    with_fills = ibp.order_report(trade, now=now, fills=[_execution("e1", 12, 101.0)])
    assert with_fills.avg_fill_price == 101.0


def test_unacknowledged_order_has_a_session_id_and_the_error_is_the_reason() -> None:
    log = [
        TradeLogEntry(T, "PendingSubmit"),
        TradeLogEntry(T, "Cancelled", "Order rejected - reason: not enough margin", 201),
    ]
    trade = _trade(IBStatus(status="Cancelled"), perm_id=0, log=log)
    report = ibp.order_report(trade, now=T)
    assert report.broker_order_id == "7.3"
    assert report.status is OrderStatus.CANCELED
    assert report.reason == "error 201: Order rejected - reason: not enough margin"


def test_fill_log_lines_are_not_reasons_and_held_orders_say_why() -> None:
    log = [TradeLogEntry(T, "Submitted"), TradeLogEntry(T, "Submitted", "Fill 2.0@100.0")]
    trade = _trade(IBStatus(status="PreSubmitted", whyHeld="locate"), log=log)
    assert ibp.order_report(trade, now=T).reason == "held: locate"


def test_report_times_are_converted_to_utc_and_naive_ones_refused() -> None:
    local = datetime(2024, 3, 4, 10, 0, tzinfo=NEW_YORK)
    trade = _trade(IBStatus(status="Submitted"), log=[TradeLogEntry(local, "Submitted")])
    stamp = ibp.order_report(trade, now=T).timestamp
    assert (stamp, stamp.tzinfo) == (T, UTC)
    naive = _trade(IBStatus(status="Submitted"), log=[TradeLogEntry(T.replace(tzinfo=None), "")])
    with pytest.raises(BrokerError, match="naive"):
        ibp.order_report(naive, now=T)


# --------------------------------------------------------------------------------- fills


def test_fill_maps_execution_and_commission() -> None:
    fill = ibp.fill_from_ib(_execution("0001.01", 7, 55.5, side="SLD"), strategy="rev")
    assert fill.fill_id == "0001.01"
    assert (fill.client_order_id, fill.symbol, fill.side) == ("sv-x-1", "AAA", Side.SELL)
    assert (fill.quantity, fill.price, fill.commission) == (7, 55.5, 1.25)
    assert (fill.timestamp, fill.strategy) == (T, "rev")
    assert fill.signed_quantity == -7


def test_a_commission_not_reported_yet_counts_as_zero() -> None:
    raw = _execution("e1", 1, 10.0)
    unset = raw._replace(commissionReport=CommissionReport(commission=sys.float_info.max))
    assert ibp.fill_from_ib(unset).commission == 0.0


def test_unknown_execution_side_is_a_broker_error() -> None:
    with pytest.raises(BrokerError, match="execution side"):
        ibp.fill_from_ib(_execution("e1", 1, 10.0, side="BUY"))


# ------------------------------------------------------------------- positions, account


def test_positions_from_positions_and_portfolio() -> None:
    short = ibp.position_from_ib(IBPosition("DU1", AAA, -20.0, 101.5), market_price=99.0)
    assert (short.symbol, short.quantity, short.avg_price, short.market_price) == (
        "AAA",
        -20,
        101.5,
        99.0,
    )
    assert short.market_value == -1980.0
    assert ibp.position_from_ib(IBPosition("DU1", AAA, 5.0, 10.0)).market_price is None
    item = PortfolioItem(AAA, 5.0, 12.0, 60.0, 10.0, 10.0, 0.0, "DU1")
    assert ibp.position_from_portfolio(item) == ibp.position_from_ib(
        IBPosition("DU1", AAA, 5.0, 10.0), market_price=12.0
    )


def _values(*rows: tuple[str, str, str]) -> list[AccountValue]:
    return [AccountValue("DU1", tag, value, cur, "") for tag, value, cur in rows]


def test_account_report_prefers_base_rows_and_skips_other_currencies() -> None:
    values = _values(
        ("AccountType", "INDIVIDUAL", ""),
        ("NetLiquidation", "105000.50", "USD"),
        ("TotalCashValue", "90000", "USD"),
        ("TotalCashValue", "85000", "BASE"),
        ("TotalCashValue", "1", "EUR"),
        ("GrossPositionValue", "25000", "USD"),
        ("StockMarketValue", "15000", "USD"),
        ("RealizedPnL", "120.5", "BASE"),
        ("UnrealizedPnL", "-30", "USD"),
    )
    report = ibp.account_report(values, now=T)
    assert (report.equity, report.cash) == (105000.5, 85000.0)
    assert (report.gross_exposure, report.net_exposure) == (25000.0, 15000.0)
    assert (report.realized_pnl, report.unrealized_pnl) == (120.5, -30.0)
    assert report.timestamp == T


def test_account_report_fallbacks_and_missing_tags() -> None:
    minimal = _values(("NetLiquidation", "1000", "USD"), ("TotalCashValue", "400", "USD"))
    report = ibp.account_report(minimal, now=T)
    assert (report.net_exposure, report.gross_exposure) == (600.0, 600.0)
    assert (report.realized_pnl, report.unrealized_pnl) == (0.0, 0.0)
    with pytest.raises(BrokerError, match="NetLiquidation"):
        ibp.account_report(_values(("TotalCashValue", "400", "USD")), now=T)
    with pytest.raises(BrokerError, match="NetLiquidation, TotalCashValue"):
        ibp.account_report(_values(("NetLiquidation", "1000", "EUR")), now=T)


def test_ib_api_prefers_ib_async() -> None:
    assert ibp.ib_api() is ib_async
