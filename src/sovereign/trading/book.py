"""The Trader's own book: open trades per (strategy, symbol), the intent behind every order,
round trips, and each strategy's pool. The broker's account is the aggregate truth; the book
says which strategy owns what and why, and reconciliation compares the two."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from sovereign.brokers.models import Fill
from sovereign.trading.events import ClosedTrade
from sovereign.trading.strategy import HeldPosition

_EPS = 1e-9


@dataclass(frozen=True, kw_only=True, slots=True)
class Intent:
    """Why an order was sent. ``atr`` is the ATR (price units) at the signal, for stop levels."""

    strategy: str
    symbol: str
    kind: str  # "entry" or "exit"
    side: int
    reason: str
    bar: int
    ruleset_version: str
    atr: float = float("nan")
    stop_atr: float | None = None
    take_profit_atr: float | None = None
    max_hold_bars: int | None = None
    exit_on_regime_change: bool = False
    regime: str = ""
    confidence: float = 0.0
    rules: tuple[str, ...] = ()


@dataclass(kw_only=True, slots=True)
class OpenTrade:
    strategy: str
    symbol: str
    side: int
    quantity: float
    entry_price: float
    entry_time: datetime
    entry_bar: int
    entry_reason: str
    regime_at_entry: str
    confidence: float
    rules: list[str]
    ruleset_version: str
    atr: float
    stop: float | None = None
    take_profit: float | None = None
    max_hold_bars: int | None = None
    exit_on_regime_change: bool = False
    commission: float = 0.0
    realized: float = 0.0  # gross P&L of the parts already closed
    closed_qty: float = 0.0
    exit_price_sum: float = 0.0
    exit_reason: str | None = None
    exit_order: str | None = None  # client order id of the live exit order

    def held(self) -> HeldPosition:
        return HeldPosition(
            symbol=self.symbol,
            side=self.side,
            entry_bar=self.entry_bar,
            entry_price=self.entry_price,
            entry_time=self.entry_time,
        )

    def unrealized(self, mark: float) -> float:
        return self.side * self.quantity * (mark - self.entry_price)


@dataclass(kw_only=True)
class Book:
    intents: dict[str, Intent] = field(default_factory=dict)
    open: dict[tuple[str, str], OpenTrade] = field(default_factory=dict)
    closed: list[ClosedTrade] = field(default_factory=list)
    realized: dict[str, float] = field(default_factory=dict)  # net of commissions
    losing_streak: dict[str, int] = field(default_factory=dict)

    def held(self, strategy: str) -> dict[str, HeldPosition]:
        return {s: t.held() for (st, s), t in self.open.items() if st == strategy}

    def trades_of(self, strategy: str) -> list[OpenTrade]:
        return [t for (st, _), t in self.open.items() if st == strategy]

    def pool_equity(self, strategy: str, capital: float, marks: dict[str, float]) -> float:
        unreal = sum(
            t.unrealized(marks.get(t.symbol, t.entry_price)) - t.commission
            for t in self.trades_of(strategy)
        )
        return capital + self.realized.get(strategy, 0.0) + unreal

    def apply_fill(self, fill: Fill, bar: int) -> list[ClosedTrade]:
        """Book one fill against its intent; returns the round trips it completed."""
        intent = self.intents.get(fill.client_order_id)
        if intent is None:
            return []
        key = (intent.strategy, intent.symbol)
        trade = self.open.get(key)
        signed = fill.signed_quantity
        done: list[ClosedTrade] = []
        if trade is not None and np.sign(signed) != trade.side:
            closing = min(abs(signed), trade.quantity)
            share = closing / abs(signed)
            trade.realized += trade.side * closing * (fill.price - trade.entry_price)
            trade.commission += fill.commission * share
            trade.exit_price_sum += fill.price * closing
            trade.closed_qty += closing
            trade.quantity -= closing
            if trade.quantity <= _EPS:
                done.append(self._close(trade, fill, bar, intent))
            rest = abs(signed) - closing
            if rest <= _EPS or intent.kind != "entry":
                return done
            signed = np.sign(signed) * rest
            fill_commission = fill.commission * (1 - share)
            trade = None
        else:
            fill_commission = fill.commission
        if intent.kind != "entry":
            return done
        if trade is None:
            self.open[key] = self._new_trade(intent, fill, abs(signed), fill_commission, bar)
        else:
            qty = trade.quantity + abs(signed)
            trade.entry_price = (
                trade.entry_price * trade.quantity + fill.price * abs(signed)
            ) / qty
            trade.quantity = qty
            trade.commission += fill_commission
        return done

    def _new_trade(
        self, intent: Intent, fill: Fill, qty: float, commission: float, bar: int
    ) -> OpenTrade:
        side = intent.side
        stop = tp = None
        if intent.stop_atr is not None and np.isfinite(intent.atr):
            stop = fill.price - side * intent.stop_atr * intent.atr
        if intent.take_profit_atr is not None and np.isfinite(intent.atr):
            tp = fill.price + side * intent.take_profit_atr * intent.atr
        return OpenTrade(
            strategy=intent.strategy,
            symbol=intent.symbol,
            side=side,
            quantity=qty,
            entry_price=fill.price,
            entry_time=fill.timestamp,
            entry_bar=bar,
            entry_reason=intent.reason,
            regime_at_entry=intent.regime,
            confidence=intent.confidence,
            rules=list(intent.rules),
            ruleset_version=intent.ruleset_version,
            atr=intent.atr,
            stop=stop,
            take_profit=tp,
            max_hold_bars=intent.max_hold_bars,
            exit_on_regime_change=intent.exit_on_regime_change,
            commission=commission,
        )

    def _close(self, trade: OpenTrade, fill: Fill, bar: int, intent: Intent) -> ClosedTrade:
        del self.open[(trade.strategy, trade.symbol)]
        pnl = trade.realized - trade.commission
        closed = ClosedTrade(
            strategy=trade.strategy,
            symbol=trade.symbol,
            side=trade.side,
            quantity=trade.closed_qty,
            entry_time=trade.entry_time,
            exit_time=fill.timestamp,
            entry_price=trade.entry_price,
            exit_price=trade.exit_price_sum / trade.closed_qty,
            pnl=pnl,
            commission=trade.commission,
            entry_reason=trade.entry_reason,
            exit_reason=trade.exit_reason or intent.reason,
            regime_at_entry=trade.regime_at_entry,
            confidence=trade.confidence,
            rules=tuple(dict.fromkeys(trade.rules)),
            ruleset_version=trade.ruleset_version,
            entry_bar=trade.entry_bar,
            exit_bar=bar,
        )
        self.closed.append(closed)
        self.realized[trade.strategy] = self.realized.get(trade.strategy, 0.0) + pnl
        streak = self.losing_streak.get(trade.strategy, 0)
        self.losing_streak[trade.strategy] = streak + 1 if pnl < 0 else 0
        return closed
