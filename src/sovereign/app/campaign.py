"""`sovereign run`: the autonomous paper campaign.

The default replays the bundled universe through the paper exchange, with the same Trader and
Supervisor as every other mode, driven by the same job list as the live loop on the simulated
clock (:mod:`sovereign.app.replay`), and writes everything it does to the database. A persisted HALT (or the halt file ``<data_dir>/HALT``) makes it refuse to start; a
drawdown halt during the replay flattens, persists HALTED and ends the campaign, because only a
person may resume.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sovereign.app.announce import Announcer
from sovereign.app.backtesting import load_panel
from sovereign.app.cache import prepare_cached
from sovereign.app.context import App
from sovereign.app.killswitch import KillSwitch, halt_file
from sovereign.app.persist import MemorySink
from sovereign.app.replay import REPLAY_ACCOUNT, Progress, Replay
from sovereign.app.replay_improver import ImproverOptions, ReplayImprover
from sovereign.brokers.paper_exchange import PaperConfig, PaperExchange
from sovereign.errors import ConfigError, HaltTrading
from sovereign.market.bars import BarPanel
from sovereign.rules.rule import RuleSet
from sovereign.trading.backtest import BacktestConfig, BacktestResult, RegimeConfig, summarize
from sovereign.trading.catalog import DEFAULT_STRATEGIES, build
from sovereign.trading.events import Transition
from sovereign.trading.loop import BarLoop
from sovereign.trading.supervisor import Supervisor
from sovereign.trading.trader import Trader, TraderConfig

log = logging.getLogger(__name__)

DEFAULT_YEARS = 7


@dataclass(frozen=True, kw_only=True, slots=True)
class CampaignOptions:
    universe: str = "sp500"
    data: Path | None = None
    start: datetime | None = None  # default: DEFAULT_YEARS before the last bar
    days: int | None = None  # simulated calendar days; default: to the last bar
    seed: int = 42
    cash: float = 1_000_000.0
    speed: float = 0.0  # simulated seconds per wall second; 0 = as fast as possible
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    improve_every_days: int = 61  # simulated days between improvement cycles; 0 = none
    improver: ImproverOptions | None = None  # default: from the fields above


@dataclass(frozen=True, kw_only=True)
class CampaignReport:
    run_id: str
    result: BacktestResult
    start: datetime
    end: datetime
    database: str
    stopped: str | None
    counts: dict[str, int] = field(default_factory=dict)
    ruleset_version: int | None = None
    improvement: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)  # job name -> runs on the simulated clock

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "database": self.database,
            "stopped": self.stopped,
            "ruleset_version": self.ruleset_version,
            "counts": self.counts,
            "improvement": self.improvement,
            "jobs": self.jobs,
            **{k: v for k, v in self.result.to_json().items() if k not in ("trades",)},
            "trades": len(self.result.trades),
        }


def _refuse_if_halted(app: App, now: datetime) -> None:
    """Fail closed before anything trades: the kill switch reads the halt file first, then the
    persisted Supervisor state, and says no when either halts or the state cannot be read."""
    decision = KillSwitch(app, app.settings.data_dir).check(now)
    if decision.trade:
        return
    if halt_file(app).exists():
        raise HaltTrading(
            f"the halt file {halt_file(app)} exists: trading is halted. Remove it (and run "
            "`sovereign resume`) when a person has decided to trade again."
        )
    raise HaltTrading(
        f"trading is halted ({decision.reason}). Only a person can lift it: "
        "`sovereign resume --by NAME`."
    )


def run_campaign(
    app: App,
    options: CampaignOptions,
    *,
    panel: BarPanel | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    now: datetime | None = None,
) -> CampaignReport:
    """Replay ``panel`` (default: the options' data) as a paper campaign; see the module doc."""
    started = now or datetime.now(UTC)
    constitution, constitution_sha = app.constitution(now=started)
    _refuse_if_halted(app, started)

    if panel is None:
        panel = load_panel(options.data, options.universe, (), None, None)
    regime_cfg = RegimeConfig()
    prepared = prepare_cached(
        panel, regime_cfg, seed=options.seed, cache_dir=app.settings.data_dir / "cache"
    )
    first, last = _window(panel.timestamps, options)

    run_id = f"run-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    active = app.rules.active()
    if active is None:
        version = app.rules.save_version(
            RuleSet(), reason="initial empty rule set", source="system", at=started
        )
        rules = RuleSet()
    else:
        version, rules = active
    strategies = build(options.strategies, rules.params)
    config = {
        "universe": options.universe,
        "data": str(options.data) if options.data else None,
        "start": panel.timestamps[first].isoformat(),
        "end": panel.timestamps[last].isoformat(),
        "seed": options.seed,
        "cash": options.cash,
        "strategies": list(options.strategies),
        "constitution_sha256": constitution_sha,
        "ruleset_version": version,
        "ruleset_id": rules.id,
    }
    app.memory.record_run_start(
        run_id, started_at=started, mode="paper-replay", seed=options.seed, config=config
    )
    app.audit.append("run.started", {"run_id": run_id, **config}, started)

    supervisor = Supervisor(constitution=constitution)  # a fresh paper account, fresh limits
    warmup = max(s.warmup_bars for s in strategies)
    loop_start = max(0, first - warmup)

    announce = Announcer.open(app)

    def persist_transition(t: Transition) -> None:
        app.save_supervisor(supervisor, t.timestamp, account=REPLAY_ACCOUNT)
        announce.transition(t)

    sink = MemorySink(
        run_id=run_id,
        memory=app.memory,
        audit=app.audit,
        supervisor_store=app.supervisor_store,
        on_transition=persist_transition,
    )
    exchange = PaperExchange(
        panel.symbols, config=PaperConfig(), cash=options.cash, seed=options.seed
    )
    trader = Trader(
        strategies=strategies,
        supervisor=supervisor,
        rules=rules,
        config=TraderConfig(order_namespace=run_id),
        sink=sink,
        initial_equity=options.cash,
    )
    loop = BarLoop(
        panel=panel,
        features=prepared.features,
        regimes=prepared.regimes,
        exchange=exchange,
        trader=trader,
        overlay=prepared.overlay,
    )
    improver = ReplayImprover(
        app,
        run_id=run_id,
        panel=panel,
        prepared=prepared,
        strategies=options.strategies,
        constitution=constitution,
        trader=trader,
        start=panel.timestamps[first].to_pydatetime(),
        backtest=BacktestConfig(cash=options.cash, seed=options.seed),
        options=options.improver
        or ImproverOptions(every_days=options.improve_every_days, seed=options.seed),
        announce=announce,
    )
    replay = Replay(
        app,
        run_id=run_id,
        loop=loop,
        improver=improver,
        sink=sink,
        bars=(loop_start, first, last),
        speed=options.speed,
        on_progress=on_progress,
    )
    try:
        replay.run()
    finally:
        sink.flush()
        app.save_supervisor(supervisor, replay.clock.now(), account=REPLAY_ACCOUNT)
        announce.close()
    stopped = replay.stopped
    result = summarize(loop, warmup=first - loop_start)
    end = loop.panel.timestamps[loop_start + len(loop.equity) - 1].to_pydatetime()
    as_json = result.to_json()
    jobs = dict(sorted(Counter(r.name for r in replay.runs if r.outcome == "ran").items()))
    log.info("replay %s job runs: %s", run_id, jobs)
    summary = {
        "final_equity": result.final_equity,
        "metrics": as_json["metrics"],
        "per_strategy": as_json["per_strategy"],
        "stopped": stopped,
        "trades": len(result.trades),
        "improvement": improver.log.to_json(),
    }
    finished = now or datetime.now(UTC)
    app.memory.record_run_finish(run_id, finished_at=finished, summary=summary)
    app.audit.append(
        "run.finished",
        {
            "run_id": run_id,
            "final_equity": round(result.final_equity, 2),
            "trades": len(result.trades),
            "stopped": stopped,
        },
        finished,
    )
    return CampaignReport(
        run_id=run_id,
        result=result,
        start=panel.timestamps[first].to_pydatetime(),
        end=end,
        database=app.settings.db_url,
        stopped=stopped,
        counts=dict(sink.counts),
        ruleset_version=version,
        improvement=improver.log.to_json(),
        jobs=jobs,
    )


def _window(index: Any, options: CampaignOptions) -> tuple[int, int]:
    """Bar indices [first, last] of the campaign inside ``index``."""
    n = len(index)
    start = options.start or (index[-1].to_pydatetime() - timedelta(days=365 * DEFAULT_YEARS))
    first = int(index.searchsorted(start, side="left"))
    if first >= n:
        raise ConfigError(
            f"--start {start:%Y-%m-%d} is after the data's last bar {index[-1]:%Y-%m-%d}"
        )
    if options.days is None:
        return first, n - 1
    if options.days <= 0:
        raise ConfigError(f"--days must be positive, got {options.days}")
    end = index[first].to_pydatetime() + timedelta(days=options.days)
    last = int(index.searchsorted(end, side="right")) - 1
    return first, max(first, min(last, n - 1))
