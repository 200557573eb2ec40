"""Interactive Brokers (TWS / IB Gateway) through ib_async, the optional extra ``ibkr``.

Importing this package does not import ib_async; :meth:`IBKRBroker.connect`, the history
requests of :class:`IBKRData` and the order builders in :mod:`~sovereign.brokers.ibkr.parsing` do, and raise ConfigError naming
``pip install 'sovereign[ibkr]'`` when it is missing.
"""

from sovereign.brokers.ibkr.adapter import IBKRBroker
from sovereign.brokers.ibkr.data import IBKRData
from sovereign.brokers.ibkr.parsing import INSTALL_HINT, ORDER_STATUS, ib_api

__all__ = ["INSTALL_HINT", "ORDER_STATUS", "IBKRBroker", "IBKRData", "ib_api"]
