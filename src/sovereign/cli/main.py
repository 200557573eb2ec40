"""The entry point: registers every command module on the Typer app and runs it."""

from sovereign.cli import trading  # noqa: I001 - registration order is the --help order
from sovereign.cli import bot, control, improve
from sovereign.cli._common import app

COMMAND_MODULES = (trading, control, improve, bot)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
