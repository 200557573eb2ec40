"""Shared fixtures of the broker tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_loop(own_event_loop: None) -> None:
    """Every broker test runs on its own, closed-afterwards event loop (see the fixture)."""
