"""What every command module shares: the Typer apps, consoles, error handling, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

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


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
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


def print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")


def parse_date(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    from datetime import UTC

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not an ISO date such as 2019-01-31") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def open_app() -> Any:
    from sovereign.app.context import App
    from sovereign.app.logs import setup_logging
    from sovereign.settings import Settings

    settings = Settings()
    setup_logging(settings.log_dir, settings.log_level)
    return App.open(settings)
