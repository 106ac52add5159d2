"""``bcoder runs list | show ID``: the results store."""

from __future__ import annotations

import typer

runs_app = typer.Typer(help="Saved solve runs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
