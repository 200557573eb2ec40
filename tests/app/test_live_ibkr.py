"""`sovereign run --broker ibkr`: the live loop over Interactive Brokers, tested through a fake
at the ib_async boundary (no TWS can run here), and the CLI's refusal when TWS is not there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from ib_async import BarData
from typer.testing import CliRunner

from sovereign.app.context import App
from sovereign.app.live import CycleReport, LiveOptions, run_live
from sovereign.brokers.ibkr import IBKRBroker, IBKRData
from sovereign.brokers.models import client_order_id
from sovereign.cli import app as cli
from sovereign.rules.rule import RuleSet
from sovereign.settings import Settings
from tests.brokers.ib_fake import FakeIB

N_BARS = 40


def history() -> tuple[dict[str, list[BarData]], pd.Timestamp]:
    """AAA falls for 39 days, then jumps: sma_cross crosses up on the last bar; BBB rises."""
    end = pd.Timestamp(datetime.now(UTC).date()) - pd.offsets.BDay(3)
    days = pd.bdate_range(end=end, periods=N_BARS)
    aaa = [100 - 0.5 * k for k in range(N_BARS - 1)] + [150.0]
    bbb = [50 + 0.5 * k for k in range(N_BARS)]

    def bars(closes: list[float]) -> list[BarData]:
        return [
            BarData(date=d.date(), open=c, high=c + 0.5, low=c - 0.5, close=c, volume=10_000)
            for d, c in zip(days, closes, strict=True)
        ]

    return {"AAA": bars(aaa), "BBB": bars(bbb)}, days[-1]


@pytest.mark.usefixtures("own_event_loop")
def test_the_live_loop_trades_ibkr_once_and_a_restart_adds_no_duplicate(home: Path) -> None:
    bars, last = history()
    fake = FakeIB(  # TWS's clock: now, as the live loop's
        {"AAA": [150.0] * 20, "BBB": [70.0] * 20},
        history=bars,
        start=datetime.now(UTC) - timedelta(hours=1),
    )
    app = App.open(Settings())
    options = LiveOptions(
        symbols=("AAA", "BBB"),
        account="ibkr-test",
        mode="live-ibkr",  # paper or live is the TWS login's, not ours
        strategies=("sma_cross",),
        poll=timedelta(seconds=0.2),
        session_only=False,
        lookback=timedelta(days=120),
        improve=False,
    )
    reports = []
    for _ in range(2):  # a second process after the first one stopped
        stop = threading.Event()
        cycles: list[CycleReport] = []

        def on_cycle(c: CycleReport, cycles: list[CycleReport] = cycles, s=stop) -> None:  # type: ignore[no-untyped-def]
            cycles.append(c)
            s.set()

        reports.append(
            run_live(
                app,
                options,
                broker=IBKRBroker(  # type: ignore[arg-type]
                    fake, clock=lambda: fake.now, last_price=fake.price
                ),
                data=IBKRData(fake),
                stop=stop,
                on_cycle=on_cycle,
                handle_signals=False,
            )
        )
        fake.advance()  # the order fills between the runs
    coid = client_order_id(
        strategy="sma_cross",
        ruleset_version=RuleSet().id,
        symbol="AAA",
        signal_time=datetime.combine(last.date(), datetime.min.time(), tzinfo=UTC),
        leg="entry",
        namespace="ibkr-test",
    )
    placed = [c for c in fake.calls if c == "placeOrder"]
    assert len(placed) == 1  # one order across both processes
    assert [t.order.orderRef for t in fake.trades()] == [coid]
    shares = fake.holdings["AAA"][0]
    assert shares == 33  # 5% of 100,000 at 150 (sma_cross sizes by equity fraction)
    # the restart recognised its order by the id, booked its fill and holds what IB holds
    assert reports[1].fills == 1 and reports[1].positions == {"AAA": shares}
    assert fake.history_requests and fake.history_requests[0]["bar_size"] == "1 day"
    assert app.audit.verify().ok
    app.dispose()


def test_the_cli_says_when_tws_is_not_there(home: Path) -> None:
    """A real `sovereign run --broker ibkr` process against a loopback port nobody listens on."""
    pytest.importorskip("ib_async")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SOVEREIGN_IBKR__PORT": str(port)}
    exe = Path(sys.executable).with_name("sovereign")
    result = subprocess.run(
        [str(exe), "run", "--broker", "ibkr", "--symbol", "AAA"],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "cannot connect to TWS/IB Gateway at 127.0.0.1" in result.stderr + result.stdout
    refused = CliRunner().invoke(cli, ["run", "--broker", "ibkr"])
    assert refused.exit_code != 0 and "needs at least one --symbol" in refused.output
