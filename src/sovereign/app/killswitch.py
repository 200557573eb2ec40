"""The kill switch: may the system take new risk now? It fails closed.

:meth:`KillSwitch.check` answers no when

1. the halt file ``<data_dir>/HALT`` exists: checked first, on the local disk only, so it halts
   even when the database is unreachable;
2. there is no application / database to ask;
3. the persisted Supervisor state cannot be read in time (an exception, or no answer within
   ``timeout`` seconds): the reason is logged;
4. the persisted Supervisor state is HALTED (a drawdown stop or a person's halt, which survives
   restarts).

:meth:`KillSwitch.halt` writes the halt file first (it works without a database) and then the
persisted HALTED state, with its transition and audit entry. :meth:`KillSwitch.resume` is for a
person only: it needs their name, refuses names the system uses for itself, and refuses while the
halt file exists (a person removes the file, then resumes).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sovereign.app.context import SUPERVISOR_KEY, App
from sovereign.constitution import load as load_constitution
from sovereign.errors import HaltTrading
from sovereign.trading.supervisor import SupervisorState

log = logging.getLogger(__name__)

HALT_FILE = "HALT"
SYSTEM_NAMES = frozenset({"", "system", "scheduler", "sovereign", "bot", "auto", "llm"})
"""Names that are not a person: a resume by them is refused."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """``trade``: new risk allowed. ``reason``: why (for logs and notifications)."""

    trade: bool
    reason: str


class KillSwitch:
    """Fail-closed trading switch over ``app`` (None: no database, always no) and ``data_dir``.

    ``timeout``: seconds to wait for the persisted state before answering no.
    """

    def __init__(self, app: App | None, data_dir: Path, *, timeout: float = 5.0) -> None:
        self.app = app
        self.data_dir = Path(data_dir)
        self.timeout = timeout

    @property
    def halt_file(self) -> Path:
        return self.data_dir / HALT_FILE

    def check(self, now: datetime) -> Decision:
        """May the system open new risk at ``now``? See the module docstring for the order."""
        if self.halt_file.exists():
            return Decision(trade=False, reason=f"halt file {self.halt_file} exists")
        if self.app is None:
            return self._closed("no database to read the Supervisor state from", now)
        try:
            data = self._read_state()
        except Exception as err:
            return self._closed(f"Supervisor state unreadable: {err!r}", now)
        if data is None:
            return Decision(trade=True, reason="no Supervisor state recorded yet (fresh start)")
        state = data.get("state")
        if state == SupervisorState.HALTED.value:
            return Decision(trade=False, reason=f"Supervisor HALTED: {data.get('reason', '')}")
        if state not in {s.value for s in SupervisorState}:
            return self._closed(f"Supervisor state {state!r} is not one I know", now)
        return Decision(trade=True, reason=f"Supervisor {state}")

    def halt(self, by: str, reason: str, now: datetime) -> Decision:
        """Halt: write the halt file, then persist HALTED (a database failure is logged; the
        file alone keeps trading halted)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.halt_file.write_text(f"halted at {now.isoformat()} by {by}: {reason}\n")
        if self.app is None:
            return Decision(trade=False, reason=f"halted by {by} (halt file only: no database)")
        try:
            self._persist_halt(self.app, by, reason, now)
        except Exception as err:
            log.exception("halt by %s: the halt file is written but the database failed", by)
            return Decision(
                trade=False, reason=f"halted by {by} (halt file only; database failed: {err!r})"
            )
        return Decision(trade=False, reason=f"halted by {by}: {reason}")

    def resume(self, by: str, now: datetime) -> Decision:
        """Lift a HALT; a person's name is required. Raises :class:`HaltTrading` while the halt
        file exists, for a name the system uses, or without a database."""
        if by.strip().lower() in SYSTEM_NAMES:
            raise HaltTrading(f"only a person can resume trading; {by!r} is not a person's name")
        if self.halt_file.exists():
            raise HaltTrading(
                f"the halt file {self.halt_file} still exists: a person removes it, then resumes"
            )
        if self.app is None:
            raise HaltTrading("cannot resume without the database that holds the HALTED state")
        app = self.app
        constitution, _ = load_constitution(app.constitution_path)
        sup = app.load_supervisor(constitution)
        t = sup.resume(now, by)
        app.save_supervisor(sup, now)
        if t is not None:
            app.supervisor_store.record_transition(
                at=now,
                scope="global",
                from_state=t.from_state,
                to_state=t.to_state,
                reason=t.reason,
            )
            app.audit.append("supervisor.resume", {"by": by, "from": t.from_state}, now)
        return self.check(now)

    # ---- internals --------------------------------------------------------------------

    def _closed(self, reason: str, now: datetime) -> Decision:
        log.error("kill switch closed at %s: %s", now.isoformat(), reason)
        return Decision(trade=False, reason=reason)

    def _read_state(self) -> dict[str, Any] | None:
        """The persisted Supervisor snapshot, read on a daemon thread so that a database that
        hangs cannot hang the caller; raises ``TimeoutError`` after ``timeout`` seconds."""
        app = self.app
        assert app is not None  # noqa: S101 - checked by the caller
        box: dict[str, Any] = {}

        def read() -> None:
            try:
                box["value"] = app.supervisor_store.load_state(SUPERVISOR_KEY)
            except BaseException as err:  # handed to the caller's thread
                box["error"] = err

        worker = threading.Thread(target=read, name="killswitch-read", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise TimeoutError(f"the database did not answer within {self.timeout:g} s")
        if "error" in box:
            raise box["error"]
        value: dict[str, Any] | None = box.get("value")
        return value

    @staticmethod
    def _persist_halt(app: App, by: str, reason: str, now: datetime) -> None:
        constitution, _ = load_constitution(app.constitution_path)
        sup = app.load_supervisor(constitution)
        t = sup.halt(now, f"{reason} (by {by})")
        app.save_supervisor(sup, now)
        if t is not None:
            app.supervisor_store.record_transition(
                at=now,
                scope="global",
                from_state=t.from_state,
                to_state=t.to_state,
                reason=t.reason,
            )
            app.audit.append("supervisor.halt", {"by": by, "reason": reason}, now)


def halt_file(app: App) -> Path:
    """The halt file of ``app``'s data directory: its presence halts trading."""
    return app.settings.data_dir / HALT_FILE


__all__ = ["HALT_FILE", "SYSTEM_NAMES", "Decision", "KillSwitch", "halt_file"]
