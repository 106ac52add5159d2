"""Problem loaders: real data (tests/fixtures/data), synthetic fixtures, examples, bad input."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem
from bcoder.core.spec import TestSpec as Spec
from bcoder.problems.formats import parse_stdio_examples
from bcoder.problems.load import LoadStats, load_problem, load_problems, resolve_dataset

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# file -> (problems, Counter of TestSpec kinds; None = no tests)
REAL_FILES = {
    "mbpp/mbpp.jsonl": (974, {"assert": 974}),
    "apps/train_150.jsonl": (150, {"stdio": 138, "call": 12}),
    "apps/train_5_coderl.jsonl": (5, {"stdio": 3, "call": 2}),
    "apps/test_10.jsonl": (10, {"stdio": 10}),
    "apps/test_100_example_tests.jsonl": (100, {"stdio": 98, None: 2}),
}


def _roundtrip(spec: Spec) -> None:
    assert Spec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.kind in ("stdio", "call", "assert")
    assert len(spec) > 0


@pytest.mark.parametrize("rel", sorted(REAL_FILES))
def test_every_real_file_loads(fixture_data: Path, rel: str):
    count, kinds = REAL_FILES[rel]
    stats = LoadStats()
    problems = list(load_problems(fixture_data / rel, stats=stats))
    assert len(problems) == count == stats.loaded and stats.skipped == 0
    assert Counter(p.tests.kind if p.tests else None for p in problems) == kinds
    assert len({p.id for p in problems}) == count
    for p in problems:
        assert p.text.strip()
        for spec in (p.tests, p.example_tests):
            if spec is not None:
                _roundtrip(spec)
        if p.tests is not None and p.tests.kind == "call":
            assert p.entry_point == p.tests.fn_name and p.starter_code.strip()


def test_mbpp_fields_and_splits(fixture_data: Path):
    problems = list(load_problems(fixture_data / "mbpp/mbpp.jsonl"))
    assert Counter(p.split for p in problems) == {
        "prompt": 10,
        "test": 500,
        "validation": 90,
        "train": 374,
    }
    p = {q.id: q for q in problems}["mbpp/11"]
    assert p.split == "test" and p.source == "mbpp" and p.entry_point == "remove_Occ"
    assert p.tests.asserts[0] == 'assert remove_Occ("hello","l") == "heo"' and len(p.tests) == 3
    assert p.example_tests.asserts == p.tests.asserts[:1]
    assert "\r" not in p.solutions[0] and p.solutions[0].startswith("def remove_Occ(s,ch):")
    assert all(
        p.split == "test" for p in load_problems(fixture_data / "mbpp/mbpp.jsonl", split="test")
    )
    setup = [q for q in problems if q.tests.setup]
    assert setup and all(q.example_tests.setup == q.tests.setup for q in setup)


def test_several_splits_at_once(fixture_data: Path):
    """MBPP train + validation (the default checkpoint's data): task ids 511-974, file order."""
    path = fixture_data / "mbpp/mbpp.jsonl"
    both = [p.metadata["dataset_id"] for p in load_problems(path, split="train+validation")]
    assert both == list(range(511, 975))
    as_list = load_problems(path, split=["validation", "val", "train"])  # aliases, any order
    assert [p.metadata["dataset_id"] for p in as_list] == both
    with pytest.raises(BcoderError, match="unknown split 'tran'"):
        load_problems(path, split="train+tran")


def test_apps_fields(fixture_data: Path):
    everything = list(load_problems(fixture_data / "apps"))  # the folder: its four files in turn
    by_id = {p.id: p for p in everything}
    # train_5_coderl repeats two train_150 problems (apps/train/1 and apps/train/2404).
    assert len(everything) == 265 and len(by_id) == 263
    call = by_id["apps/train/2404"]
    assert call.entry_point == "findKthPositive" and call.tests.inputs[0] == [[2, 3, 4, 7, 11], 5]
    assert call.starter_code.startswith("class Solution:") and call.example_tests is None
    stdio = by_id["apps/train/0"]
    assert stdio.difficulty == "interview" and stdio.split == "train" and len(stdio.solutions) > 0
    assert stdio.metadata["url"].startswith("https://codeforces.com/")
    assert stdio.example_tests is not None and stdio.metadata["example_tests_from"] == "question"
    hidden = by_id["apps/test/1079"]
    assert hidden.solutions == [] and len(hidden.tests) > len(hidden.example_tests or ())
    examples_only = by_id["apps/test/15"]
    assert examples_only.metadata["tests_are_examples_only"]
    assert examples_only.tests == examples_only.example_tests and len(examples_only.tests) == 4
    # No tests at all gives None, never a spec that any program passes vacuously.
    assert by_id["apps/test/2638"].tests is None


def test_the_json_form_kept_with_a_run_round_trips(fixture_data: Path):
    everything = list(load_problems(fixture_data / "apps/train_150.jsonl"))
    everything += list(load_problems(fixture_data / "mbpp/mbpp.jsonl", split="prompt"))
    for problem in everything:
        d = json.loads(json.dumps(problem.to_dict()))
        assert "solutions" not in d  # a run keeps the problem, never its answers
        back = Problem.from_dict(d)
        for name in ("id", "source", "text", "starter_code", "entry_point", "difficulty"):
            assert getattr(back, name) == getattr(problem, name)
        assert back.tests == problem.tests and back.example_tests == problem.example_tests


def test_question_examples_match_the_datasets_example_tests(fixture_data: Path):
    """The statement parser reproduces all 98 example-test sets of test_100 (whitespace aside)."""
    norm = lambda xs: [" ".join(x.split()) for x in xs]  # noqa: E731
    checked = 0
    for line in (fixture_data / "apps/test_100_example_tests.jsonl").open():
        row = json.loads(line)
        io = json.loads(row["input_output"])
        parsed = parse_stdio_examples(row["question"])
        if not io["inputs"]:
            assert parsed is None
            continue
        assert parsed is not None, row["problem_id"]
        assert norm(parsed.inputs) == norm(io["inputs"]) and norm(parsed.outputs) == norm(
            io["outputs"]
        )
        checked += 1
    assert checked == 98


def test_filters_and_refs(fixture_data: Path):
    apps = fixture_data / "apps/train_150.jsonl"
    got = list(load_problems(apps, ids=[0, "apps/train/2401"]))
    assert [p.id for p in got] == ["apps/train/0", "apps/train/2401"]
    assert list(load_problems(apps, split="test")) == []
    assert load_problem(f"{apps}:2401").entry_point == "wordPattern"
    assert load_problem(f"{apps}:apps/train/2401").id == "apps/train/2401"
    with pytest.raises(BcoderError, match="no problem with id '999999'"):
        load_problem(f"{apps}:999999")
    with pytest.raises(BcoderError, match="name one as"):
        load_problem(apps)
    with pytest.raises(BcoderError, match="unknown split"):
        load_problems(apps, split="nope")


def test_dataset_names(fixture_data: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BCODER_DATA", str(tmp_path))
    (tmp_path / "mbpp").mkdir()
    lines = (fixture_data / "mbpp/mbpp.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "mbpp/mbpp.jsonl").write_text("".join(lines[10:13]))  # task ids 11-13
    assert resolve_dataset("mbpp") == tmp_path / "mbpp/mbpp.jsonl"
    assert [p.id for p in load_problems("mbpp")] == ["mbpp/11", "mbpp/12", "mbpp/13"]
    assert load_problem("mbpp:12").id == "mbpp/12"
    # A folder, and a path relative to $BCODER_DATA.
    monkeypatch.setenv("BCODER_DATA", str(fixture_data))
    assert resolve_dataset("apps") == fixture_data / "apps"
    assert resolve_dataset("apps/test_10") == fixture_data / "apps/test_10.jsonl"
    with pytest.raises(BcoderError, match="BCODER_DATA"):
        resolve_dataset("no-such-dataset")
    # A path is a file that does not exist, not an unknown dataset.
    with pytest.raises(BcoderError, match=r"^path/that/does/not/exist\.jsonl: no such file \(nor"):
        resolve_dataset("path/that/does/not/exist.jsonl")
    gone = tmp_path / "gone.jsonl"
    with pytest.raises(BcoderError, match=f"^{re.escape(str(gone))}: no such file$"):
        load_problems(gone)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_a_one_line_error(tmp_path: Path):
    statement = tmp_path / "problem.txt"
    statement.write_text("Print 1.\n")
    statement.chmod(0)
    with pytest.raises(BcoderError, match=r"problem\.txt: permission denied"):
        load_problem(statement)


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _apps_row(pid: int, **over) -> dict:
    row = {
        "problem_id": pid,
        "question": "Print 1.",
        "solutions": json.dumps(["print(1)\n"]),
        "input_output": json.dumps({"inputs": ["\n"], "outputs": ["1\n"]}),
        "difficulty": "introductory",
        "starter_code": "",
    }
    return {**row, **over}


def test_malformed_rows_name_file_line_and_field(tmp_path: Path):
    bad = _write_jsonl(
        tmp_path / "train_bad.jsonl",
        [
            _apps_row(1),
            _apps_row(2, input_output='{"inputs": ["1"'),
            "{not json",
            _apps_row(4, input_output=json.dumps({"inputs": ["a", "b"], "outputs": ["c"]})),
            _apps_row(5, solutions=json.dumps([1, 2])),
            {k: v for k, v in _apps_row(6).items() if k != "question"},
            _apps_row(7),
        ],
    )
    it = load_problems(bad)
    assert next(it).id == "apps/train/1"  # streaming: the good row comes before the error
    with pytest.raises(
        BcoderError, match=r"train_bad\.jsonl:2: field 'input_output': not valid JSON"
    ):
        next(it)
    stats = LoadStats()
    got = list(load_problems(bad, skip_bad=True, stats=stats))
    assert [p.id for p in got] == ["apps/train/1", "apps/train/7"]
    assert stats.loaded == 2 and stats.skipped == 5
    assert [e.split(": ", 1)[0].rsplit(":", 1)[1] for e in stats.errors] == [
        "2",
        "3",
        "4",
        "5",
        "6",
    ]
    assert "2 inputs but 1 outputs" in stats.errors[2] and "field 'input_output'" in stats.errors[2]
    assert "field 'solutions'" in stats.errors[3] and "field 'question': missing" in stats.errors[4]


def test_a_malformed_row_is_not_filtered_out_unseen(tmp_path: Path, fixture_data: Path):
    """A row whose id or split field is malformed cannot be placed in a split: it used to be
    dropped by the split filter without a word (eval and collect load with a split). It is
    reported like every malformed row: an error naming file, line and field, or with
    ``skip_bad`` counted with its line."""
    real = [json.loads(line) for line in (fixture_data / "mbpp/mbpp.jsonl").open()][10:13]
    rows = [real[0], {**real[1], "task_id": str(real[1]["task_id"])}, {"text": "x"}, real[2]]
    bad = _write_jsonl(tmp_path / "mine.jsonl", rows)
    with pytest.raises(BcoderError, match=r"mine\.jsonl:2: field 'task_id': missing or not an"):
        list(load_problems(bad, split="test"))
    stats = LoadStats()
    got = list(load_problems(bad, split="test", skip_bad=True, stats=stats))
    assert [p.id for p in got] == [f"mbpp/{real[0]['task_id']}", f"mbpp/{real[2]['task_id']}"]
    assert stats.skipped == 2 and [e.split(": ")[0] for e in stats.errors] == [
        f"{bad}:2",
        f"{bad}:3",
    ]
    apps = _write_jsonl(tmp_path / "train_a.jsonl", [_apps_row(1), _apps_row(2, split=["test"])])
    with pytest.raises(BcoderError, match=r"train_a\.jsonl:2: field 'split': expected a string"):
        list(load_problems(apps, split="train"))
    assert next(iter(load_problems(apps, ids=["1"]))).id == "apps/train/1"  # before the bad row


def test_unknown_formats(tmp_path: Path):
    weird = _write_jsonl(tmp_path / "weird.jsonl", [{"a": 1}])
    with pytest.raises(BcoderError, match=r"weird\.jsonl:1: unknown dataset format"):
        list(load_problems(weird))
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(BcoderError, match="unknown problem format"):
        list(load_problems(tmp_path / "x.csv"))
    with pytest.raises(BcoderError, match="no such file"):
        load_problem(tmp_path / "missing.txt")


def test_apps_folders():
    problems = list(load_problems(FIXTURES / "apps_folders"))
    by_id = {p.id: p for p in problems}
    assert sorted(by_id) == ["apps/test/2", "apps/train/0", "apps/train/1"]
    stdio = by_id["apps/train/0"]
    assert (
        stdio.difficulty == "introductory" and stdio.tests.kind == "stdio" and len(stdio.tests) == 3
    )
    assert stdio.example_tests.inputs == ("1 2\n", "-5 5\n")
    call = by_id["apps/train/1"]
    assert call.tests.fn_name == "countEven" and call.starter_code.startswith("class Solution:")
    atcoder = by_id["apps/test/2"]
    assert atcoder.solutions == [] and atcoder.example_tests == Spec(
        inputs=("3\n",), outputs=("6\n",)
    )
    assert [p.id for p in load_problems(FIXTURES / "apps_folders", split="train")] == [
        "apps/train/0",
        "apps/train/1",
    ]
    assert load_problem(FIXTURES / "apps_folders/train/0001").entry_point == "countEven"
    assert load_problem(f"{FIXTURES / 'apps_folders'}:1").id == "apps/train/1"


def test_bad_apps_folder_names_the_file(tmp_path: Path):
    folder = tmp_path / "0042"
    folder.mkdir()
    (folder / "question.txt").write_text("Print 42.")
    (folder / "input_output.json").write_text('{"inputs": ["\\n"],\n "outputs": ')
    with pytest.raises(
        BcoderError, match=r"0042: field 'input_output.json': not valid JSON \(line 2"
    ):
        load_problem(folder)


def test_humaneval_jsonl_and_gz():
    plain = list(load_problems(FIXTURES / "humaneval.jsonl"))
    assert list(load_problems(FIXTURES / "humaneval.jsonl.gz")) == plain
    p = plain[0]
    assert (p.id, p.source, p.split, p.entry_point) == (
        "Fixture/0",
        "humaneval",
        "test",
        "running_max",
    )
    assert p.starter_code == (
        "from typing import List\n\n\ndef running_max(numbers: List[int]) -> List[int]:\n"
    )
    assert p.text.startswith("Return the running maximum") and ">>>" in p.text
    assert (
        p.tests.asserts[0].endswith("\n\ncheck(running_max)\n")
        and "def check(candidate)" in p.tests.asserts[0]
    )
    assert p.example_tests.asserts == (
        "assert running_max([1, 3, 2, 5]) == [1, 3, 3, 5]",
        "assert running_max([]) == []",
    )
    row = json.loads((FIXTURES / "humaneval.jsonl").read_text().splitlines()[0])
    assert (
        p.solutions == [row["prompt"] + row["canonical_solution"]]
        and p.metadata["prompt"] == row["prompt"]
    )
    helper = plain[1]
    assert helper.starter_code.startswith("def is_vowel") and helper.example_tests is None


def _run(program: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Our own trusted fixture programs, run in a separate interpreter."""
    return subprocess.run(
        [sys.executable, "-I", "-c", program],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _check_solution(problem: Problem, program: str) -> None:
    spec = problem.tests
    if spec.kind == "assert":
        out = _run(spec.setup + "\n" + program + "\n" + "\n".join(spec.asserts or ()))
        assert out.returncode == 0, out.stderr
    elif spec.kind == "stdio":
        for inp, want in zip(spec.inputs, spec.outputs, strict=True):
            assert _run(program, inp).stdout.split() == want.split()
    else:
        call = f"Solution().{spec.fn_name}" if "class Solution" in program else spec.fn_name
        checks = "\n".join(
            f"assert {call}(*{inp!r}) == {out!r}"
            for inp, out in zip(spec.inputs, spec.outputs, strict=True)
        )
        out = _run("from typing import List\n" + program + "\n" + checks)
        assert out.returncode == 0, out.stderr


def test_fixture_solutions_pass_their_tests():
    for problem in [
        *load_problems(FIXTURES / "humaneval.jsonl"),
        *load_problems(FIXTURES / "apps_folders"),
    ]:
        for solution in problem.solutions:
            _check_solution(problem, solution)


REFERENCE = {
    "max_of_list": "def max_of_list(numbers):\n    return max(numbers)\n",
    "two_sum": (
        "def two_sum(nums, target):\n    seen = {}\n    for j, x in enumerate(nums):\n"
        "        if target - x in seen:\n            return [seen[target - x], j]\n        seen[x] = j\n"
    ),
    "digit_sum": "print(sum(int(c) for c in input().strip()))\n",
}


def test_examples_load_and_are_solvable():
    problems = {p.id: p for p in load_problems(EXAMPLES)}
    untested = problems.pop("run_length")  # the stub without examples: solve writes its tests
    assert (untested.source, untested.entry_point) == ("python", "run_length_encode")
    assert untested.tests is None and untested.example_tests is None
    assert sorted(problems) == sorted(REFERENCE)
    stub = problems["max_of_list"]
    assert (stub.source, stub.entry_point, stub.tests.kind) == ("python", "max_of_list", "assert")
    assert stub.starter_code == "def max_of_list(numbers: list[int]) -> int:\n"
    assert stub.text.startswith("Return the largest number")
    assert problems["two_sum"].tests.kind == "call" and problems["two_sum"].entry_point == "two_sum"
    assert problems["digit_sum"].tests.kind == "stdio"
    for pid, program in REFERENCE.items():
        _check_solution(problems[pid], program)
    assert load_problem(EXAMPLES / "two_sum.txt") == problems["two_sum"]


def test_text_and_stub_files(tmp_path: Path):
    txt = tmp_path / "p.txt"
    txt.write_text("Print hello.\r\n")
    p = load_problem(txt)
    assert (p.id, p.source, p.text, p.tests) == ("p", "text", "Print hello.\n", None)
    tests = tmp_path / "t.json"
    tests.write_text(json.dumps({"asserts": ["assert f(1) == 2"]}))
    p = load_problem(txt, tests=tests)
    assert p.tests.asserts == ("assert f(1) == 2",) and p.entry_point == "f"
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(BcoderError, match="empty"):
        load_problem(tmp_path / "empty.txt")

    two = tmp_path / "two.py"
    two.write_text(
        "import math\n\n\ndef a(x):\n    '''Double x.'''\n\n\nclass K:\n"
        "    def b(self, y):\n        '''Halve y.'''\n        ...\n\n\ndef done():\n    return 1\n"
    )
    with pytest.raises(BcoderError, match=r"several function stubs \(a, b\)"):
        load_problem(two)
    b = load_problem(f"{two}:b")
    assert b.entry_point == "b" and b.text == "Halve y." and b.id == "two:b"
    assert b.starter_code.endswith("class K:\n    def b(self, y):\n") and b.tests is None
    assert b.metadata["prompt"].endswith("'''Halve y.'''\n")
    (tmp_path / "none.py").write_text("def f():\n    return 1\n")
    with pytest.raises(BcoderError, match="no function with a docstring"):
        load_problem(tmp_path / "none.py")
    (tmp_path / "broken.py").write_text("def f(:\n")
    with pytest.raises(BcoderError, match=r"broken\.py: not valid Python \(line 1"):
        load_problem(tmp_path / "broken.py")


def test_gz_of_mbpp_rows_and_json_array(fixture_data: Path, tmp_path: Path):
    rows = (fixture_data / "mbpp/mbpp.jsonl").read_text().splitlines()[:20]
    with gzip.open(tmp_path / "m.jsonl.gz", "wt") as f:
        f.write("\n".join(rows) + "\n")
    assert len(list(load_problems(tmp_path / "m.jsonl.gz", split="test"))) == 10
    sanitized = [
        {
            "task_id": 2,
            "prompt": "Write f.",
            "code": "def f():\n    return 1",
            "test_imports": ["import math"],
            "test_list": ["assert f() == 1"],
        }
    ]
    (tmp_path / "sanitized-mbpp.json").write_text(json.dumps(sanitized))
    (p,) = load_problems(tmp_path / "sanitized-mbpp.json")
    assert (p.id, p.text, p.tests.setup, p.split) == ("mbpp/2", "Write f.", "import math", "prompt")
