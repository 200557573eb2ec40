"""Operator commands: status, halt, resume, the audit log, the database, the constitution."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sovereign.cli._common import (
    JsonOpt,
    app,
    audit_app,
    constitution_app,
    db_app,
    friendly,
    open_app,
    out,
    print_json,
)

if TYPE_CHECKING:
    from sovereign.app.control import StatusReport


@app.command()
@friendly
def status(as_json: JsonOpt = False) -> None:
    """Supervisor state, last run, active rules and the constitution pin."""
    from sovereign.app.control import status as get_status

    report = get_status(open_app())
    if as_json:
        print_json(report.to_json())
        return
    table = Table(title="Sovereign status", show_header=False)
    for key, value in status_rows(report):
        table.add_row(key, value)
    out.print(table)


def status_rows(s: StatusReport) -> list[tuple[str, str]]:
    """The status report as short (label, text) rows for a terminal (``--json`` has it all)."""
    state = s.supervisor_state + (f": {s.supervisor_reason}" if s.supervisor_reason else "")
    rows = [("supervisor", state), ("halt file", "present" if s.halt_file else "none")]
    a = s.account
    if a is None:
        rows.append(("account", "no run recorded yet"))
    else:
        positions = "not recorded" if a.positions is None else str(len(a.positions))
        rows += [
            ("equity", f"{a.equity:,.2f} (cash {a.cash:,.2f}), as of {a.as_of:%Y-%m-%d %H:%M}"),
            ("day P&L", f"{a.day_pnl:+,.2f}"),
            ("drawdown / exposure", f"{a.drawdown:.2%} / {a.gross_exposure:.1%} gross"),
            ("open positions", positions),
        ]
    r = s.last_run
    if r is not None:
        finished = "running" if r.finished_at is None else f"{r.finished_at:%Y-%m-%d %H:%M}"
        line = f"{r.run_id} ({r.mode}), {r.started_at:%Y-%m-%d %H:%M} -> {finished}"
        summary = r.summary or {}
        if summary.get("stopped"):
            line += f"; stopped: {summary['stopped']}"
        rows.append(("last run", line))
        improvement = summary.get("improvement")
        if isinstance(improvement, dict) and improvement:
            rows.append(
                (
                    "its improvement",
                    f"{improvement.get('cycles', 0)} cycles, {improvement.get('proposals', 0)} "
                    f"proposals, {improvement.get('deployed', 0)} deployed, "
                    f"{improvement.get('rejected', 0)} rejected",
                )
            )
    rows.append(("rule set", f"v{s.ruleset_version or '-'}, {s.active_rules} active rules"))
    if s.last_proposal is not None:
        lp = s.last_proposal
        codes = f" ({', '.join(lp.codes)})" if lp.codes else ""
        rows.append(("last proposal", f"{lp.at:%Y-%m-%d} {lp.summary}: {lp.outcome}{codes}"))
    if s.autodeploy_frozen:
        rows.append(("auto-deploy", f"FROZEN: {s.autodeploy_frozen}"))
    if s.controls:
        rows.append(("last controls run", json.dumps(dict(s.controls), default=str)[:120]))
    pin = "pinned" if s.constitution_pinned else "NOT pinned (refuses to trade)"
    rows.append(("constitution", f"{pin}, sha256 {s.constitution_sha256[:12]}"))
    for h in (s.broker, s.data):
        ok = "?" if h.ok is None else ("ok" if h.ok else "NOT ok")
        rows.append((h.name, f"{ok}: {h.detail}"))
    rows.append(("database", s.database))
    return rows


@app.command()
@friendly
def halt(
    reason: Annotated[str, typer.Option(help="Why trading must stop.")] = "halted by a person",
    by: Annotated[str, typer.Option(help="Who halts.")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Halt trading now (persisted: survives restarts until `sovereign resume`)."""
    from sovereign.app.control import halt as do_halt

    result = do_halt(open_app(), by=by, reason=reason)
    print_json(result.to_json()) if as_json else out.print(f"[bold red]HALTED[/] ({result.reason})")


@app.command()
@friendly
def resume(
    by: Annotated[str, typer.Option(help="The person who decides to trade again.")],
    as_json: JsonOpt = False,
) -> None:
    """Lift a halt. Only a person does this; it is recorded with their name."""
    from sovereign.app.control import resume as do_resume

    result = do_resume(open_app(), by=by)
    print_json(result.to_json()) if as_json else out.print(
        f"[bold green]{result.state}[/] ({result.message})"
    )


@app.command()
@friendly
def acknowledge(
    account: Annotated[str, typer.Option(help="The broker account (as given to `run --account`).")],
    by: Annotated[str, typer.Option(help="The person accepting the reconciliation issues.")],
    as_json: JsonOpt = False,
) -> None:
    """Accept an account's blocking reconciliation issues so new orders may resume."""
    from sovereign.app.control import acknowledge as do_acknowledge

    result = do_acknowledge(open_app(), account=account, by=by)
    print_json(result.to_json()) if as_json else out.print(
        f"acknowledged {len(result.accepted)} issue(s) on {result.account} by {result.by}"
    )


@app.command()
@friendly
def capital(as_json: JsonOpt = False) -> None:
    """Per-strategy capital pools at the end of the last run."""
    from sovereign.app.control import capital as get_capital

    report = get_capital(open_app())
    if as_json:
        print_json(report.to_json())
        return
    table = Table(title=f"Capital (run {report.run_id or '-'})")
    for column in ("strategy", "capital", "equity", "return", "realized P&L", "trades", "killed"):
        table.add_column(column)
    for p in report.pools:
        table.add_row(
            p.strategy,
            _money(p.capital),
            _money(p.pool_equity),
            "-" if p.pool_return is None else f"{p.pool_return:+.2%}",
            _money(p.realized_pnl),
            str(p.trades),
            "yes" if p.killed else "no",
        )
    out.print(table)


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


@app.command()
@friendly
def proposals(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Recent proposals with their verdicts."""
    from sovereign.app.control import proposals as get_proposals

    report = get_proposals(open_app(), limit=limit)
    if as_json:
        print_json(report.to_json())
        return
    table = Table(title="Proposals (newest first)")
    for column in ("when", "proposal", "outcome", "codes"):
        table.add_column(column, overflow="fold")
    for p in report.items:
        outcome = p.outcome if p.to_version is None else f"{p.outcome} v{p.to_version}"
        table.add_row(
            f"{p.at:%Y-%m-%d %H:%M}", f"{p.summary} [{p.source}]", outcome, ", ".join(p.codes)
        )
    out.print(table)


@app.command()
@friendly
def readiness(as_json: JsonOpt = False) -> None:
    """The live-readiness checklist; exits 1 when an item is not ok."""
    from sovereign.app.control import readiness as get_readiness

    report = get_readiness(open_app())
    if as_json:
        print_json(report.to_json())
    else:
        table = Table(title="Live readiness", show_header=False)
        for item in report.items:
            mark = "[green]ok[/]" if item.ok else "[bold red]no[/]"
            table.add_row(mark, item.name, item.detail)
        out.print(table)
        out.print("[bold green]ready[/]" if report.ready else "[bold yellow]not ready[/]")
    if not report.ready:
        raise typer.Exit(1)


@audit_app.command("verify")
@friendly
def audit_verify(as_json: JsonOpt = False) -> None:
    """Recompute the audit log's hash chain and report whether it is intact."""
    ctx = open_app()
    v = ctx.audit.verify()
    payload = {
        "ok": v.ok,
        "rows": v.rows,
        "first_bad_seq": v.first_bad_seq,
        "reason": v.reason,
        "database": ctx.settings.db_url,
    }
    if as_json:
        print_json(payload)
    elif v.ok:
        out.print(f"[bold green]audit chain intact[/]: {v.rows} entries ({ctx.settings.db_url})")
    else:
        out.print(f"[bold red]audit chain BROKEN[/] at seq {v.first_bad_seq}: {v.reason}")
    if not v.ok:
        raise typer.Exit(1)


@db_app.command("upgrade")
@friendly
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Create or migrate the database schema to the latest version."""
    from sovereign.memory import current_revision

    ctx = open_app()
    rev = current_revision(ctx.engine)
    print_json({"revision": rev, "database": ctx.settings.db_url}) if as_json else out.print(
        f"database at revision [bold]{rev}[/] ({ctx.settings.db_url})"
    )


@constitution_app.callback()
@friendly
def constitution_show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the constitution and whether its file matches the recorded hash."""
    if ctx.invoked_subcommand is not None:
        return
    from sovereign.app.control import constitution as get_constitution

    payload = get_constitution(open_app()).to_json()
    if as_json:
        print_json(payload)
        return
    table = Table(title=f"Constitution ({payload['pin']})", show_header=False)
    for key, value in payload["limits"].items():
        table.add_row(key, str(value))
    out.print(table)


@constitution_app.command("amend")
@friendly
def constitution_amend(
    by: Annotated[str, typer.Option(help="The person accepting the changed file.")],
    note: Annotated[str, typer.Option(help="Why the constitution changed.")],
    as_json: JsonOpt = False,
) -> None:
    """Accept the current constitution file as the new pinned version (people only)."""
    sha = open_app().amend_constitution(by=by, note=note)
    print_json({"sha256": sha, "by": by}) if as_json else out.print(
        f"constitution pinned at {sha[:12]}… by {by}"
    )
