"""What the live loop keeps across restarts, so a new process carries on where the last stopped:
the Trader's book (open trades with their stops, the intents of orders still at the broker,
realised P&L and losing streaks), the entries being worked over several bars, the pool
allocator, and the fill watermark (so each fill is booked once).

Saved after every trading cycle under ``book:<account>`` in the key-value store. Bar indices are
per process (each fetches its own panel), so they are saved as times and re-based on the first
panel a restarted process fetches (:meth:`SavedBook.rebase`). A snapshot that cannot be read is
logged and ignored: reconciliation still guards the positions, but their exits are then left to
a person, and the log says so.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sovereign.app.context import App
from sovereign.errors import EngineError
from sovereign.market.bars import BarPanel
from sovereign.market.session import MarketCalendar
from sovereign.trading.book import Book, book_snapshot, restore_book
from sovereign.trading.slicing import WorkingOrders
from sovereign.trading.trader import Trader

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class Restored:
    """What :meth:`SavedBook.load` found: the book and the fill bookkeeping of the last run."""

    run_id: str | None
    book: Book
    fills_from: datetime
    seen_fills: frozenset[str]
    open_orders: frozenset[str]
    data: dict[str, Any]


class SavedBook:
    def __init__(self, app: App, account: str, calendar: MarketCalendar) -> None:
        self.app = app
        self.account = account
        self.calendar = calendar
        self.key = f"book:{account}"
        self._pending: Restored | None = None

    def save(
        self,
        *,
        run_id: str,
        trader: Trader,
        open_orders: Collection[str],
        fills_from: datetime,
        booked_fills: Collection[str],
        last_bar: datetime | None,
        now: datetime,
    ) -> None:
        """``booked_fills``: fill ids already given to the Trader (a fill seen but not booked
        yet is seen again after a restart)."""
        self.app.supervisor_store.save_state(
            self.key,
            {
                "run_id": run_id,
                "book": book_snapshot(trader.book, pending=set(open_orders)),
                "fills_from": fills_from.isoformat(),
                "seen_fills": sorted(booked_fills),
                "open_orders": sorted(open_orders),
                "working": trader.working.snapshot(),
                "pools": trader.pools.snapshot(),
                "last_bar_time": None if last_bar is None else last_bar.isoformat(),
            },
            now,
        )

    def load(self) -> Restored | None:
        """The saved state of an earlier process of this account, or None (nothing saved, or
        unreadable: logged). After a load, call :meth:`rebase` on the first panel."""
        data = self.app.supervisor_store.load_state(self.key)
        if data is None:
            return None
        try:
            restored = Restored(
                run_id=data.get("run_id"),
                book=restore_book(data["book"], bar_of=lambda _t: 0),
                fills_from=datetime.fromisoformat(data["fills_from"]),
                seen_fills=frozenset(data.get("seen_fills", ())),
                open_orders=frozenset(data.get("open_orders", ())),
                data=data,
            )
        except (KeyError, TypeError, ValueError) as err:
            log.error(
                "the saved book of %s cannot be read (%s): open positions from before the "
                "restart are not managed by a strategy; check them with `sovereign status`",
                self.account,
                err,
            )
            return None
        log.info(
            "restored the book of %s from %s: %d open trades, %d pending orders",
            self.account,
            restored.run_id,
            len(restored.book.open),
            len(restored.open_orders),
        )
        self._pending = restored
        return restored

    @property
    def needs_rebase(self) -> bool:
        return self._pending is not None

    def rebase(self, trader: Trader, panel: BarPanel, i: int) -> None:
        """On the first panel after a restart: entry bars from entry times, entries being worked
        resume at bar ``i``, the pool allocator's bars shift to the new panel. A part that cannot
        be used starts fresh, and the log says so."""
        restored, self._pending = self._pending, None
        if restored is None:
            return
        for trade in trader.book.open.values():
            trade.entry_bar = self.bar_of(panel, trade.entry_time)
        data = restored.data
        try:
            if data.get("working") is not None:
                trader.working = WorkingOrders.restore(
                    data["working"], config=trader.config.slicing, next_bar=i
                )
            pools, last = data.get("pools"), data.get("last_bar_time")
            if pools is not None and last is not None and pools.get("last_bar") is not None:
                shift = self.bar_of(panel, datetime.fromisoformat(last)) - int(pools["last_bar"])
                trader.pools.restore(pools, bar_shift=shift)
        except (EngineError, ValueError, KeyError, TypeError) as err:
            log.error("the saved working entries or pool state cannot be used (%s)", err)

    def bar_of(self, panel: BarPanel, t: datetime) -> int:
        """The index in ``panel`` of the bar at or before ``t``; negative (sessions before the
        panel's first bar) for an entry older than the panel."""
        i = int(panel.timestamps.searchsorted(t, side="right")) - 1
        if i >= 0:
            return i
        try:
            first = panel.timestamps[0].to_pydatetime()
            return -len(self.calendar.sessions_between(t, first))
        except ValueError:  # outside the calendar's range
            return -1


__all__ = ["Restored", "SavedBook"]
