"""`sovereign run` drives its replay with the shared job list on the simulated clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sovereign.app.campaign import CampaignOptions, Progress, run_campaign
from sovereign.app.context import App
from sovereign.app.killswitch import KillSwitch
from sovereign.app.replay import REPLAY_ACCOUNT
from sovereign.market.files import load_file
from sovereign.settings import Settings


def test_the_replay_runs_the_job_list_once_per_session(home: Path, market_csv: Path) -> None:
    app = App.open(Settings())
    panel = load_file(market_csv)
    options = CampaignOptions(data=market_csv, start=datetime(2021, 1, 1, tzinfo=UTC))
    seen: list[datetime] = []
    report = run_campaign(app, options, on_progress=lambda p: seen.append(p.timestamp))

    window = [t for t in panel.timestamps.to_pydatetime() if t >= options.start]  # type: ignore[operator]
    assert seen == window  # every bar of the campaign, in order, exactly once
    days = {t.date() for t in panel.timestamps.to_pydatetime()}
    assert report.jobs["trading_cycle"] == report.jobs["end_of_day"] <= len(days)
    assert report.jobs["trading_cycle"] >= len({t.date() for t in window})
    assert report.jobs["heartbeat"] > 0 and report.jobs["health"] > 0
    assert "reconcile" not in report.jobs and "negative_control" not in report.jobs
    beat = app.supervisor_store.load_state(f"heartbeat:{REPLAY_ACCOUNT}")
    assert beat is not None and beat["run_id"] == report.run_id
    assert beat["bar"] == window[-1].isoformat()
    app.dispose()


def test_a_halt_during_the_replay_stops_it(home: Path, market_csv: Path) -> None:
    app = App.open(Settings())
    options = CampaignOptions(data=market_csv, start=datetime(2021, 1, 1, tzinfo=UTC))

    def halt_at_bar_40(p: Progress) -> None:
        if p.bar == 40:
            KillSwitch(app, app.settings.data_dir).halt("alice", "manual test halt", p.timestamp)

    report = run_campaign(app, options, on_progress=halt_at_bar_40)
    assert report.stopped is not None and report.stopped.startswith("HALTED")
    last_bar = load_file(market_csv).timestamps[-1].to_pydatetime()
    assert report.end < last_bar - timedelta(days=100)  # it stopped long before the data's end
    app.dispose()
