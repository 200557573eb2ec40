"""`sovereign run --broker alpaca`: the live loop on the wall clock.

The same Trader and Supervisor as the replay, driven by the one job list
(:func:`sovereign.app.jobs.build_jobs`) on a :class:`~sovereign.app.scheduler.WallClockDriver`,
against a real broker (Alpaca) and its market data.

Start: the constitution pin is enforced, the persisted Supervisor loaded, and the kill switch
asked (a halt file or a persisted HALT refuses the start with :class:`HaltTrading`); the broker is
reconciled (:class:`~sovereign.app.reconcile.Reconciler`, over every earlier live run of the same
account) BEFORE any order; the run is recorded.

Trading cycle (every ``poll``): fills since the last seen one go to the Trader (deduplicated by
fill id) and into memory; orders that died are reported; bars are fetched and, when a bar has
closed since the last one processed, features and regimes are computed for the panel (the regime
path cached on disk), the Trader steps at the last bar and every order goes out through
:meth:`Reconciler.submit` (a timed-out submit is looked up by client order id before any retry).
Each order is written to memory as ``pending_new`` *before* it is sent, so a process killed
between the broker's acknowledgement and the next flush still knows its order: the restarted
reconciliation looks it up instead of flagging an order "we never placed". Client order ids are
derived with the *account* as namespace (not the run id), so a restarted process that sees the
same signal derives the same id and the broker's idempotency (and the adapter's look-up) refuses
to double it.

No new risk while the kill switch says no (the Trader is halted and only flattens) or while the
Reconciler's gate is shut (non-reduce-only orders are refused; exits still go out).
SIGINT/SIGTERM stop the driver gracefully: the sink is flushed, the Supervisor saved and the run's
finish recorded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sovereign.app.announce import Announcer
from sovereign.app.cache import prepare_cached
from sovereign.app.context import App
from sovereign.app.jobs import Every, Job, JobContext, JobFunctions, Schedule, build_jobs
from sovereign.app.killswitch import KillSwitch
from sovereign.app.live_state import SavedBook
from sovereign.app.persist import MemorySink
from sovereign.app.reconcile import Reconciler
from sovereign.app.scheduler import WallClockDriver
from sovereign.brokers.alpaca.parsing import parse_timeframe
from sovereign.brokers.models import (
    AccountReport,
    Fill,
    Order,
    OrderReport,
    OrderStatus,
)
from sovereign.brokers.port import Broker
from sovereign.errors import BrokerUnavailable, ConfigError, HaltTrading
from sovereign.market.bars import BarPanel
from sovereign.market.session import MarketCalendar, nyse
from sovereign.rules.rule import RuleSet
from sovereign.trading.backtest import Prepared, RegimeConfig
from sovereign.trading.catalog import DEFAULT_STRATEGIES, build
from sovereign.trading.events import EquityPoint, Event, OrderSubmitted, Transition
from sovereign.trading.strategy import MarketView
from sovereign.trading.supervisor import SupervisorState
from sovereign.trading.trader import Trader, TraderConfig

log = logging.getLogger(__name__)

LIVE_MODES = ("live-alpaca", "paper-alpaca", "live-ibkr")
PENDING = "pending_new"  # an order written ahead of its submission (not an OrderStatus value)
DRIVER_NAME = "sovereign-live"


class BarSource(Protocol):
    """Market data for the live loop (:class:`~sovereign.brokers.alpaca.AlpacaData`)."""

    def bars(
        self,
        symbols: Sequence[str],
        start: datetime,
        end: datetime | None = None,
        *,
        timeframe: str = "1Day",
        gap_tolerance: float | None = 10.0,
    ) -> BarPanel: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class LiveOptions:
    """How the live loop trades.

    ``account``: the order namespace and the key that ties restarts together (stable across
    runs of one account). ``params``: operator parameter overrides (strategy -> name -> value) on
    top of the active rule set's. ``poll``: how often the trading cycle looks for a new bar.
    ``timeframe``: Alpaca bar timeframe ("1Day", "1Hour", "5Min", ...). ``lookback``: history
    fetched (calendar time before the start; fixed for the life of the process so bar indices
    only grow). ``session_only``: the trading cycle and reconciliation run only during NYSE
    sessions. ``improve_min_bars``: an improvement cycle needs at least this many bars.
    """

    symbols: tuple[str, ...]
    account: str = "alpaca-paper"
    mode: str = "paper-alpaca"
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    params: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    poll: timedelta = timedelta(seconds=60)
    timeframe: str = "1Day"
    lookback: timedelta = timedelta(days=1100)
    session_only: bool = True
    reconcile_every: timedelta = timedelta(minutes=5)
    heartbeat_every: timedelta = timedelta(minutes=1)
    improve: bool = True
    improve_min_bars: int = 504
    seed: int = 42

    def __post_init__(self) -> None:
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ConfigError(f"the live loop needs unique symbols, got {list(self.symbols)}")
        if self.poll <= timedelta(0):
            raise ConfigError(f"the poll interval must be positive, got {self.poll}")
        if self.mode not in LIVE_MODES:
            raise ConfigError(f"mode must be one of {LIVE_MODES}, got {self.mode!r}")
        parse_timeframe(self.timeframe)  # raises on a bad timeframe


@dataclass(frozen=True, kw_only=True, slots=True)
class CycleReport:
    """One trading cycle: ``bar`` is the bar decided on (None: no new bar closed)."""

    at: datetime
    bar: datetime | None
    equity: float | None
    orders: int
    fills: int
    state: str
    note: str = ""


@dataclass(kw_only=True)
class LiveReport:
    run_id: str
    account: str
    started: datetime
    finished: datetime | None = None
    cycles: int = 0
    orders: int = 0
    fills: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    positions: dict[str, float] = field(default_factory=dict)  # the Trader's book, signed shares

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "account": self.account,
            "started": self.started.isoformat(),
            "finished": None if self.finished is None else self.finished.isoformat(),
            "cycles": self.cycles,
            "orders": self.orders,
            "fills": self.fills,
            "counts": self.counts,
            "positions": self.positions,
        }


class _DedupSink:
    """Forwards to a :class:`MemorySink`, dropping fills already recorded (by fill id)."""

    def __init__(self, inner: MemorySink, recorded: set[str]) -> None:
        self.inner = inner
        self.recorded = recorded

    def emit(self, event: Event) -> None:
        if isinstance(event, Fill):
            if event.fill_id in self.recorded:
                return
            self.recorded.add(event.fill_id)
        self.inner.emit(event)

    def flush(self) -> None:
        self.inner.flush()


def earlier_live_runs(app: App, account: str) -> list[str]:
    """Run ids of earlier live runs of ``account``, newest first."""
    return [
        r.run_id
        for r in app.memory.runs()
        if r.mode in LIVE_MODES and (r.config or {}).get("account") == account
    ]


def last_closed_bar(
    panel: BarPanel, now: datetime, timeframe: str, calendar: MarketCalendar
) -> int | None:
    """Index of the last bar of ``panel`` that has closed at ``now`` (None: none has).

    Intraday bars are stamped at their close; a daily bar (stamped 00:00 UTC of its session
    date) closes at its session's close.
    """
    _, unit = parse_timeframe(timeframe)
    for i in range(panel.n_bars - 1, -1, -1):
        ts = panel.timestamps[i].to_pydatetime()
        if unit in ("Min", "Hour"):
            closed = ts <= now
        else:
            session = calendar.session_on(ts.date())
            closed = (session.close if session is not None else ts + timedelta(days=1)) <= now
        if closed:
            return i
    return None


class LiveLoop:
    """The live account's state and its job functions. Build with :meth:`start`."""

    def __init__(
        self,
        app: App,
        options: LiveOptions,
        *,
        broker: Broker,
        data: BarSource,
        now: datetime,
        calendar: MarketCalendar | None = None,
        on_cycle: Callable[[CycleReport], None] | None = None,
    ) -> None:
        self.app = app
        self.options = options
        self.broker = broker
        self.data = data
        self.calendar = calendar or nyse()
        self.on_cycle = on_cycle
        self.lock = threading.Lock()
        self.killswitch = KillSwitch(app, app.settings.data_dir)
        self.constitution, self.constitution_sha = app.constitution(now=now)
        self.supervisor = app.load_supervisor(self.constitution, account=options.account)
        decision = self.killswitch.check(now)
        if not decision.trade:
            raise HaltTrading(
                f"refusing to start live trading: {decision.reason}. A person removes the halt "
                "file and runs `sovereign resume --by NAME` to trade again."
            )
        self.run_id = f"live-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        self.earlier = earlier_live_runs(app, options.account)
        active = app.rules.active()
        if active is None:
            self.ruleset_version = app.rules.save_version(
                RuleSet(), reason="initial empty rule set", source="system", at=now
            )
            rules = RuleSet()
        else:
            self.ruleset_version, rules = active
        params = {k: dict(v) for k, v in rules.params.items()}
        for name, values in options.params.items():
            params.setdefault(name, {}).update(values)
        self.fetch_start = now - options.lookback
        config = {
            "account": options.account,
            "symbols": list(options.symbols),
            "strategies": list(options.strategies),
            "params": params,
            "timeframe": options.timeframe,
            "poll_seconds": options.poll.total_seconds(),
            "session_only": options.session_only,
            "seed": options.seed,
            "broker": getattr(broker, "name", type(broker).__name__),
            "constitution_sha256": self.constitution_sha,
            "ruleset_version": self.ruleset_version,
            "ruleset_id": rules.id,
            "earlier_runs": self.earlier,
        }
        app.memory.record_run_start(
            self.run_id, started_at=now, mode=options.mode, seed=options.seed, config=config
        )
        app.audit.append("run.started", {"run_id": self.run_id, **config}, now)
        self.reconciler = Reconciler(
            app,
            broker,
            run_id=self.run_id,
            run_ids=self.earlier,
            key=f"reconciliation:{options.account}",
        )
        try:
            self.reconciler.run(now)  # before any order
        except BrokerUnavailable as err:
            app.memory.record_run_finish(
                self.run_id, finished_at=now, summary={"stopped": f"not reconciled: {err}"}
            )
            app.audit.append(
                "run.finished", {"run_id": self.run_id, "stopped": "not reconciled"}, now
            )
            raise

        recorded = {
            f.fill_id for run in (self.run_id, *self.earlier) for f in app.memory.fills(run_id=run)
        }
        self.memory_sink = MemorySink(
            run_id=self.run_id,
            memory=app.memory,
            audit=app.audit,
            supervisor_store=app.supervisor_store,
            on_transition=self._persist_transition,
        )
        self.sink = _DedupSink(self.memory_sink, recorded)
        account = broker.account()
        self.trader = Trader(
            strategies=build(options.strategies, params),
            supervisor=self.supervisor,
            rules=rules,
            config=TraderConfig(order_namespace=options.account),
            sink=self.sink,
            initial_equity=account.equity,
        )
        self.report = LiveReport(run_id=self.run_id, account=options.account, started=now)
        self.panel: BarPanel | None = None
        self.prepared: Prepared | None = None
        self.last_bar: datetime | None = None
        self.last_i = 0
        self.fills_from: datetime = self.fetch_start
        self.seen_fills: set[str] = set()
        self.pending_fills: dict[str, Fill] = {}
        self.open_orders: set[str] = set()
        self.saved = SavedBook(app, options.account, self.calendar)
        restored = self.saved.load()
        if restored is not None:
            self.trader.book = restored.book
            self.fills_from = max(self.fills_from, restored.fills_from)
            self.seen_fills = set(restored.seen_fills)
            self.open_orders = set(restored.open_orders)
        self.equity = account.equity
        self._closed = False
        self.announce = Announcer.open(app)  # the bot and notifications, when configured

    # ---- job list --------------------------------------------------------------------

    def jobs(self) -> tuple[Job, ...]:
        """The default job list with the live functions; the trading cycle polls every
        ``options.poll`` (and both it and reconciliation are session-bound only with
        ``session_only``)."""
        o = self.options
        base = build_jobs(
            JobFunctions(
                trading_cycle=self.trading_cycle,
                end_of_day=self.end_of_day,
                improvement=self.improvement,
                negative_control=self.negative_control,
                reconcile=self.reconcile,
                heartbeat=self.heartbeat,
                health=self.health,
            ),
            Schedule(reconcile_every=o.reconcile_every, heartbeat_every=o.heartbeat_every),
        )
        out = []
        for job in base:
            if job.name == "trading_cycle":
                job = replace(job, trigger=Every(interval=o.poll), session_only=o.session_only)
            elif job.name == "reconcile":
                job = replace(job, session_only=o.session_only)
            out.append(job)
        return tuple(out)

    # ---- jobs ------------------------------------------------------------------------

    def trading_cycle(self, ctx: JobContext) -> None:
        with self.lock:
            if self._closed:
                return
            report = self._cycle(ctx.now)
        self.report.cycles += 1
        if self.on_cycle is not None:
            self.on_cycle(report)

    def reconcile(self, ctx: JobContext) -> None:
        with self.lock:
            if self._closed:
                return
            self.memory_sink.flush()  # reconcile against everything we know
            try:
                report = self.reconciler.run(ctx.now)
            except BrokerUnavailable as err:
                log.error("reconciliation failed: %s (no new orders until it succeeds)", err)
                return
        if report.blocking:
            self.announce.reconciliation_mismatch(
                "; ".join(i.message for i in report.blocking[:3])
                + (f" (+{len(report.blocking) - 3} more)" if len(report.blocking) > 3 else "")
            )

    def heartbeat(self, ctx: JobContext) -> None:
        self.app.supervisor_store.save_state(
            "live:heartbeat",
            {
                "run_id": self.run_id,
                "at": ctx.now.isoformat(),
                "cycles": self.report.cycles,
                "equity": self.equity,
                "state": self.supervisor.state.value,
            },
            ctx.now,
        )

    def health(self, ctx: JobContext) -> None:
        decision = self.killswitch.check(ctx.now)
        if not decision.trade:
            log.warning("health: no new risk: %s", decision.reason)

    def end_of_day(self, ctx: JobContext) -> None:
        with self.lock:
            if self._closed:
                return
            self.memory_sink.flush()
            self.app.save_supervisor(self.supervisor, ctx.now, account=self.options.account)

    def negative_control(self, ctx: JobContext) -> None:
        """The weekly control run (quick markets): an accepted negative control freezes
        automatic deployment until a person clears it."""
        from sovereign.app.controls import run_controls

        report = run_controls(self.app, now=ctx.now, quick=True)
        if not report.ok:
            log.critical("controls failed: %s", report.to_json()["negatives_accepted"])

    def improvement(self, ctx: JobContext) -> None:
        """The daily improvement cycle over the fetched panel (skipped with too little history)."""
        from sovereign.app.improvement import ImprovementInputs, run_improvement

        panel = self.panel
        if not self.options.improve or panel is None:
            return
        if panel.n_bars < self.options.improve_min_bars:
            log.info(
                "improvement skipped: %d bars of history, %d needed",
                panel.n_bars,
                self.options.improve_min_bars,
            )
            return
        with self.lock:
            self.memory_sink.flush()  # the cycle studies the trades recorded so far
        inputs = ImprovementInputs(
            panel=panel,
            prepared=self.prepared,
            strategies=self.options.strategies,
            constitution=self.constitution,
            operator_params={k: dict(v) for k, v in self.options.params.items()},
            seed=self.options.seed,
            run_id=self.run_id,
            equity=self.equity,
        )
        cycle_id = f"{self.options.account}-{ctx.now:%Y%m%d}"
        run_improvement(
            self.app, inputs, cycle_id=cycle_id, now=ctx.now, on_notify=self.announce.cycle
        )
        active = self.app.rules.active()
        with self.lock:
            if active is not None and active[1].id != self.trader.rules.id:
                version, rules = active
                self.trader.set_rules(rules)
                self.trader.set_params(
                    {
                        **{k: dict(v) for k, v in rules.params.items()},
                        **{k: dict(v) for k, v in self.options.params.items()},
                    }
                )
                log.info(
                    "improvement: rule set v%d (%s) active from the next bar", version, rules.id
                )

    # ---- the trading cycle -----------------------------------------------------------

    def _cycle(self, now: datetime) -> CycleReport:
        fills = self._take_fills()
        self._report_dead_orders()
        decision = self.killswitch.check(now)
        if not decision.trade and self.supervisor.state is not SupervisorState.HALTED:
            self.trader.halt(now, decision.reason)  # a person's /halt, or the halt file
        elif decision.trade and self.supervisor.state is SupervisorState.HALTED:
            # A person resumed while this process ran: the persisted state is no longer
            # HALTED (a halt by this process is persisted the moment it happens).
            t = self.supervisor.resume(now, "a person (persisted resume)")
            if t is not None:
                self._persist_transition(t)
        panel = self.data.bars(
            list(self.options.symbols), self.fetch_start, timeframe=self.options.timeframe
        )
        i = last_closed_bar(panel, now, self.options.timeframe, self.calendar)
        bar = None if i is None else panel.timestamps[i].to_pydatetime()
        if i is None or (self.last_bar is not None and bar is not None and bar <= self.last_bar):
            self.memory_sink.flush()
            self._save_book(now)  # fills may have changed it
            return CycleReport(
                at=now,
                bar=None,
                equity=self.equity,
                orders=0,
                fills=fills,
                state=self.supervisor.state.value,
                note="no new bar",
            )
        assert bar is not None  # noqa: S101 - i is not None
        if i < panel.n_bars - 1:
            panel = panel.slice(0, i + 1)  # a bar still forming is not decided on
        self.panel = panel
        self.prepared = prepare_cached(
            panel,
            RegimeConfig(),
            seed=self.options.seed,
            cache_dir=self.app.settings.data_dir / "cache",
        )
        account = self.broker.account()
        self.equity = account.equity
        view = MarketView(
            i=i,
            timestamp=bar,
            panel=panel,
            features=self.prepared.features,
            regime=self.prepared.regimes.regime[i],
            regime_confidence=float(self.prepared.regimes.confidence[i]),
            prev_regime=self.prepared.regimes.regime[i - 1]
            if i > 0
            else self.prepared.regimes.regime[i],
            overlay=self.prepared.overlay,
        )
        self.last_i = i
        if self.saved.needs_rebase:
            self.saved.rebase(self.trader, panel, i)
        orders = self.trader.step(view, account, now)
        sent = sum(self._send(order, now) for order in orders)
        fills += self._feed_fills()  # fills of orders the broker already had (a restart)
        self.last_bar = bar
        self._equity_point(account, now)
        self.memory_sink.flush()
        self.app.save_supervisor(self.supervisor, now, account=self.options.account)
        self._save_book(now)
        self.report.orders += sent
        note = "" if self.reconciler.may_trade() else "not reconciled: exits only"
        if not decision.trade:
            note = f"no new risk: {decision.reason}"
        return CycleReport(
            at=now,
            bar=bar,
            equity=account.equity,
            orders=sent,
            fills=fills,
            state=self.supervisor.state.value,
            note=note,
        )

    def _save_book(self, now: datetime) -> None:
        self.saved.save(
            run_id=self.run_id,
            trader=self.trader,
            open_orders=self.open_orders,
            fills_from=self.fills_from,
            booked_fills=self.seen_fills - set(self.pending_fills),
            last_bar=self.last_bar,
            now=now,
        )

    def _send(self, order: Order, now: datetime) -> int:
        """Write ``order`` ahead, submit it through the Reconciler's gate; 1 if it went out."""
        self.app.memory.add_orders([self._order_row(order, now, PENDING, "submitting")])
        try:
            report = self.reconciler.submit(order)
        except HaltTrading as err:
            report = _refused(order, str(err), now)
        except BrokerUnavailable as err:
            # Never resubmitted blindly: the pending row makes the next reconciliation look it up.
            log.error("order %s not confirmed: %s", order.client_order_id, err)
            self.sink.emit(
                OrderSubmitted(
                    order=order,
                    timestamp=now,
                    ruleset_version=self.trader.rules.id,
                    status=PENDING,
                    reason=f"unconfirmed: {err}",
                )
            )
            return 0
        self.sink.emit(
            OrderSubmitted(
                order=order,
                timestamp=now,
                ruleset_version=self.trader.rules.id,
                status=report.status.value,
                reason=report.reason,
            )
        )
        if report.status.is_open:
            self.open_orders.add(order.client_order_id)
        elif report.status is not OrderStatus.FILLED:
            self.trader.on_report(report)
        return 0 if report.status is OrderStatus.REJECTED else 1

    def _take_fills(self) -> int:
        """Read the broker's new fills and feed those of the Trader's orders; returns how many."""
        for fill in self.broker.fills_since(self.fills_from):
            if fill.fill_id in self.seen_fills:
                continue
            self.seen_fills.add(fill.fill_id)
            self.fills_from = max(self.fills_from, fill.timestamp)
            self.pending_fills[fill.fill_id] = fill
        return self._feed_fills()

    def _feed_fills(self) -> int:
        """Fills whose order the Trader knows go to it, oldest first; the others wait (after a
        restart the Trader re-derives an order's intent only when it sees its signal again, and
        a fill of an order that is not ours is the reconciler's to record)."""
        taken = 0
        for fill in sorted(self.pending_fills.values(), key=lambda f: f.timestamp):
            if fill.client_order_id in self.trader.book.intents:
                del self.pending_fills[fill.fill_id]
                self.trader.on_fill(fill, self.last_i)
                taken += 1
        self.report.fills += taken
        return taken

    def _report_dead_orders(self) -> None:
        for coid in sorted(self.open_orders):
            report = self.broker.get_order(coid)
            if report is None or not report.status.is_open:
                self.open_orders.discard(coid)
                if report is not None:
                    self.trader.on_report(report)

    def _equity_point(self, account: AccountReport, now: datetime) -> None:
        self.sink.emit(
            EquityPoint(
                timestamp=now,
                equity=account.equity,
                cash=account.cash,
                drawdown=self.supervisor.drawdown(account.equity),
                gross_exposure=account.gross_exposure,
                state=self.supervisor.state.value,
            )
        )

    def _order_row(self, order: Order, now: datetime, status: str, reason: str) -> dict[str, Any]:
        return {
            "client_order_id": order.client_order_id,
            "run_id": self.run_id,
            "strategy": order.strategy,
            "symbol": order.symbol,
            "side": order.side.value,
            "quantity": order.quantity,
            "equity_fraction": order.equity_fraction,
            "order_type": order.order_type.value,
            "limit_price": order.limit_price,
            "status": status,
            "submitted_at": now,
            "reason": reason,
            "ruleset_version": self.trader.rules.id,
        }

    def _persist_transition(self, t: Transition) -> None:
        self.app.save_supervisor(self.supervisor, t.timestamp, account=self.options.account)
        self.announce.transition(t)

    # ---- shutdown --------------------------------------------------------------------

    def close(self, now: datetime) -> LiveReport:
        """Flush, save the Supervisor, record the run's finish. Idempotent."""
        with self.lock:
            if self._closed:
                return self.report
            self._closed = True
            self.announce.close()
            self.memory_sink.flush()
            self.app.save_supervisor(self.supervisor, now, account=self.options.account)
            self.report.finished = now
            self.report.counts = dict(self.memory_sink.counts)
            positions: dict[str, float] = {}
            for t in self.trader.book.open.values():
                positions[t.symbol] = positions.get(t.symbol, 0.0) + t.side * t.quantity
            self.report.positions = positions
            summary = {**self.report.to_json(), "equity": _finite(self.equity)}
            self.app.memory.record_run_finish(self.run_id, finished_at=now, summary=summary)
            self.app.audit.append(
                "run.finished",
                {
                    "run_id": self.run_id,
                    "cycles": self.report.cycles,
                    "orders": self.report.orders,
                    "fills": self.report.fills,
                },
                now,
            )
        return self.report


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _refused(order: Order, reason: str, now: datetime) -> OrderReport:
    return OrderReport(
        client_order_id=order.client_order_id,
        broker_order_id="",
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        filled_quantity=0.0,
        avg_fill_price=None,
        status=OrderStatus.REJECTED,
        timestamp=now,
        reason=reason,
        strategy=order.strategy,
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def run_live(
    app: App,
    options: LiveOptions,
    *,
    broker: Broker,
    data: BarSource,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] = _utc_now,
    on_cycle: Callable[[CycleReport], None] | None = None,
    handle_signals: bool = True,
    calendar: MarketCalendar | None = None,
) -> LiveReport:
    """Run the live loop until SIGINT/SIGTERM (with ``handle_signals``) or ``stop`` is set.

    Raises :class:`HaltTrading` when the kill switch refuses the start, and
    :class:`BrokerUnavailable` when the first reconciliation cannot reach the broker.
    """
    loop = LiveLoop(
        app, options, broker=broker, data=data, now=clock(), calendar=calendar, on_cycle=on_cycle
    )

    def shut_down() -> None:
        loop.close(clock())

    driver = WallClockDriver(
        loop.jobs(),
        database_url=app.settings.db_url,
        on_shutdown=shut_down,
        calendar=calendar,
        clock=clock,
        name=DRIVER_NAME,
    )
    try:
        asyncio.run(_drive(driver, stop, handle_signals=handle_signals))
    finally:
        loop.close(clock())
    return loop.report


async def _drive(
    driver: WallClockDriver, stop: threading.Event | None, *, handle_signals: bool
) -> None:
    event = asyncio.Event()

    async def watch() -> None:
        while stop is not None and not stop.is_set():
            await asyncio.sleep(0.05)
        if stop is not None:
            event.set()

    watcher = asyncio.create_task(watch())
    try:
        await driver.run(stop=event, handle_signals=handle_signals)
    finally:
        watcher.cancel()


__all__ = [
    "LIVE_MODES",
    "BarSource",
    "CycleReport",
    "LiveLoop",
    "LiveOptions",
    "LiveReport",
    "earlier_live_runs",
    "last_closed_bar",
    "run_live",
]
