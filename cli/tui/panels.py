"""The ranked candidate list, the test-results panel and the generation's progress row."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, ProgressBar, Static

from bcoder.core.types import Candidate, Progress, TestOutcome

PASS = "#4caf50"  # green, readable on dark and light backgrounds
WARN = "#e0a030"
FAIL = "#e34a33"

# outcome -> (badge, colour)
BADGES: dict[str | None, tuple[str, str]] = {
    "pass": ("✓", PASS),
    "fail": ("✗", FAIL),
    "runtime_error": ("RE", WARN),
    "compile_error": ("CE", FAIL),
    "skipped": ("–", ""),
    None: ("·", ""),
}


def badge(outcome: str | None) -> Text:
    """A one- or two-cell badge for a test outcome (· when untested)."""
    mark, colour = BADGES.get(outcome, ("?", ""))
    return Text(mark, style=f"bold {colour}" if colour else "dim")


class CandidateTable(DataTable):
    """Candidates best first: rank, R~, outcome badge, length in tokens, duplicates merged."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.add_column("#", width=3, key="rank")
        self.add_column("R~", width=7, key="reward")
        self.add_column("ok", width=2, key="outcome")
        self.add_column("len", width=4, key="length")
        self.add_column("×", width=2, key="count")

    def set_candidates(self, candidates: list[Candidate], selected: int = 0) -> None:
        """Replace the rows (``candidates`` already ranked) and put the cursor on ``selected``."""
        self.clear()
        for rank, cand in enumerate(candidates, start=1):
            length = len(cand.tokens) if cand.tokens else len(cand.code.splitlines())
            self.add_row(
                Text(str(rank), justify="right"),
                Text(f"{cand.reward:+.3f}", justify="right"),
                badge(cand.outcome),
                Text(str(length), justify="right"),
                Text(str(cand.count) if cand.count > 1 else "", justify="right"),
            )
        if candidates:
            self.move_cursor(row=max(0, min(selected, len(candidates) - 1)), animate=False)


def summary_text(candidate: Candidate | None, has_tests: bool) -> Text:
    """One line above the per-test table: the candidate's verdict and true reward."""
    if candidate is None:
        return Text("no candidate", style="dim")
    if candidate.outcome is None:
        hint = "press t to run the tests" if has_tests else "no tests for this problem"
        return Text(f"untested — {hint}", style="dim")
    mark, colour = BADGES.get(candidate.outcome, ("?", ""))
    text = Text(f"{mark} {candidate.outcome}", style=f"bold {colour}")
    if candidate.true_reward is not None:
        text.append(f"  reward {candidate.true_reward:+.1f}")
    passed = sum(t.verdict == "pass" for t in candidate.tests)
    if candidate.tests:
        text.append(f"  {passed}/{len(candidate.tests)} passed", style="dim")
    return text


def first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


class TestsPanel(Vertical):
    """The selected candidate's test results: a summary line and one row per test."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.summary = Static(id="tests-summary")
        self.table = table = DataTable(id="tests-table", cursor_type="row", zebra_stripes=True)
        table.add_column("#", width=2, key="n")
        table.add_column("verdict", width=7, key="verdict")
        table.add_column("time", width=5, key="time")
        table.add_column("detail", key="detail")

    def compose(self) -> ComposeResult:
        yield self.summary
        yield self.table

    def show(self, candidate: Candidate | None, has_tests: bool) -> None:
        self.summary.update(summary_text(candidate, has_tests))
        table = self.table
        table.clear()
        tests: list[TestOutcome] = candidate.tests if candidate else []
        for i, test in enumerate(tests, start=1):
            mark, colour = BADGES.get(test.verdict, ("?", ""))
            table.add_row(
                str(i),
                Text(f"{mark} {test.verdict}"[:7], style=colour),
                f"{test.time:.2f}",
                Text(first_line(test.detail or test.stderr)[:200]),  # test output: never markup
            )


class GenerationProgress(Horizontal):
    """The generation's stage and progress bar, fed by the solve engine's progress events."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.label = Label("", id="progress-label")
        self.bar = ProgressBar(id="progress", show_eta=False)

    def compose(self) -> ComposeResult:
        yield self.label
        yield self.bar

    def start(self) -> None:
        self.label.update("starting…")
        self.bar.update(total=None, progress=0)

    def cancelling(self) -> None:
        self.label.update("cancelling…")

    def show(self, event: Progress) -> None:
        label = f"{event.stage} {event.done}/{event.total}" if event.total else event.stage
        if event.message:
            label += f" · {event.message}"
        self.label.update(Text(label[:48]))  # messages name models and files: never markup
        self.bar.update(total=event.total or None, progress=event.done)
