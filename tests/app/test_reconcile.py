"""Reconciliation against the paper broker (PaperBroker over a real PaperExchange) and a real
SQLite database; the pure comparison against hand-built broker snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from sovereign.app.context import App
from sovereign.app.reconcile import (
    InternalOrder,
    InternalState,
    IssueKind,
    Reconciler,
    orders_to_look_up,
    reconcile,
    submit_safely,
)
from sovereign.brokers.models import (
    AccountReport,
    Fill,
    MassStatus,
    Order,
    OrderReport,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from sovereign.brokers.paper_broker import PaperBroker
from sovereign.brokers.paper_exchange import PaperConfig, PaperExchange
from sovereign.errors import BrokerUnavailable, HaltTrading
from sovereign.settings import Settings

T0 = datetime(2024, 12, 2, 21, tzinfo=UTC)
SYMBOLS = ("AAA", "BBB")


class Market:
    """A paper exchange driven bar by bar, with a clock the broker reads."""

    def __init__(self) -> None:
        self.exchange = PaperExchange(SYMBOLS, config=PaperConfig(costs="simple"), cash=100_000.0)
        self.now = T0
        self.i = -1
        self.broker = PaperBroker(self.exchange, clock=lambda: self.now)
        self.bar()

    def bar(self, prices: tuple[float, float] = (100.0, 50.0)) -> list[Fill]:
        self.i += 1
        self.now = T0 + timedelta(days=self.i)
        px = np.array(prices)
        n = len(SYMBOLS)
        return self.exchange.process_bar(
            self.i, self.now, px, px * 1.01, px * 0.99, px, np.full(n, 1e6), np.full(n, 0.01)
        )


def buy(coid: str, symbol: str, qty: float, **kw: object) -> Order:
    return Order(client_order_id=coid, symbol=symbol, side=Side.BUY, quantity=qty, **kw)  # type: ignore[arg-type]


def account(at: datetime = T0) -> AccountReport:
    return AccountReport(
        cash=1.0,
        equity=1.0,
        gross_exposure=0.0,
        net_exposure=0.0,
        realized_pnl=0.0,
        unrealized_pnl=0.0,
        timestamp=at,
    )


def report(coid: str, status: OrderStatus, symbol: str = "AAA") -> OrderReport:
    return OrderReport(
        client_order_id=coid,
        broker_order_id=f"b-{coid}",
        symbol=symbol,
        side=Side.BUY,
        status=status,
        quantity=5,
        filled_quantity=0,
        avg_fill_price=None,
        timestamp=T0,
    )


def fill(fid: str, coid: str, symbol: str, qty: float) -> Fill:
    return Fill(
        fill_id=fid,
        client_order_id=coid,
        symbol=symbol,
        side=Side.BUY,
        quantity=qty,
        price=10.0,
        commission=0.0,
        timestamp=T0,
    )


def mine(coid: str, status: str, symbol: str = "AAA") -> InternalOrder:
    return InternalOrder(client_order_id=coid, symbol=symbol, side=Side.BUY, status=status)


# ------------------------------------------------------------------------------------ pure


def test_books_that_agree_reconcile_clean() -> None:
    m = Market()
    m.broker.submit(buy("o-1", "AAA", 10))
    m.bar()
    status = m.broker.mass_status()
    internal = InternalState(
        orders={"o-1": mine("o-1", "filled")},
        positions={"AAA": 10.0},
        fill_ids=frozenset(f.fill_id for f in status.fills),
    )
    assert orders_to_look_up(status, internal) == ()
    result = reconcile(status, internal)
    assert result.clean and result.issues == ()
    assert result.to_json()["clean"] is True


def test_every_kind_of_difference_is_flagged_and_resolved() -> None:
    status = MassStatus(
        account=account(),
        open_orders=(
            report("u-1", OrderStatus.ACCEPTED),  # unknown to us
            report("k-1", OrderStatus.PARTIALLY_FILLED),  # we think it filled
            report("k-2", OrderStatus.ACCEPTED),  # agreed
        ),
        positions=(
            Position(symbol="AAA", quantity=15, avg_price=10),
            Position(symbol="BBB", quantity=7, avg_price=10),
            Position(symbol="DDD", quantity=2, avg_price=10),
        ),
        fills=(
            fill("f-old", "k-2", "AAA", 10),  # recorded already
            fill("f-1", "k-1", "AAA", 5),  # ours, not recorded
            fill("f-2", "x-9", "DDD", 2),  # an order we never placed
        ),
    )
    internal = InternalState(
        orders={
            "k-1": mine("k-1", "filled"),
            "k-2": mine("k-2", "accepted"),
            "k-3": mine("k-3", "accepted"),
            "k-4": mine("k-4", "accepted"),
            "k-5": mine("k-5", "new"),
        },
        positions={"AAA": 10.0, "CCC": 3.0},
        fill_ids=frozenset({"f-old"}),
    )
    assert orders_to_look_up(status, internal) == ("k-3", "k-4", "k-5")
    looked_up = {"k-3": report("k-3", OrderStatus.CANCELED), "k-4": None}
    result = reconcile(status, internal, looked_up)

    kinds = {(i.kind, i.key) for i in result.issues}
    assert kinds == {
        (IssueKind.UNKNOWN_ORDER, "u-1"),
        (IssueKind.ORDER_REOPENED, "k-1"),
        (IssueKind.ORDER_CLOSED, "k-3"),
        (IssueKind.ORDER_NOT_AT_BROKER, "k-4"),
        (IssueKind.ORDER_UNCONFIRMED, "k-5"),
        (IssueKind.MISSING_FILL, "f-1"),
        (IssueKind.UNKNOWN_FILL, "f-2"),
        (IssueKind.UNKNOWN_POSITION, "BBB"),
        (IssueKind.POSITION_MISMATCH, "CCC"),
    }
    assert {i.key for i in result.issues if not i.blocking} == {"k-3", "f-1"}
    assert not result.clean
    assert [r.client_order_id for r in result.adopt_orders] == ["u-1"]
    assert [f.fill_id for f in result.recover_fills] == ["f-1", "f-2"]
    # AAA: 10 + the recovered 5 = the broker's 15; DDD explained by the unknown fill.
    assert result.position_adjustments == {"BBB": 7.0, "CCC": -3.0}
    updates = {u.client_order_id: u.status for u in result.order_updates}
    assert updates == {"k-1": "partially_filled", "k-3": "canceled", "k-4": "rejected"}


# ---------------------------------------------------------------------------- reconciler


@pytest.fixture
def app(home: Path) -> App:
    a = App.open(Settings())
    a.memory.record_run_start("live-1", started_at=T0, mode="paper")
    return a


def record_order(app: App, r: OrderReport) -> None:
    app.memory.add_orders(
        [
            {
                "client_order_id": r.client_order_id,
                "run_id": "live-1",
                "strategy": "momentum",
                "symbol": r.symbol,
                "side": r.side.value,
                "quantity": r.quantity,
                "status": r.status.value,
                "submitted_at": r.timestamp,
            }
        ]
    )


def test_reconciler_recovers_adopts_records_and_gates(app: App) -> None:
    m = Market()
    rec = Reconciler(app, m.broker, run_id="live-1")
    assert not rec.may_trade()  # never reconciled: fail closed
    with pytest.raises(HaltTrading, match="not reconciled"):
        rec.submit(buy("o-1", "AAA", 10))

    assert rec.run(m.now).clean
    assert rec.may_trade()
    ours = rec.submit(buy("o-1", "AAA", 10))
    record_order(app, ours)  # what the Trader's sink records
    # Placed by hand at the broker: a resting limit order and a market order that fills.
    m.broker.submit(
        buy(
            "hand-1",
            "BBB",
            3,
            order_type=OrderType.LIMIT,
            limit_price=1.0,
            time_in_force=TimeInForce.GTC,
        )
    )
    m.broker.submit(buy("hand-2", "BBB", 2))
    m.bar()  # both market orders fill; the process "crashes" before recording our fill
    app.memory.add_fills(  # and a fill we recorded that the broker never had
        [
            {
                "fill_id": "ghost-1",
                "client_order_id": "o-1",
                "symbol": "AAA",
                "side": "buy",
                "quantity": 5,
                "price": 100.0,
                "timestamp": m.now,
                "run_id": "live-1",
            }
        ]
    )

    first = rec.run(m.now)
    kinds = {(i.kind, i.key) for i in first.issues}
    assert kinds == {
        (IssueKind.ORDER_CLOSED, "o-1"),
        (IssueKind.MISSING_FILL, "o-1-1"),
        (IssueKind.UNKNOWN_ORDER, "hand-1"),
        (IssueKind.UNKNOWN_FILL, "hand-2-1"),
        (IssueKind.POSITION_MISMATCH, "AAA"),  # ours 10 + 5 (ghost) vs the broker's 10
    }
    assert not rec.may_trade()
    with pytest.raises(HaltTrading):
        rec.submit(buy("o-2", "AAA", 1))
    exit_order = Order(
        client_order_id="x-1", symbol="AAA", side=Side.SELL, quantity=1, reduce_only=True
    )
    record_order(app, rec.submit(exit_order))  # exits still go out

    # Memory now mirrors the broker: the fill recovered, the hand order adopted, statuses fixed.
    orders = {o.client_order_id: o for o in app.memory.orders(run_id="live-1")}
    assert orders["o-1"].status == "filled"
    assert orders["hand-1"].status == "accepted"
    assert "adopted" in orders["hand-1"].reason
    assert {f.fill_id for f in app.memory.fills(run_id="live-1")} == {
        "o-1-1",
        "hand-2-1",
        "ghost-1",
    }
    state = rec.state()
    assert state["adjustments"] == {"AAA": -5.0}
    assert {b["key"] for b in state["blocking"]} == {"hand-1", "hand-2-1", "AAA"}
    kinds_logged = [e.kind for e in app.audit.tail(10)]
    assert "reconcile.mismatch" in kinds_logged

    # The next run is clean (everything adopted) but does not reopen trading on its own.
    second = rec.run(m.now)
    assert second.clean and second.issues == ()
    assert not rec.may_trade()
    rec.acknowledge("alice", m.now)
    assert rec.may_trade()
    assert app.audit.tail(1)[0].kind == "reconcile.acknowledged"
    with pytest.raises(ValueError, match="name"):
        rec.acknowledge("  ", m.now)

    # A new difference blocks again.
    m.broker.submit(
        buy(
            "hand-3",
            "AAA",
            1,
            order_type=OrderType.LIMIT,
            limit_price=1.0,
            time_in_force=TimeInForce.GTC,
        )
    )
    third = rec.run(m.now)
    assert [(i.kind, i.key) for i in third.blocking] == [(IssueKind.UNKNOWN_ORDER, "hand-3")]
    assert not rec.may_trade()


class Unreachable(PaperBroker):
    def mass_status(self) -> MassStatus:
        raise BrokerUnavailable("connection refused")


def test_an_unreachable_broker_keeps_trading_shut(app: App) -> None:
    m = Market()
    good = Reconciler(app, m.broker, run_id="live-1")
    good.run(m.now)
    assert good.may_trade()
    bad = Reconciler(app, Unreachable(m.exchange, clock=lambda: m.now), run_id="live-1")
    with pytest.raises(BrokerUnavailable, match="reconciliation with paper failed"):
        bad.run(m.now)
    assert not bad.may_trade() and not good.may_trade()
    assert app.audit.tail(1)[0].kind == "reconcile.failed"
    with pytest.raises(HaltTrading, match="did not complete"):
        bad.acknowledge("alice", m.now)


# ---------------------------------------------------------------------------- submitting


class TimesOutAfterCreating(PaperBroker):
    """The broker takes the order, then the answer is lost: a timeout."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.submits = 0
        self.lookups = 0

    def submit(self, order: Order) -> OrderReport:
        self.submits += 1
        super().submit(order)
        raise BrokerUnavailable("read timed out")

    def get_order(self, client_order_id: str) -> OrderReport | None:
        self.lookups += 1
        return super().get_order(client_order_id)


class TimesOutBeforeCreating(TimesOutAfterCreating):
    """The first ``fail`` submits never reach the broker."""

    fail = 1

    def submit(self, order: Order) -> OrderReport:
        self.submits += 1
        if self.submits <= self.fail:
            raise TimeoutError("connect timed out")
        return PaperBroker.submit(self, order)


def test_a_submit_that_timed_out_after_reaching_the_broker_is_not_repeated() -> None:
    m = Market()
    broker = TimesOutAfterCreating(m.exchange, clock=lambda: m.now)
    result = submit_safely(broker, buy("o-1", "AAA", 10), sleep=lambda s: None)
    assert result.client_order_id == "o-1" and result.status is OrderStatus.ACCEPTED
    assert broker.submits == 1 and broker.lookups == 1
    assert [r.client_order_id for r in m.exchange.open_orders()] == ["o-1"]
    m.bar()
    assert len(m.exchange.fills) == 1  # one order, one fill: never doubled


def test_a_submit_that_never_arrived_is_sent_again() -> None:
    m = Market()
    broker = TimesOutBeforeCreating(m.exchange, clock=lambda: m.now)
    result = submit_safely(broker, buy("o-1", "AAA", 10), sleep=lambda s: None)
    assert result.status is OrderStatus.ACCEPTED
    assert broker.submits == 2 and broker.lookups == 1  # looked up before the retry
    assert len(m.exchange.open_orders()) == 1


def test_a_broker_that_never_answers_raises_without_duplicates() -> None:
    m = Market()
    broker = TimesOutBeforeCreating(m.exchange, clock=lambda: m.now)
    broker.fail = 99
    waits: list[float] = []
    with pytest.raises(BrokerUnavailable, match="never submitted twice"):
        submit_safely(broker, buy("o-1", "AAA", 10), attempts=3, backoff=0.5, sleep=waits.append)
    assert broker.submits == 3 and broker.lookups == 3  # a lookup before each retry and at the end
    assert waits == [0.5, 1.0, 1.5]
    assert m.exchange.open_orders() == []
