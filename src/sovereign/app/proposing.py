"""`sovereign propose FILE`: a person's (or a script's) proposal through the same validator, gate
and deployment as the improvement cycle's.

The proposal is judged on the operator's default data (the configured universe, every bar of
it) at ``now``. ``dry_run`` reports the verdict and writes nothing; otherwise a rejection is
recorded with its reasons and an accepted proposal is deployed. The auto-deploy freeze stops
*automatic* deployment only: a person proposing through this command is deploying by hand, and
the result says when the freeze was in force.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sovereign.app import deploy as deployment
from sovereign.app.backtesting import load_panel
from sovereign.app.context import App
from sovereign.app.improvement import AppServices, ImprovementInputs
from sovereign.constitution import validate
from sovereign.errors import ConfigError
from sovereign.rules.proposals import parse_proposal
from sovereign.trading.backtest import BacktestConfig
from sovereign.trading.catalog import DEFAULT_STRATEGIES


@dataclass(frozen=True, kw_only=True, slots=True)
class ProposeOutcome:
    """``stage``: the last stage reached ("validate", "gate" or "deploy"). ``accepted``: passed
    every stage it reached (for a dry run: would be deployed)."""

    proposal_id: str | None
    kind: str | None
    summary: str
    stage: str
    accepted: bool
    deployed: bool
    dry_run: bool
    violations: tuple[dict[str, Any], ...]
    gate: dict[str, Any] | None
    deployment: dict[str, Any] | None
    autodeploy_frozen: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "proposal_id": self.proposal_id,
            "kind": self.kind,
            "summary": self.summary,
            "stage": self.stage,
            "accepted": self.accepted,
            "deployed": self.deployed,
            "dry_run": self.dry_run,
            "violations": list(self.violations),
            "gate": self.gate,
            "deployment": self.deployment,
            "autodeploy_frozen": self.autodeploy_frozen,
        }


def read_proposal_file(path: Path) -> object:
    """The JSON in ``path`` (any JSON: the validator judges its shape)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read proposal file {path}: {err.strerror or err}") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"proposal file {path} is not JSON (line {err.lineno}, column {err.colno}: "
            f"{err.msg}); see `sovereign propose --help` for the format"
        ) from err


def default_inputs(app: App, *, now: datetime, seed: int | None = None) -> ImprovementInputs:
    """The operator's configured universe, all of it, judged under the pinned constitution."""
    rs = app.settings.run
    constitution, _ = app.constitution(now=now)
    panel = load_panel(None, rs.universe, (), None, None)
    run_seed = rs.seed if seed is None else seed
    return ImprovementInputs(
        panel=panel,
        prepared=None,  # regime fits only if the proposal reaches the gate
        strategies=DEFAULT_STRATEGIES,
        constitution=constitution,
        seed=run_seed,
        backtest=BacktestConfig(cash=rs.cash, seed=run_seed),
    )


def propose(
    app: App,
    raw: object,
    *,
    now: datetime,
    dry_run: bool = False,
    inputs: ImprovementInputs | None = None,
) -> ProposeOutcome:
    """Validate, gate and (unless ``dry_run``) deploy or reject ``raw``."""
    services = AppServices(app, inputs or default_inputs(app, now=now), now=now)
    frozen = deployment.autodeploy_frozen(app)
    verdict = validate(raw, services.validator_state(), now).to_json()
    if not verdict["accepted"]:
        if not dry_run:
            deployment.reject(
                app,
                raw,
                stage="validate",
                violations=verdict["violations"],
                at=now,
                source=_source(raw),
            )
        return _outcome(raw, verdict, "validate", dry_run=dry_run, frozen=frozen)
    proposal = parse_proposal(raw)
    report = services.gate(proposal.model_dump(mode="json"), "manual")
    if not report["accepted"]:
        if not dry_run:
            deployment.reject(
                app,
                proposal,
                stage="gate",
                violations=[
                    {"code": r["code"], "field": "", "message": r["message"]}
                    for r in report["reasons"]
                ],
                gate_report_json=report,
                at=now,
            )
        return _outcome(raw, verdict, "gate", report=report, dry_run=dry_run, frozen=frozen)
    record = None
    if not dry_run:
        record = deployment.deploy(app, proposal, report, at=now).to_json()
    return _outcome(
        raw, verdict, "deploy", report=report, record=record, dry_run=dry_run, frozen=frozen
    )


def _source(raw: object) -> str:
    source = raw.get("source") if isinstance(raw, dict) else None
    return source if isinstance(source, str) else "human"


def _outcome(
    raw: object,
    verdict: dict[str, Any],
    stage: str,
    *,
    report: dict[str, Any] | None = None,
    record: dict[str, Any] | None = None,
    dry_run: bool,
    frozen: str | None,
) -> ProposeOutcome:
    try:
        summary = parse_proposal(raw).summary()
    except ValueError:
        summary = "(not a valid proposal)"
    reasons = tuple(verdict["violations"])
    if report is not None and not report["accepted"]:
        reasons += tuple(
            {"code": r["code"], "field": "", "message": r["message"]} for r in report["reasons"]
        )
    accepted = verdict["accepted"] and (report is None or bool(report["accepted"]))
    return ProposeOutcome(
        proposal_id=verdict.get("proposal_id"),
        kind=verdict.get("kind"),
        summary=summary,
        stage=stage,
        accepted=accepted and stage == "deploy",
        deployed=record is not None,
        dry_run=dry_run,
        violations=reasons,
        gate=report,
        deployment=record,
        autodeploy_frozen=frozen,
    )


__all__ = ["ProposeOutcome", "default_inputs", "propose", "read_proposal_file"]
