"""Alpaca wire mapping, without a network.

Fixtures are shaped like Alpaca's documented responses (the examples of the Trading API
reference), and each one is checked against alpaca-py 0.44's own response models first, so a
fixture that drifts from what Alpaca sends fails here instead of passing silently.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from sovereign.brokers.alpaca import parsing
from sovereign.brokers.alpaca.parsing import STATUS_TABLE
from sovereign.brokers.models import Order, OrderStatus, OrderType, Side, TimeInForce
from sovereign.errors import BrokerError

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.trading.enums import OrderStatus as AlpacaStatus
    from alpaca.trading.models import Order as AlpacaOrder
    from alpaca.trading.models import Position as AlpacaPosition
    from alpaca.trading.models import TradeAccount

ORDER: dict[str, Any] = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "sv-mome-0123456789abcdef01234567",
    "created_at": "2024-01-02T14:30:00.123456789Z",
    "updated_at": "2024-01-02T14:30:01.500000000Z",
    "submitted_at": "2024-01-02T14:30:00.120000Z",
    "filled_at": None,
    "expired_at": None,
    "canceled_at": None,
    "failed_at": None,
    "replaced_at": None,
    "replaced_by": None,
    "replaces": None,
    "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
    "symbol": "AAPL",
    "asset_class": "us_equity",
    "notional": None,
    "qty": "10",
    "filled_qty": "0",
    "filled_avg_price": None,
    "order_class": "",
    "order_type": "market",
    "type": "market",
    "side": "buy",
    "time_in_force": "day",
    "limit_price": None,
    "stop_price": None,
    "status": "accepted",
    "extended_hours": False,
    "legs": None,
    "trail_percent": None,
    "trail_price": None,
    "hwm": None,
    "subtag": None,
    "source": None,
    "position_intent": "buy_to_open",
}

POSITION: dict[str, Any] = {
    "asset_id": "904837e3-3b76-47ec-b432-046db621571b",
    "symbol": "AAPL",
    "exchange": "NASDAQ",
    "asset_class": "us_equity",
    "asset_marginable": True,
    "avg_entry_price": "100.0",
    "qty": "5",
    "qty_available": "4",
    "side": "long",
    "market_value": "600.0",
    "cost_basis": "500.0",
    "unrealized_pl": "100.0",
    "unrealized_plpc": "0.20",
    "unrealized_intraday_pl": "10.0",
    "unrealized_intraday_plpc": "0.0084",
    "current_price": "120.0",
    "lastday_price": "119.0",
    "change_today": "0.0084",
}

SHORT: dict[str, Any] = {
    **POSITION,
    "symbol": "TSLA",
    "qty": "-2.5",
    "side": "short",
    "avg_entry_price": "200.0",
    "market_value": "-450.0",
    "cost_basis": "-500.0",
    "unrealized_pl": "50.0",
    "current_price": "180.0",
}

ACCOUNT: dict[str, Any] = {
    "id": "e6fe16f3-64a4-4921-8928-cadf02f92f98",
    "account_number": "010203ABCD",
    "status": "ACTIVE",
    "currency": "USD",
    "buying_power": "262113.632",
    "regt_buying_power": "80680.36",
    "daytrading_buying_power": "262113.632",
    "cash": "99850.0",
    "portfolio_value": "100000.0",
    "pattern_day_trader": False,
    "trading_blocked": False,
    "transfers_blocked": False,
    "account_blocked": False,
    "created_at": "2019-06-12T22:47:07.99658Z",
    "trade_suspended_by_user": False,
    "multiplier": "4",
    "shorting_enabled": True,
    "equity": "100000.0",
    "last_equity": "99500.0",
    "long_market_value": "600.0",
    "short_market_value": "-450.0",
    "initial_margin": "63480.38",
    "maintenance_margin": "38088.228",
    "last_maintenance_margin": "38000.832",
    "sma": "0",
    "daytrade_count": 0,
}

ACTIVITY: dict[str, Any] = {
    "activity_type": "FILL",
    "cum_qty": "1",
    "id": "20190524113406977::8efc7b9a-8b2b-4000-9955-d36e7db0df74",
    "leaves_qty": "0",
    "price": "1.63",
    "qty": "1",
    "side": "buy",
    "symbol": "LPCN",
    "transaction_time": "2019-05-24T15:34:06.977Z",
    "order_id": "904837e3-3b76-47ec-b432-046db621571b",
    "type": "fill",
    "order_status": "filled",
}

# Our reading of each Alpaca status for an order with nothing filled yet.
EXPECTED = {
    "new": OrderStatus.NEW,
    "pending_new": OrderStatus.NEW,
    "pending_review": OrderStatus.NEW,
    "accepted": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "done_for_day": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED,
    "canceled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def test_fixtures_are_valid_alpaca_py_models() -> None:
    assert AlpacaOrder(**ORDER).client_order_id == ORDER["client_order_id"]
    assert AlpacaPosition(**POSITION).qty == "5"
    assert AlpacaPosition(**SHORT).side.value == "short"
    assert TradeAccount(**ACCOUNT).equity == "100000.0"


# ---------------------------------------------------------------------------------- statuses


def test_every_status_alpaca_py_knows_is_mapped() -> None:
    assert {s.value for s in AlpacaStatus} == set(STATUS_TABLE)


@pytest.mark.parametrize(("alpaca", "ours"), sorted(EXPECTED.items()))
def test_status_table(alpaca: str, ours: OrderStatus) -> None:
    assert parsing.order_status(alpaca, quantity=10.0, filled=0.0) is ours
    assert parsing.order_report({**ORDER, "status": alpaca}).status is ours


def test_unknown_status_is_a_clear_broker_error() -> None:
    with pytest.raises(BrokerError, match="unknown Alpaca order status 'teleported'"):
        parsing.order_report({**ORDER, "status": "teleported"})


@pytest.mark.parametrize(
    ("alpaca", "filled", "ours"),
    [
        ("new", "4", OrderStatus.PARTIALLY_FILLED),
        ("done_for_day", "4", OrderStatus.PARTIALLY_FILLED),
        ("calculated", "10", OrderStatus.FILLED),
        ("pending_cancel", "10", OrderStatus.FILLED),
        ("canceled", "4", OrderStatus.CANCELED),  # closed stays closed, with its fill
        ("expired", "4", OrderStatus.EXPIRED),
    ],
)
def test_open_statuses_are_refined_by_the_fill(alpaca: str, filled: str, ours: OrderStatus) -> None:
    report = parsing.order_report(
        {**ORDER, "status": alpaca, "filled_qty": filled, "filled_avg_price": "101.5"}
    )
    assert report.status is ours
    assert report.filled_quantity == float(filled)
    assert report.avg_fill_price == 101.5


# ------------------------------------------------------------------------------------ orders


def test_order_report_fields() -> None:
    report = parsing.order_report(ORDER, strategy="momentum")
    assert report.client_order_id == ORDER["client_order_id"]
    assert report.broker_order_id == ORDER["id"]
    assert report.symbol == "AAPL"
    assert report.side is Side.BUY
    assert report.status is OrderStatus.ACCEPTED
    assert report.quantity == 10.0
    assert report.filled_quantity == 0.0
    assert report.avg_fill_price is None
    assert report.timestamp == datetime(2024, 1, 2, 14, 30, 1, 500000, tzinfo=UTC)
    assert report.strategy == "momentum"


def test_an_alpaca_py_model_gives_the_same_report_as_its_json() -> None:
    filled = {**ORDER, "status": "filled", "filled_qty": "10", "filled_avg_price": "187.25"}
    assert parsing.order_report(AlpacaOrder(**filled)) == parsing.order_report(filled)


def test_fractional_partial_fill() -> None:
    raw = {
        **ORDER,
        "qty": "0.5",
        "filled_qty": "0.125",
        "filled_avg_price": "187.3",
        "status": "partially_filled",
        "side": "sell",
    }
    report = parsing.order_report(raw)
    assert (report.quantity, report.filled_quantity, report.avg_fill_price) == (0.5, 0.125, 187.3)
    assert report.side is Side.SELL
    assert report.status is OrderStatus.PARTIALLY_FILLED


def test_notional_order_has_no_quantity_and_zero_price_means_no_price() -> None:
    report = parsing.order_report(
        {**ORDER, "qty": None, "notional": "500", "filled_avg_price": "0"}
    )
    assert report.quantity is None
    assert report.avg_fill_price is None


def test_replaced_and_rejected_orders_say_why() -> None:
    replaced = parsing.order_report(
        {**ORDER, "status": "replaced", "replaced_by": "11111111-2222-4333-8444-555555555555"}
    )
    assert "replaced by order 11111111" in replaced.reason
    assert parsing.order_report({**ORDER, "status": "rejected"}).reason == "rejected by Alpaca"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"client_order_id": None}, "client_order_id"),
        ({"status": None}, "status"),
        ({"qty": "ten"}, "qty 'ten' is not a number"),
        ({"filled_qty": "nan"}, "not finite"),
        ({"side": "short"}, "unknown side 'short'"),
        ({"updated_at": "yesterday"}, "updated_at 'yesterday' is not a time"),
        ({"updated_at": "2024-01-02T14:30:00"}, "no UTC offset"),
        ({"qty": "-1"}, "qty"),
    ],
)
def test_malformed_order_is_a_clear_broker_error(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(BrokerError, match=message):
        parsing.order_report({**ORDER, **patch})


def test_missing_field_and_non_object() -> None:
    raw = dict(ORDER)
    del raw["symbol"]
    with pytest.raises(BrokerError, match="missing field 'symbol'"):
        parsing.order_report(raw)
    with pytest.raises(BrokerError, match="expected an Alpaca JSON object"):
        parsing.order_report(["not", "an", "order"])


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
@pytest.mark.parametrize("tif", list(TimeInForce))
def test_market_order_request(side: Side, tif: TimeInForce) -> None:
    order = Order(
        client_order_id="cid-1", symbol="AAPL", side=side, quantity=2.5, time_in_force=tif
    )
    request = parsing.order_request(order, quantity=2.5)
    assert type(request).__name__ == "MarketOrderRequest"
    assert request.to_request_fields() == {
        "symbol": "AAPL",
        "qty": 2.5,
        "side": side.value,
        "type": "market",
        "time_in_force": tif.value,
        "client_order_id": "cid-1",
    }


def test_limit_order_request() -> None:
    order = Order(
        client_order_id="cid-2",
        symbol="AAPL",
        side=Side.SELL,
        quantity=3,
        order_type=OrderType.LIMIT,
        limit_price=190.5,
        time_in_force=TimeInForce.GTC,
    )
    fields = parsing.order_request(order, quantity=3).to_request_fields()
    assert fields["type"] == "limit"
    assert fields["limit_price"] == 190.5
    assert fields["time_in_force"] == "gtc"
    assert fields["client_order_id"] == "cid-2"


def test_equity_fraction_resolves_to_whole_shares() -> None:
    order = Order(client_order_id="f", symbol="AAPL", side=Side.BUY, equity_fraction=0.1)
    assert parsing.resolve_quantity(order, equity=100_000.0, price=333.0) == 30.0  # floor(30.03)
    assert parsing.resolve_quantity(order, equity=1_000.0, price=333.0) == 0.0
    with pytest.raises(BrokerError, match="needs the account equity and a last price"):
        parsing.resolve_quantity(order, equity=None, price=333.0)
    plain = Order(client_order_id="q", symbol="AAPL", side=Side.BUY, quantity=0.75)
    assert parsing.resolve_quantity(plain, equity=None, price=None) == 0.75


def test_zero_quantity_request_is_refused() -> None:
    order = Order(client_order_id="f", symbol="AAPL", side=Side.BUY, equity_fraction=0.1)
    with pytest.raises(BrokerError, match="not > 0"):
        parsing.order_request(order, quantity=0.0)


# ------------------------------------------------------------------- positions and account


def test_long_and_short_positions() -> None:
    long = parsing.position(POSITION)
    assert (long.symbol, long.quantity, long.avg_price, long.market_price) == (
        "AAPL",
        5.0,
        100.0,
        120.0,
    )
    short = parsing.position(SHORT)
    assert short.quantity == -2.5
    assert short.market_value == -450.0
    # A short sent with a positive qty is still short: the sign comes from ``side``.
    assert parsing.position({**SHORT, "qty": "2.5"}).quantity == -2.5
    with pytest.raises(BrokerError, match="unknown side 'flat'"):
        parsing.position({**POSITION, "side": "flat"})


def test_account_report() -> None:
    now = datetime(2024, 1, 2, 21, tzinfo=UTC)
    report = parsing.account_report(ACCOUNT, [POSITION, SHORT], now=now)
    assert report.cash == 99_850.0
    assert report.equity == 100_000.0
    assert report.gross_exposure == 1_050.0
    assert report.net_exposure == 150.0
    assert report.unrealized_pnl == 150.0
    assert report.realized_pnl == 0.0
    assert report.timestamp == now
    with pytest.raises(BrokerError, match="field 'cash' is null"):
        parsing.account_report({**ACCOUNT, "cash": None}, [], now=now)


# ------------------------------------------------------------------------------------ fills


def test_fill_from_activity() -> None:
    fill = parsing.fill(ACTIVITY, client_order_id="cid-9", strategy="momentum")
    assert fill.fill_id == ACTIVITY["id"]
    assert (fill.symbol, fill.side, fill.quantity, fill.price) == ("LPCN", Side.BUY, 1.0, 1.63)
    assert fill.commission == 0.0
    assert fill.timestamp == datetime(2019, 5, 24, 15, 34, 6, 977000, tzinfo=UTC)
    assert (fill.client_order_id, fill.strategy) == ("cid-9", "momentum")
    assert parsing.activity_order_id(ACTIVITY) == ACTIVITY["order_id"]
    partial = parsing.fill(
        {**ACTIVITY, "type": "partial_fill", "qty": "0.4", "side": "sell"}, client_order_id="c"
    )
    assert (partial.quantity, partial.side) == (0.4, Side.SELL)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"activity_type": "DIV"}, "expected a FILL activity"),
        ({"qty": "0"}, "not > 0"),
        ({"price": None}, "field 'price' is null"),
        ({"transaction_time": 1558712046}, "is not a time"),
    ],
)
def test_malformed_activity(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(BrokerError, match=message):
        parsing.fill({**ACTIVITY, **patch}, client_order_id="c")


# ------------------------------------------------------------------------------------- bars


def test_timeframes() -> None:
    assert parsing.parse_timeframe("1Day") == (1, "Day")
    assert parsing.parse_timeframe("15Min") == (15, "Min")
    with pytest.raises(BrokerError, match="unknown Alpaca timeframe"):
        parsing.parse_timeframe("1d")


def test_bar_stamps() -> None:
    opens = pd.Series(["2024-01-02T05:00:00Z", "2024-07-01T04:00:00Z"])
    daily = parsing.bar_close_times(opens, "1Day")
    assert list(daily) == [
        pd.Timestamp("2024-01-02", tz="UTC"),
        pd.Timestamp("2024-07-01", tz="UTC"),
    ]
    five = parsing.bar_close_times(pd.Series(["2024-01-02T14:30:00Z"]), "5Min")
    assert five.iloc[0] == pd.Timestamp("2024-01-02T14:35:00", tz="UTC")


def test_bars_frame() -> None:
    bar = {"t": "2024-01-02T05:00:00Z", "o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 10, "n": 3}
    frame = parsing.bars_frame({"AAA": [bar], "BBB": [bar]})
    assert list(frame.columns) == ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    assert list(frame["symbol"]) == ["AAA", "BBB"]
    with pytest.raises(BrokerError, match="missing 'v'"):
        parsing.bars_frame({"AAA": [{k: v for k, v in bar.items() if k != "v"}]})
    with pytest.raises(BrokerError, match="expected a list"):
        parsing.bars_frame({"AAA": bar})
