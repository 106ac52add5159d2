"""``bcoder solve PROBLEM``: sample candidates, rank them by R~, show why token by token."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from bcoder.cli import options as opt
from bcoder.cli.options import set_threads
from bcoder.core.errors import BcoderError
from bcoder.problems.prompts import PREFILL

COLOR_BY = ("q", "v", "advantage", "reward")


class OutputFormat(str, Enum):
    """What ``solve``, ``rank`` and ``runs show`` print on stdout."""

    auto = "auto"  # rich on a terminal; code when stdout is a pipe or a file
    rich = "rich"  # the ranked table and the best candidate (a heatmap where colours show)
    code = "code"  # the best program alone, plain (a line on stderr says what it is)
    json = "json"  # the documented JSON object (docs/json.md)


FORMAT_HELP = (
    "auto (rich on a terminal, else code), rich (the ranked table and the heatmap), code (the "
    "best program alone) or json (docs/json.md)."
)


def register(app: typer.Typer) -> None:
    app.command("solve")(solve_command)


class EventBar:
    """Renders solve / load events (bcoder.core.types.Progress) as rich progress bars on stderr."""

    def __init__(self, enabled: bool, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self.enabled = enabled  # False (--quiet): no bars, no candidate lines
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),  # messages name user files
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not (enabled and self.console.is_terminal),
            transient=True,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> EventBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Any) -> None:
        from rich.text import Text

        from bcoder.core.types import CandidateTested, Notice, Progress

        if isinstance(event, Notice):  # e.g. a statement cut to fit the prompt: even with -q
            self.progress.console.print(Text(f"note: {event.message}", style="yellow"))
            return
        if isinstance(event, CandidateTested):  # candidates stream in as they are tested
            if not self.enabled:
                return
            c = event.candidate
            line = f"candidate {event.index + 1}: R~ {c.reward:.3f}, {c.outcome or '-'}, "
            self.progress.console.print(Text(f"{line}{len(c.tokens)} tokens", style="dim"))
            return
        if not isinstance(event, Progress):
            return
        stage, done, total = event.stage, event.done, event.total
        if stage in ("download", "verify"):
            count = f"{done / 2**20:,.0f}/{total / 2**20:,.0f} MiB" if total else ""
        elif stage == "generate":
            count = f"{done} tokens"
        else:
            count = f"{done}/{total}" if total > 1 else ""
        description = f"{stage:<9} {event.message}"[:70]
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(description, total=None, count=count)
        self.progress.update(
            self.tasks[stage],
            completed=done,
            total=total or None,
            description=description,
            count=count,
        )


def notice(engine: Any) -> None:
    """A one-line note on stderr when the engine has one (heads served on another backend)."""
    if text := engine.info.get("notice"):
        from rich.console import Console
        from rich.text import Text

        Console(stderr=True).print(Text(f"note: {text}", style="dim"))


def tests_note(problem: Any, given: Path | None, run: bool) -> str | None:
    """A line naming the tests file found beside a statement (``FILE.tests.json``) when it runs.
    Printed once the run is done, so that a bad flag's error stays the only line on stderr."""
    found = problem.metadata.get("tests_path")
    if found and given is None and run:
        return f"tests: {found} (found beside the problem; --no-tests skips them)"
    return None


def chosen_format(output_format: OutputFormat, as_json: bool) -> OutputFormat:
    """--json is --format json; auto is rich on a terminal, else the program alone."""
    if as_json:
        return OutputFormat.json
    if output_format is OutputFormat.auto:
        from rich.console import Console

        return OutputFormat.rich if Console().is_terminal else OutputFormat.code
    return output_format


def check_out(path: Path | None) -> None:
    """Refuse an --out that cannot be a file before sampling, not after."""
    if path is None:
        return
    if path.is_dir():
        raise BcoderError(f"{path}: is a directory (--out takes a file)")
    if not path.parent.is_dir():
        raise BcoderError(f"{path.parent}: no such directory (--out {path})")


def write_program(path: Path, result: Any) -> None:
    """The best program into ``path`` (--out), said on stderr."""
    from bcoder.cli.render import best_program

    program = best_program(result)
    if not program:
        typer.echo(f"note: no candidate, nothing written to {path}", err=True)
        return
    from bcoder.core.fs import atomic_write_text

    try:
        atomic_write_text(path, program)
    except BcoderError:
        raise
    except OSError as err:
        raise BcoderError(f"{path}: cannot write ({err.strerror or err})") from None
    typer.echo(f"best program written to {path}", err=True)


def show(result: Any, output_format: OutputFormat, color_by: str, top: int, verbose: bool) -> None:
    """Print ``result`` on stdout as ``output_format`` (not auto) asks."""
    if output_format is OutputFormat.json:
        emit_json(result)
        return
    from bcoder.cli.render import best_program, heads_line, render_result, summary_line

    if output_format is OutputFormat.code:
        sys.stdout.write(best_program(result))
        sys.stdout.flush()
        typer.echo(heads_line(result).plain, err=True)
        typer.echo(summary_line(result), err=True)
        return
    from rich.console import Console

    render_result(Console(), result, color_by=color_by, top=top, verbose=verbose)


def check_color_by(value: str) -> str:
    if value not in COLOR_BY:
        raise BcoderError(f"--color-by must be one of {', '.join(COLOR_BY)}, not {value!r}")
    return value


def emit_json(result: Any) -> None:
    """Exactly one JSON object on stdout: the SolveResult, candidates best first (docs/json.md)."""
    from bcoder.cli.schema import result_json

    sys.stdout.write(json.dumps(result_json(result), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def solve_command(
    problem: str = typer.Argument(
        ...,
        help="FILE.txt (statement), FILE.py (stub with docstring), FILE.jsonl:ID or DATASET:ID.",
    ),
    tests: Path | None = typer.Option(
        None, "--tests", "-t", metavar="FILE", help="Tests JSON (inputs/outputs or asserts)."
    ),
    model: opt.Model = None,
    checkpoint: opt.Checkpoint = None,
    policy: opt.Policy = None,
    n: opt.Samples = 8,
    top: int = typer.Option(5, "--top", min=1, metavar="N", help="Rows in the ranked table."),
    temperature: opt.Temperature = 0.6,
    top_p: opt.TopP = 0.95,
    seed: int | None = typer.Option(0, "--seed", metavar="N", help="Sampling seed."),
    max_new_tokens: opt.MaxNewTokens = None,
    batch_size: opt.BatchSize = 8,
    color_by: str = typer.Option(
        "reward", "--color-by", metavar="METRIC", help="Heatmap metric: q, v, advantage or reward."
    ),
    no_tests: bool = typer.Option(False, "--no-tests", help="Do not run the tests."),
    filter_examples: bool = typer.Option(
        False, "--filter-examples", help="Drop candidates failing the example tests."
    ),
    no_save: opt.NoSave = False,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (--format json)."),
    output_format: OutputFormat = typer.Option(OutputFormat.auto, "--format", help=FORMAT_HELP),
    out: Path | None = typer.Option(
        None, "--out", "-o", metavar="FILE", help="Also write the best program to FILE."
    ),
    verbose: opt.Verbose = False,
    backend: opt.Backend = "auto",
    dtype: opt.Dtype = None,
    device: opt.Device = None,
    threads: opt.Threads = 0,
    timeout: opt.Timeout = 4.0,
    prefill: opt.Prefill = PREFILL,
    generated_tests: opt.GeneratedTests = True,
    with_examples: opt.GeneratedTestsWithExamples = False,
    test_samples: opt.TestSamples = None,
    max_tests: opt.MaxTests = None,
    quiet: opt.Quiet = False,
) -> None:
    """Sample candidate programs, rank them by the recovered reward R~ and show why."""
    from bcoder.core.settings import SamplingSettings, TestWriting
    from bcoder.pipeline.settings import SolveSettings
    from bcoder.problems.load import load_problem

    check_color_by(color_by)
    check_out(out)
    prob = load_problem(problem, tests)
    sampling = SamplingSettings(
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
        policy=policy,
    )
    settings = SolveSettings(
        model=model,
        checkpoint=checkpoint,
        sampling=sampling,
        run_tests=not no_tests,
        filter_examples=filter_examples,
        dtype=dtype,
        device=device,
        backend=backend,
        timeout=timeout,
        prefill=prefill,
        generate_tests=generated_tests,
        generate_tests_with_examples=with_examples,
        test_writing=TestWriting(**opt.test_writing_asked(test_samples, max_tests)),
    )
    set_threads(threads, settings.device)
    result = run_solve(prob, settings, save=not no_save, threads=threads, quiet=quiet)
    if note := tests_note(prob, tests, run=not no_tests):
        typer.echo(note, err=True)
    if out is not None:
        write_program(out, result)
    show(result, chosen_format(output_format, as_json), color_by, top, verbose)


def run_solve(
    prob: Any, settings: Any, *, save: bool, threads: int = 0, quiet: bool = False
) -> Any:
    """Load the engine and solve, with progress bars on stderr."""
    from bcoder.pipeline.engine import Engine
    from bcoder.pipeline.solve import Interrupted, solve

    store = None
    if save:
        from bcoder.pipeline.store import Store

        store = Store()
    with EventBar(enabled=not quiet) as bar:
        engine = Engine.load(
            settings.model,
            settings.checkpoint,
            dtype=settings.dtype,
            device=settings.device,
            backend=settings.backend,
            threads=threads,
            on_event=bar,
        )
        notice(engine)
        try:
            return solve(prob, engine, settings, on_event=bar, store=store)
        except Interrupted as stop:  # Ctrl-C: what the solve had is saved, marked cancelled
            if run := stop.result.run_id:
                kept = f"{len(stop.result.candidates)} candidates kept as run {run}"
                bar.console.print(f"cancelled: {kept} (bcoder runs show {run})", markup=False)
            raise
