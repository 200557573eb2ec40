"""The persisted Supervisor: a halt is global, the books belong to one account."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sovereign.app.context import App
from sovereign.constitution import Constitution
from sovereign.settings import Settings
from sovereign.trading.supervisor import Supervisor, SupervisorState

NOW = datetime(2024, 5, 1, 20, 0, tzinfo=UTC)
C = Constitution()


def test_books_belong_to_their_account_and_a_halt_to_everyone(home: Path) -> None:
    app = App.open(Settings())
    replay = Supervisor(constitution=C)
    replay.peak_equity = 1_000_000.0
    app.save_supervisor(replay, NOW, account="paper-replay")

    assert app.load_supervisor(C, account="paper-replay").peak_equity == 1_000_000.0
    live = app.load_supervisor(C, account="alpaca-paper")
    assert live.peak_equity == 0.0 and live.state is SupervisorState.NORMAL
    assert app.load_supervisor(C).peak_equity == 1_000_000.0  # no account: whatever is stored

    replay.halt(NOW, "drawdown 10% in the replay")
    app.save_supervisor(replay, NOW, account="paper-replay")
    halted = app.load_supervisor(C, account="alpaca-paper")
    assert halted.state is SupervisorState.HALTED and "replay" in halted.reason
    assert halted.peak_equity == 0.0

    # A person's resume saves without an account: the books stay tagged with theirs.
    person = app.load_supervisor(C)
    person.resume(NOW, "alice")
    app.save_supervisor(person, NOW)
    again = app.load_supervisor(C, account="paper-replay")
    assert again.state is SupervisorState.NORMAL and again.peak_equity == 1_000_000.0
