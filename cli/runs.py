"""``bcoder runs list | show ID``: the results store."""

from __future__ import annotations

import json
from pathlib import Path

import typer

runs_app = typer.Typer(help="Saved solve runs (the results store).", no_args_is_help=True)

_OUTCOME_STYLE = {
    "pass": "green",
    "fail": "red",
    "runtime_error": "magenta",
    "compile_error": "yellow",
}
StoreOption = typer.Option(None, "--store", help="The store file (default: $BCODER_STORE).")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")


def _outcome(outcome: str | None) -> str:
    if outcome is None:
        return "[dim]-[/]"
    return f"[{_OUTCOME_STYLE.get(outcome, 'white')}]{outcome}[/]"


def _first_line(code: str) -> str:
    for line in code.splitlines():
        if line.strip():
            return line.strip()[:60]
    return ""


@runs_app.command("list")
def list_runs(
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="How many runs, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    store: Path | None = StoreOption,
) -> None:
    """The newest saved runs: id, time, problem, model, candidates, best R~ and outcome."""
    from bcoder.store import Store

    runs = Store(store).list(limit)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in runs], indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not runs:
        console.print("no runs yet: `bcoder solve PROBLEM` saves one")
        return
    table = Table(title=f"runs ({Store(store).path})" if store else "runs")
    for col, kw in [
        ("id", {"no_wrap": True}),
        ("created", {"no_wrap": True}),
        ("problem", {"max_width": 40, "overflow": "ellipsis", "no_wrap": True}),
        ("model", {}),
        ("n", {"justify": "right"}),
        ("best R~", {"justify": "right"}),
        ("outcome", {}),
    ]:
        table.add_column(col, **kw)
    for r in runs:
        problem = f"{r.problem_id}: {r.title}" if r.problem_id else r.title
        reward = "-" if r.best_reward is None else f"{r.best_reward:.3f}"
        table.add_row(
            r.id, r.created_iso, problem, r.model, str(r.n_candidates), reward,
            _outcome(r.best_outcome),
        )  # fmt: skip
    console.print(table)


@runs_app.command("show")
def show(
    run_id: str = typer.Argument(..., help="A run id, a unique prefix of one, or 'last'."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole run as JSON."),
    store: Path | None = StoreOption,
) -> None:
    """One run: the problem, the settings and its candidates ranked by R~."""
    from bcoder.store import Store

    result = Store(store).get(run_id)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.table import Table

    console = Console()
    p = result.problem
    text = str(p.get("text") or p.get("starter_code") or "").strip()
    if len(text) > 1200:
        text = text[:1200] + " ..."
    title = f"run {result.run_id}: {p.get('id') or 'problem'}"
    console.print(Panel(text or "(no statement)", title=title, title_align="left"))
    settings = "  ".join(f"[bold]{k}[/]={v}" for k, v in result.settings.items())
    console.print(f"{settings}  [bold]heads[/]={result.heads}")
    if result.timings:
        console.print("  ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()), style="dim")
    table = Table(title="candidates, best first")
    for col, kw in [
        ("rank", {"justify": "right"}),
        ("R~", {"justify": "right"}),
        ("outcome", {}),
        ("tokens", {"justify": "right"}),
        ("count", {"justify": "right"}),
        ("first line", {"overflow": "ellipsis", "no_wrap": True}),
    ]:
        table.add_column(col, **kw)
    for i, c in enumerate(result.candidates, 1):
        table.add_row(
            str(i), f"{c.reward:.3f}", _outcome(c.outcome), str(len(c.tokens)), str(c.count),
            _first_line(c.code),
        )  # fmt: skip
    console.print(table)
    if result.candidates:
        best = result.candidates[0]
        console.print(Syntax(best.code, "python", line_numbers=True), style="")
