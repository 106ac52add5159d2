"""Tests the model writes itself (issue 32, item 1): their settings, the test-writing prompt (only
what the user gave, never hidden tests) and the parser of hostile, malformed model output."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bcoder.core.errors import BcoderError
from bcoder.core.settings import TestWriting
from bcoder.core.spec import Problem
from bcoder.core.spec import TestSpec as Spec
from bcoder.problems import gentests
from bcoder.problems.fit import count_tokens
from bcoder.problems.gentests import TEST_SYSTEM_PROMPT, parse_asserts
from bcoder.problems.load import load_problem, load_problems

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CORPUS = json.loads((FIXTURES / "generated_tests.json").read_text())["cases"]


# --- settings --------------------------------------------------------------------------------


def test_test_writing_defaults_are_the_issues():
    w = TestWriting()
    assert w.samples >= 2  # issue 32: at least 2 samples
    assert w.max_tests == 5  # the issue's 20 ranked no better on held-out (docs/probe/README.md)
    assert (w.temperature, w.top_p, w.max_new_tokens, w.seed) == (0.8, 0.95, 300, 0)
    assert TestWriting(samples=1).samples == 1  # one sample is allowed, just not the default
    assert TestWriting(**w.to_dict()) == w


@pytest.mark.parametrize(
    "bad",
    [
        {"samples": 0},
        {"samples": 2.0},
        {"samples": True},
        {"max_tests": 0},
        {"temperature": -0.1},
        {"temperature": 11.0},
        {"temperature": "hot"},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"max_new_tokens": 0},
        {"seed": -1},
        {"seed": None},
    ],
)
def test_bad_test_writing_values_are_one_line_errors(bad):
    with pytest.raises(BcoderError) as err:
        TestWriting(**bad)
    assert "\n" not in str(err.value) and str(next(iter(bad.values()))) in str(err.value)


def test_test_writing_is_a_pure_value():
    """No torch, no disk: settings validate plain values."""
    code = (
        "import sys; from bcoder.core.settings import TestWriting; TestWriting(samples=3); "
        "import bcoder.problems.gentests; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# --- the prompt ------------------------------------------------------------------------------


def _mbpp(fixture_data: Path) -> Problem:
    return next(iter(load_problems(fixture_data / "mbpp/mbpp.jsonl")))


def _humaneval() -> Problem:
    return next(iter(load_problems(FIXTURES / "humaneval.jsonl")))


def test_an_mbpp_prompt_never_shows_the_scoring_asserts(tokenizer, fixture_data):
    """MBPP's asserts are its hidden tests (the program prompt shows them; this one must not)."""
    p = _mbpp(fixture_data)
    assert p.tests is not None and p.tests.asserts
    for family in ("chat", "mbpp", "apps", "humaneval"):
        text, prefix = gentests.test_prompt(p, family, tokenizer)
        for hidden in p.tests.asserts:
            assert hidden not in text
            call = hidden.removeprefix("assert ").split("==")[0].strip()
            assert call not in text  # not even its call
        assert p.text.strip() in text and text.endswith(prefix)
        assert prefix.endswith(f"assert {p.entry_point}(")
    challenge = p.metadata.get("challenge_tests") or []
    assert all(t not in text for t in challenge)


def test_a_humaneval_prompt_shows_the_docstring_examples(tokenizer):
    """The docstring's examples are what the user wrote: shown; the check function is not."""
    p = _humaneval()
    assert ">>> running_max([1, 3, 2, 5])" in p.metadata["prompt"]
    hidden = p.tests.asserts[0]
    for family in ("chat", "humaneval"):
        text, _ = gentests.test_prompt(p, family, tokenizer)
        assert ">>> running_max([1, 3, 2, 5])\n    [1, 3, 3, 5]" in text
        assert "def check(" not in text and hidden.strip() not in text


def test_the_base_prompt_is_codets(tokenizer):
    p = _humaneval()
    text, prefix = gentests.test_prompt(p, "humaneval", tokenizer)
    assert prefix == "assert running_max("
    assert text == (
        p.metadata["prompt"].rstrip()
        + "\n    pass\n\n\n# check the correctness of running_max\nassert running_max("
    )
    stub = load_problem(EXAMPLES / "max_of_list.py")
    text, _ = gentests.test_prompt(stub, "mbpp", tokenizer)
    assert text.startswith("def max_of_list(numbers: list[int]) -> int:\n")
    assert '    """\n    pass\n\n\n# check the correctness of max_of_list\n' in text


def test_the_chat_prompt_asks_for_asserts_and_starts_the_first(tokenizer):
    p = _humaneval()
    text, prefix = gentests.test_prompt(p, "chat", tokenizer, tests=7)
    assert text.startswith(f"<|im_start|>system\n{TEST_SYSTEM_PROMPT}<|im_end|>\n")
    assert "Write 7 distinct unit tests of `running_max` as `assert running_max(...) == ...`" in (
        text
    )
    assert "```python\nfrom typing import List\n\n\ndef running_max(" in text  # the stub itself
    assert prefix == "```python\nassert running_max("
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n" + prefix)


def test_a_signature_is_shown_else_the_name(tokenizer, fixture_data):
    """MBPP without its asserts has no signature; the no-tests protocol may give the ground
    truth's def line (metadata["signature"] or the starter code); else only the name."""
    p = _mbpp(fixture_data)
    text, _ = gentests.test_prompt(p, "chat", tokenizer)
    assert f"The function is named `{p.entry_point}`." in text
    signed = dataclasses.replace(
        p, metadata={**p.metadata, "signature": "def min_cost(cost, m, n):"}
    )
    text, _ = gentests.test_prompt(signed, "chat", tokenizer)
    assert "Its signature:\n\n```python\ndef min_cost(cost, m, n):\n```" in text
    text, _ = gentests.test_prompt(signed, "mbpp", tokenizer)
    assert text.endswith(
        '"""\ndef min_cost(cost, m, n):\n    pass\n\n\n# check the correctness of min_cost\n'
        "assert min_cost("
    )
    starter = dataclasses.replace(p, starter_code="import math\n\ndef min_cost(cost, m, n):\n")
    assert gentests.signature(starter) == "import math\n\ndef min_cost(cost, m, n):"
    assert gentests.signature(p) == ""


def test_a_template_without_a_system_role(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant] "
    )
    text, prefix = gentests.test_prompt(_humaneval(), "chat", tok)
    assert text.startswith(f"[user] {TEST_SYSTEM_PROMPT}\n\nHere is a Python function")
    assert text.endswith("[assistant] " + prefix)


def test_a_long_statement_is_cut_to_fit_and_what_cannot_fit_is_refused(tokenizer, fixture_data):
    p = copy.deepcopy(_mbpp(fixture_data))
    p.text = "Return the cheapest path.\n\n" + " ".join(["filler"] * 400) + "\n\nLast line."
    text, prefix = gentests.test_prompt(p, "chat", tokenizer, max_source_tokens=600)
    assert count_tokens(text, tokenizer) <= 600 and "[...]" in text and text.endswith(prefix)
    assert "Return the cheapest path." in text and "Last line." in text
    with pytest.raises(BcoderError) as err:
        gentests.test_prompt(p, "chat", tokenizer, max_source_tokens=40)
    assert "\n" not in str(err.value) and str(err.value).startswith("no test-writing prompt")


def test_bad_requests_are_one_line_errors(tokenizer, fixture_data):
    p = _mbpp(fixture_data)
    no_entry = dataclasses.replace(p, entry_point=None)
    for problem, family, tok in (
        (no_entry, "chat", tokenizer),
        (p, "cobol", tokenizer),
        (p, "chat", None),
    ):
        with pytest.raises(BcoderError) as err:
            gentests.test_prompt(problem, family, tok)
        assert "\n" not in str(err.value)


def test_a_text_problems_own_tests_are_not_shown_either(tokenizer):
    """A statement with the user's tests would not need generated ones; if asked, the prompt
    still holds the statement only (the tests are problem.tests, which it never reads)."""
    p = Problem(
        id="t",
        source="text",
        text="Return twice n.",
        tests=Spec(asserts=("assert double(21) == 42",)),
        entry_point="double",
    )
    text, _ = gentests.test_prompt(p, "chat", tokenizer)
    assert "Return twice n." in text and "double(21)" not in text


# --- the parser: a corpus of realistic completions -------------------------------------------


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_the_corpus_of_model_outputs(case):
    kept, written = parse_asserts("\n".join(case["text"]), case["entry"], 20)
    assert kept == case["kept"], case["why"]
    assert written == case["written"], case["why"]


def test_the_corpus_covers_what_the_issue_lists():
    names = {c["name"] for c in CORPUS}
    assert 15 <= len(CORPUS) <= 30 and len(names) == len(CORPUS)
    texts = ["\n".join(c["text"]) for c in CORPUS]
    assert any("```" in t for t in texts) and any("```" not in t for t in texts)
    assert any(not c["kept"] for c in CORPUS) and any(len(c["kept"]) >= 4 for c in CORPUS)


def test_kept_tests_are_deduplicated_in_order_and_capped():
    text = "\n".join(f"assert f({i % 30}) == {i % 30}" for i in range(60))
    kept, written = parse_asserts(text, "f", 20)
    assert written == 60 and kept == [f"assert f({i}) == {i}" for i in range(20)]
    assert parse_asserts(text, "f", 1) == (["assert f(0) == 0"], 60)


def test_the_prefix_completes_the_first_test():
    """The completion continues the prompt's prefix: parse the two together."""
    prefix, completion = "```python\nassert f(", "2) == 4\nassert f(3) == 9\n```"
    assert parse_asserts(prefix + completion, "f", 20) == (
        ["assert f(2) == 4", "assert f(3) == 9"],
        2,
    )
    assert parse_asserts(completion, "f", 20) == (["assert f(3) == 9"], 1)  # alone: broken


# --- the parser: hostile input ---------------------------------------------------------------


def test_nothing_is_executed(tmp_path):
    """Generated tests are hostile code: the parser reads them, never runs them."""
    marker = tmp_path / "ran"
    text = "\n".join(
        [
            f"assert f(open({str(marker)!r}, 'w').write('x')) == 1",
            f"assert f(1) == __import__('pathlib').Path({str(marker)!r}).touch()",
            "assert f((lambda: 1)()) == 1",
            "assert f(x := 1) == 1",
            "assert f(1) == (2 if True else 3)",
            f"assert f(1) == 1 or open({str(marker)!r}, 'w')",
        ]
    )
    assert parse_asserts(text, "f", 20) == ([], 6)
    assert not marker.exists()


def test_huge_and_deep_values_are_dropped_not_raised():
    deep = "assert f(" + "[" * 140 + "]" * 140 + ") == 1"  # under the line limit
    deeper = "assert f(1) == (\n" + "\n".join(["[" * 250] * 19) + "\n)"  # over the parser's
    long_line = "assert f([" + "1, " * 120 + "1]) == 1"  # over 300 characters
    big = "assert f(1) == (\n" + "\n".join([f"    '{'x' * 280}'"] * 10) + "\n)"  # over 1000
    nul = "assert f(1) == 1\x00"
    many = "\n".join(["assert f(", "[1,"] * 20_000)  # 40,000 lines that never close
    for text in (deep, deeper, long_line, big, nul):
        kept, _ = parse_asserts(text + "\nassert f(0) == 0", "f", 20)
        assert kept[-1] == "assert f(0) == 0" and len(kept) <= 2
    assert len(long_line) > gentests.MAX_LINE_CHARS
    assert parse_asserts(long_line, "f", 20) == ([], 0)
    assert parse_asserts(big, "f", 20) == ([], 1)  # parsed, then refused for its size
    prose = "x = (\n" * 50_000 + "```\nassert f(1) == 1"  # past MAX_TEXT_CHARS: not read
    fenced = "Sure.\n" + "x = [\n" * 12_000 + "Done.\n```\nassert f(1) == 1\n```"
    t0 = time.perf_counter()
    assert parse_asserts(many, "f", 20) == ([], 0)  # each broken start costs a bounded window
    assert parse_asserts(prose, "f", 20) == ([], 0)  # read up to MAX_TEXT_CHARS only
    assert parse_asserts(fenced, "f", 20) == (["assert f(1) == 1"], 1)
    assert time.perf_counter() - t0 < 20


def test_a_truncated_assert_does_not_swallow_the_next():
    text = "assert f([1, 2,\nassert f(3) == 3\n    4]) == 7"
    assert parse_asserts(text, "f", 20) == (["assert f(3) == 3"], 1)


def test_junk_without_tests():
    for junk in ("", "\n\n", "```", "assert", "assert f(", "def f(x):\n    return x\n", "🙂" * 50):
        assert parse_asserts(junk, "f", 20) == ([], 0)
