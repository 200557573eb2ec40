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

    _cache_key: np.ndarray | None = None
    _cache: tuple[np.ndarray, np.ndarray]

    @property
    def warmup_bars(self) -> int:
        return int(self.p["slow"])

    def _cross(self, view: MarketView) -> np.ndarray:
        """+1 where fast crossed above slow at bar i, -1 below, 0 otherwise; (n_symbols,)."""
        i, slow = view.i, int(self.p["slow"])
        if i < slow:
            return np.zeros(view.panel.n_symbols, dtype=np.int8)
        f, s = self._averages(view)
        f_prev, s_prev, f_now, s_now = f[i - 1], s[i - 1], f[i], s[i]
        up = (f_prev < s_prev) & (f_now > s_now)
        down = (f_prev > s_prev) & (f_now < s_now)
        cross: np.ndarray = up.astype(np.int8) - down.astype(np.int8)
        return cross

    def _averages(self, view: MarketView) -> tuple[np.ndarray, np.ndarray]:
        """Fast and slow SMAs for every bar of the panel, shape (n_bars, n_symbols), NaN before
        a full window. Row t averages closes t-n+1..t only (causal); computed once per panel."""
        close = view.panel.close
        if self._cache_key is not close:
            self._cache = (
                self._sma(close, int(self.p["fast"])),
                self._sma(close, int(self.p["slow"])),
            )
            self._cache_key = close
        return self._cache

    @staticmethod
    def _sma(close: np.ndarray, n: int) -> np.ndarray:
        out = np.full(close.shape, np.nan)
        if close.shape[0] >= n:
            out[n - 1 :] = np.lib.stride_tricks.sliding_window_view(close, n, axis=0).mean(axis=-1)
        return out

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
