"""Self-modification commands: propose, history, rules, rollback, and the gate's controls."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sovereign.cli._common import JsonOpt, app, err, friendly, open_app, out, print_json

gate_app = typer.Typer(help="The backtest gate: controls and the auto-deploy freeze.")
app.add_typer(gate_app, name="gate")


@app.command()
@friendly
def propose(
    file: Annotated[Path, typer.Argument(help="A proposal as JSON (see README: Proposals).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Judge it and print the verdict; write nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Judge a proposal (validator, then backtest gate) and deploy it if it passes."""
    from sovereign.app.proposing import propose as do_propose
    from sovereign.app.proposing import read_proposal_file

    raw = read_proposal_file(file)
    ctx = open_app()
    if not as_json:
        err.print("[dim]judging the proposal (validator, then the backtest gate) …[/]")
    outcome = do_propose(ctx, raw, now=datetime.now(UTC), dry_run=dry_run)
    if as_json:
        print_json(outcome.to_json())
    else:
        _print_outcome(outcome.to_json())
    if not outcome.accepted:
        raise typer.Exit(1)


def _print_outcome(o: dict[str, Any]) -> None:
    verdict = "[bold green]ACCEPTED[/]" if o["accepted"] else "[bold red]REJECTED[/]"
    where = "would deploy (dry run)" if o["dry_run"] and o["accepted"] else f"stage {o['stage']}"
    out.print(f"{verdict} · {o['summary']} · {where}")
    if o["proposal_id"]:
        out.print(f"proposal {o['proposal_id']}")
    for v in o["violations"]:
        field = f" ({v['field']})" if v.get("field") else ""
        out.print(f"  [red]{v['code']}[/]{field}: {v['message']}")
    gate = o["gate"]
    if gate and gate.get("significance"):
        sig = gate["significance"]
        sharpe, ci, dsr = sig.get("sharpe") or {}, sig.get("ci") or {}, sig.get("dsr") or {}
        trades = (gate.get("activity") or {}).get("trades") or {}
        guard = (gate.get("lookahead") or {}).get("passed")
        lookahead = "not run" if guard is None else ("clean" if guard else "FAILED")
        out.print(
            f"  gate: Sharpe {_num(sharpe.get('baseline'))} → {_num(sharpe.get('candidate'))}"
            f" (CI of the difference [{_num(ci.get('lower'))}, {_num(ci.get('upper'))}] at "
            f"{_num(ci.get('confidence'))}), deflated Sharpe {_num(dsr.get('value'))}, "
            f"{trades.get('affected', '?')} trades affected, expected max drawdown "
            f"{_num(gate.get('expected_max_drawdown'))}, look-ahead "
            f"{lookahead}"
        )
    if o["deployment"]:
        d = o["deployment"]
        out.print(f"[bold]deployed[/] as rule set version {d['to_version']} ({d['ruleset_id']})")
    if o["autodeploy_frozen"]:
        out.print(f"[yellow]note:[/] automatic deployment is frozen: {o['autodeploy_frozen']}")


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


@app.command()
@friendly
def history(
    limit: Annotated[int, typer.Option(help="How many entries, newest first.")] = 30,
    kind: Annotated[
        str | None,
        typer.Option(help="Only this proposal kind (add_rule, ..., or rollback)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Proposals with their verdicts and reasons, deployments and rollbacks."""
    from sovereign.app.control import history as get_history

    payload = get_history(open_app(), limit=limit, kind=kind).to_json()
    if as_json:
        print_json(payload)
        return
    table = Table(title="History (newest first)")
    for column in ("when", "what", "outcome", "reasons"):
        table.add_column(column, overflow="fold")
    for e in payload["entries"]:
        table.add_row(*_history_row(e))
    out.print(table)
    if payload["frozen"]:
        out.print(f"[bold yellow]auto-deploy frozen:[/] {payload['frozen']}")


def _history_row(e: dict[str, Any]) -> tuple[str, str, str, str]:
    when = str(e.get("at", ""))[:16].replace("T", " ")
    if e.get("event") == "rollback":
        r = e
        return (
            when,
            f"rollback to version {r.get('to_version')}",
            f"by {r.get('by')}",
            str(r.get("reason", "")),
        )
    verdict = e.get("verdict") or {}
    deployed = e.get("deployment")
    outcome = (
        f"[green]deployed[/] v{deployed.get('to_version')}"
        if deployed
        else ("[red]rejected[/]" if verdict and not verdict.get("accepted") else "pending")
    )
    if deployed and deployed.get("status") not in (None, "active"):
        outcome += f" ({deployed['status']})"
    if verdict.get("stage"):
        outcome += f" at {verdict['stage']}"
    reasons = "; ".join(
        f"{v.get('code')}: {v.get('message')}" for v in verdict.get("violations", [])
    )
    return when, f"{e.get('summary', '')} [{e.get('source', '')}]", outcome, reasons


@app.command()
@friendly
def rules(as_json: JsonOpt = False) -> None:
    """The active rule set (rules and tuned parameters) and its versions."""
    from sovereign.app.control import rules as get_rules

    payload = get_rules(open_app()).to_json()
    if as_json:
        print_json(payload)
        return
    table = Table(title=f"Active rules: version {payload['version']} ({payload['ruleset_id']})")
    for column in ("id", "name", "strategy", "when", "then"):
        table.add_column(column, overflow="fold")
    for r in payload["rules"]:
        table.add_row(
            r["id"],
            r["name"],
            r["strategy"] or "all",
            json.dumps(r["when"]),
            json.dumps(r["then"]),
        )
    out.print(table)
    if payload["params"]:
        out.print(f"tuned parameters: {json.dumps(payload['params'])}")
    versions = Table(title="Versions")
    for column in ("version", "rules", "when", "source", "reason"):
        versions.add_column(column, overflow="fold")
    for v in payload["versions"][-15:]:
        mark = " *" if v["active"] else ""
        versions.add_row(
            f"{v['version']}{mark}", str(v["rules"]), v["created_at"][:19], v["source"], v["reason"]
        )
    out.print(versions)


@app.command()
@friendly
def rollback(
    version: Annotated[int, typer.Argument(help="The rule set version to restore.")],
    by: Annotated[str, typer.Option(help="The person deciding the rollback.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "rolled back by a person",
    as_json: JsonOpt = False,
) -> None:
    """Restore an earlier rule set version exactly (allowed past the daily change budget)."""
    from sovereign.app.control import rollback as do_rollback

    record = do_rollback(open_app(), version, by=by, reason=reason).to_json()
    if as_json:
        print_json(record)
        return
    out.print(
        f"[bold]rolled back[/] to version {record['to_version']} ({record['ruleset_id']}) by {by}"
    )


@gate_app.command("unfreeze")
@friendly
def gate_unfreeze(
    by: Annotated[str, typer.Option(help="The person clearing the freeze.")],
    as_json: JsonOpt = False,
) -> None:
    """Clear the auto-deploy freeze set by a failed negative control (people only)."""
    from sovereign.app.control import unfreeze

    payload = unfreeze(open_app(), by=by).to_json()
    if as_json:
        print_json(payload)
        return
    out.print("auto-deploy freeze cleared" if payload["cleared"] else "auto-deploy was not frozen")


@gate_app.command("controls")
@friendly
def gate_controls(
    quick: Annotated[
        bool, typer.Option("--quick", help="Shorter markets (what CI runs); same checks.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run every negative and positive control. A negative control accepted freezes automatic
    deployment until a person clears it, and the command exits 1."""
    from rich.progress import BarColumn, Progress, TextColumn

    from sovereign.app.controls import run_controls

    ctx = open_app()
    now = datetime.now(UTC)
    if as_json:
        report = run_controls(ctx, now=now, quick=quick)
        print_json(report.to_json())
    else:
        columns = (TextColumn("controls"), BarColumn(), TextColumn("{task.fields[name]}"))
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("controls", total=None, name="building markets…")

            def update(name: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, name=name)

            report = run_controls(ctx, now=now, quick=quick, on_progress=update)
        _print_controls(report.to_json())
    if not report.ok:
        raise typer.Exit(1)


def _print_controls(payload: dict[str, Any]) -> None:
    table = Table(title=f"Controls ({'quick' if payload['quick'] else 'full'})")
    for column in ("suite", "control", "expect", "verdict", "codes"):
        table.add_column(column, overflow="fold")
    for r in payload["results"]:
        verdict = "accepted" if r["accepted"] else "rejected"
        style = "green" if r["passed"] else "bold red"
        table.add_row(
            r["suite"],
            r["name"],
            r["expect"],
            f"[{style}]{verdict}[/]",
            ", ".join(r["codes"]) or "-",
        )
    out.print(table)
    out.print(
        f"negative controls: {payload['negative_controls']}, accepted: "
        f"{len(payload['negatives_accepted'])} · positive controls: "
        f"{payload['positive_controls']}, rejected: {len(payload['positives_rejected'])}"
    )
    if payload["negatives_accepted"]:
        out.print(
            f"[bold red]ALERT:[/] {', '.join(payload['negatives_accepted'])} accepted; automatic "
            "deployment is FROZEN until `sovereign gate unfreeze --by NAME`"
        )
    if payload["positives_rejected"]:
        out.print(
            f"[bold yellow]the gate rejected good proposals:[/] "
            f"{', '.join(payload['positives_rejected'])}"
        )
