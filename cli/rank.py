"""``bcoder rank CANDIDATES.jsonl``: score programs written elsewhere and rank them by R~."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from bcoder.cli import options as opt
from bcoder.cli.solve import FORMAT_HELP, OutputFormat


def register(app: typer.Typer) -> None:
    app.command("rank")(rank_command)


def rank_command(
    candidates: Path = typer.Argument(
        ..., help='A programs file: JSON lines {"problem": REF, "code": "...", "id": "..."}.'
    ),
    problem: str | None = typer.Option(
        None, "--problem", "-p", metavar="REF", help="The problem of lines without one."
    ),
    tests: Path | None = typer.Option(
        None, "--tests", "-t", metavar="FILE", help="Tests JSON for --problem."
    ),
    model: opt.Model = None,
    checkpoint: opt.Checkpoint = None,
    top: int = typer.Option(5, "--top", min=1, metavar="N", help="Rows in each ranked table."),
    color_by: str = typer.Option(
        "reward", "--color-by", metavar="METRIC", help="Heatmap metric: q, v, advantage or reward."
    ),
    no_tests: bool = typer.Option(False, "--no-tests", help="Do not run the tests."),
    filter_examples: bool = typer.Option(
        False, "--filter-examples", help="Drop candidates failing the example tests."
    ),
    batch_size: opt.BatchSize = 8,
    no_save: opt.NoSave = False,
    as_json: bool = typer.Option(False, "--json", help='Print one JSON object {"results": [...]}.'),
    output_format: OutputFormat = typer.Option(
        OutputFormat.auto, "--format", help=FORMAT_HELP.replace("program alone", "programs alone")
    ),
    verbose: opt.Verbose = False,
    backend: opt.Backend = "auto",
    dtype: opt.Dtype = None,
    device: opt.Device = None,
    threads: opt.Threads = 0,
    timeout: opt.Timeout = 4.0,
    quiet: opt.Quiet = False,
) -> None:
    """Re-tokenise programs (from other models or people), score them and rank them by R~."""
    from bcoder.cli.options import set_threads
    from bcoder.cli.solve import EventBar, check_color_by, chosen_format, notice, tests_note
    from bcoder.pipeline.engine import Engine
    from bcoder.pipeline.rank import rank_programs
    from bcoder.problems.load import load_problem
    from bcoder.problems.programs import by_reference, read_programs

    check_color_by(color_by)
    programs = read_programs(candidates)
    for line in programs.notes:
        typer.echo(f"note: {line}", err=True)
    groups = by_reference(programs.rows, problem)
    problems = {ref: load_problem(ref, tests if ref == problem else None) for ref, _ in groups}
    set_threads(threads, device)
    store = None
    if not no_save:
        from bcoder.pipeline.store import Store

        store = Store()
    results = []
    with EventBar(enabled=not quiet) as bar:
        engine = Engine.load(
            model,
            checkpoint,
            dtype=dtype,
            device=device,
            backend=backend,
            threads=threads,
            on_event=bar,
        )
        notice(engine)
        for ref, rows in groups:
            results.append(
                rank_programs(
                    problems[ref],
                    engine,
                    [r.code for r in rows],
                    ids=[r.id for r in rows],
                    run_tests_=not no_tests,
                    filter_examples=filter_examples,
                    timeout=timeout,
                    batch_size=batch_size,
                    store=store,
                    on_event=bar,
                    source=str(candidates),
                )
            )
    for ref, prob in problems.items():
        if note := tests_note(prob, tests if ref == problem else None, run=not no_tests):
            typer.echo(note, err=True)
    show_results(results, chosen_format(output_format, as_json), color_by, top, verbose)


def show_results(
    results: list, output_format: OutputFormat, color_by: str, top: int, verbose: bool
) -> None:
    """Print each problem's ranked candidates as ``output_format`` (not auto) asks."""
    if output_format is OutputFormat.json:
        from bcoder.cli.schema import SCHEMA_VERSION, result_json

        out = {"schema_version": SCHEMA_VERSION, "results": [result_json(r) for r in results]}
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return
    from bcoder.cli.render import best_program, render_result, summary_line

    if output_format is OutputFormat.code:  # each problem's best program, named in a comment
        for r in results:
            name = r.problem.get("id") or "problem"
            if len(results) > 1:
                sys.stdout.write(f"# {name}\n")
            sys.stdout.write(best_program(r))
            typer.echo(f"{name}: {summary_line(r)}", err=True)
        return
    from rich.console import Console

    console = Console()
    for r in results:
        render_result(console, r, color_by=color_by, top=top, verbose=verbose)
