"""Pilot tests of the TUI: a stored run scored by the real engine, and live generation on the tiny model."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from test_tui_data import PROGRAMS, scored_result

from bcoder.cli.tui.app import BcoderTui
from bcoder.cli.tui.compare import CompareScreen, CompareView
from bcoder.cli.tui.heatmap import HeatmapView, base_colour
from bcoder.cli.tui.panels import CandidateTable
from bcoder.cli.tui.screens import OpenScreen, SaveScreen
from bcoder.core.spec import Problem
from bcoder.pipeline.store import Store

SIZE = (80, 24)


@pytest.fixture(scope="module")
def stored(tiny_model_dir, tmp_path_factory):
    """A store holding one run of the PROGRAMS scored on the tiny model; (store, run id)."""
    store = Store(tmp_path_factory.mktemp("store") / "runs.sqlite")
    run_id = store.save(scored_result(tiny_model_dir))
    return store, run_id


async def wait_for(pilot, condition, timeout: float = 60.0) -> None:
    """Let the app run until ``condition()`` holds (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.05)


def text_of(app, selector: str) -> str:
    return str(app.query_one(selector).render())


@pytest.mark.asyncio
async def test_stored_run_select_candidates_and_switch_metrics(stored):
    store, run_id = stored
    result = store.get(run_id)
    app = BcoderTui(result=result, store=store)
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(CandidateTable)
        view = app.query_one(HeatmapView)
        assert table.row_count == len(PROGRAMS)
        assert (
            view.candidate is result.candidates[0]
            or view.candidate.code == result.candidates[0].code
        )
        rewards = [float(str(table.get_cell_at((r, 1)))) for r in range(table.row_count)]
        assert rewards == sorted(rewards, reverse=True)  # ranked best first
        assert (
            app.sub_title.count(run_id) == 1
            and "ranked by reward (untrained heads)" in app.sub_title
        )

        table.focus()
        await pilot.press("down", "down")
        assert app.selected == 2
        assert view.candidate.code == app.candidates[2].code
        assert view.border_title.startswith("#3 ")

        # the details line follows the token cursor in the code view
        first = view.tokens[0]
        assert repr(first.text)[:24] in text_of(app, "#details")
        view.focus()
        await pilot.press("right", "right")
        assert view.cursor == 2
        assert f"tok 3/{len(view.tokens)}" in text_of(app, "#details")
        # a click selects the token under the mouse (offset: border 1 + the line-number gutter)
        span = view.layout_.lines[1][-1]
        await pilot.click(HeatmapView, offset=(1 + view._gutter + span.start, 1 + 1))
        assert view.cursor == span.token

        # switching the metric recolours the tokens and the legend
        strip_before = view.render_line(0)
        styles_reward = [s.bgcolor for s in view._styles]
        await pilot.press("4")
        assert app.metric == "advantage" and view.metric == "advantage"
        assert text_of(app, "#legend").lstrip().startswith("A")
        assert [s.bgcolor for s in view._styles] != styles_reward
        await pilot.press("2")
        assert view.metric == "q" and text_of(app, "#legend").lstrip().startswith("Q")
        await pilot.press("3")
        assert view.metric == "v"
        await pilot.press("m")  # cycles v -> advantage
        assert view.metric == "advantage"
        await pilot.press("1")
        assert view.metric == "reward"
        assert [s.bgcolor for s in view._styles] == styles_reward
        assert view.render_line(0).text == strip_before.text


@pytest.mark.asyncio
async def test_heatmap_colours_follow_values(stored):
    """The most negative and most positive tokens of a metric get opposite hues."""
    from bcoder.cli.tui import colors

    store, run_id = stored
    app = BcoderTui(result=store.get(run_id), store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(HeatmapView)
        base = base_colour(view)
        for metric in colors.METRICS:
            app.metric = metric
            await pilot.pause()
            values = [colors.metric_value(t, metric) for t in view.tokens]
            limit = app.limits[metric]
            assert any(colors.level(v, limit) != 0 for v in values), metric
            for token_index, value in enumerate(values):
                lvl = colors.level(value, limit)
                triplet = view._styles[token_index].bgcolor.triplet
                if lvl == 0:
                    assert triplet.hex == base, (metric, value)
                else:  # blue for positive, orange-red for negative
                    assert (triplet.blue > triplet.red) == (lvl > 0), (metric, value, triplet)


@pytest.mark.asyncio
async def test_open_a_stored_run_from_the_dialog(stored):
    store, run_id = stored
    app = BcoderTui(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, OpenScreen)  # nothing given: the open dialog first
        await pilot.press(*run_id[:13], "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, OpenScreen), 10)
        assert app.result is not None and app.result.run_id == run_id
        assert app.query_one(CandidateTable).row_count == len(PROGRAMS)
        # and again through the list of recent runs
        await pilot.press("o")
        assert isinstance(app.screen, OpenScreen)
        app.screen.query_one("#open-runs").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, OpenScreen), 10)
        assert app.result.run_id == store.list(1)[0].id


@pytest.mark.asyncio
async def test_open_a_bad_reference_says_why(stored):
    store, _ = stored
    app = BcoderTui(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*"nope", "enter")
        await pilot.pause()
        assert app.result is None and app.problem is None
        messages = [n.message for n in app._notifications]
        assert any("nope: no such file or run" in m for m in messages), messages


@pytest.mark.asyncio
async def test_copy_save_and_compare(stored, tmp_path):
    store, run_id = stored
    app = BcoderTui(result=store.get(run_id), store=store)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one(CandidateTable).focus()
        await pilot.press("down")
        code = app.candidates[1].code
        await pilot.press("y")
        assert app.clipboard == code

        await pilot.press("s")
        assert isinstance(app.screen, SaveScreen)
        target = tmp_path / "out" / "best.py"
        field = app.screen.query_one("#save-path")
        field.value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, target.exists, 5)
        assert target.read_text() == code

        await pilot.press("space", "up", "c")  # mark #2, select #1, compare
        assert isinstance(app.screen, CompareScreen)
        assert app.screen.ranks == (2, 1)
        view = app.screen.query_one(CompareView)
        rows = max(len(lay.lines) for lay in view.layouts)
        assert view.virtual_size.height == rows
        lines = [view.render_line(y).text for y in range(3)]
        assert any(line.count("def add") == 2 for line in lines), lines  # side by side
        assert len(view.sums[0]) == len(view.layouts[0].lines)
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)


@pytest.mark.asyncio
async def test_run_tests_of_the_selected_candidate(stored):
    """t runs the selected candidate in the sandbox; the verdicts show and reach the store."""
    store, run_id = stored
    app = BcoderTui(result=store.get(run_id), store=store)
    async with app.run_test(size=SIZE) as pilot:
        codes = [c.code for c in app.candidates]
        good = next(i for i, c in enumerate(codes) if "return a + b" in c)
        bad = next(i for i, c in enumerate(codes) if "print(" in c)
        table = app.query_one(CandidateTable)
        table.focus()
        for index, outcome in ((good, "pass"), (bad, "fail")):
            table.move_cursor(row=index)
            await pilot.pause()
            assert app.selected == index
            await pilot.press("t")
            await wait_for(pilot, lambda i=index: app.candidates[i].outcome is not None, 60)
            cand = app.candidates[index]
            assert cand.outcome == outcome
            assert cand.true_reward == (1.0 if outcome == "pass" else -0.3)
            tests = app.query_one("#tests-table")
            assert tests.row_count == 2  # both asserts, each with its verdict
            assert outcome in text_of(app, "#tests-summary")
            assert str(table.get_cell_at((index, 2))) == ("✓" if outcome == "pass" else "✗")
        saved = store.get(run_id).candidates
        assert saved[good].outcome == "pass" and saved[bad].outcome == "fail"
        assert len(saved[bad].tests) == 2 and saved[bad].tests[0].verdict in {"pass", "fail"}


@pytest.mark.asyncio
async def test_command_palette_lists_the_actions(stored):
    store, run_id = stored
    app = BcoderTui(result=store.get(run_id), store=store)
    async with app.run_test(size=SIZE):
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Open", "Generate", "Colour by Q", "Colour by r~", "Compare", "Save code"} <= titles
        assert "Cancel generation" not in titles


@pytest.mark.asyncio
async def test_long_program_renders_line_by_line(stored):
    """A 3,000-line candidate: only visible lines are drawn, and the end is reachable."""
    store, run_id = stored
    result = store.get(run_id)
    long = result.candidates[0]
    long.tokens = long.tokens * 300  # same token texts repeated: each copy adds lines
    app = BcoderTui(result=result, store=store)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(HeatmapView)
        assert len(view.layout_.lines) > 600
        view.focus()
        start = time.perf_counter()
        await pilot.press("end")
        await pilot.pause()
        assert view.cursor == len(long.tokens) - 1
        assert view.scroll_y >= len(view.layout_.lines) - view.size.height - 1
        assert time.perf_counter() - start < 5


@pytest.mark.asyncio
async def test_generate_on_the_tiny_model_saves_the_run(tiny_model_dir, tmp_path):
    from test_tui_data import PROBLEM

    store = Store(tmp_path / "runs.sqlite")
    settings = {"model": str(tiny_model_dir), "n": 3, "max_new_tokens": 12, "run_tests": False}
    app = BcoderTui(problem=Problem.from_dict(PROBLEM), settings=settings, store=store)
    arrivals = []
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.generating, 10)
        while app.generating:
            arrivals.append(len(app.candidates))
            await pilot.pause(0.02)
        assert app.status == "", app.status
        assert app.result is not None and app.result.run_id
        assert store.get(app.result.run_id).candidates[0].code == app.candidates[0].code
        assert app.query_one(CandidateTable).row_count == len(app.candidates) >= 1
        assert not app.query_one("#progress-row").display
    assert [r.id for r in store.list()] == [app.result.run_id]  # every TUI run is stored


@pytest.mark.asyncio
async def test_a_notice_of_the_solve_is_shown(tiny_model_dir, tmp_path):
    """No tests of its own: the tiny model writes tests, none parse, and the fallback is said."""
    from test_tui_data import PROBLEM

    problem = Problem.from_dict({**PROBLEM, "tests": None})
    settings = {"model": str(tiny_model_dir), "n": 2, "max_new_tokens": 8, "generate_tests": True}
    app = BcoderTui(problem=problem, settings=settings, store=Store(tmp_path / "runs.sqlite"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.result is not None, 60)
        notes = [n for n in app._notifications if "no generated test ran" in n.message]
        assert [n.severity for n in notes] == ["warning"], [n.message for n in app._notifications]
        assert app.result.generated is not None and app.result.generated.asserts == []


@pytest.mark.asyncio
async def test_cancel_generation(tiny_model_dir, tmp_path):
    from test_tui_data import PROBLEM

    store = Store(tmp_path / "runs.sqlite")
    settings = {"model": str(tiny_model_dir), "n": 64, "max_new_tokens": 512, "batch_size": 4}
    app = BcoderTui(problem=Problem.from_dict(PROBLEM), settings=settings, store=store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "generate" in text_of(app, "#progress-label"), 30)
        assert app.query_one("#progress-row").display
        started = time.monotonic()
        await pilot.press("x")
        await wait_for(pilot, lambda: not app.generating, 30)
        assert time.monotonic() - started < 10
        assert app.status == "cancelled"
        assert app.result is None
        assert app.active_bindings["g"].enabled  # ready to generate again
        assert "generating" not in app.query_one(HeatmapView).border_title
        assert "x" not in app.active_bindings  # cancel is hidden again
    assert store.list() == []  # a cancelled generation is not a run


def test_cli_errors_are_one_line(tmp_path):
    env_store = str(tmp_path / "runs.sqlite")
    for args, expect in [
        (["--run", "nope"], "no run 'nope'"),
        (["missing.txt"], "missing.txt: no such file"),
        (["missing.txt", "--run", "x"], "not both"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "bcoder", "tui", *args, "--store", env_store],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: ") and expect in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.asyncio
async def test_type_a_statement_then_generate_again_from_the_run(tiny_model_dir, tmp_path):
    """A statement typed into the open dialog is solved and saved; g on that run solves again."""
    store = Store(tmp_path / "runs.sqlite")
    settings = {"model": str(tiny_model_dir), "n": 2, "max_new_tokens": 8, "run_tests": False}
    app = BcoderTui(settings=settings, store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, OpenScreen)
        app.screen.query_one("#open-text").text = "Print the sum of two integers read from stdin."
        await pilot.click("#open-ok")
        await wait_for(pilot, lambda: app.result is not None, 60)
        assert app.problem.source == "text" and "sum of two integers" in app.problem.text
        first = app.result.run_id
        assert not app.generating and first

        await pilot.press("p")  # the statement, in a dialog
        shown = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "sum of two integers" in shown and "(text, 0 tests)" in shown
        await pilot.press("escape")

        await pilot.press("g")
        await wait_for(pilot, lambda: app.result is not None and app.result.run_id != first, 60)
        assert app.result.settings["n"] == 2 and app.result.settings["max_new_tokens"] == 8
    assert {r.id for r in store.list()} == {first, app.result.run_id}


@pytest.mark.asyncio
async def test_theme_change_recolours_the_heatmap(stored):
    """Colours are blended from the theme's background: a light theme gives light tints."""
    from bcoder.cli.tui import colors

    store, run_id = stored
    app = BcoderTui(result=store.get(run_id), store=store)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(HeatmapView)
        dark_base = base_colour(view)
        dark = [s.bgcolor.triplet.hex for s in view._styles]
        app.theme = "textual-light"
        await pilot.pause()
        light_base = base_colour(view)
        light = [s.bgcolor.triplet.hex for s in view._styles]
        assert colors.luminance(light_base) > 0.5 > colors.luminance(dark_base)
        limit = app.limits["reward"]
        for token, d, lt in zip(view.tokens, dark, light, strict=True):
            lvl = colors.level(token.reward, limit)
            assert d == colors.level_colour(lvl, dark_base)
            assert lt == colors.level_colour(lvl, light_base)
            if abs(lvl) < colors.STEPS:  # only the palette's end colours are shared
                assert colors.luminance(lt) > colors.luminance(d)
