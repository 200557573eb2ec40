"""What a strategy sees and says (the strategy contract itself is
:class:`sovereign.trading.strategies.base.BaseStrategy`).

A strategy reads one :class:`MarketView` (the bar panel up to and including row ``i``, its
causal features and the market regime) and returns entry :class:`Signal` s and exit reasons. It
never sizes, never sends orders and never sees the account: the Trader and the Supervisor do that.
A strategy must only read rows ``<= view.i``; the gate's look-ahead guard re-runs with truncated
data and fails any strategy that peeks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from sovereign.engines.indicators import FeatureFrame
from sovereign.market.bars import BarPanel
from sovereign.rules.context import Regime
from sovereign.trading.overlay import Overlay


@dataclass(frozen=True, kw_only=True, slots=True)
class MarketView:
    """Everything known at the close of bar ``i``.

    ``panel`` and ``features`` may hold rows after ``i`` (a backtest precomputes causal features
    once); strategies index rows ``<= i`` only.
    """

    i: int
    timestamp: datetime
    panel: BarPanel
    features: FeatureFrame
    regime: Regime
    regime_confidence: float
    prev_regime: Regime
    overlay: Overlay | None = None  # the engines' per-bar limits (None: no limits)

    @property
    def close(self) -> np.ndarray:
        """Closes at bar ``i``, shape (n_symbols,)."""
        row: np.ndarray = self.panel.close[self.i]
        return row


@dataclass(frozen=True, kw_only=True, slots=True)
class Signal:
    """A strategy's wish to open a position.

    ``confidence`` in [0, 1]. ``stop_atr`` / ``take_profit_atr``: distances in ATRs (None = no
    such exit). ``equity_fraction``: a fixed size as a fraction of equity resolved at fill time
    (reference strategies); None lets the Trader size from confidence and the constitution.
    """

    symbol: str
    side: int  # +1 long, -1 short
    confidence: float
    reason: str
    stop_atr: float | None = None
    take_profit_atr: float | None = None
    max_hold_bars: int | None = None
    equity_fraction: float | None = None
    exit_on_regime_change: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class HeldPosition:
    """What a strategy may know about one of its open positions."""

    symbol: str
    side: int
    entry_bar: int
    entry_price: float
    entry_time: datetime
