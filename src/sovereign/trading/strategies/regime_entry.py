"""The regime-aware entry strategy of the Sovereign v4 spec.

Long only. In a TrendingUp regime it buys breakouts above the prior resistance (support /
resistance score +2); in a Ranging regime it buys bounces off support (score +1 with an up
close). Where the source has volume, the bar's volume percentile must confirm the move. In
TrendingDown and Volatile regimes it opens nothing; when the regime is Uncertain it only takes
breakouts, at a lower confidence (conservative default). Exits: ATR stop, ATR take profit,
maximum holding time, and a change of regime away from the one it entered in.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from sovereign.rules.config import ParamSpec
from sovereign.rules.context import Regime
from sovereign.trading.strategies.base import BaseStrategy
from sovereign.trading.strategy import HeldPosition, MarketView, Signal


class RegimeEntry(BaseStrategy):
    name: ClassVar[str] = "regime_entry"
    specs: ClassVar[dict[str, ParamSpec]] = {
        "stop_atr": ParamSpec(default=1.5, low=0.5, high=5.0, description="stop distance, ATRs"),
        "take_profit_atr": ParamSpec(
            default=3.0, low=1.0, high=10.0, description="take-profit distance, ATRs"
        ),
        "max_hold_bars": ParamSpec(
            default=20, low=2, high=250, integer=True, description="maximum holding time, bars"
        ),
        "volume_confirm_pct": ParamSpec(
            default=50, low=0, high=100, description="minimum volume percentile to confirm"
        ),
        "base_confidence": ParamSpec(
            default=0.55, low=0.3, high=0.9, description="raw confidence of a clean signal"
        ),
        "min_atr_pct": ParamSpec(
            default=0.2,
            low=0.0,
            high=5.0,
            description="ignore symbols with ATR below this % of price",
        ),
    }

    @property
    def warmup_bars(self) -> int:
        return 30

    def entries(self, view: MarketView, held: dict[str, HeldPosition]) -> list[Signal]:
        regime = view.regime
        if regime in (Regime.TRENDING_DOWN, Regime.VOLATILE):
            return []
        i, f, p = view.i, view.features, self.p
        if i < 1:
            return []
        score = f.sr_score[i]
        close = view.panel.close[i]
        up_close = close > view.panel.close[i - 1]
        tradable = np.isfinite(close) & (f.atr_pct[i] >= p["min_atr_pct"])
        if regime is Regime.RANGING:
            mask = tradable & (score == 1) & up_close
            kind = "bounce off support in a ranging market"
        else:  # trending up, or uncertain: breakouts only
            mask = tradable & (score == 2)
            kind = "breakout above resistance"
        volume_pct = f.volume_percentile[i]
        has_volume = np.isfinite(volume_pct)
        mask &= ~has_volume | (volume_pct >= p["volume_confirm_pct"])
        signals: list[Signal] = []
        for j in np.flatnonzero(mask):
            symbol = view.panel.symbols[j]
            if symbol in held:
                continue
            raw = p["base_confidence"] * (0.5 + 0.5 * view.regime_confidence)
            if has_volume[j]:
                raw = min(0.95, raw + 0.1 * (volume_pct[j] - 50.0) / 50.0)
            if regime is Regime.UNCERTAIN:
                raw *= 0.8
            signals.append(
                Signal(
                    symbol=symbol,
                    side=1,
                    confidence=self.calibrated(raw, regime.value),
                    reason=f"{kind} ({regime.value})",
                    stop_atr=p["stop_atr"],
                    take_profit_atr=p["take_profit_atr"],
                    max_hold_bars=int(p["max_hold_bars"]),
                    exit_on_regime_change=True,
                )
            )
        return signals

    def exit_reason(self, view: MarketView, position: HeldPosition) -> str | None:
        return None  # stops, targets, holding time and regime exits are the Trader's
