"""Alpaca (alpaca-py): the broker adapter, its market data source and the wire mapping."""

from sovereign.brokers.alpaca.adapter import AlpacaBroker, RetryPolicy
from sovereign.brokers.alpaca.data import AlpacaData
from sovereign.brokers.alpaca.parsing import STATUS_TABLE

__all__ = ["STATUS_TABLE", "AlpacaBroker", "AlpacaData", "RetryPolicy"]
