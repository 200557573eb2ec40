"""Alpaca market data: historical bars into a validated :class:`~sovereign.market.bars.BarPanel`.

Bars come from alpaca-py's ``StockHistoricalDataClient`` (``GET /v2/stocks/bars``), which follows
``next_page_token`` until the last page. They are validated with the project's strict rules
(:func:`sovereign.market.validation.normalize_frame`: positive prices, high >= low, open/close
inside the range, no duplicate or out-of-order bar, no gap beyond ``gap_tolerance``), so bad data
raises :class:`~sovereign.errors.DataError` and never reaches a strategy. Stamps follow the
project's convention (:func:`.parsing.bar_close_times`): a daily bar at 00:00 UTC of its session
date, an intraday bar at its close.

Endpoint: ``data_url``, else ``Settings().alpaca.data_url`` (``SOVEREIGN_ALPACA__DATA_URL``),
else Alpaca's data URL. Keys as for :class:`~sovereign.brokers.alpaca.adapter.AlpacaBroker`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sovereign.brokers.alpaca import parsing
from sovereign.brokers.alpaca.adapter import RetryPolicy, call_with_retry, load_keys
from sovereign.brokers.bars import assemble_panel
from sovereign.errors import BrokerError, DataError
from sovereign.market.bars import BarPanel
from sovereign.settings import AlpacaSettings, Settings

with warnings.catch_warnings():
    # alpaca.data imports alpaca.trading, whose websocket stream warns about websockets.legacy.
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.data.enums import Adjustment, DataFeed
    from alpaca.data.historical.stock import StockHistoricalDataClient
    from alpaca.data.requests import StockBarsRequest, StockLatestTradeRequest
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

_UNITS = {
    "Min": TimeFrameUnit.Minute,
    "Hour": TimeFrameUnit.Hour,
    "Day": TimeFrameUnit.Day,
    "Week": TimeFrameUnit.Week,
    "Month": TimeFrameUnit.Month,
}


class _DataClient(StockHistoricalDataClient):
    """alpaca-py's stock data client returning raw JSON, with a timeout and no own retry."""

    def __init__(self, *, api_key: str, secret_key: str, url: str | None, timeout_s: float) -> None:
        super().__init__(api_key=api_key, secret_key=secret_key, raw_data=True, url_override=url)
        self._timeout_s = timeout_s

    def _one_request(self, method: str, url: str, opts: dict[Any, Any], retry: int) -> Any:
        return super()._one_request(method, url, {**opts, "timeout": self._timeout_s}, 0)


class AlpacaData:
    """Historical stock bars and last trade prices from Alpaca's Market Data API.

    ``feed``: "iex" (free plans), "sip", ... (None: Alpaca's default for the account).
    ``adjustment``: corporate-action adjustment, "raw", "split", "dividend" or "all".
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        secret_key: str | None = None,
        data_url: str | None = None,
        settings: AlpacaSettings | None = None,
        feed: str | None = None,
        adjustment: str = "all",
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        key, secret = load_keys(api_key, secret_key)
        if data_url is None:
            section = settings if settings is not None else Settings().alpaca
            data_url = section.data_url
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._feed = None if feed is None else DataFeed(feed)
        self._adjustment = Adjustment(adjustment)
        self._client = _DataClient(
            api_key=key, secret_key=secret, url=data_url, timeout_s=self._policy.timeout_s
        )

    def __repr__(self) -> str:
        return f"AlpacaData(url={self._client._base_url!s})"

    def bars(
        self,
        symbols: Sequence[str],
        start: datetime,
        end: datetime | None = None,
        *,
        timeframe: str = "1Day",
        gap_tolerance: float | None = 10.0,
    ) -> BarPanel:
        """OHLCV bars of ``symbols`` from ``start`` to ``end`` (tz-aware; None: up to now).

        ``timeframe``: "1Day", "1Hour", "5Min", ... Returns a panel with the symbols in the
        order given, timestamps the sorted union of all bars (NaN where a symbol has none).
        Raises DataError for invalid bars or a symbol without any bar; BrokerUnavailable when
        Alpaca does not answer (a failure mid-pagination refetches from the first page).
        """
        names = list(symbols)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"symbols must be non-empty and unique, got {names}")
        for bound in (start, end):
            if bound is not None and bound.tzinfo is None:
                raise ValueError(f"{bound!r} must be timezone-aware (UTC)")
        amount, unit = parsing.parse_timeframe(timeframe)
        request = StockBarsRequest(
            symbol_or_symbols=names,
            timeframe=TimeFrame(amount, _UNITS[unit]),
            start=start,
            end=end,
            adjustment=self._adjustment,
            feed=self._feed,
        )
        raw = call_with_retry(
            lambda: self._client.get_stock_bars(request),
            what="bars",
            policy=self._policy,
            sleep=self._sleep,
        )
        source = f"alpaca:bars:{timeframe}"
        return _panel(raw, names, timeframe, source=source, gap_tolerance=gap_tolerance)

    def last_price(self, symbol: str) -> float:
        """The last trade price of ``symbol`` (for sizing ``equity_fraction`` orders)."""
        request = StockLatestTradeRequest(symbol_or_symbols=symbol, feed=self._feed)
        raw: Any = call_with_retry(
            lambda: self._client.get_stock_latest_trade(request),
            what="latest trade",
            policy=self._policy,
            sleep=self._sleep,
        )
        try:
            price = parsing.decimal(raw[symbol]["p"], "p", "latest trade")
        except (KeyError, TypeError):
            raise DataError(f"no latest trade for {symbol!r}", source="alpaca:trades") from None
        if price <= 0:
            raise DataError(f"latest trade price {price} of {symbol!r} is not positive")
        return price


def _panel(
    raw: Any, names: list[str], timeframe: str, *, source: str, gap_tolerance: float | None
) -> BarPanel:
    """Alpaca's ``{symbol: [bar, ...]}`` -> a validated panel with ``names`` as columns."""
    if not isinstance(raw, dict):
        raise DataError(
            "malformed bars response: expected an object keyed by symbol", source=source
        )
    missing = [s for s in names if not raw.get(s)]
    if missing:
        raise DataError(f"no bars for {', '.join(missing)}", source=source, column="symbol")
    extra = sorted(set(raw) - set(names))
    if extra:
        raise DataError(f"bars for unrequested symbols {extra}", source=source, column="symbol")
    try:
        frame = parsing.bars_frame(raw)
    except BrokerError as err:
        raise DataError(str(err), source=source) from err
    return assemble_panel(
        frame,
        names,
        timeframe,
        stamp=parsing.bar_close_times,
        source=source,
        gap_tolerance=gap_tolerance,
    )
