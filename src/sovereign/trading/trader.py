"""The Trader: one decision pipeline for backtest, paper and live.

Per bar: Supervisor observes the account -> data and engine outputs are checked (stale or
invalid: stand down) -> pools are checked (a strategy beyond its loss limit is killed alone) ->
exits (ATR stop, ATR take profit, maximum holding time, regime change, the strategy's own exit,
rules' exit_position) -> entries (strategy signals -> active rules -> Supervisor -> sizing) ->
orders with deterministic client order ids. The Trader returns orders; the driver (backtester,
paper loop, live loop) sends them and feeds fills back through :meth:`Trader.on_fill`.

The engines take part through four hooks: the overlay's limits go to the Supervisor every bar
(:mod:`sovereign.trading.overlay`); a bar's candidate entries are sized together
(:mod:`sovereign.trading.sizing`: the closest portfolio to their Kelly-tempered sizes, shrunk
along covariance risk); an entry above the participation threshold of its average daily volume
is worked over several bars (:mod:`sovereign.trading.slicing`: one child per bar, cancelled when
new risk stops or the position exits); and every ``rebalance_every`` bars the pool allocator
(:mod:`sovereign.trading.pools`: LinUCB with a CVaR penalty, and a freshness score) scales each
strategy's new positions and kills a pool whose edge has decayed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from sovereign.brokers.models import AccountReport, Fill, Order, OrderReport, OrderStatus, Side
from sovereign.brokers.models import client_order_id as make_client_order_id
from sovereign.engines.allocation import context_vector
from sovereign.engines.regime import REGIME_ORDER
from sovereign.errors import EngineError
from sovereign.rules.actions import ExitPosition, TightenStop
from sovereign.rules.context import Regime, RuleContext
from sovereign.rules.rule import RuleEffect, RuleSet
from sovereign.trading.book import Book, Intent, OpenTrade
from sovereign.trading.events import Decision, EventSink, NullSink, Transition
from sovereign.trading.overlay import NEUTRAL
from sovereign.trading.pools import PoolAllocator, PoolConfig
from sovereign.trading.sizing import PortfolioSizer, SizingConfig
from sovereign.trading.slicing import (
    SlicingConfig,
    WorkingOrders,
    average_daily_volume,
    order_seed,
)
from sovereign.trading.strategies.base import BaseStrategy
from sovereign.trading.strategy import MarketView, Signal
from sovereign.trading.supervisor import Supervisor, SupervisorState


@dataclass(frozen=True, kw_only=True, slots=True)
class TraderConfig:
    """``kelly_fraction``: share of the Kelly bet taken (0.25 = quarter Kelly).
    ``max_staleness``: a bar older than this at decision time is stale (None: never)."""

    kelly_fraction: float = 0.25
    max_staleness: timedelta | None = None
    uncertain_scale: float = 0.5  # size multiplier when the regime is Uncertain
    order_namespace: str = ""  # see brokers.models.client_order_id
    slicing: SlicingConfig = field(default_factory=SlicingConfig)
    pools: PoolConfig = field(default_factory=PoolConfig)
    sizing: SizingConfig = field(default_factory=SizingConfig)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Candidate:
    """An entry the rules and the Supervisor approved, with its desired size (of equity)."""

    strategy: str
    signal: Signal
    j: int
    price: float
    atr: float
    effect: RuleEffect
    fraction: float


class Trader:
    def __init__(
        self,
        *,
        strategies: Sequence[BaseStrategy],
        supervisor: Supervisor,
        rules: RuleSet | None = None,
        config: TraderConfig | None = None,
        sink: EventSink | None = None,
        initial_equity: float,
    ) -> None:
        self.strategies = {s.name: s for s in strategies}
        self.supervisor = supervisor
        self.config = config or TraderConfig()
        self.sink: EventSink = sink or NullSink()
        self.book = Book()
        self.working = WorkingOrders(config=self.config.slicing)
        self.pools = PoolAllocator(list(self.strategies), self.config.pools)
        self.sizer: PortfolioSizer | None = None  # built on the first bar (needs the universe)
        self.set_rules(rules or RuleSet())
        for s in strategies:
            cfg = s.config
            supervisor.add_pool(
                s.name, capital=initial_equity * cfg.pool_fraction, max_loss=cfg.pool_max_loss
            )

    # ---- configuration ---------------------------------------------------------------------

    def set_rules(self, rules: RuleSet) -> None:
        """Activate a rule set (deploy or rollback); takes effect at the next bar."""
        self.rules = rules
        self._entry_rules = {n: rules.for_strategy(n) for n in self.strategies}
        self._position_rules = {
            n: tuple(r for r in rs if isinstance(r.then, ExitPosition | TightenStop))
            for n, rs in self._entry_rules.items()
        }

    def set_params(self, overrides: dict[str, dict[str, float]]) -> None:
        """Apply deployed parameter overrides (strategy -> name -> value) from the next bar.

        Each changed strategy is rebuilt from its current config with the new values (bounds are
        checked again) and keeps its confidence calibration; pools and open trades are untouched.
        """
        for name, params in overrides.items():
            old = self.strategies.get(name)
            if old is None or all(old.p.get(k) == v for k, v in params.items()):
                continue
            new = type(old)(old.config, **params)
            new.adopt_calibration(old)
            self.strategies[name] = new

    @property
    def warmup_bars(self) -> int:
        return max((s.warmup_bars for s in self.strategies.values()), default=0)

    # ---- the pipeline ----------------------------------------------------------------------

    def step(self, view: MarketView, account: AccountReport, now: datetime) -> list[Order]:
        """Decide at the close of ``view.i``; returns the orders to send, in order."""
        sup = self.supervisor
        for t in sup.observe(now, account.equity):
            self._transition(t)
        stale = self._staleness(view, now)
        if stale is not None:
            self._decide(view, "*", "*", "stand_down", "skipped", stale)
            return []
        marks = self._marks(view)
        orders: list[Order] = []
        for name in self.strategies:
            capital = sup.pools[name].capital
            killed = sup.observe_pool(now, name, self.book.pool_equity(name, capital, marks))
            if killed is not None:
                self._transition(killed)
                orders += self._flatten(view, self.book.trades_of(name), killed.reason)
        if sup.state is SupervisorState.HALTED:
            self.working.cancel_all(f"halted: {sup.reason}")
            orders += self._flatten(view, list(self.book.open.values()), sup.reason)
            self._record_cancellations(view)
            return orders
        pool_orders, pool_problem = self._rebalance_pools(view, marks)
        orders += pool_orders
        orders += self._exits(view, account)
        engine_problem = (
            self._engine_problem(view) or pool_problem or self._engine_limits(view, account)
        )
        if engine_problem is not None:
            self.working.cancel_all(f"no new risk: {engine_problem}")
            self._decide(view, "*", "*", "stand_down", "skipped", engine_problem)
        else:  # signals are still evaluated while REDUCING so each block is recorded
            if sup.state is SupervisorState.NORMAL and not sup.limits.stand_down:
                orders += self._children(view)
            else:
                self.working.cancel_all(f"no new risk: supervisor {sup.state.value}")
            orders += self._entries(view, account, now, exiting={o.symbol for o in orders})
        self._record_cancellations(view)
        return orders

    def on_fill(self, fill: Fill, bar: int) -> None:
        for trade in self.book.apply_fill(fill, bar):
            self.sink.emit(trade)
            strategy = self.strategies.get(trade.strategy)
            if strategy is not None:
                strategy.calibrate(trade.regime_at_entry, trade.pnl > 0)
        self.sink.emit(fill)

    def on_report(self, report: OrderReport) -> None:
        """Forget the intent of an order that will never fill; free a dead exit for re-issue."""
        if report.status.is_open or report.status is OrderStatus.FILLED:
            return
        intent = self.book.intents.get(report.client_order_id)
        if intent is None:
            return
        trade = self.book.open.get((intent.strategy, intent.symbol))
        if trade is not None and trade.exit_order == report.client_order_id:
            trade.exit_order = None
        if report.filled_quantity <= 0:
            del self.book.intents[report.client_order_id]

    def halt(self, now: datetime, reason: str) -> None:
        t = self.supervisor.halt(now, reason)
        if t is not None:
            self._transition(t)

    # ---- checks --------------------------------------------------------------------------------

    def _staleness(self, view: MarketView, now: datetime) -> str | None:
        limit = self.config.max_staleness
        if limit is not None and now - view.timestamp > limit:
            return f"stale data: last bar {view.timestamp:%Y-%m-%d %H:%M} is older than {limit}"
        if not np.isfinite(view.close).any():
            return "no valid price in the current bar"
        return None

    def _engine_problem(self, view: MarketView) -> str | None:
        conf = view.regime_confidence
        if not isinstance(view.regime, Regime):
            return f"regime engine returned {view.regime!r}"
        if not (math.isfinite(conf) and 0.0 <= conf <= 1.0):
            return f"regime confidence {conf!r} is not a probability"
        atr = view.features.atr_pct[view.i]
        if np.isinf(atr).any() or (atr < 0).any():
            return "ATR engine returned a non-finite or negative value"
        return None

    def _engine_limits(self, view: MarketView, account: AccountReport) -> str | None:
        """Hand the Supervisor this bar's limits from the overlay (stability, crash sentinel,
        stress); an unusable engine output makes it stand down, and the reason is returned."""
        sup = self.supervisor
        if view.overlay is None:
            sup.set_limits(NEUTRAL)
            return None
        equity = account.equity
        gross = account.gross_exposure / equity if equity > 0 else math.inf
        net = account.net_exposure / equity if equity > 0 else 0.0
        try:
            limits = view.overlay.limits(
                view.i,
                drawdown=sup.drawdown(equity),
                max_drawdown=sup.constitution.max_drawdown,
                long_gross=max(0.0, (gross + net) / 2),
                short_gross=max(0.0, (gross - net) / 2),
            )
        except EngineError as err:
            reason = f"engine output unusable ({err}): no new risk"
            sup.stand_down(reason)
            return reason
        sup.set_limits(limits)
        return None

    # ---- pools and working orders ------------------------------------------------------------

    def _rebalance_pools(
        self, view: MarketView, marks: dict[str, float]
    ) -> tuple[list[Order], str | None]:
        """Feed the pool allocator; on a rebalance bar, kill the pools whose edge decayed.
        Returns the orders (flattening killed pools) and a reason to stand down, if any."""
        if not self.pools.due(view.i):
            return [], None
        sup = self.supervisor
        equity = {n: self.book.pool_equity(n, sup.pools[n].capital, marks) for n in self.strategies}
        retired = {n for n in self.strategies if not sup.strategy_active(n)}
        try:
            decision = self.pools.observe(
                view.i, pool_equity=equity, context=self._pool_context(view), retired=retired
            )
        except EngineError as err:
            return [], f"pool allocation unusable ({err}): no new risk"
        if decision is None:
            return [], None
        orders: list[Order] = []
        for name, why in decision.kills.items():
            t = sup.kill_pool(view.timestamp, name, why)
            if t is not None:
                self._transition(t)
                orders += self._flatten(view, self.book.trades_of(name), t.reason)
        scales = {k: round(v, 4) for k, v in decision.scales.items()}
        self._decide(
            view,
            "*",
            "*",
            "allocate",
            "rebalanced",
            "; ".join(decision.reasons) or "pool scales updated",
            inputs={"scales": scales, "weights": dict(decision.weights)},
        )
        return orders, None

    def _pool_context(self, view: MarketView) -> np.ndarray:
        """The allocator's context: regime probabilities (the filtered confidence on the current
        regime, the rest spread evenly), the stability score and annualised volatility."""
        probs = np.full(len(REGIME_ORDER), 1.0 / len(REGIME_ORDER))
        conf = view.regime_confidence
        if view.regime in REGIME_ORDER and math.isfinite(conf):
            probs[:] = (1.0 - conf) / (len(REGIME_ORDER) - 1)
            probs[REGIME_ORDER.index(view.regime)] = conf
        stability = 1.0 if view.overlay is None else float(view.overlay.stability[view.i])
        vol_row = view.features.volatility[view.i]
        vol = float(np.nanmean(vol_row)) * math.sqrt(252) if np.isfinite(vol_row).any() else 0.0
        return context_vector(probs.tolist(), stability, vol)

    def _children(self, view: MarketView) -> list[Order]:
        """The next child of every entry being worked over several bars."""
        orders = []
        for child, intent in self.working.due(view.i, created_at=view.timestamp):
            self.book.intents[child.client_order_id] = intent
            self.supervisor.count_order()
            parent = self.working.parent(child.strategy, child.symbol)
            slices = "" if parent is None else f" ({parent.sent} of {len(parent.quantities)})"
            self._decide(
                view,
                child.strategy,
                child.symbol,
                "enter",
                "ordered",
                f"working the entry: next slice{slices}",
                inputs={"quantity": child.quantity},
            )
            orders.append(child)
        return orders

    def _record_cancellations(self, view: MarketView) -> None:
        for c in self.working.drain_cancellations():
            self._decide(
                view,
                c.strategy,
                c.symbol,
                "cancel",
                "skipped",
                f"{c.shares:g} unsent shares of a sliced entry cancelled: {c.reason}",
            )

    def _marks(self, view: MarketView) -> dict[str, float]:
        """Valid closes of the symbols the book holds (the only ones pools are marked at)."""
        close = view.close
        marks = {}
        for symbol in {t.symbol for t in self.book.open.values()}:
            price = float(close[view.panel.column(symbol)])
            if price > 0:
                marks[symbol] = price
        return marks

    # ---- exits ---------------------------------------------------------------------------------

    def _exits(self, view: MarketView, account: AccountReport) -> list[Order]:
        orders = []
        drawdown = self.supervisor.drawdown(account.equity)
        for trade in list(self.book.open.values()):
            if trade.exit_order is not None:
                continue
            j = view.panel.column(trade.symbol)
            price = float(view.close[j])
            if not (math.isfinite(price) and price > 0):
                continue  # no price, no decision: try again next bar
            reason = trade.exit_reason or self._exit_reason(view, trade, price, j, drawdown)
            if reason is not None:
                orders.append(self._exit_order(view, trade, reason))
        return orders

    def _exit_reason(
        self, view: MarketView, trade: OpenTrade, price: float, j: int, drawdown: float
    ) -> str | None:
        rules = self._position_rules.get(trade.strategy, ())
        if rules:
            effect = RuleSet.apply(
                rules,
                self._context(
                    view, trade.strategy, j, trade.confidence, drawdown, in_position=True
                ),
            )
            trade.rules.extend(effect.fired)
            if effect.stop_atr_mult is not None and math.isfinite(trade.atr):
                tighter = price - trade.side * effect.stop_atr_mult * trade.atr
                if trade.stop is None or (tighter - trade.stop) * trade.side > 0:
                    trade.stop = tighter
            if effect.exit:
                return "rule: exit_position"
        if self.supervisor.cutting_losses and trade.unrealized(price) < 0:
            return "de-risk: losing position while the drawdown is near the hard stop"
        if trade.stop is not None and (price - trade.stop) * trade.side <= 0:
            return f"ATR stop at {trade.stop:.2f}"
        if trade.take_profit is not None and (price - trade.take_profit) * trade.side >= 0:
            return f"ATR take profit at {trade.take_profit:.2f}"
        if trade.max_hold_bars is not None and view.i - trade.entry_bar >= trade.max_hold_bars:
            return f"held {view.i - trade.entry_bar} bars (max {trade.max_hold_bars})"
        if (
            trade.exit_on_regime_change
            and view.regime.value != trade.regime_at_entry
            and (view.regime in (Regime.TRENDING_DOWN, Regime.VOLATILE))
        ):
            return f"regime changed from {trade.regime_at_entry} to {view.regime.value}"
        strategy = self.strategies.get(trade.strategy)
        return None if strategy is None else strategy.exit_reason(view, trade.held())

    def _exit_order(
        self, view: MarketView, trade: OpenTrade, reason: str, leg: str = "exit"
    ) -> Order:
        trade.exit_reason = reason
        self.working.cancel(trade.strategy, trade.symbol, f"exiting: {reason}")
        coid = make_client_order_id(
            strategy=trade.strategy,
            ruleset_version=self.rules.id,
            symbol=trade.symbol,
            signal_time=view.timestamp,
            leg=leg,
            namespace=self.config.order_namespace,
        )
        trade.exit_order = coid
        self.book.intents[coid] = Intent(
            strategy=trade.strategy,
            symbol=trade.symbol,
            kind="exit",
            side=-trade.side,
            reason=reason,
            bar=view.i,
            ruleset_version=self.rules.id,
        )
        self._decide(
            view,
            trade.strategy,
            trade.symbol,
            "exit",
            "ordered",
            reason,
            confidence=trade.confidence,
        )
        return Order(
            client_order_id=coid,
            symbol=trade.symbol,
            side=Side.SELL if trade.side > 0 else Side.BUY,
            quantity=trade.quantity,
            strategy=trade.strategy,
            created_at=view.timestamp,
            reduce_only=True,
        )

    def _flatten(self, view: MarketView, trades: list[OpenTrade], reason: str) -> list[Order]:
        orders = []
        for trade in trades:
            if trade.exit_order is None and view.close[view.panel.column(trade.symbol)] > 0:
                orders.append(self._exit_order(view, trade, f"flatten: {reason}", leg="flatten"))
        return orders

    # ---- entries -------------------------------------------------------------------------------

    def _entries(
        self, view: MarketView, account: AccountReport, now: datetime, exiting: set[str]
    ) -> list[Order]:
        """Every strategy's signals -> rules -> Supervisor -> desired size; then the bar's
        candidates are sized together (:mod:`sovereign.trading.sizing`) and ordered."""
        equity = account.equity
        gross = account.gross_exposure / equity if equity > 0 else math.inf
        drawdown = self.supervisor.drawdown(equity)
        candidates: list[_Candidate] = []
        for name, strategy in self.strategies.items():
            held = self.book.held(name)
            for signal in strategy.entries(view, held):
                if signal.symbol in held and signal.symbol not in exiting:
                    continue
                if self.working.is_working(name, signal.symbol):
                    continue  # its entry is still being worked
                cand = self._candidate(view, name, signal, gross, drawdown, now)
                if cand is not None:
                    candidates.append(cand)
                    gross += cand.fraction
                    self.supervisor.record_entry(signal.side, cand.fraction)
        fractions, note = self._portfolio_sizes(view, equity, candidates, exiting)
        orders = []
        for cand in candidates:
            fraction = fractions.get(id(cand), 0.0)
            if fraction <= 0:
                self._skip(view, cand.strategy, cand.signal, note or "sized to zero", cand.effect)
                continue
            order = self._order(view, cand, fraction, equity, note)
            if order is not None:
                orders.append(order)
        return orders

    def _candidate(
        self,
        view: MarketView,
        strategy: str,
        signal: Signal,
        gross: float,
        drawdown: float,
        now: datetime,
    ) -> _Candidate | None:
        """The signal through the rules and the Supervisor, with its desired size; None (and a
        recorded decision) when it does not get that far."""
        j = view.panel.column(signal.symbol)
        price = float(view.close[j])
        atr = float(view.features.atr[view.i, j])
        if not (math.isfinite(price) and price > 0):
            self._skip(view, strategy, signal, "no valid price")
            return None
        if signal.stop_atr is not None and not (math.isfinite(atr) and atr > 0):
            self._skip(view, strategy, signal, "ATR not available yet")
            return None
        effect = RuleSet.apply(
            self._entry_rules[strategy],
            self._context(view, strategy, j, signal.confidence, drawdown),
        )
        if effect.block_days:
            self.supervisor.block(signal.symbol, view.timestamp + timedelta(days=effect.block_days))
        if effect.skip_reason is not None:
            self._skip(view, strategy, signal, effect.skip_reason, effect)
            return None
        check = self.supervisor.check_entry(
            now=now,
            strategy=strategy,
            symbol=signal.symbol,
            confidence=signal.confidence,
            gross_exposure=gross,
            side=signal.side,
        )
        if not check.approved:
            self._skip(view, strategy, signal, check.reason, effect, outcome="blocked")
            return None
        fraction = self._size(view, strategy, signal, effect, check.max_fraction)
        if fraction <= 0:
            self._skip(view, strategy, signal, "no edge at this confidence", effect)
            return None
        return _Candidate(
            strategy=strategy,
            signal=signal,
            j=j,
            price=price,
            atr=atr,
            effect=effect,
            fraction=fraction,
        )

    def _portfolio_sizes(
        self, view: MarketView, equity: float, candidates: list[_Candidate], exiting: set[str]
    ) -> tuple[dict[int, float], str]:
        """Final fractions by ``id(candidate)``: positions sized by a fixed fraction keep it;
        the others are sized together by the portfolio optimiser."""
        fixed = {id(c): c.fraction for c in candidates if c.signal.equity_fraction is not None}
        sized = [c for c in candidates if c.signal.equity_fraction is None]
        if not sized:
            return fixed, ""
        held = np.zeros(view.panel.n_symbols)
        if equity > 0:
            for t in self.book.open.values():
                if t.symbol not in exiting:
                    j = view.panel.column(t.symbol)
                    price = float(view.close[j])
                    mark = price if math.isfinite(price) and price > 0 else t.entry_price
                    held[j] += t.side * t.quantity * mark / equity
        desired: dict[int, float] = {}
        for c in sized:  # two strategies on one symbol: sized together, split pro rata
            desired[c.j] = desired.get(c.j, 0.0) + c.signal.side * c.fraction
        if self.sizer is None:
            self.sizer = PortfolioSizer(view.panel.n_symbols, self.config.sizing)
        try:
            result = self.sizer.size(view.panel.close, view.i, desired=desired, held=held)
        except EngineError as err:
            return fixed, f"portfolio sizing unusable ({err}): no new risk"
        for c in sized:
            total = desired[c.j]
            share = c.signal.side * c.fraction / total if total else 0.0
            fixed[id(c)] = abs(result.fractions.get(c.j, 0.0) * share)
        return fixed, result.note

    def _order(
        self, view: MarketView, cand: _Candidate, fraction: float, equity: float, note: str
    ) -> Order | None:
        strategy, signal, effect = cand.strategy, cand.signal, cand.effect
        coid = make_client_order_id(
            strategy=strategy,
            ruleset_version=self.rules.id,
            symbol=signal.symbol,
            signal_time=view.timestamp,
            leg="entry",
            namespace=self.config.order_namespace,
        )
        if signal.equity_fraction is not None:
            order = Order(
                client_order_id=coid,
                symbol=signal.symbol,
                side=Side.BUY if signal.side > 0 else Side.SELL,
                equity_fraction=fraction,
                strategy=strategy,
                created_at=view.timestamp,
            )
        else:
            qty = math.floor(fraction * equity / cand.price)
            if qty < 1:
                self._skip(view, strategy, signal, "size rounds to zero shares", effect)
                return None
            order = Order(
                client_order_id=coid,
                symbol=signal.symbol,
                side=Side.BUY if signal.side > 0 else Side.SELL,
                quantity=float(qty),
                strategy=strategy,
                created_at=view.timestamp,
            )
        intent = self._intent(view, strategy, signal, effect, cand.atr)
        sent = self.working.start(
            order,
            intent=intent,
            bar=view.i,
            adv=average_daily_volume(
                view.panel.volume, view.i, cand.j, self.config.slicing.adv_window
            ),
            seed=order_seed(coid),
            ruleset_version=self.rules.id,
            namespace=self.config.order_namespace,
            signal_time=view.timestamp,
        )
        if sent is None:
            self._skip(view, strategy, signal, "volume too thin for one share", effect)
            return None
        order = sent
        parent = self.working.parent(strategy, signal.symbol)
        self.book.intents[order.client_order_id] = intent
        self.supervisor.count_order()
        self._decide(
            view,
            strategy,
            signal.symbol,
            "enter",
            "ordered",
            signal.reason,
            confidence=signal.confidence,
            rules=tuple(effect.fired),
            inputs={
                "price": cand.price,
                "atr": cand.atr,
                "desired": round(cand.fraction, 6),
                "fraction": round(fraction, 6),
                **({"sizing": note} if note else {}),
                **(
                    {}
                    if parent is None
                    else {"slices": len(parent.quantities), "unplaced": parent.remainder}
                ),
            },
        )
        return order

    def _size(
        self, view: MarketView, strategy: str, signal: Signal, effect: RuleEffect, cap: float
    ) -> float:
        """Fraction of equity for a new position: fixed, or Kelly-tempered from confidence;
        times the pool allocator's scale for ``strategy``."""
        pool = self.pools.current_scales().get(strategy, 1.0)  # the allocator's share
        if signal.equity_fraction is not None:
            return min(signal.equity_fraction, cap) * effect.scale * pool
        stop = effect.stop_atr_mult if effect.stop_atr_mult is not None else signal.stop_atr
        target = signal.take_profit_atr
        if effect.take_profit_atr_mult is not None:
            target = min(target or math.inf, effect.take_profit_atr_mult)
        payoff = (target / stop) if (target and stop) else 1.5
        p = signal.confidence
        kelly = p - (1.0 - p) / payoff
        fraction = self.config.kelly_fraction * kelly
        if view.regime is Regime.UNCERTAIN:
            fraction *= self.config.uncertain_scale
        return max(0.0, min(cap, fraction)) * effect.scale * pool  # rules scale the capped size

    def _intent(
        self, view: MarketView, strategy: str, signal: Signal, effect: RuleEffect, atr: float
    ) -> Intent:
        stop = signal.stop_atr
        if effect.stop_atr_mult is not None:
            stop = min(stop, effect.stop_atr_mult) if stop is not None else effect.stop_atr_mult
        tp = signal.take_profit_atr
        if effect.take_profit_atr_mult is not None:
            tp = (
                min(tp, effect.take_profit_atr_mult)
                if tp is not None
                else effect.take_profit_atr_mult
            )
        return Intent(
            strategy=strategy,
            symbol=signal.symbol,
            kind="entry",
            side=signal.side,
            reason=signal.reason,
            bar=view.i,
            ruleset_version=self.rules.id,
            atr=atr,
            stop_atr=stop,
            take_profit_atr=tp,
            max_hold_bars=signal.max_hold_bars,
            exit_on_regime_change=signal.exit_on_regime_change,
            regime=view.regime.value,
            confidence=signal.confidence,
            rules=tuple(effect.fired),
        )

    def _context(
        self,
        view: MarketView,
        strategy: str,
        j: int,
        confidence: float,
        drawdown: float,
        *,
        in_position: bool = False,
    ) -> RuleContext:
        f, i = view.features, view.i
        vol_pct = float(f.volume_percentile[i, j])
        atr_pct = float(f.atr_pct[i, j])
        returns = f.returns

        def return_at(lag: int) -> float | None:
            # Rows after ``i`` may exist in a backtest's precomputed features; a negative lag
            # reads them, which is exactly the look-ahead the gate's guard exists to catch.
            row = i - lag
            if not 0 <= row < returns.shape[0]:
                return None
            value = float(returns[row, j])
            return value if math.isfinite(value) else None

        return RuleContext(
            symbol=view.panel.symbols[j],
            strategy=strategy,
            regime=view.regime,
            regime_confidence=view.regime_confidence,
            confidence=confidence,
            volume_percentile=vol_pct if math.isfinite(vol_pct) else None,
            atr_pct=atr_pct if math.isfinite(atr_pct) else None,
            drawdown=drawdown,
            weekday=view.timestamp.weekday(),
            consecutive_losses=self.book.losing_streak.get(strategy, 0),
            in_position=in_position,
            return_at=return_at,
        )

    # ---- events --------------------------------------------------------------------------------

    def _skip(
        self,
        view: MarketView,
        strategy: str,
        signal: Signal,
        reason: str,
        effect: RuleEffect | None = None,
        outcome: str = "skipped",
    ) -> None:
        """Record a candidate that was not traded."""
        self._decide(
            view,
            strategy,
            signal.symbol,
            "enter",
            outcome,
            reason,
            confidence=signal.confidence,
            rules=tuple(effect.fired) if effect is not None else (),
        )

    def _decide(
        self,
        view: MarketView,
        strategy: str,
        symbol: str,
        action: str,
        outcome: str,
        reason: str,
        *,
        confidence: float | None = None,
        rules: tuple[str, ...] = (),
        inputs: dict[str, object] | None = None,
    ) -> None:
        self.sink.emit(
            Decision(
                timestamp=view.timestamp,
                strategy=strategy,
                symbol=symbol,
                action=action,
                outcome=outcome,
                reason=reason,
                confidence=confidence,
                regime=view.regime.value,
                rules_fired=rules,
                inputs={
                    "bar": view.timestamp.isoformat(),
                    "ruleset": self.rules.id,
                    "regime_confidence": round(view.regime_confidence, 4),
                    **(inputs or {}),
                },
            )
        )

    def _transition(self, t: Transition) -> None:
        self.sink.emit(t)
