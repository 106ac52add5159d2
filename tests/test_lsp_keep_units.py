"""The pure parts of keeping the model's tests: which tests, their doctest and pytest forms, where
they go in a docstring and a test file. No server; the doctests and pytest files built here run in
a subprocess, as in the end-to-end test (tests/test_lsp_keep.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bcoder.core.types import Candidate, GeneratedTests, SolveResult
from bcoder.core.types import TestOutcome as Outcome
from bcoder.lsp.doctests import docstring_edit, example_lines, missing, present_calls
from bcoder.lsp.generated import parse_test, passed_by, passing, written_line
from bcoder.lsp.pytests import additions, assert_line, file_for_tests, module_name, new_tests
from bcoder.lsp.stubs import Buffer


def test_parse_test_keeps_calls_of_the_function_against_literals():
    t = parse_test('assert f(1, "x") == [1, "x"]', "f")
    assert (t.call, t.expected, t.value) == ("f(1, 'x')", "[1, 'x']", [1, "x"])
    for bad in ("assert g(1) == 2", "assert f(1) != 2", "assert f(x) == y", "x = 1", "assert f(("):
        assert parse_test(bad, "f") is None, bad


def test_only_the_tests_the_candidate_passes():
    gen = GeneratedTests(asserts=["assert f(1) == 1", "assert f(2) == 3", "assert f(3) == 3"])
    good = Candidate("", "", count=2, generated=[Outcome("pass"), Outcome("fail"), Outcome("pass")])
    short = Candidate("", "", generated=[Outcome("pass")])  # stopped after one test
    result = SolveResult({}, {}, [good, short], generated=gen)
    assert [t.source for t in passing(result, good, "f")] == [gen.asserts[0], gen.asserts[2]]
    assert passed_by(result) == [3, 0, 2]
    assert passing(SolveResult({}, {}, [good]), good, "f") == []  # no generated tests
    gen.samples, gen.seconds = 2, 3.25
    assert written_line(gen) == (
        "the model wrote 3 tests for it (2 samples, 3.2 s), and the candidates ran on them"
    )
    assert written_line(GeneratedTests(note="no entry point")) == (
        "the model wrote no tests: no entry point"
    )


def test_examples_already_in_the_docstring_are_not_added_again():
    doc = "Doc.\n\n>>> f(1)\n1\n>>> f( 2 ) == 2\nTrue\n>>> print(f(3))\n3\n"
    assert present_calls(doc) == {"f(1)", "f(2)", "f(3)"}
    tests = [parse_test(f"assert f({i}) == {i}", "f") for i in range(1, 5)]
    assert [t.call for t in missing(tests, doc)] == ["f(4)"]
    assert present_calls("  >>> f(1)\n 1\n") == set()  # inconsistent indentation: no raise


def test_example_forms():
    t = parse_test("assert f(2) == 2", "f")
    assert example_lines(t, "2.0") == [">>> f(2)", "2.0"]  # what the body prints
    assert example_lines(t, "None") == [">>> print(f(2))", "None"]
    assert example_lines(t, None) == [">>> f(2) == 2", "True"]


def edited(text: str, name: str, examples: list[list[str]]) -> str:
    buf = Buffer(text)
    fn = buf.find(name)
    edit = docstring_edit(buf, fn, examples)
    assert not isinstance(edit, str), edit
    (l0, c0), (l1, c1), new = edit
    lines = text.split("\n")
    start = sum(len(x) + 1 for x in lines[:l0]) + c0
    end = sum(len(x) + 1 for x in lines[:l1]) + c1
    return text[:start] + new + text[end:]


def doctest_passes(tmp_path, text: str) -> str:
    (tmp_path / "m.py").write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "doctest", "-v", "m.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "source",
    [
        'def f(s):\n    """Join lines."""\n    return s + "\\n"\n',  # one line: opened up
        'def f(s):\n    """Join\n    lines.\n    """\n    return s + "\\n"\n',  # quotes alone
        "def f(s):\n    '''Join\n    lines.'''\n    return s + '\\n'\n",  # after text
        'def f(s):\n    r"""Join lines."""\n    return s + "\\n"\n',  # raw: no doubling
        "def f(s):\n    return s + '\\n'\n",  # no docstring: one is made
    ],
)
def test_doctests_go_into_any_triple_quoted_docstring_and_pass(tmp_path, source):
    """A repr with a backslash (``'a\\\\n'``) stays one in a docstring that is not raw."""
    text = edited(source, "f", [[">>> f('a')", "'a\\n'"], [">>> f('')", "'\\n'"]])
    assert "2 passed and 0 failed" in doctest_passes(tmp_path, text)
    assert text.count(">>> f(") == 2 and text.splitlines()[-1].startswith("    return s +")


def test_docstrings_that_cannot_take_examples():
    buf = Buffer('def f():\n    "Doc."\n    return 1\n')
    assert "not triple-quoted" in docstring_edit(buf, buf.find("f"), [[">>> f()", "1"]])
    buf = Buffer('def f():\n    """Doc."""\n    return 1\n')
    assert '"""' in docstring_edit(buf, buf.find("f"), [[">>> f()", '\'"""\'']])


def test_test_file_and_module_names(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
    assert module_name(tmp_path / "pkg" / "sub" / "calc.py") == "pkg.sub.calc"
    assert module_name(tmp_path / "calc.py") == "calc"
    assert file_for_tests(tmp_path / "calc.py") == tmp_path / "test_calc.py"


def test_assert_forms_for_pytest():
    t = parse_test("assert f(1) == 0.3", "f")
    assert assert_line(t, "0.3") == "assert f(1) == 0.3"  # exactly equal: plain
    assert "pytest.approx(0.3, rel=" in assert_line(t, "0.30000000000000004")
    assert "pytest.approx(0.3, rel=" in assert_line(t, None)  # a float, answer unknown
    assert assert_line(parse_test("assert f(1) == 2", "f"), "2.0") == "assert f(1) == 2"
    assert assert_line(parse_test("assert f(1) == 2", "f"), None) == "assert f(1) == 2"
    nested = parse_test("assert f(1) == [[0.3]]", "f")
    assert assert_line(nested, "[[0.30000000000000004]]") is None  # approx cannot nest


def apply(text: str, adds: list[tuple[int, str]]) -> str:
    lines = text.split("\n")
    for line, added in sorted(adds, key=lambda a: a[0] if a[0] >= 0 else 10**9, reverse=True):
        if line < 0:
            lines[-1] += added
            lines = "\n".join(lines).split("\n")
        else:
            lines.insert(line, added.rstrip("\n"))
    return "\n".join(lines)


def test_additions_to_a_new_and_an_existing_test_file(tmp_path):
    (tmp_path / "calc.py").write_text("def f(x):\n    return x / 2\n")
    new = additions("", "calc", "f", ["assert f(2) == 1"], "f: from the model")
    assert new == [
        (
            0,
            "from calc import f\n\n\n# f: from the model\ndef test_f_generated_1():\n"
            "    assert f(2) == 1\n",
        )
    ]
    existing = '"""Tests."""\n\n\ndef test_f_generated_1():\n    assert f(2) == 1\n'
    tests = [parse_test("assert f(2) == 1", "f"), parse_test("assert f(3) == 1.5", "f")]
    assert [t.call for t in new_tests(tests, existing, "f")] == ["f(3)"]
    approx = f"assert f(1) == {'pytest.approx(0.5, rel=1e-06, abs=1e-06)'}"
    adds = additions(existing, "calc", "f", ["assert f(3) == 1.5", approx], "f: more")
    assert adds[0] == (1, "import pytest\nfrom calc import f\n")  # after the docstring
    text = apply(existing, adds)
    assert "def test_f_generated_2():\n    assert f(3) == 1.5" in text
    assert "def test_f_generated_3():" in text
    (tmp_path / "test_calc.py").write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_calc.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout + done.stderr
