"""Fixtures for the bot tests: an isolated home (as in tests/app), a real SQLite app with rows
written through the stores, the Bot API stub on loopback, and the real PTB application polling
it from a background thread."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sovereign.app.context import App
from sovereign.app.controls import CONTROLS_KEY
from sovereign.app.deploy import deploy, reject
from sovereign.bots.auth import AllowList
from sovereign.bots.confirm import Confirmations
from sovereign.bots.telegram import BotThread, SovereignBot, build_application
from sovereign.constitution import default_path
from sovereign.rules import AddRule, AtrAbove, RegimeIs, Rule, ScalePosition, SkipTrade
from sovereign.settings import Settings
from sovereign.trading.supervisor import Supervisor
from tests.bots.botapi_stub import BotApiStub

ALICE, BOB, MALLORY = 111, 222, 666
NOW = datetime(2024, 1, 3, 21, 0, tzinfo=UTC)
RUN = "run-test"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with its own data dir and constitution file, and no stray settings."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("SOVEREIGN_"):
            monkeypatch.delenv(key)
    constitution = tmp_path / "constitution.toml"
    constitution.write_bytes(default_path().read_bytes())
    monkeypatch.setenv("SOVEREIGN_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SOVEREIGN_CONSTITUTION_PATH", str(constitution))
    return tmp_path


def seed_app(app: App) -> None:
    """A small but complete history, written through the stores: a finished paper-replay run
    with equity over two days and open positions, two deployments (rule set versions 1..3),
    one rejection, the Supervisor's pools, a clean control run, the pinned constitution."""
    app.constitution(now=NOW)
    start = NOW - timedelta(days=1)
    app.memory.record_run_start(RUN, started_at=start, mode="paper-replay", seed=1)
    app.memory.add_equity_snapshots(
        [
            {"run_id": RUN, "timestamp": start, "equity": 1_000_000.0, "cash": 1_000_000.0},
            {
                "run_id": RUN,
                "timestamp": start + timedelta(hours=1),
                "equity": 1_002_000.0,
                "cash": 900_000.0,
                "drawdown": 0.0,
                "gross_exposure": 100_200.0,
            },
            {
                "run_id": RUN,
                "timestamp": NOW - timedelta(hours=2),
                "equity": 1_005_000.0,
                "cash": 800_000.0,
                "drawdown": 0.001,
                "gross_exposure": 201_000.0,
            },
            {
                "run_id": RUN,
                "timestamp": NOW,
                "equity": 1_010_000.0,
                "cash": 800_000.0,
                "drawdown": 0.0,
                "gross_exposure": 212_100.0,
                "supervisor_state": "NORMAL",
            },
        ]
    )
    app.memory.add_position_snapshots(
        [
            {
                "run_id": RUN,
                "timestamp": NOW - timedelta(hours=2),
                "symbol": "OLD",
                "strategy": "momentum",
                "quantity": 5.0,
                "avg_price": 10.0,
            },
            {
                "run_id": RUN,
                "timestamp": NOW,
                "symbol": "AAPL",
                "strategy": "momentum",
                "quantity": 100.0,
                "avg_price": 150.0,
                "market_price": 155.0,
                "unrealized_pnl": 500.0,
            },
            {
                "run_id": RUN,
                "timestamp": NOW,
                "symbol": "MSFT",
                "strategy": "regime_entry",
                "quantity": -20.0,
                "avg_price": 300.0,
            },
            {
                "run_id": RUN,
                "timestamp": NOW,
                "symbol": "FLAT",
                "strategy": "momentum",
                "quantity": 0.0,
                "avg_price": 1.0,
            },
        ]
    )
    app.memory.record_run_finish(
        RUN,
        finished_at=NOW,
        summary={
            "final_equity": 1_010_000.0,
            "per_strategy": {
                "momentum": {
                    "trades": 4.0,
                    "realized_pnl": 7000.0,
                    "pool_equity": 507_000.0,
                    "pool_return": 0.014,
                    "win_rate": 0.5,
                    "killed": 0.0,
                },
                "regime_entry": {
                    "trades": 2.0,
                    "realized_pnl": -1000.0,
                    "pool_equity": 499_000.0,
                    "pool_return": -0.002,
                    "win_rate": 0.0,
                    "killed": 1.0,
                },
            },
            "stopped": None,
            "trades": 6,
        },
    )
    constitution, _ = app.constitution()
    sup = Supervisor(constitution=constitution)
    sup.add_pool("momentum", capital=500_000.0, max_loss=50_000.0)
    sup.add_pool("regime_entry", capital=500_000.0, max_loss=50_000.0)
    app.save_supervisor(sup, NOW)
    for i, (name, when, then) in enumerate(
        [
            ("no-volatile", RegimeIs(regime="volatile"), SkipTrade(reason="v")),
            ("wild-atr", AtrAbove(pct=5.0), ScalePosition(factor=0.5)),
        ]
    ):
        proposal = AddRule(
            rule=Rule(name=name, when=when, then=then), rationale="r", source="human"
        )
        deploy(
            app,
            proposal,
            {"accepted": True, "expected_max_drawdown": 0.05},
            at=NOW - timedelta(hours=5 - i),
        )
    bad = AddRule(
        rule=Rule(name="sneaky", when=AtrAbove(pct=9.0), then=SkipTrade(reason="x")),
        rationale="r",
        source="llm",
    )
    reject(
        app,
        bad,
        stage="validate",
        at=NOW - timedelta(hours=1),
        violations=[{"code": "CONST_MAX_RULES", "field": "rules", "message": "too many"}],
    )
    app.supervisor_store.save_state(
        CONTROLS_KEY,
        {
            "at": NOW.isoformat(),
            "ok": True,
            "quick": True,
            "controls": 40,
            "negatives_accepted": [],
            "positives_rejected": [],
        },
        NOW,
    )


@pytest.fixture
def app(home: Path) -> Iterator[App]:
    ctx = App.open(Settings())
    seed_app(ctx)
    yield ctx
    ctx.dispose()


@pytest.fixture
def stub() -> Iterator[BotApiStub]:
    server = BotApiStub().start()
    yield server
    server.close()


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def bot(app: App, stub: BotApiStub, clock: FakeClock) -> Iterator[SovereignBot]:
    served = SovereignBot(
        app,
        allow=AllowList(frozenset({ALICE, BOB})),
        confirmations=Confirmations(clock=clock),
    )
    application = build_application(served, token=stub.token, base_url=stub.base_url)
    runner = BotThread(application, poll_timeout=1.0).start()
    yield served
    runner.stop()
