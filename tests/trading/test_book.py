"""The Trader's book (trading/book.py): fills against intents, partial fills, flips, pools."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sovereign.brokers.models import Fill, Side
from sovereign.trading.book import Book, Intent, book_snapshot, restore_book

T0 = datetime(2024, 1, 2, tzinfo=UTC)


def fill(
    coid: str, side: Side, qty: float, price: float, commission: float = 1.0, n: int = 1
) -> Fill:
    return Fill(
        fill_id=f"{coid}-{n}",
        client_order_id=coid,
        symbol="AAA",
        side=side,
        quantity=qty,
        price=price,
        commission=commission,
        timestamp=T0,
        strategy="s",
    )


def intent(kind: str, side: int, **kw: object) -> Intent:
    base: dict[str, object] = {
        "strategy": "s",
        "symbol": "AAA",
        "kind": kind,
        "side": side,
        "reason": kind,
        "bar": 0,
        "ruleset_version": "rs-x",
    }
    base.update(kw)
    return Intent(**base)  # type: ignore[arg-type]


def test_partial_entry_and_exit_make_one_round_trip_with_net_pnl() -> None:
    book = Book()
    book.intents["e"] = intent(
        "entry", 1, atr=2.0, stop_atr=1.5, take_profit_atr=3.0, regime="ranging"
    )
    book.intents["x"] = intent("exit", -1)
    assert book.apply_fill(fill("e", Side.BUY, 60, 100.0), bar=1) == []
    assert book.apply_fill(fill("e", Side.BUY, 40, 105.0, n=2), bar=2) == []
    trade = book.open[("s", "AAA")]
    assert trade.quantity == 100 and trade.entry_price == pytest.approx(102.0)
    assert trade.stop == pytest.approx(100.0 - 3.0) and trade.take_profit == pytest.approx(106.0)
    assert book.apply_fill(fill("x", Side.SELL, 30, 110.0), bar=5) == []
    done = book.apply_fill(fill("x", Side.SELL, 70, 90.0, n=2), bar=6)
    assert len(done) == 1 and book.open == {}
    t = done[0]
    gross = 30 * (110 - 102) + 70 * (90 - 102)
    assert t.pnl == pytest.approx(gross - 4.0)  # four fills, 1.0 commission each
    assert t.exit_price == pytest.approx((30 * 110 + 70 * 90) / 100)
    assert (t.entry_bar, t.exit_bar, t.regime_at_entry) == (1, 6, "ranging")
    assert book.losing_streak["s"] == 1 and book.realized["s"] == pytest.approx(t.pnl)


def test_an_opposite_entry_closes_then_reverses() -> None:
    book = Book()
    book.intents["long"] = intent("entry", 1)
    book.intents["short"] = intent("entry", -1)
    book.apply_fill(fill("long", Side.BUY, 10, 50.0, commission=0.0), bar=1)
    done = book.apply_fill(fill("short", Side.SELL, 25, 55.0, commission=0.0), bar=2)
    assert [t.pnl for t in done] == [pytest.approx(50.0)]
    reversed_trade = book.open[("s", "AAA")]
    assert (reversed_trade.side, reversed_trade.quantity, reversed_trade.entry_price) == (
        -1,
        15,
        55.0,
    )
    assert book.pool_equity("s", 1000.0, {"AAA": 50.0}) == pytest.approx(1000.0 + 50.0 + 15 * 5.0)


def test_a_fill_without_a_known_intent_is_ignored() -> None:
    book = Book()
    assert book.apply_fill(fill("unknown", Side.BUY, 1, 1.0), bar=0) == []
    assert book.open == {}


def test_a_snapshot_restores_open_trades_pending_intents_and_streaks() -> None:
    book = Book()
    book.intents["e1"] = intent(
        "entry", 1, atr=2.0, stop_atr=1.5, take_profit_atr=3.0, rules=("r-1",)
    )
    book.apply_fill(fill("e1", Side.BUY, 10, 100.0), bar=7)
    book.intents["x1"] = intent("exit", -1)  # an exit still working at the broker
    book.intents["old"] = intent("entry", 1, atr=float("nan"))  # long done: not kept
    book.realized["s"] = -12.5
    book.losing_streak["s"] = 2
    snapshot = json.loads(json.dumps(book_snapshot(book, pending={"x1"})))

    restored = restore_book(snapshot, bar_of=lambda t: -3 if t == T0 else 99)
    trade = restored.open[("s", "AAA")]
    original = book.open[("s", "AAA")]
    assert trade.entry_bar == -3  # re-derived in the new panel, not copied
    for name in ("quantity", "entry_price", "entry_time", "stop", "take_profit", "rules", "atr"):
        assert getattr(trade, name) == getattr(original, name)
    assert set(restored.intents) == {"x1"}
    assert restored.realized == {"s": -12.5} and restored.losing_streak == {"s": 2}
    # the restored exit intent books the exit's fill as a round trip
    (closed,) = restored.apply_fill(fill("x1", Side.SELL, 10, 104.0, commission=0.0), bar=1)
    assert closed.pnl == pytest.approx(10 * 4.0 - 1.0)


@pytest.mark.parametrize(
    "data", [{"version": 2}, {"version": 1}, {"version": 1, "open": [{"strategy": "s"}]}]
)
def test_a_malformed_snapshot_is_a_value_error(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="snapshot"):
        restore_book(data, bar_of=lambda _t: 0)
