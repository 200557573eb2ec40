"""Alpaca wire mapping: pure tables and functions, no network, no clock.

Inbound, Alpaca's JSON (as the Trading and Market Data REST APIs send it, or an alpaca-py model,
which is dumped to the same JSON first) becomes the broker port's value objects:

- an order           -> :class:`~sovereign.brokers.models.OrderReport` (:data:`STATUS_TABLE`)
- a position         -> :class:`~sovereign.brokers.models.Position` (signed quantity)
- account+positions  -> :class:`~sovereign.brokers.models.AccountReport`
- a FILL activity    -> :class:`~sovereign.brokers.models.Fill`
- ``/v2/stocks/bars`` -> a long OHLCV frame in the documented file schema

Outbound, an :class:`~sovereign.brokers.models.Order` becomes an alpaca-py
``MarketOrderRequest`` / ``LimitOrderRequest`` with our ``client_order_id`` passed through.

Alpaca sends decimals as strings (``"10"``, ``"100.25"``) and times as RFC 3339 with up to
nanoseconds (``"2024-01-02T14:30:00.123456789Z"``); both are accepted. Anything malformed raises
:class:`~sovereign.errors.BrokerError` naming the field, never a bare KeyError or ValueError.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from sovereign.brokers.costs import whole_shares_for_fraction
from sovereign.brokers.models import (
    AccountReport,
    Fill,
    Order,
    OrderReport,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from sovereign.errors import BrokerError

with warnings.catch_warnings():
    # Importing alpaca.trading loads its websocket stream, which imports websockets.legacy and
    # warns at import time (third-party noise; the REST client does not use websockets).
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

Json = Mapping[str, Any]

# Every order status Alpaca documents (alpaca-py 0.44 ``alpaca.trading.enums.OrderStatus`` and
# https://docs.alpaca.markets/docs/orders-at-alpaca#order-lifecycle), mapped to ours. Statuses of
# an order that is still alive at Alpaca map to an open status (NEW or ACCEPTED), and
# :func:`order_status` then refines it by the fill: partly filled -> PARTIALLY_FILLED, fully
# filled -> FILLED. Closed statuses are kept as they are, whatever the fill (like the paper
# exchange, a DAY order canceled after a partial fill is CANCELED with filled_quantity > 0).
STATUS_TABLE: Mapping[str, OrderStatus] = {
    "new": OrderStatus.NEW,  # routed to the exchange, working
    "pending_new": OrderStatus.NEW,  # received by Alpaca, not yet routed
    "pending_review": OrderStatus.NEW,  # held for a compliance review before routing
    "accepted": OrderStatus.ACCEPTED,  # accepted by Alpaca, routed when the market opens
    "accepted_for_bidding": OrderStatus.ACCEPTED,  # accepted for an auction
    "held": OrderStatus.ACCEPTED,  # a bracket/OTO leg waiting for its parent
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "done_for_day": OrderStatus.ACCEPTED,  # done for today, works again tomorrow (GTC)
    "calculated": OrderStatus.ACCEPTED,  # done for the day, settlement figures pending
    "stopped": OrderStatus.ACCEPTED,  # a fill is guaranteed but has not happened yet
    "suspended": OrderStatus.ACCEPTED,  # not eligible for trading right now, still alive
    "pending_cancel": OrderStatus.ACCEPTED,  # cancel requested, not confirmed: still live
    "pending_replace": OrderStatus.ACCEPTED,  # replace requested, not confirmed: still live
    "canceled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,  # closed; its replacement is another order
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}

SIDE_TO_ALPACA: Mapping[Side, str] = {Side.BUY: "buy", Side.SELL: "sell"}
SIDE_FROM_ALPACA: Mapping[str, Side] = {v: k for k, v in SIDE_TO_ALPACA.items()}
TIF_TO_ALPACA: Mapping[TimeInForce, str] = {
    TimeInForce.DAY: "day",
    TimeInForce.GTC: "gtc",
    TimeInForce.IOC: "ioc",
}

# Alpaca's bar timeframe units (``alpaca.data.timeframe.TimeFrameUnit``) and their length;
# a month has no fixed length and is only used for daily-or-longer stamping.
_TIMEFRAME_RE = re.compile(r"^(\d+)(Min|Hour|Day|Week|Month)$")
_UNIT_LENGTH: Mapping[str, timedelta] = {
    "Min": timedelta(minutes=1),
    "Hour": timedelta(hours=1),
}
MARKET_TZ = "America/New_York"

_EPS = 1e-9


# ---------------------------------------------------------------------------------- basics


def as_json(obj: Any) -> Json:
    """An alpaca-py pydantic model -> its JSON dict; a mapping is returned as it is."""
    if isinstance(obj, Mapping):
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        data = dump(mode="json")
        if isinstance(data, Mapping):
            return data
    raise BrokerError(f"expected an Alpaca JSON object, got {type(obj).__name__}")


def _field(raw: Json, name: str, what: str) -> Any:
    try:
        value = raw[name]
    except (KeyError, TypeError):
        raise BrokerError(f"malformed Alpaca {what}: missing field {name!r}") from None
    if value is None:
        raise BrokerError(f"malformed Alpaca {what}: field {name!r} is null")
    return value


def decimal(value: Any, name: str, what: str) -> float:
    """An Alpaca decimal (string or number) -> a finite float; BrokerError otherwise."""
    if isinstance(value, bool):
        raise BrokerError(f"malformed Alpaca {what}: {name} {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BrokerError(f"malformed Alpaca {what}: {name} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise BrokerError(f"malformed Alpaca {what}: {name} {value!r} is not finite")
    return number


def _decimal_field(raw: Json, name: str, what: str) -> float:
    return decimal(_field(raw, name, what), name, what)


def _optional_decimal(raw: Json, name: str, what: str) -> float | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    return decimal(value, name, what)


def timestamp(value: Any, name: str, what: str) -> datetime:
    """An RFC 3339 time (``Z`` or an offset, up to nanoseconds) -> a tz-aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise BrokerError(f"malformed Alpaca {what}: {name} {value!r} is not a time") from None
    else:
        raise BrokerError(f"malformed Alpaca {what}: {name} {value!r} is not a time")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise BrokerError(f"malformed Alpaca {what}: {name} {value!r} has no UTC offset")
    return parsed.astimezone(UTC)


def side_from_alpaca(value: Any, what: str = "order") -> Side:
    try:
        return SIDE_FROM_ALPACA[value]
    except (KeyError, TypeError):
        raise BrokerError(f"malformed Alpaca {what}: unknown side {value!r}") from None


# ---------------------------------------------------------------------------------- orders


def order_status(alpaca_status: Any, *, quantity: float | None, filled: float) -> OrderStatus:
    """Alpaca's status string -> ours, refined by the fill for orders still alive.

    Raises :class:`BrokerError` for a status Alpaca does not document (a new Alpaca status must
    be added to :data:`STATUS_TABLE` deliberately, not guessed).
    """
    try:
        status = STATUS_TABLE[alpaca_status]
    except (KeyError, TypeError):
        known = ", ".join(sorted(STATUS_TABLE))
        raise BrokerError(
            f"unknown Alpaca order status {alpaca_status!r}; known: {known}"
        ) from None
    if status.is_open and filled > _EPS:
        if quantity is not None and filled >= quantity - _EPS:
            return OrderStatus.FILLED
        return OrderStatus.PARTIALLY_FILLED
    return status


def order_report(raw: Any, *, strategy: str = "", reason: str = "") -> OrderReport:
    """An Alpaca order (JSON or alpaca-py ``Order``) -> :class:`OrderReport`.

    ``quantity`` is Alpaca's ``qty`` (None for a notional order); ``avg_fill_price`` is None
    until something filled (Alpaca may send ``"0"`` or null before that); ``timestamp`` is
    ``updated_at``. Alpaca keeps no strategy: pass it in. ``reason`` defaults to a note for
    replaced and rejected orders.
    """
    data = as_json(raw)
    what = "order"
    quantity = _optional_decimal(data, "qty", what)
    filled = _optional_decimal(data, "filled_qty", what) or 0.0
    if filled < 0 or (quantity is not None and quantity <= 0):
        raise BrokerError(f"malformed Alpaca order: qty {quantity} / filled_qty {filled}")
    avg = _optional_decimal(data, "filled_avg_price", what)
    alpaca_status = _field(data, "status", what)
    status = order_status(alpaca_status, quantity=quantity, filled=filled)
    if not reason:
        if alpaca_status == "replaced":
            reason = f"replaced by order {data.get('replaced_by')}"
        elif alpaca_status == "rejected":
            reason = "rejected by Alpaca"
        elif alpaca_status != status.value and status.is_open:
            reason = f"Alpaca status {alpaca_status}"
    return OrderReport(
        client_order_id=str(_field(data, "client_order_id", what)),
        broker_order_id=str(_field(data, "id", what)),
        symbol=str(_field(data, "symbol", what)),
        side=side_from_alpaca(_field(data, "side", what)),
        status=status,
        quantity=quantity,
        filled_quantity=filled,
        avg_fill_price=avg if filled > 0 and avg is not None and avg > 0 else None,
        timestamp=timestamp(_field(data, "updated_at", what), "updated_at", what),
        strategy=strategy,
        reason=reason,
    )


def rejected_report(order: Order, *, reason: str, now: datetime) -> OrderReport:
    """A REJECTED report for an order Alpaca refused (4xx) or that never reached Alpaca."""
    return OrderReport(
        client_order_id=order.client_order_id,
        broker_order_id="",
        symbol=order.symbol,
        side=order.side,
        status=OrderStatus.REJECTED,
        quantity=order.quantity,
        filled_quantity=0.0,
        avg_fill_price=None,
        timestamp=now,
        strategy=order.strategy,
        reason=reason,
    )


def resolve_quantity(order: Order, *, equity: float | None, price: float | None) -> float:
    """Shares to send for ``order``.

    ``quantity`` orders: the quantity as it is (fractional allowed; Alpaca refuses what it does
    not support). ``equity_fraction`` orders are resolved here, at submission, into
    ``floor(equity × fraction / price)`` whole shares (Alpaca charges no commission on US
    stocks), ``equity`` being the account equity and ``price`` the last trade price, in the
    account currency. This keeps the paper exchange's whole-share sizing; Alpaca's own
    ``notional`` field is not used because it only exists for DAY market orders on fractionable
    assets. Returns 0.0 when the fraction buys less than one share.
    """
    if order.quantity is not None:
        return order.quantity
    if order.equity_fraction is None:  # pragma: no cover - Order guarantees one of the two
        raise BrokerError("order has neither quantity nor equity_fraction")
    if equity is None or price is None:
        raise BrokerError("an equity_fraction order needs the account equity and a last price")
    return float(whole_shares_for_fraction(equity, order.equity_fraction, price, commission_rate=0))


def order_request_fields(order: Order, *, quantity: float) -> dict[str, Any]:
    """The keyword arguments of the alpaca-py order request for ``order`` with ``quantity``."""
    if not quantity > 0:
        raise BrokerError(f"order {order.client_order_id!r}: quantity {quantity} is not > 0")
    fields: dict[str, Any] = {
        "symbol": order.symbol,
        "qty": quantity,
        "side": SIDE_TO_ALPACA[order.side],
        "time_in_force": TIF_TO_ALPACA[order.time_in_force],
        "client_order_id": order.client_order_id,
    }
    if order.order_type is OrderType.LIMIT:
        fields["limit_price"] = order.limit_price
    return fields


def order_request(order: Order, *, quantity: float) -> MarketOrderRequest | LimitOrderRequest:
    """``order`` with ``quantity`` shares -> an alpaca-py order request."""
    fields = order_request_fields(order, quantity=quantity)
    if order.order_type is OrderType.LIMIT:
        return LimitOrderRequest(**fields)
    return MarketOrderRequest(**fields)


# ------------------------------------------------------------------- positions and account


def position(raw: Any) -> Position:
    """An Alpaca position -> :class:`Position` with a signed quantity (< 0 short).

    Alpaca sends a short's ``qty`` negative and ``side`` "short"; the sign is taken from
    ``side`` so either convention gives the same result.
    """
    data = as_json(raw)
    what = "position"
    qty = abs(_decimal_field(data, "qty", what))
    side = _field(data, "side", what)
    if side not in ("long", "short"):
        raise BrokerError(f"malformed Alpaca position: unknown side {side!r}")
    return Position(
        symbol=str(_field(data, "symbol", what)),
        quantity=-qty if side == "short" else qty,
        avg_price=_decimal_field(data, "avg_entry_price", what),
        market_price=_optional_decimal(data, "current_price", what),
    )


def account_report(raw: Any, positions: Sequence[Any], *, now: datetime) -> AccountReport:
    """Alpaca's account and its positions -> :class:`AccountReport`.

    ``cash`` and ``equity`` are Alpaca's; ``gross_exposure`` / ``net_exposure`` (money) and
    ``unrealized_pnl`` are summed over ``positions`` (their ``market_value`` and
    ``unrealized_pl``), so they agree with :meth:`positions` to the cent. Alpaca's account has
    no realized P&L figure: ``realized_pnl`` is 0.0 (derive it from fills if needed). ``now``
    stamps the report (the account JSON carries no time).
    """
    data = as_json(raw)
    what = "account"
    values: list[float] = []
    unrealized = 0.0
    for item in positions:
        pos = as_json(item)
        value = _optional_decimal(pos, "market_value", "position")
        values.append(position(pos).market_value if value is None else value)
        unrealized += _optional_decimal(pos, "unrealized_pl", "position") or 0.0
    return AccountReport(
        cash=_decimal_field(data, "cash", what),
        equity=_decimal_field(data, "equity", what),
        gross_exposure=sum(abs(v) for v in values),
        net_exposure=sum(values),
        realized_pnl=0.0,
        unrealized_pnl=unrealized,
        timestamp=now,
    )


# ----------------------------------------------------------------------------------- fills


def activity_order_id(raw: Any) -> str:
    """The Alpaca order id a FILL activity belongs to."""
    return str(_field(as_json(raw), "order_id", "activity"))


def fill(raw: Any, *, client_order_id: str, strategy: str = "") -> Fill:
    """An Alpaca FILL account activity -> :class:`Fill`.

    Activities carry Alpaca's order id, not ours: the caller maps it to ``client_order_id``.
    ``commission`` is 0.0 (US stocks are commission-free at Alpaca; regulatory fees arrive as
    separate FEE activities). ``price`` is the execution price.
    """
    data = as_json(raw)
    what = "activity"
    kind = _field(data, "activity_type", what)
    if kind != "FILL":
        raise BrokerError(f"expected a FILL activity, got activity_type {kind!r}")
    qty = _decimal_field(data, "qty", what)
    price = _decimal_field(data, "price", what)
    if qty <= 0 or price <= 0:
        raise BrokerError(f"malformed Alpaca activity: qty {qty} / price {price} not > 0")
    return Fill(
        fill_id=str(_field(data, "id", what)),
        client_order_id=client_order_id,
        symbol=str(_field(data, "symbol", what)),
        side=side_from_alpaca(_field(data, "side", what), what),
        quantity=qty,
        price=price,
        commission=0.0,
        timestamp=timestamp(_field(data, "transaction_time", what), "transaction_time", what),
        strategy=strategy,
    )


# ------------------------------------------------------------------------------------ bars


def parse_timeframe(text: str) -> tuple[int, str]:
    """``"1Day"``, ``"5Min"``, ``"1Hour"``, ``"1Week"``, ``"1Month"`` -> (amount, unit)."""
    match = _TIMEFRAME_RE.match(text)
    if match is None:
        raise BrokerError(f"unknown Alpaca timeframe {text!r}; e.g. 1Day, 1Hour, 5Min")
    return int(match.group(1)), match.group(2)


def bar_close_times(opens: pd.Series, timeframe: str) -> pd.Series:
    """Alpaca bar times (the bar's OPEN, UTC) -> the project's bar stamps.

    ``opens``: tz-aware datetimes (or RFC 3339 strings). Intraday bars (Min, Hour): open + the
    bar length, i.e. the bar's close time. Daily and longer bars: 00:00 UTC of the session date
    in New York, the stamp the bundled daily data uses (Alpaca stamps a daily bar at 00:00 New
    York time, 04:00 or 05:00 UTC).
    """
    amount, unit = parse_timeframe(timeframe)
    stamps = pd.Series(pd.to_datetime(opens, utc=True), index=opens.index)
    if unit in _UNIT_LENGTH:
        return stamps + amount * _UNIT_LENGTH[unit]
    return stamps.dt.tz_convert(MARKET_TZ).dt.tz_localize(None).dt.normalize().dt.tz_localize("UTC")


def bars_frame(raw: Mapping[str, Any]) -> pd.DataFrame:
    """``{symbol: [Alpaca bar JSON, ...]}`` (what ``get_stock_bars`` returns raw) -> a long frame.

    Columns ``timestamp, symbol, open, high, low, close, volume`` in the documented file schema,
    values as Alpaca sent them (validate with :func:`sovereign.market.validation.normalize_frame`,
    then re-stamp with :func:`bar_close_times`); rows per symbol in Alpaca's order. Alpaca's
    short keys: ``t`` the bar's open time, ``o h l c`` prices, ``v`` volume.
    """
    rows: list[dict[str, Any]] = []
    for symbol, bars in raw.items():
        if not isinstance(bars, list):
            raise BrokerError(f"malformed Alpaca bars for {symbol!r}: expected a list")
        for bar in bars:
            if not isinstance(bar, Mapping):
                raise BrokerError(f"malformed Alpaca bar for {symbol!r}: {bar!r}")
            try:
                rows.append(
                    {
                        "timestamp": bar["t"],
                        "symbol": symbol,
                        "open": bar["o"],
                        "high": bar["h"],
                        "low": bar["l"],
                        "close": bar["c"],
                        "volume": bar["v"],
                    }
                )
            except KeyError as err:
                raise BrokerError(f"malformed Alpaca bar for {symbol!r}: missing {err}") from None
    columns = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    return pd.DataFrame(rows, columns=columns)
