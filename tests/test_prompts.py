"""Prompt families, truncation from the front of the question, and the default family."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem
from bcoder.core.spec import TestSpec as Spec
from bcoder.problems.load import load_problem, load_problems
from bcoder.problems.prompts import (
    CHARS_PER_TOKEN,
    SYSTEM_PROMPT,
    build_prompt,
    count_tokens,
    prompt_family,
)

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _stdio() -> Problem:
    return Problem(
        id="p",
        source="apps",
        text="Read n and print 2n.",
        tests=Spec(inputs=("1\n",), outputs=("2\n",)),
    )


def _call() -> Problem:
    starter = "class Solution:\n    def double(self, n: int) -> int:\n        "
    return Problem(
        id="c",
        source="apps",
        text="Return 2n.",
        starter_code=starter,
        tests=Spec(inputs=([1],), outputs=(2,), fn_name="double"),
        entry_point="double",
    )


def test_apps_format_exactly():
    assert build_prompt(_stdio(), "apps") == (
        "\nQUESTION:\nRead n and print 2n.\nUse Standard Input format\nANSWER:\n"
    )
    assert build_prompt(_call(), "apps") == (
        "\nQUESTION:\nReturn 2n.\nclass Solution:\n    def double(self, n: int) -> int:\n        "
        "\nUse Call-Based format\nANSWER:\n"
    )


def test_mbpp_format_shows_the_tests():
    p = Problem(
        id="mbpp/1",
        source="mbpp",
        text="Write a function to double n.",
        tests=Spec(asserts=("assert double(1) == 2", "assert double(0) == 0")),
        entry_point="double",
    )
    assert build_prompt(p, "mbpp") == (
        '"""\nWrite a function to double n. Your code should pass these tests:\n\n'
        'assert double(1) == 2\nassert double(0) == 0\n"""\n'
    )


def test_humaneval_is_the_prompt_itself():
    for p in load_problems(FIXTURES / "humaneval.jsonl"):
        assert build_prompt(p, "humaneval") == p.metadata["prompt"]
    stub = load_problem(EXAMPLES / "max_of_list.py")
    assert build_prompt(stub, "humaneval") == (EXAMPLES / "max_of_list.py").read_text()


def test_chat_prompt(tokenizer):
    two_sum = load_problem(EXAMPLES / "two_sum.txt")
    prompt = build_prompt(two_sum, "chat", tokenizer)
    assert prompt.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert "Write a Python function named `two_sum`." in prompt
    assert "assert two_sum([2, 7, 11, 15], 9) == [0, 1]" in prompt  # the user's own tests shown
    call = build_prompt(_call(), "chat", tokenizer)
    assert "```python\nclass Solution:\n    def double(self, n: int) -> int:\n```" in call
    assert "Input:" not in call and "double([1])" not in call  # APPS tests stay hidden
    stdio = build_prompt(load_problem(EXAMPLES / "digit_sum.txt"), "chat", tokenizer)
    assert "standard input" in stdio and "Input:\n1234\nOutput:\n10" in stdio
    stub = build_prompt(load_problem(EXAMPLES / "max_of_list.py"), "chat", tokenizer)
    assert "```python\ndef max_of_list(numbers: list[int]) -> int:\n" in stub


def test_chat_template_without_system_role(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant] "
    )
    prompt = build_prompt(_stdio(), "chat", tok)
    assert prompt.startswith(f"[user] {SYSTEM_PROMPT}\n\nRead n and print 2n.")


def _long(problem: Problem, words: int = 400) -> Problem:
    p = copy.deepcopy(problem)
    p.text = "START " + " ".join(f"w{i}" for i in range(words)) + " END-OF-QUESTION"
    return p


@pytest.mark.parametrize("family", ["apps", "mbpp", "chat"])
def test_truncation_keeps_the_end(tokenizer, family):
    p = _long(_call())
    full = build_prompt(p, family, tokenizer, max_source_tokens=10_000)
    assert "START" in full and count_tokens(full, tokenizer) > 300
    cut = build_prompt(p, family, tokenizer, max_source_tokens=300)
    assert count_tokens(cut, tokenizer) <= 300
    assert count_tokens(cut, tokenizer) >= 290  # it uses the budget, not much less
    assert "START" not in cut and "END-OF-QUESTION" in cut
    assert "def double(self, n: int) -> int:" in cut
    # the fixed tail is intact
    assert cut.endswith(full[full.index("END-OF-QUESTION") :])


def test_truncation_of_a_docstring(tokenizer):
    stub = copy.deepcopy(load_problem(EXAMPLES / "max_of_list.py"))
    stub.text = "START " + " ".join(["filler"] * 300) + "\nReturn the largest number."
    del stub.metadata["prompt"]  # the stub's file no longer matches: rebuild it from the parts
    stub.metadata["prompt"] = build_prompt(stub, "humaneval", max_source_tokens=10**6)
    assert stub.metadata["prompt"].count("filler") == 300  # built from the signature and text
    cut = build_prompt(stub, "humaneval", tokenizer, max_source_tokens=120)
    assert count_tokens(cut, tokenizer) <= 120
    assert cut.startswith('def max_of_list(numbers: list[int]) -> int:\n    """\n')
    assert cut.endswith('    Return the largest number.\n    """\n') and "START" not in cut


def test_truncation_without_tokenizer_counts_characters():
    p = _long(_stdio(), words=2000)
    cut = build_prompt(p, "apps", None, max_source_tokens=100)
    assert len(cut) <= 100 * CHARS_PER_TOKEN
    assert len(cut) > 95 * CHARS_PER_TOKEN
    assert cut.endswith(" END-OF-QUESTION\nUse Standard Input format\nANSWER:\n")


def test_fixed_parts_are_never_cut(tokenizer):
    p = _long(_call())
    p.starter_code = "class Solution:\n" + "".join(f"    x{i} = {i}\n" for i in range(200))
    prompt = build_prompt(p, "apps", tokenizer, max_source_tokens=50)
    assert prompt == f"\nQUESTION:\n\n{p.starter_code}\nUse Call-Based format\nANSWER:\n"


def test_pure_and_validated(tokenizer):
    p = _long(_call())
    before = copy.deepcopy(p)
    assert build_prompt(p, "chat", tokenizer, 200) == build_prompt(p, "chat", tokenizer, 200)
    assert p == before
    with pytest.raises(BcoderError, match="unknown prompt family"):
        build_prompt(p, "gpt", tokenizer)
    with pytest.raises(BcoderError, match="chat template"):
        build_prompt(p, "chat", None)


def test_prompt_family(tokenizer):
    assert prompt_family(_stdio(), tokenizer) == "chat"
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    assert prompt_family(_stdio(), plain) == "apps"
    assert prompt_family(_call()) == "apps"
    assert prompt_family(next(iter(load_problems(FIXTURES / "humaneval.jsonl")))) == "humaneval"
    assert prompt_family(load_problem(EXAMPLES / "max_of_list.py")) == "humaneval"
    mbpp = Problem(id="m", source="mbpp", text="t", tests=Spec(asserts=("assert f()",)))
    assert prompt_family(mbpp) == "mbpp"
    assert prompt_family(load_problem(EXAMPLES / "two_sum.txt")) == "apps"


def test_prompt_settings_from_a_checkpoints_metadata():
    from bcoder.problems.prompts import PromptSettings

    recorded = {"family": "mbpp", "max_source_tokens": 300, "max_target_tokens": 256}
    assert PromptSettings.from_meta({"prompt": recorded}) == PromptSettings("mbpp", 300, 256)
    # an older checkpoint carries its training config only
    data = {"prompt_family": "apps", "max_source_tokens": 500, "max_target_tokens": 128}
    old = PromptSettings.from_meta({"train_config": {"data": data}})
    assert old == PromptSettings("apps", 500, 128)
    assert PromptSettings.from_meta({}) == PromptSettings("auto", 600, 512)
    with pytest.raises(BcoderError, match="prompt family"):
        PromptSettings(family="cobol")
