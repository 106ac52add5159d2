"""Evaluation protocols: under ``no-tests`` an MBPP problem is a stub with no assert in sight."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem
from bcoder.core.spec import TestSpec as Spec  # (not a test class)
from bcoder.problems.load import load_problems
from bcoder.problems.prompts import make_prompt
from bcoder.problems.protocols import apply_protocol, signature_line

FIXTURES = Path(__file__).parent / "fixtures"


def test_an_mbpp_problem_becomes_a_stub_without_its_asserts(fixture_data, tokenizer):
    problems = list(load_problems(fixture_data / "mbpp" / "mbpp.jsonl", split="test"))
    assert len(problems) == 500
    for p in problems:
        q = apply_protocol(p, "no-tests")
        assert q.id == p.id and q.tests == p.tests and q.text == p.text  # scored as before
        assert q.example_tests is None and q.metadata["protocol"] == "no-tests"
        assert q.starter_code.startswith(f"def {p.entry_point}(") and q.starter_code.endswith(":")
        for family in ("chat", "humaneval"):
            prompt = make_prompt(q, family, tokenizer, 10**6).text
            assert "assert" not in prompt.replace(p.text, "")  # no test: only the statement
            assert q.starter_code in prompt and p.text.strip() in prompt
        assert apply_protocol(p, "tests") is p
    first = apply_protocol(problems[0], "no-tests")  # mbpp/11, as its ground truth names it
    assert first.starter_code == "def remove_Occ(s, ch):"


def test_humaneval_is_its_own_no_tests_prompt():
    problem = next(iter(load_problems(FIXTURES / "humaneval.jsonl")))
    assert apply_protocol(problem, "no-tests") is problem  # its docstring is what a user wrote


def test_the_signature_line_keeps_names_only():
    code = "def f(a: int, b=2, *rest, key=None, **extra) -> int:\n    return a\n"
    tests = Spec(asserts=("assert f(1) == 1",))
    p = Problem(id="x", source="mbpp", text="t", tests=tests, solutions=[code], entry_point="f")
    assert signature_line(p) == "def f(a, b, *rest, key, **extra):"
    p.solutions = ["f = lambda x, y: x"]  # no def: the first test's call says how many
    p.tests = Spec(asserts=("assert f(1, [2, 3]) == 1",))
    assert signature_line(p) == "def f(arg0, arg1):"
    p.entry_point = None
    with pytest.raises(BcoderError, match="no entry point"):
        signature_line(p)
    with pytest.raises(BcoderError, match="unknown protocol"):
        apply_protocol(p, "no-asserts")
