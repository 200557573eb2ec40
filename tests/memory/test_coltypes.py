"""memory/coltypes.py: UTCDateTime refuses naive datetimes and reads back aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from sovereign.memory.coltypes import UTCDateTime

NEW_YORK = timezone(timedelta(hours=-5))


def test_sqlite_stores_naive_utc_and_reads_back_aware_utc() -> None:
    col, dialect = UTCDateTime(), sqlite.dialect()
    stored = col.process_bind_param(datetime(2024, 1, 2, 16, 0, tzinfo=NEW_YORK), dialect)
    assert stored == datetime(2024, 1, 2, 21, 0)  # noqa: DTZ001 - SQLite stores naive UTC
    assert col.process_result_value(stored, dialect) == datetime(2024, 1, 2, 21, 0, tzinfo=UTC)


def test_postgresql_gets_aware_utc() -> None:
    stored = UTCDateTime().process_bind_param(
        datetime(2024, 1, 2, 16, 0, tzinfo=NEW_YORK), postgresql.dialect()
    )
    assert stored is not None and stored.tzinfo is UTC and stored.hour == 21


def test_naive_and_non_datetimes_are_refused() -> None:
    col = UTCDateTime()
    with pytest.raises(ValueError, match="naive datetime"):
        col.process_bind_param(datetime(2024, 1, 2), sqlite.dialect())  # noqa: DTZ001 - the point
    with pytest.raises(TypeError, match="expected a datetime"):
        col.process_bind_param("2024-01-02", sqlite.dialect())  # type: ignore[arg-type]
    assert col.process_bind_param(None, sqlite.dialect()) is None
