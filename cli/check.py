"""``bcoder check PROGRAM.py --tests TESTS.json | --problem FILE:ID``: run one program's tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from bcoder.cli import options as opt
from bcoder.core.errors import BcoderError

_STYLE = {
    "pass": "green",
    "fail": "red",
    "runtime_error": "magenta",
    "compile_error": "yellow",
    "skipped": "dim",
}


def register(app: typer.Typer) -> None:
    app.command("check")(check)


def _read_program(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    from bcoder.core.fs import read_text

    return read_text(path)


def _load_tests(tests: Path | None, problem: str | None) -> tuple[Any, str]:
    """The TestSpec to run and a label saying where it came from."""
    from bcoder.core.spec import TestSpec

    if problem is None:
        if tests is None:
            raise BcoderError("give the tests: --tests TESTS.json or --problem FILE:ID")
        return TestSpec.load(tests), str(tests)
    from bcoder.problems.load import load_problem

    prob = load_problem(problem, tests=tests)
    if prob.tests is None:
        raise BcoderError(f"{problem}: the problem has no tests")
    return prob.tests, prob.id


def check(
    program: str = typer.Argument(..., help="The program file (- reads standard input)."),
    tests: Path | None = typer.Option(
        None, "--tests", "-t", metavar="FILE", help="Tests JSON (a TestSpec)."
    ),
    problem: str | None = typer.Option(
        None,
        "--problem",
        "-p",
        metavar="REF",
        help="A dataset problem: FILE.jsonl:ID or DATASET:ID.",
    ),
    timeout: opt.Timeout = 4.0,
    memory_mb: int = typer.Option(
        1024, "--memory-mb", min=16, metavar="MB", help="Memory per program (MB)."
    ),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first failing test."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Run a program against unit tests in the sandbox: outcome, reward and each test's verdict.

    Exits 0 whenever the check ran, whatever the verdict.
    """
    from bcoder.execution import Executor

    code = _read_program(program)
    spec, source = _load_tests(tests, problem)
    warnings: list[str] = []
    with Executor(
        workers=1,
        timeout=timeout,
        memory_mb=memory_mb,
        stop_on_failure=fail_fast,
        on_warning=warnings.append,
    ) as ex:
        result = ex.run(code, spec)
    if as_json:  # docs/json.md; "reward" is the old name of "test_reward"
        from bcoder.cli.schema import SCHEMA_VERSION

        out = {"schema_version": SCHEMA_VERSION, "program": program, "tests_from": source}
        out.update(**result.to_dict(), test_reward=result.reward)
        if warnings:
            out["warnings"] = warnings
        typer.echo(json.dumps(out, ensure_ascii=False))
        return
    _render(result, program, source, warnings)


def _render(result: Any, program: str, source: str, warnings: list[str]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    console = Console()
    for w in warnings:
        console.print(f"[bold red]warning:[/] {escape(w)}")
    outcome = result.outcome.value
    console.print(
        f"[bold {_STYLE[outcome]}]{outcome}[/]  test reward {result.reward:+.1f}  ·  "
        f"{result.passed}/{len(result.tests)} tests passed  ·  {result.time:.2f} s  ·  "
        f"sandbox: {result.isolation}"
    )
    console.print(f"[dim]{escape(program)} against {escape(source)}[/]")
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("verdict")
    table.add_column("time", justify="right")
    table.add_column("detail", overflow="fold")
    for i, t in enumerate(result.tests, 1):
        table.add_row(
            str(i),
            f"[{_STYLE.get(t.verdict, 'white')}]{t.verdict}[/]",
            f"{t.time:.3f}s" if t.verdict != "skipped" else "",
            escape(t.detail),
        )
    console.print(table)
    bad = next((t for t in result.tests if t.verdict not in ("pass", "skipped")), None)
    if bad is not None:
        for name, text in (("stdout", bad.stdout), ("stderr", bad.stderr)):
            if text.strip():
                shown = "\n".join(text.splitlines()[-15:])
                console.print(
                    Panel(
                        escape(shown),
                        title=f"first failing test: {name}",
                        title_align="left",
                        border_style="dim",
                    )
                )
