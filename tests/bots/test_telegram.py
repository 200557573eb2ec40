"""The real PTB application polling the Bot API stub over loopback, on a real SQLite app:
every command's reply, the allow-list, confirmations, and errors that stay out of the chat."""

from __future__ import annotations

import html
import logging
import re

import pytest
from sqlalchemy import text

from sovereign.app.context import App
from sovereign.bots.auth import parse_user_ids
from sovereign.bots.telegram import GENERIC_ERROR, SovereignBot, from_settings
from sovereign.errors import ConfigError
from sovereign.settings import Settings, TelegramSettings
from tests.bots.botapi_stub import BotApiStub
from tests.bots.conftest import ALICE, BOB, MALLORY, FakeClock

TAG = re.compile(r"<[^>]+>")


def ask(stub: BotApiStub, user: int, command: str) -> str:
    """Send ``command`` as ``user`` and return the bot's reply text (HTML)."""
    before = len(stub.calls("sendMessage"))
    stub.message(user, command)
    reply = stub.wait_for("sendMessage", before + 1)[before]
    assert reply.params["chat_id"] == user
    assert reply.params["parse_mode"] == "HTML"
    return str(reply.params["text"])


def visible(text_: str) -> list[str]:
    return [html.unescape(TAG.sub("", line)) for line in text_.splitlines()]


def button(stub: BotApiStub, index: int = -1) -> str:
    """The nonce of the Confirm button of a sendMessage."""
    markup = stub.calls("sendMessage")[index].params["reply_markup"]
    confirm, cancel = markup["inline_keyboard"][0]
    assert confirm["text"] == "Confirm" and cancel["text"] == "Cancel"
    return str(confirm["callback_data"])


def press(stub: BotApiStub, user: int, data: str) -> str:
    """Press a button; returns the text of the callback answer."""
    before = len(stub.calls("answerCallbackQuery"))
    stub.callback(user, data)
    return str(stub.wait_for("answerCallbackQuery", before + 1)[before].params.get("text", ""))


def edited(stub: BotApiStub, count: int) -> str:
    return str(stub.wait_for("editMessageText", count)[count - 1].params["text"])


def test_start_up_calls_are_served_and_the_command_list_is_published(
    bot: SovereignBot, stub: BotApiStub
) -> None:
    assert stub.calls("getMe") and stub.calls("deleteWebhook")
    [published] = stub.wait_for("setMyCommands")
    names = [c["command"] for c in published.params["commands"]]
    assert names[:3] == ["status", "capital", "rules"] and "rollback" in names


def test_every_read_command_answers_an_authorised_user_in_phone_sized_html(
    bot: SovereignBot, stub: BotApiStub
) -> None:
    replies = {
        c: ask(stub, ALICE, f"/{c}")
        for c in ("status", "capital", "rules", "constitution", "history", "proposals")
    }
    replies["readiness"] = ask(stub, BOB, "/readiness")
    replies["help"] = ask(stub, BOB, "/help")

    status = visible(replies["status"])
    assert status[0].endswith("NORMAL")
    for line in (
        "Equity 1,010,000",
        "Day P&L +8,000",  # 1,010,000 now - 1,002,000 at the end of the previous day
        "Drawdown 0.00%",
        "Exposure 21.00%",
        "Positions: 2",
        " AAPL +100",
        " MSFT -20",
        "Rules v3: 2 active",
        "Constitution pinned",
        "Refused updates: 0",
    ):
        assert line in status, (line, status)
    assert any(line.startswith("Last proposal") and "rejected" in line for line in status)
    capital = replies["capital"]
    assert "momentum" in capital and "pool 507,000 of 500,000" in capital
    assert "regime_entry</b> ☠️ killed" in capital and "return -0.20%" in capital
    rules = visible(replies["rules"])
    assert rules[0] == "Rules v3 (2)"
    assert "no-volatile [all]" in rules and " if regime_is volatile" in rules
    assert " then scale_position 0.5" in rules and " v3 * 2 rules 01-03" in rules
    assert "max_drawdown: 0.1" in visible(replies["constitution"])
    history = visible(replies["history"])
    assert any("✅ deployed v3" in line for line in history)
    proposals = replies["proposals"]
    assert "rejected" in proposals and "CONST_MAX_RULES" in proposals
    assert "sneaky" in proposals
    readiness = visible(replies["readiness"])
    assert readiness[0] == "⛔ not ready for live"
    assert "✅ controls" in readiness and "❌ reconciliation" in readiness
    assert "/rollback <version> restore rules" in visible(replies["help"])
    for reply in replies.values():
        assert len(reply) <= 4096
        assert max(len(line) for line in visible(reply)) <= 48, reply


def test_unauthorised_users_get_no_reply_no_data_and_are_counted(
    bot: SovereignBot, stub: BotApiStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sovereign.bots.auth")
    stub.message(MALLORY, "/status secret-words")
    stub.edited_message(MALLORY, "/halt")
    last = stub.callback(MALLORY, "ok:guess")
    stub.consumed(last)
    status = visible(ask(stub, ALICE, "/status"))
    assert "Refused updates: 3" in status
    sent = stub.calls("sendMessage")
    assert [r.params["chat_id"] for r in sent] == [ALICE]
    assert stub.calls("answerCallbackQuery") == [] and stub.calls("editMessageText") == []
    refusals = [r.getMessage() for r in caplog.records if r.name == "sovereign.bots.auth"]
    assert len(refusals) == 3 and all(str(MALLORY) in m for m in refusals)
    assert not any("secret-words" in m or "/halt" in m for m in refusals)
    assert bot.allow.refused == 3


def test_halt_needs_a_confirmation_from_the_same_user_and_runs_once(
    bot: SovereignBot, stub: BotApiStub, app: App
) -> None:
    question = visible(ask(stub, ALICE, "/halt"))
    assert question == ["Halt trading now?", "Confirm within 60 s."]
    data = button(stub)
    assert "Only the user who asked" in press(stub, BOB, data)
    assert app.supervisor_store.load_state("supervisor")["state"] == "NORMAL"
    press(stub, ALICE, data)
    assert visible(edited(stub, 1))[0] == "🔴 HALTED"
    saved = app.supervisor_store.load_state("supervisor")
    assert saved["state"] == "HALTED" and f"telegram:{ALICE}" in saved["reason"]
    assert "already used" in press(stub, ALICE, data)  # a double click does nothing more
    assert len(stub.calls("editMessageText")) == 1
    transitions = app.supervisor_store.transitions(scope="global")
    assert [t.to_state for t in transitions] == ["HALTED"]
    # resume, with a cancel first
    ask(stub, ALICE, "/resume")
    cancel = stub.calls("sendMessage")[-1].params["reply_markup"]["inline_keyboard"][0][1]
    press(stub, ALICE, cancel["callback_data"])
    assert edited(stub, 2) == "Cancelled."
    ask(stub, ALICE, "/resume")
    press(stub, ALICE, button(stub))
    assert visible(edited(stub, 3))[0] == "🟢 NORMAL"
    assert app.supervisor_store.load_state("supervisor")["state"] == "NORMAL"


def test_a_stale_confirmation_is_refused_and_rollback_then_runs_when_fresh(
    bot: SovereignBot, stub: BotApiStub, app: App, clock: FakeClock
) -> None:
    ask(stub, ALICE, "/rollback 2")
    stale = button(stub)
    clock.advance(61)
    assert "expired" in press(stub, ALICE, stale)
    assert "expired" in edited(stub, 1)
    assert app.rules.active_version() == 3
    assert "already used" in press(stub, ALICE, stale)  # an expired nonce is gone
    ask(stub, ALICE, "/rollback 2")
    press(stub, ALICE, button(stub))
    assert visible(edited(stub, 2))[0] == "↩️ Rolled back to v2"
    assert app.rules.active_version() == 2
    [entry] = app.proposals.rollbacks()
    assert entry.by == f"telegram:{ALICE}" and entry.to_version == 2


def test_bad_rollback_arguments_and_unknown_versions_get_a_clear_answer(
    bot: SovereignBot, stub: BotApiStub, app: App
) -> None:
    assert visible(ask(stub, ALICE, "/rollback"))[0] == "Usage: /rollback <version>"
    assert visible(ask(stub, ALICE, "/rollback two"))[0] == "Usage: /rollback <version>"
    ask(stub, ALICE, "/rollback 99")
    press(stub, ALICE, button(stub))
    refused = edited(stub, 1)
    assert "Refused: no rule set version 99" in refused and "existing versions" in refused
    ask(stub, ALICE, "/rollback 3")
    press(stub, ALICE, button(stub))
    assert "already active" in edited(stub, 2)
    assert app.proposals.rollbacks() == []


def test_a_failing_command_answers_one_line_and_the_bot_keeps_serving(
    bot: SovereignBot, stub: BotApiStub, app: App
) -> None:
    with app.engine.begin() as conn:  # a real fault: the table the status reads is gone
        conn.execute(text("DROP TABLE equity_snapshots"))
    reply = ask(stub, ALICE, "/status")
    assert reply == GENERIC_ERROR
    assert "Traceback" not in reply and "equity_snapshots" not in reply
    assert "/status" in ask(stub, ALICE, "/help")


def test_settings_without_a_token_are_a_config_error(app: App) -> None:
    settings = Settings(telegram=TelegramSettings(token=None, allowed_user_ids="1"))
    with pytest.raises(ConfigError, match="SOVEREIGN_TELEGRAM__TOKEN"):
        from_settings(app, settings)
    assert parse_user_ids(" 1, 2,,3 ") == frozenset({1, 2, 3})
    assert parse_user_ids("") == frozenset()
    with pytest.raises(ConfigError, match="'x' is not a Telegram user id"):
        parse_user_ids("1,x")


def test_an_empty_allow_list_serves_nobody(app: App, stub: BotApiStub) -> None:
    from sovereign.bots.telegram import BotThread

    settings = Settings(
        telegram=TelegramSettings(token=stub.token, allowed_user_ids="", base_url=stub.base_url)
    )
    served, application = from_settings(app, settings)
    with BotThread(application, poll_timeout=1.0):
        last = stub.message(ALICE, "/status")
        stub.consumed(last)
    assert served.allow.refused == 1
    assert stub.calls("sendMessage") == []
