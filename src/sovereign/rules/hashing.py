"""Content hashes: a rule, a rule set or a config is identified by what it says."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel


def canonical_json(payload: Any) -> str:
    """Stable JSON: sorted keys, no whitespace, floats as Python prints them."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(payload: Any, *, prefix: str = "", length: int = 16) -> str:
    """SHA-256 of the canonical JSON of ``payload``, truncated to ``length`` hex chars."""
    digest = hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:length]
    return f"{prefix}{digest}"


class ContentAddressed(BaseModel):
    """A model whose ``id`` is a cached content hash: copies must not inherit the cached id."""

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("id", None)
        return copy
