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


def _plain_help() -> None:
    """Help that shows what to type. typer 0.29 shows a flag as ``--json <bool>`` (it takes no
    value: ``--json true`` is an error), a required argument as ``{problem}`` and a value as
    ``<str>`` or ``<list[str]>``. Show them as click does: a flag alone, an argument as PROBLEM
    (``[PROBLEM]`` when optional), a value as its metavar (the options set one) or its type's
    name in capitals. Only typer's help methods of that version are replaced (none when absent)."""
    from typer import core

    option, argument = core.TyperOption, getattr(core, "TyperArgument", None)
    if argument is None or not hasattr(argument, "_usage_display_name"):
        return

    shown_type = option.display_type_rich

    def option_type(self, ctx):
        if self.is_flag or self.count:
            return None
        shown = shown_type(self, ctx)  # the metavar, else "<int>", "<a|b>", "<list[str]>"
        if self.metavar is not None or not shown or not shown.startswith("<"):
            return shown
        inner = shown.strip("<>.")
        if inner.startswith("list[") or shown.endswith("..."):
            return inner.removeprefix("list[").rstrip("]").upper() + "..."
        return inner if "|" in inner else inner.upper()

    def argument_name(self):
        name = self.metavar or self.name.upper()
        return f"{name}..." if self.metavar is None and self.nargs != 1 else name

    def argument_usage(self):
        name = argument_name(self)
        return name if self.required else f"[{name}]"

    option.display_type_rich = option_type
    argument.display_name_raw = property(argument_name)
    argument._rich_display_name = argument_name
    argument._usage_display_name = argument_usage
    argument.display_type_rich = lambda self, ctx: None


_plain_help()

app = typer.Typer(
    name="bcoder",
    help="B-Coder: sample programs, rank them by the reward recovered from a learned Q-function.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion (bash, zsh, fish, pwsh)
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
