"""``bcoder tui [PROBLEM | --run ID]``: the Textual app (cli/tui/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bcoder.cli import options as opt
from bcoder.cli.options import set_threads
from bcoder.core.errors import BcoderError


def register(app: typer.Typer) -> None:
    app.command("tui")(tui)


def tui(
    problem: str | None = typer.Argument(
        None, help="FILE.txt, FILE.py stub, FILE.jsonl:ID or DATASET:ID; generation starts at once."
    ),
    run: str | None = typer.Option(
        None, "--run", metavar="ID", help="Reopen a saved run (id, prefix or 'last')."
    ),
    tests: opt.Tests = None,
    model: opt.Model = None,
    checkpoint: opt.Checkpoint = None,
    backend: opt.Backend = "auto",
    threads: opt.Threads = 0,
    n: int | None = typer.Option(
        None, "--samples", "-n", min=1, metavar="N", help="Candidates to sample."
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", metavar="T", help="Sampling temperature."
    ),
    top_p: opt.TopP = None,
    max_new_tokens: opt.MaxNewTokens = None,
    seed: int | None = typer.Option(None, "--seed", metavar="N", help="Sampling seed."),
    prefill: bool | None = typer.Option(
        None,
        "--prefill/--no-prefill",
        help="For a stub and a chat model: start the answer with the stub written (default: as "
        "the reopened run, else bcoder's default).",
        show_default=False,
    ),
    generated_tests: bool | None = typer.Option(
        None,
        "--generated-tests/--no-generated-tests",
        help="For a problem without tests: the model writes tests and agreement on them ranks "
        "(default: on, or as the reopened run).",
        show_default=False,
    ),
    with_examples: bool | None = typer.Option(
        None,
        "--generated-tests-with-examples/--no-generated-tests-with-examples",
        help="Write tests for a problem with tests of its own too (a docstring's examples): they "
        "decide first, agreement on the model's tests after them (default: off, or as the "
        "reopened run).",
        show_default=False,
    ),
    store: Path | None = typer.Option(
        None, "--store", metavar="FILE", help="The results store file (default: $BCODER_STORE)."
    ),
) -> None:
    """Browse ranked candidates and their per-token heatmaps; generate, test, compare, save."""
    from bcoder.pipeline.store import Store

    if problem and run:
        raise BcoderError("give a PROBLEM or --run ID, not both")
    if checkpoint and not model:  # the base the checkpoint was trained on
        from bcoder.pipeline.engine import model_for

        model = model_for(model, checkpoint)
    given: dict[str, Any] = {
        "model": model,
        "checkpoint": checkpoint,
        "n": n,
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "backend": None if backend == "auto" else backend,
        "prefill": prefill,
        "generate_tests": generated_tests,
        "generate_tests_with_examples": with_examples,
    }
    # only what was given: it overrides a reopened run's settings (else SolveSettings' defaults)
    settings = {k: v for k, v in given.items() if v is not None}
    set_threads(threads, None)
    results = Store(store)
    loaded_problem = loaded_run = None
    if run:
        loaded_run = results.get(run)
    elif problem:
        from bcoder.problems.load import load_problem

        loaded_problem = load_problem(problem, tests=tests)
    elif tests is not None:
        raise BcoderError("--tests needs a PROBLEM")

    from bcoder.cli.tui.app import BcoderTui

    BcoderTui(problem=loaded_problem, result=loaded_run, settings=settings, store=results).run()
