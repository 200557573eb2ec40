"""Confirmations for destructive commands (rollback, halt, resume).

The bot asks with an inline button whose callback data carries a random nonce. A nonce is good
once, for ``ttl`` (60 s by default), and only for the user who asked; the clock is injected so
tests can expire it without waiting.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CONFIRM_PREFIX = "ok:"
CANCEL_PREFIX = "no:"
DEFAULT_TTL = timedelta(seconds=60)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _nonce() -> str:
    return secrets.token_urlsafe(12)  # 16 characters: callback data stays far below 64 bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class Pending:
    """An action waiting for its user's confirmation. ``arg`` is e.g. the rollback version."""

    nonce: str
    user_id: int
    action: str
    arg: int | None
    expires_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Refused:
    """Why a confirmation was refused, as a sentence for the chat."""

    reason: str


class Confirmations:
    """The pending confirmations, by nonce. Thread-safe."""

    def __init__(
        self,
        *,
        ttl: timedelta = DEFAULT_TTL,
        clock: Callable[[], datetime] = _utc_now,
        nonce: Callable[[], str] = _nonce,
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError(f"a confirmation needs a positive lifetime, got {ttl}")
        self.ttl = ttl
        self._clock = clock
        self._nonce = nonce
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()

    def ask(self, user_id: int, action: str, arg: int | None = None) -> Pending:
        """Register an action that ``user_id`` must confirm before ``ttl`` passes."""
        now = self._clock()
        with self._lock:
            self._drop_expired(now)
            pending = Pending(
                nonce=self._nonce(),
                user_id=user_id,
                action=action,
                arg=arg,
                expires_at=now + self.ttl,
            )
            self._pending[pending.nonce] = pending
        return pending

    def take(self, nonce: str, user_id: int) -> Pending | Refused:
        """The pending action, removed so it runs once; or why it cannot run. A wrong user
        leaves it pending for the right one."""
        now = self._clock()
        with self._lock:
            pending = self._pending.get(nonce)
            if pending is None:
                return Refused(reason="This confirmation is unknown or was already used.")
            if pending.user_id != user_id:
                return Refused(reason="Only the user who asked can confirm this.")
            del self._pending[nonce]
            if now >= pending.expires_at:
                return Refused(reason="This confirmation expired. Send the command again.")
            return pending

    def cancel(self, nonce: str, user_id: int) -> bool:
        """Drop a pending action (its own user only); True if one was dropped."""
        with self._lock:
            pending = self._pending.get(nonce)
            if pending is None or pending.user_id != user_id:
                return False
            del self._pending[nonce]
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def _drop_expired(self, now: datetime) -> None:
        for nonce in [n for n, p in self._pending.items() if now >= p.expires_at]:
            del self._pending[nonce]


__all__ = ["CANCEL_PREFIX", "CONFIRM_PREFIX", "DEFAULT_TTL", "Confirmations", "Pending", "Refused"]
