"""Prompt families, fitting a long statement into the prompt, and the default family."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest

from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem
from bcoder.core.spec import TestSpec as Spec
from bcoder.problems.fit import CHARS_PER_TOKEN, PromptCut, count_tokens
from bcoder.problems.load import load_problem, load_problems
from bcoder.problems.prompts import (
    SYSTEM_PROMPT,
    Prompter,
    build_prompt,
    fit_prompt,
    make_prompt,
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


TASK = "Return twice the sum of the numbers in the data."


def _long(problem: Problem, rows: int = 400) -> Problem:
    """A statement whose examples hold a long table: the task first, the formats, the data."""
    p = copy.deepcopy(problem)
    data = "\n".join(f"{i} {i * 7 % 13}" for i in range(rows))
    p.text = (
        f"{TASK} Each line holds two numbers.\n\n-----Input-----\nTwo integers a line.\n\n"
        f"-----Examples-----\nInput\n{data}\n\nOutput\n12345\n\nEND-OF-QUESTION: print it."
    )
    return p


@pytest.mark.parametrize("family", ["apps", "mbpp", "chat"])
def test_a_long_statement_loses_the_middle_of_its_data_never_the_task(tokenizer, family):
    p = _long(_call())
    full = build_prompt(p, family, tokenizer, max_source_tokens=10_000)
    assert TASK in full and count_tokens(full, tokenizer) > 1000
    cut, what = fit_prompt(p, family, tokenizer, max_source_tokens=400)
    assert build_prompt(p, family, tokenizer, max_source_tokens=400) == cut
    assert 390 <= count_tokens(cut, tokenizer) <= 400  # it uses the budget, not much less
    # the task, the input format, the end and the fixed tail are whole; the table lost its middle
    assert TASK + " Each line holds two numbers.\n\n-----Input-----\nTwo integers a line." in cut
    assert (
        cut.count("[...]") == 1 and "Input\n0 0\n1 7\n" in cut and f"\n399 {399 * 7 % 13}\n" in cut
    )
    assert "\n200 " not in cut
    assert "def double(self, n: int) -> int:" in cut
    assert cut.endswith(full[full.index("Output\n12345") :])
    assert what == PromptCut(
        limit=400, tokens=count_tokens(full, tokenizer), chars=len(p.text), kept=what.kept, parts=1
    )
    assert what.kept < len(p.text) and "400-token prompt" in what.message()


def test_the_longest_parts_are_cut_first_prose_after_data(tokenizer):
    p = copy.deepcopy(_stdio())
    story = " ".join(f"Story sentence {i} about the hero." for i in range(60))
    table = "\n".join(" ".join(str(i * j) for j in range(8)) for i in range(60))
    p.text = f"{TASK}\n\n{story}\n\nShort note.\n\n{table}\n\nPrint the answer."
    without_table = copy.deepcopy(p)
    without_table.text = p.text.replace(table, "[...]")
    room = count_tokens(build_prompt(without_table, "apps", tokenizer, 10**6), tokenizer)
    cut, what = fit_prompt(p, "apps", tokenizer, max_source_tokens=room + 60)
    assert what.parts == 1 and cut.count("[...]") == 1  # the table only: the story is whole
    assert story in cut and "Short note." in cut and "Print the answer." in cut
    assert "\n0 0 0 0 0 0 0 0\n" in cut and "\n0 59 118 177" in cut  # its first and last rows
    cut, what = fit_prompt(p, "apps", tokenizer, max_source_tokens=room - 100)
    assert what.parts == 2 and cut.count("[...]") == 2  # then the story's middle too
    assert "\n\n[...]\n\nPrint the answer." in cut  # the table is gone: data before prose
    assert TASK in cut and "Story sentence 0 about" in cut and "Short note." in cut


def test_a_docstrings_middle_is_cut_and_its_first_sentence_kept(tokenizer):
    stub = copy.deepcopy(load_problem(EXAMPLES / "max_of_list.py"))
    stub.text = "Return the largest number.\n\n" + " ".join(["filler"] * 300) + "\n\nLast line."
    del stub.metadata["prompt"]  # the stub's file no longer matches: rebuild it from the parts
    stub.metadata["prompt"] = build_prompt(stub, "humaneval", max_source_tokens=10**6)
    assert stub.metadata["prompt"].count("filler") == 300  # built from the signature and text
    cut = build_prompt(stub, "humaneval", tokenizer, max_source_tokens=120)
    assert count_tokens(cut, tokenizer) <= 120
    assert cut.startswith(
        'def max_of_list(numbers: list[int]) -> int:\n    """\n    Return the largest number.\n'
    )
    assert cut.endswith('    Last line.\n    """\n') and "[...]" in cut


def test_a_stubs_answer_starts_in_the_prompt_with_prefill(tokenizer, fixture_data):
    stub = load_problem(EXAMPLES / "max_of_list.py")
    plain = make_prompt(stub, "chat", tokenizer)
    filled = make_prompt(stub, "chat", tokenizer, prefill=True)
    code = stub.metadata["prompt"].rstrip()  # the signature and docstring, as in the file
    assert plain.prefix == "" and filled.prefix == f"```python\n{code}\n"
    assert filled.text == plain.text + filled.prefix  # the assistant turn starts with the stub
    assert filled.answer("    return max(numbers)\n```") == (
        f"```python\n{code}\n    return max(numbers)\n```"
    )
    ids = Prompter(tokenizer).fitted(stub, prefill=True).ids
    assert ids == tokenizer(filled.text, add_special_tokens=False).input_ids
    # only a stub asked of a chat model: not MBPP, not a base model's humaneval prompt
    mbpp = next(iter(load_problems(fixture_data / "mbpp/mbpp.jsonl")))
    assert make_prompt(mbpp, "chat", tokenizer, prefill=True).prefix == ""
    assert make_prompt(stub, "humaneval", tokenizer, prefill=True).prefix == ""
    # the prefix is the answer's start, not the source: the prompt before it is fitted as
    # without prefill (a docstring that fits is not cut for it), and it holds the docstring as cut
    long = copy.deepcopy(stub)
    long.text = "Return the largest number.\n\n" + " ".join(["filler"] * 300) + "\n\nLast line."
    del long.metadata["prompt"]
    whole = make_prompt(long, "chat", tokenizer, max_source_tokens=100_000)
    limit = count_tokens(whole.text, tokenizer)
    fits = make_prompt(long, "chat", tokenizer, max_source_tokens=limit, prefill=True)
    assert fits.cut is None and fits.text == whole.text + fits.prefix
    cut = make_prompt(long, "chat", tokenizer, max_source_tokens=limit - 200, prefill=True)
    plain = make_prompt(long, "chat", tokenizer, max_source_tokens=limit - 200)
    assert cut.cut == plain.cut is not None and cut.text == plain.text + cut.prefix
    assert count_tokens(plain.text, tokenizer) <= limit - 200
    assert "[...]" in cut.prefix and cut.prefix in cut.text
    assert cut.prefix.startswith("```python\ndef max_of_list(") and "Last line." in cut.prefix


def test_without_a_tokenizer_characters_are_counted():
    p = _long(_stdio(), rows=2000)
    cut, _ = fit_prompt(p, "apps", None, max_source_tokens=100)
    assert 95 * CHARS_PER_TOKEN < len(cut) <= 100 * CHARS_PER_TOKEN
    assert cut.startswith(f"\nQUESTION:\n{TASK}")
    assert cut.endswith(" print it.\nUse Standard Input format\nANSWER:\n")


def test_a_huge_statement_keeps_its_task_and_ends(tokenizer):
    """One paragraph of five megabytes: its first sentence and its end stay, the middle goes,
    in well under a second (the whole is never tokenized: its size is estimated from its head)."""
    p = copy.deepcopy(_stdio())
    numbers = " ".join(str(i % 1000) for i in range(1_300_000))
    p.text = f"Sum these numbers: {numbers} and print the total."
    assert len(p.text) > 5_000_000
    t0 = time.perf_counter()
    cut, what = fit_prompt(p, "chat", tokenizer, max_source_tokens=600)
    assert time.perf_counter() - t0 < 10
    assert count_tokens(cut, tokenizer) <= 600 and what.parts == 1 and not what.exact
    assert "Sum these numbers: 0 1 2 3" in cut and "998 999 and print the total." in cut
    assert f"(about {what.tokens:,} tokens)" in what.message()


def test_what_cannot_fit_is_refused_in_one_line(tokenizer):
    p = _long(_call())
    p.starter_code = "class Solution:\n" + "".join(f"    x{i} = {i}\n" for i in range(200))
    with pytest.raises(BcoderError, match="cannot fit in the 50-token prompt") as err:
        build_prompt(p, "apps", tokenizer, max_source_tokens=50)
    assert "\n" not in str(err.value) and "fixed parts" in str(err.value)
    q = copy.deepcopy(_stdio())
    q.text = " ".join(["word"] * 2000)  # no end to its first sentence
    with pytest.raises(BcoderError, match="first sentence"):
        build_prompt(q, "apps", tokenizer, max_source_tokens=100)


def test_prompts_that_fit_are_the_same_as_before(tokenizer, fixture_data):
    """Every real MBPP and APPS row's prompt that fits (in the families the shipped checkpoint
    and eval use) is byte for byte what bcoder built before cutting learned to keep the task:
    the sha256 of them all was computed with that code."""
    import hashlib

    digest, fitted, cut = hashlib.sha256(), 0, 0
    files = ("mbpp/mbpp.jsonl", "apps/train_150.jsonl", "apps/test_10.jsonl")
    for rel in files:
        for problem in load_problems(fixture_data / rel):
            for family in ("chat", "apps" if problem.source == "apps" else "mbpp"):
                full = build_prompt(problem, family, tokenizer, 10**9)
                if count_tokens(full, tokenizer) > 600:
                    cut += 1
                    continue
                assert fit_prompt(problem, family, tokenizer, 600) == (full, None)
                digest.update(full.encode())
                fitted += 1
    assert (fitted, cut) == (1913, 355)  # the tiny tokenizer spends a token on 1-2 characters
    assert digest.hexdigest() == "f43c739107b83f7315b90ac292d48ae93c5353b4a7a3636cbab29c1f0938698c"


def test_pure_and_validated(tokenizer):
    p = _long(_call())
    before = copy.deepcopy(p)
    assert build_prompt(p, "chat", tokenizer, 400) == build_prompt(p, "chat", tokenizer, 400)
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


def test_an_mbpp_row_whose_tests_alone_are_over_the_limit_shows_fewer(tokenizer):
    """mbpp/380's three tests take 793 tokens of Qwen2.5-Coder's 600-token chat prompt: the
    statement used to be cut away entirely; now one test goes and the statement stays."""
    p = load_problem("mbpp:380")
    full = build_prompt(p, "mbpp", tokenizer, 10**9)
    limit = count_tokens(full, tokenizer) * 3 // 4
    prompt, what = fit_prompt(p, "mbpp", tokenizer, limit)
    assert count_tokens(prompt, tokenizer) <= limit
    assert p.text.strip() in prompt
    assert prompt.count("assert ") == full.count("assert ") - what.tests_left_out == 2
    assert what.parts == 0 and what.message().endswith("1 of the tests it shows is left out")
