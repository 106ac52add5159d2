"""Code extraction: fenced blocks, continuations, prose, chatter; it never invents code."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bcoder.extract import extract_code, fenced_blocks
from bcoder.problems import load_problem, load_problems
from bcoder.spec import Problem

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

SOLUTION = "def max_of_list(numbers):\n    return max(numbers)\n"


def _stub() -> Problem:
    return load_problem(EXAMPLES / "max_of_list.py")


def test_one_fenced_block_with_prose_around():
    text = (
        f"Sure! Here is the solution:\n\n```python\n{SOLUTION}```\n\nIt uses max(). Hope it helps!"
    )
    assert extract_code(text) == SOLUTION


def test_the_block_that_defines_the_entry_point_wins():
    usage = "```python\nprint(max_of_list([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]))\n```"
    helper = "```python\ndef helper(x):\n    return x\n```"
    text = f"{helper}\nThen:\n```py\n{SOLUTION}```\nUsage:\n{usage}\n"
    assert extract_code(text, _stub()) == SOLUTION
    # Without a problem the longest parsing Python block is taken.
    assert (
        extract_code(text)
        == "print(max_of_list([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]))\n"
    )


def test_other_languages_lose_to_python_and_ties_go_first():
    text = "```bash\npython3 main.py < input.txt > output.txt && echo done\n```\n```\nprint(1)\n```"
    assert extract_code(text) == "print(1)\n"
    assert extract_code("```python\nx = 1\n```\n```python\ny = 2\n```") == "x = 1\n"
    # A block that does not parse loses to one that does.
    assert (
        extract_code("```python\ndef f(:\n    pass  # long\n```\n```python\nz = 3\n```")
        == "z = 3\n"
    )
    # Only another language: better that than nothing.
    assert extract_code("```text\nprint(2)\n```") == "print(2)\n"


def test_unterminated_fence_and_tildes():
    assert (
        extract_code("Here:\n```python\nimport sys\nprint(sys.argv)")
        == "import sys\nprint(sys.argv)\n"
    )
    assert extract_code("~~~python\nprint(3)\n~~~\nbye") == "print(3)\n"
    assert [b.closed for b in fenced_blocks("```\na\n```\n```py\nb")] == [True, False]


def test_unfenced_code_with_prose_and_chatter():
    text = f"Here is my answer.\n\n{SOLUTION}\nThis function returns the largest element.\nDone!"
    assert extract_code(text) == SOLUTION
    stdio = "n = int(input())\nprint(n * 2)\n\nExplanation: we read n and print its double."
    assert extract_code(stdio) == "n = int(input())\nprint(n * 2)\n"


def test_valid_code_is_left_alone():
    code = "import sys\n\n\ndef main():\n    data = sys.stdin.read().split()\n    print(len(data))\n\n\nmain()\n"
    assert extract_code(code) == code
    # A syntax error in the middle is not "repaired" by cutting code away.
    broken = "x = 1\nif x\n    print(x)\ny = 2\n"
    assert extract_code(broken) == broken


def test_stop_markers_and_end_tokens():
    assert extract_code("print(1)\n\nQUESTION:\nAnother problem\nANSWER:\nprint(2)") == "print(1)\n"
    assert extract_code("print(1)<|im_end|>\nprint(2)") == "print(1)\n"
    assert extract_code("```python\nprint(1)\n```<|endoftext|>junk") == "print(1)\n"
    assert extract_code(
        "<think>use ```python\nprint(0)\n``` maybe</think>\n```python\nprint(4)\n```"
    ) == ("print(4)\n")
    assert extract_code("print(1)\r\nprint(2)\r\n") == "print(1)\nprint(2)\n"
    assert extract_code("") == "" and extract_code("I cannot solve this.") == ""


def test_continuation_of_a_signature():
    body = "    return max(numbers)\n"
    assert extract_code(body, _stub(), "humaneval") == (
        "def max_of_list(numbers: list[int]) -> int:\n    return max(numbers)\n"
    )
    he = next(iter(load_problems(FIXTURES / "humaneval.jsonl")))
    row_body = "    out = []\n    for x in numbers:\n        out.append(x)\n    return out\n"
    code = extract_code(row_body, he, "humaneval")
    assert code == he.starter_code + row_body
    ast.parse(code)
    # A whole function in a block: no duplicate signature, but the starter's import is added.
    full = "```python\ndef running_max(numbers: List[int]) -> List[int]:\n    return numbers\n```"
    assert extract_code(full, he, "chat") == (
        "from typing import List\ndef running_max(numbers: List[int]) -> List[int]:\n    return numbers\n"
    )


def test_continuation_of_a_leetcode_starter():
    p = Problem(
        id="c",
        source="apps",
        text="t",
        starter_code="class Solution:\n    def double(self, n: int) -> int:\n        ",
        entry_point="double",
    )
    assert extract_code("        return 2 * n\n", p) == (
        "class Solution:\n    def double(self, n: int) -> int:\n        return 2 * n\n"
    )
    whole = "class Solution:\n    def double(self, n):\n        return n + n\n"
    assert extract_code(whole, p) == whole


# --- property tests: extraction never invents code -----------------------------------------

CODE_LINES = [
    "def max_of_list(numbers):",
    "    return max(numbers)",
    "import sys",
    "x = int(input())",
    "print(x * 2)",
    "    for i in range(3):",
    "        print(i)",
    "class Solution:",
    "# a comment",
    "if x:",
    "    pass",
    "",
]
PROSE_LINES = [
    "Here is the code:",
    "This works because max is linear.",
    "Sure!",
    "Explanation: we read the input.",
    "QUESTION:",
    "ANSWER:",
    "### Response",
]
NOISE = ["```", "```python", "```py", "~~~", "```bash", "<|im_end|>", "</think>", "<|endoftext|>"]

line = st.one_of(
    st.sampled_from(CODE_LINES),
    st.sampled_from(PROSE_LINES),
    st.sampled_from(NOISE),
    st.text(max_size=30),
)
completions = st.lists(line, max_size=25).map("\n".join)
problems = st.sampled_from([None, _stub(), next(iter(load_problems(FIXTURES / "humaneval.jsonl")))])
families = st.sampled_from([None, "apps", "mbpp", "humaneval", "chat"])


def _source_lines(completion: str, problem: Problem | None) -> list[str]:
    text = completion.replace("\r\n", "\n").replace("\r", "\n")
    starter = problem.starter_code if problem is not None else ""
    return [ln.rstrip() for ln in (text + "\n" + starter).split("\n")]


@settings(max_examples=300, deadline=None)
@given(completions, problems, families)
def test_every_line_comes_from_the_completion_or_the_starter(completion, problem, family):
    code = extract_code(completion, problem, family)
    sources = _source_lines(completion, problem)
    for out in code.split("\n"):
        if out.strip():
            # A line is whole, or cut at an end-of-turn token / opening fence: never new text.
            assert any(out.rstrip() in src for src in sources), (out, completion)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), families)
def test_arbitrary_text_never_invents_code(completion, family):
    code = extract_code(completion, None, family)
    sources = _source_lines(completion, None)
    assert all(any(out.rstrip() in s for s in sources) for out in code.split("\n") if out.strip())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([ln for ln in CODE_LINES if not ln.startswith(" ")]), min_size=1))
def test_output_lines_keep_their_order(lines):
    """Without a starter, the output is a contiguous run of the completion's lines, in order."""
    completion = "Here is the code:\n" + "\n".join(lines) + "\nThanks."
    code = extract_code(completion).rstrip("\n")
    assert code == "" or code in completion


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["x = 1", "print(x)", "def f():", "    return 2", "import os", ""]))
)
def test_parsing_code_is_returned_unchanged(lines):
    code = "\n".join(lines)
    try:
        ast.parse(code)
    except SyntaxError:
        return
    out = extract_code(code)
    assert out == (code.strip("\n").rstrip() + "\n" if code.strip() else "")
