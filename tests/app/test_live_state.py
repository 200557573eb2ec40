"""The live loop's saved state: a book, working entries and the pool allocator survive a restart
and are re-based on the new process's panel."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from sovereign.app.context import App
from sovereign.app.live_state import SavedBook
from sovereign.brokers.models import Fill, Order, Side
from sovereign.constitution import Constitution
from sovereign.engines.allocation import context_vector
from sovereign.market.session import nyse
from sovereign.market.synthetic import generate
from sovereign.settings import Settings
from sovereign.trading.book import Intent
from sovereign.trading.catalog import build
from sovereign.trading.supervisor import Supervisor
from sovereign.trading.trader import Trader

PANEL = generate(symbols=3, n_bars=120, seed=2, start="2024-01-01").panel
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def trader() -> Trader:
    return Trader(
        strategies=build(["regime_entry", "momentum"]),
        supervisor=Supervisor(constitution=Constitution()),
        initial_equity=1e6,
    )


def test_save_load_and_rebase_on_a_shifted_panel(home: Path) -> None:
    app = App.open(Settings())
    t = trader()
    entry_bar = 100
    entry_time = PANEL.timestamps[entry_bar].to_pydatetime()
    intent = Intent(
        strategy="momentum",
        symbol=PANEL.symbols[0],
        kind="entry",
        side=1,
        reason="test",
        bar=entry_bar,
        ruleset_version="rs-x",
        atr=1.5,
        stop_atr=2.0,
    )
    t.book.intents["c-1"] = intent
    t.book.apply_fill(
        Fill(
            fill_id="f-1",
            client_order_id="c-1",
            symbol=PANEL.symbols[0],
            side=Side.BUY,
            quantity=100,
            price=50.0,
            commission=1.0,
            timestamp=entry_time,
            strategy="momentum",
        ),
        entry_bar,
    )
    order = Order(client_order_id="c-2", symbol=PANEL.symbols[1], side=Side.BUY, quantity=5000)
    t.working.start(
        order,
        intent=Intent(
            strategy="",
            symbol=PANEL.symbols[1],
            kind="entry",
            side=1,
            reason="big",
            bar=110,
            ruleset_version="rs-x",
        ),
        bar=110,
        adv=100_000,
        seed=1,
        ruleset_version="rs-x",
        namespace="acct",
        signal_time=PANEL.timestamps[110].to_pydatetime(),
    )
    ctx = context_vector([0.25] * 4, 1.0, 0.2)
    t.pools.observe(110, pool_equity={"regime_entry": 5e5, "momentum": 5e5}, context=ctx)
    saved = SavedBook(app, "acct", nyse())
    saved.save(
        run_id="live-1",
        trader=t,
        open_orders={"c-9"},
        fills_from=entry_time,
        booked_fills={"f-1"},
        last_bar=PANEL.timestamps[110].to_pydatetime(),
        now=NOW,
    )

    again = SavedBook(app, "acct", nyse())
    restored = again.load()
    assert restored is not None and restored.run_id == "live-1"
    assert restored.seen_fills == {"f-1"} and restored.open_orders == {"c-9"}
    t2 = trader()
    t2.book = restored.book
    assert again.needs_rebase
    shifted = PANEL.slice(40, PANEL.n_bars)  # the new process fetched a later window
    again.rebase(t2, shifted, i=shifted.n_bars - 1)
    assert not again.needs_rebase
    (trade,) = t2.book.open.values()
    assert trade.entry_bar == entry_bar - 40 and trade.quantity == 100
    assert t2.working.pending() == {("", PANEL.symbols[1]): 4000}  # 4 children of 1,000 left
    (child,) = [o for o, _ in t2.working.due(shifted.n_bars - 1)]
    assert child.quantity == 1000  # the next child is due at once in the new panel
    assert t2.pools.snapshot()["last_bar"] == 110 - 40
    app.dispose()


def test_an_unreadable_saved_state_is_logged_and_ignored(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = App.open(Settings())
    app.supervisor_store.save_state("book:acct", {"book": {"version": 1}}, NOW)
    saved = SavedBook(app, "acct", nyse())
    with caplog.at_level(logging.ERROR):
        assert saved.load() is None
    assert "cannot be read" in caplog.text and not saved.needs_rebase
    assert SavedBook(app, "other", nyse()).load() is None  # nothing saved for that account
    app.dispose()


def test_bar_of_counts_sessions_before_the_panel(home: Path) -> None:
    app = App.open(Settings())
    saved = SavedBook(app, "acct", nyse())
    panel = PANEL.slice(60, 120)
    assert saved.bar_of(panel, panel.timestamps[5].to_pydatetime()) == 5
    before = saved.bar_of(panel, datetime(2024, 1, 2, tzinfo=UTC))
    assert before < 0 and np.isfinite(before)
    app.dispose()
