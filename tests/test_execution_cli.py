"""``bcoder check`` and ``bcoder doctor``, run as real subprocesses."""

from __future__ import annotations

import json

import pytest
from support.cli import bcoder

from bcoder.execution import isolation_level


@pytest.fixture
def files(tmp_path):
    prog = tmp_path / "add.py"
    prog.write_text("a, b = map(int, input().split())\nprint(a + b)\n")
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps({"inputs": ["1 2\n", "2 2\n"], "outputs": ["3\n", "4\n"]}))
    return tmp_path, prog, tests


def test_check_json_pass_and_fail(files):
    tmp, prog, tests = files
    r = bcoder("check", str(prog), "--tests", str(tests), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["outcome"] == "pass" and out["reward"] == 1.0 and len(out["tests"]) == 2
    assert out["isolation"] == isolation_level()
    wrong = tmp / "wrong.py"
    wrong.write_text("print(5)\n")
    r = bcoder("check", str(wrong), "--tests", str(tests), "--json", "--timeout", "2")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["outcome"] == "fail" and out["reward"] == -0.3
    assert out["tests"][0]["detail"] == "line 1: expected '3', got '5'"


def test_check_compile_error_and_rich_output(files):
    tmp, _, tests = files
    bad = tmp / "bad.py"
    bad.write_text("def broken(:\n")
    r = bcoder("check", str(bad), "--tests", str(tests))
    assert r.returncode == 0, r.stderr
    assert "compile_error" in r.stdout and "reward -1.0" in r.stdout and "SyntaxError" in r.stdout


def test_check_a_dataset_problem(tmp_path, fixture_data):
    row = json.loads((fixture_data / "mbpp" / "mbpp.jsonl").read_text().splitlines()[10])
    prog = tmp_path / "gt.py"
    prog.write_text(row["code"])
    ref = f"{fixture_data / 'mbpp' / 'mbpp.jsonl'}:{row['task_id']}"
    out = json.loads(bcoder("check", str(prog), "--problem", ref, "--json").stdout)
    assert out["outcome"] == "pass" and out["total"] == len(row["test_list"])
    apps = fixture_data / "apps" / "train_5_coderl.jsonl"
    app_row = next(
        json.loads(x)
        for x in apps.read_text().splitlines()
        if "fn_name" in x and "class Solution" in json.loads(x)["starter_code"]
    )
    prog.write_text(json.loads(app_row["solutions"])[0])
    out = json.loads(
        bcoder("check", str(prog), "--problem", f"{apps}:{app_row['problem_id']}", "--json").stdout
    )
    assert out["outcome"] == "pass", out


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.py", "--tests", "TESTS"], "missing.py: no such file"),
        (["PROG", "--tests", "BADJSON"], "not valid JSON"),
        (["PROG", "--tests", "NOLISTS"], "need lists 'inputs' and 'outputs'"),
        (["PROG"], "give the tests"),
        (["PROG", "--problem", "nowhere.jsonl:3"], "nowhere.jsonl"),
        (["PROG", "--tests", "DIR"], "DIR: is a directory"),
        (["DIR", "--tests", "TESTS"], "DIR: is a directory"),
        (["PROG", "--tests", "missing.json"], "missing.json: no such file"),
        (["PROG", "--tests", "LATIN1"], "latin1.txt: not UTF-8 text"),
        (["LATIN1", "--tests", "TESTS"], "latin1.txt: not UTF-8 text"),
        (["PROG", "--tests", "UNDERFILE"], "Not a directory"),
        (["PROG", "--problem", "STATEMENT", "--tests", "DIR"], "DIR: is a directory"),
    ],
)
def test_check_bad_input_is_one_line_and_nonzero(files, args, message):
    tmp, prog, tests = files
    (tmp / "bad.json").write_text("{not json")
    (tmp / "nolists.json").write_text('{"inputs": 3}')
    (tmp / "DIR").mkdir()
    (tmp / "latin1.txt").write_bytes("café = 1\n".encode("latin-1"))
    (tmp / "statement.txt").write_text("Add two numbers.\n")
    subst = {
        "PROG": str(prog),
        "TESTS": str(tests),
        "BADJSON": str(tmp / "bad.json"),
        "NOLISTS": str(tmp / "nolists.json"),
        "DIR": str(tmp / "DIR"),
        "LATIN1": str(tmp / "latin1.txt"),
        "UNDERFILE": str(prog / "tests.json"),  # a path through a file
        "STATEMENT": str(tmp / "statement.txt"),
    }
    r = bcoder("check", *[subst.get(a, a) for a in args])
    assert r.returncode != 0
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


def test_doctor_reports_the_isolation_level():
    r = bcoder("doctor", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["level"] == isolation_level()
    assert report["smoke_test"]["ran"] and report["smoke_test"]["unprivileged"]
    text = bcoder("doctor", "--no-smoke").stdout
    assert f"isolation level: {isolation_level()}" in text
