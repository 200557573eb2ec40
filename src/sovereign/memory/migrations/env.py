"""Alembic environment for Sovereign's memory schema.

Used two ways: programmatically by :func:`sovereign.memory.db.upgrade`, which hands over an open
connection in ``config.attributes["connection"]`` (the whole upgrade then runs in that
connection's transaction), or by the ``alembic`` CLI with ``sqlalchemy.url`` set in an ini file.
SQLite gets ``render_as_batch`` so later migrations can alter tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from sovereign.memory.tables import metadata

target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from sovereign.memory.db import make_engine

    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or call sovereign.memory.db.upgrade(url)")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
