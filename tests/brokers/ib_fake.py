"""A fake ib_async ``IB``: the subset of its API the IBKR adapter uses, in memory.

It plays both sides of the wire: a "server" (TWS: orders with permIds, executions, cash and
holdings, a scripted price path) and the client "session" (what ib_async's wrapper would hold:
``trades()``, ``fills()``), and it returns real ib_async objects (Trade, OrderStatus,
TradeLogEntry, Fill, Execution, CommissionReport, Position, PortfolioItem, AccountValue) so
that the adapter's parsing runs on the real types.

``advance()`` moves every symbol to the next price of its path and fills working orders there
(market: at the price; limit: at the price when it is at or through the limit; IOC: the rest is
cancelled). ``disconnect()``/``connect()`` start a new session the way ib_async does at
connect: open orders come back with their status, completed orders with their status only,
executions are re-fetched and attached by ``permId``.

Faults: ``connected = False`` (every call raises ``ConnectionError`` like ib_async's client),
``place_error`` (the next placeOrder raises it), ``drop_next`` (the next N placeOrder calls are
silently dropped: the session trade stays PendingSubmit and TWS never hears of it).
With ``ack_on_wait``, TWS's answers to placeOrder/cancelOrder arrive only when the client
waits for them (``waitOnUpdate``), as they do over a real socket.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ib_async import (
    AccountValue,
    BarData,
    CommissionReport,
    Contract,
    Execution,
    Fill,
    Order,
    OrderStatus,
    PortfolioItem,
    Position,
    Stock,
    Trade,
)
from ib_async.objects import TradeLogEntry

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
ACCOUNT = "DU1234567"
DONE = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})


@dataclass
class _ServerOrder:
    """TWS's view of one order."""

    contract: Contract
    order: Order
    status: str
    filled: float = 0.0
    avg_price: float = 0.0
    fills: list[Fill] = field(default_factory=list)
    log: list[TradeLogEntry] = field(default_factory=list)


class FakeIB:
    """See the module docstring. ``prices``: symbol -> price path (the last price repeats)."""

    def __init__(
        self,
        prices: Mapping[str, Sequence[float]],
        *,
        cash: float = 100_000.0,
        client_id: int = 7,
        accounts: Sequence[str] = (ACCOUNT,),
        commission_per_share: float = 0.005,
        min_commission: float = 1.0,
        max_fill_per_advance: float | None = None,
        startup_completed: bool = True,
        ack_on_wait: bool = False,
        start: datetime = T0,
        step: timedelta = timedelta(minutes=1),
        history: Mapping[str, Sequence[BarData]] | None = None,
    ) -> None:
        self.prices = {s: list(p) for s, p in prices.items()}
        self.history = {s: list(b) for s, b in (history or {}).items()}
        self.history_requests: list[dict[str, object]] = []
        self.cash = cash
        self.client_id = client_id
        self.accounts = list(accounts)
        self.commission_per_share = commission_per_share
        self.min_commission = min_commission
        self.max_fill_per_advance = max_fill_per_advance
        self.startup_completed = startup_completed
        self.ack_on_wait = ack_on_wait
        self._inbox: list[Callable[[], None]] = []  # answers waiting for waitOnUpdate
        self.now = start
        self.step = step
        self.index = 0
        self.realized = 0.0
        self.holdings: dict[str, tuple[float, float]] = {}  # symbol -> (shares, avg cost)
        self.calls: list[str] = []
        # faults
        self.connected = True
        self.place_error: Exception | None = None
        self.drop_next = 0
        # server
        self._server: dict[int, _ServerOrder] = {}  # permId -> order
        self._con_ids = {s: 1000 + i for i, s in enumerate(sorted(self.prices))}
        self._next_order_id = itertools.count(1)
        self._next_perm_id = itertools.count(900_001)
        self._next_exec = itertools.count(1)
        # session
        self._trades: dict[tuple[int, int] | int, Trade] = {}
        self._fills: dict[str, Fill] = {}

    # ------------------------------------------------------------------- test controls

    def price(self, symbol: str) -> float:
        path = self.prices[symbol]
        return path[min(self.index, len(path) - 1)]

    def advance(self) -> None:
        """Move to the next price and fill (or expire) working orders there."""
        self.index += 1
        self.now += self.step
        for srv in list(self._server.values()):
            if srv.status not in DONE:
                self._work(srv)

    def disconnect(self) -> None:
        """End the session: ib_async clears all session state."""
        self.calls.append("disconnect")
        self.connected = False
        self._trades = {}
        self._fills = {}

    def connect(self, *_args: object, **_kwargs: object) -> None:
        """A new session, synchronised like ib_async's connect (open, completed, executions)."""
        self.calls.append("connect")
        self.connected = True
        self._trades = {}
        self._fills = {}
        for perm, srv in self._server.items():
            if srv.status not in DONE:
                trade = self._session_trade(srv)
                self._trades[(srv.order.clientId, srv.order.orderId)] = trade
            elif self.startup_completed:
                self._trades[perm] = self._completed_trade(srv)
        self._fetch_executions()

    # --------------------------------------------------------------- the IB API subset

    def reqHistoricalData(
        self,
        contract: Contract,
        endDateTime: object,
        durationStr: str,
        barSizeSetting: str,
        whatToShow: str,
        useRTH: bool,
        formatDate: int = 1,
        keepUpToDate: bool = False,
        chartOptions: object = (),
        timeout: float = 60,
    ) -> list[BarData]:
        """The scripted history of ``contract.symbol`` (every bar: the caller cuts)."""
        self._wire("reqHistoricalData")
        self.history_requests.append(
            {
                "symbol": contract.symbol,
                "duration": durationStr,
                "bar_size": barSizeSetting,
                "what": whatToShow,
                "rth": useRTH,
                "format": formatDate,
            }
        )
        return list(self.history.get(contract.symbol, []))

    def isConnected(self) -> bool:
        return self.connected

    def managedAccounts(self) -> list[str]:
        return list(self.accounts)

    def placeOrder(self, contract: Contract, order: Order) -> Trade:
        self._wire("placeOrder")
        if self.place_error is not None:
            err, self.place_error = self.place_error, None
            raise err
        order.clientId = self.client_id
        order.orderId = next(self._next_order_id)
        status = OrderStatus(orderId=order.orderId, status="PendingSubmit")
        trade = Trade(contract, order, status, [], [TradeLogEntry(self.now, "PendingSubmit")])
        self._trades[(order.clientId, order.orderId)] = trade
        if self.drop_next > 0:
            self.drop_next -= 1
            return trade
        self._answer(lambda: self._accept(contract, order))
        return trade

    def _accept(self, contract: Contract, order: Order) -> None:
        contract.conId = self._con_ids.get(contract.symbol, 0)
        order.permId = next(self._next_perm_id)
        srv = _ServerOrder(contract=copy.copy(contract), order=copy.copy(order), status="")
        self._server[order.permId] = srv
        if contract.symbol not in self.prices:
            self._set(srv, "Cancelled", "No security definition has been found", code=200)
        elif order.orderType not in ("MKT", "LMT"):
            self._set(srv, "Inactive", f"unsupported order type {order.orderType}", code=387)
        else:
            self._set(srv, "Submitted")

    def cancelOrder(self, order: Order, manualCancelOrderTime: str = "") -> Trade | None:
        self._wire("cancelOrder")
        trade = self._trades.get((order.clientId, order.orderId)) or self._trades.get(order.permId)
        srv = self._server.get(order.permId)
        if srv is None:  # TWS never heard of it: error 10147, ib_async marks it cancelled
            if trade is not None:
                trade.orderStatus.status = "Cancelled"
                trade.log.append(
                    TradeLogEntry(
                        self.now,
                        "Cancelled",
                        "OrderId that needs to be cancelled is not found",
                        10147,
                    )
                )
            return trade
        if srv.status not in DONE:
            self._answer(lambda: self._set(srv, "Cancelled"))
        return trade

    def trades(self) -> list[Trade]:
        self._wire("trades")
        return list(self._trades.values())

    def openTrades(self) -> list[Trade]:
        self._wire("openTrades")
        return [t for t in self._trades.values() if t.orderStatus.status not in DONE]

    def reqOpenOrders(self) -> list[Trade]:
        self._wire("reqOpenOrders")
        out = []
        for srv in self._server.values():
            if srv.status in DONE or srv.order.clientId != self.client_id:
                continue
            trade = self._trades.get((srv.order.clientId, srv.order.orderId))
            if trade is None:
                trade = self._session_trade(srv)
                self._trades[(srv.order.clientId, srv.order.orderId)] = trade
            trade.order.permId = srv.order.permId
            out.append(trade)
        return out

    def reqCompletedOrders(self, apiOnly: bool) -> list[Trade]:
        self._wire("reqCompletedOrders")
        out = []
        known = {t.order.permId for t in self._trades.values() if t.order.permId}
        for perm, srv in self._server.items():
            if srv.status not in DONE:
                continue
            trade = self._completed_trade(srv)
            out.append(trade)
            if perm not in known:
                self._trades[perm] = trade
        return out

    def fills(self) -> list[Fill]:
        self._wire("fills")
        return list(self._fills.values())

    def reqExecutions(self, execFilter: object | None = None) -> list[Fill]:
        self._wire("reqExecutions")
        return self._fetch_executions()

    def positions(self, account: str = "") -> list[Position]:
        self._wire("positions")
        return [
            Position(ACCOUNT, self._contract(s), q, avg)
            for s, (q, avg) in sorted(self.holdings.items())
            if q != 0 and account in ("", ACCOUNT)
        ]

    def portfolio(self, account: str = "") -> list[PortfolioItem]:
        self._wire("portfolio")
        items = []
        for s, (q, avg) in sorted(self.holdings.items()):
            if q == 0 or account not in ("", ACCOUNT):
                continue
            p = self.price(s)
            items.append(
                PortfolioItem(self._contract(s), q, p, q * p, avg, q * (p - avg), 0.0, ACCOUNT)
            )
        return items

    def accountValues(self, account: str = "") -> list[AccountValue]:
        self._wire("accountValues")
        values = [self.price(s) * q for s, (q, _) in self.holdings.items()]
        unrealized = sum(q * (self.price(s) - avg) for s, (q, avg) in self.holdings.items())
        rows = {
            "NetLiquidation": self.cash + sum(values),
            "TotalCashValue": self.cash,
            "GrossPositionValue": sum(abs(v) for v in values),
            "StockMarketValue": sum(values),
            "UnrealizedPnL": unrealized,
            "RealizedPnL": self.realized,
        }
        out = [AccountValue(ACCOUNT, "AccountType", "INDIVIDUAL", "", "")]
        out += [AccountValue(ACCOUNT, tag, f"{v:.6f}", "USD", "") for tag, v in rows.items()]
        # IB also reports per-currency rows; a EUR row must not be mistaken for the base one.
        out.append(AccountValue(ACCOUNT, "TotalCashValue", "0.00", "EUR", ""))
        return [v for v in out if account in ("", v.account)]

    def waitOnUpdate(self, timeout: float = 0) -> bool:
        """Deliver one queued answer (True), or report a timeout at once (False)."""
        self.calls.append("waitOnUpdate")
        if not self._inbox:
            return False
        self._inbox.pop(0)()
        return True

    # -------------------------------------------------------------------- internals

    def _answer(self, deliver: Callable[[], None]) -> None:
        if self.ack_on_wait:
            self._inbox.append(deliver)
        else:
            deliver()

    def _wire(self, call: str) -> None:
        self.calls.append(call)
        if not self.connected:
            raise ConnectionError("Not connected")

    def _contract(self, symbol: str) -> Contract:
        contract = Stock(symbol, "SMART", "USD")
        contract.conId = self._con_ids[symbol]
        return contract

    def _session_trade(self, srv: _ServerOrder) -> Trade:
        """An open order as a new session sees it: openOrder + orderStatus, fills attached later."""
        status = OrderStatus(
            orderId=srv.order.orderId,
            status=srv.status,
            filled=srv.filled,
            remaining=srv.order.totalQuantity - srv.filled,
            avgFillPrice=srv.avg_price,
            permId=srv.order.permId,
            clientId=srv.order.clientId,
        )
        return Trade(copy.copy(srv.contract), copy.copy(srv.order), status, [], [])

    def _completed_trade(self, srv: _ServerOrder) -> Trade:
        """A completed order as reqCompletedOrders gives it: the status only, filledQuantity."""
        order = copy.copy(srv.order)
        order.filledQuantity = srv.filled
        status = OrderStatus(orderId=order.orderId, status=srv.status)
        return Trade(copy.copy(srv.contract), order, status, [], [])

    def _fetch_executions(self) -> list[Fill]:
        """Executions re-requested: new ones join the session and their trade (by permId)."""
        by_perm = {t.order.permId: t for t in self._trades.values() if t.order.permId}
        out = []
        for srv in self._server.values():
            for fill in srv.fills:
                out.append(fill)
                if fill.execution.execId in self._fills:
                    continue
                self._fills[fill.execution.execId] = fill
                trade = by_perm.get(srv.order.permId)
                if trade is not None:
                    trade.fills.append(fill)
        return out

    def _session(self, srv: _ServerOrder) -> Trade | None:
        trade = self._trades.get((srv.order.clientId, srv.order.orderId))
        if trade is None or trade.order.permId != srv.order.permId:
            return None
        return trade

    def _set(self, srv: _ServerOrder, status: str, message: str = "", code: int = 0) -> None:
        """Change TWS's status and push it to the session (orderStatus, log)."""
        srv.status = status
        entry = TradeLogEntry(self.now, status, message, code)
        srv.log.append(entry)
        trade = self._session(srv)
        if trade is not None and self.connected:
            trade.orderStatus.status = status
            trade.orderStatus.permId = srv.order.permId
            trade.orderStatus.clientId = srv.order.clientId
            trade.orderStatus.filled = srv.filled
            trade.orderStatus.remaining = srv.order.totalQuantity - srv.filled
            trade.orderStatus.avgFillPrice = srv.avg_price
            trade.log.append(entry)

    def _work(self, srv: _ServerOrder) -> None:
        order, symbol = srv.order, srv.contract.symbol
        price = self.price(symbol)
        buy = order.action == "BUY"
        crosses = order.orderType == "MKT" or (
            price <= float(order.lmtPrice or 0.0) if buy else price >= float(order.lmtPrice or 0.0)
        )
        if crosses:
            qty = order.totalQuantity - srv.filled
            if self.max_fill_per_advance is not None:
                qty = min(qty, self.max_fill_per_advance)
            self._execute(srv, qty, price)
        if srv.filled >= order.totalQuantity:
            self._set(srv, "Filled")
        elif order.tif == "IOC":
            self._set(srv, "Cancelled", "IOC: unfilled rest cancelled")
        else:
            self._set(srv, srv.status)

    def _execute(self, srv: _ServerOrder, qty: float, price: float) -> None:
        order, symbol = srv.order, srv.contract.symbol
        sign = 1.0 if order.action == "BUY" else -1.0
        commission = max(self.min_commission, self.commission_per_share * qty)
        srv.avg_price = (srv.avg_price * srv.filled + price * qty) / (srv.filled + qty)
        srv.filled += qty
        held, avg = self.holdings.get(symbol, (0.0, 0.0))
        realized = 0.0
        if held * sign < 0:  # reducing: realise P&L on the closed part
            closed = min(abs(held), qty)
            realized = closed * (price - avg) * (1.0 if held > 0 else -1.0)
        new = held + sign * qty
        if new == 0:
            avg = 0.0
        elif held * sign >= 0:
            avg = (abs(held) * avg + qty * price) / abs(new)
        elif held * new < 0:  # flipped through zero
            avg = price
        self.holdings[symbol] = (new, avg)
        self.realized += realized
        self.cash -= sign * qty * price + commission
        exec_id = f"0000e0d5.{next(self._next_exec):08x}.01.01"
        execution = Execution(
            execId=exec_id,
            time=self.now,
            acctNumber=ACCOUNT,
            exchange="NYSE",
            side="BOT" if sign > 0 else "SLD",
            shares=qty,
            price=price,
            permId=order.permId,
            clientId=order.clientId,
            orderId=order.orderId,
            cumQty=srv.filled,
            avgPrice=srv.avg_price,
            orderRef=order.orderRef,
        )
        report = CommissionReport(execId=exec_id, commission=commission, currency="USD")
        fill = Fill(srv.contract, execution, report, self.now)
        srv.fills.append(fill)
        trade = self._session(srv)
        if trade is not None and self.connected:
            self._fills[exec_id] = fill
            trade.fills.append(fill)
            trade.log.append(
                TradeLogEntry(self.now, trade.orderStatus.status, f"Fill {qty}@{price}")
            )
