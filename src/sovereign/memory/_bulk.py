"""Bulk-write helpers: rows (table objects or plain mappings) to parameter dicts, and upserts.

Bulk paths skip pydantic validation on purpose (validating 50k rows costs more than writing
them); instead every row must name only real columns and give every required one, and the
column types still refuse bad values (a naive timestamp, for one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from sovereign.errors import ConfigError
from sovereign.memory.tables import table_of


@dataclass(frozen=True, kw_only=True, slots=True)
class _Shape:
    columns: tuple[str, ...]
    required: frozenset[str]
    defaults: Mapping[str, Any]  # name -> value, or a zero-argument factory
    factories: frozenset[str]
    auto_pk: str | None  # an integer primary key the database assigns
    known: frozenset[str]  # every column
    usual: frozenset[str]  # every column but auto_pk: the common, fast case


@cache
def _shape(model: type[SQLModel]) -> _Shape:
    table = table_of(model)
    columns = tuple(c.name for c in table.columns)
    required: set[str] = set()
    defaults: dict[str, Any] = {}
    factories: set[str] = set()
    auto_pk = None
    for name in columns:
        field = model.model_fields[name]
        column = table.c[name]
        if column.primary_key and column.autoincrement is not False and field.default is None:
            auto_pk = name
        elif field.default_factory is not None:
            defaults[name] = field.default_factory
            factories.add(name)
        elif field.is_required():
            required.add(name)
        else:
            defaults[name] = field.default
    known = frozenset(columns)
    return _Shape(
        columns=columns,
        required=frozenset(required),
        defaults=defaults,
        factories=frozenset(factories),
        auto_pk=auto_pk,
        known=known,
        usual=known - {auto_pk},
    )


def row_dicts(
    model: type[SQLModel], rows: Iterable[SQLModel | Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Parameter dicts for ``insert(model.__table__)``, all with the same keys.

    Raises ValueError naming the row index for an unknown or missing column.
    """
    shape = _shape(model)
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if isinstance(row, model):
            values = {c: getattr(row, c) for c in shape.columns}
        elif isinstance(row, Mapping):
            values = dict(row)
            if values.keys() != shape.usual:
                _complete(model.__name__, i, values, shape)
        else:
            raise TypeError(f"{model.__name__} row {i}: expected a {model.__name__} or a mapping")
        if shape.auto_pk is not None and values.get(shape.auto_pk) is None:
            values.pop(shape.auto_pk, None)
        out.append(values)
    if shape.auto_pk is not None and out:
        with_pk = sum(shape.auto_pk in v for v in out)
        if 0 < with_pk < len(out):
            raise ValueError(f"{model.__name__}: give '{shape.auto_pk}' for every row or for none")
    return out


def _complete(name: str, i: int, values: dict[str, Any], shape: _Shape) -> None:
    unknown = values.keys() - shape.known
    if unknown:
        raise ValueError(f"{name} row {i}: unknown column(s) {sorted(unknown)}")
    missing = shape.required - values.keys()
    if missing:
        raise ValueError(f"{name} row {i}: missing column(s) {sorted(missing)}")
    for column, default in shape.defaults.items():
        if column not in values:
            values[column] = default() if column in shape.factories else default


def upsert(
    db: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str],
    update: Sequence[str] = (),
) -> None:
    """Insert ``rows``; on a ``key`` conflict update the ``update`` columns (or do nothing)."""
    if not rows:
        return
    dialect = db.get_bind().dialect.name
    if dialect == "sqlite":
        stmt: Any = sqlite.insert(table)
    elif dialect == "postgresql":
        stmt = postgresql.insert(table)
    else:  # pragma: no cover - only the two supported backends reach here
        raise ConfigError(f"database {dialect!r} is not supported; use SQLite or PostgreSQL")
    if update:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in update}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
    db.execute(stmt, list(rows))
