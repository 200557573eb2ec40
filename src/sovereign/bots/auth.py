"""The allow-list: only listed Telegram user ids are served.

:meth:`AllowList.guard` runs in handler group -1, before every other handler, and stops an
update from anyone else (messages, edited messages, callback queries, anything) with
``ApplicationHandlerStop``: no reply, no data. Each refusal is logged with the user id only
(never the message text) and counted; the count is shown to authorised users in ``/status``.
"""

from __future__ import annotations

import logging
import threading

from telegram import Update
from telegram.ext import ApplicationHandlerStop, ContextTypes

from sovereign.errors import ConfigError

log = logging.getLogger(__name__)


def parse_user_ids(raw: str) -> frozenset[int]:
    """``"1, 2"`` -> {1, 2}; empty means nobody. ConfigError for anything that is not an id."""
    ids: set[int] = set()
    for part in raw.split(","):
        item = part.strip()
        if not item:
            continue
        try:
            ids.add(int(item))
        except ValueError:
            raise ConfigError(
                f"SOVEREIGN_TELEGRAM__ALLOWED_USER_IDS: {item!r} is not a Telegram user id "
                "(comma-separated integers, e.g. 12345,67890)"
            ) from None
    return frozenset(ids)


class AllowList:
    """The users served, and how many updates from anyone else were refused."""

    def __init__(self, user_ids: frozenset[int]) -> None:
        self.user_ids = user_ids
        self._refused = 0
        self._lock = threading.Lock()

    @property
    def refused(self) -> int:
        """Updates refused since start."""
        with self._lock:
            return self._refused

    def allows(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.user_ids

    async def guard(self, update: object, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """Group -1 handler: let authorised updates through, stop all others."""
        user = update.effective_user if isinstance(update, Update) else None
        user_id = None if user is None else user.id
        if self.allows(user_id):
            return
        with self._lock:
            self._refused += 1
        log.warning("refused a Telegram update from unauthorised user id %s", user_id)
        raise ApplicationHandlerStop


__all__ = ["AllowList", "parse_user_ids"]
