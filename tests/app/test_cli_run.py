"""`sovereign run` and friends end to end, in-process through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovereign.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def run_json(market_csv: Path, *extra: str) -> dict:
    code, out, err = invoke("run", "--data", str(market_csv), "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def test_run_trades_records_and_leaves_an_intact_audit_chain(home: Path, market_csv: Path) -> None:
    report = run_json(market_csv)
    assert report["trades"] > 0 and report["orders"] > 0
    assert report["counts"]["fills"] == report["fills"]
    code, out, _ = invoke("audit", "verify", "--json")
    verdict = json.loads(out)
    assert code == 0 and verdict["ok"] and verdict["rows"] > report["orders"]
    code, out, _ = invoke("status", "--json")
    status = json.loads(out)
    assert status["supervisor_state"] in ("NORMAL", "REDUCING")
    assert status["last_run"]["run_id"] == report["run_id"]
    assert status["constitution_pinned"] is True
    # a second run of the same replay records a second run without colliding order ids
    again = run_json(market_csv)
    assert again["run_id"] != report["run_id"]
    assert again["final_equity"] == report["final_equity"]


def test_same_seed_same_campaign_other_seed_other_rejections(home: Path, market_csv: Path) -> None:
    a = run_json(market_csv, "--seed", "3")
    b = run_json(market_csv, "--seed", "3")
    assert (a["final_equity"], a["trades"], a["metrics"]) == (
        b["final_equity"],
        b["trades"],
        b["metrics"],
    )


BAD_ROWS = {
    "nan": ("close", "2024-01-02T00:00:00+00:00,AAA,10,11,9,,100\n"),
    "negative": ("close", "2024-01-02T00:00:00+00:00,AAA,10,11,9,-1,100\n"),
    "high_below_low": ("high", "2024-01-02T00:00:00+00:00,AAA,10,8,9,10,100\n"),
    "naive": ("timestamp", "2024-01-02T00:00:00,AAA,10,11,9,10,100\n"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_data_refuses_to_start_and_writes_nothing(home: Path, case: str) -> None:
    column, bad = BAD_ROWS[case]
    path = home / f"{case}.csv"
    path.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2024-01-01T00:00:00+00:00,AAA,10,11,9,10,100\n" + bad
    )
    code, _, err = invoke("run", "--data", str(path))
    assert code == 2
    flat = " ".join(err.split())
    assert str(path.name) in flat and "row 2" in flat and column in flat
    assert not (home / "var").exists()


def test_tampered_constitution_refuses_to_trade_until_amended(home: Path, market_csv: Path) -> None:
    run_json(market_csv, "--days", "200")
    constitution = home / "constitution.toml"
    constitution.write_text(
        constitution.read_text().replace("max_position_size = 0.05", "max_position_size = 0.5")
    )
    code, out, err = invoke("run", "--data", str(market_csv), "--json")
    assert code == 3 and out == ""
    flat = " ".join(err.split())
    assert "changed since it was recorded" in flat and "sovereign constitution amend" in flat
    code, out, _ = invoke("constitution", "--json")
    assert json.loads(out)["pin"] == "CHANGED since recorded"
    code, _, _ = invoke("constitution", "amend", "--by", "alice", "--note", "bigger positions")
    assert code == 0
    run_json(market_csv, "--days", "200")


def test_halt_survives_restarts_and_only_resume_lifts_it(home: Path, market_csv: Path) -> None:
    run_json(market_csv, "--days", "100")
    assert invoke("halt", "--reason", "news", "--json")[0] == 0
    code, _, err = invoke("run", "--data", str(market_csv))
    assert code == 2 and "HALTED" in err
    code, out, _ = invoke("resume", "--by", "bob", "--json")
    assert json.loads(out)["state"] == "NORMAL"
    run_json(market_csv, "--days", "100")


def test_halt_file_halts_even_without_the_database(home: Path, market_csv: Path) -> None:
    (home / "var").mkdir()
    (home / "var" / "HALT").write_text("maintenance")
    code, _, err = invoke("run", "--data", str(market_csv))
    assert code == 2 and "halt file" in " ".join(err.split())


def test_backtest_json_contract(home: Path, market_csv: Path) -> None:
    code, out, err = invoke(
        "backtest",
        "--data",
        str(market_csv),
        "--strategy",
        "sma_cross",
        "--param",
        "fast=5",
        "--param",
        "slow=20",
        "--costs",
        "simple",
        "--no-limits",
        "--json",
    )
    assert code == 0, err
    payload = json.loads(out)
    assert {"final_equity", "metrics", "trades"} <= set(payload)
    assert payload["trades"], "sma_cross should trade on two years of synthetic data"
    assert {
        "symbol",
        "entry_time",
        "exit_time",
        "entry_price",
        "exit_price",
        "quantity",
        "pnl",
    } <= set(payload["trades"][0])
    assert not (home / "var").exists(), "a backtest does not depend on persistence"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--strategy", "nope"), "unknown strategy 'nope'"),
        (("--strategy", "sma_cross", "--param", "fast=1"), "fast=1 is outside its bounds"),
        (("--param", "zzz=1"), "no selected strategy has 'zzz'"),
        (("--costs", "free"), "choose 'realistic' or 'simple'"),
    ],
)
def test_backtest_bad_arguments_say_what_to_fix(
    home: Path, market_csv: Path, args: tuple, message: str
) -> None:
    code, _, err = invoke("backtest", "--data", str(market_csv), *args)
    assert code == 2
    assert message in " ".join(err.split())
