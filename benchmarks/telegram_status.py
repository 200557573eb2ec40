"""`/status` round trip over loopback: an update enqueued in the Bot API stub -> the real PTB
application long-polls it, the control service reads a seeded SQLite file -> the reply reaches
the stub. Median and p95 of 50 round trips; goal p95 <= 200 ms."""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from pathlib import Path

from tests.bots.botapi_stub import BotApiStub
from tests.bots.conftest import ALICE, seed_app

from benchmarks._timing import report
from sovereign.app.context import App
from sovereign.bots.auth import AllowList
from sovereign.bots.telegram import BotThread, SovereignBot, build_application
from sovereign.constitution import default_path
from sovereign.settings import Settings

ROUNDS, WARMUP, GOAL_MS = 50, 3, 200.0


def _round_trip(stub: BotApiStub) -> float:
    before = len(stub.calls("sendMessage"))
    t0 = time.perf_counter()
    stub.message(ALICE, "/status")
    stub.wait_for("sendMessage", before + 1)
    return time.perf_counter() - t0


def main() -> None:
    logging.getLogger("sovereign").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        constitution = Path(tmp) / "constitution.toml"
        constitution.write_bytes(default_path().read_bytes())
        app = App.open(Settings(data_dir=Path(tmp) / "var", constitution_path=constitution))
        seed_app(app)
        stub = BotApiStub().start()
        bot = SovereignBot(app, allow=AllowList(frozenset({ALICE})))
        runner = BotThread(build_application(bot, token=stub.token, base_url=stub.base_url))
        runner.start()
        try:
            for _ in range(WARMUP):
                _round_trip(stub)
            times = [_round_trip(stub) for _ in range(ROUNDS)]
        finally:
            runner.stop()
            stub.close()
            app.dispose()
    report("telegram /status round trip (loopback, seeded SQLite)", times, unit="ms", scale=1e3)
    p95 = statistics.quantiles([t * 1e3 for t in times], n=20)[-1]
    verdict = "met" if p95 <= GOAL_MS else "NOT met"
    print(
        f"{'telegram /status round trip p95':<58} {p95:9.3f} ms  goal <= {GOAL_MS:g} ms: {verdict}"
    )


if __name__ == "__main__":
    main()
