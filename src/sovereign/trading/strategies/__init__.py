"""Built-in strategies and their registry."""

from sovereign.trading.strategies.base import BaseStrategy
from sovereign.trading.strategies.momentum import Momentum
from sovereign.trading.strategies.regime_entry import RegimeEntry
from sovereign.trading.strategies.sma_cross import SmaCross

REGISTRY: dict[str, type[BaseStrategy]] = {
    cls.name: cls for cls in (RegimeEntry, Momentum, SmaCross)
}

__all__ = ["REGISTRY", "BaseStrategy", "Momentum", "RegimeEntry", "SmaCross"]
