"""The Alpaca adapter over real HTTP against the stub: the shared conformance suite, idempotent
submission when answers are lost, retries, and key handling."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from sovereign.brokers import Broker, Order, OrderStatus, Side
from sovereign.brokers.alpaca import AlpacaBroker, RetryPolicy
from sovereign.errors import BrokerUnavailable, ConfigError

from .alpaca_stub import KEY, SECRET, AlpacaStub
from .conformance import Advance, BrokerConformance

FAST = RetryPolicy(attempts=3, backoff_s=0.0, timeout_s=2.0)


def make_broker(stub: AlpacaStub, policy: RetryPolicy = FAST, **kwargs: object) -> AlpacaBroker:
    return AlpacaBroker(
        api_key=KEY,
        secret_key=SECRET,
        base_url=stub.url,
        paper=True,
        policy=policy,
        sleep=lambda _s: None,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def stub() -> Iterator[AlpacaStub]:
    with AlpacaStub() as s:
        yield s


class TestAlpacaConformance(BrokerConformance):
    symbol = "AAA"
    quantity = 10.0
    far_limit_price = 1.0

    @pytest.fixture(autouse=True)
    def _stub(self, stub: AlpacaStub) -> None:
        self.stub = stub

    def make_broker(self) -> tuple[Broker, Advance]:
        return make_broker(self.stub), self.stub.advance


def _order(cid: str, qty: float = 10.0, side: Side = Side.BUY, **kw: object) -> Order:
    return Order(client_order_id=cid, symbol="AAA", side=side, quantity=qty, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- idempotency


@pytest.mark.parametrize(
    "lose_answer",
    [
        lambda s: s.drop_next(method="POST", path="/v2/orders"),  # connection dropped
        lambda s: s.hang_next(seconds=1.0, method="POST", path="/v2/orders"),  # timed out
        lambda s: s.fail_next(status=500, method="POST", path="/v2/orders"),  # 500, no order
    ],
    ids=["dropped", "timed-out", "http-500"],
)
def test_lost_submit_answer_is_looked_up_never_doubled(
    stub: AlpacaStub, lose_answer: Callable[[AlpacaStub], None]
) -> None:
    broker = make_broker(stub, RetryPolicy(attempts=3, backoff_s=0.0, timeout_s=0.3))
    lose_answer(stub)
    report = broker.submit(_order("lost-1"))
    assert report.client_order_id == "lost-1"
    assert report.status is OrderStatus.ACCEPTED
    assert len(stub.orders) == 1  # exactly one order at the broker
    looked_up = stub.requests_to("GET", "/v2/orders:by_client_order_id")
    assert [r.query["client_order_id"] for r in looked_up] == [["lost-1"]]
    stub.advance()
    assert [f.quantity for f in broker.fills_since(None)] == [10.0]


def test_order_created_by_the_lost_attempt_is_not_sent_again(stub: AlpacaStub) -> None:
    broker = make_broker(stub)
    stub.drop_next(method="POST", path="/v2/orders")  # created, answer lost
    broker.submit(_order("lost-2"))
    assert len(stub.requests_to("POST", "/v2/orders")) == 1


def test_dropped_before_creation_is_resent_once(stub: AlpacaStub) -> None:
    broker = make_broker(stub)
    stub.drop_next(method="POST", path="/v2/orders", process=False)  # nothing created
    report = broker.submit(_order("lost-3"))
    assert report.status is OrderStatus.ACCEPTED
    assert len(stub.requests_to("POST", "/v2/orders")) == 2
    assert len(stub.orders) == 1


def test_duplicate_submit_creates_nothing(stub: AlpacaStub) -> None:
    broker = make_broker(stub)
    first = broker.submit(_order("dup"))
    again = make_broker(stub).submit(_order("dup", qty=99))  # e.g. a restarted process
    assert again.broker_order_id == first.broker_order_id
    assert again.quantity == 10.0
    assert len(stub.orders) == 1


def test_submit_that_never_gets_through_is_unavailable(stub: AlpacaStub) -> None:
    broker = make_broker(stub)
    stub.fail_next(10, status=503)
    with pytest.raises(BrokerUnavailable, match=r"'never'.*HTTP 503 on all 3 attempts"):
        broker.submit(_order("never"))
    assert stub.orders == {}


# ----------------------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [500, 502, 429])
def test_transient_errors_are_retried(stub: AlpacaStub, status: int) -> None:
    broker = make_broker(stub)
    stub.fail_next(2, status=status, path="/v2/account")
    assert broker.account().cash == 100_000.0
    assert len(stub.requests_to("GET", "/v2/account")) == 3


@pytest.mark.parametrize("status", [500, 429])
def test_persistent_transient_errors_surface_as_unavailable(stub: AlpacaStub, status: int) -> None:
    broker = make_broker(stub)
    stub.fail_next(3, status=status, path="/v2/positions")
    with pytest.raises(BrokerUnavailable, match=f"HTTP {status}"):
        broker.positions()
    assert len(stub.requests_to("GET", "/v2/positions")) == 3


def test_backoff_is_bounded_and_deterministic(stub: AlpacaStub) -> None:
    waits: list[float] = []
    policy = RetryPolicy(attempts=4, backoff_s=0.25, max_backoff_s=0.6, timeout_s=2.0)
    broker = AlpacaBroker(
        api_key=KEY,
        secret_key=SECRET,
        base_url=stub.url,
        paper=True,
        policy=policy,
        sleep=waits.append,
    )
    stub.fail_next(4, status=500, path="/v2/account")
    with pytest.raises(BrokerUnavailable):
        broker.account()
    assert waits == [0.25, 0.5, 0.6]


def test_a_hanging_read_times_out_and_is_retried(stub: AlpacaStub) -> None:
    broker = make_broker(stub, RetryPolicy(attempts=2, backoff_s=0.0, timeout_s=0.2))
    stub.hang_next(seconds=1.0, path="/v2/positions")
    assert broker.positions() == []
    assert len(stub.requests_to("GET", "/v2/positions")) == 2


# --------------------------------------------------------------------------- rejections


def test_refused_order_is_rejected_with_alpacas_reason_and_stays_rejected(stub: AlpacaStub) -> None:
    broker = make_broker(stub)
    report = broker.submit(Order(client_order_id="bad", symbol="ZZZ", side=Side.BUY, quantity=1))
    assert report.status is OrderStatus.REJECTED
    assert "HTTP 422" in report.reason
    assert "asset not found" in report.reason
    assert broker.get_order("bad") == report
    assert broker.submit(_order("bad")) == report  # the id stays rejected
    assert len(stub.requests_to("POST", "/v2/orders")) == 1
    assert broker.open_orders() == []


def test_insufficient_buying_power_is_rejected(stub: AlpacaStub) -> None:
    report = make_broker(stub).submit(_order("huge", qty=1_000_000))
    assert report.status is OrderStatus.REJECTED
    assert "insufficient buying power" in report.reason


def test_cancel_of_a_filled_order_returns_it_unchanged(stub: AlpacaStub) -> None:
    broker = make_broker(stub)
    broker.submit(_order("done"))
    stub.advance()
    assert broker.cancel("done").status is OrderStatus.FILLED
    assert stub.requests_to("DELETE", f"/v2/orders/{next(iter(stub.orders))}") == []


# ------------------------------------------------------------------- matching details


def test_partial_fills_over_http(stub: AlpacaStub) -> None:
    stub.liquidity = 4.0
    broker = make_broker(stub)
    broker.submit(_order("part", strategy="momentum"))
    stub.advance()
    report = broker.get_order("part")
    assert report is not None
    assert (report.status, report.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 4.0)
    assert [r.client_order_id for r in broker.open_orders()] == ["part"]
    stub.advance()
    stub.advance()
    report = broker.get_order("part")
    assert report is not None
    assert (report.status, report.filled_quantity) == (OrderStatus.FILLED, 10.0)
    fills = broker.fills_since(None)
    assert [f.quantity for f in fills] == [4.0, 4.0, 2.0]
    assert {f.strategy for f in fills} == {"momentum"}
    assert report.avg_fill_price == pytest.approx(sum(f.quantity * f.price for f in fills) / 10)


def test_short_position_and_fractional_quantity(stub: AlpacaStub) -> None:
    broker = make_broker(stub)
    broker.submit(_order("short", qty=2.5, side=Side.SELL))
    stub.advance()
    [position] = broker.positions()
    assert position.quantity == -2.5
    account = broker.account()
    assert account.net_exposure == pytest.approx(-2.5 * stub.price("AAA"))
    assert account.gross_exposure == pytest.approx(2.5 * stub.price("AAA"))
    assert account.cash == pytest.approx(100_000.0 + 2.5 * stub.price("AAA"))


def test_equity_fraction_is_sized_from_equity_and_last_price(stub: AlpacaStub) -> None:
    broker = make_broker(stub, last_price=stub.price)
    report = broker.submit(
        Order(client_order_id="frac", symbol="AAA", side=Side.BUY, equity_fraction=0.05)
    )
    expected = math.floor(100_000.0 * 0.05 / stub.price("AAA"))
    assert report.quantity == expected
    tiny = broker.submit(
        Order(client_order_id="tiny", symbol="AAA", side=Side.BUY, equity_fraction=1e-6)
    )
    assert tiny.status is OrderStatus.REJECTED
    assert "buys no whole share" in tiny.reason


def test_reduce_only_is_capped_at_the_position(stub: AlpacaStub) -> None:
    broker = make_broker(stub)
    nothing = broker.submit(_order("r0", qty=5, side=Side.SELL, reduce_only=True))
    assert nothing.status is OrderStatus.REJECTED
    broker.submit(_order("long", qty=10))
    stub.advance()
    capped = broker.submit(_order("r1", qty=25, side=Side.SELL, reduce_only=True))
    assert capped.quantity == 10.0


def test_fills_since_follows_activity_pages(stub: AlpacaStub) -> None:
    broker = make_broker(stub)
    for i in range(105):
        broker.submit(_order(f"many-{i:03d}", qty=1))
    stub.advance()
    fills = broker.fills_since(None)
    assert len(fills) == 105
    assert len({f.fill_id for f in fills}) == 105
    assert len(stub.requests_to("GET", "/v2/account/activities/FILL")) == 2
    assert {f.client_order_id for f in fills} == {f"many-{i:03d}" for i in range(105)}


def test_mass_status_lookback(stub: AlpacaStub) -> None:
    broker = make_broker(stub, fills_lookback=timedelta(hours=1), clock=lambda: stub.now)
    broker.submit(_order("old"))
    stub.advance()
    stub.advance()
    broker.submit(_order("new"))
    stub.advance()
    status = broker.mass_status()
    assert [f.client_order_id for f in status.fills] == ["new"]
    assert status.account.timestamp == stub.now


# -------------------------------------------------------------------------------- keys


def test_missing_key_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="APCA_API_KEY_ID"):
        AlpacaBroker(base_url="http://127.0.0.1:9", paper=True)
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    with pytest.raises(ConfigError, match="APCA_API_SECRET_KEY") as info:
        AlpacaBroker(base_url="http://127.0.0.1:9", paper=True)
    assert KEY not in str(info.value)


def test_keys_and_endpoint_from_the_environment(
    stub: AlpacaStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    monkeypatch.setenv("SOVEREIGN_ALPACA__BASE_URL", stub.url)
    broker = AlpacaBroker()
    assert broker.account().equity == 100_000.0
    assert all(r.authorized for r in stub.requests)


def test_wrong_keys_are_a_config_error(stub: AlpacaStub) -> None:
    broker = AlpacaBroker(
        api_key=KEY,
        secret_key="wrong-secret-value",  # noqa: S106 - a deliberately wrong fake key
        base_url=stub.url,
        paper=True,
    )
    with pytest.raises(ConfigError, match="HTTP 401") as info:
        broker.account()
    assert "wrong-secret-value" not in str(info.value)
    assert stub.requests[-1].authorized is False


def test_keys_never_appear_in_logs_or_errors(
    stub: AlpacaStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # alpaca-py, requests and urllib3 included
    broker = make_broker(stub, RetryPolicy(attempts=2, backoff_s=0.0, timeout_s=0.3))
    stub.drop_next(method="POST", path="/v2/orders")
    broker.submit(_order("log-1"))
    stub.advance()
    broker.mass_status()
    stub.fail_next(5, status=500)
    errors: list[str] = []
    for call in (broker.account, lambda: broker.submit(_order("log-2"))):
        with pytest.raises(BrokerUnavailable) as info:
            call()
        errors.append(repr(info.value) + str(info.value.__cause__))
    errors.append(repr(broker))
    assert any("attempt" in r.getMessage() for r in caplog.records)  # retries were logged
    text = caplog.text + "".join(errors)
    assert KEY not in text
    assert SECRET not in text
