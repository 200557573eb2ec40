"""The Interactive Brokers adapter: the :class:`~sovereign.brokers.port.Broker` port over an
ib_async ``IB`` connection to TWS or IB Gateway.

Synchronous by design: every method uses ib_async's blocking API, which runs the ``IB``
instance's asyncio event loop until the answer arrives. Consequences for an asyncio program
(the scheduler):

* never call these methods on a running event loop (ib_async would try to re-enter it);
* the ``IB`` instance is bound to the event loop of the thread that created it, so create the
  broker and make every call on ONE dedicated thread, e.g.
  ``pool = ThreadPoolExecutor(max_workers=1)``,
  ``broker = await loop.run_in_executor(pool, IBKRBroker.connect, settings.ibkr)``, then
  ``await loop.run_in_executor(pool, broker.submit, order)``. That thread also runs ib_async's
  network loop whenever a call is in progress; between calls, updates queue up on the socket
  and are applied on the next call.

Idempotency: IB's ``orderId`` is per client session, so every order carries our client order
id in ``orderRef``; ``submit`` looks the id up in the session's trades (open and completed)
and, if not there, in ``reqCompletedOrders`` before placing anything. An order that TWS never
acknowledged (still ``PendingSubmit`` with no ``permId``) is confirmed lost with
``reqOpenOrders`` before it is placed again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sovereign.brokers.ibkr import parsing
from sovereign.brokers.models import (
    AccountReport,
    Fill,
    MassStatus,
    Order,
    OrderReport,
    OrderStatus,
    Position,
)
from sovereign.errors import BrokerError, BrokerUnavailable, ConfigError

if TYPE_CHECKING:
    from ib_async import IB, Trade

    from sovereign.settings import IbkrSettings

PENDING_SUBMIT = "PendingSubmit"
DONE_STATES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
_WIRE_ERRORS = (ConnectionError, OSError, TimeoutError)  # asyncio.TimeoutError is TimeoutError


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class IBKRBroker:
    """Broker port over an ib_async ``IB`` (injected: tests pass a fake with the same API).

    ``account``: the IB account code; "" uses the login's only account (a login that manages
    several needs it, :class:`ConfigError` otherwise). ``clock()`` stamps reports that IB does
    not time (account snapshots, orders without a log). ``ack_timeout``: seconds to wait for
    TWS to acknowledge a placed order or confirm a cancel before reporting the state as it is.
    ``currency``: the account's base currency for account values. ``last_price(symbol)``, when
    given (e.g. :meth:`IBKRData.last_price`), sizes ``equity_fraction`` orders in whole shares;
    without it such orders are refused.

    Errors: a lost connection raises :class:`BrokerUnavailable` (a :class:`TransientError`:
    retry, which is safe because ``submit`` is idempotent); a refused command raises
    :class:`BrokerError`. Strategy names are remembered only for orders submitted through this
    instance (IB stores no free text besides ``orderRef``).
    """

    name = "ibkr"

    def __init__(
        self,
        ib: IB,
        *,
        account: str = "",
        clock: Callable[[], datetime] | None = None,
        ack_timeout: float = 2.0,
        currency: str = parsing.CURRENCY,
        last_price: Callable[[str], float] | None = None,
    ) -> None:
        self._ib = ib
        self.last_price = last_price
        self._clock = clock or _wall_clock
        self._ack_timeout = ack_timeout
        self._currency = currency
        self._strategies: dict[str, str] = {}
        self._refused: dict[str, OrderReport] = {}
        self._lost: set[tuple[int, int]] = set()
        self._require_connected()
        self._account = account or self._only_account()

    @classmethod
    def connect(
        cls,
        settings: IbkrSettings,
        *,
        account: str = "",
        timeout: float = 10.0,
        readonly: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> IBKRBroker:
        """Connect a real ``IB`` to TWS/IB Gateway at ``settings.host:port`` as ``client_id``.

        Raises :class:`ConfigError` if ib_async is not installed and
        :class:`BrokerUnavailable` if TWS does not answer within ``timeout`` seconds.
        """
        api = parsing.ib_api()
        ib = api.IB()
        where = f"{settings.host}:{settings.port} (client id {settings.client_id})"
        try:
            ib.connect(
                settings.host,
                settings.port,
                clientId=settings.client_id,
                timeout=timeout,
                readonly=readonly,
                account=account,
            )
        except _WIRE_ERRORS as err:
            ib.disconnect()  # release the half-open client
            raise BrokerUnavailable(
                f"cannot connect to TWS/IB Gateway at {where}: {err!r}; is it running with the "
                "API enabled on that port?"
            ) from err
        try:
            return cls(ib, account=account, clock=clock)
        except Exception:
            ib.disconnect()  # e.g. an ambiguous account: do not leave the session open
            raise

    @property
    def ib(self) -> IB:
        return self._ib

    @property
    def account_code(self) -> str:
        return self._account

    # ------------------------------------------------------------------------ commands

    def submit(self, order: Order) -> OrderReport:
        """Place ``order`` unless IB already knows its client order id (then report that one).

        A command refused before reaching IB (an ``equity_fraction`` order, a reduce-only order
        with nothing to reduce) is reported REJECTED and stays rejected for this instance.
        """
        cid = order.client_order_id
        with self._wire(f"submit {cid}"):
            known = self._find(cid)
            if known is not None and not self._confirmed_lost(known):
                return self._report(known)
            if cid in self._refused:
                return self._refused[cid]
            order, refusal = self._preflight(order)
            if refusal:
                return self._refuse(order, refusal)
            contract = parsing.to_ib_contract(order.symbol)
            ib_order = parsing.to_ib_order(order, account=self._account)
            try:
                trade = self._ib.placeOrder(contract, ib_order)
            except _WIRE_ERRORS:
                raise
            except Exception as err:
                raise BrokerError(f"IBKR refused to place {cid}: {err}") from err
            self._strategies[cid] = order.strategy
            self._wait(trade, lambda t: t.orderStatus.status != PENDING_SUBMIT)
            return self._report(trade)

    def cancel(self, client_order_id: str) -> OrderReport:
        """Cancel an open order; a closed order's report is returned unchanged.

        Raises :class:`BrokerError` for an id IB does not know.
        """
        with self._wire(f"cancel {client_order_id}"):
            trade = self._find(client_order_id)
            if trade is None:
                if client_order_id in self._refused:
                    return self._refused[client_order_id]
                raise BrokerError(f"cannot cancel unknown order {client_order_id!r}")
            if trade.orderStatus.status not in DONE_STATES:
                self._ib.cancelOrder(trade.order)
                self._wait(trade, lambda t: t.orderStatus.status in DONE_STATES)
            return self._report(trade)

    # ------------------------------------------------------------------------- reports

    def get_order(self, client_order_id: str) -> OrderReport | None:
        with self._wire(f"look up {client_order_id}"):
            trade = self._find(client_order_id)
            if trade is None:
                return self._refused.get(client_order_id)
            return self._report(trade)

    def open_orders(self) -> list[OrderReport]:
        """Every order IB still works for this session, ours or not (client id = ``orderRef``)."""
        with self._wire("list open orders"):
            return [
                self._report(t) for t in self._ib.openTrades() if self._key(t) not in self._lost
            ]

    def positions(self) -> list[Position]:
        """Non-zero positions, marked at IB's portfolio price when the portfolio has one."""
        with self._wire("list positions"):
            marks = {
                item.contract.conId: item.marketPrice for item in self._ib.portfolio(self._account)
            }
            return [
                parsing.position_from_ib(p, market_price=marks.get(p.contract.conId))
                for p in self._ib.positions(self._account)
                if p.position != 0
            ]

    def account(self) -> AccountReport:
        with self._wire("read the account"):
            values = self._ib.accountValues(self._account)
            return parsing.account_report(values, now=self._clock(), currency=self._currency)

    def fills_since(self, since: datetime | None) -> list[Fill]:
        """Fills with ``timestamp >= since`` (inclusive; dedupe by ``fill_id``), oldest first.

        Reads the session's fills: today's executions fetched at connect plus live ones
        (``mass_status`` refreshes them with ``reqExecutions`` first).
        """
        with self._wire("list fills"):
            return self._fills(since)

    def mass_status(self) -> MassStatus:
        """Everything IB knows, for reconciliation; executions are re-requested first."""
        with self._wire("mass status"):
            self._ib.reqExecutions()
            return MassStatus(
                account=self.account(),
                open_orders=tuple(self.open_orders()),
                positions=tuple(self.positions()),
                fills=tuple(self._fills(None)),
            )

    # ------------------------------------------------------------------------ internals

    def _require_connected(self) -> None:
        if not self._ib.isConnected():
            raise BrokerUnavailable("not connected to TWS/IB Gateway")

    @contextmanager
    def _wire(self, action: str) -> Iterator[None]:
        """Fail fast when disconnected; turn connection errors into BrokerUnavailable."""
        self._require_connected()
        try:
            yield
        except _WIRE_ERRORS as err:
            raise BrokerUnavailable(f"IBKR connection failed during {action}: {err!r}") from err

    def _only_account(self) -> str:
        accounts = list(self._ib.managedAccounts())
        if len(accounts) > 1:
            raise ConfigError(
                f"the IBKR login manages several accounts ({', '.join(accounts)}); "
                "pass account= to choose one"
            )
        return accounts[0] if accounts else ""

    @staticmethod
    def _key(trade: Trade) -> tuple[int, int]:
        return (trade.order.clientId, trade.order.orderId)

    def _matches(self, trades: list[Trade], client_order_id: str) -> Trade | None:
        found = [
            t
            for t in trades
            if t.order.orderRef == client_order_id and self._key(t) not in self._lost
        ]
        return found[-1] if found else None  # the latest placement wins

    def _find(self, client_order_id: str) -> Trade | None:
        """The session's trade with this ``orderRef``, else one from ``reqCompletedOrders``."""
        trade = self._matches(self._ib.trades(), client_order_id)
        if trade is not None:
            return trade
        completed = self._ib.reqCompletedOrders(apiOnly=True)
        # ib_async adds unseen completed orders to trades(); prefer those (they carry fills).
        return self._matches(self._ib.trades(), client_order_id) or self._matches(
            completed, client_order_id
        )

    def _confirmed_lost(self, trade: Trade) -> bool:
        """True if TWS never acknowledged ``trade`` and does not list it as open now."""
        if trade.orderStatus.status != PENDING_SUBMIT or trade.order.permId:
            return False
        self._ib.reqOpenOrders()  # updates the session trade in place if TWS has it
        if trade.orderStatus.status != PENDING_SUBMIT or trade.order.permId:
            return False
        self._lost.add(self._key(trade))
        return True

    def _wait(self, trade: Trade, done: Callable[[Trade], bool]) -> None:
        """Let ib_async process updates until ``done(trade)`` or ``ack_timeout`` passes."""
        deadline = time.monotonic() + self._ack_timeout
        while not done(trade):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._ib.waitOnUpdate(timeout=remaining):
                return

    def _preflight(self, order: Order) -> tuple[Order, str]:
        """Checks IB cannot do for us: a share quantity (an ``equity_fraction`` is resolved
        with ``last_price`` and the account's equity, in whole shares), and reduce-only against
        the position."""
        if order.quantity is None:
            if self.last_price is None or order.equity_fraction is None:
                return order, (
                    "IBKR needs a share quantity: resolve equity_fraction before submitting, "
                    "or give IBKRBroker a last_price"
                )
            price = self.last_price(order.symbol)
            equity = self.account().equity
            shares = math.floor(order.equity_fraction * equity / price) if price > 0 else 0
            if shares < 1:
                return order, (
                    f"equity_fraction {order.equity_fraction} of equity {equity:.2f} buys no "
                    f"whole share at {price}"
                )
            order = replace(order, quantity=float(shares), equity_fraction=None)
        if not order.reduce_only:
            return order, ""
        held = sum(
            float(p.position)
            for p in self._ib.positions(self._account)
            if p.contract.symbol == order.symbol
        )
        available = max(0.0, -order.side.sign * held)
        if available <= 0:
            return order, "reduce-only: no position to reduce"
        if order.quantity is not None and available < order.quantity:
            return replace(order, quantity=available), ""
        return order, ""

    def _refuse(self, order: Order, reason: str) -> OrderReport:
        report = OrderReport(
            client_order_id=order.client_order_id,
            broker_order_id="",
            symbol=order.symbol,
            side=order.side,
            status=OrderStatus.REJECTED,
            quantity=order.quantity,
            filled_quantity=0.0,
            avg_fill_price=None,
            timestamp=parsing.to_utc(self._clock(), "clock time"),
            strategy=order.strategy,
            reason=reason,
        )
        self._refused[order.client_order_id] = report
        return report

    def _report(self, trade: Trade) -> OrderReport:
        strategy = self._strategies.get(trade.order.orderRef, "")
        perm = trade.order.permId
        fills = [] if trade.fills or not perm else self._ib.fills()
        return parsing.order_report(
            trade,
            now=self._clock(),
            strategy=strategy,
            fills=[f for f in fills if f.execution.permId == perm],
        )

    def _fills(self, since: datetime | None) -> list[Fill]:
        fills = sorted(self._ib.fills(), key=lambda f: f.time)
        out = [
            parsing.fill_from_ib(f, strategy=self._strategies.get(f.execution.orderRef, ""))
            for f in fills
        ]
        if since is None:
            return out
        return [f for f in out if f.timestamp >= since]
