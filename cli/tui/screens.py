"""Modal screens: open a problem or a stored run, save a candidate, read the problem statement."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static, TextArea

from bcoder.core.fs import atomic_write_text
from bcoder.pipeline.store import RunSummary


@dataclass(frozen=True)
class OpenRequest:
    """What the user asked to open: a reference (file, FILE.jsonl:ID, run id) or a typed statement."""

    ref: str = ""
    text: str = ""
    tests: str = ""  # a tests JSON file for a typed statement or a .txt problem
    run_id: str = ""  # a run picked from the list


class OpenScreen(ModalScreen[OpenRequest | None]):
    """Open a problem file, ``FILE.jsonl:ID``, a typed statement, or one of the recent runs."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Close")]

    def __init__(self, runs: list[RunSummary]) -> None:
        super().__init__()
        self.runs = runs

    def compose(self) -> ComposeResult:
        with Vertical(id="open-dialog", classes="dialog"):
            yield Label("Open a problem or a stored run", classes="dialog-title")
            yield Input(placeholder="file.txt, stub.py, FILE.jsonl:ID or a run id", id="open-ref")
            yield TextArea(id="open-text", soft_wrap=True, show_line_numbers=False)
            yield Input(placeholder="tests JSON for a typed statement (optional)", id="open-tests")
            yield DataTable(id="open-runs", cursor_type="row")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Open", id="open-ok", variant="primary", compact=True)
                yield Button("Cancel", id="open-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#open-text", TextArea).border_title = "…or type a problem statement"
        table = self.query_one("#open-runs", DataTable)
        table.border_title = "recent runs (enter opens)"
        table.add_columns("run", "problem", "n", "R~ best")
        for run in self.runs:
            best = "" if run.best_reward is None else f"{run.best_reward:+.3f}"
            title = run.title[:30] or run.problem_id  # user text: a Text, never markup
            table.add_row(Text(run.id), Text(title), str(run.n_candidates), best)
        self.query_one("#open-ref", Input).focus()

    def _request(self) -> OpenRequest:
        return OpenRequest(
            ref=self.query_one("#open-ref", Input).value.strip(),
            text=self.query_one("#open-text", TextArea).text.strip(),
            tests=self.query_one("#open-tests", Input).value.strip(),
        )

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "open-ok":
            self._submit()
        else:
            self.dismiss(None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "open-runs" and 0 <= event.cursor_row < len(self.runs):
            self.dismiss(OpenRequest(run_id=self.runs[event.cursor_row].id))

    def _submit(self) -> None:
        request = self._request()
        if request.ref or request.text:
            self.dismiss(request)
        else:
            self.notify("type a file, FILE.jsonl:ID, a run id or a statement", severity="warning")

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def save_name(problem_id: object, rank: int) -> str:
    """The file name :class:`SaveScreen` offers: the problem id, made safe for a file name, and
    the candidate's rank."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(problem_id or "candidate"))
    return f"{stem.strip('_') or 'candidate'}_{rank}.py"


class SaveScreen(ModalScreen[str | None]):
    """Ask for a file and save ``code`` to it; stay open, saying why, when it cannot be written."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Close")]

    def __init__(self, default: str, code: str) -> None:
        super().__init__()
        self.default, self.code = default, code

    def compose(self) -> ComposeResult:
        with Vertical(id="save-dialog", classes="dialog"):
            yield Label("Save the candidate's code to", classes="dialog-title")
            yield Input(value=self.default, id="save-path")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", id="save-ok", variant="primary", compact=True)
                yield Button("Cancel", id="save-cancel", compact=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._save(event.value.strip())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save-ok":
            self._save(self.query_one("#save-path", Input).value.strip())
        else:
            self.dismiss(None)

    def _save(self, path: str) -> None:
        if not path:
            return
        try:
            atomic_write_text(Path(path).expanduser(), self.code)
        except OSError as err:  # the path is the user's: shown as typed, never as markup
            self.notify(f"cannot save {path}: {err}", severity="error", markup=False)
        else:
            self.notify(f"saved {path}", markup=False)
            self.dismiss(path)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class ProblemScreen(ModalScreen[None]):
    """The problem statement, starter code and test count."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,p,q", "dismiss_none", "Close")]

    def __init__(self, problem: dict) -> None:
        super().__init__()
        self.problem = problem

    def compose(self) -> ComposeResult:
        p = self.problem
        tests = p.get("tests") or {}
        n_tests = len(tests.get("asserts") or tests.get("inputs") or [])
        with Vertical(id="problem-dialog", classes="dialog"):
            yield Label(
                Text(f"{p.get('id', '?')}  ({p.get('source', '?')}, {n_tests} tests)"),
                classes="dialog-title",
            )
            with VerticalScroll():
                yield Static(str(p.get("text") or ""), markup=False)
                if p.get("starter_code"):
                    yield Static(str(p["starter_code"]), markup=False, classes="starter")

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


# what the colour keys show (the list's R~ is the sum of r~ over the program)
METRIC_HELP: dict[str, str] = {
    "reward": "r~: recovered reward, higher is better; R~ sums it",
    "q": "Q: the value of this token here, A + V",
    "v": "V: the value of the state before the token",
    "advantage": "A: Q - V, 0 for the preferred token, else below 0",
}
CODE_KEYS = [
    ("enter", "from the list into the code; escape goes back"),
    ("arrows", "move the token cursor; home, end, pgup, pgdn, click"),
    ("^p", "command palette: every action by name, and themes"),
]


class HelpScreen(ModalScreen[None]):
    """Every key and what the colours mean (``?``)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss_none", "Close")
    ]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        """``keys``: (key as the footer shows it, what it does), in the footer's order."""
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        text = Text()
        for key, what in [*self.keys, *CODE_KEYS]:
            text.append(f"{key:>7}  ", style="bold")
            text.append(f"{what}\n")
        text.rstrip()
        with Vertical(id="help-dialog", classes="dialog"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll():
                yield Static(text)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def help_keys(
    bindings: list[Binding], key_display: Callable[[Binding], str]
) -> list[tuple[str, str]]:
    """(key, what it does) for each binding with a description; the colour keys explained."""
    rows = []
    for binding in bindings:
        if not binding.description:
            continue
        what = binding.description
        if binding.action.startswith("metric('"):
            what = f"colour by {METRIC_HELP[binding.action[8:-2]]}"
        rows.append((key_display(binding), what))
    return rows
