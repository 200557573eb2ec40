"""The notifier against the Bot API stub on loopback: what the improvement cycle's notify sends,
rate limiting per chat, and a failing or unreachable Bot API that never reaches the caller."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from sovereign.app.context import App
from sovereign.app.deploy import deploy
from sovereign.bots.notify import EventKind, Notifier, TokenBucket, api_url
from sovereign.rules import AddRule, RegimeIs, Rule, SkipTrade
from sovereign.settings import Settings, TelegramSettings
from tests.bots.botapi_stub import BotApiStub
from tests.bots.conftest import ALICE, BOB


class Seconds:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def notifier(stub: BotApiStub, **options: object) -> Notifier:
    return Notifier(
        token=stub.token, chat_ids=[ALICE, BOB], base_url=stub.base_url, **options
    ).start()


def test_a_deployment_in_a_cycle_is_announced_to_every_allowed_chat(
    app: App, stub: BotApiStub
) -> None:
    proposal = AddRule(
        rule=Rule(name="calm-only", when=RegimeIs(regime="volatile"), then=SkipTrade(reason="v")),
        rationale="r",
        source="heuristic",
    )
    record = deploy(
        app,
        proposal,
        {"accepted": True, "expected_max_drawdown": 0.05},
        at=datetime(2024, 1, 4, tzinfo=UTC),
    )
    summary = {  # the shape of sovereign.graph.cycle.cycle_summary
        "cycle_id": "c-1",
        "deployed": [{"proposal_id": record.proposal_id, "summary": proposal.summary()}],
        "rejected": [
            {
                "proposal_id": "p-x",
                "summary": "tune a<b> & c",
                "stage": "gate",
                "codes": ["GATE_NO_IMPROVEMENT"],
            }
        ],
    }
    with notifier(stub) as n:
        n.notify_cycle(summary)
        sent = stub.wait_for("sendMessage", 4)
        assert n.wait_idle(5) and n.sent == 4 and n.failed == 0
    assert sorted(r.params["chat_id"] for r in sent) == [ALICE, ALICE, BOB, BOB]
    texts = [r.params["text"] for r in sent if r.params["chat_id"] == ALICE]
    assert texts[0].startswith("✅ <b>Deployed</b>") and record.proposal_id in texts[0]
    assert "calm-only" in texts[0]
    assert texts[1].startswith("❌ <b>Rejected</b> at gate")
    assert "tune a&lt;b&gt; &amp; c" in texts[1] and "GATE_NO_IMPROVEMENT" in texts[1]
    assert all(r.params["parse_mode"] == "HTML" for r in sent)


def test_each_event_kind_has_a_message(stub: BotApiStub) -> None:
    with Notifier(token=stub.token, chat_ids=[ALICE], base_url=stub.base_url, burst=20) as n:
        n.rollback(3, by="canary", reason="drawdown 9% > 5%")
        n.halt("drawdown 10% (hard stop)")
        n.resume("telegram:111")
        n.strategy_killed("momentum", "pool lost 10%")
        n.reconciliation_mismatch("AAPL: broker 100, book 90")
        n.daily_summary("Equity 1,000,000")
        sent = [r.params["text"] for r in stub.wait_for("sendMessage", 6)]
    assert [t.split("\n")[0] for t in sent] == [
        "↩️ <b>Rolled back</b> to v3",
        "🔴 <b>HALTED</b>",
        "🟢 <b>Resumed</b> by telegram:111",
        "☠️ <b>Strategy killed</b>: momentum",
        "⚠️ <b>Reconciliation mismatch</b>",
        "📊 <b>Daily summary</b>",
    ]
    assert "drawdown 9% &gt; 5%" in sent[0]


def test_messages_beyond_the_burst_wait_for_the_bucket_per_chat(stub: BotApiStub) -> None:
    clock = Seconds()
    n = notifier(stub, rate=1.0, burst=2, clock=clock, poll=0.01)
    try:
        for i in range(4):
            assert n.send(EventKind.DAILY_SUMMARY, f"m{i}") == 2
        stub.wait_for("sendMessage", 4)  # two per chat
        time.sleep(0.2)  # the worker polls every 10 ms: it had 20 chances to send more
        assert len(stub.calls("sendMessage")) == 4 and n.pending() == 4
        clock.now = 1.0  # one token more per chat
        stub.wait_for("sendMessage", 6)
        time.sleep(0.1)
        assert len(stub.calls("sendMessage")) == 6
        clock.now = 10.0
        assert n.wait_idle(5)
    finally:
        n.close()
    by_chat = {
        c: [r.params["text"] for r in stub.calls("sendMessage") if r.params["chat_id"] == c]
        for c in (ALICE, BOB)
    }
    assert by_chat[ALICE] == by_chat[BOB] == ["m0", "m1", "m2", "m3"]  # in order, none lost


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2.0, burst=2, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0) and not bucket.take(0.0)
    assert bucket.wait(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) and not bucket.take(0.5)
    assert bucket.take(100.0) and bucket.take(100.0) and not bucket.take(100.0)  # capped at burst
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(rate=0.0, burst=1, now=0.0)


def test_a_failing_bot_api_is_logged_and_dropped_never_raised(
    stub: BotApiStub, caplog: pytest.LogCaptureFixture
) -> None:
    stub.fail.add("sendMessage")
    with notifier(stub) as n:
        assert n.halt("x") == 2
        assert n.wait_idle(5)
        assert n.failed == 2 and n.sent == 0
    assert any("HTTP 500" in r.getMessage() for r in caplog.records)
    assert not any(stub.token in r.getMessage() for r in caplog.records)


def test_an_unreachable_bot_api_never_blocks_or_raises(caplog: pytest.LogCaptureFixture) -> None:
    dead = BotApiStub().start()
    base_url = dead.base_url
    dead.close()  # nothing listens there any more
    n = Notifier(token="1:SECRET", chat_ids=[ALICE], base_url=base_url, timeout=1.0)  # noqa: S106
    n.start()
    try:
        assert n.deploy("anything") == 1
        assert n.wait_idle(5)
        assert n.failed == 1
    finally:
        n.close()
    assert any("ConnectError" in r.getMessage() for r in caplog.records)
    assert not any("SECRET" in r.getMessage() for r in caplog.records)
    assert n.send(EventKind.HALT, "after close") == 0  # closed: dropped, no error


def test_a_full_queue_drops_instead_of_growing(stub: BotApiStub) -> None:
    clock = Seconds()
    n = Notifier(
        token=stub.token,
        chat_ids=[ALICE],
        base_url=stub.base_url,
        burst=1,
        max_queue=3,
        clock=clock,
    )  # not started: nothing leaves the queue
    assert [n.send("halt", str(i)) for i in range(5)] == [1, 1, 1, 0, 0]
    assert n.dropped == 2 and n.pending() == 3


def test_from_settings_needs_a_token_and_allowed_users(home: object, stub: BotApiStub) -> None:
    def settings(token: str | None, ids: str) -> Settings:
        return Settings(
            telegram=TelegramSettings(token=token, allowed_user_ids=ids, base_url=stub.base_url)
        )

    assert Notifier.from_settings(settings(None, "1")) is None
    assert Notifier.from_settings(settings("1:A", "")) is None
    made = Notifier.from_settings(settings("1:A", "5, 3"))
    assert made is not None and made.chat_ids == (3, 5)
    assert api_url("http://x/bot", "1:A", "sendMessage") == "http://x/bot1:A/sendMessage"
    assert api_url("http://x/b/{token}/t", "1:A", "getMe") == "http://x/b/1:A/t/getMe"
