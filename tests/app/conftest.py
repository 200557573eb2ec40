"""Fixtures for end-to-end CLI tests: an isolated data dir, a constitution copy, small data."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovereign.constitution import default_path
from sovereign.market.files import write_csv
from sovereign.market.synthetic import generate


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with its own data dir and constitution file, and no stray settings."""
    monkeypatch.chdir(tmp_path)
    for key in list(__import__("os").environ):
        if key.startswith("SOVEREIGN_"):
            monkeypatch.delenv(key)
    constitution = tmp_path / "constitution.toml"
    constitution.write_bytes(default_path().read_bytes())
    monkeypatch.setenv("SOVEREIGN_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SOVEREIGN_CONSTITUTION_PATH", str(constitution))
    return tmp_path


@pytest.fixture(scope="session")
def market_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two years of seeded synthetic OHLCV for 6 symbols, in the documented CSV schema."""
    path = tmp_path_factory.mktemp("data") / "market.csv"
    write_csv(generate(symbols=6, n_bars=600, seed=7, start="2020-01-01").panel, path)
    return path
