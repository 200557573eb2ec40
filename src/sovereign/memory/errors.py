"""Errors raised by the memory package.

    SovereignError                      (sovereign.errors)
    ├── IntegrityError                  persisted state is inconsistent: a broken audit chain,
    │                                   a rule set whose content no longer matches its hash
    └── NotFound (LookupError)          no such run, rule set version, ...

``IntegrityError`` is the project-wide one from :mod:`sovereign.errors`, re-exported here.
"""

from __future__ import annotations

from sovereign.errors import IntegrityError, SovereignError


class NotFound(SovereignError, LookupError):
    """The requested row does not exist."""


__all__ = ["IntegrityError", "NotFound"]
