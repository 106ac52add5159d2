"""The language server's pure parts: stubs found with tree-sitter, bodies cut from candidates,
token spans, settings. No server, no model."""

from __future__ import annotations

import ast

import pytest

from bcoder.core.types import Candidate, TokenScore
from bcoder.lsp.edits import extract_body, place
from bcoder.lsp.settings import ServerSettings
from bcoder.lsp.stubs import Buffer, build_problem, doctest_asserts, from_client, to_client

SOURCE = '''import math
from typing import List


class Stack:
    """A stack."""

    def push(self, x):
        """Push x."""

    @staticmethod
    def size() -> int:
        return 0


def biggest(xs: List[int]) -> int:
    """Return the largest element.

    >>> biggest([1, 3, 2])
    3
    >>> print(biggest([1]))
    1
    """
    pass


def outer(a):
    def inner(b):  # to do
        ...

    return inner


async def fetch(url): pass


def todo(x):
'''


def test_functions_qualnames_kinds_and_stubs():
    fns = {f.qualname: f for f in Buffer(SOURCE).functions()}
    assert list(fns) == [
        "Stack.push",
        "Stack.size",
        "biggest",
        "outer",
        "outer.inner",
        "fetch",
        "todo",
    ]
    kinds = {q: f.kind for q, f in fns.items()}
    assert kinds == {
        "Stack.push": "method",
        "Stack.size": "method",
        "biggest": "function",
        "outer": "function",
        "outer.inner": "nested",
        "fetch": "function",
        "todo": "function",
    }
    stubs = {q for q, f in fns.items() if f.is_stub}
    assert stubs == {"Stack.push", "biggest", "outer.inner", "fetch", "todo"}
    assert fns["Stack.push"].body_indent == " " * 8 and fns["outer.inner"].body_indent == " " * 8
    assert fns["todo"].body_indent == "    " and fns["fetch"].body_indent == "    "
    assert fns["Stack.size"].start[0] == fns["Stack.size"].def_line - 1  # its decorator
    assert fns["Stack.size"].signature == "@staticmethod\ndef size() -> int:"
    assert fns["Stack.push"].prompt == 'def push(self, x):\n    """Push x."""\n'
    assert fns["biggest"].docstring.startswith("Return the largest element.\n\n>>> biggest")


def test_replacement_ranges():
    buf = Buffer(SOURCE)
    lines = SOURCE.split("\n")
    f = buf.find("biggest")
    assert lines[f.replace_start[0]].strip() == '"""' and lines[f.replace_end[0]].strip() == "pass"
    inner = buf.find("outer.inner")  # the comment on the def line is kept
    assert inner.replace_start == (inner.def_line, len(lines[inner.def_line]))
    fetch = buf.find("fetch")  # one-liner: from the colon to the end of `pass`
    assert lines[fetch.def_line][fetch.replace_start[1] : fetch.replace_end[1]] == " pass"
    todo = buf.find("todo")  # an empty body at the end of the file
    assert todo.replace_start == todo.replace_end == (todo.def_line, len("def todo(x):"))


def test_function_at_is_innermost_and_line_based():
    buf = Buffer(SOURCE)
    lines = SOURCE.split("\n")
    at = lambda needle: buf.function_at((next(i for i, s in enumerate(lines) if needle in s), 0))  # noqa: E731
    assert at("def inner").qualname == "outer.inner"
    assert at("        ...").qualname == "outer.inner"
    assert at("return inner").qualname == "outer"
    assert at("@staticmethod").qualname == "Stack.size"
    assert at("class Stack") is None and at("import math") is None


def test_syntax_errors_elsewhere_do_not_hide_stubs():
    source = 'def broken(:\n    return (\n\n\ndef ok(x):\n    """Fine."""\n'
    fns = {f.qualname: f for f in Buffer(source).functions()}
    assert fns["ok"].is_stub


def test_crlf_tabs_and_unicode_columns():
    source = 'def f(x):\r\n\t"""Größe 😀."""\r\n\tpass\r\n'
    buf = Buffer(source)
    (f,) = buf.functions()
    assert f.is_stub and f.body_indent == "\t" and buf.eol == "\r\n"
    line = buf.lines[1]
    col = line.index(".")
    assert to_client(line, col, "utf-16") == col + 1  # the emoji is two UTF-16 units
    assert to_client(line, col, "utf-8") == len(line[:col].encode())
    assert to_client(line, col, "utf-32") == col
    for enc in ("utf-8", "utf-16", "utf-32"):
        assert from_client(line, to_client(line, col, enc), enc) == col


def test_doctest_asserts():
    doc = ">>> f(1)\n2\n>>> print(f(2))\n3\n>>> x = 5\n>>> f(1) + f(2)\n5\n>>> g(1)\n1\n>>> f(\n... 1)\n2\n"
    assert doctest_asserts(doc, "f") == ("assert f(1) == 2", "assert (f(1) + f(2)) == 5")


def test_problem_from_a_stub():
    buf = Buffer(SOURCE)
    p = build_problem(buf, buf.find("biggest"), "x.py:biggest", run_tests=True)
    assert p.entry_point == "biggest" and p.source == "python"
    assert p.tests.asserts == ("assert biggest([1, 3, 2]) == 3",)
    assert (
        p.starter_code
        == "import math\nfrom typing import List\n\ndef biggest(xs: List[int]) -> int:\n"
    )
    assert (
        p.metadata["prompt"].endswith('    """\n')
        and "from typing import List" in p.metadata["prompt"]
    )
    assert build_problem(buf, buf.find("biggest"), "x", run_tests=False).tests is None
    method = build_problem(buf, buf.find("Stack.push"), "x", run_tests=True)
    assert method.tests is None and method.text == "Push x."  # a method cannot be called by name


def test_extract_body_with_imports_and_helpers():
    code = (
        "import os\nimport math\nfrom typing import List\nfrom __future__ import annotations\n\n"
        "LIMIT = 10\n\n"
        "def _clip(v):\n    return min(v, LIMIT)\n\n"
        "def unused():\n    return os.getcwd()\n\n"
        "def biggest(xs: List[int]) -> int:\n"
        '    """The candidate\'s own docstring is dropped."""\n'
        "    best = -math.inf\n    for x in xs:\n        best = max(best, _clip(x))\n"
        "    return best\n\n"
        "print(biggest([1, 2]))\n"
    )
    body = extract_body(code, "biggest", ["import math", "from typing import List"])
    assert body.lines == [
        "LIMIT = 10",
        "def _clip(v):",
        "    return min(v, LIMIT)",
        "best = -math.inf",
        "for x in xs:",
        "    best = max(best, _clip(x))",
        "return best",
    ]
    # imports the file lacks come into the body; those it has do not
    body = extract_body("import math\n\ndef f(x):\n    return math.sqrt(x)\n", "f", [])
    assert body.lines == ["import math", "return math.sqrt(x)"]
    ins = place(body, "        ", Candidate(code="", completion=""))
    ast.parse("class A:\n    def f(self, x):\n" + ins.text())


def test_extract_body_other_shapes():
    assert extract_body(
        "class Stack:\n    def push(self, x):\n        self.items.append(x)\n", "push"
    ).lines == ["self.items.append(x)"]
    assert extract_body("def f(x): return x + 1\n", "f").lines == ["return x + 1"]
    assert extract_body("    y = x * 2\n    return y\n", "f").lines == [
        "y = x * 2",
        "return y",
    ]  # a bare body
    assert extract_body("def f(x):\n    '''Only a docstring.'''\n", "f") is None
    assert extract_body("def f(x):\n    return (\n", "f") is None  # does not parse
    assert extract_body("def g(x):\n    return 1\n", "f") is None  # not the entry point
    assert extract_body("print('hello')\n", "f") is None  # a script, not a body


def _candidate(code: str, pieces: list[str]) -> Candidate:
    tokens = [
        TokenScore(p, i, q=-0.1 * i, v=0.5, advantage=-0.1 * i, reward=0.01 * i, logprob=-1.0)
        for i, p in enumerate(pieces)
    ]
    return Candidate(code=code, completion="".join(pieces), tokens=tokens)


def test_token_spans_follow_the_reindented_body():
    pieces = ["    ", "total", " =", " sum", "(xs)", "\n", "    ", "return", " total", "\n"]
    completion = "".join(pieces)
    code = "def f(xs):\n" + completion  # the starter code in front of a HumanEval-style completion
    cand = _candidate(code, pieces)
    body = extract_body(code, "f")
    ins = place(body, "        ", cand)
    assert ins.lines == ["        total = sum(xs)", "        return total"]
    for off, start, end, ti in ins.spans:
        assert ins.lines[off][start:end] and ins.lines[off][start:end] in pieces[ti]
    spelled = {(off, ins.lines[off][s:e]) for off, s, e, _ in ins.spans}
    assert {
        (0, "total"),
        (0, " ="),
        (0, " sum"),
        (0, "(xs)"),
        (1, "return"),
        (1, " total"),
    } <= spelled


def test_token_spans_inside_a_fenced_chat_answer():
    pieces = [
        "```",
        "python",
        "\n",
        "def",
        " f",
        "(x",
        "):",
        "\n",
        "    ",
        "return",
        " x",
        "\n",
        "```",
    ]
    cand = _candidate("def f(x):\n    return x\n", pieces)
    ins = place(extract_body(cand.code, "f"), "    ", cand)
    assert ins.lines == ["    return x"]
    assert {ins.lines[0][s:e] for _, s, e, _ in ins.spans} >= {"return", " x"}


def test_settings_updates_and_bad_values():
    s = ServerSettings().updated(
        {"bcoder": {"model": "m", "samples": 3, "temperature": 1, "runTests": False}}
    )
    assert (s.model, s.samples, s.temperature, s.runTests) == (
        "m",
        3,
        1.0,
        False,
    ) and not s.warnings
    bad = s.updated({"samples": "many", "temperature": True, "checkpoint": 5, "model": ""})
    assert (bad.samples, bad.temperature, bad.checkpoint, bad.model) == (3, 1.0, None, "m")
    assert len(bad.warnings) == 4 and any("bcoder.samples" in w for w in bad.warnings)
    # maxNewTokens: 0 (the default) means the checkpoint's target length
    assert s.maxNewTokens == 0 and s.updated({"maxNewTokens": 64}).maxNewTokens == 64
    assert s.updated({"maxNewTokens": "long"}).warnings
    assert s.updated({"samples": 0}).samples == 3
    assert s.updated(None) == s and s.updated({"checkpoint": ""}).checkpoint is None
    assert s.solve_key() != s.updated({"model": "other"}).solve_key()
    assert s.solve_key() == s.updated({"samples": 9}).solve_key()  # no reload for sampling changes


def test_empty_strings_from_the_vscode_settings_ui_mean_unset():
    """VS Code's Settings UI edits checkpoint/device/dtype as plain strings: clearing one sends ""."""
    chosen = ServerSettings().updated(
        {"checkpoint": "/runs/heads", "device": " cuda:1 ", "dtype": "bfloat16"}
    )
    assert (chosen.checkpoint, chosen.device, chosen.dtype) == ("/runs/heads", "cuda:1", "bfloat16")
    cleared = chosen.updated({"checkpoint": "", "device": "  ", "dtype": ""})
    assert (cleared.checkpoint, cleared.device, cleared.dtype) == (None, None, None)
    assert not cleared.warnings
    assert cleared.solve_key() == ServerSettings().solve_key()  # "" loads what the default loads


def test_the_editors_settings_reach_the_solve():
    """Each setting that decides how a solve runs arrives in its SolveSettings."""
    from bcoder.lsp.implement import solve_settings

    default = solve_settings(ServerSettings())
    assert default.generate_tests and not default.generate_tests_with_examples and default.run_tests
    raw = {"generateTests": False, "generateTestsWithExamples": True, "runTests": False,
           "prefill": False, "timeout": 2.5, "backend": "transformers", "samples": 3, "seed": 7}  # fmt: skip
    asked = solve_settings(ServerSettings().updated(raw))
    assert (asked.generate_tests, asked.generate_tests_with_examples, asked.run_tests) == (
        False,
        True,
        False,
    )
    assert (asked.prefill, asked.timeout, asked.backend) == (False, 2.5, "transformers")
    assert (asked.sampling.n, asked.sampling.seed) == (3, 7)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_buffer_units_round_trip(encoding):
    buf = Buffer("x = 'é😀'\n", encoding)
    for col in range(len(buf.lines[0]) + 1):
        assert buf.column(0, buf.units(0, col)) == col
