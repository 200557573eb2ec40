"""Versioned rule sets.

Rules are stored once by content hash (``rules``); a version is the ordered list of rule ids,
the strategy parameter overrides (``params``) and where it came from (``ruleset_versions``); the
``active_pointer`` row named ``"rules"`` says which version is in force. Saving a version (rules,
version row, pointer) is one transaction. Loading a version rebuilds the :class:`~sovereign.rules.RuleSet` and checks that it hashes to
the recorded id, so a rollback restores exactly that content or fails loudly.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from sovereign.errors import IntegrityError
from sovereign.memory._bulk import upsert
from sovereign.memory.db import joined, session
from sovereign.memory.errors import NotFound
from sovereign.memory.tables import ActivePointerRow, RuleRow, RuleSetVersionRow, table_of
from sovereign.rules import Rule, RuleSet

RULES_POINTER = "rules"


class RuleStore:
    """Save, load and activate rule set versions."""

    def __init__(self, engine: Engine, *, pointer: str = RULES_POINTER) -> None:
        self._engine = engine
        self._pointer = pointer

    def save_version(
        self,
        ruleset: RuleSet,
        *,
        reason: str,
        source: str,
        activate: bool = True,
        at: datetime | None = None,
        db: Session | None = None,
    ) -> int:
        """Store ``ruleset`` as a new version and (by default) make it active; returns its number.

        The new version's parent is the version active when it was saved. Every call makes a
        new version, even for content already stored: a version is an event (a deployment, a
        manual edit), not a content address. Use :meth:`activate` to go back to an old one.
        With ``db``, the save joins the caller's transaction (e.g. with its audit entry).
        """
        at = _now(at)
        for strategy, values in ruleset.params.items():
            for name, value in values.items():
                if not math.isfinite(value):
                    raise ValueError(f"parameter {strategy}.{name} = {value} is not finite")
        rule_rows: dict[str, dict[str, object]] = {}
        for rule in ruleset.rules:
            rule_rows.setdefault(
                rule.id,
                {
                    "rule_id": rule.id,
                    "body": rule.model_dump(mode="json"),
                    "family": rule.family(),
                    "created_at": at,
                },
            )
        with joined(self._engine, db, immediate=True) as tx:
            upsert(tx, table_of(RuleRow), list(rule_rows.values()), key=["rule_id"])
            pointer = tx.get(ActivePointerRow, self._pointer)
            row = RuleSetVersionRow(
                ruleset_id=ruleset.id,
                rule_ids=[r.id for r in ruleset.rules],
                params={s: dict(p) for s, p in ruleset.params.items()},
                parent_version=pointer.version if pointer is not None else None,
                reason=reason,
                source=source,
                created_at=at,
            )
            tx.add(row)
            tx.flush()
            if row.version is None:  # pragma: no cover - the database always assigns one
                raise IntegrityError("the database assigned no rule set version number")
            if activate:
                self._point(tx, row.version, at)
            return row.version

    def active(self, *, db: Session | None = None) -> tuple[int, RuleSet] | None:
        """The active version number and its rule set, or None before any version is active.
        With ``db``, read inside the caller's transaction."""
        with joined(self._engine, db) as tx:
            pointer = tx.get(ActivePointerRow, self._pointer)
            if pointer is None:
                return None
            return pointer.version, _load(tx, pointer.version)

    def active_version(self, *, db: Session | None = None) -> int | None:
        with joined(self._engine, db) as tx:
            pointer = tx.get(ActivePointerRow, self._pointer)
            return None if pointer is None else pointer.version

    def version(self, n: int, *, db: Session | None = None) -> RuleSet:
        """Rule set version ``n``. Raises :class:`NotFound` or, for altered content,
        :class:`~sovereign.errors.IntegrityError`."""
        with joined(self._engine, db) as tx:
            return _load(tx, n)

    def versions(self, *, db: Session | None = None) -> list[RuleSetVersionRow]:
        """Every version's record, oldest first."""
        with joined(self._engine, db) as tx:
            query = select(RuleSetVersionRow).order_by(col(RuleSetVersionRow.version))
            return list(tx.exec(query).all())

    def activate(self, n: int, *, at: datetime | None = None, db: Session | None = None) -> RuleSet:
        """Make version ``n`` active (a rollback) after checking its content; returns it."""
        with joined(self._engine, db, immediate=True) as tx:
            ruleset = _load(tx, n)
            self._point(tx, n, _now(at))
            return ruleset

    def rule(self, rule_id: str) -> Rule | None:
        """One stored rule by content hash."""
        with session(self._engine) as db:
            row = db.get(RuleRow, rule_id)
            return None if row is None else _rule(row)

    def _point(self, db: Session, version: int, at: datetime) -> None:
        upsert(
            db,
            table_of(ActivePointerRow),
            [{"name": self._pointer, "version": version, "updated_at": at}],
            key=["name"],
            update=["version", "updated_at"],
        )


def _load(db: Session, n: int) -> RuleSet:
    row = db.get(RuleSetVersionRow, n)
    if row is None:
        raise NotFound(f"no rule set version {n}")
    wanted = set(row.rule_ids)
    stored = {
        r.rule_id: r for r in db.exec(select(RuleRow).where(col(RuleRow.rule_id).in_(wanted)))
    }
    missing = wanted - stored.keys()
    if missing:
        raise IntegrityError(f"rule set version {n} refers to missing rules {sorted(missing)}")
    rules = tuple(_rule(stored[rule_id]) for rule_id in row.rule_ids)
    try:
        ruleset = RuleSet(rules=rules, params=row.params)
    except ValidationError as err:
        raise IntegrityError(
            f"rule set version {n} has invalid parameter overrides: {err}"
        ) from err
    if ruleset.id != row.ruleset_id:
        raise IntegrityError(
            f"rule set version {n} hashes to {ruleset.id}, recorded as {row.ruleset_id}"
        )
    return ruleset


def _rule(row: RuleRow) -> Rule:
    rule = Rule.model_validate(row.body)
    if rule.id != row.rule_id:
        raise IntegrityError(f"rule {row.rule_id} was altered: its body hashes to {rule.id}")
    return rule


def _now(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} refused: use timezone-aware UTC")
    return at


__all__ = ["RULES_POINTER", "RuleStore"]
