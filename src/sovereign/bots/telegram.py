"""The Telegram bot (python-telegram-bot 22): commands over the control service.

``/status /capital /rules /constitution /history /proposals /readiness /help`` answer at once;
``/rollback <version> /halt /resume`` ask for confirmation with an inline button (a one-time
nonce that expires, see :mod:`sovereign.bots.confirm`) and then run through the control service
with ``by="telegram:<user id>"``.

Order of handlers: group -1 holds only the allow-list guard (:mod:`sovereign.bots.auth`), which
stops every update from anyone not listed before a command handler sees it. A command that
fails answers with one line (the error's message for Sovereign's own errors, a generic sentence
otherwise) and logs the traceback; nothing is re-raised into PTB, and no stack trace reaches
the chat.

The control service is synchronous (SQLite/PostgreSQL), so handlers run it in a worker thread
(``asyncio.to_thread``) and the event loop keeps polling.

Running: :func:`serve` (a coroutine, until an event is set), :class:`BotThread` (in a
background thread beside something else, e.g. ``sovereign run``), :func:`run_until_signal`
(``sovereign bot``: the bot alone until SIGINT/SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import threading
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeAlias

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    TypeHandler,
)

from sovereign.app import control
from sovereign.app.context import App
from sovereign.bots import format as fmt
from sovereign.bots.auth import AllowList, parse_user_ids
from sovereign.bots.confirm import CANCEL_PREFIX, CONFIRM_PREFIX, Confirmations, Pending, Refused
from sovereign.errors import ConfigError, SovereignError
from sovereign.settings import Settings

log = logging.getLogger(__name__)

TelegramApp: TypeAlias = Application[Any, Any, Any, Any, Any, Any]
Context: TypeAlias = ContextTypes.DEFAULT_TYPE
Handler: TypeAlias = Callable[["SovereignBot", Update, Context], Coroutine[Any, Any, None]]

COMMANDS: tuple[tuple[str, str], ...] = (
    ("status", "state, equity, drawdown, rules"),
    ("capital", "per-strategy pools"),
    ("rules", "active rules"),
    ("constitution", "the limits and their pin"),
    ("history", "recent changes"),
    ("proposals", "recent proposals"),
    ("rollback", "<version> restore rules"),
    ("halt", "stop trading (confirm)"),
    ("resume", "trade again (confirm)"),
    ("readiness", "live-readiness checklist"),
    ("help", "this list"),
)
GENERIC_ERROR = "⚠️ That did not work; the details are in the log."


def quiet_http_logs() -> None:
    """httpx logs every request URL at INFO, and a Bot API URL contains the token."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def _safe(fn: Handler) -> Handler:
    """Answer a failing command with one line; log the traceback; never re-raise."""

    @functools.wraps(fn)
    async def wrapper(self: SovereignBot, update: Update, context: Context) -> None:
        try:
            await fn(self, update, context)
        except SovereignError as err:
            log.info("bot command refused: %s", err)
            await self._reply(update, f"⚠️ {fmt.short(err, 300)}")
        except Exception:
            log.exception("bot command failed")
            await self._reply(update, GENERIC_ERROR)

    return wrapper


class SovereignBot:
    """The handlers, bound to one application context, allow-list and confirmation book."""

    def __init__(
        self,
        app: App,
        *,
        allow: AllowList,
        confirmations: Confirmations | None = None,
        history_limit: int = 10,
        proposals_limit: int = 5,
    ) -> None:
        self.app = app
        self.allow = allow
        self.confirmations = confirmations if confirmations is not None else Confirmations()
        self.history_limit = history_limit
        self.proposals_limit = proposals_limit

    def register(self, application: TelegramApp) -> None:
        """Add the guard (group -1), the commands, the confirmation buttons, the error handler."""
        application.add_handler(TypeHandler(Update, self.allow.guard), group=-1)
        simple: dict[str, Callable[[Update, Context], Coroutine[Any, Any, None]]] = {
            "status": self.status,
            "capital": self.capital,
            "rules": self.rules,
            "constitution": self.constitution,
            "history": self.history,
            "proposals": self.proposals,
            "readiness": self.readiness,
            "help": self.help,
            "start": self.help,
            "rollback": self.rollback,
            "halt": self.halt,
            "resume": self.resume,
        }
        for name, callback in simple.items():
            application.add_handler(CommandHandler(name, callback))
        application.add_handler(CallbackQueryHandler(self.button))
        application.add_error_handler(self._on_error)

    # --- replies ------------------------------------------------------------------------------

    async def _reply(
        self, update: Update, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        message = update.effective_message
        if message is None:
            return
        try:
            await message.reply_text(
                fmt.clip(text),
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                disable_web_page_preview=True,
            )
        except TelegramError as err:
            log.warning("could not send a reply: %s", type(err).__name__)

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, self.app, *args, **kwargs)

    # --- read-only commands -------------------------------------------------------------------

    @_safe
    async def status(self, update: Update, _context: Context) -> None:
        report = await self._run(control.status)
        await self._reply(update, fmt.status_text(report, refused=self.allow.refused))

    @_safe
    async def capital(self, update: Update, _context: Context) -> None:
        await self._reply(update, fmt.capital_text(await self._run(control.capital)))

    @_safe
    async def rules(self, update: Update, _context: Context) -> None:
        await self._reply(update, fmt.rules_text(await self._run(control.rules)))

    @_safe
    async def constitution(self, update: Update, _context: Context) -> None:
        await self._reply(update, fmt.constitution_text(await self._run(control.constitution)))

    @_safe
    async def history(self, update: Update, _context: Context) -> None:
        report = await self._run(control.history, limit=self.history_limit)
        await self._reply(update, fmt.history_text(report))

    @_safe
    async def proposals(self, update: Update, _context: Context) -> None:
        report = await self._run(control.proposals, limit=self.proposals_limit)
        await self._reply(update, fmt.proposals_text(report))

    @_safe
    async def readiness(self, update: Update, _context: Context) -> None:
        await self._reply(update, fmt.readiness_text(await self._run(control.readiness)))

    @_safe
    async def help(self, update: Update, _context: Context) -> None:
        await self._reply(update, fmt.help_text(COMMANDS))

    # --- commands that ask first --------------------------------------------------------------

    @_safe
    async def rollback(self, update: Update, context: Context) -> None:
        args = context.args or []
        if len(args) != 1 or not args[0].isdigit():
            await self._reply(update, "Usage: /rollback &lt;version&gt;\nSee /rules for versions.")
            return
        await self._ask(update, "rollback", int(args[0]))

    @_safe
    async def halt(self, update: Update, _context: Context) -> None:
        await self._ask(update, "halt", None)

    @_safe
    async def resume(self, update: Update, _context: Context) -> None:
        await self._ask(update, "resume", None)

    async def _ask(self, update: Update, action: str, arg: int | None) -> None:
        user = update.effective_user
        if user is None:
            return
        pending = self.confirmations.ask(user.id, action, arg)
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Confirm", callback_data=CONFIRM_PREFIX + pending.nonce),
                    InlineKeyboardButton("Cancel", callback_data=CANCEL_PREFIX + pending.nonce),
                ]
            ]
        )
        seconds = int(self.confirmations.ttl.total_seconds())
        await self._reply(update, fmt.confirm_text(action, arg, seconds), buttons)

    @_safe
    async def button(self, update: Update, _context: Context) -> None:
        query, user = update.callback_query, update.effective_user
        if query is None or user is None:
            return
        data = query.data or ""
        if data.startswith(CANCEL_PREFIX):
            cancelled = self.confirmations.cancel(data[len(CANCEL_PREFIX) :], user.id)
            await query.answer()
            if cancelled:
                await self._edit(update, "Cancelled.")
            return
        if not data.startswith(CONFIRM_PREFIX):
            await query.answer("Unknown button.")
            return
        taken = self.confirmations.take(data[len(CONFIRM_PREFIX) :], user.id)
        if isinstance(taken, Refused):
            await query.answer(taken.reason, show_alert=True)
            if "expired" in taken.reason:
                await self._edit(update, f"⌛ {fmt.e(taken.reason)}")
            return
        await query.answer("Working…")
        try:
            text = await self._act(taken)
        except SovereignError as err:
            text = f"⚠️ Refused: {fmt.short(err, 300)}"
        await self._edit(update, text)

    async def _act(self, pending: Pending) -> str:
        by = f"telegram:{pending.user_id}"
        if pending.action == "halt":
            result = await self._run(control.halt, by=by, reason="halted from Telegram")
            return fmt.halt_text(result)
        if pending.action == "resume":
            return fmt.resume_text(await self._run(control.resume, by=by))
        if pending.action == "rollback" and pending.arg is not None:
            result = await self._run(
                control.rollback, pending.arg, by=by, reason="rolled back from Telegram"
            )
            return fmt.rollback_text(result)
        raise ConfigError(f"unknown action {pending.action!r}")

    async def _edit(self, update: Update, text: str) -> None:
        query = update.callback_query
        if query is None:
            return
        try:
            await query.edit_message_text(fmt.clip(text), parse_mode=ParseMode.HTML)
        except TelegramError as err:
            log.warning("could not edit a confirmation: %s", type(err).__name__)

    async def _on_error(self, update: object, context: Context) -> None:
        """Errors outside the command wrappers (network trouble while polling, ...)."""
        err = context.error
        log.warning(
            "Telegram error: %s", type(err).__name__, exc_info=not isinstance(err, TelegramError)
        )


# --- building and running ---------------------------------------------------------------------


def build_application(bot: SovereignBot, *, token: str, base_url: str | None = None) -> TelegramApp:
    """A PTB application with ``bot``'s handlers (no job queue, no persistence)."""
    quiet_http_logs()
    builder = ApplicationBuilder().token(token).job_queue(None)
    if base_url:
        builder = builder.base_url(base_url)
        file_url = base_url[: -len("/bot")] + "/file/bot" if base_url.endswith("/bot") else None
        if file_url:
            builder = builder.base_file_url(file_url)
    application: TelegramApp = builder.build()
    bot.register(application)
    return application


def from_settings(
    app: App, settings: Settings, *, confirmations: Confirmations | None = None
) -> tuple[SovereignBot, TelegramApp]:
    """The bot configured by ``SOVEREIGN_TELEGRAM__*``. ConfigError without a token."""
    tg = settings.telegram
    if tg.token is None or not tg.token.get_secret_value().strip():
        raise ConfigError(
            "no Telegram bot token: set SOVEREIGN_TELEGRAM__TOKEN (from @BotFather) and "
            "SOVEREIGN_TELEGRAM__ALLOWED_USER_IDS (comma-separated user ids)"
        )
    allow = AllowList(parse_user_ids(tg.allowed_user_ids))
    if not allow.user_ids:
        log.warning("SOVEREIGN_TELEGRAM__ALLOWED_USER_IDS is empty: the bot will serve nobody")
    bot = SovereignBot(app, allow=allow, confirmations=confirmations)
    application = build_application(
        bot, token=tg.token.get_secret_value().strip(), base_url=tg.base_url
    )
    return bot, application


async def serve(
    application: TelegramApp,
    stop: asyncio.Event,
    *,
    poll_timeout: float = 10.0,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Initialise (getMe), publish the command list, long-poll until ``stop`` is set, shut
    down. An invalid token raises ConfigError."""
    try:
        await application.initialize()
    except InvalidToken as err:
        raise ConfigError("the Telegram API refused the bot token (InvalidToken)") from err
    try:
        try:
            await application.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS])
        except TelegramError as err:
            log.warning("could not publish the command list: %s", type(err).__name__)
        updater = application.updater
        if updater is None:  # pragma: no cover - the builder always makes one
            raise ConfigError("the Telegram application has no updater")
        await updater.start_polling(timeout=timedelta(seconds=poll_timeout))
        await application.start()
        log.info("Telegram bot polling")
        if on_ready is not None:
            on_ready()
        await stop.wait()
        await updater.stop()
        await application.stop()
    finally:
        await application.shutdown()


class BotThread:
    """Run the bot in a background thread with its own event loop."""

    def __init__(self, application: TelegramApp, *, poll_timeout: float = 10.0) -> None:
        self.application = application
        self.poll_timeout = poll_timeout
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="telegram-bot", daemon=True)

    def start(self, timeout: float = 15.0) -> BotThread:
        """Start and wait until polling has begun; re-raise a start-up failure."""
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise ConfigError(f"the Telegram bot did not start within {timeout} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error
        return self

    def stop(self, timeout: float = 15.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout)

    def __enter__(self) -> BotThread:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await serve(
                self.application,
                self._stop,
                poll_timeout=self.poll_timeout,
                on_ready=self._ready.set,
            )

        try:
            asyncio.run(main())
        except BaseException as err:  # reported to start(); the thread must end quietly
            self._error = err
            log.exception("the Telegram bot stopped with an error")
        finally:
            self._ready.set()


def run_until_signal(application: TelegramApp, *, poll_timeout: float = 10.0) -> None:
    """Run the bot in this thread until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(application, stop, poll_timeout=poll_timeout)

    asyncio.run(main())


__all__ = [
    "COMMANDS",
    "BotThread",
    "SovereignBot",
    "build_application",
    "from_settings",
    "quiet_http_logs",
    "run_until_signal",
    "serve",
]
