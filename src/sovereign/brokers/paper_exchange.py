"""A bar-based simulated exchange: the reference implementation of order handling.

The backtester (or the paper trading loop) drives it one bar at a time::

    ex = PaperExchange(symbols, config=PaperConfig(), cash=100_000, seed=42)
    ex.submit(order, now)  # after bar t's close: queued for bar t + latency
    fills = ex.process_bar(t + 1, ts, o, h, l, c, v, vol)  # fills at t+1's open, marks at close

Timing: an order submitted after bar ``t`` was processed is eligible from bar
``t + latency_bars`` and trades at that bar's OPEN. Orders are handled first-in first-out.
Everything random comes from one ``numpy.random.Generator`` seeded at construction, so the same
seed and the same calls give the same orders, fills and rejections.

Order life cycle:

- ``submit``: REJECTED (unknown symbol; a sell that would go short when shorts are not allowed;
  a seeded random rejection in "realistic" mode) or ACCEPTED and queued.
- At the first eligible bar with a price: the reference price is the open (market) or the
  better of open and limit when the limit lies within [low, high] (limit). "realistic" moves it
  against the trader by half-spread + slippage, never past the limit. An ``equity_fraction``
  order becomes ``floor(equity × fraction / (price × (1 + commission_rate) + per_share))`` whole
  shares, with equity = cash + positions at this bar's open (last mark where the open is NaN)
  and price = the fill price before participation slippage (re-sized once if that slippage makes
  it unaffordable); fewer than one share: CANCELED "insufficient equity". Reduce-only orders (and
  every sell when shorts are not allowed) are capped at the position. "realistic" caps one order
  at ``floor(participation_cap × volume)`` shares per bar (no cap where volume is NaN).
- After the bar: FILLED, or the rest is carried (GTC, PARTIALLY_FILLED or ACCEPTED), or closed
  (DAY/IOC): CANCELED when part filled or IOC, EXPIRED when a DAY order filled nothing.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sovereign.brokers import costs
from sovereign.brokers.models import (
    Fill,
    Order,
    OrderReport,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from sovereign.brokers.paper_portfolio import PaperPortfolio
from sovereign.errors import BrokerError

_EPS = 1e-9


class PaperConfig(BaseModel):
    """How the paper exchange fills orders and what it charges.

    ``costs``: "realistic" applies half-spread, slippage, the participation cap and random
    rejections; "simple" charges commission only (fills at the reference price, in full).
    ``commission_rate``: fraction of notional per fill. ``commission_per_share``: money per share.
    ``min_commission``: money per fill. ``half_spread_bps``: half the bid-ask spread, in bps of
    price. ``slippage_vol_mult``: slippage as a price fraction = mult × the bar's per-bar return
    std. ``slippage_participation_mult``: extra slippage = mult × (filled qty / bar volume).
    ``participation_cap``: most of a bar's volume one order may fill in that bar (None: no cap;
    no cap either where volume is unknown). ``latency_bars``: an order submitted after bar t
    first trades at bar t + latency_bars' open. ``reject_probability``: chance that a submit is
    rejected (seeded). ``allow_short``: whether sells may take a position below zero.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    costs: Literal["realistic", "simple"] = "realistic"
    commission_rate: Annotated[float, Field(ge=0, lt=0.1)] = 0.0005
    commission_per_share: Annotated[float, Field(ge=0)] = 0.0
    min_commission: Annotated[float, Field(ge=0)] = 0.0
    half_spread_bps: Annotated[float, Field(ge=0, le=1000)] = 2.0
    slippage_vol_mult: Annotated[float, Field(ge=0)] = 0.1
    slippage_participation_mult: Annotated[float, Field(ge=0)] = 0.1
    participation_cap: Annotated[float, Field(gt=0, le=1)] | None = 0.1
    latency_bars: Annotated[int, Field(ge=1)] = 1
    reject_probability: Annotated[float, Field(ge=0, le=1)] = 0.0
    allow_short: bool = True

    @property
    def realistic(self) -> bool:
        return self.costs == "realistic"


@dataclass(slots=True)
class _Working:
    """Mutable exchange-side state of one order."""

    order: Order
    broker_order_id: str
    column: int
    status: OrderStatus
    updated_at: datetime
    eligible_from: int = 0
    quantity: float | None = None  # resolved total quantity; None until equity_fraction resolves
    filled: float = 0.0
    notional: float = 0.0
    n_fills: int = 0
    reason: str = ""  # why the order is or was closed, or a lasting note (a cap)
    note: str = ""  # why the last bar did not fill it all (limit not reached, no market, ...)

    def report(self) -> OrderReport:
        o = self.order
        return OrderReport(
            client_order_id=o.client_order_id,
            broker_order_id=self.broker_order_id,
            symbol=o.symbol,
            side=o.side,
            status=self.status,
            quantity=self.quantity,
            filled_quantity=self.filled,
            avg_fill_price=self.notional / self.filled if self.filled > 0 else None,
            timestamp=self.updated_at,
            strategy=o.strategy,
            reason=self.reason or self.note,
        )


@dataclass(frozen=True, slots=True)
class _Bar:
    """One bar's arrays, each of shape (n_symbols,)."""

    i: int
    timestamp: datetime
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    volume: np.ndarray
    volatility: np.ndarray


class PaperExchange:
    """Simulated exchange over a fixed universe; owns a :class:`PaperPortfolio`.

    ``symbols``: the universe, in the column order of every array passed to ``process_bar``.
    ``config``: :class:`PaperConfig`. ``cash``: starting cash. ``seed``: seeds the random
    rejections (the only randomness).
    """

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        config: PaperConfig | None = None,
        cash: float = 100_000.0,
        seed: int = 0,
    ) -> None:
        self._config = config or PaperConfig()
        self._portfolio = PaperPortfolio(cash, symbols=symbols)
        self._symbols = self._portfolio.symbols
        self._columns = {s: j for j, s in enumerate(self._symbols)}
        self._rng = np.random.default_rng(seed)
        self._orders: dict[str, _Working] = {}
        self._pending: list[_Working] = []
        self._fills: list[Fill] = []
        self._current = -1
        self._last_timestamp: datetime | None = None

    # ------------------------------------------------------------------------- properties

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    @property
    def config(self) -> PaperConfig:
        return self._config

    @property
    def portfolio(self) -> PaperPortfolio:
        return self._portfolio

    @property
    def current_bar(self) -> int:
        """Index of the last processed bar; -1 before the first."""
        return self._current

    @property
    def last_timestamp(self) -> datetime | None:
        """Timestamp of the last processed bar."""
        return self._last_timestamp

    @property
    def fills(self) -> tuple[Fill, ...]:
        """Every fill so far, in execution order."""
        return tuple(self._fills)

    # --------------------------------------------------------------------------- commands

    def submit(self, order: Order, now: datetime) -> OrderReport:
        """Accept (and queue) or reject ``order``; idempotent by ``client_order_id``.

        An id the exchange already knows returns that order's current report and creates
        nothing (a rejected id stays rejected). ``now``: tz-aware submission time.
        """
        _require_aware(now)
        known = self._orders.get(order.client_order_id)
        if known is not None:
            return known.report()
        w = _Working(
            order=order,
            broker_order_id=f"paper-{len(self._orders) + 1:08d}",
            column=self._columns.get(order.symbol, -1),
            status=OrderStatus.ACCEPTED,
            updated_at=now,
            quantity=order.quantity,
        )
        self._orders[order.client_order_id] = w
        reason = self._rejection(w)
        if reason:
            w.status = OrderStatus.REJECTED
            w.reason = reason
        else:
            w.eligible_from = self._current + self._config.latency_bars
            self._pending.append(w)
        return w.report()

    def cancel(self, client_order_id: str, now: datetime) -> OrderReport:
        """Cancel an open order; a closed order's report is returned unchanged.

        Raises :class:`BrokerError` for an unknown id.
        """
        _require_aware(now)
        w = self._orders.get(client_order_id)
        if w is None:
            raise BrokerError(f"cannot cancel unknown order {client_order_id!r}")
        if w.status.is_open:
            w.status = OrderStatus.CANCELED
            w.reason = "canceled by client"
            w.updated_at = now
            self._pending.remove(w)
        return w.report()

    def process_bar(
        self,
        i: int,
        timestamp: datetime,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        volatility: np.ndarray,
    ) -> list[Fill]:
        """Trade bar ``i`` and return its fills, in execution order.

        ``i``: bar index, strictly increasing across calls (gaps allowed). ``timestamp``: the
        bar's tz-aware time, stamped on its fills and order updates. ``open/high/low/close``:
        prices, ``volume``: shares, ``volatility``: the bar's per-bar return std; each an
        ndarray of shape (n_symbols,), NaN allowed (no bar / unknown).

        Eligible orders (``eligible_from <= i``) fill at the open (limit orders only if the limit
        lies within [low, high], at the better of open and limit); DAY and IOC rests are then
        closed; last, positions are marked at ``close``. Costs only run when orders are pending.
        """
        if i <= self._current:
            raise ValueError(f"bar index {i} is not after the last processed bar {self._current}")
        last = self._last_timestamp
        if last is None:
            _require_aware(timestamp)
        else:
            try:
                later = timestamp > last
            except TypeError as err:  # naive vs aware
                raise ValueError(f"timestamp {timestamp!r} must be timezone-aware (UTC)") from err
            if not later:
                raise ValueError(f"bar timestamp {timestamp} is not after {last}")
        n = len(self._symbols)
        for name, arr in (("open", open), ("close", close)):
            if arr.shape != (n,):
                raise ValueError(f"{name} has shape {arr.shape}, expected ({n},)")
        fills: list[Fill] = []
        if self._pending:
            bar = _Bar(
                i=i,
                timestamp=timestamp,
                open=open,
                high=high,
                low=low,
                volume=volume,
                volatility=volatility,
            )
            fills = self._trade(bar)
        self._portfolio.mark(close)
        self._current = i
        self._last_timestamp = timestamp
        return fills

    # ---------------------------------------------------------------------------- queries

    def get_order(self, client_order_id: str) -> OrderReport | None:
        w = self._orders.get(client_order_id)
        return None if w is None else w.report()

    def open_orders(self) -> list[OrderReport]:
        """Orders still working, in submission order."""
        return [w.report() for w in self._pending]

    def fills_since(self, since: datetime | None) -> list[Fill]:
        """Fills with ``timestamp >= since`` (all when None), in execution order."""
        if since is None:
            return list(self._fills)
        start = bisect.bisect_left(self._fills, since, key=lambda f: f.timestamp)
        return self._fills[start:]

    # --------------------------------------------------------------------------- internals

    def _rejection(self, w: _Working) -> str:
        order = w.order
        if w.column < 0:
            return f"unknown symbol {order.symbol!r}"
        if order.side is Side.SELL and not self._config.allow_short and not order.reduce_only:
            held = self._portfolio.quantity_at(w.column)
            if held <= 0:
                return "short selling is not allowed and there is no long position to sell"
            if order.quantity is not None and order.quantity > held + _EPS:
                return f"short selling is not allowed: sell of {order.quantity} exceeds {held}"
        cfg = self._config
        rolls = cfg.realistic and cfg.reject_probability > 0
        if rolls and self._rng.random() < cfg.reject_probability:
            return "rejected by the exchange (simulated random rejection)"
        return ""

    def _trade(self, bar: _Bar) -> list[Fill]:
        fills: list[Fill] = []
        still: list[_Working] = []
        for w in self._pending:
            if w.eligible_from > bar.i:
                still.append(w)
                continue
            fill = self._try_fill(w, bar)
            if fill is not None:
                fills.append(fill)
            if not w.status.is_open:
                continue
            if w.order.time_in_force is TimeInForce.GTC:
                still.append(w)
            else:
                self._close_rest(w, bar.timestamp)
        self._pending = still
        self._fills.extend(fills)
        return fills

    def _close_rest(self, w: _Working, timestamp: datetime) -> None:
        """End of the first bar of a DAY or IOC order: cancel (or expire) what did not fill."""
        tif = w.order.time_in_force.value.upper()
        why = f" ({w.note})" if w.note else ""
        if w.filled > 0:
            w.status = OrderStatus.CANCELED
            w.reason = f"{tif}: unfilled rest canceled at end of bar{why}"
        elif w.order.time_in_force is TimeInForce.DAY:
            w.status = OrderStatus.EXPIRED
            w.reason = f"{tif}: expired unfilled{why}"
        else:
            w.status = OrderStatus.CANCELED
            w.reason = f"{tif}: canceled unfilled{why}"
        w.updated_at = timestamp

    def _try_fill(self, w: _Working, bar: _Bar) -> Fill | None:  # noqa: C901 - one decision list
        """Fill what ``w`` can at this bar; say why not all filled in ``w.note``."""
        cfg = self._config
        order = w.order
        j = w.column
        side = order.side
        w.note = ""
        open_px = float(bar.open[j])
        if math.isnan(open_px):
            w.note = "no market for the symbol at this bar"
            return None
        reference = self._reference_price(order, open_px, float(bar.low[j]), float(bar.high[j]))
        if reference is None:
            w.note = "limit not reached"
            return None
        volume = float(bar.volume[j])
        known_volume = cfg.realistic and math.isfinite(volume)
        base = 0.0
        if cfg.realistic:
            base = costs.cost_fraction(
                half_spread_bps=cfg.half_spread_bps,
                volatility=float(bar.volatility[j]),
                participation=0.0,
                vol_mult=cfg.slippage_vol_mult,
                participation_mult=0.0,
            )
        limit = order.limit_price if order.order_type is OrderType.LIMIT else None
        equity_budget: float | None = None
        if w.quantity is None:  # equity_fraction: resolve into whole shares now
            assert order.equity_fraction is not None  # noqa: S101 - Order guarantees it
            equity_budget = self._portfolio.equity_at(bar.open) * order.equity_fraction
            sizing_price = costs.fill_price(reference, side, base, limit_price=limit)
            w.quantity = self._shares_for(equity_budget, sizing_price)
            if w.quantity < 1:
                self._cancel_now(w, bar, "insufficient equity")
                return None
        qty = w.quantity - w.filled
        if order.reduce_only or (side is Side.SELL and not cfg.allow_short):
            available = max(0.0, -side.sign * self._portfolio.quantity_at(j))
            if available <= _EPS:
                what = "reduce-only" if order.reduce_only else "short selling not allowed"
                self._cancel_now(w, bar, f"{what}: no position to reduce")
                return None
            if available < qty:
                w.quantity = w.filled + available
                w.reason = f"capped at the position size {available:g}"
                qty = available
        if known_volume and cfg.participation_cap is not None:
            cap = math.floor(cfg.participation_cap * volume + _EPS)
            if cap < qty:
                qty = cap
                w.note = f"participation cap: at most {cap} shares per bar"
        if qty <= _EPS:
            w.note = "no volume available under the participation cap"
            return None
        price = self._price(reference, side, base, qty, volume if known_volume else math.nan, limit)
        if equity_budget is not None and cfg.realistic:
            # Participation slippage raised the price above the one used for sizing: re-size.
            affordable = self._shares_for(equity_budget, price)
            if affordable < w.quantity:
                w.quantity = float(affordable)
                if affordable < 1:
                    self._cancel_now(w, bar, "insufficient equity")
                    return None
                qty = min(qty, w.quantity)
                price = self._price(
                    reference, side, base, qty, volume if known_volume else math.nan, limit
                )
        return self._book(w, bar, qty, price, reference)

    @staticmethod
    def _reference_price(order: Order, open_px: float, low: float, high: float) -> float | None:
        """Open for a market order; for a limit, the better of open and limit if reachable."""
        if order.order_type is OrderType.MARKET:
            return open_px
        limit = order.limit_price
        assert limit is not None  # noqa: S101 - Order guarantees it
        low = open_px if math.isnan(low) else min(low, open_px)
        high = open_px if math.isnan(high) else max(high, open_px)
        if order.side is Side.BUY:
            return min(open_px, limit) if low <= limit else None
        return max(open_px, limit) if high >= limit else None

    def _shares_for(self, budget: float, price: float) -> float:
        return float(
            costs.whole_shares_for_fraction(
                budget,
                1.0,
                price,
                commission_rate=self._config.commission_rate,
                commission_per_share=self._config.commission_per_share,
            )
        )

    def _price(
        self,
        reference: float,
        side: Side,
        base: float,
        qty: float,
        volume: float,
        limit: float | None,
    ) -> float:
        extra = 0.0
        if self._config.realistic and volume > 0:  # NaN volume compares False
            extra = self._config.slippage_participation_mult * qty / volume
        return costs.fill_price(reference, side, base + extra, limit_price=limit)

    def _cancel_now(self, w: _Working, bar: _Bar, reason: str) -> None:
        w.status = OrderStatus.CANCELED
        w.reason = reason
        w.updated_at = bar.timestamp

    def _book(self, w: _Working, bar: _Bar, qty: float, price: float, reference: float) -> Fill:
        cfg = self._config
        order = w.order
        w.n_fills += 1
        fill = Fill(
            fill_id=f"{order.client_order_id}-{w.n_fills}",
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=qty,
            price=price,
            commission=costs.commission(
                qty,
                price,
                rate=cfg.commission_rate,
                per_share=cfg.commission_per_share,
                minimum=cfg.min_commission,
            ),
            timestamp=bar.timestamp,
            strategy=order.strategy,
            slippage_cost=(price - reference) * order.side.sign * qty,
        )
        self._portfolio.apply_fill(fill)
        w.filled += qty
        w.notional += qty * price
        w.updated_at = bar.timestamp
        assert w.quantity is not None  # noqa: S101 - resolved before booking
        w.status = (
            OrderStatus.FILLED if w.filled >= w.quantity - _EPS else OrderStatus.PARTIALLY_FILLED
        )
        return fill


def _require_aware(ts: datetime) -> None:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp {ts!r} must be timezone-aware (UTC)")
