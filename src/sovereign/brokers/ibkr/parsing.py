"""Interactive Brokers wire mapping: pure tables and functions, tested without a TWS.

Commands out: our :class:`~sovereign.brokers.models.Order` becomes an ib_async ``Order``
(``MarketOrder``/``LimitOrder``; action BUY/SELL, ``totalQuantity`` in shares, ``tif``
DAY/GTC/IOC, ``orderRef`` = our client order id) for a ``Stock(symbol, "SMART", "USD")``.
IB's own ``orderId`` is per client session, so ``orderRef`` is how we find our orders again
after a reconnect; ``permId`` (assigned by TWS on acknowledgement) is the stable broker id.

Reports in: ib_async ``Trade`` -> :class:`OrderReport`, ``Fill`` -> :class:`Fill`,
``Position``/``PortfolioItem`` -> :class:`Position`, ``AccountValue`` rows -> :class:`AccountReport`.
Every function reads plain attributes, so objects from ib_insync (the same API) work too.

ib_async is the optional extra ``ibkr``: :func:`ib_api` imports it lazily (falling back to
ib_insync) and raises :class:`~sovereign.errors.ConfigError` when neither is installed.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any

import pandas as pd

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
from sovereign.errors import BrokerError, ConfigError

if TYPE_CHECKING:
    from ib_async import AccountValue, Contract, PortfolioItem, Trade
    from ib_async import Fill as IBFill
    from ib_async import Order as IBOrder
    from ib_async import Position as IBPosition

INSTALL_HINT = "pip install 'sovereign[ibkr]'"
IB_MODULES = ("ib_async", "ib_insync")  # tried in this order

EXCHANGE = "SMART"
CURRENCY = "USD"

# IB sends "not set" doubles as sys.float_info.max (ib_async's UNSET_DOUBLE).
_UNSET_DOUBLE_FLOOR = 1e300

# ---------------------------------------------------------------------------------- tables

ORDER_ACTION: Mapping[Side, str] = MappingProxyType({Side.BUY: "BUY", Side.SELL: "SELL"})
ACTION_SIDE: Mapping[str, Side] = MappingProxyType(
    {"BUY": Side.BUY, "SELL": Side.SELL, "SSHORT": Side.SELL}
)
EXECUTION_SIDE: Mapping[str, Side] = MappingProxyType({"BOT": Side.BUY, "SLD": Side.SELL})
ORDER_TYPE: Mapping[OrderType, str] = MappingProxyType(
    {OrderType.MARKET: "MKT", OrderType.LIMIT: "LMT"}
)
TIME_IN_FORCE: Mapping[TimeInForce, str] = MappingProxyType(
    {TimeInForce.DAY: "DAY", TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC"}
)

# IB order status -> ours, before accounting for partial fills (see :func:`order_status`).
# https://interactivebrokers.github.io/tws-api/order_submission.html#order_status
ORDER_STATUS: Mapping[str, OrderStatus] = MappingProxyType(
    {
        "PendingSubmit": OrderStatus.NEW,  # sent, not yet acknowledged by TWS
        "ApiPending": OrderStatus.NEW,
        "PreSubmitted": OrderStatus.ACCEPTED,  # accepted, held (simulated order, before RTH)
        "Submitted": OrderStatus.ACCEPTED,  # working at the exchange
        "ApiUpdate": OrderStatus.ACCEPTED,
        "ValidationError": OrderStatus.ACCEPTED,  # a warning; the order stays live
        "PendingCancel": OrderStatus.ACCEPTED,  # still working until the cancel is confirmed
        "ApiCancelled": OrderStatus.CANCELED,
        "Cancelled": OrderStatus.CANCELED,
        "Filled": OrderStatus.FILLED,
        "Inactive": OrderStatus.REJECTED,  # received but rejected or deactivated by IB
    }
)

# Account tags read into an AccountReport (ib.accountValues()/accountSummary()).
TAG_EQUITY = "NetLiquidation"
TAG_CASH = "TotalCashValue"
TAG_GROSS = "GrossPositionValue"
TAG_NET = "StockMarketValue"  # long minus short stock value; else NetLiquidation - cash
TAG_REALIZED = "RealizedPnL"
TAG_UNREALIZED = "UnrealizedPnL"
BASE_CURRENCY = "BASE"  # IB's row for "converted to the account's base currency"


# ---------------------------------------------------------------------------- the library


def ib_api() -> ModuleType:
    """The installed IB client library: ib_async, else ib_insync (same API).

    Raises :class:`ConfigError` naming the extra to install when neither is importable.
    """
    errors: list[str] = []
    for name in IB_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError as err:
            errors.append(f"{name}: {err}")
    raise ConfigError(
        "the Interactive Brokers adapter needs ib_async (or ib_insync), which is not installed; "
        f"run {INSTALL_HINT} ({'; '.join(errors)})"
    )


# ------------------------------------------------------------------------------- commands


def to_ib_contract(symbol: str, *, api: ModuleType | None = None) -> Contract:
    """A US stock routed by IB's SMART router: ``Stock(symbol, "SMART", "USD")``."""
    mod = api or ib_api()
    contract: Contract = mod.Stock(symbol, EXCHANGE, CURRENCY)
    return contract


def to_ib_order(order: Order, *, account: str = "", api: ModuleType | None = None) -> IBOrder:
    """Our order as an ib_async ``MarketOrder``/``LimitOrder`` with ``orderRef`` = client id.

    IB needs a share count: an ``equity_fraction`` order raises :class:`BrokerError` (resolve
    it into shares before submitting). ``account``: the IB account code, "" for the default.
    """
    if order.quantity is None:
        raise BrokerError(
            f"order {order.client_order_id!r}: IBKR needs a share quantity; an equity_fraction "
            "order must be resolved into shares before it is submitted"
        )
    mod = api or ib_api()
    common: dict[str, Any] = {
        "tif": TIME_IN_FORCE[order.time_in_force],
        "orderRef": order.client_order_id,
    }
    if account:
        common["account"] = account
    action = ORDER_ACTION[order.side]
    ib_order: IBOrder
    if order.order_type is OrderType.LIMIT:
        assert order.limit_price is not None  # noqa: S101 - Order guarantees it
        ib_order = mod.LimitOrder(action, order.quantity, order.limit_price, **common)
    else:
        ib_order = mod.MarketOrder(action, order.quantity, **common)
    return ib_order


# -------------------------------------------------------------------------------- reports


def to_utc(value: datetime, what: str = "timestamp") -> datetime:
    """``value`` converted to UTC; a naive datetime is a :class:`BrokerError` (never guessed)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise BrokerError(f"IBKR sent a naive {what} {value!r}; expected a timezone-aware time")
    return value.astimezone(UTC)


def _number(value: Any) -> float | None:
    """A float, or None for IB's "not set" (missing, NaN, or the max-double sentinel)."""
    if value is None or value == "":
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x) or abs(x) >= _UNSET_DOUBLE_FLOOR:
        return None
    return x


def order_status(ib_status: str, filled: float) -> OrderStatus:
    """Our status for an IB status string and the shares filled so far.

    An order that is still working with ``filled > 0`` is PARTIALLY_FILLED; an unknown status
    is a :class:`BrokerError` (a new IB status must be added to :data:`ORDER_STATUS`).
    """
    try:
        status = ORDER_STATUS[ib_status]
    except KeyError:
        raise BrokerError(
            f"unknown IBKR order status {ib_status!r}; known: {', '.join(ORDER_STATUS)}"
        ) from None
    if status.is_open and filled > 0:
        return OrderStatus.PARTIALLY_FILLED
    return status


def broker_order_id(ib_order: IBOrder) -> str:
    """IB's permanent id once TWS acknowledged the order, else ``"<clientId>.<orderId>"``."""
    if ib_order.permId:
        return str(ib_order.permId)
    return f"{ib_order.clientId}.{ib_order.orderId}"


def side_of_action(action: str) -> Side:
    try:
        return ACTION_SIDE[action.upper()]
    except KeyError:
        raise BrokerError(f"unknown IBKR order action {action!r}") from None


def _filled_and_average(
    trade: Trade, extra_fills: Iterable[IBFill] = ()
) -> tuple[float, float | None]:
    """Shares filled and their average price, from the status, the order and the fills."""
    fills = list(trade.fills) or list(extra_fills)  # stock orders only: no combo legs
    fill_qty = sum(float(f.execution.shares) for f in fills)
    status_qty = _number(trade.orderStatus.filled) or 0.0
    order_qty = _number(getattr(trade.order, "filledQuantity", None)) or 0.0
    filled = max(status_qty, fill_qty, order_qty)
    if filled <= 0:
        return 0.0, None
    status_avg = _number(trade.orderStatus.avgFillPrice)
    if status_avg and status_qty >= filled:
        return filled, status_avg
    if fills and fill_qty >= filled:
        return filled, sum(float(f.execution.shares) * f.execution.price for f in fills) / fill_qty
    return filled, status_avg or None


def _reason(trade: Trade) -> str:
    """The latest message TWS attached to the order (an error text, "Modified", ...)."""
    for entry in reversed(trade.log):
        if entry.message and not entry.message.startswith("Fill "):
            code = f"error {entry.errorCode}: " if entry.errorCode else ""
            return f"{code}{entry.message}"
    why_held = getattr(trade.orderStatus, "whyHeld", "")
    return f"held: {why_held}" if why_held else ""


def order_report(
    trade: Trade, *, now: datetime, strategy: str = "", fills: Iterable[IBFill] = ()
) -> OrderReport:
    """An IB ``Trade`` as our report; ``timestamp`` is its last log entry's time, else ``now``.

    ``fills``: the order's executions, used when the trade carries none (ib_async attaches
    executions only to trades it already knew, not to orders from ``reqCompletedOrders``).
    """
    filled, average = _filled_and_average(trade, fills)
    stamp = trade.log[-1].time if trade.log else now
    quantity = _number(trade.order.totalQuantity)
    return OrderReport(
        client_order_id=trade.order.orderRef,
        broker_order_id=broker_order_id(trade.order),
        symbol=trade.contract.symbol,
        side=side_of_action(trade.order.action),
        status=order_status(trade.orderStatus.status, filled),
        quantity=quantity,
        filled_quantity=filled,
        avg_fill_price=average,
        timestamp=to_utc(stamp, "order log time"),
        strategy=strategy,
        reason=_reason(trade),
    )


def fill_from_ib(fill: IBFill, *, strategy: str = "") -> Fill:
    """One IB execution with its commission report; ``fill_id`` is IB's ``execId``.

    A commission report that has not arrived yet (or is "not set") counts as 0.
    """
    execution = fill.execution
    try:
        side = EXECUTION_SIDE[execution.side]
    except KeyError:
        raise BrokerError(
            f"unknown IBKR execution side {execution.side!r} in {execution.execId}"
        ) from None
    return Fill(
        fill_id=execution.execId,
        client_order_id=execution.orderRef,
        symbol=fill.contract.symbol,
        side=side,
        quantity=float(execution.shares),
        price=float(execution.price),
        commission=_number(fill.commissionReport.commission) or 0.0,
        timestamp=to_utc(fill.time, "fill time"),
        strategy=strategy,
    )


def position_from_ib(position: IBPosition, *, market_price: float | None = None) -> Position:
    """An IB position (signed shares, average cost per share) with an optional last price."""
    return Position(
        symbol=position.contract.symbol,
        quantity=float(position.position),
        avg_price=float(position.avgCost),
        market_price=_number(market_price),
    )


def position_from_portfolio(item: PortfolioItem) -> Position:
    """An IB portfolio item (a position with IB's mark price)."""
    return Position(
        symbol=item.contract.symbol,
        quantity=float(item.position),
        avg_price=float(item.averageCost),
        market_price=_number(item.marketPrice),
    )


def account_values(values: Iterable[AccountValue], *, currency: str = CURRENCY) -> dict[str, float]:
    """``tag -> value`` for rows in the base currency: IB's "BASE" row first, else ``currency``.

    Non-numeric values (account type, ...) are left out.
    """
    best: dict[str, tuple[int, float]] = {}
    for row in values:
        rank = 0 if row.currency == BASE_CURRENCY else 1 if row.currency == currency else None
        if rank is None:
            continue
        x = _number(row.value)
        if x is None:
            continue
        if row.tag not in best or rank < best[row.tag][0]:
            best[row.tag] = (rank, x)
    return {tag: x for tag, (_, x) in best.items()}


def account_report(
    values: Iterable[AccountValue], *, now: datetime, currency: str = CURRENCY
) -> AccountReport:
    """Account values (``NetLiquidation``, ``TotalCashValue``, ``GrossPositionValue``,
    ``StockMarketValue``, ``RealizedPnL``, ``UnrealizedPnL``) as our AccountReport, in money.

    ``NetLiquidation`` and ``TotalCashValue`` are required (:class:`BrokerError` otherwise:
    account updates not received yet, or the account's currency is not ``currency``); net
    exposure falls back to ``NetLiquidation - TotalCashValue`` and P&L to 0 when missing.
    """
    tags = account_values(values, currency=currency)
    missing = [t for t in (TAG_EQUITY, TAG_CASH) if t not in tags]
    if missing:
        raise BrokerError(
            f"IBKR account values lack {', '.join(missing)} in {BASE_CURRENCY}/{currency} "
            "(account updates not received yet, or a different base currency)"
        )
    equity, cash = tags[TAG_EQUITY], tags[TAG_CASH]
    net = tags.get(TAG_NET, equity - cash)
    return AccountReport(
        cash=cash,
        equity=equity,
        gross_exposure=tags.get(TAG_GROSS, abs(net)),
        net_exposure=net,
        realized_pnl=tags.get(TAG_REALIZED, 0.0),
        unrealized_pnl=tags.get(TAG_UNREALIZED, 0.0),
        timestamp=to_utc(now, "clock time"),
    )


# ---------------------------------------------------------------------------- history

#: Our timeframe ("1Day", "1Hour", "5Min", as Alpaca spells it) -> IB's barSizeSetting.
BAR_SIZES: dict[str, str] = {
    "1Min": "1 min",
    "2Min": "2 mins",
    "5Min": "5 mins",
    "15Min": "15 mins",
    "30Min": "30 mins",
    "1Hour": "1 hour",
    "1Day": "1 day",
}
_BAR_LENGTH: dict[str, timedelta] = {
    "1Min": timedelta(minutes=1),
    "2Min": timedelta(minutes=2),
    "5Min": timedelta(minutes=5),
    "15Min": timedelta(minutes=15),
    "30Min": timedelta(minutes=30),
    "1Hour": timedelta(hours=1),
}


def bar_size(timeframe: str) -> str:
    """IB's ``barSizeSetting`` for ``timeframe``; ConfigError naming the accepted ones."""
    try:
        return BAR_SIZES[timeframe]
    except KeyError:
        raise ConfigError(
            f"timeframe {timeframe!r} has no IB bar size; use one of {', '.join(BAR_SIZES)}"
        ) from None


def duration_str(start: datetime, end: datetime) -> str:
    """IB's ``durationStr`` covering ``start``..``end``: whole days up to a year ("30 D"), then
    whole years ("3 Y"), rounded up (the caller drops bars before ``start``)."""
    days = max(1, math.ceil((end - start).total_seconds() / 86_400))
    return f"{days} D" if days <= 365 else f"{math.ceil(days / 365)} Y"


def historical_frame(symbol: str, bars: Iterable[Any]) -> pd.DataFrame:
    """IB ``BarData`` rows of ``symbol`` -> the documented long frame; ``timestamp`` is the
    bar's ``date`` in UTC (00:00 UTC of a daily bar's session date; the start time of an
    intraday bar, which ``formatDate=2`` gives in UTC)."""
    rows = [
        {
            "timestamp": _utc_bar_time(b.date),
            "symbol": symbol,
            "open": b.open,
            "high": b.high,
            "low": b.low,
            "close": b.close,
            "volume": max(float(b.volume), 0.0),  # IB reports -1 when it has no volume
        }
        for b in bars
    ]
    return pd.DataFrame(
        rows, columns=["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    )


def _utc_bar_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return to_utc(value, "bar date")
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def bar_stamps(dates: pd.Series, timeframe: str) -> pd.Series:
    """IB bar dates -> the project's stamps: a daily bar's session date at 00:00 UTC (the
    bundled data's stamp); an intraday bar's start (UTC, ``formatDate=2``) plus its length,
    i.e. its close."""
    if timeframe == "1Day":
        return pd.Series(pd.to_datetime(dates, utc=True).dt.normalize(), index=dates.index)
    length = _BAR_LENGTH[timeframe]
    return pd.Series(pd.to_datetime(dates, utc=True) + length, index=dates.index)
