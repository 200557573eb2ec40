"""Cross-sectional momentum: hold the strongest symbols of the universe, rebalanced monthly.

Every ``rebalance_bars`` bars, rank symbols by their return over ``lookback`` bars skipping the
most recent ``skip`` bars (the classic 12-1 momentum), and hold the top ``top_k`` long. A held
symbol that drops out of the top ``2 * top_k`` at a rebalance is sold; a wide ATR stop guards
against crashes between rebalances. Confidence grows with the rank's margin over the median.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from sovereign.rules.config import ParamSpec
from sovereign.trading.strategies.base import BaseStrategy
from sovereign.trading.strategy import HeldPosition, MarketView, Signal


class Momentum(BaseStrategy):
    name: ClassVar[str] = "momentum"
    specs: ClassVar[dict[str, ParamSpec]] = {
        "lookback": ParamSpec(default=252, low=21, high=504, integer=True, description="bars"),
        "skip": ParamSpec(
            default=21, low=0, high=63, integer=True, description="recent bars skipped"
        ),
        "top_k": ParamSpec(default=5, low=1, high=50, integer=True, description="symbols held"),
        "rebalance_bars": ParamSpec(default=21, low=5, high=126, integer=True, description="bars"),
        "stop_atr": ParamSpec(default=4.0, low=1.0, high=10.0, description="crash stop, ATRs"),
        "base_confidence": ParamSpec(default=0.5, low=0.3, high=0.9, description="raw confidence"),
    }

    @property
    def warmup_bars(self) -> int:
        return int(self.p["lookback"]) + 1

    def _scores(self, view: MarketView) -> np.ndarray:
        """Momentum per symbol at bar i, shape (n_symbols,); NaN where history is missing."""
        i = view.i
        lookback, skip = int(self.p["lookback"]), int(self.p["skip"])
        if i < lookback:
            return np.full(view.panel.n_symbols, np.nan)
        close = view.panel.close
        with np.errstate(invalid="ignore", divide="ignore"):
            scores: np.ndarray = close[i - skip] / close[i - lookback] - 1.0
        return scores

    def _rebalance_due(self, view: MarketView) -> bool:
        return view.i >= self.warmup_bars and view.i % int(self.p["rebalance_bars"]) == 0

    def entries(self, view: MarketView, held: dict[str, HeldPosition]) -> list[Signal]:
        if not self._rebalance_due(view):
            return []
        scores = self._scores(view)
        valid = np.isfinite(scores) & np.isfinite(view.close)
        if valid.sum() < 2:
            return []
        k = int(self.p["top_k"])
        order = np.argsort(np.where(valid, -scores, np.inf), kind="stable")[:k]
        median = float(np.median(scores[valid]))
        spread = float(np.std(scores[valid])) or 1.0
        signals = []
        for j in order:
            if not valid[j] or scores[j] <= 0:
                continue
            symbol = view.panel.symbols[j]
            if symbol in held:
                continue
            edge = min(1.0, max(0.0, (scores[j] - median) / (2 * spread)))
            raw = self.p["base_confidence"] + 0.3 * edge
            signals.append(
                Signal(
                    symbol=symbol,
                    side=1,
                    confidence=self.calibrated(raw, view.regime.value),
                    reason=f"top-{k} momentum ({scores[j]:+.1%} over {int(self.p['lookback'])} bars)",
                    stop_atr=self.p["stop_atr"],
                )
            )
        return signals

    def exit_reason(self, view: MarketView, position: HeldPosition) -> str | None:
        if not self._rebalance_due(view):
            return None
        scores = self._scores(view)
        valid = np.isfinite(scores)
        j = view.panel.column(position.symbol)
        if not valid[j]:
            return "momentum: no price history"
        rank = int(np.sum(scores[valid] > scores[j]))
        if rank >= 2 * int(self.p["top_k"]) or scores[j] <= 0:
            return f"momentum: dropped to rank {rank + 1}"
        return None
