"""The `sovereign` command line. Every command that reports takes ``--json`` and then prints
exactly one JSON object on stdout. Errors print a sentence that says what to fix and exit 2.

Commands live in modules by theme (``trading``, ``control``, ``improve``); importing
``sovereign.cli.main`` registers them all on the one Typer ``app``."""

from sovereign.cli._common import app
from sovereign.cli.main import main

__all__ = ["app", "main"]
