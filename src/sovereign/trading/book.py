"""The Trader's own book: open trades per (strategy, symbol), the intent behind every order,
round trips, and each strategy's pool. The broker's account is the aggregate truth; the book
says which strategy owns what and why, and reconciliation compares the two."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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


# ------------------------------------------------------------------------- persistence


def book_snapshot(book: Book, *, pending: set[str]) -> dict[str, Any]:
    """What a restarted process needs of ``book`` as plain JSON: the open trades (with their
    entry time; the bar index is re-derived by the restorer), the intents of the orders still
    ``pending`` at the broker (so their fills are booked after a restart), the realised P&L and
    the losing streaks. Round trips already closed live in trade memory, not here."""
    trades = []
    for trade in book.open.values():
        row = {f: getattr(trade, f) for f in OpenTrade.__dataclass_fields__}
        row["entry_time"] = trade.entry_time.isoformat()
        row["atr"] = _json_float(trade.atr)
        trades.append(row)
    keep = pending | {t.exit_order for t in book.open.values() if t.exit_order}
    intents = {}
    for coid, intent in book.intents.items():
        if coid in keep:
            row = {f: getattr(intent, f) for f in Intent.__dataclass_fields__}
            row["atr"] = _json_float(intent.atr)
            row["rules"] = list(intent.rules)
            intents[coid] = row
    return {
        "version": 1,
        "open": trades,
        "intents": intents,
        "realized": dict(book.realized),
        "losing_streak": dict(book.losing_streak),
    }


def restore_book(data: dict[str, Any], *, bar_of: Callable[[datetime], int]) -> Book:
    """The :class:`Book` of :func:`book_snapshot`; ``bar_of(entry_time)`` gives the bar index
    of an entry in the current panel (negative when it precedes the panel), so holding-time
    exits count bars correctly after a restart. A malformed snapshot raises ``ValueError``."""
    if data.get("version") != 1:
        raise ValueError(f"unknown book snapshot version {data.get('version')!r}")
    book = Book()
    try:
        for row in data["open"]:
            fields = dict(row)
            fields["entry_time"] = datetime.fromisoformat(fields["entry_time"])
            fields["atr"] = _float(fields.get("atr"))
            fields["entry_bar"] = bar_of(fields["entry_time"])
            trade = OpenTrade(**fields)
            book.open[(trade.strategy, trade.symbol)] = trade
        for coid, row in data["intents"].items():
            fields = dict(row)
            fields["atr"] = _float(fields.get("atr"))
            fields["rules"] = tuple(fields.get("rules", ()))
            book.intents[str(coid)] = Intent(**fields)
        book.realized = {str(k): float(v) for k, v in data["realized"].items()}
        book.losing_streak = {str(k): int(v) for k, v in data["losing_streak"].items()}
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"malformed book snapshot: {err!r}") from err
    return book


def _json_float(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _float(x: float | None) -> float:
    return float("nan") if x is None else float(x)
