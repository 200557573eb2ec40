"""The entry point: registers every command module on the Typer app and runs it."""

from sovereign.cli import control, improve, trading
from sovereign.cli._common import app

COMMAND_MODULES = (trading, control, improve)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
