"""Where the improvement cycle keeps its checkpoints.

SQLite (the default): ``<data_dir>/checkpoints.sqlite``, a file of its own next to the
application database, through langgraph-checkpoint-sqlite's ``SqliteSaver`` (WAL journal).
PostgreSQL: when the application database is PostgreSQL, the checkpoints go to the same database
through ``langgraph.checkpoint.postgres.PostgresSaver`` (the ``postgres`` extra), imported only
then.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from sqlalchemy.engine import make_url

from sovereign.errors import ConfigError

if TYPE_CHECKING:
    from sovereign.settings import Settings

CHECKPOINT_FILE = "checkpoints.sqlite"


@contextmanager
def open_checkpointer(
    source: Settings | str, data_dir: Path | None = None
) -> Iterator[BaseCheckpointSaver[Any]]:
    """A checkpointer for the application database named by ``source`` (Settings or a database
    URL), open for the duration of the ``with`` block.

    For SQLite the checkpoints live in ``data_dir / "checkpoints.sqlite"`` (``data_dir``
    defaults to ``settings.data_dir``; it is required with a bare URL). Raises ConfigError for
    an unsupported URL, or a PostgreSQL URL without the ``postgres`` extra installed.
    """
    if isinstance(source, str):
        url = source
    else:
        url = source.db_url
        data_dir = data_dir if data_dir is not None else source.data_dir
    try:
        backend = make_url(url).get_backend_name()
    except Exception as err:  # sqlalchemy raises ArgumentError for junk
        raise ConfigError(f"invalid database URL {url!r}: {err}") from err
    if backend == "sqlite":
        if data_dir is None:
            raise ConfigError("a SQLite checkpointer needs the data directory")
        with sqlite_checkpointer(Path(data_dir) / CHECKPOINT_FILE) as saver:
            yield saver
    elif backend == "postgresql":
        with _postgres_checkpointer(url) as saver:
            yield saver
    else:
        raise ConfigError(
            f"no checkpointer for database URL scheme {backend!r}: use SQLite or PostgreSQL"
        )


@contextmanager
def sqlite_checkpointer(path: Path) -> Iterator[SqliteSaver]:
    """A ``SqliteSaver`` on ``path`` (parent directories created), tables set up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The saver serialises access with its own lock, so the connection may cross threads.
    with closing(sqlite3.connect(path, check_same_thread=False)) as conn:
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver


@contextmanager
def _postgres_checkpointer(url: str) -> Iterator[BaseCheckpointSaver[Any]]:
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
    except ImportError as err:
        raise ConfigError(
            "the database is PostgreSQL but the PostgreSQL checkpointer is not installed: "
            "pip install 'sovereign[postgres]' (langgraph-checkpoint-postgres)"
        ) from err
    # libpq takes postgresql://, not SQLAlchemy's postgresql+psycopg://
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with PostgresSaver.from_conn_string(conninfo) as saver:
        saver.setup()
        yield saver


def prune_checkpoints(saver: BaseCheckpointSaver[Any], *, keep: int, protect: str = "") -> int:
    """Delete the checkpoints of every cycle but the ``keep`` newest (by their last
    checkpoint's time) and ``protect`` (the cycle in progress); returns how many cycles went.

    A finished cycle's outcome lives in memory (proposals, verdicts, deployments), so its
    checkpoints only matter while it might be resumed: the newest few are kept for that."""
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    latest: dict[str, str] = {}
    for item in saver.list(None):
        thread = str(item.config["configurable"]["thread_id"])
        ts = str(item.checkpoint["ts"])
        if ts > latest.get(thread, ""):
            latest[thread] = ts
    newest_first = sorted(latest, key=lambda t: latest[t], reverse=True)
    gone = [t for t in newest_first[keep:] if t != protect]
    for thread in gone:
        saver.delete_thread(thread)
    return len(gone)


__all__ = ["CHECKPOINT_FILE", "open_checkpointer", "prune_checkpoints", "sqlite_checkpointer"]
