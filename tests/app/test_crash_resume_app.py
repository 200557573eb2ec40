"""Crash and resume of an improvement cycle with the real application services: a subprocess is
killed right after a real deployment commits, a new process resumes the same cycle from its
checkpoint, and every accepted proposal ends up deployed exactly once (checked in the app's own
database). The scenario and its assertions are the graph's (tests/graph/test_crash_resume.py);
only the services differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.graph import test_crash_resume as graph_crash
from tests.graph.crash_runner import FACTORY_ENV


@pytest.mark.parametrize("crash_after", [1, 2])
def test_real_services_resume_without_duplicate_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_after: int
) -> None:
    monkeypatch.setenv(FACTORY_ENV, "tests.app.crash_services:app_services")
    graph_crash.test_a_cycle_killed_after_a_deployment_resumes_and_deploys_exactly_once(
        tmp_path, crash_after
    )
