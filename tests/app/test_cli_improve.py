"""The self-modification commands end to end through the CLI: propose (rejected, dry run),
history with reasons, rules, rollback to an exact earlier version."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from sovereign.app.context import App
from sovereign.app.deploy import deploy
from sovereign.cli import app as cli
from sovereign.rules import AddRule, AtrAbove, RegimeIs, Rule, ScalePosition, SkipTrade
from sovereign.settings import Settings

runner = CliRunner()
NOW = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)


def invoke(*args: str) -> tuple[int, dict]:
    result = runner.invoke(cli, [*args, "--json"])
    try:
        payload = json.loads(result.stdout) if result.stdout.strip() else {}
    except json.JSONDecodeError:
        payload = {"raw": result.output}
    return result.exit_code, payload


def write(path: Path, payload: object) -> Path:
    path.write_text(json.dumps(payload))
    return path


def test_a_forbidden_change_is_rejected_recorded_and_shown_in_history(home: Path) -> None:
    file = write(
        home / "p.json",
        {
            "kind": "modify_constitution",
            "field": "max_drawdown",
            "value": 0.5,
            "rationale": "more room",
            "source": "human",
        },
    )
    code, out = invoke("propose", str(file))
    assert code == 1
    assert out["stage"] == "validate" and not out["accepted"] and not out["deployed"]
    assert [v["code"] for v in out["violations"]] == ["CONST_FORBIDDEN_MODIFICATION"]
    code, history = invoke("history")
    assert code == 0
    [entry] = history["entries"]
    assert entry["proposal_id"] == out["proposal_id"]
    assert entry["verdict"]["codes"] == ["CONST_FORBIDDEN_MODIFICATION"]
    assert "never be changed" in entry["verdict"]["violations"][0]["message"]


def test_a_file_that_is_not_json_is_a_clear_error(home: Path) -> None:
    bad = home / "bad.json"
    bad.write_text("{not json")
    result = runner.invoke(cli, ["propose", str(bad)])
    assert result.exit_code == 2
    assert "is not JSON (line 1" in result.output
    missing = runner.invoke(cli, ["propose", str(home / "nope.json")])
    assert missing.exit_code == 2 and "cannot read proposal file" in missing.output


def test_dry_run_reaches_the_gate_and_writes_nothing(home: Path) -> None:
    file = write(
        home / "p.json",
        {
            "kind": "add_rule",
            "rationale": "halve positions in volatile markets",
            "source": "human",
            "rule": {
                "name": "half-volatile",
                "when": {"type": "regime_is", "regime": "volatile"},
                "then": {"type": "scale_position", "factor": 0.5},
            },
        },
    )
    code, out = invoke("propose", str(file), "--dry-run")
    assert out["dry_run"] and out["stage"] in ("gate", "deploy")
    assert code == (0 if out["accepted"] else 1)
    gate = out["gate"]
    assert gate["proposal_id"] == out["proposal_id"]
    assert {"folds", "regimes", "scenarios", "significance", "lookahead"} <= gate.keys()
    assert not out["deployed"]
    assert invoke("history")[1]["entries"] == []


def test_rules_and_rollback_restore_an_exact_earlier_version(home: Path) -> None:
    app = App.open(Settings())
    proposals = [
        AddRule(
            rule=Rule(
                name="no-volatile", when=RegimeIs(regime="volatile"), then=SkipTrade(reason="v")
            ),
            rationale="r",
            source="human",
        ),
        AddRule(
            rule=Rule(name="wild-atr", when=AtrAbove(pct=5.0), then=ScalePosition(factor=0.5)),
            rationale="r",
            source="human",
        ),
    ]
    records = [
        deploy(app, p, {"accepted": True, "expected_max_drawdown": 0.05}, at=NOW) for p in proposals
    ]
    first_id = app.rules.version(records[0].to_version).id
    app.dispose()

    code, rules = invoke("rules")
    assert code == 0
    assert rules["version"] == records[1].to_version
    assert [r["name"] for r in rules["rules"]] == ["no-volatile", "wild-atr"]
    assert [v["active"] for v in rules["versions"]][-1] is True

    code, back = invoke("rollback", str(records[0].to_version), "--by", "alice")
    assert code == 0, back
    assert back["to_version"] == records[0].to_version and back["by"] == "alice"
    code, rules = invoke("rules")
    assert rules["ruleset_id"] == first_id
    assert [r["name"] for r in rules["rules"]] == ["no-volatile"]
    code, history = invoke("history", "--kind", "rollback")
    assert history["entries"][0]["event"] == "rollback"

    result = runner.invoke(cli, ["rollback", "99", "--by", "alice"])
    assert result.exit_code == 2 and "existing versions" in result.output
    assert runner.invoke(cli, ["rollback", "1"]).exit_code == 2  # --by is required
