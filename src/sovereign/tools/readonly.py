"""Read-only database access for tools that LLMs call.

The tools never get the application's engine. :func:`read_only_engine` opens the same database
so that the database itself refuses writes: SQLite through a ``file:…?mode=ro`` URI (plus
``PRAGMA query_only``), PostgreSQL with ``default_transaction_read_only=on`` set for every
connection. A tool with a bug, or a model that talks one into it, still cannot change memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from sovereign.errors import ConfigError

SQLITE_BUSY_MS = 10_000
PG_READ_ONLY_OPTIONS = "-c default_transaction_read_only=on"


def read_only_engine(db_url: str | URL) -> Engine:
    """An engine on ``db_url`` that cannot write.

    SQLite: the database file must exist (a read-only open cannot create it). PostgreSQL: every
    transaction is read-only unless a session explicitly changes it, which no tool does.
    Raises ConfigError for an in-memory SQLite database, a missing file or another backend.
    """
    try:
        url = make_url(db_url)
    except Exception as err:  # sqlalchemy raises ArgumentError for junk
        raise ConfigError(f"invalid database URL {db_url!r}: {err}") from err
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite(url)
    if backend == "postgresql":
        return create_engine(
            url, connect_args=read_only_connect_args(url), pool_pre_ping=True
        ).execution_options(postgresql_readonly=True)
    raise ConfigError(f"no read-only engine for database URL scheme {backend!r}")


def read_only_connect_args(url: str | URL) -> dict[str, Any]:
    """The DBAPI connect arguments that make a PostgreSQL connection read-only."""
    if make_url(url).get_backend_name() != "postgresql":
        raise ConfigError("read-only connect arguments are defined for PostgreSQL only")
    return {"options": PG_READ_ONLY_OPTIONS}


def sqlite_read_only_url(path: Path) -> URL:
    """``sqlite:///file:<path>?mode=ro&uri=true`` for an existing database file."""
    return URL.create(
        "sqlite",
        database=f"file:{quote(path.resolve().as_posix())}",
        query={"mode": "ro", "uri": "true"},
    )


def _sqlite(url: URL) -> Engine:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ConfigError(
            f"a read-only engine needs a SQLite database file path, got {database or ':memory:'!r}"
        )
    path = Path(database).expanduser()
    if not path.is_file():
        raise ConfigError(f"database file {path} does not exist")
    engine = create_engine(sqlite_read_only_url(path))
    event.listen(engine, "connect", _on_connect)
    return engine


def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA query_only=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS:d}")
    finally:
        cursor.close()


__all__ = ["read_only_connect_args", "read_only_engine", "sqlite_read_only_url"]
