"""The canary inside a replay: a deployment whose paper drawdown exceeds the gate's backtested
worst drawdown plus the margin is rolled back, the running Trader gets the previous rule set
back, and the rollback is in the improvement log and the audit chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sovereign.app.context import App
from sovereign.app.deploy import deploy
from sovereign.app.replay_improver import ImproverOptions, ReplayImprover
from sovereign.constitution import Constitution
from sovereign.market.synthetic import generate
from sovereign.rules import AddRule, RegimeIs, Rule, RuleSet, ScalePosition
from sovereign.settings import Settings
from sovereign.trading.backtest import BacktestConfig, RegimeConfig, prepare
from sovereign.trading.catalog import build
from sovereign.trading.supervisor import Supervisor
from sovereign.trading.trader import Trader

T0 = datetime(2021, 3, 1, 21, 0, tzinfo=UTC)


def test_the_canary_rolls_back_a_deployment_that_broke_its_promise(home: Path) -> None:
    app = App.open(Settings())
    panel = generate(symbols=4, n_bars=300, seed=3).panel
    trader = Trader(
        strategies=build(["momentum"]),
        supervisor=Supervisor(constitution=Constitution()),
        initial_equity=1e6,
    )
    improver = ReplayImprover(
        app,
        run_id="run-canary",
        panel=panel,
        prepared=prepare(panel, RegimeConfig(min_history=250, refit_every=250), seed=3),
        strategies=("momentum",),
        constitution=Constitution(),
        trader=trader,
        start=T0,
        backtest=BacktestConfig(),
        options=ImproverOptions(canary_margin=0.03),
    )
    rule = Rule(
        name="half-volatile", when=RegimeIs(regime="volatile"), then=ScalePosition(factor=0.5)
    )
    proposal = AddRule(rule=rule, rationale="r", source="heuristic")
    record = deploy(
        app, proposal, {"accepted": True, "expected_max_drawdown": 0.04}, at=T0, baseline_equity=1e6
    )
    improver.adopt_deployment()  # what a cycle does after it deployed
    assert trader.rules.get(rule.id) is not None

    # 6% below the peak is within 4% + 3%: nothing happens.
    for k, equity in enumerate((1.00e6, 1.02e6, 0.96e6)):
        improver.watch(T0 + timedelta(days=k + 1), equity)
    assert improver.log.rollbacks == []
    # 8% below the peak is beyond it: rolled back to the version before the deployment.
    improver.watch(T0 + timedelta(days=5), 0.938e6)
    [rollback] = improver.log.rollbacks
    assert rollback["by"] == "canary" and rollback["to_version"] == record.from_version
    assert "exceeds the expected maximum drawdown 4.00%" in rollback["reason"]
    assert trader.rules.id == RuleSet().id
    assert app.proposals.active_deployments() == []
    improver.watch(T0 + timedelta(days=6), 0.90e6)  # nothing left to watch
    assert len(improver.log.rollbacks) == 1
    assert improver.log.to_json()["rollbacks"][0]["by"] == "canary"
    assert app.audit.verify().ok
