"""Reference strategy for cross-checks: a simple moving-average crossover.

Long only by default: buy ``size`` (a fraction of equity, resolved into whole units at fill
time) when the fast SMA crosses above the slow one, close when it crosses below. With
``short=1`` it reverses instead: long on the up-cross, short on the down-cross. A cross at bar
``i`` means fast[i-1] < slow[i-1] and fast[i] > slow[i] (strict, as backtesting.py defines it).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from sovereign.rules.config import ParamSpec
from sovereign.trading.strategies.base import BaseStrategy
from sovereign.trading.strategy import HeldPosition, MarketView, Signal


class SmaCross(BaseStrategy):
    name: ClassVar[str] = "sma_cross"
    specs: ClassVar[dict[str, ParamSpec]] = {
        "fast": ParamSpec(default=10, low=2, high=200, integer=True, description="bars"),
        "slow": ParamSpec(default=20, low=3, high=400, integer=True, description="bars"),
        "size": ParamSpec(default=0.95, low=0.01, high=1.0, description="fraction of equity"),
        "short": ParamSpec(default=0, low=0, high=1, integer=True, description="1 = reverse"),
        "confidence": ParamSpec(default=1.0, low=0.0, high=1.0, description="fixed confidence"),
    }

    @property
    def warmup_bars(self) -> int:
        return int(self.p["slow"])

    def _cross(self, view: MarketView) -> np.ndarray:
        """+1 where fast crossed above slow at bar i, -1 below, 0 otherwise; (n_symbols,)."""
        i, fast, slow = view.i, int(self.p["fast"]), int(self.p["slow"])
        if i < slow:
            return np.zeros(view.panel.n_symbols, dtype=np.int8)
        close = view.panel.close
        f_now = close[i - fast + 1 : i + 1].mean(axis=0)
        s_now = close[i - slow + 1 : i + 1].mean(axis=0)
        f_prev = close[i - fast : i].mean(axis=0)
        s_prev = close[i - slow : i].mean(axis=0)
        up = (f_prev < s_prev) & (f_now > s_now)
        down = (f_prev > s_prev) & (f_now < s_now)
        return up.astype(np.int8) - down.astype(np.int8)

    def entries(self, view: MarketView, held: dict[str, HeldPosition]) -> list[Signal]:
        cross = self._cross(view)
        short = bool(self.p["short"])
        signals = []
        for j in np.flatnonzero(cross):
            side = int(cross[j])
            if side < 0 and not short:
                continue
            symbol = view.panel.symbols[j]
            if symbol in held and held[symbol].side == side:
                continue
            signals.append(
                Signal(
                    symbol=symbol,
                    side=side,
                    confidence=self.p["confidence"],
                    reason="fast SMA crossed " + ("above" if side > 0 else "below") + " slow",
                    equity_fraction=self.p["size"],
                )
            )
        return signals

    def exit_reason(self, view: MarketView, position: HeldPosition) -> str | None:
        cross = int(self._cross(view)[view.panel.column(position.symbol)])
        if cross != 0 and cross != position.side:
            return "SMA cross against the position"
        return None
