"""Notifications to the allowed Telegram chats: deploy, reject, rollback, halt, resume, strategy
kill, reconciliation mismatch, daily summary.

The caller is the trading loop or the improvement cycle, so nothing here may block or raise
into it: :meth:`Notifier.send` only appends to a bounded per-chat queue (a full queue drops the
message and counts it), and one background thread posts ``sendMessage`` over HTTP. Each chat
has a token bucket (``rate`` messages per second, bursts of ``burst``), which keeps under
Telegram's per-chat limit. A failed send (network error, HTTP error, ``ok: false``) is logged
without the token and dropped; it is never retried into a growing backlog.

The improvement cycle's ``on_notify`` hook takes :meth:`Notifier.notify_cycle`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any

import httpx

from sovereign.bots import format as fmt
from sovereign.bots.auth import parse_user_ids
from sovereign.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.telegram.org/bot"


class EventKind(StrEnum):
    DEPLOY = "deploy"
    REJECT = "reject"
    ROLLBACK = "rollback"
    HALT = "halt"
    RESUME = "resume"
    STRATEGY_KILL = "strategy_kill"
    RECONCILIATION_MISMATCH = "reconciliation_mismatch"
    DAILY_SUMMARY = "daily_summary"


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; times in seconds from any clock."""

    def __init__(self, *, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self.rate, self.burst = rate, float(burst)
        self._tokens, self._last = float(burst), now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until a token is available (0 if one is)."""
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) / self.rate)


def api_url(base_url: str, token: str, method: str) -> str:
    """``base_url`` as PTB takes it (ending in ``/bot``, or with a ``{token}`` field)."""
    base = base_url.format(token=token) if "{token}" in base_url else base_url + token
    return f"{base}/{method}"


class Notifier:
    """Sends messages to ``chat_ids`` from a background thread. Start it (or use ``with``)."""

    def __init__(
        self,
        *,
        token: str,
        chat_ids: Iterable[int],
        base_url: str = DEFAULT_BASE_URL,
        rate: float = 1.0,
        burst: int = 3,
        max_queue: int = 100,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        poll: float = 0.05,
    ) -> None:
        self._token = token
        self.chat_ids = tuple(chat_ids)
        self._base_url = base_url
        self._timeout, self._poll, self._clock, self._max_queue = timeout, poll, clock, max_queue
        now = clock()
        self._queues: dict[int, deque[str]] = {c: deque() for c in self.chat_ids}
        self._buckets = {c: TokenBucket(rate=rate, burst=burst, now=now) for c in self.chat_ids}
        self._cond = threading.Condition()
        self._closing = False
        self._deadline = 0.0
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        self.sent = self.failed = self.dropped = 0

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Notifier | None:
        """A notifier for the configured bot and allowed users, or None without a token or
        without any allowed user."""
        tg = settings.telegram
        ids = parse_user_ids(tg.allowed_user_ids)
        if tg.token is None or not tg.token.get_secret_value() or not ids:
            return None
        return cls(
            token=tg.token.get_secret_value(),
            chat_ids=sorted(ids),
            base_url=tg.base_url or DEFAULT_BASE_URL,
            **options,
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Notifier:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="telegram-notifier", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Stop accepting messages, send what is queued for up to ``timeout`` seconds, then
        drop the rest."""
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout + self._timeout + 1.0)

    def __enter__(self) -> Notifier:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def pending(self) -> int:
        """Messages queued or being sent."""
        with self._cond:
            return sum(len(q) for q in self._queues.values()) + self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or in flight (True), or ``timeout`` seconds pass."""
        end = time.monotonic() + timeout
        with self._cond:
            while sum(len(q) for q in self._queues.values()) + self._in_flight:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, self._poll))
            return True

    # --- sending ------------------------------------------------------------------------------

    def send(self, kind: EventKind | str, text: str) -> int:
        """Queue ``text`` (Telegram HTML) for every chat; returns how many were queued. Never
        blocks, never raises."""
        queued = 0
        try:
            kind = EventKind(kind)
            with self._cond:
                if self._closing:
                    self.dropped += len(self._queues)
                    return 0
                for chat, queue in self._queues.items():
                    if len(queue) >= self._max_queue:
                        self.dropped += 1
                        log.warning("notification %s to chat %s dropped: queue full", kind, chat)
                        continue
                    queue.append(fmt.clip(text))
                    queued += 1
                self._cond.notify_all()
        except Exception:  # a notification must never break its caller
            log.exception("could not queue a notification")
        return queued

    def deploy(
        self, summary: str, *, proposal_id: str | None = None, version: int | None = None
    ) -> int:
        return self.send(
            EventKind.DEPLOY, fmt.deploy_note(summary, proposal_id=proposal_id, version=version)
        )

    def reject(
        self,
        summary: str,
        *,
        proposal_id: str | None = None,
        stage: str | None = None,
        codes: Iterable[str] = (),
    ) -> int:
        text = fmt.reject_note(summary, proposal_id=proposal_id, stage=stage, codes=codes)
        return self.send(EventKind.REJECT, text)

    def rollback(self, to_version: int, *, by: str, reason: str = "") -> int:
        text = f"↩️ <b>Rolled back</b> to v{to_version}\nby {fmt.short(by)}\n{fmt.short(reason, 80)}"
        return self.send(EventKind.ROLLBACK, text.rstrip())

    def halt(self, reason: str) -> int:
        return self.send(EventKind.HALT, f"🔴 <b>HALTED</b>\n{fmt.short(reason, 80)}")

    def resume(self, by: str) -> int:
        return self.send(EventKind.RESUME, f"🟢 <b>Resumed</b> by {fmt.short(by)}")

    def strategy_killed(self, strategy: str, reason: str) -> int:
        text = f"☠️ <b>Strategy killed</b>: {fmt.short(strategy, 24)}\n{fmt.short(reason, 80)}"
        return self.send(EventKind.STRATEGY_KILL, text)

    def reconciliation_mismatch(self, detail: str) -> int:
        text = f"⚠️ <b>Reconciliation mismatch</b>\n{fmt.short(detail, 120)}"
        return self.send(EventKind.RECONCILIATION_MISMATCH, text)

    def daily_summary(self, text: str) -> int:
        """``text`` is already formatted (e.g. ``sovereign.bots.format.status_text``)."""
        return self.send(EventKind.DAILY_SUMMARY, f"📊 <b>Daily summary</b>\n{text}")

    def notify_cycle(self, summary: Mapping[str, Any]) -> None:
        """The improvement cycle's ``notify``: one message per deployment and per rejection of
        the cycle's summary (``sovereign.graph.cycle.cycle_summary``). Never raises."""
        try:
            for d in summary.get("deployed") or ():
                self.deploy(str(d.get("summary") or ""), proposal_id=d.get("proposal_id"))
            for r in summary.get("rejected") or ():
                self.reject(
                    str(r.get("summary") or ""),
                    proposal_id=r.get("proposal_id"),
                    stage=r.get("stage"),
                    codes=[str(c) for c in r.get("codes") or () if c],
                )
        except Exception:
            log.exception("could not announce improvement cycle %s", summary.get("cycle_id"))

    # --- the worker ---------------------------------------------------------------------------

    def _next(self) -> tuple[int, str] | None:
        """Under the lock: a (chat, text) whose bucket has a token, else wait a little."""
        now, wait = self._clock(), self._poll
        for chat, queue in self._queues.items():
            if not queue:
                continue
            bucket = self._buckets[chat]
            if bucket.take(now):
                self._in_flight += 1
                return chat, queue.popleft()
            wait = min(wait, bucket.wait(now))
        self._cond.wait(max(wait, 0.001))
        return None

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout, trust_env=False) as client:
            while True:
                with self._cond:
                    empty = not any(self._queues.values())
                    if self._closing and (empty or time.monotonic() >= self._deadline):
                        self.dropped += sum(len(q) for q in self._queues.values())
                        for q in self._queues.values():
                            q.clear()
                        self._cond.notify_all()
                        return
                    item = self._next()
                if item is not None:
                    self._post(client, *item)

    def _post(self, client: httpx.Client, chat: int, text: str) -> None:
        payload = {
            "chat_id": chat,
            "text": text,
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
        }
        ok = False
        try:
            response = client.post(
                api_url(self._base_url, self._token, "sendMessage"), json=payload
            )
            body = response.json() if response.content else {}
            ok = response.status_code == 200 and bool(body.get("ok"))
            if not ok:
                log.warning(
                    "notification to chat %s dropped: HTTP %s %s",
                    chat,
                    response.status_code,
                    str(body.get("description", ""))[:200],
                )
        except Exception as err:
            log.warning(
                "notification to chat %s dropped: %s: %s",
                chat,
                type(err).__name__,
                str(err).replace(self._token, "***")[:200],
            )
        with self._cond:
            self._in_flight -= 1
            if ok:
                self.sent += 1
            else:
                self.failed += 1
            self._cond.notify_all()


__all__ = ["DEFAULT_BASE_URL", "EventKind", "Notifier", "TokenBucket", "api_url"]
