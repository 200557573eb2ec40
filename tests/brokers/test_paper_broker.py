"""The paper broker against the shared conformance suite, plus paper-specific behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sovereign.brokers import (
    Broker,
    Order,
    OrderStatus,
    PaperConfig,
    PaperExchange,
    Side,
)
from sovereign.brokers.paper_broker import PaperBroker

from .conformance import Advance, BrokerConformance

T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
SYMBOLS = ("AAA", "BBB")


class _Market:
    """A seeded random-walk market that drives a PaperExchange one daily bar per ``advance``."""

    def __init__(self, exchange: PaperExchange, seed: int = 7) -> None:
        self.exchange = exchange
        self.rng = np.random.default_rng(seed)
        self.close = np.full(len(exchange.symbols), 100.0)
        self.now = T0

    def clock(self) -> datetime:
        return self.now

    def advance(self) -> None:
        i = self.exchange.current_bar + 1
        self.now = T0 + timedelta(days=i + 1)
        n = len(self.close)
        open_ = self.close * (1 + self.rng.normal(0, 0.005, n))
        close = open_ * (1 + self.rng.normal(0, 0.01, n))
        high = np.maximum(open_, close) * 1.005
        low = np.minimum(open_, close) * 0.995
        volume = np.full(n, 1_000_000.0)
        vol = np.full(n, 0.01)
        self.exchange.process_bar(i, self.now, open_, high, low, close, volume, vol)
        self.close = close


def make_paper(config: PaperConfig | None = None) -> tuple[PaperBroker, _Market]:
    exchange = PaperExchange(SYMBOLS, config=config or PaperConfig(), cash=100_000.0, seed=3)
    market = _Market(exchange)
    market.advance()  # one bar of history, so prices are known
    return PaperBroker(exchange, clock=market.clock), market


class TestPaperBrokerConformance(BrokerConformance):
    symbol = "AAA"
    quantity = 10.0
    far_limit_price = 1.0

    def make_broker(self) -> tuple[Broker, Advance]:
        broker, market = make_paper()
        return broker, market.advance


class TestPaperBrokerSimpleCostsConformance(BrokerConformance):
    symbol = "BBB"

    def make_broker(self) -> tuple[Broker, Advance]:
        broker, market = make_paper(PaperConfig(costs="simple"))
        return broker, market.advance


def test_name_and_clock_stamps() -> None:
    broker, market = make_paper()
    assert broker.name == "paper"
    report = broker.submit(Order(client_order_id="c1", symbol="AAA", side=Side.BUY, quantity=5))
    assert report.timestamp == market.now
    assert broker.account().timestamp == market.now
    market.advance()
    filled = broker.get_order("c1")
    assert filled is not None
    assert filled.status is OrderStatus.FILLED
    assert filled.timestamp == market.now  # stamped with the bar that filled it


def test_account_matches_portfolio_identity() -> None:
    broker, market = make_paper()
    broker.submit(Order(client_order_id="b", symbol="AAA", side=Side.BUY, quantity=50))
    broker.submit(Order(client_order_id="s", symbol="BBB", side=Side.SELL, quantity=30))
    market.advance()
    market.advance()
    acct = broker.account()
    commission = sum(f.commission for f in broker.fills_since(None))
    assert acct.equity == pytest.approx(
        100_000.0 + acct.realized_pnl + acct.unrealized_pnl - commission
    )
    assert acct.net_exposure < acct.gross_exposure  # one long, one short


def test_rejected_order_is_reported_and_stays_rejected() -> None:
    broker, _ = make_paper()
    report = broker.submit(Order(client_order_id="x", symbol="ZZZ", side=Side.BUY, quantity=1))
    assert report.status is OrderStatus.REJECTED
    assert "unknown symbol" in report.reason
    assert (
        broker.submit(Order(client_order_id="x", symbol="AAA", side=Side.BUY, quantity=1)).status
        is OrderStatus.REJECTED
    )
    assert broker.open_orders() == []
