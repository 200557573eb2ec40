"""`sovereign.app.proposing`: reading proposal files, and input that is not even a proposal is
judged, recorded and explained like any other rejection (no exception, nothing deployed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sovereign.app.context import App
from sovereign.app.proposing import propose, read_proposal_file
from sovereign.errors import ConfigError
from sovereign.settings import Settings

NOW = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)


def test_read_proposal_file_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    good = tmp_path / "p.json"
    good.write_text('[1, "any JSON is read; the validator judges its shape"]')
    assert read_proposal_file(good)[0] == 1
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": ')
    with pytest.raises(ConfigError, match=r"bad\.json is not JSON \(line 1"):
        read_proposal_file(bad)
    with pytest.raises(ConfigError, match="cannot read proposal file"):
        read_proposal_file(tmp_path / "missing.json")


@pytest.mark.parametrize("raw", [["add_rule"], "raise max_drawdown to 50%", {"kind": "nope"}])
def test_anything_that_is_not_a_proposal_is_rejected_and_recorded(home: Path, raw: object) -> None:
    app = App.open(Settings())
    outcome = propose(app, raw, now=NOW)
    assert outcome.stage == "validate" and not outcome.accepted and not outcome.deployed
    assert outcome.violations and outcome.summary == "(not a valid proposal)"
    [entry] = app.proposals.history(5)
    assert entry.kind == "unparseable" and entry.source == "human"
    assert entry.verdict is not None and not entry.verdict.accepted
    dry = propose(app, raw, now=NOW, dry_run=True)
    assert dry.violations == outcome.violations
    assert len(app.proposals.history(5)) == 1  # a dry run writes nothing
