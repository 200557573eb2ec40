"""One bar at a time: the exchange trades, the Trader decides, orders go out.

:class:`BarLoop` is shared by the backtester, the paper campaign (`sovereign run`) and chaos
replays, so every mode runs the very same sequence per bar:

1. the paper exchange trades bar ``i`` at its open (orders sent at bar ``i-1``'s close) and
   marks the portfolio at bar ``i``'s close;
2. fills go to the Trader's book; orders that died (rejected, cancelled, expired) are reported;
3. the Trader decides at the close of bar ``i`` and its orders are submitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from sovereign.brokers.models import AccountReport, OrderStatus
from sovereign.brokers.paper_exchange import PaperExchange
from sovereign.engines.indicators import FeatureFrame
from sovereign.market.bars import BarPanel
from sovereign.rules.context import Regime
from sovereign.trading.events import EquityPoint, OrderSubmitted
from sovereign.trading.overlay import Overlay
from sovereign.trading.strategy import MarketView
from sovereign.trading.trader import Trader


@dataclass(frozen=True, kw_only=True, slots=True)
class RegimeSeries:
    """Market regime per bar: ``regime`` (n_bars,) of Regime, ``confidence`` (n_bars,) in [0, 1]."""

    regime: np.ndarray
    confidence: np.ndarray


@dataclass(kw_only=True)
class BarLoop:
    panel: BarPanel
    features: FeatureFrame
    regimes: RegimeSeries
    exchange: PaperExchange
    trader: Trader
    overlay: Overlay | None = None  # the engines' limits per bar (None: none)
    equity: list[float] = field(default_factory=list)
    bars: list[int] = field(default_factory=list)  # bar index of each equity point
    gross: list[float] = field(default_factory=list)
    traded_notional: float = 0.0
    orders_sent: int = 0
    _open: set[str] = field(default_factory=set)
    _stamps: list[datetime] = field(default_factory=list)

    def step(self, i: int, now: datetime | None = None) -> AccountReport:
        """Run bar ``i``; ``now`` is the decision time (defaults to the bar's timestamp)."""
        p, f = self.panel, self.features
        if not self._stamps:
            self._stamps = list(p.timestamps.to_pydatetime())
        ts = self._stamps[i]
        fills = self.exchange.process_bar(
            i, ts, p.open[i], p.high[i], p.low[i], p.close[i], p.volume[i], f.volatility[i]
        )
        for fill in fills:
            self.traded_notional += fill.quantity * fill.price
            self.trader.on_fill(fill, i)
        if self._open:
            for coid in list(self._open):
                report = self.exchange.get_order(coid)
                if report is None or not report.status.is_open:
                    self._open.discard(coid)
                    if report is not None:
                        self.trader.on_report(report)
        decided_at = now or ts
        account = self.exchange.portfolio.account_report(decided_at)
        prev = self.regimes.regime[i - 1] if i > 0 else Regime.UNCERTAIN
        view = MarketView(
            i=i,
            timestamp=ts,
            panel=p,
            features=f,
            regime=self.regimes.regime[i],
            regime_confidence=float(self.regimes.confidence[i]),
            prev_regime=prev,
            overlay=self.overlay,
        )
        for order in self.trader.step(view, account, decided_at):
            report = self.exchange.submit(order, decided_at)
            self.orders_sent += 1
            self.trader.sink.emit(
                OrderSubmitted(
                    order=order,
                    timestamp=decided_at,
                    ruleset_version=self.trader.rules.id,
                    status=report.status.value,
                    reason=report.reason,
                )
            )
            if report.status.is_open:
                self._open.add(order.client_order_id)
            elif report.status is not OrderStatus.FILLED:
                self.trader.on_report(report)
        self.equity.append(account.equity)
        self.bars.append(i)
        self.gross.append(account.gross_exposure)
        sup = self.trader.supervisor
        self.trader.sink.emit(
            EquityPoint(
                timestamp=ts,
                equity=account.equity,
                cash=account.cash,
                drawdown=sup.drawdown(account.equity),
                gross_exposure=account.gross_exposure,
                state=sup.state.value,
            )
        )
        return account
