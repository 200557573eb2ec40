"""`sovereign gate controls`: prove, on demand, that the validator and the gate still say no to
bad ideas and yes to good ones.

Three sets: the validator's negative controls (:mod:`sovereign.constitution.controls`), the
gate's negative controls and the gate's positive controls (:mod:`sovereign.trading.controls`).
A negative control that is ACCEPTED means a guard has a hole: automatic deployment is frozen
(persisted until a person runs ``sovereign gate unfreeze --by NAME``), the failure is audited and
logged as an alert, and the command exits non-zero. A positive control that is rejected means
the gate became too strict to ever improve anything: reported and non-zero, without a freeze.
The last result is kept (``kv_state`` key ``"controls"``) for the readiness checklist.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sovereign.app.context import App
from sovereign.app.deploy import autodeploy_frozen, freeze_autodeploy
from sovereign.constitution import ValidatorState, validate
from sovereign.constitution.controls import validator_controls
from sovereign.trading.catalog import DEFAULT_STRATEGIES, strategy_specs
from sovereign.trading.controls import GateControl, gate_negative_controls, positive_controls
from sovereign.trading.gate import evaluate

log = logging.getLogger(__name__)

CONTROLS_KEY = "controls"
Suite = Literal["validator", "gate-negative", "gate-positive"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ControlResult:
    name: str
    suite: Suite
    description: str
    expect: Literal["accept", "reject"]
    accepted: bool
    codes: tuple[str, ...]
    expected_codes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        if self.expect == "accept":
            return self.accepted
        return not self.accepted

    @property
    def codes_match(self) -> bool:
        """The rejection carried the expected codes (a rejection for another reason still
        rejects, so it passes, but is worth a look)."""
        return set(self.expected_codes) <= set(self.codes)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "suite": self.suite,
            "description": self.description,
            "expect": self.expect,
            "accepted": self.accepted,
            "passed": self.passed,
            "codes": list(self.codes),
            "expected_codes": list(self.expected_codes),
            "codes_match": self.codes_match,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ControlsReport:
    results: tuple[ControlResult, ...]
    quick: bool
    frozen: str | None

    @property
    def negatives_accepted(self) -> tuple[ControlResult, ...]:
        return tuple(r for r in self.results if r.expect == "reject" and r.accepted)

    @property
    def positives_rejected(self) -> tuple[ControlResult, ...]:
        return tuple(r for r in self.results if r.expect == "accept" and not r.accepted)

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    def to_json(self) -> dict[str, Any]:
        negatives = [r for r in self.results if r.expect == "reject"]
        positives = [r for r in self.results if r.expect == "accept"]
        return {
            "ok": self.ok,
            "quick": self.quick,
            "negative_controls": len(negatives),
            "negatives_accepted": [r.name for r in self.negatives_accepted],
            "positive_controls": len(positives),
            "positives_rejected": [r.name for r in self.positives_rejected],
            "autodeploy_frozen": self.frozen,
            "results": [r.to_json() for r in self.results],
        }


Progress = Callable[[str, int, int], None]


def run_controls(
    app: App,
    *,
    now: datetime,
    quick: bool = False,
    on_progress: Progress | None = None,
    gate_controls: tuple[list[GateControl], list[GateControl]] | None = None,
) -> ControlsReport:
    """Run every control; freeze auto-deploy if a negative one was accepted (see module doc).

    ``gate_controls`` (negatives, positives) replaces the library's (tests use it to plant a
    broken control).
    """
    constitution, _ = app.constitution(now=now)
    negatives, positives = gate_controls or (
        gate_negative_controls(quick),
        positive_controls(quick),
    )
    checks = validator_controls()
    total = len(checks) + len(negatives) + len(positives)
    results: list[ControlResult] = []

    def done(name: str) -> None:
        if on_progress is not None:
            on_progress(name, len(results), total)

    base = ValidatorState(constitution=constitution, strategies=strategy_specs(DEFAULT_STRATEGIES))
    for c in checks:
        verdict = validate(c.raw, dataclasses.replace(base, **c.scene(now)), now)
        results.append(
            ControlResult(
                name=c.name,
                suite="validator",
                description=c.description,
                expect="reject",
                accepted=verdict.accepted,
                codes=verdict.codes,
                expected_codes=c.expected,
            )
        )
        done(c.name)
    for suite, controls in (("gate-negative", negatives), ("gate-positive", positives)):
        for g in controls:
            report = evaluate(g.proposal, g.baseline, g.make_data(g.seed), g.seed, trials=g.trials)
            results.append(
                ControlResult(
                    name=g.name,
                    suite=suite,  # type: ignore[arg-type]
                    description=g.description,
                    expect=g.expect,
                    accepted=report.accepted,
                    codes=tuple(r.code for r in report.reasons),
                    expected_codes=g.expected_codes,
                )
            )
            done(g.name)
    report_ = ControlsReport(results=tuple(results), quick=quick, frozen=None)
    if report_.negatives_accepted:
        names = ", ".join(r.name for r in report_.negatives_accepted)
        reason = f"negative control(s) accepted: {names}"
        log.critical("ALERT: %s; automatic deployment is frozen until a person clears it", reason)
        freeze_autodeploy(app, reason, now, by="controls")
    app.supervisor_store.save_state(CONTROLS_KEY, _summary(report_, now), now)
    app.audit.append("controls.run", _summary(report_, now), now)
    return dataclasses.replace(report_, frozen=autodeploy_frozen(app))


def _summary(report: ControlsReport, now: datetime) -> dict[str, Any]:
    return {
        "at": now.isoformat(),
        "ok": report.ok,
        "quick": report.quick,
        "controls": len(report.results),
        "negatives_accepted": [r.name for r in report.negatives_accepted],
        "positives_rejected": [r.name for r in report.positives_rejected],
    }


__all__ = ["CONTROLS_KEY", "ControlResult", "ControlsReport", "run_controls"]
