"""What the CLI prints, as a user reads it (issue 31): user and model text shown verbatim (never as
Rich markup), the documented ``--json`` schema, the table's telling column, the one-line heads
note, plain output when piped, and the smaller labels."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from bcoder.core.types import Candidate, Progress, SolveResult, TokenScore
from bcoder.pipeline.store import Store

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TWO_SUM = (EXAMPLES / "two_sum.txt").read_text()  # "returns a list [i, j] ... nums[i] + nums[j]"


def invoke(*args, env: dict[str, str], monkeypatch):
    """Run the typer app in this process; stdout is not a terminal, as in a pipe."""
    from typer.testing import CliRunner

    from bcoder.cli.main import app

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {
        "BCODER_HOME": str(tmp_path / "home"),
        "BCODER_STORE": str(tmp_path / "runs.sqlite"),
        "BCODER_CACHE": str(tmp_path / "cache"),
        "COLUMNS": "120",
    }


def tokens(text: str, n: int = 3) -> list[TokenScore]:
    return [TokenScore(text, i, 0.5, 1.0, -0.5, -0.4 * i, -1.0) for i in range(n)]


def candidate(code: str, reward: float, outcome: str | None = None) -> Candidate:
    return Candidate(code=code, completion=code, tokens=tokens("x"), reward=reward, outcome=outcome)


# --- item 1: user and model text reaches Rich verbatim -------------------------------------------


def markup_result() -> SolveResult:
    code = "def two_sum(nums, target):\n    return [0, 1]  # [/i] [bold]not bold[/bold]\n"
    return SolveResult(
        problem={"id": "two_sum[/b]", "text": TWO_SUM + "\nA stray [/i] tag.\n"},
        settings={"model": "/models/[red]tiny[/red]", "checkpoint": "[/x]", "n": 2},
        candidates=[candidate(code, 0.5, "pass"), candidate(code + "# [/u]\n", -1.0, "fail")],
        heads="/ckpts/[b]mine[/b]",
        timings={"generate": 1.5},
    )


def test_runs_show_and_list_print_statements_and_paths_verbatim(env, monkeypatch, tmp_path):
    run_id = Store(env["BCODER_STORE"]).save(markup_result())
    out = invoke("runs", "show", run_id, env=env, monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert "returns a list [i, j] with i < j" in text and "nums[i] + nums[j] == target" in text
    assert "A stray [/i] tag." in text and "two_sum[/b]" in text
    assert "/models/[red]tiny[/red]" in text and "/ckpts/[b]mine[/b]" in text
    assert "# [/i] [bold]not bold[/bold]" in text


def test_progress_descriptions_and_notes_are_not_markup(capsys):
    from bcoder.cli.solve import EventBar, notice

    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with EventBar(True, console=console) as bar:
        bar(Progress("load", 1, 2, "loading /models/[/i]odd[b]"))
        bar.progress.refresh()
    assert "/models/[/i]odd[b]" in console.file.getvalue()
    notice(SimpleNamespace(info={"notice": "heads from [/dim] llama.cpp, served on [x]"}))
    assert "heads from [/dim] llama.cpp, served on [x]" in capsys.readouterr().err


# --- item 10: the column that tells candidates apart ---------------------------------------------


# --- item 11: one short heads line; details with --verbose; what R~ means -----------------------


# --- items 9, 11, 12 and 16 in a real solve on the tiny model ---------------------------------


# --- item 12 at the renderer: no colours, no colour legend, the program plainly ------------------


# --- item 16: the smaller labels ----------------------------------------------------------------


def test_timings_leave_out_work_done_in_the_loop():
    from bcoder.cli.render import timings_line

    line = timings_line({"load": 2.0, "generate": 3.25, "score": 0.0004, "execute": 0.0})
    assert "score 0" not in line and "0.00s" not in line
    assert "generate 3.25s" in line and "scored while sampling" in line
    assert "score 1.50s" in timings_line({"generate": 3.0, "score": 1.5})


def test_runs_list_says_distinct(env, monkeypatch):
    result = markup_result()
    result.settings["n"] = 8
    Store(env["BCODER_STORE"]).save(result)
    out = invoke("runs", "list", env={**env, "COLUMNS": "160"}, monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    assert "distinct" in out.stdout


def test_a_tests_file_beside_the_statement_is_announced(capsys):
    from bcoder.cli.solve import announce_tests
    from bcoder.problems.load import load_problem

    announce_tests(load_problem(EXAMPLES / "two_sum.txt"), None, run=True)
    assert "two_sum.tests.json" in capsys.readouterr().err
    announce_tests(load_problem(EXAMPLES / "two_sum.txt"), None, run=False)  # --no-tests
    given = EXAMPLES / "two_sum.tests.json"
    announce_tests(load_problem(EXAMPLES / "two_sum.txt", given), given, run=True)  # asked for
    assert capsys.readouterr().err == ""


def test_an_empty_folder_is_not_said_to_hold_many_problems(tmp_path):
    from bcoder.core.errors import BcoderError
    from bcoder.problems.load import load_problem

    (tmp_path / "empty").mkdir()
    with pytest.raises(BcoderError) as err:
        load_problem(tmp_path / "empty")
    assert "many" not in str(err.value) and "no problem" in str(err.value)
    (tmp_path / "two").mkdir()
    for name in ("a", "b"):
        (tmp_path / "two" / f"{name}.txt").write_text("Print 1.\n")
    with pytest.raises(BcoderError, match=r"two:a"):
        load_problem(tmp_path / "two")  # names one it holds
    assert load_problem(f"{tmp_path / 'two'}:b").id == "b"
