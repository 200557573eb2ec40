"""The constitution file: defaults, validation, and the hash pin."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovereign.constitution import Constitution, check_pin, default_path, load
from sovereign.errors import ConfigError, ConstitutionTampered


def test_bundled_file_has_the_v4_defaults() -> None:
    c, sha = load()
    assert (c.max_position_size, c.max_daily_loss, c.max_drawdown) == (0.05, 0.03, 0.10)
    assert c.min_confidence_for_trade == 0.40
    assert (c.max_rule_changes_per_day, c.max_active_rules) == (3, 50)
    assert {"max_drawdown", "constitution", "forbidden_modifications"} <= set(
        c.forbidden_modifications
    )
    assert c == Constitution()
    assert len(sha) == 64


def test_invalid_file_names_every_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("max_position_size = 2.0\nmax_drawdown = -1\nsurprise = 1\n")
    with pytest.raises(ConfigError) as err:
        load(bad)
    msg = str(err.value)
    assert "max_position_size" in msg and "max_drawdown" in msg and "surprise" in msg


def test_forbidden_list_cannot_drop_the_immutable_three(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text('forbidden_modifications = ["max_position_size"]\n')
    with pytest.raises(ConfigError, match="max_drawdown"):
        load(bad)


def test_pin_refuses_a_changed_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_bytes(default_path().read_bytes())
    _, recorded = load(f)
    check_pin(f, recorded, recorded)
    check_pin(f, recorded, None)
    f.write_text(f.read_text().replace("max_drawdown = 0.10", "max_drawdown = 0.50"))
    _, now = load(f)
    with pytest.raises(ConstitutionTampered, match="sovereign constitution amend"):
        check_pin(f, now, recorded)
