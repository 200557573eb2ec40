"""The constitution: immutable limits, pinned by hash (validation of proposals comes later)."""

from sovereign.constitution.model import (
    ALWAYS_FORBIDDEN,
    Constitution,
    check_pin,
    default_path,
    file_sha256,
    load,
)

__all__ = ["ALWAYS_FORBIDDEN", "Constitution", "check_pin", "default_path", "file_sha256", "load"]
