"""The ``bcoder`` console script.

Commands register themselves from their own modules. Heavy libraries (torch, transformers) are
imported inside commands, so ``bcoder --help`` stays fast. A :class:`BcoderError` anywhere becomes a
one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from bcoder import __version__
from bcoder.errors import BcoderError

app = typer.Typer(
    name="bcoder",
    help="B-Coder: sample programs, rank them by the reward recovered from a learned Q-function.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bcoder {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """B-Coder: value-based deep RL for program synthesis."""


def _register() -> None:
    from bcoder.cli import commands

    commands.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line on stderr."""
    try:
        app(args=argv, prog_name="bcoder")
    except BcoderError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
