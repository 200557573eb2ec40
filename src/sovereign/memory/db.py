"""Engines, sessions and schema upgrades.

SQLite is the default (one file, WAL, foreign keys on); PostgreSQL is chosen by URL
(``postgresql+psycopg://user@host/db``). The schema is only ever created by the Alembic
migrations packaged in ``sovereign/memory/migrations``, never by ``metadata.create_all``, so a
fresh database and an upgraded one are the same.

SQLite transactions: pysqlite's own implicit BEGIN is switched off and SQLAlchemy emits the
BEGIN itself (the recipe from SQLAlchemy's SQLite docs), so a transaction that must read and then
write without interleaving (the audit chain, a new rule set version) can ask for
``BEGIN IMMEDIATE`` through :func:`session` with ``immediate=True``. It takes SQLite's write
lock up front, so concurrent writers wait (``busy_timeout``) instead of forking the chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

from sovereign.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Alembic script directory shipped inside the package (works from an installed wheel)."""

SQLITE_BUSY_TIMEOUT = 10.0
"""Seconds a SQLite connection waits for another writer's lock before failing."""
IMMEDIATE = "sovereign_begin_immediate"
"""Connection execution option: begin SQLite transactions with ``BEGIN IMMEDIATE``."""


def make_engine(
    url: str | URL,
    *,
    echo: bool = False,
    busy_timeout: float = SQLITE_BUSY_TIMEOUT,
    **kwargs: Any,
) -> Engine:
    """An engine for ``url``: a SQLite file (created with its parent directory) or PostgreSQL.

    SQLite connections get ``journal_mode=WAL``, ``foreign_keys=ON``, ``busy_timeout`` (given
    in seconds) and ``synchronous=NORMAL`` on every connect. Other URLs are passed through with
    ``pool_pre_ping``. Raises :class:`ConfigError` for a URL that cannot be parsed.
    """
    try:
        parsed = make_url(url)
    except Exception as err:  # sqlalchemy raises ArgumentError for junk
        raise ConfigError(f"invalid database URL {url!r}: {err}") from err
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo, busy_timeout=busy_timeout, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, echo=echo, **kwargs)


def _sqlite_engine(url: URL, *, echo: bool, busy_timeout: float, **kwargs: Any) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = {**kwargs.pop("connect_args", {}), "timeout": busy_timeout}
    engine = create_engine(url, echo=echo, connect_args=connect_args, **kwargs)
    event.listen(engine, "connect", partial(_on_sqlite_connect, busy_ms=int(busy_timeout * 1000)))
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(
    dbapi_connection: Any, _record: ConnectionPoolEntry, *, busy_ms: int
) -> None:
    # SQLAlchemy, not pysqlite, decides when a transaction begins (see module docstring).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms:d}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def session(engine: Engine, *, immediate: bool = False) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises.

    ``immediate=True`` takes the write lock at BEGIN on SQLite (no effect elsewhere); use it for
    read-then-write sequences. Loaded objects stay usable after the block
    (``expire_on_commit=False``).
    """
    with engine.connect() as conn:
        if immediate:
            conn = conn.execution_options(**{IMMEDIATE: True})
        with Session(bind=conn, expire_on_commit=False) as db, db.begin():
            if immediate:
                db.connection()  # BEGIN (IMMEDIATE) now, not at the first statement
            yield db


@contextmanager
def joined(
    engine: Engine, db: Session | None = None, *, immediate: bool = False
) -> Iterator[Session]:
    """``db`` when given (the caller's transaction: the caller commits), else a new :func:`session`.

    Lets several repository calls share one transaction, e.g. a deployment and its audit entry
    (open it with ``session(engine, immediate=True)`` so the audit append is serialised).
    """
    if db is not None:
        yield db
        return
    with session(engine, immediate=immediate) as new:
        yield new


def upgrade(url_or_engine: str | URL | Engine, revision: str = "head") -> None:
    """Run the packaged Alembic migrations up to ``revision`` (default ``head``)."""
    _run_alembic(url_or_engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade(url_or_engine: str | URL | Engine, revision: str) -> None:
    """Run the packaged migrations down to ``revision`` (``"base"`` drops every table)."""
    _run_alembic(url_or_engine, lambda cfg: command.downgrade(cfg, revision))


def current_revision(url_or_engine: str | URL | Engine) -> str | None:
    """The revision the database is at, or None for a database never upgraded."""
    from alembic.runtime.migration import MigrationContext

    engine, owned = _engine_for(url_or_engine)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _run_alembic(url_or_engine: str | URL | Engine, run: Any) -> None:
    engine, owned = _engine_for(url_or_engine)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            run(cfg)
    finally:
        if owned:
            engine.dispose()


def _engine_for(url_or_engine: str | URL | Engine) -> tuple[Engine, bool]:
    if isinstance(url_or_engine, Engine):
        return url_or_engine, False
    return make_engine(url_or_engine), True


__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "downgrade",
    "joined",
    "make_engine",
    "session",
    "upgrade",
]
