"""The tests the model wrote that the body in the buffer passes: what the editor offers to keep.

A result's ``generated.asserts`` are ``assert f(literals) == literal`` lines (the model wrote them
for a problem without tests of its own), and each candidate's ``generated`` its verdicts on them,
in their order. Only the tests whose verdict for the inserted candidate is ``pass`` are offered,
and only for a top-level function (a doctest or a pytest file calls it by name).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.spec import TestSpec
from bcoder.core.types import Candidate, GeneratedTests, SolveResult
from bcoder.execution import Executor
from bcoder.lsp.values import Implemented


@dataclass(frozen=True)
class Test:
    """One generated test, split: ``call == expected``."""

    source: str  # the assert as the model's test was kept
    call: str  # the call of the function, normalised (ast.unparse)
    expected: str  # the expected value's literal, normalised
    value: Any  # the expected value itself (ast.literal_eval)


def parse_test(source: str, function: str) -> Test | None:
    """``assert function(...) == literal`` split, else None (nothing here is evaluated but the
    literal, by ``ast.literal_eval``)."""
    try:
        node = ast.parse(source).body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if len(node) != 1 or not isinstance(node[0], ast.Assert):
        return None
    test = node[0].test
    if not (isinstance(test, ast.Compare) and [type(op) for op in test.ops] == [ast.Eq]):
        return None
    call, expected = test.left, test.comparators[0]
    if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == function):
        return None
    try:
        value = ast.literal_eval(expected)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return Test(source, ast.unparse(call), ast.unparse(expected), value)


def passing(result: SolveResult, candidate: Candidate, function: str) -> list[Test]:
    """The generated tests of ``result`` that ``candidate`` passes, in their order."""
    if result.generated is None:
        return []
    tests = []
    for source, outcome in zip(result.generated.asserts, candidate.generated, strict=False):
        test = parse_test(source, function) if outcome.verdict == "pass" else None
        if test is not None:
            tests.append(test)
    return tests


def offered(item: Implemented, kind: str, name: str) -> list[Test]:
    """The tests to offer for the function B-Coder implemented (``kind`` and ``name`` as the
    buffer has it now): none for a method or a nested function."""
    if kind != "function" or item.qualname != name:
        return []
    return passing(item.result, item.candidate, name)


def passed_by(result: SolveResult) -> list[int]:
    """Per generated test, the candidates that pass it, duplicates counted."""
    asserts = result.generated.asserts if result.generated is not None else []
    return [
        sum(
            c.count
            for c in result.candidates
            if i < len(c.generated) and c.generated[i].verdict == "pass"
        )
        for i in range(len(asserts))
    ]


def written_line(generated: GeneratedTests) -> str:
    """What the model wrote, for the log: how many tests and how long it took, or why none."""
    if not generated.asserts:
        return f"the model wrote no tests: {generated.note or 'none parsed'}"
    return (
        f"the model wrote {len(generated.asserts)} tests for it ({generated.samples} samples, "
        f"{generated.seconds:.1f} s), and the candidates ran on them"
    )


def summary(result: SolveResult) -> dict[str, Any] | None:
    """The result's generated tests for a client: as stored, plus ``passedBy`` (per test, the
    candidates passing it, duplicates counted) and ``sampled`` (the candidates that ran them)."""
    if result.generated is None:
        return None
    sampled = sum(c.count for c in result.candidates if c.generated)
    return {**result.generated.to_dict(), "passedBy": passed_by(result), "sampled": sampled}


def returned_reprs(
    code: str, tests: list[Test], timeout: float, warn: Callable[[str], None]
) -> list[str | None]:
    """Per test, the repr of what ``code`` returns for its call, asked of the sandbox (the
    program is the model's: it never runs here); None where that is unknown (it raised, timed
    out, or the repr is too long to come back whole)."""
    spec = TestSpec(asserts=tuple(f"assert repr({t.call}) == {repr(t.value)!r}" for t in tests))
    try:
        with Executor(workers=1, timeout=timeout, stop_on_failure=False, on_warning=warn) as ex:
            outcomes = ex.run(code, spec).tests
    except BcoderError as err:
        warn(f"could not run the tests in the sandbox: {err}")
        return [None] * len(tests)
    out: list[str | None] = []
    for outcome in outcomes[: len(tests)]:
        try:  # the canonical text of a str is its repr
            text = ast.literal_eval(outcome.value) if outcome.value else None
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            text = None
        out.append(text if isinstance(text, str) else None)
    return out + [None] * (len(tests) - len(out))
