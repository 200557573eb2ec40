"""The application's improvement services: the validator's history comes from the database, so
the daily change budget and the family blacklist survive a restart; a whole cycle runs on a real
SQLite file with the real validator, gate and deployment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sovereign.app import deploy as deployment
from sovereign.app.context import App
from sovereign.app.improvement import AppServices, ImprovementInputs, run_improvement
from sovereign.constitution import Constitution, default_path
from sovereign.market.synthetic import generate
from sovereign.rules import AddRule, AtrAbove, Rule, ScalePosition, parse_proposal
from sovereign.settings import Settings
from sovereign.trading.backtest import Prepared, RegimeConfig, prepare
from sovereign.trading.catalog import DEFAULT_STRATEGIES

NOW = datetime(2021, 6, 1, 21, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def market() -> tuple[object, Prepared]:
    panel = generate(symbols=6, n_bars=900, seed=11, start="2018-01-01").panel
    return panel, prepare(panel, RegimeConfig(min_history=250, refit_every=250), seed=11)


def open_app(home: Path) -> App:
    return App.open(
        Settings(data_dir=home / "var", constitution_path=default_path(), _env_file=None)  # type: ignore[call-arg]
    )


def inputs(market: tuple[object, Prepared]) -> ImprovementInputs:
    panel, prepared = market
    return ImprovementInputs(
        panel=panel,  # type: ignore[arg-type]
        prepared=prepared,
        strategies=DEFAULT_STRATEGIES,
        constitution=Constitution(),
    )


def scale_rule(pct: float) -> AddRule:
    return AddRule(
        rule=Rule(name=f"atr-{pct}", when=AtrAbove(pct=pct), then=ScalePosition(factor=0.5)),
        rationale="losses cluster at high ATR",
        source="heuristic",
    )


def passing_report(proposal: AddRule) -> dict[str, object]:
    return {"accepted": True, "proposal_id": proposal.id, "expected_max_drawdown": 0.05}


def test_daily_change_budget_survives_a_restart(tmp_path: Path, market: tuple) -> None:
    app = open_app(tmp_path)
    for k, pct in enumerate((3.0, 4.0, 5.0)):
        p = scale_rule(pct)
        deployment.deploy(app, p, passing_report(p), at=NOW - timedelta(hours=3 - k))
    app.dispose()

    reopened = open_app(tmp_path)
    services = AppServices(reopened, inputs(market), now=NOW)
    fourth = scale_rule(6.0).model_dump(mode="json")
    verdict = services.validate(fourth, 0, "c-1")
    assert not verdict["accepted"]
    assert "BUDGET_DAILY_CHANGES" in [v["code"] for v in verdict["violations"]]
    # The next UTC day has a fresh budget; a rollback never counts against it.
    tomorrow = AppServices(reopened, inputs(market), now=NOW + timedelta(days=1))
    assert tomorrow.validate(fourth, 0, "c-2")["accepted"]


def test_family_blacklist_survives_a_restart(tmp_path: Path, market: tuple) -> None:
    app = open_app(tmp_path)
    bad = [
        {
            "kind": "add_rule",
            "rationale": "try again",
            "source": "llm",
            "rule": {
                "name": f"churn-{k}",
                "when": {"type": "atr_above", "pct": 2.0 + k},
                "then": {"type": "exit_position"},
            },
        }
        for k in range(3)
    ]
    for k, raw in enumerate(bad):
        deployment.reject(
            app,
            parse_proposal(raw),
            stage="gate",
            violations=[{"code": "GATE_TURNOVER", "field": "", "message": "churns"}],
            at=NOW - timedelta(days=10 - k),
        )
    app.dispose()

    reopened = open_app(tmp_path)
    again = dict(
        bad[0],
        rule=dict(bad[0]["rule"], name="churn-again", when={"type": "atr_above", "pct": 9.0}),
    )
    verdict = AppServices(reopened, inputs(market), now=NOW).validate(again, 0, "c-1")
    assert "FAMILY_BLACKLISTED" in [v["code"] for v in verdict["violations"]]
    # Outside the window (30 days after the first rejection) the family may be tried again.
    later = AppServices(reopened, inputs(market), now=NOW + timedelta(days=25))
    assert later.validate(again, 0, "c-2")["accepted"]


def test_a_cycle_runs_end_to_end_and_is_read_back_when_finished(
    tmp_path: Path, market: tuple
) -> None:
    app = open_app(tmp_path)
    result = run_improvement(app, inputs(market), cycle_id="c-e2e", now=NOW)
    assert result.complete and result.summary is not None
    # No trades are in memory, so the weakness finder is silent and the offline proposer tries
    # the first playbook rule; the gate judges it on the market and the verdict is recorded.
    [outcome] = result.outcomes
    assert outcome.kind == "add_rule" and outcome.source == "heuristic"
    assert outcome.stage in ("gate", "deploy")
    assert outcome.gate is not None and outcome.gate["proposal_id"] == outcome.proposal_id
    if outcome.status == "rejected":
        assert outcome.reasons
    [entry] = app.proposals.history(10)
    assert entry.proposal_id == outcome.proposal_id
    again = run_improvement(app, inputs(market), cycle_id="c-e2e", now=NOW)
    assert again.start == "finished"
    assert len(app.proposals.history(10)) == 1
    assert app.audit.verify().ok


def test_analysis_values_each_active_rule_by_counterfactual_replay(
    tmp_path: Path, market: tuple
) -> None:
    app = open_app(tmp_path)
    p = scale_rule(1.0)
    deployment.deploy(app, p, passing_report(p), at=NOW)
    services = AppServices(app, inputs(market), now=NOW)
    analysis = services.analyse(services.collect("c-1", NOW))
    [value] = analysis["rule_values"]
    assert value["rule_id"] == p.rule.id
    cf = services.rule_counterfactuals()[p.rule.id]
    assert cf.rule_value(p.rule.id) == pytest.approx(value["pnl_difference"], abs=0.01)
    assert f"Active rule {p.rule.id}" in analysis["summary"] or value["pnl_difference"] is None
    # The heuristic proposer sees the same replays (a rule that costs P&L without buying
    # Sharpe is proposed for retirement; whatever it proposes must parse).
    for raw in services.heuristic_proposals(analysis, 5):
        parse_proposal(raw)
