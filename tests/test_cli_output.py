"""What the CLI prints, as a user reads it (issue 31): user and model text shown verbatim (never as
Rich markup), the documented ``--json`` schema, the table's telling column, the one-line heads
note, plain output when piped, and the smaller labels."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
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
        heads="/ckpts/[bold]mine",
        timings={"generate": 1.5},
    )


def test_runs_show_and_list_print_statements_and_paths_verbatim(env, monkeypatch, tmp_path):
    run_id = Store(env["BCODER_STORE"]).save(markup_result())
    out = invoke("runs", "show", run_id, env=env, monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert "returns a list [i, j] with i < j" in text and "nums[i] + nums[j] == target" in text
    assert "A stray [/i] tag." in text and "two_sum[/b]" in text
    assert "/models/[red]tiny[/red]" in text and "/ckpts/[bold]mine" in text
    assert "# [/i] [bold]not bold[/bold]" in text


def test_runs_show_format_code_prints_the_program_alone(env, monkeypatch):
    run_id = Store(env["BCODER_STORE"]).save(markup_result())
    out = invoke("runs", "show", run_id, "--format", "code", env=env, monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    assert out.stdout == markup_result().candidates[0].code  # the program alone, as written


def test_solve_output_renders_markup_like_text_verbatim():
    from bcoder.cli.render import render_result

    console = Console(width=160, record=True, force_terminal=True)
    render_result(console, markup_result(), "reward", 5)
    text = console.export_text()
    assert "/models/[red]tiny[/red]" in text and "heads [bold]mine" in text
    assert "# [/u]" in text and "two_sum[/b]" in text  # the line that tells the two apart


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

STUB_DEF = "def max_of_list(numbers: list[int]) -> int:"
DOC = '    """Return the largest number in a non-empty list of integers."""'


def test_the_code_column_shows_what_tells_candidates_apart_at_the_terminals_width():
    from bcoder.cli.render import ranked_table

    long_line = (
        "    return max(numbers, key=lambda value: (value, -numbers.index(value)), default=0)"
    )
    bodies = [
        ["    best = numbers[0]", "    for x in numbers[1:]:", "        best = max(best, x)"],
        [long_line],
        ["    # the largest", "    return sorted(numbers)[-1]"],
    ]
    cands = [
        candidate("\n".join([STUB_DEF, DOC, *body, ""]), 1.0 - i) for i, body in enumerate(bodies)
    ]
    result = SolveResult(
        problem={"id": "max_of_list", "text": DOC.strip(), "starter_code": STUB_DEF},
        settings={"model": "m", "n": 3},
        candidates=cands,
    )
    console = Console(width=160, record=True)
    console.print(ranked_table(result, 5))
    text = console.export_text()
    assert STUB_DEF not in text  # the same on every row: it tells nothing
    assert "best = numbers[0]" in text and "return sorted(numbers)[-1]" in text
    assert long_line.strip() in text  # all 80 characters: the table takes the terminal's width
    console = Console(width=80, record=True)
    console.print(ranked_table(result, 5))
    assert max(map(len, console.export_text().splitlines())) <= 80


# --- item 11: one short heads line; details with --verbose; what R~ means -----------------------


def shipped_like(tmp_path) -> Path:
    heads = tmp_path / "shipped-heads"
    heads.mkdir()
    (heads / "TRAINING.json").write_text(
        json.dumps(
            {
                "name": "bcoder qwen2.5-coder-1.5b-lmhead",
                "summary": "lmhead mode on mbpp train+validation: 417 problems trained, 47 held "
                "out; 2247 samples at temperature 0.6 (1325 pass) plus the ground truths (as "
                "ast.unparse prints them); ranks by tests-first (chosen on the held-out problems)",
                "data": {"trained_problems": 417, "heldout_problems": 47},
                "config": {"data": {"dataset": "mbpp", "split": "train+validation"}},
            }
        )
    )
    return heads


def test_the_heads_note_is_one_short_line_and_says_what_r_means(tmp_path):
    from bcoder.cli.render import render_result

    result = SolveResult(
        problem={"id": "p"},
        settings={"model": "qwen2.5-coder-1.5b", "ranker": "tests-first", "policy": "base"},
        candidates=[candidate("def f():\n    return 1\n", -10.0)],
        heads=str(shipped_like(tmp_path)),
    )
    console = Console(width=80, record=True)
    render_result(console, result, "reward", 5)
    text = console.export_text()
    (heads,) = [line for line in text.splitlines() if "ranks by" in line]
    assert "example tests first, then R~" in heads and "417 mbpp problems" in heads
    assert not heads.endswith("…")  # whole, within 80 columns
    assert "ast.unparse" not in text and "--policy trained" not in text  # details: --verbose
    assert "higher is better" in text and "within" in text  # what an R~ of -10 or +1 means
    console = Console(width=80, record=True)
    render_result(console, result, "reward", 5, verbose=True)
    text = console.export_text()
    assert "bcoder qwen2.5-coder-1.5b-lmhead" in text and "ast.unparse" in text
    assert "base model's own policy" in text and "e^10" in text


# --- items 9, 11, 12 and 16 in a real solve on the tiny model ---------------------------------

SOLVE = ["solve", EXAMPLES / "two_sum.txt", "-n", 3, "--max-new-tokens", 12, "--timeout", 2]


def test_solve_json_has_a_documented_schema(tiny_model_dir, env, monkeypatch):
    """--json: the schema of docs/json.md, with a version and the clear names of both rewards;
    a run without trained heads says it sampled the LM's own policy."""
    out = invoke(*SOLVE, "--model", tiny_model_dir, "--json", env=env, monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["schema_version"] == 1
    assert result["settings"]["policy"] == "base"  # no trained heads: the LM's own policy
    assert result["heads_info"]["trained"] is False and result["ranker_label"]
    for c in result["candidates"]:
        assert c["recovered_reward"] == c["reward"]  # R~; "reward" kept in schema version 1
        assert c["test_reward"] == c["true_reward"] is not None  # the tests' reward
    documented = documented_keys()
    assert set(result) <= documented["result"], set(result) - documented["result"]
    cand = result["candidates"][0]
    assert set(cand) <= documented["candidate"], set(cand) - documented["candidate"]
    assert set(cand["tokens"][0]) <= documented["token"]
    shown = invoke("runs", "show", result["run_id"], "--json", env=env, monkeypatch=monkeypatch)
    assert json.loads(shown.stdout)["candidates"] == result["candidates"]
    back = SolveResult.from_dict(json.loads(shown.stdout))  # the schema reads back
    assert back.candidates[0].reward == cand["reward"]


def test_solve_piped_prints_the_best_program_alone(tiny_model_dir, env, monkeypatch, tmp_path):
    """stdout not a terminal: the best program, plainly (and into -o FILE); stderr names the
    tests file picked up beside the statement and sums the run up."""
    args = [*SOLVE, "--model", tiny_model_dir, "--no-save"]
    best = json.loads(invoke(*args, "--json", env=env, monkeypatch=monkeypatch).stdout)
    code = best["candidates"][0]["code"]
    out = invoke(*args, "-o", tmp_path / "best.py", env=env, monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    program = code.rstrip("\n") + "\n" if code.strip() else ""
    assert out.stdout == program and "low = red" not in out.output
    if program:  # the tiny model may write no code at all
        assert (tmp_path / "best.py").read_text() == program
    assert "two_sum.tests.json" in out.stderr  # picked up beside the statement: said so
    assert "best of 3 sampled" in out.stderr
    out = invoke(*args, "--format", "nope", env=env, monkeypatch=monkeypatch)
    assert out.exit_code != 0 and "--format" in out.output
    out = invoke(*args, "-o", tmp_path, env=env, monkeypatch=monkeypatch)
    assert out.exit_code != 0 and "is a directory" in str(out.exception)


def test_solve_verbose_says_what_the_heads_are(tiny_model_dir, env, monkeypatch):
    args = [*SOLVE, "--model", tiny_model_dir, "--no-save", "--format", "rich"]
    out = invoke(*args, "--verbose", env=env, monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    assert "distinct" in out.stdout and "3 sampled" in out.stdout  # distinct vs sampled
    assert "untrained" in out.stdout and "V = R_max" in out.stdout  # verbose: what that means
    assert "low = red" not in out.stdout  # no colours here, so no colour legend
    lines = out.stdout.splitlines()
    assert [x for x in lines if "untrained heads:" in x] == [lines[1]]  # one line, second
    out = invoke(*args, env=env, monkeypatch=monkeypatch)
    assert "V = R_max" not in out.stdout  # the details only with --verbose


def documented_keys() -> dict[str, set[str]]:
    """The keys docs/json.md lists in its result, candidate and token tables."""
    doc = (ROOT / "docs" / "json.md").read_text()
    out: dict[str, set[str]] = {}
    for section in ("result", "candidate", "token"):
        block = doc.split(f"<!-- keys: {section} -->", 1)[1].split("<!-- end -->", 1)[0]
        out[section] = set(re.findall(r"^\| `([a-z_]+)`", block, flags=re.M))
    return out


def test_check_json_names_the_test_reward(tmp_path):
    prog = tmp_path / "p.py"
    prog.write_text("print(input())\n")
    tests = tmp_path / "t.json"
    tests.write_text(json.dumps({"inputs": ["1\n"], "outputs": ["1\n"]}))
    out = subprocess.run(
        [sys.executable, "-m", "bcoder", "check", prog, "--tests", tests, "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["test_reward"] == data["reward"] == 1.0 and data["schema_version"] == 1


# --- item 12 at the renderer: no colours, no colour legend, the program plainly ------------------


def test_without_colours_the_best_program_is_plain_and_no_legend():
    from bcoder.cli.render import render_result

    code = "def f(x):\n    return x + 1\n"
    toks = [TokenScore("def f(x):", 1, 0.1, 1, -0.1, 0.1, -0.1), TokenScore("\n", 2, 0, 1, 0, 0, 0)]
    result = SolveResult(
        problem={"id": "p"},
        settings={"model": "m", "n": 1},
        candidates=[Candidate(code=code, completion=code, tokens=toks, reward=0.1)],
    )
    console = Console(width=100, record=True, no_color=True, force_terminal=True)
    render_result(console, result, "reward", 5)
    text = console.export_text()
    assert "low = red" not in text and "↵" not in text
    assert "def f(x):\n    return x + 1\n" in text  # copyable: no border, no markers


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


def test_a_tests_file_beside_the_statement_is_announced():
    from bcoder.cli.solve import tests_note
    from bcoder.problems.load import load_problem

    note = tests_note(load_problem(EXAMPLES / "two_sum.txt"), None, run=True)
    assert "two_sum.tests.json" in note and "beside" in note
    assert tests_note(load_problem(EXAMPLES / "two_sum.txt"), None, run=False) is None  # no-tests
    given = EXAMPLES / "two_sum.tests.json"
    assert tests_note(load_problem(EXAMPLES / "two_sum.txt", given), given, run=True) is None


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


def test_eval_report_names_a_run_directory_verbatim(tmp_path, capsys, monkeypatch):
    from bcoder.cli.eval import _show

    monkeypatch.setenv("COLUMNS", "400")  # the line whole
    report = json.loads((ROOT / "results" / "runs" / "eval-init" / "report.json").read_text())
    run_dir = tmp_path / "[bold]run"
    _show(report, run_dir, as_json=False)
    assert f"report: {run_dir / 'report.md'}" in capsys.readouterr().out


def test_a_run_with_generated_tests_says_so_and_shows_each_candidates_share():
    """A problem without tests: the output says the model wrote the tests and what ranked, and
    the table shows how many of them each candidate passes; without any, it says why."""
    from rich.console import Console

    from bcoder.cli.render import render_result, summary_line
    from bcoder.core.types import Candidate, GeneratedTests, SolveResult, TestOutcome

    ok, bad = TestOutcome("pass"), TestOutcome("fail")
    cands = [
        Candidate("def f(x):\n    return x\n", "", generated=[ok, ok, bad], count=3),
        Candidate("def f(x):\n    return 0\n", "", generated=[bad, bad, ok]),
    ]
    tests = GeneratedTests(["assert f(1) == 1", "assert f(2) == 2", "assert f(0) == 1"], 4, 9, 12.5)
    result = SolveResult(problem={"id": "p"}, settings={"ranker": "codet-logprob", "n": 4},
                         candidates=cands, generated=tests)  # fmt: skip
    console = Console(record=True, width=120)
    render_result(console, result)
    out = " ".join(console.export_text().split())  # (a long line wraps)
    assert "the model wrote 3 (from 4 samples, 12.5s)" in out
    assert "ranked by dual agreement on generated tests (CodeT), then mean log-prob" in out
    assert "written tests" in out and "2/3" in out and "1/3" in out
    assert summary_line(result) == (  # stderr, when stdout carries the program
        "best of 4 sampled (2 distinct), ranked by codet-logprob on 3 tests the model wrote "
        "(the best passes 2): R~ 0.000"
    )
    result.generated = GeneratedTests(samples=4, note="the model wrote no test of f that parses")
    for c in cands:
        c.generated = []
    console = Console(record=True, width=120)
    render_result(console, result)
    out = " ".join(console.export_text().split())
    assert "no tests of the model's own ran (the model wrote no test of f that parses)" in out
    assert "ranked by mean log-prob alone" in out and "written tests" not in out
    assert "codet-logprob (mean log-prob alone: no generated test ran)" in summary_line(result)
    result.problem = {"id": "p", "example_tests": {"asserts": ["assert f(1) == 1"]}}
    console = Console(record=True, width=120)  # examples that did not run (--no-tests): not
    render_result(console, result)  # said to have ordered anything
    assert "own tests" not in " ".join(console.export_text().split())
    cands[0].passed_examples, cands[1].passed_examples = True, False
    console = Console(record=True, width=120)  # written beside the problem's own, when asked:
    render_result(console, result)  # those came first, and the output says so
    out = " ".join(console.export_text().split())
    assert "ranked by the problem's own tests, then mean log-prob" in out and "alone" not in out
    result.generated, (cands[0].generated, cands[1].generated) = tests, ([ok, ok, bad], [bad] * 3)
    console = Console(record=True, width=120)
    render_result(console, result)
    out = " ".join(console.export_text().split())
    assert "beside the problem's own tests: the model wrote 3 (from 4 samples, 12.5s)" in out
    assert "then dual agreement on generated tests (CodeT), then mean log-prob" in out
