"""The constitution: immutable limits pinned by hash, and the validator every proposal passes."""

from sovereign.constitution.model import (
    ALWAYS_FORBIDDEN,
    Constitution,
    check_pin,
    default_path,
    file_sha256,
    load,
)
from sovereign.constitution.validator import ACTION_TYPES, ValidatorState, validate
from sovereign.constitution.verdict import Verdict, Violation

__all__ = [
    "ACTION_TYPES",
    "ALWAYS_FORBIDDEN",
    "Constitution",
    "ValidatorState",
    "Verdict",
    "Violation",
    "check_pin",
    "default_path",
    "file_sha256",
    "load",
    "validate",
]
