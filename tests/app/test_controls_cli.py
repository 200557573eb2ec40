"""`sovereign gate controls`: the whole control set through the CLI (quick markets), and what
happens when a negative control is accepted: alert, persisted auto-deploy freeze, non-zero exit,
cleared only by a person."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from sovereign.app.context import App
from sovereign.app.controls import CONTROLS_KEY, run_controls
from sovereign.app.deploy import autodeploy_frozen
from sovereign.cli import app as cli
from sovereign.settings import Settings
from sovereign.trading.controls import positive_controls

NOW = datetime(2024, 6, 3, 21, 0, tzinfo=UTC)
runner = CliRunner()


def test_gate_controls_quick_rejects_every_negative_and_accepts_every_positive(home: Path) -> None:
    result = runner.invoke(cli, ["gate", "controls", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"]
    assert payload["negative_controls"] >= 30
    assert payload["negatives_accepted"] == []
    assert payload["positive_controls"] >= 5
    assert payload["positives_rejected"] == []
    assert payload["autodeploy_frozen"] is None


def test_an_accepted_negative_control_freezes_auto_deploy_until_a_person_clears_it(
    home: Path,
) -> None:
    good = positive_controls(quick=True)[0]
    # A "negative" control that is in fact a good proposal: the gate accepts it, as it should,
    # which is exactly what an accepted negative control looks like to the runner.
    planted = dataclasses.replace(good, name="planted-hole", expect="reject", expected_codes=())
    app = App.open(Settings())
    report = run_controls(app, now=NOW, quick=True, gate_controls=([planted], []))
    assert not report.ok
    assert [r.name for r in report.negatives_accepted] == ["planted-hole"]
    assert report.frozen is not None and "planted-hole" in report.frozen
    assert app.supervisor_store.load_state(CONTROLS_KEY)["negatives_accepted"] == ["planted-hole"]
    app.dispose()

    reopened = App.open(Settings())  # the freeze is persisted
    assert autodeploy_frozen(reopened) is not None
    reopened.dispose()
    history = runner.invoke(cli, ["history", "--json"])
    assert json.loads(history.stdout)["frozen"] is not None
    refused = runner.invoke(cli, ["gate", "unfreeze", "--by", " "])
    assert refused.exit_code == 2
    cleared = runner.invoke(cli, ["gate", "unfreeze", "--by", "alice", "--json"])
    assert cleared.exit_code == 0, cleared.output
    assert json.loads(cleared.stdout) == {"cleared": True, "frozen": None}
    verify = runner.invoke(cli, ["audit", "verify", "--json"])
    assert json.loads(verify.stdout)["ok"]
