"""The ranked candidate list, the test-results panel and the generation's progress row."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, ProgressBar, Static

from bcoder.cli.tui.generated import asserts_of, ratio_text, row_detail
from bcoder.cli.tui.generated import summary as generated_summary
from bcoder.core.types import Candidate, GeneratedTests, Progress, TestOutcome

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
    """Candidates best first: rank, R~, outcome badge, length in tokens, duplicates merged; and,
    when the model wrote tests, how many of them each candidate passes (``gen``)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.add_column("#", width=3, key="rank")
        self.add_column("R~", width=7, key="reward")
        self.add_column("ok", width=2, key="outcome")
        self.add_column("len", width=4, key="length")
        self.add_column("×", width=2, key="count")

    def set_candidates(
        self,
        candidates: list[Candidate],
        selected: int = 0,
        generated: GeneratedTests | None = None,
    ) -> None:
        """Replace the rows (``candidates`` already ranked) and put the cursor on ``selected``;
        with tests the model wrote (``generated``), a column of how many each one passes."""
        self.clear()
        written = len(asserts_of(generated))
        self._generated_column(written > 0)
        for rank, cand in enumerate(candidates, start=1):
            length = len(cand.tokens) if cand.tokens else len(cand.code.splitlines())
            cells = [
                Text(str(rank), justify="right"),
                Text(f"{cand.reward:+.3f}", justify="right"),
                badge(cand.outcome),
                Text(str(length), justify="right"),
                Text(str(cand.count) if cand.count > 1 else "", justify="right"),
            ]
            if written:
                cells.append(ratio_text(cand, written))
            self.add_row(*cells)
        if candidates:
            self.move_cursor(row=max(0, min(selected, len(candidates) - 1)), animate=False)

    def _generated_column(self, wanted: bool) -> None:
        """Add or remove the ``gen`` column (the list widens by its width: app.tcss)."""
        shown = "generated" in self.columns
        if wanted and not shown:
            self.add_column("gen", width=5, key="generated")
        elif shown and not wanted:
            self.remove_column("generated")
        self.set_class(wanted, "-generated")


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
    """The selected candidate's test results: a summary line and one row per test; the tests the
    model wrote follow the problem's own, numbered g1, g2, ... and named so in the border."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.summary = Static(id="tests-summary")
        self.table = DataTable(id="tests-table", cursor_type="row", zebra_stripes=True)
        self._columns(2, timed=True)

    def _columns(self, width: int, timed: bool) -> None:
        """The table's columns: the first ``width`` cells wide (``g10`` needs 3); a time column
        unless only the model's tests are shown (their details need the room)."""
        table = self.table
        table.clear(columns=True)
        table.add_column("#", width=width, key="n")
        table.add_column("verdict", width=7, key="verdict")
        if timed:
            table.add_column("time", width=5, key="time")
        table.add_column("detail", key="detail")

    def compose(self) -> ComposeResult:
        yield self.summary
        yield self.table

    def show(
        self, candidate: Candidate | None, has_tests: bool, generated: GeneratedTests | None = None
    ) -> None:
        written = asserts_of(generated)
        text = summary_text(candidate, has_tests)
        if candidate is not None and generated is not None and candidate.outcome is None:
            text = generated_summary(candidate, generated)  # the model's tests are all there is
        elif candidate is not None and written:
            text.append("  ·  ").append_text(generated_summary(candidate, generated))
        self.summary.update(text)
        self.set_class(bool(written), "-generated")
        self.border_title = "tests written by the model" if written else "tests"
        tests: list[TestOutcome] = candidate.tests if candidate else []
        if written and (has_tests or tests):
            self.border_title = "tests (g1…: written by the model)"
        table = self.table
        width, timed = (3 if len(written) >= 10 else 2), not written or has_tests or bool(tests)
        if table.columns["n"].width != width or ("time" in table.columns) != timed:
            self._columns(width, timed)
        table.clear()
        for i, test in enumerate(tests, start=1):
            detail = Text(first_line(test.detail or test.stderr)[:200])  # never markup
            table.add_row(str(i), *_verdict_cells(test, timed), detail)
        verdicts = candidate.generated if candidate else []
        for i, test in enumerate(written):
            outcome = verdicts[i] if i < len(verdicts) else None
            cells = _verdict_cells(outcome, timed) if outcome else [Text("· none", style="dim")]
            cells += [""] * (timed and outcome is None)
            table.add_row(f"g{i + 1}", *cells, row_detail(test, outcome))


def _verdict_cells(test: TestOutcome, timed: bool) -> list:
    """The verdict cell of one test's row, and its time cell when the table has one."""
    mark, colour = BADGES.get(test.verdict, ("?", ""))
    verdict = Text(f"{mark} {test.verdict}"[:7], style=colour)
    return [verdict, f"{test.time:.2f}"] if timed else [verdict]


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
