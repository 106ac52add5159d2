"""The bcoder TUI: browse ranked candidates and see, token by token, why the model ranks them so.

State lives on :class:`BcoderTui`: the problem, the current run's candidates (ranked, best first),
the selected one and the colour metric. Slow work — loading the model, sampling and scoring, running
tests — happens in thread workers that report back with ``call_from_thread``; the solve engine's
progress events drive the progress bar, and each scored candidate joins the list as it arrives.

The app holds the state and thin handlers; the rest is beside it: the widgets in ``panels``,
``heatmap``, ``compare`` and ``agreement``, the dialogs in ``screens``, the palette in ``palette``,
and the workers' bodies (no Textual) in ``generate`` and ``run_tests``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from bcoder.cli.tui import colors
from bcoder.cli.tui.agreement import AgreementScreen
from bcoder.cli.tui.compare import CompareScreen, compare_pair
from bcoder.cli.tui.generate import attempt
from bcoder.cli.tui.heatmap import HeatmapView, base_colour, details_text, legend_text
from bcoder.cli.tui.palette import palette_commands
from bcoder.cli.tui.panels import CandidateTable, GenerationProgress, TestsPanel
from bcoder.cli.tui.problem_io import open_request
from bcoder.cli.tui.run_tests import record_outcome, run_tests, save_outcomes
from bcoder.cli.tui.screens import (
    HelpScreen,
    OpenRequest,
    OpenScreen,
    ProblemScreen,
    SaveScreen,
    help_keys,
    save_name,
)
from bcoder.cli.tui.titles import header_titles
from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem
from bcoder.core.types import (
    Candidate,
    CandidateReady,
    CandidateTested,
    Notice,
    Progress,
    SolveResult,
)
from bcoder.execution import ExecResult
from bcoder.pipeline.store import Store

if TYPE_CHECKING:
    from bcoder.core.types import GeneratedTests


class BcoderTui(App[None]):
    """``bcoder tui``: open a problem or a stored run, generate, inspect, test, compare, save."""

    CSS_PATH = "app.tcss"
    TITLE = "bcoder"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open", "Open"),
        Binding("g", "generate", "Generate"),
        Binding("x", "cancel", "Cancel"),
        Binding("m", "cycle_metric", "Metric"),
        Binding("1", "metric('reward')", "Colour by r~", show=False),
        Binding("2", "metric('q')", "Colour by Q", show=False),
        Binding("3", "metric('v')", "Colour by V", show=False),
        Binding("4", "metric('advantage')", "Colour by A", show=False),
        Binding("t", "run_tests", "Test"),
        Binding("c", "compare", "Compare"),
        Binding("a", "agreement", "Agreement"),  # only with tests the model wrote
        Binding("space", "mark", "Mark for compare", show=False),
        Binding("y", "copy", "Copy", show=False),  # in help (?) and the palette: room for ? and ^q
        Binding("s", "save", "Save"),
        Binding("p", "problem", "Problem"),
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("q", "help_quit", show=False),  # says that ctrl+q quits
    ]

    metric: reactive[str] = reactive("reward")
    generating: reactive[bool] = reactive(False)

    def __init__(
        self,
        problem: Problem | None = None,
        result: SolveResult | None = None,
        settings: dict[str, Any] | None = None,
        store: Store | None = None,
        autostart: bool = True,
    ) -> None:
        """``settings``: SolveSettings fields given on the command line (override a run's)."""
        super().__init__()
        self.store = store if store is not None else Store()
        self.overrides = dict(settings or {})
        self.problem = problem
        self.result = result
        self.problem_info: dict[str, Any] = (
            result.problem if result else problem.to_dict() if problem else {}
        )
        if result is not None and problem is None:
            self.problem = Problem.from_dict(result.problem)
        self.candidates: list[Candidate] = list(result.candidates) if result else []
        self.limits: dict[str, float] = {}
        self.selected = 0
        self.marked: Candidate | None = None
        self.autostart = autostart and problem is not None and result is None
        self.status = ""  # last message of a generation: done, cancelled, error
        self._cancel = threading.Event()
        self._engines: dict[tuple, Any] = {}
        # while generating: what was shown before (run, list, selection, mark), kept on screen
        # until the new run's first candidate and brought back if the generation stops early
        self._shown: tuple[SolveResult | None, list[Candidate], int, Candidate | None] | None = None
        self._last_settings: dict[str, Any] = {}  # of the last generation started

    # -- layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # kept as attributes: worker callbacks and messages may arrive while a dialog is on top
        self.table = CandidateTable(id="candidates")
        self.tests_panel = TestsPanel(id="tests")
        self.view = HeatmapView(id="code")
        self.progress_row = GenerationProgress(id="progress-row")
        self.details = Static(id="details")
        self.legend = Static(id="legend")
        yield Header()
        with Horizontal(id="body"):
            yield self.table
            with Vertical(id="right"):
                yield self.view
                yield self.tests_panel
        yield self.progress_row
        yield self.details
        yield self.legend
        yield Footer(compact=True, show_command_palette=False)  # ? lists ^p

    def on_mount(self) -> None:
        self.table.border_title = "candidates"
        self.progress_row.display = False
        self._refresh_all()
        self.theme_changed_signal.subscribe(self, lambda _theme: self._update_legend())
        if self.autostart:
            self.action_generate()
        elif self.problem is None and self.result is None:
            self.action_open()

    # -- showing state -------------------------------------------------------------------------

    def _refresh_all(self, keep: Candidate | None = None) -> None:
        """Recompute scales, rebuild the list (keeping ``keep`` selected) and the views."""
        self.limits = colors.scale_limits(self.candidates)
        if (index := self.rank_of(keep)) is not None:
            self.selected = index
        self.selected = max(0, min(self.selected, len(self.candidates) - 1))
        self.table.set_candidates(self.candidates, self.selected, self.generated)
        self._show_selected()
        self._update_titles()
        self._update_legend()

    def _update_titles(self, width: int | None = None) -> None:
        settings = self.result.settings if self.result else self.solve_settings()
        self.title, self.sub_title = header_titles(
            self.problem_info.get("id"),
            self.result,
            settings,
            self.status,
            width or self.size.width,
        )
        self.table.border_subtitle = f"{len(self.candidates)}"

    def on_resize(self, event: events.Resize) -> None:
        self._update_titles(event.size.width)

    def _update_legend(self) -> None:
        view = self.view
        text = legend_text(self.metric, self.limits.get(self.metric, 1.0), base_colour(view))
        self.legend.update(text)

    def _show_selected(self) -> None:
        cand = self.selected_candidate
        view = self.view
        view.metric = self.metric
        view.show(cand, self.limits)
        self.tests_panel.show(cand, bool(self.problem and self.problem.tests), self.generated)
        if cand is None:
            hint = "generating…" if self.generating else "no candidates — g generates, o opens"
            view.border_title = hint
            view.border_subtitle = ""
        else:
            mark = " ◆" if cand is self.marked else ""
            view.border_title = (
                f"#{self.selected + 1}  R~ {cand.reward:+.3f}  {cand.outcome or 'untested'}{mark}"
            )
            view.border_subtitle = f"colour: {colors.METRICS[self.metric][1]} (m)"

    def rank_of(self, cand: Candidate | None) -> int | None:
        """The position of ``cand`` (this very object) in the ranked list, or None."""
        return next((i for i, c in enumerate(self.candidates) if c is cand), None)

    @property
    def selected_candidate(self) -> Candidate | None:
        return self.candidates[self.selected] if self.candidates else None

    @property
    def generated(self) -> GeneratedTests | None:
        """The tests the model wrote for the run shown (None while a new one is generating)."""
        return self.result.generated if self.result is not None else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if isinstance(event.data_table, CandidateTable) and event.cursor_row != self.selected:
            self.selected = event.cursor_row
            self._show_selected()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, CandidateTable):
            self.view.focus()  # enter: from the list into the code

    def on_heatmap_view_token_changed(self, event: HeatmapView.TokenChanged) -> None:
        view = self.view
        text = details_text(event.token, event.index, len(view.tokens), view.candidate is not None)
        self.details.update(text)

    def watch_metric(self) -> None:
        if self.is_mounted:
            self._show_selected_metric()

    def _show_selected_metric(self) -> None:
        view = self.view
        view.metric = self.metric
        view.border_subtitle = (
            f"colour: {colors.METRICS[self.metric][1]} (m)" if view.candidate else ""
        )
        self._update_legend()

    def watch_generating(self, generating: bool) -> None:
        self.progress_row.display = generating
        if self.selected_candidate is None:
            self._show_selected()  # the empty pane says "generating…" or what to press
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if len(self.screen_stack) > 1:  # a dialog or the comparison is on top
            return action in {"quit", "command_palette", "pop_screen"}
        if action == "cancel":
            return self.generating
        if action == "open":  # not while a generation is filling the list
            return not self.generating or None
        if action == "generate":
            return not self.generating and self.problem is not None
        if action == "run_tests":  # hidden when the model's tests are all there is (room for a)
            can = bool(self.candidates and self.problem and self.problem.tests)
            return can or (False if self.generated and self.generated.asserts else None)
        if action in {"copy", "save", "mark", "compare"}:
            return bool(self.candidates) or None
        if action == "agreement":  # hidden (not greyed) for runs whose model wrote no tests
            return bool(self.candidates and self.generated and self.generated.asserts)
        return True

    # -- opening -------------------------------------------------------------------------------

    def action_open(self) -> None:
        try:
            runs = self.store.list(30)
        except BcoderError as err:
            self.notify(str(err), severity="error", markup=False)
            runs = []
        self.push_screen(OpenScreen(runs), self._opened)

    def _opened(self, request: OpenRequest | None) -> None:
        if request is None:
            return
        try:
            problem, result = open_request(request, self.store)
        except BcoderError as err:
            self.notify(str(err), severity="error", timeout=8, markup=False)
            return
        if result is not None:
            self.show_result(result)
        elif problem is not None:
            self.show_problem(problem)
            self.action_generate()

    def show_result(self, result: SolveResult) -> None:
        """Display a stored (or just finished) run."""
        self.result = result
        self.problem_info = result.problem
        self.problem = Problem.from_dict(result.problem)
        self.candidates = list(result.candidates)
        self.selected, self.marked, self.status = 0, None, ""
        self._refresh_all()
        self.refresh_bindings()

    def show_problem(self, problem: Problem) -> None:
        """Start on a new problem with no candidates yet."""
        self.problem, self.result = problem, None
        self.problem_info = problem.to_dict()
        self.candidates, self.selected, self.marked, self.status = [], 0, None, ""
        self._refresh_all()
        self.refresh_bindings()

    # -- generating ----------------------------------------------------------------------------

    def solve_settings(self) -> dict[str, Any]:
        """The settings of the next generation: the shown run's (or the last generation's),
        overridden by the command line."""
        base = dict(self.result.settings) if self.result else self._last_settings
        return {**base, **self.overrides}

    def action_generate(self) -> None:
        if self.problem is None or self.generating:
            return
        self._last_settings = settings = self.solve_settings()
        self._shown = (self.result, self.candidates, self.selected, self.marked)
        self.status = "generating"
        self._cancel = threading.Event()
        self.generating = True
        self.progress_row.start()
        self._update_titles()
        self._solve(self.problem, settings, self._cancel)

    def action_cancel(self) -> None:
        if self.generating:
            self._cancel.set()
            self.progress_row.cancelling()

    def _post(self, callback, *args, **kwargs) -> None:
        """Run ``callback`` on the app's thread; quietly drop it once the app has gone."""
        with contextlib.suppress(RuntimeError):
            self.call_from_thread(callback, *args, **kwargs)

    @work(thread=True, exclusive=True, group="solve", exit_on_error=False)
    def _solve(self, problem: Problem, settings: dict[str, Any], cancel: threading.Event) -> None:
        def on_event(event: object) -> None:
            self._post(self._on_event, event)

        result, status = attempt(problem, settings, self._engines, self.store, on_event, cancel)
        self._post(self._finished, result, status)

    def _on_event(self, event: object) -> None:
        if isinstance(event, Progress):
            self.progress_row.show(event)
        elif isinstance(event, CandidateReady):
            keep = self.selected_candidate
            if self._shown is not None and self.candidates is self._shown[1]:
                # the new run's first candidate: it replaces the list shown until now
                self.result, self.candidates, self.selected, self.marked = None, [], 0, None
                keep = None
            self.candidates.append(event.candidate)
            self.candidates.sort(key=lambda c: c.reward, reverse=True)
            self._refresh_all(keep=keep)
        elif isinstance(event, CandidateTested):  # its outcome is in the candidate now
            self._refresh_all(keep=self.selected_candidate)
        elif isinstance(event, Notice):  # a statement cut to fit, the fallback ranker, ...
            self.notify(event.message, severity="warning", markup=False)

    def _finished(self, result: SolveResult | None, status: str) -> None:
        shown, self._shown = self._shown, None
        if result is not None:
            self.show_result(result)
            self.notify(f"saved run {result.run_id} ({len(result.candidates)} candidates)")
        else:  # cancelled or failed: back to what was shown before, if anything was
            self.status = status
            if shown and (shown[0] or shown[1]) and self.candidates is not shown[1]:
                self.result, self.candidates, self.selected, self.marked = shown
                self._refresh_all()
            self._update_titles()
            severity = "error" if status.startswith("error") else "warning"
            self.notify(status, severity=severity, markup=False)
        self.generating = False

    # -- actions on the selected candidate -----------------------------------------------------

    def action_metric(self, metric: str) -> None:
        self.metric = metric

    def action_cycle_metric(self) -> None:
        self.metric = colors.next_metric(self.metric)

    def action_mark(self) -> None:
        self.marked = self.selected_candidate
        self._show_selected()
        self.notify(f"#{self.selected + 1} marked: c compares it with the selected candidate")

    def action_compare(self) -> None:
        if len(self.candidates) < 2:
            self.notify("need two candidates to compare", severity="warning")
            return
        a, b = compare_pair(self.candidates, self.marked, self.candidates[self.selected])
        ranks = (self.rank_of(a) + 1, self.rank_of(b) + 1)
        self.push_screen(CompareScreen(a, b, ranks))

    def action_copy(self) -> None:
        cand = self.selected_candidate
        if cand is not None:
            self.copy_to_clipboard(cand.code)
            self.notify(f"copied #{self.selected + 1} ({len(cand.code.splitlines())} lines)")

    def action_save(self) -> None:
        if (cand := self.selected_candidate) is not None:
            default = save_name(self.problem_info.get("id"), self.selected + 1)
            self.push_screen(SaveScreen(default, cand.code))

    def action_agreement(self) -> None:
        if self.generated is not None and self.generated.asserts:
            self.push_screen(AgreementScreen(self.generated, self.candidates))

    def action_help(self) -> None:
        shown = [b for b in self.BINDINGS if b.action != "agreement" or self.generated]
        self.push_screen(HelpScreen(help_keys(shown, self.get_key_display)))

    def action_problem(self) -> None:
        if self.problem_info:
            self.push_screen(ProblemScreen(self.problem_info))

    def action_run_tests(self) -> None:
        cand = self.selected_candidate
        if cand is None or self.problem is None or self.problem.tests is None:
            self.notify("no tests for this problem", severity="warning")
            return
        self.notify(f"running the tests of #{self.selected + 1}…")
        self._run_tests(cand, self.problem)

    @work(thread=True, group="tests", exit_on_error=False)
    def _run_tests(self, cand: Candidate, problem: Problem) -> None:
        def say(message: str, severity: str) -> None:
            self._post(self.notify, message, severity=severity, timeout=10, markup=False)

        timeout = float(self.solve_settings().get("timeout") or 4.0)
        if (verdict := run_tests(cand.code, problem.tests, timeout, say)) is not None:
            self._post(self._tested, cand, verdict)

    def _tested(self, cand: Candidate, verdict: ExecResult) -> None:
        record_outcome(cand, verdict)
        run_id = self.result.run_id if self.result and self.rank_of(cand) is not None else None
        if problem := save_outcomes(self.store, run_id, self.candidates):
            self.notify(problem, severity="warning", markup=False)
        self._refresh_all(keep=self.selected_candidate)
        self.notify(f"{cand.outcome} (reward {cand.true_reward:+.1f})", markup=False)

    # -- command palette and shutdown ----------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if screen is self.screen_stack[0]:
            yield from palette_commands(self)

    def on_unmount(self) -> None:
        self._cancel.set()  # let a running generation stop instead of outliving the app
