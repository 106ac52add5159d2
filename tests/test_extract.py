"""Code extraction: fenced blocks, continuations, prose, chatter; it never invents code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bcoder.core.spec import Problem
from bcoder.execution import Executor, Outcome, isolation_level
from bcoder.problems.extract import extract_code, fenced_blocks
from bcoder.problems.load import load_problem, load_problems

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
    # A whole function in a block: no duplicate signature, but the starter's import is added
    # (spaced as in the prompt).
    full = "```python\ndef running_max(numbers: List[int]) -> List[int]:\n    return numbers\n```"
    assert extract_code(full, he, "chat") == (
        "from typing import List\n\n\n"
        "def running_max(numbers: List[int]) -> List[int]:\n    return numbers\n"
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


# --- a corpus of model outputs as they come: fences, prose, several blocks, stray fences ------

REMOVE_OCC = (
    "def remove_Occ(s, ch):\n"
    "    s = s.replace(ch, '', 1)\n"
    "    i = s.rfind(ch)\n"
    "    return s if i < 0 else s[:i] + s[i + 1 :]\n"
)
USAGE = 'print(remove_Occ("hello", "l"))\n'
CORPUS = {
    # smollm2 on mbpp:11 (the chat prompt): the program unfenced, then a block closed that was
    # never opened and an empty one opened (sampling stops at the second fence)
    "unfenced, then an empty trailing pair": f"{REMOVE_OCC}```\n\n```",
    "unfenced, then a closing fence only": f"{REMOVE_OCC}```\n",
    "unfenced, closing fence, explanation": (
        f"{REMOVE_OCC}```\n\nThis function removes the first and the last occurrence of ch."
    ),
    "unfenced, closing fence, prose, a usage block": (
        f"{REMOVE_OCC}```\n\nYou can call it like this:\n\n```python\n{USAGE}```\n"
    ),
    "prose, unfenced, closing fence, empty pair": (
        f"Here is the function:\n\n{REMOVE_OCC}```\n\n```"
    ),
    "one word before a fenced block": f"Solution\n```\n{REMOVE_OCC}```\n",
    "prose before an untagged block": f"Here is the code:\n```\n{REMOVE_OCC}```\nDone.",
    "fenced, then an empty trailing pair": f"```python\n{REMOVE_OCC}```\n\n```\n```",
    "fenced, then an unclosed empty fence": f"```python\n{REMOVE_OCC}```\n\n```",
    "fenced with prose around": (
        f"Sure! Here's a Python function:\n\n```python\n{REMOVE_OCC}```\n\n"
        "Explanation:\n1. `replace` drops the first one.\n2. `rfind` finds the last one.\n"
    ),
    "a helper, the solution and a usage block": (
        f"```python\ndef helper(x):\n    return x\n```\nThe solution:\n```python\n{REMOVE_OCC}"
        f"```\nExample:\n```python\n{USAGE}```"
    ),
    "unclosed fence cut at the length limit": f"```python\n{REMOVE_OCC}",
    "an empty pair, then the code unfenced": f"```python\n```\n{REMOVE_OCC}",
    "end of turn after the block": f"```python\n{REMOVE_OCC}```<|im_end|>\n```\n",
    "tildes": f"~~~python\n{REMOVE_OCC}~~~\n~~~\n~~~",
}
NO_CODE = {
    "only an empty pair": "```\n```",
    "an empty python block": "```python\n\n```",
    "prose and empty fences": "I am not sure.\n```\n```",
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_a_corpus_of_model_outputs(name: str):
    problem = load_problem("mbpp:11")
    assert extract_code(CORPUS[name], problem, "chat") == REMOVE_OCC
    # without the problem (no entry point to look for) the program is found all the same
    assert extract_code(CORPUS[name]) == REMOVE_OCC


@pytest.mark.parametrize("name", sorted(NO_CODE))
def test_outputs_without_code(name: str):
    assert extract_code(NO_CODE[name], load_problem("mbpp:11"), "chat") == ""


# --- the prompt's own definitions: helpers, imports, constants ------------------------------

HELPERS = {p.id: p for p in load_problems(FIXTURES / "humaneval_helpers.jsonl")}  # real rows
MAKE_PALINDROME = (
    "def make_palindrome(string: str) -> str:\n    for i in range(len(string)):\n"
    "        if is_palindrome(string[i:]):\n            return string + string[:i][::-1]\n"
    "    return string\n"
)
FIND_ZERO = (
    "def find_zero(xs: list):\n    lo, hi = -1.0, 1.0\n"
    "    while poly(xs, lo) * poly(xs, hi) > 0:\n        lo, hi = 2 * lo, 2 * hi\n"
    "    for _ in range(200):\n        mid = (lo + hi) / 2\n"
    "        if poly(xs, mid) * poly(xs, lo) > 0:\n            lo = mid\n"
    "        else:\n            hi = mid\n    return lo\n"
)
IS_PALINDROME = (
    'def is_palindrome(string: str) -> bool:\n    """ Test if given string is a palindrome """\n'
    "    return string == string[::-1]\n"
)


def _chat(code: str) -> str:
    return f"Here is the function:\n\n```python\n{code}```\n\nIt uses the helper."


def test_a_chat_answer_keeps_the_prompts_helper_function():
    """HumanEval/10 asks for make_palindrome and defines is_palindrome before it."""
    p = HELPERS["HumanEval/10"]
    code = extract_code(_chat(MAKE_PALINDROME), p, "chat")
    assert code == IS_PALINDROME + "\n\n" + MAKE_PALINDROME  # the prompt's text, then the answer
    assert extract_code(code, p, "chat") == code  # already whole: nothing added twice


def test_the_prompts_imports_and_helpers_come_first_and_a_redefinition_wins():
    """HumanEval/32 imports math and defines poly, which find_zero and the tests call."""
    p = HELPERS["HumanEval/32"]
    code = extract_code(_chat(FIND_ZERO), p, "chat")
    assert code.startswith("import math\n\n\ndef poly(xs: list, x: float):\n")
    assert code.endswith("\n\n\n" + FIND_ZERO)
    names = [getattr(n, "name", None) for n in ast.parse(code).body]
    assert names == [None, "poly", "find_zero"]
    # The answer's own poly and import win: nothing of the prompt's is added.
    own = (
        "import math\n\ndef poly(xs, x):\n    return sum(c * x ** i for i, c in enumerate(xs))\n\n"
    )
    assert extract_code(_chat(own + FIND_ZERO), p, "chat") == own + FIND_ZERO
    # Its own import of math only: poly comes back, the import does not (poly reads math only
    # when called, after the answer's import has run).
    alone = "import math\n" + FIND_ZERO
    code = extract_code(_chat(alone), p, "chat")
    assert code.count("import math") == 1 and code.index("def poly") < code.index("def find_zero")
    # A body-only continuation still gets the whole starter, helpers included, put in front.
    body = FIND_ZERO.split("\n", 1)[1]
    assert extract_code(body, p, "humaneval") == p.starter_code + body


def _starter(starter: str, entry: str = "target") -> Problem:
    return Problem(id="s", source="python", text="t", starter_code=starter, entry_point=entry)


def test_constants_classes_decorators_and_future_imports():
    starter = (
        "from __future__ import annotations\nfrom functools import lru_cache\n\n"
        "MOD = 10 ** 9 + 7  # the modulus\n\n\n"
        "class Node:\n    def __init__(self, v):\n        self.v = v\n\n\n"
        "@lru_cache(maxsize=None)\ndef fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n"
        "# what to write\ndef target(node: Node) -> int:\n"
    )
    answer = "from functools import lru_cache\n\ndef target(node):\n    return fib(node.v) % MOD\n"
    code = extract_code(_chat(answer), _starter(starter), "chat")
    # The answer's lru_cache import comes too late for the prompt's decorated fib: the prompt's
    # import stays; every other definition keeps the prompt's order, comments and spacing.
    assert code == starter.split("\n# what")[0].rstrip() + "\n\n" + answer
    ns: dict = {}
    exec(compile(code, "program", "exec"), ns)
    assert ns["target"](ns["Node"](10)) == 55
    # The answer's own __future__ import stays first.
    future = "from __future__ import annotations\n" + answer
    code = extract_code(_chat(future), _starter(starter), "chat")
    assert code.startswith("from __future__ import annotations\nfrom functools import lru_cache\n")
    assert code.count("from __future__") == 1
    exec(compile(code, "program", "exec"), {})


def test_starters_without_helpers_or_that_do_not_parse_add_nothing_else():
    leetcode = "class Solution:\n    def double(self, n: int) -> int:\n        "
    whole = "class Solution:\n    def double(self, n):\n        return n + n\n"
    assert extract_code(whole, _starter(leetcode, "double"), "chat") == whole
    # An editor's method stub (the file's imports, then an indented signature): imports only.
    method = "import re\n\n    def tokens(self, s: str) -> list[str]:\n"
    answer = "def tokens(self, s):\n    return re.findall(r'\\w+', s)\n"
    assert extract_code(answer, _starter(method, "tokens"), "chat") == "import re\n\n" + answer
    # An answer that does not parse, or does not define the entry point, is left alone.
    p = HELPERS["HumanEval/10"]
    for code in ("def make_palindrome(s):\n    return s +\n", "print(is_palindrome('aa'))\n"):
        assert extract_code(code, p, "chat") == code


def test_the_assembled_program_passes_in_the_sandbox_where_the_answer_alone_cannot():
    """End to end on the real HumanEval tests (judge mode: check() calls poly too)."""
    if isolation_level() == "rlimits-only":
        pytest.skip("needs Linux namespaces (bubblewrap or unshare)")
    with Executor(workers=1, timeout=10.0) as ex:
        for pid, answer in (("HumanEval/10", MAKE_PALINDROME), ("HumanEval/32", FIND_ZERO)):
            p = HELPERS[pid]
            alone = ex.run(answer, p.tests)
            assert alone.outcome is Outcome.RUNTIME_ERROR and "NameError" in alone.detail, pid
            whole = ex.run(extract_code(_chat(answer), p, "chat"), p.tests)
            assert whole.outcome is Outcome.PASS, (pid, whole.to_dict())


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
