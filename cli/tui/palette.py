"""The TUI's entries in the command palette (ctrl+p), next to Textual's own.

The palette needs only a few things from the app: what is open, whether it is generating, and its
actions. :class:`PaletteHost` names them, so the palette does not import the app (which imports
the palette); ``BcoderTui`` provides them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from textual.app import SystemCommand

from bcoder.cli.tui import colors
from bcoder.core.spec import Problem
from bcoder.core.types import Candidate, GeneratedTests


class PaletteHost(Protocol):
    """The state the palette reads and the actions it offers (``BcoderTui`` has them)."""

    problem: Problem | None
    problem_info: dict[str, Any]
    candidates: list[Candidate]

    @property
    def generating(self) -> bool: ...

    @property
    def generated(self) -> GeneratedTests | None: ...

    def action_open(self) -> None: ...
    def action_generate(self) -> None: ...
    def action_cancel(self) -> None: ...
    def action_metric(self, metric: str) -> None: ...
    def action_run_tests(self) -> None: ...
    def action_compare(self) -> None: ...
    def action_copy(self) -> None: ...
    def action_save(self) -> None: ...
    def action_problem(self) -> None: ...
    def action_agreement(self) -> None: ...


def palette_commands(app: PaletteHost) -> Iterator[SystemCommand]:
    """The actions that make sense in the app's current state."""
    yield SystemCommand(
        "Open", "Open a problem file, FILE.jsonl:ID or a stored run", app.action_open
    )
    if app.problem is not None and not app.generating:
        yield SystemCommand("Generate", "Sample, score and rank candidates", app.action_generate)
    if app.generating:
        yield SystemCommand("Cancel generation", "Stop sampling", app.action_cancel)
    for key, (_, label) in colors.METRICS.items():
        yield SystemCommand(
            f"Colour by {label}",
            f"Heatmap of {label} per token",
            lambda k=key: app.action_metric(k),
        )
    if app.candidates:
        yield SystemCommand("Run tests", "Run the selected candidate's tests", app.action_run_tests)
        yield SystemCommand("Compare", "Marked (or best) vs selected, by line", app.action_compare)
        yield SystemCommand("Copy code", "Copy the selected candidate", app.action_copy)
        yield SystemCommand("Save code", "Write the selected candidate to a file", app.action_save)
        if app.generated is not None and app.generated.asserts:
            yield SystemCommand(
                "Agreement",
                "The tests the model wrote, and how many candidates pass each",
                app.action_agreement,
            )
    if app.problem_info:
        yield SystemCommand("Problem", "Show the problem statement", app.action_problem)
