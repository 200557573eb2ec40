"""The real application services for the crash-and-resume test (see
``tests/graph/test_crash_resume.py``): a real App on SQLite in the work dir, the real validator,
the real backtest gate on a market with planted fake breakouts, the real deployment code.

Only the proposer is scripted: three proposals, of which the gate accepts the first and the
third (each blocks half of the fake-breakout symbols) and rejects the second (a weekday rule
with nothing behind it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sovereign.app.context import App
from sovereign.app.improvement import AppServices, ImprovementInputs
from sovereign.constitution import default_path
from sovereign.rules import AddRule, BlockSymbol, DayOfWeek, Rule, SkipTrade, SymbolIn
from sovereign.settings import Settings
from sovereign.trading import controls
from sovereign.trading.gate import GateConfig

NOW_ISO = "2024-03-01T21:00:00+00:00"


def _proposals() -> list[dict[str, Any]]:
    fakes = controls.FAKES
    rules = [
        Rule(name="block-a", when=SymbolIn(symbols=fakes[:2]), then=BlockSymbol(days=30)),
        Rule(name="no-friday", when=DayOfWeek(days=(4,)), then=SkipTrade(reason="Friday")),
        Rule(name="block-b", when=SymbolIn(symbols=fakes[2:]), then=BlockSymbol(days=30)),
    ]
    return [
        AddRule(rule=r, rationale="scripted", source="heuristic").model_dump(mode="json")
        for r in rules
    ]


class ScriptedAppServices(AppServices):
    def heuristic_proposals(self, analysis: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        return _proposals()[:limit]

    def deployment_ids(self) -> list[str]:
        return [d.proposal_id for d in self.app.proposals.deployments()]


def app_services(workdir: Path) -> ScriptedAppServices:
    from datetime import datetime

    control = controls.positive_controls(quick=True)[0]  # block_fake_breakout_symbols
    data = control.make_data(control.seed)
    base = control.baseline
    app = App.open(
        Settings(data_dir=workdir / "var", constitution_path=default_path(), _env_file=None)  # type: ignore[call-arg]
    )
    inputs = ImprovementInputs(
        panel=data.panel,
        prepared=data.prepared,
        strategies=base.strategies,
        operator_params=base.params,
        constitution=base.constitution,
        seed=control.seed,
        gate=GateConfig(),
        backtest=base.backtest,
    )
    return ScriptedAppServices(app, inputs, now=datetime.fromisoformat(NOW_ISO))
