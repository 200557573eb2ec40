"""The `sovereign` command line. Every command that reports takes ``--json`` and then prints
exactly one JSON object on stdout. Errors print a sentence that says what to fix and exit 2."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from sovereign.errors import ConfigError, ConstitutionTampered, DataError, SovereignError

app = typer.Typer(
    help="Sovereign: an autonomous, self-improving trading system under an immutable constitution.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
constitution_app = typer.Typer(help="Show or amend the constitution.", invoke_without_command=True)
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(constitution_app, name="constitution")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # no wrapping: paths in errors stay whole

P = ParamSpec("P")
R = TypeVar("R")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def _friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn Sovereign's own errors into one clear line and exit code 2 (3 for tampering)."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ConstitutionTampered as e:
            err.print(f"[bold red]refused:[/] {e}")
            raise typer.Exit(3) from e
        except (ConfigError, DataError) as e:
            err.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from e
        except SovereignError as e:
            err.print(f"[bold red]error:[/] {type(e).__name__}: {e}")
            raise typer.Exit(2) from e

    return wrapper


def _print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")


def _date(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    from datetime import UTC

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not an ISO date such as 2019-01-31") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


# ---- backtest ------------------------------------------------------------------------------


@app.command()
@_friendly
def backtest(
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            "--strategy",
            "-s",
            help="Strategy name (repeatable). Default: regime_entry and momentum.",
        ),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="CSV/Parquet file in the documented OHLCV schema.")
    ] = None,
    universe: Annotated[
        str, typer.Option(help="Bundled sample when --data is not given.")
    ] = "sp500",
    symbol: Annotated[
        list[str] | None, typer.Option("--symbol", help="Restrict to these symbols (repeatable).")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="NAME=VALUE or STRATEGY.NAME=VALUE (repeatable)."),
    ] = None,
    start: Annotated[str | None, typer.Option(help="First bar, ISO date.")] = None,
    end: Annotated[str | None, typer.Option(help="Last bar, ISO date.")] = None,
    commission: Annotated[
        float, typer.Option(help="Commission as a fraction of notional.")
    ] = 0.0005,
    cash: Annotated[float, typer.Option(help="Starting cash.")] = 1_000_000.0,
    costs: Annotated[
        str,
        typer.Option(
            help="realistic (spread, slippage, partial fills) or simple (commission only)."
        ),
    ] = "realistic",
    rules: Annotated[
        Path | None, typer.Option(help="JSON file with a list of rules to apply.")
    ] = None,
    no_limits: Annotated[
        bool,
        typer.Option(
            "--no-limits", help="Research only: run without the constitution's trade-time limits."
        ),
    ] = False,
    seed: Annotated[
        int, typer.Option(help="Seed for the paper exchange and the regime engine.")
    ] = 42,
    as_json: JsonOpt = False,
) -> None:
    """Backtest strategies on bundled or your own data with the same Trader and Supervisor."""
    from sovereign.app.backtesting import BacktestRequest, run_request

    if costs not in ("realistic", "simple"):
        raise ConfigError(f"--costs {costs!r}: choose 'realistic' or 'simple'")
    request = BacktestRequest(
        strategies=tuple(strategy or ()),
        data=data,
        universe=universe,
        symbols=tuple(symbol or ()),
        params=tuple(param or ()),
        start=_date(start, "--start"),
        end=_date(end, "--end"),
        commission=commission,
        cash=cash,
        costs=costs,
        rules_file=rules,
        no_limits=no_limits,
        seed=seed,
    )
    if not as_json:
        err.print(f"[dim]backtesting {request.describe()} …[/]")
    result = run_request(request)
    if as_json:
        _print_json(result.to_json())
        return
    _print_backtest(result)


def _print_backtest(result: Any) -> None:
    m = result.metrics
    table = Table(title="Backtest", show_header=False)
    table.add_row(
        "period", f"{result.equity.index[0]:%Y-%m-%d} → {result.equity.index[-1]:%Y-%m-%d}"
    )
    table.add_row("warm-up bars (excluded)", str(result.warmup_bars))
    table.add_row("final equity", f"{result.final_equity:,.2f}")
    for key, fmt in (
        ("total_return", "{:+.2%}"),
        ("cagr", "{:+.2%}"),
        ("sharpe", "{:.2f}"),
        ("sortino", "{:.2f}"),
        ("calmar", "{:.2f}"),
        ("max_drawdown", "{:.2%}"),
        ("turnover", "{:.2f}x/yr"),
        ("exposure", "{:.1%}"),
        ("trades", "{:.0f}"),
        ("win_rate", "{:.1%}"),
    ):
        if key in m:
            table.add_row(key.replace("_", " "), fmt.format(m[key]))
    out.print(table)
    per = Table(title="Per strategy")
    for col in ("strategy", "trades", "realized P&L", "pool return", "win rate", "state"):
        per.add_column(col)
    for name, s in result.per_strategy.items():
        per.add_row(
            name,
            f"{s['trades']:.0f}",
            f"{s['realized_pnl']:,.0f}",
            f"{s['pool_return']:+.2%}",
            f"{s['win_rate']:.1%}",
            "KILLED" if s["killed"] else "active",
        )
    out.print(per)


# ---- the autonomous loop ---------------------------------------------------------------------


def _app() -> Any:
    from sovereign.app.context import App
    from sovereign.app.logs import setup_logging
    from sovereign.settings import Settings

    settings = Settings()
    setup_logging(settings.log_dir, settings.log_level)
    return App.open(settings)


@app.command()
@_friendly
def run(
    start: Annotated[
        str | None,
        typer.Option(help="First simulated day, ISO date (default: 7 years before the data ends)."),
    ] = None,
    days: Annotated[
        int | None,
        typer.Option(help="Simulated calendar days to replay (default: to the end of the data)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: settings run.seed, 42).")] = None,
    universe: Annotated[
        str | None, typer.Option(help="Bundled sample universe (default: sp500).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Replay your own CSV/Parquet OHLCV file instead.")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Wall-clock pacing: simulated seconds per real second (0 = as fast as possible)."
        ),
    ] = None,
    cash: Annotated[float | None, typer.Option(help="Starting paper cash.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the autonomous paper campaign: replay, trade, record, summarise."""
    from sovereign.app.backtesting import load_panel
    from sovereign.app.campaign import CampaignOptions, run_campaign
    from sovereign.settings import Settings

    rs = Settings().run
    options = CampaignOptions(
        universe=universe or rs.universe,
        data=data,
        start=_date(start or rs.start, "--start"),
        days=days if days is not None else rs.days,
        seed=seed if seed is not None else rs.seed,
        cash=cash or rs.cash,
        speed=speed if speed is not None else rs.speed,
    )
    # Data is validated before anything is opened or written: bad data refuses to start cleanly.
    panel = load_panel(options.data, options.universe, (), None, None)
    ctx = _app()
    if as_json:
        _print_json(run_campaign(ctx, options, panel=panel).to_json())
        return
    _print_campaign(_run_with_progress(ctx, options, panel))


def _run_with_progress(ctx: Any, options: Any, panel: Any) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sovereign.app.campaign import run_campaign

    columns = (
        TextColumn("[bold]{task.fields[date]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("equity [green]{task.fields[equity]}"),
        TextColumn("dd [yellow]{task.fields[dd]}"),
        TextColumn("[cyan]{task.fields[state]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("replay", total=None, date="preparing…", equity="-", dd="-", state="-")

        def update(p: Any) -> None:
            bar.update(
                task,
                total=p.bars,
                completed=p.bar,
                date=f"{p.timestamp:%Y-%m-%d}",
                equity=f"{p.equity:,.0f}",
                dd=f"{p.drawdown:.1%}",
                state=p.state,
            )

        return run_campaign(ctx, options, panel=panel, on_progress=update)


def _print_campaign(report: Any) -> None:
    _print_backtest(report.result)
    if report.stopped:
        out.print(f"[bold red]stopped:[/] {report.stopped}")
    out.print(
        f"run [bold]{report.run_id}[/] · {report.start:%Y-%m-%d} → {report.end:%Y-%m-%d} · "
        f"orders {report.counts.get('orders', 0)}, fills {report.counts.get('fills', 0)}, "
        f"round trips {report.counts.get('trades', 0)}"
    )
    out.print(
        f"database: [bold]{report.database}[/]  (inspect with `sovereign status`, "
        "`sovereign audit verify`)"
    )


@app.command()
@_friendly
def status(as_json: JsonOpt = False) -> None:
    """Supervisor state, last run, active rules and the constitution pin."""
    from sovereign.app.control import status as get_status

    s = get_status(_app())
    if as_json:
        _print_json(s)
        return
    table = Table(title="Sovereign status", show_header=False)
    for key, value in s.items():
        table.add_row(
            key.replace("_", " "),
            json.dumps(value, default=str) if isinstance(value, dict | list) else str(value),
        )
    out.print(table)


@app.command()
@_friendly
def halt(
    reason: Annotated[str, typer.Option(help="Why trading must stop.")] = "halted by a person",
    by: Annotated[str, typer.Option(help="Who halts.")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Halt trading now (persisted: survives restarts until `sovereign resume`)."""
    from sovereign.app.control import halt as do_halt

    result = do_halt(_app(), by=by, reason=reason)
    _print_json(result) if as_json else out.print(f"[bold red]HALTED[/] ({result['reason']})")


@app.command()
@_friendly
def resume(
    by: Annotated[str, typer.Option(help="The person who decides to trade again.")],
    as_json: JsonOpt = False,
) -> None:
    """Lift a halt. Only a person does this; it is recorded with their name."""
    from sovereign.app.control import resume as do_resume

    result = do_resume(_app(), by=by)
    _print_json(result) if as_json else out.print(
        f"[bold green]{result['state']}[/] ({result['message']})"
    )


@audit_app.command("verify")
@_friendly
def audit_verify(as_json: JsonOpt = False) -> None:
    """Recompute the audit log's hash chain and report whether it is intact."""
    ctx = _app()
    v = ctx.audit.verify()
    payload = {
        "ok": v.ok,
        "rows": v.rows,
        "first_bad_seq": v.first_bad_seq,
        "reason": v.reason,
        "database": ctx.settings.db_url,
    }
    if as_json:
        _print_json(payload)
    elif v.ok:
        out.print(f"[bold green]audit chain intact[/]: {v.rows} entries ({ctx.settings.db_url})")
    else:
        out.print(f"[bold red]audit chain BROKEN[/] at seq {v.first_bad_seq}: {v.reason}")
    if not v.ok:
        raise typer.Exit(1)


@db_app.command("upgrade")
@_friendly
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Create or migrate the database schema to the latest version."""
    from sovereign.memory import current_revision

    ctx = _app()
    rev = current_revision(ctx.engine)
    _print_json({"revision": rev, "database": ctx.settings.db_url}) if as_json else out.print(
        f"database at revision [bold]{rev}[/] ({ctx.settings.db_url})"
    )


@constitution_app.callback()
@_friendly
def constitution_show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the constitution and whether its file matches the recorded hash."""
    if ctx.invoked_subcommand is not None:
        return
    from sovereign.app.control import constitution as get_constitution

    payload = get_constitution(_app())
    if as_json:
        _print_json(payload)
        return
    table = Table(title=f"Constitution ({payload['pin']})", show_header=False)
    for key, value in payload["limits"].items():
        table.add_row(key, str(value))
    out.print(table)


@constitution_app.command("amend")
@_friendly
def constitution_amend(
    by: Annotated[str, typer.Option(help="The person accepting the changed file.")],
    note: Annotated[str, typer.Option(help="Why the constitution changed.")],
    as_json: JsonOpt = False,
) -> None:
    """Accept the current constitution file as the new pinned version (people only)."""
    sha = _app().amend_constitution(by=by, note=note)
    _print_json({"sha256": sha, "by": by}) if as_json else out.print(
        f"constitution pinned at {sha[:12]}… by {by}"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
