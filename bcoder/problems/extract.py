"""Extract the program from a model's completion.

Rules, in order:
1. Line endings become ``\\n``; anything up to a closing ``</think>`` is dropped; the text is cut
   at the first end-of-turn token (``<|im_end|>``, ``<|endoftext|>``, ``</s>``, ...) and at a line
   that starts a new prompt (``QUESTION:``, ``ANSWER:``, ``[DONE]``, ``### Instruction`` ...).
2. Fenced blocks (````` ``` ````` or ``~~~``, an unterminated last fence runs to the end): the
   block that defines the entry point wins, then one that parses, then the longest; blocks in
   another language (``bash``, ``text``, ...) only when there is no Python or untagged block.
   Code before a bare first fence competes as an untagged block (a program written unfenced,
   then a closing fence: :func:`leading_code`); when every block is empty, the text outside
   the fences is taken as unfenced.
3. No fence: the text is code, except that prose lines at its start and end are dropped when
   the whole does not parse (the smallest cut that parses; otherwise every prose line at both
   ends goes). Code is never edited, reindented or reordered.
4. A completion that continues the starter code (its first line is indented and it does not
   define the entry point, e.g. a HumanEval body) gets the starter code put in front. A program
   that defines the entry point itself gets the starter's own definitions that it lacks
   (:func:`with_prompt_definitions`: imports, helper functions and classes, constants; e.g.
   ``is_palindrome`` of HumanEval/10, which asks for ``make_palindrome``).

So every line of the result comes from the completion or the problem's starter code.
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass

from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem

_END_TOKENS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "<|EOT|>",
    "<|end|>",
    "<|im_start|>",
    "<|file_separator|>",
    "<end_of_turn>",
    "</s>",
)


def cut_at_end(text: str) -> str:
    """``text`` up to its first end-of-turn token (a raw completion may hold one: nothing after
    it is the answer)."""
    cut = min((i for i in (text.find(t) for t in _END_TOKENS) if i >= 0), default=len(text))
    return text[:cut]


_STOP_LINE = re.compile(
    r"^(QUESTION:|ANSWER:|\[DONE\]|\[BEGIN\]|\[END\]|### (Instruction|Response|Input)\b)"
)
_OPEN_FENCE = re.compile(r"(`{3,}|~{3,})[ \t]*([A-Za-z0-9_+#.-]*)[ \t]*$")
_CLOSE_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_BARE_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*$")
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "python2", "sage"}
_BLOCK_OPENER = re.compile(
    r"^(async\s+)?(def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b.*:\s*(#.*)?$"
)
_MAX_TRIM = 12  # prose lines tried at each end before giving up on finding a parse


@dataclass(frozen=True)
class Block:
    """One fenced block of a completion."""

    lang: str  # the info string's first word, lower case ('' when untagged)
    code: str
    closed: bool


def fenced_blocks(text: str) -> list[Block]:
    """The fenced code blocks of ``text`` in order (an unterminated last one included)."""
    blocks: list[Block] = []
    fence, lang, body = "", "", []
    for line in text.split("\n"):
        if not fence:
            m = _OPEN_FENCE.search(line)
            if m:
                fence, lang, body = m.group(1), m.group(2).lower(), []
        else:
            m = _CLOSE_FENCE.match(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                blocks.append(Block(lang, "\n".join(body), True))
                fence = ""
            else:
                body.append(line)
    if fence:
        blocks.append(Block(lang, "\n".join(body), False))
    return blocks


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: NUL bytes
        return False
    return True


def defines(code: str, name: str | None) -> bool:
    """Whether ``code`` defines a function or class called ``name``."""
    if not name:
        return False
    return (
        re.search(rf"^[ \t]*(async[ \t]+)?(def|class)[ \t]+{re.escape(name)}\b", code, re.M)
        is not None
    )


def leading_code(text: str) -> Block | None:
    """The code before a completion's first fence when that fence is a bare one that closes it.

    An instruct model may write its program unfenced and then close a block it never opened,
    often opening an empty one after it (``def f(x): ...\\n```\\n\\n```\\n``: sampling stops at
    the second fence). The text before a bare first fence (no info string, nothing else on its
    line) is then a candidate block too, when it holds more than prose.
    """
    lines = text.split("\n")
    first = next((i for i, ln in enumerate(lines) if _OPEN_FENCE.search(ln)), None)
    if first is None or not _BARE_FENCE.match(lines[first]):
        return None
    code = strip_prose("\n".join(lines[:first]).strip("\n"))
    # "Sure" or "Solution" parse as Python too: code has an operator, a call or a block.
    return Block("", code, True) if re.search(r"[=()\[\]:]", code) else None


def _choose(blocks: list[Block], entry: str | None) -> str:
    python = [b for b in blocks if b.lang in _PYTHON_TAGS and b.code.strip()]
    pool = python or [b for b in blocks if b.code.strip()]
    if not pool:
        return ""
    # max() keeps the first of equals, so ties go to the earlier block.
    best = max(pool, key=lambda b: (defines(b.code, entry), parses(b.code), len(b.code.strip())))
    return best.code


def _outside_fences(text: str) -> str:
    """``text`` without its fence lines and fenced bodies: what is left when every block is
    empty (``def f(x): ...\\n```python\\n```\\n``)."""
    kept, fence = [], ""
    for line in text.split("\n"):
        if not fence:
            m = _OPEN_FENCE.search(line)
            if m:
                fence = m.group(1)
                head = line[: m.start()]
                if head.strip():
                    kept.append(head)
            else:
                kept.append(line)
        else:
            m = _CLOSE_FENCE.match(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = ""
    return "\n".join(kept)


def _is_prose(line: str) -> bool:
    """A non-empty, unindented line that is not Python on its own."""
    s = line.strip()
    if not s or line[0] in " \t" or s.startswith(("#", "@")) or _BLOCK_OPENER.match(s):
        return False
    return not parses(s)


def strip_prose(text: str) -> str:
    """Drop prose lines at the start and end of unfenced code that does not parse as is."""
    if parses(text):
        return text
    lines = text.split("\n")

    def run(indices: range) -> int:  # leading (or trailing) lines that are prose or blank
        n = 0
        for i in indices:
            if lines[i].strip() and not _is_prose(lines[i]):
                break
            n += 1
        return n

    lead = run(range(len(lines)))
    if lead == len(lines):
        return ""
    trail = run(range(len(lines) - 1, -1, -1))
    for a in range(min(lead, _MAX_TRIM) + 1):
        for b in range(min(trail, _MAX_TRIM) + 1):
            if (a < lead and not lines[a].strip()) or (b < trail and not lines[-1 - b].strip()):
                continue  # cutting at a blank line changes nothing: try the next prose line
            candidate = "\n".join(lines[a : len(lines) - b])
            if parses(candidate):
                return candidate
    return "\n".join(lines[lead : len(lines) - trail])


def _with_starter(code: str, problem: Problem | None, family: str | None) -> str:
    if problem is None or not problem.starter_code.strip():
        return code
    starter, entry = problem.starter_code, problem.entry_point
    first = next((ln for ln in code.split("\n") if ln.strip()), "")
    if not defines(code, entry) and (first[:1] in (" ", "\t") or (family == "humaneval" and entry)):
        if not defines(starter, entry) and not starter.rstrip().endswith(":"):
            return code  # the starter is not a signature to continue
        return starter.rstrip() + "\n" + code
    return with_prompt_definitions(code, problem)


# --- the prompt's own definitions ----------------------------------------------------------

_DEFINITION = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
)
# Nodes with a scope of their own: names bound inside them are not the module's.
_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def _bound_names(node: ast.stmt) -> set[str]:
    """The module-level names a top-level statement binds (not those inside its functions)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {a.asname or a.name.split(".")[0] for a in node.names if a.name != "*"}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    names: set[str] = set()
    todo: list[ast.AST] = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.add(n.id)
        elif n is not node and isinstance(n, ast.stmt) and isinstance(n, _DEFINITION):
            names |= _bound_names(n)  # a def or import inside an if / try block
        elif not isinstance(n, _SCOPES):
            todo.extend(ast.iter_child_nodes(n))
    return names


def _used_when_defined(node: ast.stmt) -> set[str]:
    """Names a definition reads while it is being defined (decorators, defaults, annotations,
    base classes, class bodies, assigned values): these must exist before it."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        parts = [*node.decorator_list, *args.defaults, *args.kw_defaults, node.returns]
        parts += [a.annotation for a in every if a is not None]
    elif isinstance(node, ast.ClassDef):
        parts = [*node.decorator_list, *node.bases, *node.keywords]
        return {n for p in parts for n in _loads(p)}.union(
            *(_used_when_defined(s) for s in node.body)
        )
    else:
        parts = [node]
    return {n for p in parts if p is not None for n in _loads(p)}


def _loads(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _is_future(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module == "__future__"


def _first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _defines_entry(node: ast.stmt, entry: str | None) -> bool:
    """Whether ``node`` is (or holds, as ``class Solution`` does) the entry point's definition."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return bool(entry) and any(isinstance(n, kinds) and n.name == entry for n in ast.walk(node))


def _parse_starter(starter: str, entry: str | None) -> tuple[list[ast.stmt], list[str], int]:
    """The starter's top-level statements before the entry point's definition, its lines, and
    the index of the line where that definition starts (the number of lines when it has none).

    A starter usually ends with the entry point's ``def`` line (HumanEval's signature, a
    LeetCode ``class Solution``): it is parsed with a ``pass`` body added, else as the longest
    run of leading lines that parses (the rest being the signature).
    """
    text = starter.replace("\r\n", "\n").rstrip()
    lines = text.split("\n")
    indent = lines[-1][: len(lines[-1]) - len(lines[-1].lstrip())]
    prefixes = ("\n".join(lines[:k]) for k in range(min(len(lines), 200) - 1, 0, -1))
    for n, source in enumerate(itertools.chain([text, f"{text}\n{indent}    pass"], prefixes)):
        try:
            nodes = ast.parse(source).body
        except (SyntaxError, ValueError):
            continue
        target = next((i for i, node in enumerate(nodes) if _defines_entry(node, entry)), None)
        if target is None and n == 1 and nodes:  # the def we gave a body, whatever its name
            target = len(nodes) - 1
        if target is not None:
            return nodes[:target], lines, _first_line(nodes[target]) - 1
        return nodes, lines, len(source.split("\n")) if n > 1 else len(lines)
    return [], lines, len(lines)


def with_prompt_definitions(code: str, problem: Problem | None) -> str:
    """``code`` with the problem's own definitions that it does not make put in front.

    A starter (HumanEval prompt, editor file, LeetCode stub) may define what the entry point
    relies on: imports (``from typing import List``), helper functions and classes, constants.
    A chat model often answers with the entry point alone; the program that is run and shown is
    then the starter's top-level imports, functions, classes and assignments from before the
    entry point, in the starter's order and with its comments and spacing, followed by the
    answer (after its ``from __future__`` imports, which must come first). A definition the
    answer makes itself is left out -- the answer's wins -- unless a kept one needs it while
    being defined (a decorator, a base class), since the answer's comes only after. Nothing is
    added to a program that does not parse or does not define the entry point; a program that
    already has every definition is returned unchanged (so this may be applied twice).
    """
    if (
        problem is None
        or not problem.starter_code.strip()
        or not defines(code, problem.entry_point)
    ):
        return code
    try:
        answer = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    nodes, lines, stop = _parse_starter(problem.starter_code, problem.entry_point)
    pool = [n for n in nodes if isinstance(n, _DEFINITION) and _bound_names(n)]
    have = set().union(*(_bound_names(n) for n in answer.body))
    keep = [n for n in pool if _bound_names(n) - have]
    while True:  # what the kept ones use while being defined stays too
        needed = set().union(*(_used_when_defined(n) for n in keep))
        more = [n for n in pool if n not in keep and _bound_names(n) & needed]
        if not more:
            break
        keep += more
    if not keep:
        return code
    keep.sort(key=pool.index)
    keep.sort(key=lambda n: not _is_future(n))  # stable: __future__ imports first
    out: list[str] = []
    for node in keep:
        i = nodes.index(node)
        start = _first_line(node)
        gap = lines[(nodes[i - 1].end_lineno or 0) if i else 0 : start - 1]
        if not out:  # no blank lines before the first one
            gap = gap[next((k for k, ln in enumerate(gap) if ln.strip()), len(gap)) :]
        out += gap + lines[start - 1 : node.end_lineno]
    gap = lines[nodes[-1].end_lineno or 0 : stop] if stop < len(lines) else ["", ""]
    prelude = "\n".join(out) + "\n" * (1 + sum(not line.strip() for line in gap))
    futures = [n.end_lineno or n.lineno for n in answer.body if _is_future(n)]
    split = max(futures, default=0)  # the answer's ``from __future__`` imports stay first
    code_lines = code.split("\n")
    before = "".join(line + "\n" for line in code_lines[:split])
    return before + prelude + "\n".join(code_lines[split:])


def extract_code(completion: str, problem: Problem | None = None, family: str | None = None) -> str:
    """The program in ``completion`` (see the module docstring); '' when there is none.

    ``family`` is the prompt family the completion answers (``apps``, ``mbpp``, ``humaneval``,
    ``chat``) or None; with ``humaneval`` an unindented completion that does not define the entry
    point is still taken as the continuation of the signature.
    """
    if family is not None and family not in ("apps", "mbpp", "humaneval", "chat"):
        raise BcoderError(f"unknown prompt family {family!r}")
    text = completion.replace("\r\n", "\n").replace("\r", "\n")
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    text = cut_at_end(text)
    lines = text.split("\n")
    stop = next((i for i, ln in enumerate(lines) if _STOP_LINE.match(ln)), len(lines))
    text = "\n".join(lines[:stop])
    entry = problem.entry_point if problem is not None else None
    blocks = fenced_blocks(text)
    if blocks:
        lead = leading_code(text)
        code = _choose(([lead] if lead else []) + blocks, entry)
        if not code.strip():  # every block is empty: the code is outside them, if anywhere
            code = strip_prose(_outside_fences(text).strip("\n"))
    else:
        code = strip_prose(text)
    code = code.strip("\n")
    if not code.strip():
        return ""
    return _with_starter(code, problem, family).rstrip() + "\n"
