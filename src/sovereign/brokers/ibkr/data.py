"""Market data from Interactive Brokers for the live loop: historical bars through the same
``IB`` session as the broker (TWS/IB Gateway), as a validated :class:`BarPanel`.

One ``reqHistoricalData`` per symbol (``TRADES``, regular trading hours, UTC times), covering
``start``..``end`` in IB's duration units; bars before ``start`` are dropped. Daily bars are
stamped at 00:00 UTC of their session date, intraday bars at their close, as every other source
does. A lost connection raises :class:`~sovereign.errors.BrokerUnavailable`; a symbol with no
bar, or invalid bars, raise :class:`~sovereign.errors.DataError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pandas as pd

from sovereign.brokers.bars import assemble_panel
from sovereign.brokers.ibkr import parsing
from sovereign.errors import BrokerUnavailable, DataError
from sovereign.market.bars import BarPanel

_WIRE_ERRORS = (ConnectionError, TimeoutError, OSError)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class IBKRData:
    """Bars over ``ib`` (an ib_async ``IB``, e.g. :attr:`IBKRBroker.ib`; tests pass a fake)."""

    def __init__(
        self,
        ib: object,
        *,
        use_rth: bool = True,
        what_to_show: str = "TRADES",
        clock: Callable[[], datetime] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._ib = ib
        self._use_rth = use_rth
        self._what = what_to_show
        self._clock = clock or _wall_clock
        self._timeout = timeout

    def bars(
        self,
        symbols: Sequence[str],
        start: datetime,
        end: datetime | None = None,
        *,
        timeframe: str = "1Day",
        gap_tolerance: float | None = 10.0,
    ) -> BarPanel:
        """OHLCV bars of ``symbols`` from ``start`` to ``end`` (tz-aware; None: up to now), in
        the order given; see the module docstring."""
        names = list(symbols)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"symbols must be non-empty and unique, got {names}")
        for bound in (start, end):
            if bound is not None and bound.tzinfo is None:
                raise ValueError(f"{bound!r} must be timezone-aware (UTC)")
        until = end or self._clock()
        size = parsing.bar_size(timeframe)
        duration = parsing.duration_str(start, until)
        source = f"ibkr:bars:{timeframe}"
        frames = []
        for symbol in names:
            try:
                raw = self._ib.reqHistoricalData(  # type: ignore[attr-defined]
                    parsing.to_ib_contract(symbol),
                    endDateTime=end or "",
                    durationStr=duration,
                    barSizeSetting=size,
                    whatToShow=self._what,
                    useRTH=self._use_rth,
                    formatDate=2,
                    timeout=self._timeout,
                )
            except _WIRE_ERRORS as err:
                raise BrokerUnavailable(f"IB history for {symbol} failed: {err!r}") from err
            if not raw:
                raise DataError(f"no bars for {symbol}", source=source, column="symbol")
            frames.append(parsing.historical_frame(symbol, raw))
        frame = pd.concat(frames, ignore_index=True)
        panel = assemble_panel(
            frame,
            names,
            timeframe,
            stamp=parsing.bar_stamps,
            source=source,
            gap_tolerance=gap_tolerance,
        )
        keep = panel.timestamps >= pd.Timestamp(start).floor("D")
        first = int(keep.argmax()) if keep.any() else panel.n_bars
        return panel.slice(first, panel.n_bars)

    def last_price(self, symbol: str) -> float:
        """The last one-minute bar's close of ``symbol`` (over the last four days, so a
        weekend or a holiday still finds the last session)."""
        now = self._clock()
        panel = self.bars([symbol], now - pd.Timedelta(days=4), timeframe="1Min")
        price = float(panel.close[-1, 0])
        if not price > 0:
            raise DataError(f"last price {price} of {symbol!r} is not positive")
        return price


__all__ = ["IBKRData"]
