"""`sovereign bot`: the Telegram bot alone, long polling until SIGINT or SIGTERM."""

from __future__ import annotations

from typing import Annotated

import typer

from sovereign.cli._common import app, err, friendly, open_app


@app.command()
@friendly
def bot(
    poll_timeout: Annotated[
        float, typer.Option(help="Seconds each long poll waits for updates.")
    ] = 10.0,
) -> None:
    """Run the Telegram bot (SOVEREIGN_TELEGRAM__TOKEN, __ALLOWED_USER_IDS, __BASE_URL)."""
    from sovereign.bots.telegram import from_settings, run_until_signal

    ctx = open_app()
    try:
        served, application = from_settings(ctx, ctx.settings)
        users = len(served.allow.user_ids)
        err.print(f"Telegram bot polling for {users} allowed user(s); Ctrl-C stops it")
        run_until_signal(application, poll_timeout=poll_timeout)
    finally:
        ctx.dispose()
