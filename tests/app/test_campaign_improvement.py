"""The improvement cycle inside `sovereign run`: cycles on the simulated clock, proposals judged
on the bars known at the time, verdicts with reasons in the summary, the same in history."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovereign.app.campaign import CampaignOptions, run_campaign
from sovereign.app.context import App
from sovereign.app.replay_improver import ImproverOptions
from sovereign.cli import app as cli
from sovereign.market.files import write_csv
from sovereign.market.synthetic import generate
from sovereign.settings import Settings


@pytest.fixture(scope="module")
def long_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "long.csv"
    write_csv(generate(symbols=6, n_bars=1300, seed=5, start="2015-01-01").panel, path)
    return path


def test_run_improves_on_the_simulated_clock_and_reports_every_verdict(
    home: Path, long_csv: Path
) -> None:
    app = App.open(Settings())
    options = CampaignOptions(
        data=long_csv,
        improve_every_days=90,
        improver=ImproverOptions(every_days=90, min_days=120, gate_years=2.0),
    )
    report = run_campaign(app, options)
    imp = report.improvement
    assert imp["cycles"] >= 3
    outcomes = imp["deployed"] + imp["rejected"]
    assert len(outcomes) == imp["proposals"] > 0
    start = report.start.isoformat()
    for o in outcomes:
        assert o["at"] >= start  # judged inside the replay, on its simulated clock
        assert o["source"] == "heuristic"
        if o["status"] == "rejected":
            assert o["reasons"] and all(":" in r for r in o["reasons"])
    app.dispose()

    history = json.loads(CliRunner().invoke(cli, ["history", "--json", "--limit", "200"]).stdout)
    recorded = {e["proposal_id"] for e in history["entries"] if e["event"] == "proposal"}
    assert {o["proposal_id"] for o in outcomes} <= recorded
    deployed = [e for e in history["entries"] if e.get("deployment")]
    assert len(deployed) == len(imp["deployed"])
    verify = json.loads(CliRunner().invoke(cli, ["audit", "verify", "--json"]).stdout)
    assert verify["ok"]
    # A replay never resumes a finished cycle: its checkpoints are deleted once it is complete.
    with sqlite3.connect(home / "var" / "checkpoints.sqlite") as db:
        assert db.execute("SELECT count(*) FROM checkpoints").fetchone() == (0,)
