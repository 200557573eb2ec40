"""Brokers: the port (commands in, reports out), the paper exchange, broker and portfolio."""

from sovereign.brokers.costs import (
    commission,
    cost_fraction,
    fill_price,
    whole_shares_for_fraction,
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
    client_order_id,
)
from sovereign.brokers.paper_broker import PaperBroker
from sovereign.brokers.paper_exchange import PaperConfig, PaperExchange
from sovereign.brokers.paper_portfolio import PaperPortfolio
from sovereign.brokers.port import Broker

__all__ = [
    "AccountReport",
    "Broker",
    "Fill",
    "MassStatus",
    "Order",
    "OrderReport",
    "OrderStatus",
    "OrderType",
    "PaperBroker",
    "PaperConfig",
    "PaperExchange",
    "PaperPortfolio",
    "Position",
    "Side",
    "TimeInForce",
    "client_order_id",
    "commission",
    "cost_fraction",
    "fill_price",
    "whole_shares_for_fraction",
]
