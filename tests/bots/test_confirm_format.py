"""Confirmations (one use, own user, expiry) and the phone formatting (escaping, clipping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sovereign.bots import format as fmt
from sovereign.bots.confirm import Confirmations, Pending, Refused
from tests.bots.conftest import FakeClock

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_a_nonce_is_random_single_use_and_bound_to_its_user() -> None:
    clock = FakeClock(T0)
    book = Confirmations(clock=clock)
    a, b = book.ask(1, "halt"), book.ask(1, "halt")
    assert a.nonce != b.nonce and len(a.nonce) >= 16
    assert len(("ok:" + a.nonce).encode()) <= 64  # Telegram's callback_data limit
    assert isinstance(book.take(a.nonce, 2), Refused)  # the wrong user ...
    taken = book.take(a.nonce, 1)  # ... leaves it to the right one
    assert isinstance(taken, Pending) and taken.action == "halt"
    again = book.take(a.nonce, 1)
    assert isinstance(again, Refused) and "already used" in again.reason
    assert book.cancel(b.nonce, 1) and not book.cancel(b.nonce, 1)
    assert len(book) == 0


def test_a_nonce_expires_after_its_lifetime() -> None:
    clock = FakeClock(T0)
    book = Confirmations(clock=clock, ttl=timedelta(seconds=60))
    fresh, stale = book.ask(1, "rollback", 3), book.ask(1, "halt")
    clock.advance(59.9)
    assert isinstance(book.take(fresh.nonce, 1), Pending)
    clock.advance(0.1)
    refused = book.take(stale.nonce, 1)
    assert isinstance(refused, Refused) and "expired" in refused.reason
    book.ask(1, "halt")  # asking again sweeps expired entries
    clock.advance(61)
    book.ask(1, "resume")
    assert len(book) == 1
    with pytest.raises(ValueError, match="positive lifetime"):
        Confirmations(ttl=timedelta(0))


def test_text_from_the_database_is_escaped_and_long_messages_are_clipped() -> None:
    assert fmt.e("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"
    assert fmt.short("a <i>" + "z" * 50, 10) == "a &lt;i&gt;zzzz…"
    assert fmt.reject_note("<script>", proposal_id="p-1", stage="gate", codes=["C<1>"]) == (
        "❌ <b>Rejected</b> at gate\n&lt;script&gt;\nC&lt;1&gt;\n<code>p-1</code>"
    )
    long = "\n".join(f"line {i}" for i in range(2000))
    clipped = fmt.clip(long)
    assert len(clipped) <= fmt.MAX_CHARS and clipped.endswith("… (cut)")
    assert (
        fmt.condition_text(
            {
                "type": "and",
                "all": [
                    {"type": "regime_is", "regime": "bear"},
                    {"type": "not", "cond": {"type": "atr_above", "pct": 3.0}},
                ],
            }
        )
        == "(regime_is bear and not atr_above 3.0)"
    )
