"""Where each command module is attached to the app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach every command group. Each module exposes ``register(app)``."""
    import importlib

    for name in _MODULES:
        importlib.import_module(f"bcoder.cli.{name}").register(app)


# One module per command (group); a module is added here when its command exists.
_MODULES: list[str] = [
    "models",
    "runs",
    "tui_cmd",
    "eval",
    "eval_compare",
    "lsp",
    "solve",
    "rank",
    "train",
    "check",
    "doctor",
]
