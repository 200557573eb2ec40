"""What a running campaign announces, and the bot it serves, when Telegram is configured.

With ``SOVEREIGN_TELEGRAM__TOKEN`` and allowed users set, `sovereign run` starts the bot in a
background thread (the same control service the CLI uses) and a rate-limited notifier; the
campaign announces improvement-cycle decisions, canary rollbacks, halts and killed strategies.
Without a token nothing starts and every announcement is a no-op. Announcing never blocks or
breaks trading: the notifier queues, sends from its own thread and drops what it cannot send.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sovereign.app.context import App
from sovereign.bots.notify import Notifier
from sovereign.bots.telegram import BotThread, from_settings
from sovereign.trading.events import Transition
from sovereign.trading.supervisor import SupervisorState

log = logging.getLogger(__name__)


class Announcer:
    """The campaign's voice: a no-op unless Telegram is configured."""

    def __init__(self, notifier: Notifier | None, bot: BotThread | None) -> None:
        self.notifier = notifier
        self.bot = bot

    @classmethod
    def open(cls, app: App) -> Announcer:
        """Start the notifier and the bot if a token is set; a bot that cannot start is
        logged and skipped (trading does not depend on it)."""
        notifier = Notifier.from_settings(app.settings)
        if notifier is not None:
            notifier.start()
        bot: BotThread | None = None
        token = app.settings.telegram.token
        if token is not None and token.get_secret_value().strip():
            try:
                _, application = from_settings(app, app.settings)
                bot = BotThread(application).start()
            except Exception:
                log.exception("the Telegram bot could not start; trading goes on without it")
        return cls(notifier, bot)

    def cycle(self, summary: Mapping[str, Any]) -> None:
        if self.notifier is not None:
            self.notifier.notify_cycle(summary)

    def rollback(self, to_version: int, *, by: str, reason: str) -> None:
        if self.notifier is not None:
            self.notifier.rollback(to_version, by=by, reason=reason)

    def transition(self, t: Transition) -> None:
        """Halts and killed strategies are announced; other state changes are not."""
        if self.notifier is None:
            return
        if t.scope == "global" and t.to_state == SupervisorState.HALTED.value:
            self.notifier.halt(t.reason)
        elif t.scope.startswith("strategy:") and t.to_state == "KILLED":
            self.notifier.strategy_killed(t.scope.removeprefix("strategy:"), t.reason)

    def reconciliation_mismatch(self, detail: str) -> None:
        if self.notifier is not None:
            self.notifier.reconciliation_mismatch(detail)

    def close(self) -> None:
        if self.bot is not None:
            self.bot.stop()
        if self.notifier is not None:
            self.notifier.close(timeout=5.0)


__all__ = ["Announcer"]
