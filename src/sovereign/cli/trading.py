"""Trading commands: backtest and the autonomous paper campaign."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sovereign.cli._common import (
    JsonOpt,
    app,
    err,
    friendly,
    open_app,
    out,
    parse_date,
    print_json,
)
from sovereign.errors import ConfigError

# ---- backtest ------------------------------------------------------------------------------


@app.command()
@friendly
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
        start=parse_date(start, "--start"),
        end=parse_date(end, "--end"),
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
        print_json(result.to_json())
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


@app.command()
@friendly
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
    improve_every: Annotated[
        int | None,
        typer.Option(
            help="Simulated days between improvement cycles (0 = none; default: settings, 61)."
        ),
    ] = None,
    broker: Annotated[
        str,
        typer.Option(
            help="paper: replay on the paper exchange (default). alpaca: trade live on the wall "
            "clock against Alpaca (keys from APCA_API_KEY_ID / APCA_API_SECRET_KEY). ibkr: the "
            "same against TWS / IB Gateway (SOVEREIGN_IBKR__HOST, __PORT, __CLIENT_ID)."
        ),
    ] = "paper",
    symbol: Annotated[
        list[str] | None,
        typer.Option("--symbol", help="With a live --broker: a symbol to trade (repeatable)."),
    ] = None,
    strategy: Annotated[
        list[str] | None,
        typer.Option("--strategy", "-s", help="With a live --broker: strategy name (repeatable)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="With a live --broker: NAME=VALUE (repeatable)."),
    ] = None,
    poll_seconds: Annotated[
        float, typer.Option(help="With a live --broker: seconds between trading cycles.")
    ] = 60.0,
    timeframe: Annotated[
        str, typer.Option(help="With a live --broker: bar timeframe (1Day, 1Hour, 5Min, ...).")
    ] = "1Day",
    session_only: Annotated[
        bool,
        typer.Option(
            "--session-only/--any-time",
            help="With a live --broker: trade and reconcile only during NYSE sessions.",
        ),
    ] = True,
    account: Annotated[
        str | None,
        typer.Option(
            help="With a live --broker: the account's stable name (order id namespace; "
            "default alpaca-paper, alpaca-live or ibkr)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the autonomous loop: by default the paper campaign (replay, trade, study, improve,
    record, summarise); with --broker alpaca or ibkr, live on the wall clock until
    SIGINT/SIGTERM."""
    if broker not in ("paper", "alpaca", "ibkr"):
        raise ConfigError(f"--broker must be paper, alpaca or ibkr, got {broker!r}")
    if broker != "paper":
        _run_broker(
            broker,
            symbols=tuple(symbol or ()),
            strategies=tuple(strategy or ()),
            params=tuple(param or ()),
            poll_seconds=poll_seconds,
            timeframe=timeframe,
            session_only=session_only,
            account=account,
            seed=seed,
            as_json=as_json,
        )
        return
    from sovereign.app.backtesting import load_panel
    from sovereign.app.campaign import CampaignOptions, run_campaign
    from sovereign.app.replay_improver import ImproverOptions
    from sovereign.graph.llm import make_chat_model
    from sovereign.settings import Settings

    settings = Settings()
    rs = settings.run
    run_seed = seed if seed is not None else rs.seed
    every = improve_every if improve_every is not None else rs.improvement_every_days
    options = CampaignOptions(
        universe=universe or rs.universe,
        data=data,
        start=parse_date(start or rs.start, "--start"),
        days=days if days is not None else rs.days,
        seed=run_seed,
        cash=cash or rs.cash,
        speed=speed if speed is not None else rs.speed,
        improve_every_days=every,
        improver=ImproverOptions(
            every_days=every, seed=run_seed, llm=make_chat_model(settings.llm)
        ),
    )
    # Data is validated before anything is opened or written: bad data refuses to start cleanly.
    panel = load_panel(options.data, options.universe, (), None, None)
    ctx = open_app()
    if as_json:
        print_json(run_campaign(ctx, options, panel=panel).to_json())
        return
    _print_campaign(_run_with_progress(ctx, options, panel))


def _run_broker(
    broker: str,
    *,
    symbols: tuple[str, ...],
    strategies: tuple[str, ...],
    params: tuple[str, ...],
    poll_seconds: float,
    timeframe: str,
    session_only: bool,
    account: str | None,
    seed: int | None,
    as_json: bool,
) -> None:
    """`sovereign run --broker alpaca|ibkr`: the live loop (sovereign.app.live) until a signal."""
    from datetime import timedelta

    from sovereign.app.live import BarSource, CycleReport, LiveOptions, run_live
    from sovereign.brokers.port import Broker
    from sovereign.settings import Settings
    from sovereign.trading.catalog import DEFAULT_STRATEGIES, parse_params

    if not symbols:
        raise ConfigError(f"--broker {broker} needs at least one --symbol to trade")
    settings = Settings()
    names = strategies or DEFAULT_STRATEGIES
    client: Broker
    data: BarSource
    if broker == "alpaca":
        from sovereign.brokers.alpaca import AlpacaBroker, AlpacaData

        paper = settings.alpaca.paper
        default_account = "alpaca-paper" if paper else "alpaca-live"
        mode = "paper-alpaca" if paper else "live-alpaca"
        alpaca_data = AlpacaData(settings=settings.alpaca)  # ConfigError: keys missing
        client = AlpacaBroker(settings=settings.alpaca, last_price=alpaca_data.last_price)
        data = alpaca_data
    else:
        from sovereign.brokers.ibkr import IBKRBroker, IBKRData

        # ConfigError without ib_async; BrokerUnavailable when TWS does not answer
        ib_broker = IBKRBroker.connect(settings.ibkr)
        ib_data = IBKRData(ib_broker.ib)
        ib_broker.last_price = ib_data.last_price  # sizes equity_fraction orders
        default_account, mode = "ibkr", "live-ibkr"
        client, data = ib_broker, ib_data
    options = LiveOptions(
        symbols=symbols,
        account=account or default_account,
        mode=mode,
        strategies=names,
        params=parse_params(params, names),
        poll=timedelta(seconds=poll_seconds),
        timeframe=timeframe,
        session_only=session_only,
        seed=seed if seed is not None else settings.run.seed,
    )
    ctx = open_app()

    def progress(c: CycleReport) -> None:
        bar = "-" if c.bar is None else f"{c.bar:%Y-%m-%d %H:%M}"
        equity = "-" if c.equity is None else f"{c.equity:,.2f}"
        err.print(
            f"cycle {c.at:%Y-%m-%dT%H:%M:%S}Z bar {bar} equity {equity} orders {c.orders} "
            f"fills {c.fills} state {c.state}" + (f" ({c.note})" if c.note else ""),
            highlight=False,
        )

    err.print(
        f"live: {options.mode} account {options.account}, {', '.join(symbols)}, "
        f"poll {poll_seconds:g}s; stop with Ctrl-C (SIGINT) or SIGTERM",
        highlight=False,
    )
    report = run_live(ctx, options, broker=client, data=data, on_cycle=progress)
    if as_json:
        print_json(report.to_json())
        return
    out.print(
        f"run [bold]{report.run_id}[/] stopped · cycles {report.cycles}, orders {report.orders}, "
        f"fills {report.fills}"
    )


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
    _print_improvement(report.improvement)
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


def _print_improvement(imp: dict[str, Any]) -> None:
    """What the improvement cycles proposed and decided, with reasons."""
    if not imp.get("cycles"):
        return
    table = Table(
        title=(
            f"Self-improvement: {imp['cycles']} cycles, {imp['proposals']} proposals, "
            f"{len(imp['deployed'])} deployed, {len(imp['rejected'])} rejected, "
            f"{len(imp['rollbacks'])} rolled back"
        )
    )
    for column in ("day", "proposal", "verdict", "reasons"):
        table.add_column(column, overflow="fold")
    entries = sorted([*imp["deployed"], *imp["rejected"]], key=lambda o: o["at"])
    for o in entries:
        verdict = (
            f"[green]deployed v{o['version']}[/]"
            if o["status"] == "deployed"
            else f"[red]rejected[/] at {o['stage']}"
        )
        reasons = "; ".join(r.split(":", 1)[0] for r in o["reasons"]) or "-"
        table.add_row(o["at"][:10], f"{o['summary']} [{o['source']}]", verdict, reasons)
    for r in imp["rollbacks"]:
        table.add_row(
            r["at"][:10],
            f"rollback v{r['from_version']} → v{r['to_version']}",
            r["by"],
            r["reason"],
        )
    out.print(table)
    out.print("reasons in full: `sovereign history`")
