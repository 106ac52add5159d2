"""``bcoder eval compare BEFORE AFTER``: two eval runs paired by problem."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from bcoder.cli.eval import METHOD_LABELS, eval_app


def register(app: typer.Typer) -> None:
    eval_app.command("compare")(compare_cmd)


def compare_cmd(
    before: Path = typer.Argument(..., help="The baseline run directory."),
    after: Path = typer.Argument(..., help="The run to compare with it."),
    k: str = typer.Option("1,5", "--k", metavar="K,...", help="pass@k for these k."),
    ranker: list[str] = typer.Option(
        [],
        "--ranker",
        metavar="NAME",
        help="Also ranked by this ranker (repeatable; default: each run's own).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Two runs on the problems both finished: pass@k in each and AFTER minus BEFORE, paired by
    problem, with a 95% paired bootstrap interval."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from bcoder.evaluate import parse_ks
    from bcoder.evaluate.compare import compare_runs

    result = compare_runs(before, after, parse_ks(k), ranker or None)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    title = f"{result['problems']} problems both finished: after minus before (points)"
    table = Table(title=title)
    for name in ("method", "pass@k", "before", "after", "difference [95% paired CI]"):
        table.add_column(name, justify="left" if name == "method" else "right", no_wrap=True)
    for row in result["rows"]:
        low, high = row["ci"]
        diff = f"{100 * row['difference']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"
        label = METHOD_LABELS.get(row["method"], row["method"])
        cells = [f"{100 * row['before']:.1f}", f"{100 * row['after']:.1f}", diff]
        table.add_row(Text(label), f"pass@{row['k']}", *cells)
    Console().print(table)
    left = {"before": result["only_before"], "after": result["only_after"]}
    if any(left.values()):
        typer.echo(
            f"left out: {left['before']} problems finished only before, {left['after']} only after",
            err=True,
        )
