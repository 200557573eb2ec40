"""Logging: the console (warnings and above unless verbose) and a rotating file under
``<data_dir>/logs``. Secrets never reach a log: settings hold them as SecretStr."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_dir: Path, level: str = "INFO", *, console_level: str = "WARNING") -> Path:
    """Configure the ``sovereign`` logger once; returns the log file path."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "sovereign.log"
    logger = logging.getLogger("sovereign")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=5_000_000, backupCount=5, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    console = logging.StreamHandler()
    console.setLevel(console_level)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(file_handler)
    logger.addHandler(console)
    logger.propagate = False
    # hmmlearn warns when one of the regime engine's seeded restarts stops short of its
    # tolerance; the engine keeps the best restart, so this is noise on the operator's console.
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    return path
