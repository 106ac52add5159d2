"""``bcoder runs list | show ID``: the results store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from bcoder.cli.solve import FORMAT_HELP, OutputFormat

runs_app = typer.Typer(help="Saved solve runs (the results store).", no_args_is_help=True)

StoreOption = typer.Option(
    None, "--store", metavar="FILE", help="The store file (default: $BCODER_STORE)."
)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def list_runs(
    limit: int = typer.Option(
        50, "--limit", min=1, metavar="N", help="How many runs, newest first."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    store: Path | None = StoreOption,
) -> None:
    """The newest saved runs: id, time, problem, model, distinct candidates, best R~, outcome."""
    from bcoder.pipeline.store import Store

    runs = Store(store).list(limit)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in runs], indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    console = Console()
    if not runs:
        console.print("no runs yet: `bcoder solve PROBLEM` saves one")
        return
    title = f"runs ({Store(store).path})" if store else "runs"
    console.print(runs_table(runs, title, console.width))


# Below this many columns the created column is left out: the id starts with the same time.
_CREATED_FROM_WIDTH = 120
_DISTINCT_FROM_WIDTH = 100  # below, the column is "n" and a caption says what it counts


def runs_table(runs: list[Any], title: str, width: int) -> Any:
    """The runs, newest first. The id (what ``runs show`` takes), the distinct candidates, best R~
    and the outcome are never cut; the problem and the model give way (see
    :func:`bcoder.cli.render.shrinking`)."""
    from rich.table import Table
    from rich.text import Text

    from bcoder.cli.render import outcome_text, shrinking

    created = width >= _CREATED_FROM_WIDTH
    # n counts distinct programs (identical samples are merged), not samples: say so
    wide = width >= _DISTINCT_FROM_WIDTH
    table = Table(title=Text(title), caption=None if wide else "n: distinct programs")
    table.add_column("id", no_wrap=True)
    if created:
        table.add_column("created", no_wrap=True)
    table.add_column(shrinking("problem"), max_width=40)
    table.add_column(shrinking("model"))
    table.add_column("distinct" if wide else "n", justify="right", no_wrap=True)
    table.add_column("best R~", justify="right", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    for r in runs:
        problem = f"{r.problem_id}: {r.title}" if r.problem_id else r.title
        reward = "-" if r.best_reward is None else f"{r.best_reward:.3f}"
        cells = [
            r.id,
            *([r.created_iso] if created else []),
            shrinking(problem),
            shrinking(r.model),
        ]
        outcome = outcome_text(r.best_outcome)
        if r.cancelled:  # stopped by Ctrl-C: what it had by then
            outcome.append(" (cancelled)", style="yellow")
        table.add_row(*cells, str(r.n_candidates), reward, outcome)
    return table


@runs_app.command("show")
def show(
    run_id: str = typer.Argument(..., help="A run id, a unique prefix of one, or 'last'."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole run as JSON."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.rich, "--format", help=FORMAT_HELP.replace("auto (", "auto (as solve: ")
    ),
    store: Path | None = StoreOption,
) -> None:
    """One run: the problem, the settings and its candidates ranked by R~."""
    from bcoder.cli.solve import chosen_format, show
    from bcoder.pipeline.store import Store

    result = Store(store).get(run_id)
    output_format = chosen_format(output_format, as_json)
    if output_format is OutputFormat.json:
        from bcoder.cli.schema import result_json

        typer.echo(json.dumps(result_json(result), indent=2, ensure_ascii=False))
        return
    if output_format is OutputFormat.code:
        show(result, output_format, "reward", 1, verbose=False)
        return
    from rich.console import Console
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.text import Text

    from bcoder.cli.render import heads_line, ranked_table, timings_line

    console = Console()
    p = result.problem
    text = str(p.get("text") or p.get("starter_code") or "").strip()
    if len(text) > 1200:
        text = text[:1200] + " ..."
    title = Text(f"run {result.run_id}: {p.get('id') or 'problem'}")
    console.print(Panel(Text(text or "(no statement)"), title=title, title_align="left"))
    console.print(heads_line(result))
    settings = Text()
    for k, v in [*result.settings.items(), ("heads", result.heads)]:
        settings.append(k, style="bold").append(f"={v}  ")
    console.print(settings)
    if timings := timings_line(result.timings):
        console.print(Text(timings, style="dim"))
    console.print(ranked_table(result, len(result.candidates), title="candidates, best first"))
    if result.candidates:
        best = result.candidates[0]
        numbered = console.is_terminal  # a program piped out stays a program
        console.print(Syntax(best.code, "python", line_numbers=numbered), style="")
