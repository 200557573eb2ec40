"""A small stub of the Telegram Bot API over HTTP on 127.0.0.1 (stdlib http.server + thread).

It serves ``/bot<token>/<method>`` for what python-telegram-bot 22 calls at start-up and while
polling (getMe, deleteWebhook, setMyCommands, getUpdates with long polling) and what the bot
and the notifier send (sendMessage, editMessageText, answerCallbackQuery). Tests enqueue
updates (messages, edited messages, callback queries from given user ids) and read every
request back from :attr:`BotApiStub.requests`. ``fail`` makes chosen methods answer HTTP 500.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

BOT_USER = {"id": 999, "is_bot": True, "first_name": "Sovereign", "username": "sovereign_bot"}
MAX_POLL = 1.0  # seconds a getUpdates call is held at most, whatever timeout it asks for


@dataclass
class Request:
    method: str
    token: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


def _decode(value: str) -> Any:
    """PTB sends form fields whose non-string values are JSON-encoded."""
    try:
        return json.loads(value)
    except ValueError:
        return value


class BotApiStub:
    def __init__(self, token: str = "123:TEST") -> None:  # noqa: S107 - a fake token
        self.token = token
        self.requests: list[Request] = []
        self.fail: set[str] = set()
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._next_message = 1000
        self._cond = threading.Condition()
        self._closing = False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                stub._handle(self)

            do_GET = do_POST

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.url + "/bot"

    def start(self) -> BotApiStub:
        self._thread.start()
        return self

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    # --- what tests enqueue -------------------------------------------------------------------

    def _user(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}

    def _message(self, user_id: int, text: str) -> dict[str, Any]:
        self._next_message += 1
        message: dict[str, Any] = {
            "message_id": self._next_message,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private"},
            "from": self._user(user_id),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return message

    def _push(self, update: dict[str, Any]) -> int:
        with self._cond:
            update["update_id"] = self._next_update
            self._next_update += 1
            self._updates.append(update)
            self._cond.notify_all()
            return update["update_id"]

    def message(self, user_id: int, text: str) -> int:
        with self._cond:
            body = self._message(user_id, text)
        return self._push({"message": body})

    def edited_message(self, user_id: int, text: str) -> int:
        with self._cond:
            body = self._message(user_id, text)
        body["edit_date"] = body["date"]
        return self._push({"edited_message": body})

    def callback(
        self, user_id: int, data: str, *, message_id: int = 1, chat_id: int | None = None
    ) -> int:
        with self._cond:
            cq_id = f"cq{self._next_update}"
        bot_message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id if chat_id is not None else user_id, "type": "private"},
            "from": BOT_USER,
            "text": "confirm?",
        }
        return self._push(
            {
                "callback_query": {
                    "id": cq_id,
                    "from": self._user(user_id),
                    "chat_instance": "ci",
                    "data": data,
                    "message": bot_message,
                }
            }
        )

    # --- what tests read ----------------------------------------------------------------------

    def calls(self, method: str) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if r.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Request]:
        """The first ``count`` requests of ``method``; AssertionError if they do not come."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [r for r in self.requests if r.method == method]
                if len(found) >= count:
                    return found
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{count} x {method} expected, got {len(found)}")
                self._cond.wait(left)

    def consumed(self, update_id: int, timeout: float = 10.0) -> None:
        """Wait until the bot has confirmed ``update_id`` (a getUpdates with a higher offset)."""
        end = time.monotonic() + timeout
        with self._cond:
            while not any(
                r.method == "getUpdates" and int(r.params.get("offset") or 0) > update_id
                for r in self.requests
            ):
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"update {update_id} was not consumed")
                self._cond.wait(left)

    # --- serving ------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        ctype = h.headers.get("Content-Type") or ""
        if "json" in ctype and raw:
            params = json.loads(raw)
        else:
            params = {k: _decode(v) for k, v in parse_qsl(raw.decode())}
        parts = h.path.strip("/").split("/")
        token = parts[0][3:] if parts and parts[0].startswith("bot") else ""
        method = parts[1] if len(parts) > 1 else ""
        with self._cond:
            self.requests.append(Request(method=method, token=token, params=params))
            self._cond.notify_all()
        status, body = self._answer(method, token, params)
        data = json.dumps(body).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:  # the client gave up (a cancelled long poll)
            pass

    def _answer(
        self, method: str, token: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        if method in self.fail:
            return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        if method == "getMe":
            return 200, {"ok": True, "result": {**BOT_USER, "can_join_groups": True}}
        if method in ("deleteWebhook", "setMyCommands", "answerCallbackQuery"):
            return 200, {"ok": True, "result": True}
        if method == "getUpdates":
            return 200, {"ok": True, "result": self._poll(params)}
        if method in ("sendMessage", "editMessageText"):
            return 200, {"ok": True, "result": self._sent(params)}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}

    def _poll(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        wait = min(float(params.get("timeout") or 0), MAX_POLL)
        end = time.monotonic() + wait
        with self._cond:
            while True:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if self._updates or self._closing:
                    return list(self._updates)
                left = end - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)

    def _sent(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            self._next_message += 1
            message_id = int(params.get("message_id") or self._next_message)
        chat_id = int(params.get("chat_id") or 0)
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
            "text": str(params.get("text", "")),
        }
