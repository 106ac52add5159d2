"""The TUI follows Textual's conventions: quit and help in the footer, ``?`` for help, metric keys
that do not clash with quitting; a new generation keeps the list until its candidates arrive and
``x`` brings back what was shown before; the header fits 120 columns.

These run a real ``BcoderTui`` under Pilot on synthetic runs; the generation worker's body
(``bcoder.cli.tui.generate.generate``) is replaced by a scripted one, so the order of events is exact.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from test_tui_data import PROBLEM, screen_lines, synthetic_candidate, synthetic_result

from bcoder.cli.tui import generate as generate_module
from bcoder.cli.tui.app import BcoderTui
from bcoder.cli.tui.heatmap import HeatmapView
from bcoder.cli.tui.panels import CandidateTable
from bcoder.cli.tui.screens import HelpScreen
from bcoder.core.cancel import Cancelled
from bcoder.core.types import CandidateReady, Progress, SolveResult
from bcoder.pipeline.store import Store

SHIPPED = (
    Path(__file__).resolve().parents[1] / "bcoder" / "checkpoints" / "qwen2.5-coder-1.5b-lmhead"
)


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.02)


@pytest.fixture
def stored(tokenizer, tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    run_id = store.save(synthetic_result(tokenizer))
    return store, run_id


@pytest.mark.asyncio
async def test_quit_and_help_are_in_the_footer_and_q_does_not_recolour(stored):
    store, run_id = stored
    app = BcoderTui(result=store.get(run_id), store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        footer = screen_lines(app)[-1]
        assert "^q Quit" in footer and "? Help" in footer, footer
        assert "m Metric" in footer, footer

        await pilot.press("q")  # a newcomer's "quit": says how, recolours nothing
        await pilot.pause()
        assert app.is_running and app.metric == "reward"
        assert any("ctrl+q" in n.message for n in app._notifications)

        for key, metric in (("2", "q"), ("3", "v"), ("4", "advantage"), ("1", "reward")):
            await pilot.press(key)
            assert app.metric == metric and app.query_one(HeatmapView).metric == metric
        await pilot.press("m")
        assert app.metric == "q"

        await pilot.press("ctrl+q")
        await pilot.pause()
    assert not app.is_running


@pytest.mark.asyncio
async def test_question_mark_shows_every_key_and_what_the_colours_mean(stored):
    store, run_id = stored
    app = BcoderTui(result=store.get(run_id), store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        lines = screen_lines(app)
        for key, what in (
            ("g", "Generate"),
            ("x", "Cancel"),
            ("1", "r~"),
            ("2", "Q"),
            ("4", "A"),
            ("m", "Metric"),
            ("space", "Mark"),
            ("^q", "Quit"),
            ("^p", "palette"),
        ):
            assert any(key in line and what in line for line in lines), (key, what, lines)
        assert any("higher is better" in line for line in lines), lines  # what r~ means
        await pilot.press("question_mark")  # ? closes it again, as escape does
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark", "escape")
        assert not isinstance(app.screen, HelpScreen)


class ScriptedGenerate:
    """Stands in for ``generate``: emits a progress event, then the ``extra`` candidates, then waits
    until released (returns a result with them) or cancelled (raises Cancelled)."""

    def __init__(self, tokenizer, extra: int) -> None:
        self.tokenizer, self.extra = tokenizer, extra
        self.release = threading.Event()
        self.sent = threading.Event()

    def __call__(self, problem, values, engines, store, on_event, cancel) -> SolveResult:
        on_event(Progress("generate", 0, 4, "sampling"))
        cands = [synthetic_candidate(self.tokenizer, "def add(a, b):\n    return b + a\n", 7)]
        for i, cand in enumerate(cands[: self.extra]):
            on_event(CandidateReady(cand, i))
        self.sent.set()
        while not self.release.wait(0.01):
            if cancel.is_set():
                raise Cancelled("cancelled")
        result = SolveResult(problem=dict(PROBLEM), settings=dict(values), candidates=cands)
        store.save(result)
        return result


@pytest.mark.asyncio
@pytest.mark.parametrize("extra", [0, 1])
async def test_generate_keeps_the_list_and_cancel_restores_it(
    stored, tokenizer, monkeypatch, extra
):
    """g keeps the shown run until new candidates arrive; x brings back exactly what was shown."""
    store, run_id = stored
    script = ScriptedGenerate(tokenizer, extra)
    monkeypatch.setattr(generate_module, "generate", script)
    app = BcoderTui(result=store.get(run_id), store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        table, view = app.query_one(CandidateTable), app.query_one(HeatmapView)
        table.focus()
        await pilot.press("down")
        before = list(app.candidates)
        shown = view.candidate
        await pilot.press("g")
        await wait_for(pilot, lambda: script.sent.is_set() and app.generating)
        await pilot.pause(0.05)
        if extra:  # the new run's candidates replace the list as they arrive
            assert table.row_count == 1 and app.candidates[0] not in before
        else:  # nothing new yet: the previous list stays, usable
            assert table.row_count == len(before) and view.candidate is shown
            assert "generating" not in str(view.border_title)
        await pilot.press("x")
        await wait_for(pilot, lambda: not app.generating)
        assert app.candidates == before and app.selected == 1
        assert view.candidate is shown and table.row_count == len(before)
        assert app.result is not None and app.result.run_id == run_id
        assert "generating" not in str(view.border_title)
        assert app.status == "cancelled"
    assert [r.id for r in store.list()] == [run_id]


@pytest.mark.asyncio
async def test_generate_from_a_run_uses_its_settings_and_shows_the_new_run(
    stored, tokenizer, monkeypatch
):
    store, run_id = stored
    script = ScriptedGenerate(tokenizer, 1)
    seen = {}

    def record(problem, values, *args):
        seen.update(values)
        return script(problem, values, *args)

    monkeypatch.setattr(generate_module, "generate", record)
    app = BcoderTui(result=store.get(run_id), store=store, settings={"n": 2})
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g")
        await wait_for(pilot, script.sent.is_set)
        script.release.set()
        await wait_for(pilot, lambda: not app.generating)
        assert app.result is not None and app.result.run_id not in (None, run_id)
        assert app.query_one(CandidateTable).row_count == 1
    assert seen["model"] == "tiny" and seen["temperature"] == 0.6 and seen["n"] == 2


def shipped_run(tokenizer) -> SolveResult:
    """A run as a fresh install makes it: default model, shipped heads, base policy."""
    result = synthetic_result(tokenizer)
    result.problem = {**result.problem, "id": "mbpp:11"}
    result.settings = {
        "model": "qwen2.5-coder-1.5b",
        "ranker": "tests-first",
        "policy": "base",
        "checkpoint": str(SHIPPED),
    }
    result.heads = str(SHIPPED)
    result.run_id = "261207-013000-abcd"
    return result


@pytest.mark.asyncio
@pytest.mark.parametrize("status", ["", "cancelled"])
async def test_header_fits_120_columns(tokenizer, tmp_path, status):
    app = BcoderTui(result=shipped_run(tokenizer), store=Store(tmp_path / "runs.sqlite"))
    async with app.run_test(size=(120, 30)) as pilot:
        app.status = status
        app._update_titles()
        await pilot.pause()
        header = screen_lines(app)[0]
        assert "…" not in header, header
        for part in ("mbpp:11", "tests-first", "261207-013000-abcd", status):
            assert part in header, (part, header)
        await pilot.resize_terminal(200, 30)  # room again: the model and heads come back
        await pilot.pause()
        header = screen_lines(app)[0]
        assert "qwen2.5-coder-1.5b" in header and "lmhead" in header and "…" not in header, header
