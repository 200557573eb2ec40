"""Sovereign's error tree, sorted by what the operator or the Supervisor must do.

SovereignError
├── HaltTrading            stop trading, alert; a person decides what happens next
├── TransientError         retry with backoff (timeouts, a broker that did not answer)
│   └── BrokerUnavailable
├── ConfigError            refuse to start, with a message that says what to fix
│   └── ConstitutionTampered   the constitution file no longer matches its recorded hash
├── DataError (ValueError) bad market data: stand down, or refuse to start
│   └── EngineError        an engine got degenerate input or produced an unusable output:
│                          the Supervisor stands down rather than trade on it
├── BrokerError            the broker refused a command (not retryable as is)
└── IntegrityError         persisted state is inconsistent (a broken audit chain, ...)
"""

from __future__ import annotations


class SovereignError(Exception):
    """Base of every error Sovereign raises on purpose."""


class HaltTrading(SovereignError):
    """Trading must stop now; only a person lifts it."""


class TransientError(SovereignError):
    """A passing failure; the same call may succeed after a backoff."""


class BrokerUnavailable(TransientError):
    """The broker did not answer in time."""


class ConfigError(SovereignError):
    """Configuration is missing or wrong; the message says which setting and how to fix it."""


class ConstitutionTampered(ConfigError):
    """The constitution file changed since its hash was recorded."""


class BrokerError(SovereignError):
    """The broker rejected a command."""


class IntegrityError(SovereignError):
    """Persisted state failed a consistency check."""


class DataError(SovereignError, ValueError):
    """Market data failed validation.

    Carries where the problem is so an operator can fix the file: ``source`` (a file path or a
    source name), ``row`` (1-based data row, header excluded; None when not row-specific),
    ``column`` and ``reason``.
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str = "<data>",
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.source = source
        self.row = row
        self.column = column
        self.reason = reason
        where = source
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {reason}")


class EngineError(DataError):
    """A numeric engine could not produce a usable answer.

    Raised for degenerate input (constant prices, one asset where two are needed, a singular
    covariance with no documented fallback) and by :mod:`sovereign.engines.guard` when an output
    is not finite or out of its range. ``source`` names the engine and output
    (``"risk.var"``), ``reason`` says what was wrong.
    """
