"""Fixtures shared across the test packages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest


@pytest.fixture
def own_event_loop() -> Iterator[None]:
    """ib_async's objects (eventkit events) bind to the thread's event loop and create one when
    there is none; a later ``asyncio.run`` in the same worker would then drop it unclosed (a
    ResourceWarning, an error under ``filterwarnings = error``). The test gets its own loop,
    closed afterwards."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()
