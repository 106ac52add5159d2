"""The ``bcoder`` console script.

Commands register themselves from their own modules. Heavy libraries (torch, transformers) are
imported inside commands, so ``bcoder --help`` stays fast. A :class:`BcoderError` anywhere becomes a
one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import errno
import sys

import typer

from bcoder import __version__
from bcoder.core.errors import BcoderError

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


def quiet_libraries() -> None:
    """Deprecation notices of the libraries bcoder uses (transformers, peft, torch, ...) are for
    their developers, not for a user's terminal or editor log: hide them when bcoder runs as a
    program (tests and library use still see them). BCODER_WARNINGS=1 shows them."""
    import os
    import warnings

    if os.environ.get("BCODER_WARNINGS") == "1":
        return
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(?!bcoder)")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# What is wrong with a path rather than with bcoder: a last net under the BcoderErrors that the
# writes and reads of user paths raise themselves (bcoder.core.fs)
_PATH_ERRNOS = {
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
    errno.EISDIR, errno.ENOENT, errno.EEXIST, errno.ENAMETOOLONG,
}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line on stderr."""
    quiet_libraries()
    try:
        app(args=argv, prog_name="bcoder")
    except BcoderError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except OSError as err:  # a path the user named that a write did not expect to fail on
        if err.errno not in _PATH_ERRNOS or not isinstance(err.filename, str):
            raise
        typer.echo(f"error: {err.filename}: {err.strerror}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
