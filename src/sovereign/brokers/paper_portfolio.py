"""Cash and positions of a simulated account, vectorised over a fixed symbol universe.

Accounting conventions:

- Positions are signed share quantities (> 0 long, < 0 short) with an average entry price.
  Adding to a position moves the average; reducing it realises P&L on the closed part at the
  average; a fill that goes through zero realises P&L on the closed part and opens the rest at
  the fill price.
- Fill prices already include spread and slippage, so realised P&L is net of those and **gross
  of commission**. Commission and slippage cost are totalled separately.
- ``equity = cash + Σ qty × mark`` is always the truth, and
  ``equity = initial_cash + realised_pnl + unrealised_pnl - total_commission``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from sovereign.brokers.models import AccountReport, Fill, Position

_DUST = 1e-9  # a position smaller than this many shares is flat


class PaperPortfolio:
    """A cash account holding signed positions in ``symbols``.

    ``cash``: starting cash in the account currency. ``symbols``: the universe; every array this
    class takes or returns has shape ``(n_symbols,)`` in this order.
    """

    def __init__(self, cash: float, *, symbols: Sequence[str]) -> None:
        if not np.isfinite(cash):
            raise ValueError(f"cash must be finite, got {cash}")
        self._symbols = tuple(symbols)
        if len(set(self._symbols)) != len(self._symbols):
            raise ValueError(f"duplicate symbols in {self._symbols}")
        self._index = {s: j for j, s in enumerate(self._symbols)}
        n = len(self._symbols)
        self.initial_cash = float(cash)
        self.cash = float(cash)
        self.total_commission = 0.0
        self.total_slippage = 0.0
        self._qty = np.zeros(n)
        self._avg = np.zeros(n)
        self._mark = np.full(n, np.nan)
        self._realized = np.zeros(n)
        self._realized_total = 0.0
        self._n_held = 0  # non-zero positions, so a flat book answers without numpy

    # ----------------------------------------------------------------------------- inputs

    def apply_fill(self, fill: Fill) -> None:
        """Book one fill: cash, position, average price, realised P&L, commission, slippage."""
        j = self.index(fill.symbol)
        signed = fill.signed_quantity
        price = fill.price
        self.cash -= signed * price + fill.commission
        self.total_commission += fill.commission
        self.total_slippage += fill.slippage_cost
        q = float(self._qty[j])
        avg = float(self._avg[j])
        new_q = q + signed
        if abs(new_q) < _DUST:
            new_q = 0.0
        if q == 0.0 or (q > 0) == (signed > 0):  # open or add
            self._avg[j] = (abs(q) * avg + abs(signed) * price) / abs(new_q)
        else:  # reduce, close or flip
            closed = min(abs(q), abs(signed))
            pnl = closed * (price - avg) * (1.0 if q > 0 else -1.0)
            self._realized[j] += pnl
            self._realized_total += pnl
            if new_q == 0.0:
                self._avg[j] = 0.0
            elif (new_q > 0) != (q > 0):  # flipped through zero
                self._avg[j] = price
        self._n_held += (new_q != 0.0) - (q != 0.0)
        self._qty[j] = new_q
        if np.isnan(self._mark[j]):
            self._mark[j] = price

    def mark(self, prices: np.ndarray) -> None:
        """Mark to ``prices`` (shape (n_symbols,)); NaN entries keep the last known mark."""
        prices = np.asarray(prices, dtype=float)
        if prices.shape != self._mark.shape:
            raise ValueError(f"prices shape {prices.shape} != ({len(self._symbols)},)")
        total = prices.sum()
        if total == total:  # no NaN (the common case): one plain copy, cheaper than a mask
            self._mark[:] = prices
        else:
            np.copyto(self._mark, prices, where=~np.isnan(prices))

    # ---------------------------------------------------------------------------- queries

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def index(self, symbol: str) -> int:
        """Column of ``symbol``; KeyError names the symbol when it is not in the universe."""
        try:
            return self._index[symbol]
        except KeyError:
            raise KeyError(f"symbol {symbol!r} not in portfolio universe") from None

    def quantity(self, symbol: str) -> float:
        """Signed position in ``symbol`` (shares)."""
        return float(self._qty[self.index(symbol)])

    def quantity_at(self, column: int) -> float:
        """Signed position in the symbol at ``column`` (shares)."""
        return float(self._qty[column])

    @property
    def quantities(self) -> np.ndarray:
        """Signed positions, shape (n_symbols,), shares (a copy)."""
        return self._qty.copy()

    @property
    def avg_prices(self) -> np.ndarray:
        """Average entry prices, shape (n_symbols,); 0 where flat (a copy)."""
        return self._avg.copy()

    @property
    def marks(self) -> np.ndarray:
        """Last mark prices, shape (n_symbols,); NaN where never marked (a copy)."""
        return self._mark.copy()

    def _values(self, prices: np.ndarray) -> np.ndarray:
        # Marks of non-zero positions are always finite (set on the first fill), so NaN -> 0
        # only ever touches flat symbols.
        values: np.ndarray = self._qty * np.nan_to_num(prices, nan=0.0)
        return values

    def equity_at(self, prices: np.ndarray) -> float:
        """Equity valued at ``prices`` (shape (n_symbols,)), the last mark where a price is NaN."""
        px = np.where(np.isnan(prices), self._mark, prices)
        return self.cash + float(self._values(px).sum())

    @property
    def equity(self) -> float:
        """Cash plus positions at their marks."""
        if not self._n_held:
            return self.cash
        return self.cash + float(self._values(self._mark).sum())

    @property
    def realized_pnl(self) -> float:
        """Realised P&L, gross of commission (fill prices include spread and slippage)."""
        return self._realized_total

    @property
    def realized_pnl_by_symbol(self) -> np.ndarray:
        return self._realized.copy()

    @property
    def unrealized_pnl(self) -> float:
        """Σ qty × (mark - average price) over open positions."""
        held = self._qty != 0
        return float((self._qty[held] * (self._mark[held] - self._avg[held])).sum())

    @property
    def gross_exposure(self) -> float:
        """Σ |qty × mark|, money."""
        return float(np.abs(self._values(self._mark)).sum())

    @property
    def net_exposure(self) -> float:
        """Σ qty × mark, money (shorts count negative)."""
        return float(self._values(self._mark).sum())

    @property
    def gross_exposure_fraction(self) -> float:
        """Gross exposure / equity; ``inf`` with positions and equity <= 0, 0 when flat."""
        return _ratio(self.gross_exposure, self.equity)

    @property
    def net_exposure_fraction(self) -> float:
        """Net exposure / equity; ``±inf`` with positions and equity <= 0, 0 when flat."""
        return _ratio(self.net_exposure, self.equity)

    def account_report(self, timestamp: datetime) -> AccountReport:
        """The account at ``timestamp``; exposures in money. One pass over the positions."""
        if not self._n_held:
            gross = net = unrealized = 0.0
        else:
            values = self._values(self._mark)
            gross = float(np.abs(values).sum())
            net = float(values.sum())
            unrealized = self.unrealized_pnl
        return AccountReport(
            cash=self.cash,
            equity=self.cash + net,
            gross_exposure=gross,
            net_exposure=net,
            realized_pnl=self._realized_total,
            unrealized_pnl=unrealized,
            timestamp=timestamp,
        )

    def positions(self) -> list[Position]:
        """Open positions in universe order."""
        out: list[Position] = []
        for j in np.flatnonzero(self._qty):
            mark = float(self._mark[j])
            out.append(
                Position(
                    symbol=self._symbols[j],
                    quantity=float(self._qty[j]),
                    avg_price=float(self._avg[j]),
                    market_price=None if np.isnan(mark) else mark,
                )
            )
        return out


def _ratio(exposure: float, equity: float) -> float:
    if exposure == 0:
        return 0.0
    if equity <= 0:
        return float(np.copysign(np.inf, exposure))
    return exposure / equity
