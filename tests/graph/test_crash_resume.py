"""Crash and resume with real processes: a cycle dies right after a deployment
(``os._exit(9)``, no cleanup), a second process resumes the same cycle id from the SQLite
checkpoints and finishes it; run again, the finished cycle is only read back.

The services come from the factory named by ``SOVEREIGN_CRASH_SERVICES`` (default: the SQLite
test services, see :mod:`tests.graph.crash_runner`), so the same test can run against the real
application services: their scenario must propose three proposals of which at least two pass,
and expose ``deployment_ids()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sovereign.errors import ConfigError
from sovereign.graph import CHECKPOINT_FILE, open_checkpointer, run_cycle
from sovereign.settings import Settings

from .crash_runner import (
    CRASH_ENV,
    CRASH_EXIT,
    DEFAULT_FACTORY,
    FACTORY_ENV,
    NOW,
    Recording,
    load_factory,
)

ROOT = Path(__file__).resolve().parents[2]
CYCLE_ID = "cycle-7"


def run(workdir: Path, *, crash_after: int = 0) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        CRASH_ENV: str(crash_after),
    }
    return subprocess.run(
        [sys.executable, "-m", "tests.graph.crash_runner", str(workdir), CYCLE_ID],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def calls(workdir: Path) -> list[dict]:
    path = workdir / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("crash_after", [1, 2])
def test_a_cycle_killed_after_a_deployment_resumes_and_deploys_exactly_once(
    tmp_path: Path, crash_after: int
) -> None:
    crashed = run(tmp_path, crash_after=crash_after)
    assert crashed.returncode == CRASH_EXIT, crashed.stderr
    assert crashed.stdout == ""
    first = calls(tmp_path)
    deployed_before_crash = [c["proposal_id"] for c in first if c["method"] == "deploy"]
    assert len(deployed_before_crash) == crash_after

    resumed = run(tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["start"] == "resumed" and result["complete"]
    assert len(result["outcomes"]) == 3
    assert all(o["status"] in ("deployed", "rejected") for o in result["outcomes"])
    accepted = [o["proposal_id"] for o in result["outcomes"] if o["status"] == "deployed"]
    assert len(accepted) >= 2 and accepted == result["deployed"]

    # every accepted proposal's deployment happened exactly once, in proposal order
    services = load_factory(os.environ.get(FACTORY_ENV, DEFAULT_FACTORY))(tmp_path)
    assert services.deployment_ids() == accepted

    # resume re-ran only the interrupted step: earlier branches kept their checkpointed results
    second = calls(tmp_path)[len(first) :]
    assert {c["method"] for c in second}.isdisjoint({"collect", "analyse", "heuristic_proposals"})
    interrupted = deployed_before_crash[-1]
    deploys = Counter(c["proposal_id"] for c in first + second if c["method"] == "deploy")
    assert deploys[interrupted] == 2  # called again on resume; the effect stayed single
    assert all(n == 1 for pid, n in deploys.items() if pid != interrupted)
    validations = Counter(c["proposal_id"] for c in first + second if c["method"] == "validate")
    assert set(validations.values()) == {1}
    assert [c["method"] for c in second].count("notify") == 1

    # a finished cycle is read back (here, in this process): no service is called again
    recording = Recording(services, tmp_path / "calls.jsonl", crash_after=0)
    with open_checkpointer(f"sqlite:///{tmp_path / 'app.db'}", tmp_path) as saver:
        replay = run_cycle(recording, cycle_id=CYCLE_ID, now=NOW, checkpointer=saver).to_json()
    assert replay["start"] == "finished"
    assert replay["outcomes"] == result["outcomes"]
    assert len(calls(tmp_path)) == len(first) + len(second)
    assert services.deployment_ids() == accepted


# --- opening checkpointers ----------------------------------------------------------------------


def test_sqlite_checkpoints_live_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", database_url=None)
    with open_checkpointer(settings) as saver:
        assert saver.get_tuple({"configurable": {"thread_id": "none"}}) is None
    assert (tmp_path / "var" / CHECKPOINT_FILE).is_file()
    with open_checkpointer(f"sqlite:///{tmp_path / 'app.db'}", tmp_path / "other"):
        pass
    assert (tmp_path / "other" / CHECKPOINT_FILE).is_file()
    with pytest.raises(ConfigError, match="data directory"):  # noqa: SIM117
        with open_checkpointer(f"sqlite:///{tmp_path / 'app.db'}"):
            pass


def test_postgres_without_the_extra_and_unknown_schemes_are_config_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "langgraph.checkpoint.postgres", None)  # not installed
    with pytest.raises(ConfigError, match=r"sovereign\[postgres\]"):  # noqa: SIM117
        with open_checkpointer("postgresql+psycopg://u@127.0.0.1:1/db"):
            pass
    with pytest.raises(ConfigError, match="mysql"):  # noqa: SIM117
        with open_checkpointer("mysql://u@127.0.0.1/db", Path("unused")):
            pass
