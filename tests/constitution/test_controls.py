"""Every validator-side negative control is rejected with its expected code, against the real
strategies' declared bounds."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from sovereign.constitution import Constitution, ValidatorState, validate
from sovereign.constitution.controls import ValidatorControl, validator_controls
from sovereign.trading.strategies import REGISTRY

NOW = datetime(2024, 6, 3, 21, 0, tzinfo=UTC)
BASE = ValidatorState(
    constitution=Constitution(),
    strategies={n: REGISTRY[n].specs for n in ("regime_entry", "momentum")},
)
CONTROLS = validator_controls()


def test_there_are_enough_distinct_controls() -> None:
    assert len(CONTROLS) >= 25
    assert len({c.name for c in CONTROLS}) == len(CONTROLS)


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.name)
def test_negative_control_is_rejected_with_its_code(control: ValidatorControl) -> None:
    state = dataclasses.replace(BASE, **control.scene(NOW))
    verdict = validate(control.raw, state, NOW)
    assert not verdict.accepted
    assert set(control.expected) <= set(verdict.codes), verdict.violations


@pytest.mark.parametrize("name", ["blacklisted-family", "over-daily-budget"])
def test_history_controls_pass_without_their_history(name: str) -> None:
    """The history, not the proposal itself, is what these controls exercise."""
    control = next(c for c in CONTROLS if c.name == name)
    assert validate(control.raw, BASE, NOW).accepted
