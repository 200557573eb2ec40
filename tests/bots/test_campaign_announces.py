"""`sovereign run` with Telegram configured: the bot serves during the replay and the campaign
announces its improvement decisions to the allowed users (over loopback, Bot API stub)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovereign.app.campaign import CampaignOptions, run_campaign
from sovereign.app.context import App
from sovereign.app.replay_improver import ImproverOptions
from sovereign.market.files import write_csv
from sovereign.market.synthetic import generate
from sovereign.settings import Settings
from tests.bots.botapi_stub import BotApiStub

ALICE = 1001


@pytest.fixture(scope="module")
def long_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "long.csv"
    write_csv(generate(symbols=6, n_bars=1300, seed=5, start="2015-01-01").panel, path)
    return path


def test_a_replay_serves_the_bot_and_announces_its_decisions(
    home: Path, long_csv: Path, stub: BotApiStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOVEREIGN_TELEGRAM__TOKEN", stub.token)
    monkeypatch.setenv("SOVEREIGN_TELEGRAM__ALLOWED_USER_IDS", str(ALICE))
    monkeypatch.setenv("SOVEREIGN_TELEGRAM__BASE_URL", stub.base_url)
    app = App.open(Settings())
    report = run_campaign(
        app,
        CampaignOptions(
            data=long_csv,
            improver=ImproverOptions(every_days=90, min_days=120, gate_years=2.0),
        ),
    )
    app.dispose()
    imp = report.improvement
    assert imp["proposals"] > 0
    assert stub.calls("getMe")  # the bot started and polled during the replay
    sent = [r.params for r in stub.wait_for("sendMessage", 1)]
    assert all(int(p["chat_id"]) == ALICE for p in sent)
    texts = " ".join(str(p["text"]) for p in sent)
    assert "Rejected" in texts or "Deployed" in texts
