"""User and model text reaches the screen as written: never read as Rich or Textual markup.

Problem ids and statements, run titles, test output, file names, error messages and progress
messages may hold ``[i]``, ``[/i]`` or ``[bold]``; the TUI shows them literally and does not crash
(``MarkupError``). Each check reads what is drawn on the terminal.
"""

from __future__ import annotations

import time

import pytest
from test_tui_data import screen_lines, synthetic_result
from textual.widgets._toast import Toast

from bcoder.cli.tui.app import BcoderTui
from bcoder.cli.tui.screens import OpenScreen, ProblemScreen, SaveScreen
from bcoder.core.types import Progress, TestOutcome
from bcoder.pipeline.store import Store

PROBLEM_ID = "two[/i]sum[b]"
STATEMENT = "Find [i, j] with nums[i] [/i] + [bold]nums[j] == target.\nExactly one pair exists.\n"
DETAIL = "[/i] got nums[i] [bold]3"


def drawn(app) -> str:
    return "\n".join(screen_lines(app))


def toasts(app) -> str:
    """The notifications on screen, as their widgets render them (whatever the wrapping)."""
    return "\n".join(str(toast.render()) for toast in app.screen.query(Toast))


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.02)


def store_run(tokenizer, path, detail: str = "") -> tuple[Store, str]:
    """A stored run whose problem id and statement look like markup, and, with ``detail``, whose
    first candidate has a failed test with that output."""
    result = synthetic_result(tokenizer)
    result.problem = {**result.problem, "id": PROBLEM_ID, "text": STATEMENT}
    if detail:
        result.candidates[0].tests = [TestOutcome("fail", 0.01, detail=detail)]
    store = Store(path / "runs.sqlite")
    return store, store.save(result)


@pytest.fixture
def stored(tokenizer, tmp_path):
    return store_run(tokenizer, tmp_path)


@pytest.mark.asyncio
async def test_main_screen_shows_ids_and_test_output_as_written(tokenizer, tmp_path):
    store, run_id = store_run(tokenizer, tmp_path, detail=DETAIL)
    app = BcoderTui(result=store.get(run_id), store=store)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await pilot.pause()
        text = drawn(app)
        assert PROBLEM_ID in text.splitlines()[0]  # the header
        assert DETAIL in text  # the tests panel's detail column


@pytest.mark.asyncio
async def test_progress_messages_are_shown_as_written(stored):
    store, run_id = stored
    app = BcoderTui(result=store.get(run_id), store=store)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        app.progress_row.display = True
        app.progress_row.show(Progress("load", 0, 0, "loading /m/[/i]tiny[b]"))
        await pilot.pause()
        assert "loading /m/[/i]tiny[b]" in drawn(app)


@pytest.mark.asyncio
async def test_problem_dialog_shows_the_statement_as_written(stored):
    store, run_id = stored
    app = BcoderTui(result=store.get(run_id), store=store)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await pilot.press("p")
        assert isinstance(app.screen, ProblemScreen)
        text = drawn(app)
        assert f"{PROBLEM_ID}  (text, 2 tests)" in text
        assert STATEMENT.splitlines()[0] in text


@pytest.mark.asyncio
async def test_open_dialog_lists_run_titles_and_reports_bad_names_as_written(stored):
    store, _ = stored
    app = BcoderTui(store=store)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, OpenScreen)
        assert STATEMENT.splitlines()[0][:30] in drawn(app)  # the recent run's title
        await pilot.press(*"nope[/i]x[b]", "enter")
        await wait_for(pilot, lambda: "nope[/i]x[b]: no such file or run" in toasts(app))


@pytest.mark.asyncio
async def test_saved_file_name_is_reported_as_written(stored, tmp_path):
    store, run_id = stored
    app = BcoderTui(result=store.get(run_id), store=store)
    target = tmp_path / "out[b]" / "best[i].py"
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await pilot.press("s")
        assert isinstance(app.screen, SaveScreen)
        app.screen.query_one("#save-path").value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, target.exists)
        await wait_for(pilot, lambda: f"saved {target}" in toasts(app))
