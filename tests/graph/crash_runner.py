"""Run one improvement cycle in this process, optionally dying right after a deployment.

    python -m tests.graph.crash_runner WORKDIR CYCLE_ID

Environment:

- ``SOVEREIGN_CRASH_SERVICES``: ``module:callable`` building the services from ``WORKDIR``
  (default ``tests.graph.fakes:crash_services``). The services object must also offer
  ``deployment_ids() -> list[str]``: one entry per deployment actually made.
- ``SOVEREIGN_CRASH_AFTER_DEPLOYS``: N > 0 makes the process ``os._exit(9)`` as soon as the
  N-th ``deploy`` call of this process has returned (the deployment is committed, the graph
  has not recorded it).

Every service call is appended to ``WORKDIR/calls.jsonl`` (fsynced) as
``{"pid", "method", "proposal_id"}``; the cycle's result JSON is printed on stdout.
The checkpoints live in ``WORKDIR/checkpoints.sqlite``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sovereign.graph import open_checkpointer, run_cycle

FACTORY_ENV = "SOVEREIGN_CRASH_SERVICES"
CRASH_ENV = "SOVEREIGN_CRASH_AFTER_DEPLOYS"
DEFAULT_FACTORY = "tests.graph.fakes:crash_services"
NOW = datetime(2024, 3, 1, 21, 0, tzinfo=UTC)
CRASH_EXIT = 9


def load_factory(spec: str) -> Callable[[Path], Any]:
    module, _, name = spec.partition(":")
    factory: Callable[[Path], Any] = getattr(importlib.import_module(module), name)
    return factory


class Recording:
    """Delegates every CycleServices call, logging it first; dies after the N-th deploy."""

    def __init__(self, inner: Any, log_path: Path, *, crash_after: int) -> None:
        self._inner = inner
        self._log_path = log_path
        self._crash_after = crash_after
        self._deploys = 0

    def _log(self, method: str, proposal: Any = None) -> None:
        pid = proposal.get("id") if isinstance(proposal, dict) else None
        if isinstance(proposal, dict) and pid is None:
            from sovereign.rules import parse_proposal

            try:
                pid = parse_proposal(proposal).id
            except Exception:
                pid = None
        line = json.dumps({"pid": os.getpid(), "method": method, "proposal_id": pid})
        with self._log_path.open("a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def collect(self, cycle_id: str, now: datetime) -> dict[str, Any]:
        self._log("collect")
        return self._inner.collect(cycle_id, now)

    def analyse(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        self._log("analyse")
        return self._inner.analyse(snapshot)

    def heuristic_proposals(self, analysis: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        self._log("heuristic_proposals")
        return self._inner.heuristic_proposals(analysis, limit)

    def context_for_llm(self, analysis: dict[str, Any]) -> dict[str, Any]:
        self._log("context_for_llm")
        return self._inner.context_for_llm(analysis)

    def validate(self, proposal_json: Any, index_in_cycle: int, cycle_id: str) -> dict[str, Any]:
        self._log("validate", proposal_json)
        return self._inner.validate(proposal_json, index_in_cycle, cycle_id)

    def gate(self, proposal_json: dict[str, Any], cycle_id: str) -> dict[str, Any]:
        self._log("gate", proposal_json)
        return self._inner.gate(proposal_json, cycle_id)

    def deploy(self, proposal_json: dict[str, Any], gate: dict[str, Any], cycle_id: str) -> Any:
        self._log("deploy", proposal_json)
        record = self._inner.deploy(proposal_json, gate, cycle_id)
        self._deploys += 1
        if self._crash_after and self._deploys == self._crash_after:
            os._exit(CRASH_EXIT)
        return record

    def reject(self, subject: Any, stage: str, reasons: Any, gate: Any, cycle_id: str) -> Any:
        self._log("reject", subject)
        return self._inner.reject(subject, stage, reasons, gate, cycle_id)

    def notify(self, summary: dict[str, Any]) -> None:
        self._log("notify")
        self._inner.notify(summary)

    def autodeploy_frozen(self) -> str | None:
        return self._inner.autodeploy_frozen()


def main(argv: list[str]) -> int:
    workdir, cycle_id = Path(argv[0]), argv[1]
    factory = load_factory(os.environ.get(FACTORY_ENV, DEFAULT_FACTORY))
    crash_after = int(os.environ.get(CRASH_ENV, "0"))
    services = Recording(factory(workdir), workdir / "calls.jsonl", crash_after=crash_after)
    with open_checkpointer(f"sqlite:///{workdir / 'app.db'}", workdir) as saver:
        result = run_cycle(services, cycle_id=cycle_id, now=NOW, checkpointer=saver)
    print(json.dumps(result.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
