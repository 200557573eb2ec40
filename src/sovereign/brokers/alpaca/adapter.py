"""The Alpaca broker: the :class:`~sovereign.brokers.port.Broker` port over alpaca-py's REST client.

Wire mapping lives in :mod:`.parsing`; this module only does transport and the order life cycle:

- **Keys** come from the constructor or ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``; a missing
  one is a :class:`~sovereign.errors.ConfigError` naming the variable. Keys are handed to
  alpaca-py and never logged nor put in an error message. An HTTP 401 (keys refused) is a
  ConfigError too.
- **Endpoint**: ``base_url``, else ``Settings().alpaca.base_url`` (``SOVEREIGN_ALPACA__BASE_URL``),
  else alpaca-py's paper or live URL by ``paper``.
- **Transient failures** (timeouts, dropped connections, garbled bodies, HTTP 429 and 5xx) are
  retried ``RetryPolicy.attempts`` times with a fixed exponential backoff (no jitter, so a run
  is reproducible), then raised as :class:`~sovereign.errors.BrokerUnavailable`. alpaca-py's own
  retry (which sleeps 3 s on 429) is switched off and every request gets a timeout.
- **Idempotent submit**: a submit whose answer was lost (timeout, dropped connection, 5xx) is
  never blindly resent: the order is first looked up by ``client_order_id`` and, if Alpaca has
  it, that order's report is returned. A 4xx answer (422 for a ``client_order_id`` Alpaca already
  knows, 403 for insufficient buying power, ...) is also followed by a look-up: a known order is
  returned as it is, otherwise the submit is reported REJECTED with Alpaca's message (and stays
  rejected for the life of this object, like the paper exchange).
"""

from __future__ import annotations

import functools
import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests

from sovereign.brokers.alpaca import parsing
from sovereign.brokers.models import (
    AccountReport,
    Fill,
    MassStatus,
    Order,
    OrderReport,
    Position,
)
from sovereign.errors import BrokerError, BrokerUnavailable, ConfigError
from sovereign.settings import AlpacaSettings, Settings

with warnings.catch_warnings():
    # alpaca.trading imports its websocket stream, which warns about websockets.legacy.
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.common.enums import Sort
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import QueryOrderStatus
    from alpaca.trading.requests import GetOrdersRequest

log = logging.getLogger(__name__)

KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"  # noqa: S105 - a variable name, not a secret
ACTIVITY_PAGE_SIZE = 100  # Alpaca's maximum page size for account activities
OPEN_ORDERS_LIMIT = 500  # Alpaca's maximum for GET /v2/orders

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How hard to try before declaring Alpaca unavailable.

    ``attempts``: tries per call (>= 1). ``backoff_s``: wait after the first failure, doubled
    after each further one up to ``max_backoff_s`` (seconds, no jitter). ``timeout_s``: connect
    and read timeout of one HTTP request (seconds).
    """

    attempts: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 4.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.timeout_s <= 0 or self.backoff_s < 0:
            raise ValueError("timeout_s must be > 0 and backoff_s >= 0")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` (>= 1) consecutive failures."""
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** (failures - 1)))


def load_keys(api_key: str | None, secret_key: str | None) -> tuple[str, str]:
    """The key pair from the arguments, else from the environment; ConfigError names what is missing."""
    key = api_key or os.environ.get(KEY_ENV) or ""
    secret = secret_key or os.environ.get(SECRET_ENV) or ""
    for value, env, arg in ((key, KEY_ENV, "api_key"), (secret, SECRET_ENV, "secret_key")):
        if not value:
            raise ConfigError(
                f"Alpaca credentials missing: set {env} in the environment (or pass {arg})"
            )
    return key, secret


def transient_reason(err: BaseException) -> str | None:
    """Why ``err`` is worth a retry (timeout, dropped connection, 429, 5xx), or None if not."""
    if isinstance(err, requests.Timeout):
        return "timed out"
    if isinstance(err, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return "connection failed"
    if isinstance(err, requests.JSONDecodeError):
        return "malformed response body"
    if isinstance(err, APIError):
        status = http_status(err)
        if status is not None and (status == 429 or status >= 500):
            return f"HTTP {status}"
    return None


def http_status(err: APIError) -> int | None:
    status = err.status_code
    return status if isinstance(status, int) else None


def api_message(err: APIError) -> str:
    """Alpaca's error message (its JSON ``message``), else the start of the body."""
    try:
        message = err.message
    except (ValueError, KeyError, TypeError):
        message = str(err)
    return str(message)[:300]


def call_with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn`` (one alpaca-py call), retrying transient failures per ``policy``.

    Raises BrokerUnavailable when every attempt failed transiently, ConfigError on HTTP 401,
    BrokerError on any other HTTP error. Error texts name the call and the status, never keys.
    """
    last: BaseException | None = None
    reason = ""
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except (requests.RequestException, APIError) as err:
            transient = transient_reason(err)
            if transient is None:
                raise refused(err, what) from err
            last, reason = err, transient
            log.warning("Alpaca %s: %s (attempt %d/%d)", what, reason, attempt, policy.attempts)
            if attempt < policy.attempts:
                sleep(policy.delay(attempt))
    raise BrokerUnavailable(f"Alpaca {what}: {reason} on all {policy.attempts} attempts") from last


def refused(err: BaseException, what: str) -> ConfigError | BrokerError:
    """The error to raise for a non-transient failure of ``what``."""
    if isinstance(err, APIError):
        status = http_status(err)
        if status == 401:
            return ConfigError(
                f"Alpaca refused the API keys (HTTP 401) on {what}: check {KEY_ENV} and "
                f"{SECRET_ENV}, and that paper keys go to the paper endpoint"
            )
        return BrokerError(f"Alpaca {what} refused: HTTP {status}: {api_message(err)}")
    return BrokerError(f"Alpaca {what} failed: {type(err).__name__}")


class _TradingClient(TradingClient):
    """alpaca-py's TradingClient returning raw JSON, with a request timeout and no own retry."""

    def __init__(
        self, *, api_key: str, secret_key: str, paper: bool, url: str | None, timeout_s: float
    ) -> None:
        super().__init__(
            api_key=api_key, secret_key=secret_key, paper=paper, raw_data=True, url_override=url
        )
        self._timeout_s = timeout_s

    def _one_request(self, method: str, url: str, opts: dict[Any, Any], retry: int) -> Any:
        # retry=0: alpaca-py raises APIError at once instead of sleeping on 429 itself.
        return super()._one_request(method, url, {**opts, "timeout": self._timeout_s}, 0)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AlpacaBroker:
    """Broker port over Alpaca's Trading API (paper or live).

    ``api_key`` / ``secret_key``: default to ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``.
    ``base_url`` / ``paper``: default to ``settings`` (default ``Settings().alpaca``).
    ``last_price(symbol)``: the last trade price, needed only to resolve ``equity_fraction``
    orders (e.g. :meth:`sovereign.brokers.alpaca.data.AlpacaData.last_price`).
    ``fills_lookback``: how far back :meth:`mass_status` reads fills (None: all).
    ``clock``: stamps account reports and local rejections (tz-aware UTC).
    ``sleep``: the backoff sleep (tests pass a no-op).
    """

    name = "alpaca"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        secret_key: str | None = None,
        base_url: str | None = None,
        paper: bool | None = None,
        settings: AlpacaSettings | None = None,
        policy: RetryPolicy | None = None,
        last_price: Callable[[str], float] | None = None,
        fills_lookback: timedelta | None = None,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        key, secret = load_keys(api_key, secret_key)
        if settings is None and (base_url is None or paper is None):
            settings = Settings().alpaca
        url = base_url if base_url is not None else settings.base_url if settings else None
        is_paper = paper if paper is not None else settings.paper if settings else True
        self._policy = policy or RetryPolicy()
        self._client = _TradingClient(
            api_key=key,
            secret_key=secret,
            paper=is_paper,
            url=url,
            timeout_s=self._policy.timeout_s,
        )
        self._last_price = last_price
        self._fills_lookback = fills_lookback
        self._clock = clock
        self._sleep = sleep
        self._strategies: dict[str, str] = {}  # client order id -> strategy (Alpaca keeps none)
        self._client_ids: dict[str, str] = {}  # Alpaca order id -> client order id
        self._rejected: dict[str, OrderReport] = {}  # refused here or by a 4xx, by client id

    def __repr__(self) -> str:
        return f"AlpacaBroker(url={self._client._base_url!s})"

    # ------------------------------------------------------------------------- commands

    def submit(self, order: Order) -> OrderReport:
        """Submit ``order``; idempotent by ``client_order_id`` (see the module docstring)."""
        cid = order.client_order_id
        if cid in self._rejected:
            return self._rejected[cid]
        if order.strategy:
            self._strategies[cid] = order.strategy
        if order.equity_fraction is not None or order.reduce_only:
            known = self._call(lambda: self._find(cid), "order look-up")
            if known is not None:  # sized already: never re-size a live order
                return self._report(known)
        quantity, why_not = self._quantity(order)
        if why_not:
            return self._reject(order, why_not)
        request = parsing.order_request(order, quantity=quantity)
        last: BaseException | None = None
        reason = ""
        for attempt in range(1, self._policy.attempts + 1):
            try:
                if attempt > 1:  # the last try may have reached Alpaca: look before resending
                    known = self._find(cid)
                    if known is not None:
                        log.info("Alpaca submit %s: found after %s", cid, reason)
                        return self._report(known)
                raw = self._client.submit_order(request)
                log.info(
                    "Alpaca submit %s: %s %g %s", cid, order.side.value, quantity, order.symbol
                )
                return self._report(raw)
            except (requests.RequestException, APIError) as err:
                transient = transient_reason(err)
                if transient is None:
                    return self._refused_submit(order, err)
                last, reason = err, transient
                log.warning(
                    "Alpaca submit %s: %s (attempt %d/%d)",
                    cid,
                    reason,
                    attempt,
                    self._policy.attempts,
                )
                if attempt < self._policy.attempts:
                    self._sleep(self._policy.delay(attempt))
        raise BrokerUnavailable(
            f"Alpaca submit of {cid!r}: {reason} on all {self._policy.attempts} attempts; "
            "the order may exist: look it up by client order id before resubmitting"
        ) from last

    def cancel(self, client_order_id: str) -> OrderReport:
        """Cancel an open order; a closed order's report is returned unchanged.

        Raises :class:`BrokerError` for an id Alpaca does not know. Alpaca confirms a cancel
        asynchronously (``pending_cancel`` first): the order is re-read a few times until the
        cancel is confirmed; if it is not, the still-open report is returned.
        """
        if client_order_id in self._rejected:
            return self._rejected[client_order_id]
        raw = self._call(lambda: self._find(client_order_id), "order look-up")
        if raw is None:
            raise BrokerError(f"cannot cancel unknown order {client_order_id!r}")
        report = self._report(raw)
        if not report.status.is_open:
            return report
        order_id = report.broker_order_id
        self._call(lambda: self._cancel_by_id(order_id), "cancel")
        for attempt in range(1, self._policy.attempts + 1):
            raw = self._call(lambda: self._client.get_order_by_id(order_id), "order look-up")
            if parsing.as_json(raw).get("status") != "pending_cancel":
                break
            if attempt < self._policy.attempts:
                self._sleep(self._policy.delay(attempt))
        return self._report(raw)

    # -------------------------------------------------------------------------- queries

    def get_order(self, client_order_id: str) -> OrderReport | None:
        if client_order_id in self._rejected:
            return self._rejected[client_order_id]
        raw = self._call(lambda: self._find(client_order_id), "order look-up")
        return None if raw is None else self._report(raw)

    def open_orders(self) -> list[OrderReport]:
        """Working orders, oldest first (at most Alpaca's 500)."""
        query = GetOrdersRequest(
            status=QueryOrderStatus.OPEN, limit=OPEN_ORDERS_LIMIT, direction=Sort.ASC
        )
        raws = self._call(lambda: self._client.get_orders(query), "open orders")
        reports = [self._report(raw) for raw in _as_list(raws, "orders")]
        return [r for r in reports if r.status.is_open]

    def positions(self) -> list[Position]:
        return [parsing.position(raw) for raw in self._raw_positions()]

    def account(self) -> AccountReport:
        """Cash and equity from Alpaca's account, exposures and unrealized P&L from positions."""
        return self._account(self._raw_positions())

    def fills_since(self, since: datetime | None) -> list[Fill]:
        """Fills with ``timestamp >= since`` (inclusive; dedupe by ``fill_id``), oldest first.

        Read from Alpaca's FILL account activities, page by page (100 per page).
        """
        params: dict[str, Any] = {"direction": "asc", "page_size": ACTIVITY_PAGE_SIZE}
        if since is not None:
            if since.tzinfo is None:
                raise ValueError(f"since {since!r} must be timezone-aware (UTC)")
            # Alpaca's ``after`` is exclusive and second-precise in places: ask a little earlier
            # and filter here.
            params["after"] = (since.astimezone(UTC) - timedelta(seconds=1)).isoformat()
        activities: list[Any] = []
        while True:
            page = self._call(functools.partial(self._activities, dict(params)), "fills")
            items = _as_list(page, "activities")
            activities.extend(items)
            if len(items) < ACTIVITY_PAGE_SIZE:
                break
            params["page_token"] = parsing.as_json(items[-1]).get("id")
        fills = []
        for raw in activities:
            cid = self._client_id_of(parsing.activity_order_id(raw))
            fill = parsing.fill(raw, client_order_id=cid, strategy=self._strategies.get(cid, ""))
            if since is None or fill.timestamp >= since:
                fills.append(fill)
        fills.sort(key=lambda f: f.timestamp)
        return fills

    def mass_status(self) -> MassStatus:
        """Account, open orders, positions and the fills of the last ``fills_lookback``."""
        raw_positions = self._raw_positions()
        since = None if self._fills_lookback is None else self._clock() - self._fills_lookback
        return MassStatus(
            account=self._account(raw_positions),
            open_orders=tuple(self.open_orders()),
            positions=tuple(parsing.position(raw) for raw in raw_positions),
            fills=tuple(self.fills_since(since)),
        )

    # ------------------------------------------------------------------------- internals

    def _call(self, fn: Callable[[], T], what: str) -> T:
        return call_with_retry(fn, what=what, policy=self._policy, sleep=self._sleep)

    def _find(self, client_order_id: str) -> Any:
        """The raw order with this client id, None on 404. Raises like the client."""
        try:
            return self._client.get_order_by_client_id(client_order_id)
        except APIError as err:
            if http_status(err) == 404:
                return None
            raise

    def _activities(self, params: dict[str, Any]) -> Any:
        return self._client.get("/account/activities/FILL", params)

    def _cancel_by_id(self, order_id: str) -> None:
        try:
            self._client.cancel_order_by_id(order_id)
        except APIError as err:
            if http_status(err) != 422:  # 422: no longer cancelable (filled meanwhile)
                raise

    def _raw_positions(self) -> list[Any]:
        return _as_list(self._call(self._client.get_all_positions, "positions"), "positions")

    def _account(self, raw_positions: list[Any]) -> AccountReport:
        raw = self._call(self._client.get_account, "account")
        return parsing.account_report(raw, raw_positions, now=self._clock())

    def _report(self, raw: Any, *, reason: str = "") -> OrderReport:
        data = parsing.as_json(raw)
        cid = str(data.get("client_order_id", ""))
        self._client_ids[str(data.get("id", ""))] = cid
        return parsing.order_report(data, strategy=self._strategies.get(cid, ""), reason=reason)

    def _client_id_of(self, order_id: str) -> str:
        cid = self._client_ids.get(order_id)
        if cid is None:
            raw = self._call(lambda: self._client.get_order_by_id(order_id), "order look-up")
            cid = self._report(raw).client_order_id
        return cid

    def _reject(self, order: Order, reason: str) -> OrderReport:
        report = parsing.rejected_report(order, reason=reason, now=self._clock())
        self._rejected[order.client_order_id] = report
        log.warning("Alpaca submit %s rejected: %s", order.client_order_id, reason)
        return report

    def _refused_submit(self, order: Order, err: BaseException) -> OrderReport:
        """A non-transient submit failure: the order may already exist (422), else REJECTED."""
        error = refused(err, "submit")
        if isinstance(error, ConfigError):
            raise error from err
        known = self._call(lambda: self._find(order.client_order_id), "order look-up")
        if known is not None:
            return self._report(known)
        reason = api_message(err) if isinstance(err, APIError) else str(error)
        status = http_status(err) if isinstance(err, APIError) else None
        return self._reject(order, f"Alpaca refused the order (HTTP {status}): {reason}")

    def _quantity(self, order: Order) -> tuple[float, str]:
        """Shares to send, or (0, why the order cannot be sent)."""
        equity = price = None
        if order.equity_fraction is not None:
            if self._last_price is None:
                raise ConfigError("AlpacaBroker needs last_price to size equity_fraction orders")
            equity = self._account([]).equity
            price = self._last_price(order.symbol)
        quantity = parsing.resolve_quantity(order, equity=equity, price=price)
        if quantity <= 0:
            return 0.0, (
                f"equity_fraction {order.equity_fraction} of equity {equity} buys no whole "
                f"share at {price}"
            )
        if order.reduce_only:  # Alpaca has no reduce-only flag: cap at the position here
            held = sum(p.quantity for p in self.positions() if p.symbol == order.symbol)
            available = max(0.0, -order.side.sign * held)
            if available <= 0:
                return 0.0, "reduce-only: no position to reduce"
            quantity = min(quantity, available)
        return quantity, ""


def _as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise BrokerError(f"malformed Alpaca {what}: expected a JSON list")
    return value
