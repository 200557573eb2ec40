"""A small, honest stub of Alpaca's REST API (Trading v2 and Market Data v2) on 127.0.0.1.

stdlib ``http.server`` on a random loopback port, one thread per request. It serves the paths
alpaca-py 0.44 really calls (``alpaca/trading/client.py``, ``alpaca/data/historical/stock.py``):

- ``POST/GET/DELETE /v2/orders``, ``GET /v2/orders:by_client_order_id``,
  ``GET/DELETE /v2/orders/{id}``
- ``GET /v2/positions``, ``GET /v2/account``, ``GET /v2/account/activities/FILL`` (and
  ``/v2/account/activities?activity_types=FILL``), ``GET /v2/clock``
- ``GET /v2/stocks/bars`` (paginated with ``next_page_token``), ``GET /v2/stocks/trades/latest``

JSON shapes follow Alpaca's documented responses (decimals as strings, RFC 3339 times with
nanoseconds, UUID order ids). State: orders by id and by ``client_order_id`` (a duplicate client
id answers 422, like Alpaca), positions and cash updated from fills, FILL activities. Matching:
:meth:`AlpacaStub.advance` moves every symbol to the next price of its scripted path and one
day on; working market orders fill at that price, limit orders when it crosses the limit (at
that price), IOC rests are canceled; ``liquidity`` caps the shares one order fills per advance
(partial fills). DAY orders do not expire (there is no session end). Buys beyond the buying
power (2 x equity) answer 403, as Alpaca does.

Auth: requests without the right ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` answer 401.
Every request is recorded (:attr:`AlpacaStub.requests`). Fault injection for the next N matching
requests: :meth:`fail_next` (an HTTP status, e.g. 500 or 429), :meth:`hang_next` (answer after
a delay longer than the client's timeout) and :meth:`drop_next` (close the connection without an
answer) - the last two optionally after processing the request, which is the "submit timed out
but the order exists" case.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
KEY = "PKSTUBKEY0000000000"
SECRET = "stub-secret-0123456789abcdefghijklmnopqrstu"  # noqa: S105 - a fake key for the stub
WORKING = ("accepted", "new", "partially_filled")
OPEN_QUERY = (*WORKING, "pending_new", "pending_cancel", "pending_replace", "held")


def rfc3339(ts: datetime, *, nanos: bool = True) -> str:
    """``2024-01-02T14:30:00.000000000Z``: Alpaca's style for orders (nanoseconds)."""
    text = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{text}000Z" if nanos else f"{text}Z"


def dec(x: float) -> str:
    """A decimal as Alpaca sends it: a string, shortest round-trip form."""
    return repr(float(x)).removesuffix(".0") if float(x).is_integer() else repr(float(x))


def default_path(n: int = 400, start: float = 100.0, step: float = 0.37) -> list[float]:
    """A deterministic saw-tooth price path: start, start + step, ... cycling over 7 steps."""
    return [round(start + step * ((k * 3) % 7 - 3), 2) for k in range(n)]


@dataclass
class StubOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    type: str
    time_in_force: str
    limit_price: float | None
    created_at: datetime
    status: str = "accepted"
    filled_qty: float = 0.0
    filled_value: float = 0.0
    updated_at: datetime = T0
    filled_at: datetime | None = None
    canceled_at: datetime | None = None

    def json(self) -> dict[str, Any]:
        avg = self.filled_value / self.filled_qty if self.filled_qty else None
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "submitted_at": rfc3339(self.created_at),
            "filled_at": rfc3339(self.filled_at) if self.filled_at else None,
            "expired_at": None,
            "canceled_at": rfc3339(self.canceled_at) if self.canceled_at else None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, self.symbol)),
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": dec(self.qty),
            "filled_qty": dec(self.filled_qty),
            "filled_avg_price": None if avg is None else dec(avg),
            "order_class": "",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "time_in_force": self.time_in_force,
            "limit_price": None if self.limit_price is None else dec(self.limit_price),
            "stop_price": None,
            "status": self.status,
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
            "position_intent": "buy_to_open" if self.side == "buy" else "sell_to_close",
        }


@dataclass
class Recorded:
    """One request as the stub saw it (auth headers reduced to a flag)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorized: bool


@dataclass
class Fault:
    kind: str  # "status" | "hang" | "drop"
    remaining: int
    method: str | None = None
    path: str | None = None  # a prefix of the request path
    status: int = 500
    seconds: float = 0.0
    process: bool = True  # hang/drop: handle the request (change state) before misbehaving

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or path.startswith(self.path)
        )


@dataclass
class _Reply:
    status: int
    body: Any = None


@dataclass
class AlpacaStub:
    """The stub's state and its server. Use as a context manager, or ``start()`` / ``close()``."""

    symbols: tuple[str, ...] = ("AAA", "BBB")
    prices: dict[str, list[float]] = field(default_factory=dict)
    cash: float = 100_000.0
    api_key: str = KEY
    secret_key: str = SECRET
    liquidity: float | None = None
    bars: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bars_page_size: int = 10_000
    now: datetime = T0
    step: int = 0
    orders: dict[str, StubOrder] = field(default_factory=dict)
    by_client_id: dict[str, str] = field(default_factory=dict)
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)  # qty, avg price
    activities: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        for s in self.symbols:
            self.prices.setdefault(s, default_path())
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------- life cycle

    def start(self) -> AlpacaStub:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.stub = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> AlpacaStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ test controls

    def price(self, symbol: str) -> float:
        path = self.prices[symbol]
        return path[min(self.step, len(path) - 1)]

    def advance(self) -> None:
        """One step on: next price, one day later; working orders try to fill, in order."""
        with self._lock:
            self.step += 1
            self.now += timedelta(days=1)
            for order in self.orders.values():
                if order.status in WORKING:
                    self._match(order)

    def fail_next(
        self, n: int = 1, status: int = 500, *, method: str | None = None, path: str | None = None
    ) -> None:
        with self._lock:
            self.faults.append(Fault("status", n, method, path, status=status))

    def hang_next(
        self,
        n: int = 1,
        seconds: float = 1.0,
        *,
        method: str | None = None,
        path: str | None = None,
        process: bool = True,
    ) -> None:
        with self._lock:
            self.faults.append(Fault("hang", n, method, path, seconds=seconds, process=process))

    def drop_next(
        self,
        n: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        process: bool = True,
    ) -> None:
        with self._lock:
            self.faults.append(Fault("drop", n, method, path, process=process))

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    # ---------------------------------------------------------------------- matching

    def _match(self, order: StubOrder) -> None:
        price = self.price(order.symbol)
        limit = order.limit_price
        marketable = (
            order.type == "market"
            or (order.side == "buy" and limit is not None and price <= limit)
            or (order.side == "sell" and limit is not None and price >= limit)
        )
        if marketable:
            qty = order.qty - order.filled_qty
            if self.liquidity is not None:
                qty = min(qty, self.liquidity)
            self._fill(order, qty, price)
        if order.time_in_force == "ioc" and order.status in WORKING:
            order.status = "canceled"
            order.canceled_at = self.now
        order.updated_at = self.now

    def _fill(self, order: StubOrder, qty: float, price: float) -> None:
        order.filled_qty += qty
        order.filled_value += qty * price
        done = order.filled_qty >= order.qty - 1e-9
        order.status = "filled" if done else "partially_filled"
        if done:
            order.filled_at = self.now
        signed = qty if order.side == "buy" else -qty
        held, avg = self.positions.get(order.symbol, (0.0, 0.0))
        new = held + signed
        if held == 0 or (held > 0) == (signed > 0):
            avg = (held * avg + signed * price) / new
        elif abs(signed) > abs(held):
            avg = price  # flipped through zero
        if abs(new) < 1e-12:
            self.positions.pop(order.symbol, None)
        else:
            self.positions[order.symbol] = (new, avg)
        self.cash -= signed * price
        stamp = self.now + timedelta(milliseconds=len(self.activities))
        self.activities.append(
            {
                "id": f"{stamp:%Y%m%d%H%M%S}{stamp.microsecond // 1000:03d}::{uuid.UUID(int=len(self.activities) + 1)}",
                "activity_type": "FILL",
                "transaction_time": rfc3339(stamp, nanos=False),
                "type": "fill" if done else "partial_fill",
                "price": dec(price),
                "qty": dec(qty),
                "side": order.side,
                "symbol": order.symbol,
                "leaves_qty": dec(order.qty - order.filled_qty),
                "order_id": order.id,
                "cum_qty": dec(order.filled_qty),
                "order_status": order.status,
            }
        )

    # ------------------------------------------------------------------------ routes

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> _Reply:
        with self._lock:
            return self._route(method, path, query, body)

    def _route(self, method: str, path: str, q: dict[str, list[str]], body: Any) -> _Reply:
        if path == "/v2/orders" and method == "POST":
            return self._create(body)
        if path == "/v2/orders" and method == "GET":
            return self._list(q)
        if path == "/v2/orders" and method == "DELETE":
            return self._cancel_all()
        if path == "/v2/orders:by_client_order_id" and method == "GET":
            oid = self.by_client_id.get(_one(q, "client_order_id") or "")
            return _Reply(200, self.orders[oid].json()) if oid else _not_found("order")
        if path.startswith("/v2/orders/"):
            order = self.orders.get(path.removeprefix("/v2/orders/"))
            if order is None:
                return _not_found("order")
            if method == "GET":
                return _Reply(200, order.json())
            if method == "DELETE":
                return self._cancel(order)
        if path == "/v2/positions" and method == "GET":
            return _Reply(200, [self._position(s) for s in sorted(self.positions)])
        if path == "/v2/account" and method == "GET":
            return _Reply(200, self._account())
        if path == "/v2/account/activities/FILL" or (
            path == "/v2/account/activities" and _one(q, "activity_types") == "FILL"
        ):
            return self._activities(q)
        if path == "/v2/clock":
            return _Reply(
                200,
                {
                    "timestamp": self.now.isoformat(),
                    "is_open": True,
                    "next_open": (self.now + timedelta(days=1)).isoformat(),
                    "next_close": (self.now + timedelta(hours=6)).isoformat(),
                },
            )
        if path == "/v2/stocks/bars" and method == "GET":
            return self._bars(q)
        if path == "/v2/stocks/trades/latest" and method == "GET":
            symbols = (_one(q, "symbols") or "").split(",")
            trades = {
                s: {"t": rfc3339(self.now), "x": "V", "p": self.price(s), "s": 100, "c": ["@"]}
                for s in symbols
                if s in self.prices
            }
            return _Reply(200, {"trades": trades})
        return _Reply(404, {"code": 40410000, "message": f"no route {method} {path}"})

    def _create(self, body: Any) -> _Reply:
        if not isinstance(body, dict):
            return _unprocessable("request body must be a JSON object")
        cid = str(body.get("client_order_id") or uuid.uuid4())
        if cid in self.by_client_id:
            return _unprocessable("client_order_id must be unique")
        symbol = body.get("symbol")
        if symbol not in self.prices:
            return _unprocessable(f"asset not found: {symbol}")
        side, kind, tif = body.get("side"), body.get("type"), body.get("time_in_force")
        if side not in ("buy", "sell") or kind not in ("market", "limit"):
            return _unprocessable(f"unsupported side/type {side}/{kind}")
        if tif not in ("day", "gtc", "ioc", "opg", "cls", "fok"):
            return _unprocessable(f"invalid time_in_force {tif}")
        try:
            qty = float(body["qty"])
        except (KeyError, TypeError, ValueError):
            return _unprocessable("qty is required")
        if not qty > 0:
            return _unprocessable("qty must be > 0")
        limit = body.get("limit_price")
        if kind == "limit" and limit is None:
            return _unprocessable("limit_price is required for limit orders")
        if (
            side == "buy"
            and qty * (float(limit) if limit else self.price(symbol)) > 2 * self._equity()
        ):
            return _Reply(403, {"code": 40310000, "message": "insufficient buying power"})
        order = StubOrder(
            id=str(uuid.UUID(int=len(self.orders) + 1, version=4)),
            client_order_id=cid,
            symbol=symbol,
            side=side,
            qty=qty,
            type=kind,
            time_in_force=tif,
            limit_price=None if limit is None else float(limit),
            created_at=self.now,
            updated_at=self.now,
        )
        self.orders[order.id] = order
        self.by_client_id[cid] = order.id
        return _Reply(200, order.json())

    def _list(self, q: dict[str, list[str]]) -> _Reply:
        status = _one(q, "status") or "open"
        orders = list(self.orders.values())
        if status == "open":
            orders = [o for o in orders if o.status in OPEN_QUERY]
        elif status == "closed":
            orders = [o for o in orders if o.status not in OPEN_QUERY]
        if (_one(q, "direction") or "desc") == "desc":
            orders.reverse()
        limit = int(_one(q, "limit") or 50)
        return _Reply(200, [o.json() for o in orders[:limit]])

    def _cancel(self, order: StubOrder) -> _Reply:
        if order.status not in OPEN_QUERY:
            return _Reply(422, {"code": 42210000, "message": "order is not cancelable"})
        order.status = "canceled"
        order.canceled_at = order.updated_at = self.now
        return _Reply(204)

    def _cancel_all(self) -> _Reply:
        out = []
        for order in self.orders.values():
            if order.status in OPEN_QUERY:
                self._cancel(order)
                out.append({"id": order.id, "status": 200, "body": order.json()})
        return _Reply(207, out)

    def _position(self, symbol: str) -> dict[str, Any]:
        qty, avg = self.positions[symbol]
        price = self.price(symbol)
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
            "symbol": symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": dec(avg),
            "qty": dec(qty),
            "side": "long" if qty > 0 else "short",
            "market_value": dec(qty * price),
            "cost_basis": dec(qty * avg),
            "unrealized_pl": dec(qty * (price - avg)),
            "unrealized_plpc": dec((price - avg) / avg * (1 if qty > 0 else -1)),
            "unrealized_intraday_pl": "0",
            "unrealized_intraday_plpc": "0",
            "current_price": dec(price),
            "lastday_price": dec(price),
            "change_today": "0",
            "qty_available": dec(abs(qty)),
        }

    def _equity(self) -> float:
        return self.cash + sum(q * self.price(s) for s, (q, _) in self.positions.items())

    def _account(self) -> dict[str, Any]:
        values = [q * self.price(s) for s, (q, _) in self.positions.items()]
        equity = self._equity()
        return {
            "id": "e6fe16f3-64a4-4921-8928-cadf02f92f98",
            "account_number": "PA0STUB00001",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": dec(2 * equity),
            "regt_buying_power": dec(2 * equity),
            "daytrading_buying_power": dec(4 * equity),
            "non_marginable_buying_power": dec(max(self.cash, 0.0)),
            "cash": dec(self.cash),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "portfolio_value": dec(equity),
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2023-06-12T22:47:07.99658Z",
            "trade_suspended_by_user": False,
            "multiplier": "2",
            "shorting_enabled": True,
            "equity": dec(equity),
            "last_equity": dec(equity),
            "long_market_value": dec(sum(v for v in values if v > 0)),
            "short_market_value": dec(sum(v for v in values if v < 0)),
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
        }

    def _activities(self, q: dict[str, list[str]]) -> _Reply:
        items = list(self.activities)  # oldest first
        after, until = _one(q, "after"), _one(q, "until")
        if after:
            items = [a for a in items if _time(a["transaction_time"]) > _time(after)]
        if until:
            items = [a for a in items if _time(a["transaction_time"]) < _time(until)]
        if (_one(q, "direction") or "desc") == "desc":
            items.reverse()
        token = _one(q, "page_token")
        if token:
            ids = [a["id"] for a in items]
            items = items[ids.index(token) + 1 :] if token in ids else []
        size = min(int(_one(q, "page_size") or 100), 100)
        return _Reply(200, items[:size])

    def _bars(self, q: dict[str, list[str]]) -> _Reply:
        symbols = (_one(q, "symbols") or "").split(",")
        start, end = _one(q, "start"), _one(q, "end")
        flat = []
        for s in sorted(symbols):
            for bar in self.bars.get(s, []):
                t = _time(bar["t"])
                if (start and t < _time(start)) or (end and t > _time(end)):
                    continue
                flat.append((s, bar))
        offset = int(_one(q, "page_token") or 0)
        size = min(int(_one(q, "limit") or 1000), self.bars_page_size)
        page = flat[offset : offset + size]
        out: dict[str, list[dict[str, Any]]] = {}
        for s, bar in page:
            out.setdefault(s, []).append(bar)
        more = offset + size < len(flat)
        return _Reply(200, {"bars": out, "next_page_token": str(offset + size) if more else None})


def _one(q: dict[str, list[str]], name: str) -> str | None:
    values = q.get(name)
    return values[0] if values else None


def _time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _unprocessable(message: str) -> _Reply:
    return _Reply(422, {"code": 40010001, "message": message})


def _not_found(what: str) -> _Reply:
    return _Reply(404, {"code": 40410000, "message": f"{what} not found"})


class _Handler(BaseHTTPRequestHandler):
    server_version = "AlpacaStub/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        stub: AlpacaStub = self.server.stub  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        authorized = (
            self.headers.get("APCA-API-KEY-ID") == stub.api_key
            and self.headers.get("APCA-API-SECRET-KEY") == stub.secret_key
        )
        with stub.locked():
            stub.requests.append(Recorded(method, parts.path, query, body, authorized))
            fault = next((f for f in stub.faults if f.matches(method, parts.path)), None)
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    stub.faults.remove(fault)
        if not authorized:
            self._reply(_Reply(401, {"code": 40110000, "message": "request is not authorized"}))
            return
        if fault is not None and fault.kind == "status":
            message = "rate limit exceeded" if fault.status == 429 else "internal server error"
            self._reply(_Reply(fault.status, {"code": fault.status * 100000, "message": message}))
            return
        reply = None
        if fault is None or fault.process:
            reply = stub.handle(method, parts.path, query, body)
        if fault is not None and fault.kind == "hang":
            stub._stop.wait(fault.seconds)  # the client has timed out by now
        if reply is None or (fault is not None and fault.kind == "drop"):
            self.close_connection = True  # no answer at all
            return
        self._reply(reply)

    def _reply(self, reply: _Reply) -> None:
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up
            pass
