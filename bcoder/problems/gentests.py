"""Tests the model writes itself: the test-writing prompt, and the parser of what it wrote.

A problem without tests of its own (a docstring in the editor, a plain statement) can still be
ranked by execution when the model writes tests for it (CodeT, Chen et al. 2022). The prompt is
built only from what the user gave: the statement, or the stub's signature and docstring (whose
examples the user wrote), and the entry point's signature. Never ``problem.tests``: for MBPP
those are the scoring asserts, which the program prompt shows but this one must not.

Prompts (``ENTRY`` is the entry point, ``N`` the tests asked for):
- ``chat``: the tokenizer's chat template; a user message with the code context (the stub, or the
  statement and the signature) and "Write N distinct unit tests of `ENTRY` as
  `assert ENTRY(...) == ...` lines ..."; the assistant turn prefilled with
  ``"```python\\nassert ENTRY("``, so the first test is already started.
- the others (a base model): CodeT's, the code context with a body placeholder and an
  instruction comment, ``"...\\n    pass\\n\\n\\n# check the correctness of ENTRY\\nassert ENTRY("``.
The prefix (the answer's start written into the prompt) is part of what is parsed.

Parsing (:func:`parse_asserts`) reads the completion with :mod:`ast` and ``ast.literal_eval``
only: generated tests are hostile code, and nothing here runs them. It keeps
``assert ENTRY(literals) == literal`` (either side), ``assert ENTRY(literals)`` (``== True``) and
``assert not ENTRY(literals)`` (``== False``), normalised so that spacing and quoting do not
make two tests distinct; everything else is dropped.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem
from bcoder.problems.extract import cut_at_end, defines, fenced_blocks, leading_code
from bcoder.problems.fit import fit_statement
from bcoder.problems.prompts import FAMILIES, chat_text, code_context, is_stub

TESTS_ASKED = 10  # tests one completion is asked for (the first try: "write 10 asserts")
TEST_SYSTEM_PROMPT = (
    "You are an expert Python programmer who writes unit tests. Answer with exactly one Python "
    "code block (```python ... ```) of assert lines, and nothing else."
)
MAX_LINE_CHARS = 300  # a longer line is junk (a runaway list), never part of a kept test
MAX_TEST_CHARS = 1000  # a longer normalised test (its arguments and expected value) is dropped
MAX_WINDOW_LINES = 20  # lines one multi-line assert may span
# a completion is read up to here: 300 new tokens are ~1,200 characters, and a hostile text of
# megabytes would cost seconds of parsing (tests come first in an answer)
MAX_TEXT_CHARS = 100_000
_LIST_MARKER = re.compile(r"^(?:\d+[.)]|[-*•])\s+")  # "1. assert ...", "- assert ..."


# --- the prompt -----------------------------------------------------------------------------


def test_prompt(
    problem: Problem,
    family: str,
    tokenizer: Any = None,
    max_source_tokens: int = 600,
    tests: int = TESTS_ASKED,
) -> tuple[str, str]:
    """(prompt text, prefix) of the test-writing prompt for ``problem`` in ``family``: the text
    ends with the prefix, the start of the answer (see the module docstring). At most
    ``max_source_tokens`` tokens (the statement cut as :mod:`bcoder.problems.fit` cuts it); a
    problem that cannot fit, or has no entry point, raises a one-line BcoderError."""
    entry = problem.entry_point
    if not entry:
        raise BcoderError("the problem has no entry point: there is no function to write tests of")
    if family not in FAMILIES:
        raise BcoderError(f"unknown prompt family {family!r} (expected {', '.join(FAMILIES)})")
    if family == "chat" and not getattr(tokenizer, "chat_template", None):
        raise BcoderError("the chat prompt needs a tokenizer with a chat template")
    if family == "chat":
        prefix = f"```python\nassert {entry}("

        def render(question: str) -> str:
            return (
                chat_text(tokenizer, TEST_SYSTEM_PROMPT, _chat_user(problem, question, tests))
                + prefix
            )
    else:
        prefix = f"assert {entry}("

        def render(question: str) -> str:
            return _codet(problem, question) + prefix

    try:
        text, _, _ = fit_statement(render, problem.text, tokenizer, max_source_tokens)
    except BcoderError as err:
        raise BcoderError(f"no test-writing prompt: {err}") from None
    return text, prefix


test_prompt.__test__ = False  # type: ignore[attr-defined]  # a test file imports it: not a test


def signature(problem: Problem) -> str:
    """The code that names the entry point's parameters, as the user gave it: the starter code
    (a stub's ``def`` line, with its imports), plus ``metadata["signature"]`` when the starter
    does not define the entry point (MBPP without its asserts: the ground truth's ``def`` line);
    '' when there is none (the prompt then names the function only)."""
    code = problem.starter_code.rstrip()
    extra = problem.metadata.get("signature")
    if isinstance(extra, str) and extra.strip() and not defines(code, problem.entry_point):
        extra = extra.strip("\n")
        code = f"{code}\n{extra}" if code else extra
    return code


def _context(problem: Problem, question: str) -> str:
    """The code a test writer reads: a stub's signature and docstring (HumanEval's prompt itself),
    else the statement as a docstring above the signature. Never the problem's tests."""
    if is_stub(problem):
        return code_context(problem, question).rstrip()
    code = signature(problem)
    return f'"""\n{question.strip()}\n"""\n{code}'.rstrip()


def _codet(problem: Problem, question: str) -> str:
    """CodeT's test-writing prompt for a base model, up to its ``assert`` line: the context, a
    ``pass`` body under the entry point's ``def`` (when there is one) and the instruction."""
    code = _context(problem, question)
    entry = problem.entry_point or ""
    defs = re.findall(rf"^([ \t]*)(?:async\s+)?def\s+{re.escape(entry)}\b", code, re.M)
    defs = defs or re.findall(r"^([ \t]*)(?:async\s+)?def\s", code, re.M)
    body = f"\n{defs[-1]}    pass" if defs else ""
    return f"{code}{body}\n\n\n# check the correctness of {entry}\n"


def _chat_user(problem: Problem, question: str, tests: int) -> str:
    """The user turn: the context, then what to write (literal arguments and expected values,
    so that the parser can keep the tests; no implementation, which would use the budget)."""
    entry = problem.entry_point
    if is_stub(problem):
        code = _context(problem, question)
        parts = [
            f"Here is a Python function whose body is not written yet.\n\n```python\n{code}\n```"
        ]
    else:
        parts = [f"Here is the task of a Python function not written yet:\n\n{question.strip()}"]
        code = signature(problem)
        if code:
            parts.append(f"Its signature:\n\n```python\n{code}\n```")
        else:
            parts.append(f"The function is named `{entry}`.")
    parts.append(
        f"Write {tests} distinct unit tests of `{entry}` as `assert {entry}(...) == ...` lines, "
        "one per line, in one ```python block. Use literal arguments and expected values (no "
        "variables, helper functions or imports), and cover normal and edge cases. Do not "
        f"implement `{entry}`."
    )
    return "\n\n".join(parts)


# --- the parser -----------------------------------------------------------------------------


def parse_asserts(text: str, entry_point: str, limit: int) -> tuple[list[str], int]:
    """(kept tests, assert statements seen) of a test-writing completion ``text`` (the prefix and
    what the model wrote).

    The fenced blocks when there are any (see :func:`_code_of`; else the whole text) are read statement by statement:
    a line that starts an ``assert`` is parsed with as many following lines as it takes (a
    multi-line list argument), up to :data:`MAX_WINDOW_LINES`; one that never parses is dropped
    alone. Each assert is kept or dropped by :func:`normal_test`; the kept ones are deduplicated
    (first occurrence first) and capped at ``limit``. Nothing is executed.
    """
    kept: list[str] = []
    seen: set[str] = set()
    written = 0
    for node in _assert_nodes(_code_of(text)):
        written += 1
        test = normal_test(node, entry_point)
        if test is not None and test not in seen and len(kept) < limit:
            seen.add(test)
            kept.append(test)
    return kept, written


def _code_of(text: str) -> str:
    """The part of a completion that holds the tests: its fenced blocks (an unterminated last one
    included) and the code before a bare first fence that closes a block never opened (a base
    model's asserts, then a stray fence and prose), else all of it; cut at an end-of-turn token."""
    text = text[:MAX_TEXT_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    text = cut_at_end(text)
    lead = leading_code(text)
    blocks = [b.code for b in ([lead] if lead else []) + fenced_blocks(text) if b.code.strip()]
    return "\n".join(blocks) if blocks else text


def _assert_nodes(code: str) -> list[ast.Assert]:
    """The assert statements of ``code``, found line by line (see :func:`parse_asserts`): prose,
    numbering, indentation and lines that do not parse cost only themselves."""
    lines = code.split("\n")
    found: list[ast.Assert] = []
    i = 0
    while i < len(lines):
        tree, spans = _statement_at(lines, i)
        if tree is not None:
            found.extend(n for n in ast.walk(tree) if isinstance(n, ast.Assert))
        i += spans
    return found


def _statement_at(lines: list[str], i: int) -> tuple[ast.Module | None, int]:
    """The assert statement that starts at line ``i`` and the lines it spans: the line with as
    many of the next ones as it takes to parse, never past the start of another assert (a
    truncated one cannot swallow the next); (None, 1) when there is none."""
    start = _statement_start(lines[i])
    if start is None:
        return None, 1
    window = [start]
    while True:
        tree = _parse("\n".join(window))
        if tree is not None:
            return tree, len(window)
        j = i + len(window)
        if (
            len(window) >= MAX_WINDOW_LINES
            or j >= len(lines)
            or len(lines[j]) > MAX_LINE_CHARS
            or _statement_start(lines[j]) is not None
        ):
            return None, 1
        window.append(lines[j])


def _statement_start(line: str) -> str | None:
    """``line`` as the start of an assert statement (indentation, list numbering and inline
    backticks taken off), or None when it does not start one or is too long to be a test."""
    if len(line) > MAX_LINE_CHARS:
        return None
    s = _LIST_MARKER.sub("", line.strip())
    if s.startswith("`") and not s.startswith("```"):
        s = s.strip("`").strip()
    return s if re.match(r"assert\b", s) else None


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):  # ValueError: NUL bytes
        return None


def normal_test(node: ast.Assert, entry_point: str) -> str | None:
    """``assert ENTRY(args) == expected`` for an assert that tests the entry point on literal
    arguments against a literal value, else None. ``assert ENTRY(args)`` means ``== True`` and
    ``assert not ENTRY(args)`` ``== False``; the expected value may stand on either side; a
    message is dropped. Everything else (other functions, names, ``is``, ``!=``, ``<``, ``in``,
    ``math.isclose``, calls or comprehensions in the arguments) is None."""
    test = node.test
    if isinstance(test, ast.Compare):
        if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
            return None
        left, right = test.left, test.comparators[0]
        call, expected = (left, right) if _is_call_of(left, entry_point) else (right, left)
    elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        call, expected = test.operand, ast.Constant(False)
    else:
        call, expected = test, ast.Constant(True)
    if not _is_call_of(call, entry_point) or not _is_literal(expected):
        return None
    assert isinstance(call, ast.Call)
    if not all(_is_literal(a) for a in call.args):
        return None
    if not all(k.arg is not None and _is_literal(k.value) for k in call.keywords):
        return None
    compare = ast.Compare(left=call, ops=[ast.Eq()], comparators=[expected])
    try:
        text = ast.unparse(ast.Assert(test=compare, msg=None))
    except (ValueError, MemoryError, RecursionError):
        return None
    return text if len(text) <= MAX_TEST_CHARS else None


def _is_call_of(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def _is_literal(node: ast.expr) -> bool:
    """Whether ``node`` is a plain literal value (numbers, strings, bytes, tuples, lists, dicts,
    sets, None, booleans, negative numbers), judged by ``ast.literal_eval``, which evaluates
    nothing else; huge or deeply nested values are refused, not raised."""
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True
