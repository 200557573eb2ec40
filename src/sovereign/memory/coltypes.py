"""Column types shared by every memory table.

:class:`UTCDateTime` is the only timestamp type: it refuses naive datetimes on the way in (a
naive timestamp is a bug in a trading system) and always hands back timezone-aware UTC, also on
SQLite, which stores timestamps as text without an offset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that stores UTC and reads back tz-aware UTC."""

    impl = DateTime
    cache_ok = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        offset = value.utcoffset()
        if offset is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: use timezone-aware UTC")
        if dialect.name == "sqlite":
            # SQLite's DATETIME text has no offset; every stored value is naive UTC.
            return value.replace(tzinfo=None) - offset
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
