"""The control service on a real SQLite file: typed results with the figures the rows imply,
the JSON the CLI prints, and the readiness checklist."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from sovereign.app import control
from sovereign.app.context import App
from sovereign.app.controls import CONTROLS_KEY
from sovereign.app.deploy import freeze_autodeploy
from sovereign.errors import ConfigError
from sovereign.settings import Settings
from tests.bots.conftest import NOW, RUN, seed_app

STATUS_KEYS = {
    "supervisor_state",
    "supervisor_reason",
    "halt_file",
    "last_run",
    "ruleset_version",
    "active_rules",
    "last_proposal",
    "autodeploy_frozen",
    "controls",
    "constitution_sha256",
    "constitution_pinned",
    "database",
}


@pytest.fixture
def empty(home: Path) -> Iterator[App]:
    app = App.open(Settings())
    yield app
    app.dispose()


@pytest.fixture
def seeded(empty: App) -> App:
    seed_app(empty)
    return empty


def test_status_of_an_empty_database(empty: App) -> None:
    s = control.status(empty)
    assert s.supervisor_state == "NORMAL" and s.account is None and s.last_run is None
    assert s.ruleset_version is None and s.active_rules == 0 and s.last_proposal is None
    assert s.broker.ok is None and s.data.ok is None
    payload = s.to_json()
    assert payload.keys() >= STATUS_KEYS
    assert payload["constitution_pinned"] is False


def test_status_reads_the_newest_snapshots(seeded: App) -> None:
    s = control.status(seeded)
    a = s.account
    assert a is not None and a.run_id == RUN and a.as_of == NOW
    assert a.equity == 1_010_000.0 and a.cash == 800_000.0
    assert a.day_pnl == pytest.approx(8_000.0)  # against the last snapshot of the previous day
    assert a.gross_exposure == pytest.approx(0.21)  # 212,100 of 1,010,000 equity
    assert a.positions is not None
    assert [(p.symbol, p.quantity) for p in a.positions] == [("AAPL", 100.0), ("MSFT", -20.0)]
    assert (s.ruleset_version, s.active_rules) == (3, 2)
    lp = s.last_proposal
    assert lp is not None and lp.outcome == "rejected" and lp.codes == ("CONST_MAX_RULES",)
    assert s.constitution_pinned and s.broker.ok and s.data.ok
    assert s.controls is not None and s.controls["ok"] is True
    payload = s.to_json()
    assert payload["account"]["positions"][0]["unrealized_pnl"] == 500.0
    assert payload["last_run"]["run_id"] == RUN


def test_day_pnl_on_the_first_day_counts_from_the_first_snapshot(empty: App) -> None:
    empty.memory.record_run_start("r1", started_at=NOW, mode="paper")
    empty.memory.add_equity_snapshots(
        [
            {"run_id": "r1", "timestamp": NOW, "equity": 100.0, "cash": 100.0},
            {"run_id": "r1", "timestamp": NOW + timedelta(hours=1), "equity": 97.5, "cash": 0.0},
        ]
    )
    a = control.status(empty).account
    assert a is not None and a.day_pnl == -2.5 and a.positions is None


def test_capital_joins_the_run_summary_and_the_supervisor_pools(seeded: App) -> None:
    c = control.capital(seeded)
    assert c.run_id == RUN and c.final_equity == 1_010_000.0
    momentum, regime = c.pools
    assert (momentum.strategy, momentum.capital, momentum.pool_equity) == (
        "momentum",
        500_000.0,
        507_000.0,
    )
    assert momentum.trades == 4 and not momentum.killed
    assert regime.killed and regime.pool_return == -0.002
    other = App.open(Settings(data_dir=seeded.settings.data_dir / "other"))
    assert control.capital(other).pools == ()  # no run yet
    other.dispose()


def test_proposals_history_and_rules(seeded: App) -> None:
    p = control.proposals(seeded, limit=10)
    assert [i.outcome for i in p.items] == ["rejected", "deployed", "deployed"]
    assert p.items[0].stage == "validate" and p.items[0].codes == ("CONST_MAX_RULES",)
    assert [i.to_version for i in p.items[1:]] == [3, 2]
    assert len(control.proposals(seeded, limit=1).items) == 1
    with pytest.raises(ConfigError):
        control.proposals(seeded, limit=0)
    h = control.history(seeded, limit=10)
    assert len(h.entries) == 3 and h.frozen is None
    assert h.to_json()["entries"][0]["event"] == "proposal"
    r = control.rules(seeded)
    assert r.version == 3 and [x.name for x in r.rules] == ["no-volatile", "wild-atr"]
    assert [v.active for v in r.versions] == [False, False, True]
    assert r.to_json()["rules"][0]["when"] == {"type": "regime_is", "regime": "volatile"}


def test_halt_resume_and_rollback_results(seeded: App) -> None:
    h = control.halt(seeded, by="telegram:1", reason="news", now=NOW)
    assert h.changed and h.state == "HALTED" and "telegram:1" in h.reason
    assert not control.halt(seeded, by="x", reason="again", now=NOW).changed
    (seeded.settings.data_dir / "HALT").write_text("stop")
    blocked = control.resume(seeded, by="bob", now=NOW)
    assert not blocked.changed and "halt file" in blocked.message
    (seeded.settings.data_dir / "HALT").unlink()
    resumed = control.resume(seeded, by="bob", now=NOW)
    assert resumed.changed and resumed.state == "NORMAL"
    assert control.resume(seeded, by="bob", now=NOW).to_json() == {
        "state": "NORMAL",
        "message": "nothing to resume",
        "changed": False,
    }
    back = control.rollback(seeded, 2, by="alice", reason="test", now=NOW)
    assert back.to_json()["to_version"] == 2 and back.record.by == "alice"
    with pytest.raises(ConfigError, match="existing versions"):
        control.rollback(seeded, 99, by="alice", reason="x", now=NOW)
    with pytest.raises(ConfigError, match="already active"):
        control.rollback(seeded, 2, by="alice", reason="x", now=NOW)
    with pytest.raises(ConfigError, match="--by"):
        control.rollback(seeded, 1, by=" ", reason="x", now=NOW)


def test_readiness_lists_every_item_and_fails_closed(seeded: App) -> None:
    r = control.readiness(seeded, now=NOW)
    items = {i.name: i for i in r.items}
    assert list(items) == [
        "paper_days",
        "no_halt",
        "controls",
        "autodeploy",
        "audit_chain",
        "constitution_pinned",
        "reconciliation",
    ]
    assert not r.ready
    assert (
        not items["paper_days"].ok and "2 replayed days do not count" in items["paper_days"].detail
    )
    assert all(items[n].ok for n in ("no_halt", "controls", "autodeploy", "audit_chain"))
    assert items["constitution_pinned"].ok
    assert not items["reconciliation"].ok and items["reconciliation"].detail.startswith("unknown")
    assert r.to_json()["ready"] is False

    control.halt(seeded, by="alice", reason="news", now=NOW)
    freeze_autodeploy(seeded, "negative control accepted", NOW)
    seeded.supervisor_store.save_state(
        CONTROLS_KEY, {"at": NOW.isoformat(), "ok": False, "negatives_accepted": ["hole"]}, NOW
    )
    with seeded.engine.begin() as conn:  # tampering, as someone with the file would
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
        conn.execute(text("UPDATE audit_log SET payload = '{}' WHERE seq = 2"))
    bad = {i.name: i for i in control.readiness(seeded, now=NOW).items}
    assert not bad["no_halt"].ok and "HALTED" in bad["no_halt"].detail
    assert not bad["autodeploy"].ok and "negative control" in bad["autodeploy"].detail
    assert not bad["controls"].ok and "hole" in bad["controls"].detail
    assert not bad["audit_chain"].ok and "seq 2" in bad["audit_chain"].detail


def test_live_paper_days_count_distinct_utc_days(empty: App) -> None:
    empty.memory.record_run_start("live", started_at=NOW, mode="paper")
    empty.memory.add_equity_snapshots(
        [
            {
                "run_id": "live",
                "timestamp": NOW + timedelta(days=d, hours=h),
                "equity": 1.0,
                "cash": 1.0,
            }
            for d in range(3)
            for h in (0, 1)
        ]
    )
    item = next(i for i in control.readiness(empty, now=NOW).items if i.name == "paper_days")
    assert item.detail.startswith("3 of 20 days") and not item.ok


def test_cli_capital_proposals_readiness_and_bot_without_a_token(seeded: App) -> None:
    from typer.testing import CliRunner

    from sovereign.cli import app as cli

    runner = CliRunner()
    capital = runner.invoke(cli, ["capital", "--json"])
    assert capital.exit_code == 0 and '"pool_equity": 507000.0' in capital.stdout
    proposals = runner.invoke(cli, ["proposals", "--limit", "2", "--json"])
    assert proposals.exit_code == 0 and proposals.stdout.count('"proposal_id"') == 2
    readiness = runner.invoke(cli, ["readiness", "--json"])
    assert readiness.exit_code == 1 and '"ready": false' in readiness.stdout
    bot = runner.invoke(cli, ["bot"])
    assert bot.exit_code == 2 and "SOVEREIGN_TELEGRAM__TOKEN" in " ".join(bot.output.split())


def test_readiness_reads_the_newest_reconciliation(seeded: App) -> None:
    def item() -> object:
        return {i.name: i for i in control.readiness(seeded, now=NOW).items}["reconciliation"]

    store = seeded.supervisor_store
    store.save_state("reconciliation:live-1", {"ok": True, "blocking": []}, NOW)
    assert item().ok and "clean" in item().detail
    later = NOW + timedelta(hours=1)
    store.save_state("reconciliation:live-2", {"ok": True, "blocking": ["order x unknown"]}, later)
    assert not item().ok and "1 unacknowledged issue" in item().detail


def test_a_person_acknowledges_blocking_reconciliation_issues(seeded: App) -> None:
    key = "reconciliation:acct-1"
    issue = {
        "kind": "unknown_position",
        "key": "ZZZ",
        "message": "broker holds ZZZ",
        "blocking": True,
    }
    seeded.supervisor_store.save_state(key, {"ok": True, "blocking": [issue]}, NOW)
    with pytest.raises(ConfigError, match="person"):
        control.acknowledge(seeded, account="acct-1", by="system", now=NOW)
    with pytest.raises(ConfigError, match="no reconciliation"):
        control.acknowledge(seeded, account="nope", by="alice", now=NOW)
    result = control.acknowledge(seeded, account="acct-1", by="alice", now=NOW)
    assert result.to_json() == {"account": "acct-1", "by": "alice", "accepted": ["ZZZ"]}
    state = seeded.supervisor_store.load_state(key)
    assert state["blocking"] == [] and state["acknowledged_by"] == "alice"
    assert seeded.audit.verify().ok


def test_the_cli_status_rows_are_short_and_read_the_fractions(seeded: App) -> None:
    from sovereign.cli.control import status_rows

    rows = dict(status_rows(control.status(seeded)))
    assert rows["drawdown / exposure"] == "0.00% / 21.0% gross"
    assert rows["equity"].startswith("1,010,000.00 (cash 800,000.00)")
    assert rows["open positions"] == "2"
    assert rows["rule set"] == "v3, 2 active rules"
    assert not any('": ' in v for k, v in rows.items() if k != "last controls run")  # no JSON
    assert max(len(v) for k, v in rows.items() if k != "last controls run") < 160
