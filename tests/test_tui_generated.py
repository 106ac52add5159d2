"""Pilot tests of the TUI on a run whose model wrote the tests (a problem without tests of its own):
each test's verdict in the tests panel, a candidate's score on them in the list, the agreement view
(how many candidates pass each test, duplicates counted), and the note when it wrote none.

The runs are built by hand (test_tui_data.generated_result: what the sandbox gives those programs on
those tests) and go through the results store, as ``bcoder tui --run`` reads them.
"""

from __future__ import annotations

import pytest
from test_tui_data import PROGRAMS, VERDICTS, WRITTEN, generated_result, screen_lines
from test_tui_data import synthetic_result as plain_result

from bcoder.cli.tui.agreement import AgreementScreen
from bcoder.cli.tui.app import BcoderTui
from bcoder.cli.tui.palette import palette_commands
from bcoder.cli.tui.panels import CandidateTable
from bcoder.cli.tui.screens import HelpScreen
from bcoder.core.types import GeneratedTests
from bcoder.pipeline.store import Store

SIZE = (80, 24)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "runs.sqlite")


def cells(table, row: int) -> list[str]:
    return [str(c) for c in table.get_row_at(row)]


def test_builder_verdicts_match_what_the_programs_do():
    """The hand-written verdicts are what each program gives on each test (run here, in-process:
    these are the test's own programs, not model output)."""
    for code, verdicts in VERDICTS.items():
        scope: dict = {}
        exec(code, scope)
        for test, (verdict, value) in zip(WRITTEN, verdicts, strict=True):
            call, expected = test.removeprefix("assert ").split(" == ")
            try:
                got = eval(call, scope)
            except TypeError:
                assert (verdict, value) == ("runtime_error", "raise TypeError"), (code, test)
                continue
            assert (verdict == "pass") == (got == eval(expected)), (code, test)
            assert value == repr(got), (code, test)


@pytest.mark.asyncio
async def test_each_generated_test_and_its_verdict_in_the_tests_panel(tokenizer, store):
    result = store.get(store.save(generated_result(tokenizer)))
    assert result.generated.asserts == WRITTEN  # through the store
    app = BcoderTui(result=result, store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        panel = app.tests_panel
        assert panel.border_title == "tests written by the model"
        best = app.candidates[0]
        assert best.code == PROGRAMS[0]
        assert "passes 3/4 of the tests the model wrote" in str(panel.summary.render())
        rows = [cells(panel.table, r) for r in range(panel.table.row_count)]
        assert [r[0] for r in rows] == ["g1", "g2", "g3", "g4"]
        assert [r[1] for r in rows] == ["✓ pass", "✓ pass", "✗ fail", "✓ pass"]
        assert rows[0][-1] == "add(1, 2) == 3"
        assert rows[2][-1] == "add(2, 2) == 5  got 4"  # what it returned on the failed one

        # the candidate that raises on strings: its error; the list says 2/4 for it
        table = app.query_one(CandidateTable)
        table.focus()
        rank = next(i for i, c in enumerate(app.candidates) if c.code == PROGRAMS[2])
        await pilot.press(*["down"] * rank)
        assert app.selected == rank
        last = cells(panel.table, 3)
        assert last[1].startswith("RE") and last[-1].endswith("raised TypeError")
        assert "passes 2/4" in str(panel.summary.render())

        # the list: a gen column with each candidate's score on the model's tests
        assert [str(c.label) for c in table.columns.values()][-1] == "gen"
        for row, cand in enumerate(app.candidates):
            passing = sum(v == "pass" for v, _ in VERDICTS[cand.code])
            assert cells(table, row)[-1] == f"{passing}/4"
        footer = screen_lines(app)[-1]
        assert "a Agreement" in footer and "? Help" in footer, footer
        titles = [c.title for c in palette_commands(app)]
        assert "Agreement" in titles


@pytest.mark.asyncio
async def test_agreement_view_counts_the_candidates_that_pass_each_test(tokenizer, store):
    result = store.get(store.save(generated_result(tokenizer)))
    samples = [c for c in result.candidates for _ in range(c.count)]  # duplicates, one by one
    expected = [sum(VERDICTS[c.code][i][0] == "pass" for c in samples) for i in range(len(WRITTEN))]
    assert expected == [5, 5, 0, 4] and len(samples) == 6
    app = BcoderTui(result=result, store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        assert isinstance(app.screen, AgreementScreen)
        lines = screen_lines(app)
        assert any("2 samples, 7 asserts written, 4 kept, 12.5 s" in line for line in lines)
        assert any("of the 6 sampled (duplicates counted)" in line for line in lines)
        table = app.screen.query_one("#agreement-table")
        rows = [cells(table, r) for r in range(table.row_count)]
        assert [r[0] for r in rows] == ["g1", "g2", "g3", "g4"]
        assert [r[1] for r in rows] == [f"{n}/6" for n in expected]
        assert [r[-1] for r in rows] == [t.removeprefix("assert ") for t in WRITTEN]
        raises = 1 + next(i for i, c in enumerate(result.candidates) if c.code == PROGRAMS[2])
        assert f"#{raises}" in rows[0][3] and f"#{raises}" not in rows[3][3]
        assert rows[2][3] == "none"  # the wrong test: no candidate agrees with it
        await pilot.press("escape")
        assert not isinstance(app.screen, AgreementScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert any("a  Agreement" in line for line in screen_lines(app))


@pytest.mark.asyncio
async def test_the_note_when_the_model_wrote_no_test(tokenizer, store):
    result = generated_result(tokenizer)
    result.generated = GeneratedTests(samples=2, written=3, note="the model wrote no test of add")
    for cand in result.candidates:
        cand.generated = []
    app = BcoderTui(result=store.get(store.save(result)), store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        panel = app.tests_panel
        assert str(panel.summary.render()) == "no tests — the model wrote no test of add"
        assert panel.border_title == "tests" and panel.table.row_count == 0
        table = app.query_one(CandidateTable)
        assert "generated" not in table.columns and not table.has_class("-generated")
        assert "Agreement" not in screen_lines(app)[-1]
        await pilot.press("a")  # nothing to show: no screen, no error
        assert not isinstance(app.screen, AgreementScreen)
        assert "Agreement" not in [c.title for c in palette_commands(app)]


@pytest.mark.asyncio
async def test_a_run_with_tests_of_its_own_shows_no_generated_column(tokenizer, store):
    app = BcoderTui(result=plain_result(tokenizer), store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one(CandidateTable)
        assert [str(c.label) for c in table.columns.values()] == ["#", "R~", "ok", "len", "×"]
        assert app.tests_panel.border_title == "tests"
        await pilot.press("question_mark")
        assert not any("Agreement" in line for line in screen_lines(app))


@pytest.mark.asyncio
async def test_ten_tests_and_tests_a_candidate_did_not_run(tokenizer, store):
    """g10 gets a wider number column; a test with no verdict (the run stopped) says so."""
    result = generated_result(tokenizer)
    result.generated.asserts = [*WRITTEN, *(f"assert add({i}, 0) == {i}" for i in range(6))]
    app = BcoderTui(result=store.get(store.save(result)), store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.tests_panel.table
        assert table.row_count == 10 and table.columns["n"].width == 3
        assert cells(table, 9)[:2] == ["g10", "· none"]
        assert cells(app.query_one(CandidateTable), 0)[-1] == "3/10"
