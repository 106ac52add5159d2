"""One converter per dataset format: a raw row (or file) in, a :class:`Problem` out.

The loaders in :mod:`bcoder.problems.load` stream rows and call these; a malformed row raises
:class:`RowError` naming the field, which the loader turns into a message naming file and line.

Conventions shared by every format:
- ``Problem.id`` is unique across sources: ``apps/<split>/<problem_id>``, ``mbpp/<task_id>``,
  HumanEval's own ``HumanEval/<n>``; text and Python problems use the file's stem.
  The dataset's own id is kept in ``metadata["dataset_id"]``.
- ``solutions`` are complete programs with ``\\n`` line endings.
- ``example_tests`` are tests a user could see in the statement: MBPP's first test, APPS
  examples parsed from the question, HumanEval / stub doctests. ``metadata["example_tests_from"]``
  says where they came from.
"""

from __future__ import annotations

import ast
import builtins
import doctest
import json
import keyword
import re
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem, TestSpec


class RowError(Exception):
    """A malformed field in one row; the loader adds the file and line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field '{field}': {message}")
        self.field = field
        self.message = message


# --- field helpers -------------------------------------------------------------------------


def _str_field(row: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = row.get(name)
    if value is None:
        if required:
            raise RowError(name, "missing")
        return ""
    if not isinstance(value, str):
        raise RowError(name, f"expected a string, got {type(value).__name__}")
    return value.replace("\r\n", "\n")


def _json_field(row: dict[str, Any], name: str) -> Any:
    """A field that holds JSON as a string (codeparrot APPS) or already parsed; '' -> None."""
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise RowError(name, f"not valid JSON ({err.msg} at char {err.pos})") from None
    return value


def _str_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RowError(name, "expected a list of strings")
    return [v.replace("\r\n", "\n") for v in value]


def _tests_or_none(data: Any, name: str) -> TestSpec | None:
    """A TestSpec from its JSON form; no tests at all (empty lists) -> None, never a vacuous spec."""
    if data is None:
        return None
    try:
        spec = TestSpec.from_dict(data, where=name)
    except BcoderError as err:
        raise RowError(name, str(err).removeprefix(f"{name}: ")) from None
    return spec if len(spec) else None


# --- APPS ----------------------------------------------------------------------------------

_EXAMPLE_HEAD = re.compile(r"^-----\s*Examples?\s*-----[ \t]*$", re.M)
_SECTION = re.compile(r"^-----[^\n]*-----[ \t]*$", re.M)
_SAMPLE = re.compile(r"^-----\s*Sample (Input|Output)[^-]*-----[ \t]*$", re.M)
_IO_LABEL = re.compile(r"^(Input|Output)[ \t]*:?[ \t]*$", re.M)


def parse_stdio_examples(question: str) -> TestSpec | None:
    """The stdin/stdout examples printed in an APPS (Codeforces / AtCoder / CodeChef) statement.

    Recognises "-----Example(s)-----" sections made of "Input" / "Output" blocks and AtCoder's
    "-----Sample Input N-----" / "-----Sample Output N-----" pairs. Returns None when the
    statement has no examples in these forms (e.g. LeetCode-style call-based problems). The
    parse is conservative: an unpaired block drops the whole section rather than guess.
    """
    pairs: list[tuple[str, str]] = []
    for head in _EXAMPLE_HEAD.finditer(question):
        end = _SECTION.search(question, head.end())
        body = question[head.end() : end.start() if end else len(question)]
        labels = list(_IO_LABEL.finditer(body))
        blocks = [
            (m.group(1), body[m.end() : labels[i + 1].start() if i + 1 < len(labels) else None])
            for i, m in enumerate(labels)
        ]
        kinds = [k for k, _ in blocks]
        if not blocks or kinds != ["Input", "Output"] * (len(blocks) // 2):
            return None
        pairs += [
            (_block(blocks[i][1]), _block(blocks[i + 1][1])) for i in range(0, len(blocks), 2)
        ]
    samples = list(_SAMPLE.finditer(question))
    for i in range(0, len(samples) - 1, 2):
        inp, out = samples[i], samples[i + 1]
        if (inp.group(1), out.group(1)) != ("Input", "Output"):
            return None
        out_end = samples[i + 2].start() if i + 2 < len(samples) else len(question)
        # AtCoder puts the explanation right after the output, after a blank line.
        output = question[out.end() : out_end].lstrip("\n").split("\n\n", 1)[0]
        pairs.append((_block(question[inp.end() : out.start()]), _block(output)))
    pairs = [(i, o) for i, o in pairs if i.strip() and o.strip()]
    if not pairs:
        return None
    return TestSpec(inputs=tuple(i for i, _ in pairs), outputs=tuple(o for _, o in pairs))


def _block(text: str) -> str:
    text = text.strip("\n")
    return text.rstrip() + "\n" if text.strip() else ""


def apps_row(row: dict[str, Any], split_hint: str | None = None) -> Problem:
    """A codeparrot-schema APPS row (``solutions`` / ``input_output`` as JSON strings)."""
    pid = row.get("problem_id")
    if not isinstance(pid, (int, str)) or isinstance(pid, bool) or pid == "":
        raise RowError("problem_id", "missing or not an integer / string")
    question = _str_field(row, "question")
    starter = _str_field(row, "starter_code", required=False)
    tests = _tests_or_none(_json_field(row, "input_output"), "input_output")
    sols = _json_field(row, "solutions")
    solutions = [] if sols is None else _str_list(sols, "solutions")
    difficulty = row.get("difficulty")
    if difficulty is not None and not isinstance(difficulty, str):
        raise RowError("difficulty", "expected a string")
    split = row.get("split") or split_hint
    if split is not None and not isinstance(split, str):
        raise RowError("split", "expected a string")
    metadata: dict[str, Any] = {"dataset_id": pid}
    for key in ("url", "valid"):
        if row.get(key) is not None:
            metadata[key] = row[key]
    if row.get("_difficulty_inferred_from_id"):
        metadata["difficulty_inferred"] = True
    if row.get("_tests_are_examples_only"):
        # Only the statement's examples are known: they are both the example and the full tests.
        # Evaluation on these overstates pass rates; eval reports should say so.
        metadata["tests_are_examples_only"] = True
        metadata["example_tests_from"] = "dataset"
        example_tests = tests
    elif tests is None or tests.kind == "stdio":
        example_tests = parse_stdio_examples(question)
        if example_tests is not None:
            metadata["example_tests_from"] = "question"
    else:
        example_tests = None
    return Problem(
        id=apps_id(pid, split),
        source="apps",
        text=question,
        starter_code=starter,
        tests=tests,
        example_tests=example_tests,
        solutions=solutions,
        difficulty=difficulty,
        split=split,
        entry_point=tests.fn_name if tests is not None else None,
        metadata=metadata,
    )


def apps_id(pid: int | str, split: str | None) -> str:
    return f"apps/{split}/{pid}" if split else f"apps/{pid}"


# --- MBPP ----------------------------------------------------------------------------------

# Standard MBPP splits by task id (Austin et al., 2021).
_MBPP_SPLITS = ((1, 10, "prompt"), (11, 510, "test"), (511, 600, "validation"), (601, 974, "train"))


def mbpp_split(task_id: int) -> str | None:
    for lo, hi, name in _MBPP_SPLITS:
        if lo <= task_id <= hi:
            return name
    return None


_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\s*\(")


def guess_entry_point(asserts: list[str], code: str = "") -> str | None:
    """The function the asserts test: the first one called that ``code`` defines, else the first
    called name that is not a builtin or keyword."""
    defined = set(re.findall(r"^\s*def\s+(\w+)", code, re.M))
    fallback = None
    for test in asserts:
        for name in _CALL.findall(test):
            if name in defined:
                return name
            if fallback is None and not hasattr(builtins, name) and not keyword.iskeyword(name):
                fallback = name
    return fallback


def mbpp_row(row: dict[str, Any]) -> Problem:
    """An MBPP row (original release; the sanitized release's ``prompt`` / ``test_imports`` too)."""
    task_id = row.get("task_id")
    if not isinstance(task_id, int) or isinstance(task_id, bool):
        raise RowError("task_id", "missing or not an integer")
    text = _str_field(row, "text" if "text" in row else "prompt")
    code = _str_field(row, "code", required=False)
    asserts = _str_list(row.get("test_list"), "test_list")
    if not asserts:
        raise RowError("test_list", "empty")
    setup = _str_field(row, "test_setup_code", required=False)
    if not setup and row.get("test_imports"):
        setup = "\n".join(_str_list(row["test_imports"], "test_imports"))
    challenge = row.get("challenge_test_list") or []
    metadata: dict[str, Any] = {"dataset_id": task_id, "example_tests_from": "dataset"}
    if challenge:
        metadata["challenge_tests"] = _str_list(challenge, "challenge_test_list")
    return Problem(
        id=f"mbpp/{task_id}",
        source="mbpp",
        text=text,
        tests=TestSpec(asserts=tuple(asserts), setup=setup),
        # The first test, as in the usual --filter-examples setting (all three are in the prompt).
        example_tests=TestSpec(asserts=(asserts[0],), setup=setup),
        solutions=[code] if code.strip() else [],
        split=mbpp_split(task_id),
        entry_point=guess_entry_point(asserts, code),
        metadata=metadata,
    )


# --- HumanEval and Python stubs ------------------------------------------------------------


def humaneval_row(row: dict[str, Any]) -> Problem:
    """A HumanEval row: ``task_id, prompt, entry_point, canonical_solution, test``."""
    task_id = _str_field(row, "task_id")
    prompt = _str_field(row, "prompt")
    entry = _str_field(row, "entry_point")
    if not entry.isidentifier():
        raise RowError("entry_point", f"not a Python identifier: {entry!r}")
    test = _str_field(row, "test")
    canonical = _str_field(row, "canonical_solution", required=False)
    try:
        stub = parse_stub(prompt, entry)
    except BcoderError:
        stub = None  # an unusual prompt: keep it whole as the starter code
    metadata: dict[str, Any] = {"dataset_id": task_id, "prompt": prompt}
    examples = doctest_tests(stub["docstring"]) if stub else None
    if examples is not None:
        metadata["example_tests_from"] = "docstring"
    return Problem(
        id=task_id,
        source="humaneval",
        text=stub["docstring"] if stub else prompt,
        starter_code=stub["signature"] if stub else prompt,
        tests=TestSpec(asserts=(f"{test}\n\ncheck({entry})\n",)),
        example_tests=examples,
        solutions=[prompt + canonical] if canonical.strip() else [],
        split="test",
        entry_point=entry,
        metadata=metadata,
    )


def _is_stub(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A docstring and nothing else (``pass`` or ``...`` after it allowed)."""
    body = fn.body
    if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
        return False
    if not isinstance(body[0].value.value, str):
        return False
    return all(
        isinstance(s, ast.Pass)
        or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and s.value.value is ...)
        for s in body[1:]
    )


def parse_stub(source: str, name: str | None = None, where: str = "<source>") -> dict[str, str]:
    """Find the function stub (docstring, no body) in ``source``.

    Returns ``name``, ``signature`` (the source up to and including the ``def`` line(s): imports,
    helpers and decorators before it are kept), ``docstring`` (cleaned) and ``prompt`` (the source
    up to the end of the docstring, HumanEval style). With ``name`` the function must exist and
    have a docstring; without, the file must hold exactly one stub.
    """
    source = source.replace("\r\n", "\n")
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise BcoderError(f"{where}: not valid Python (line {err.lineno}: {err.msg})") from None
    fns = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if name is not None:
        named = [f for f in fns if f.name == name and ast.get_docstring(f, clean=False) is not None]
        if not named:
            raise BcoderError(f"{where}: no function {name!r} with a docstring")
        fn = named[0]
    else:
        stubs = [f for f in fns if _is_stub(f)]
        if not stubs:
            raise BcoderError(f"{where}: no function with a docstring and no body to implement")
        if len(stubs) > 1:
            names = ", ".join(f.name for f in stubs)
            raise BcoderError(
                f"{where}: several function stubs ({names}); name one as FILE.py:NAME"
            )
        fn = stubs[0]
    lines = source.splitlines(keepends=True)
    doc = fn.body[0]
    head = "".join(lines[: doc.lineno - 1]) + lines[doc.lineno - 1][: doc.col_offset]
    end_line = doc.end_lineno or doc.lineno
    return {
        "name": fn.name,
        "signature": head.rstrip() + "\n",
        "docstring": ast.get_docstring(fn) or "",
        "prompt": "".join(lines[:end_line]).rstrip("\n") + "\n",
    }


def doctest_tests(docstring: str) -> TestSpec | None:
    """``>>> expr`` / expected-value pairs of a docstring as asserts (others are skipped)."""
    try:
        examples = doctest.DocTestParser().get_examples(docstring)
    except ValueError:  # inconsistent indentation in the docstring
        return None
    asserts = []
    for ex in examples:
        src, want = ex.source.strip(), ex.want.strip()
        try:
            ast.parse(src, mode="eval")
            ast.parse(want, mode="eval")
        except SyntaxError:
            continue
        if "\n" not in src and "\n" not in want:
            asserts.append(f"assert {src} == {want}")
    return TestSpec(asserts=tuple(asserts)) if asserts else None


def python_stub(source: str, problem_id: str, name: str | None = None, where: str = "") -> Problem:
    """A Python file with a function stub, as an editor sends it."""
    stub = parse_stub(source, name, where or problem_id)
    examples = doctest_tests(stub["docstring"])
    metadata: dict[str, Any] = {"prompt": stub["prompt"]}
    if examples is not None:
        metadata["example_tests_from"] = "docstring"
        metadata["tests_from"] = "docstring"
    return Problem(
        id=problem_id,
        source="python",
        text=stub["docstring"],
        starter_code=stub["signature"],
        tests=examples,
        example_tests=examples,
        entry_point=stub["name"],
        metadata=metadata,
    )


def text_problem(text: str, problem_id: str, tests: TestSpec | None) -> Problem:
    """A plain statement with optional tests (the user's own: nothing hidden)."""
    entry = None
    if tests is not None:
        entry = tests.fn_name if tests.kind == "call" else None
        if tests.kind == "assert":
            entry = guess_entry_point(list(tests.asserts or ()))
    return Problem(
        id=problem_id,
        source="text",
        text=text.replace("\r\n", "\n").strip() + "\n",
        tests=tests,
        entry_point=entry,
    )
