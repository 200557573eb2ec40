"""Telegram bot: commands over the control service, the allow-list, confirmations for
destructive commands, and notifications."""

from sovereign.bots.auth import AllowList, parse_user_ids
from sovereign.bots.confirm import Confirmations, Pending, Refused
from sovereign.bots.notify import EventKind, Notifier, TokenBucket
from sovereign.bots.telegram import (
    COMMANDS,
    BotThread,
    SovereignBot,
    build_application,
    from_settings,
    run_until_signal,
    serve,
)

__all__ = [
    "COMMANDS",
    "AllowList",
    "BotThread",
    "Confirmations",
    "EventKind",
    "Notifier",
    "Pending",
    "Refused",
    "SovereignBot",
    "TokenBucket",
    "build_application",
    "from_settings",
    "parse_user_ids",
    "run_until_signal",
    "serve",
]
