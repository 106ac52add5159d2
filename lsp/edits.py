"""A candidate program -> the body to put into the stub, and where each of its tokens lands.

A candidate's ``code`` is a whole program (``def f(...): ...``, perhaps with imports and helper
functions). The body of the entry-point function is taken from it with ``ast``; the candidate's
own docstring is dropped (the user's is kept). **Imports and helpers go inside the body**, at its
start: module-level imports the function uses (unless the file already has the same import
statement at its top) and module-level functions, classes and assignments it uses (transitively).
The edit is then one contiguous range inside the function, which "next candidate" can replace
whole without leaving stray imports or helpers at the top of the file.

Token spans map each token of the completion onto the inserted lines, so the server can show
per-token values: ``(body line, start column, end column, token index)`` in characters.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass, field

from bcoder.core.types import Candidate

Span = tuple[int, int, int, int]  # (body line offset, start column, end column, token index)


@dataclass
class Body:
    """The lines to insert (without indentation) and their origin in the candidate's code."""

    lines: list[str]  # dedented body lines ("" for blank lines)
    origins: list[tuple[int, int]]  # per line: (code line index, columns removed from its start)


@dataclass
class Insertion:
    """A body placed at an indentation, with the tokens it shows."""

    lines: list[str]  # the lines as they appear in the document (indented)
    spans: list[Span] = field(default_factory=list)

    def text(self, eol: str = "\n") -> str:
        return eol.join(self.lines)


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.Import):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, ast.ImportFrom):
        return {a.asname or a.name for a in node.names}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _used_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _find_function(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The entry point: a top-level def first, then one inside a class or function."""
    defs = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, defs) and node.name == name:
            return node
    return next((n for n in ast.walk(tree) if isinstance(n, defs) and n.name == name), None)


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _norm(source: str) -> str:
    return " ".join(source.split())


def _segment(lines: list[str], node: ast.AST, out: Body) -> None:
    """Append the source lines of ``node`` (a statement) to ``out``, dedented to column 0."""
    first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
    decorators = getattr(node, "decorator_list", None)
    if decorators:
        first = decorators[0].lineno - 1
    col = node.col_offset  # a decorator's "@" is in the same column as its "def"
    for i in range(first, last + 1):
        line = lines[i]
        if i == first:
            cut = col
        else:
            cut = min(col, len(line) - len(line.lstrip(" \t"))) if line.strip() else len(line)
        out.lines.append(line[cut:].rstrip())
        out.origins.append((i, cut))


def extract_body(code: str, entry_point: str, file_imports: list[str] | None = None) -> Body | None:
    """The entry point's body from a candidate program (see the module docstring).

    Returns None when the code does not parse or has no function named ``entry_point`` and is not
    a bare body either (statements with a ``return``, as a model continuing a stub may write).
    """
    code = code.replace("\r\n", "\n").expandtabs(4)
    lines = code.split("\n")
    try:
        tree = ast.parse(code)
    except SyntaxError:
        tree = None
    fn = _find_function(tree, entry_point) if tree is not None else None
    if fn is None:
        return _bare_body(code)
    stmts = fn.body[1:] if len(fn.body) > 1 and _is_docstring(fn.body[0]) else fn.body
    if len(fn.body) == 1 and _is_docstring(fn.body[0]):
        return None  # only a docstring: nothing implemented
    have = {_norm(s) for s in file_imports or []}
    needed = set().union(*(_used_names(s) for s in stmts))
    prelude: list[ast.stmt] = []
    module = [n for n in tree.body if n is not fn] if fn in tree.body else []
    changed = True
    while changed:  # helpers can use further helpers and imports
        changed = False
        for node in module:
            if node in prelude or not (_bound_names(node) & needed):
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                source = ast.get_source_segment(code, node) or ""
                if _norm(source) in have:
                    continue
            prelude.append(node)
            needed |= _used_names(node)
            changed = True
    body = Body(lines=[], origins=[])
    for node in sorted(prelude, key=lambda n: n.lineno):
        _segment(lines, node, body)
    for stmt in stmts:
        _segment(lines, stmt, body)
    return body


def _bare_body(code: str) -> Body | None:
    """Code that is itself a function body (indented statements ending in a return)."""
    dedented = textwrap.dedent(code.strip("\n"))
    try:
        tree = ast.parse(dedented)
    except SyntaxError:
        return None
    if not tree.body or not any(isinstance(n, ast.Return) for n in ast.walk(tree)):
        return None
    if any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in tree.body):
        return None  # a program defining other functions, not a body
    body = Body(lines=[], origins=[])
    src_lines = code.split("\n")
    first_code = next(i for i, line in enumerate(src_lines) if line.strip())
    for i, line in enumerate(dedented.split("\n")):
        original = src_lines[first_code + i]
        body.lines.append(line.rstrip())
        body.origins.append((first_code + i, len(original) - len(line)))
    return body


def place(body: Body, indent: str, candidate: Candidate) -> Insertion:
    """Indent ``body`` and map the candidate's tokens onto it."""
    lines = [indent + line if line else "" for line in body.lines]
    return Insertion(lines=lines, spans=_token_spans(body, indent, candidate))


def _token_offsets(candidate: Candidate) -> list[tuple[int, int]]:
    """Each token's (start, end) character offsets in ``candidate.completion``."""
    texts = [t.text for t in candidate.tokens]
    out, pos = [], 0
    if "".join(texts) == candidate.completion:
        for t in texts:
            out.append((pos, pos + len(t)))
            pos += len(t)
        return out
    for t in texts:  # decoded token texts that do not concatenate exactly: align greedily
        found = candidate.completion.find(t, pos, pos + len(t) + 8) if t else -1
        start = found if found >= 0 else pos
        out.append((start, start + len(t)))
        pos = start + len(t)
    return out


def _token_spans(body: Body, indent: str, candidate: Candidate) -> list[Span]:
    """Where each token of the completion shows in the inserted lines.

    The code is the completion, a part of it (a fenced block), or the prompt followed by it; each
    inserted line is looked up in the completion in order, so lines the completion does not hold
    (the prompt's) are simply not mapped.
    """
    code_lines = candidate.code.replace("\r\n", "\n").expandtabs(4).split("\n")
    completion = candidate.completion.replace("\t", "    ")
    offsets = _token_offsets(candidate)
    spans: list[Span] = []
    cursor = 0
    for k, (code_idx, cut) in enumerate(body.origins):
        if not body.lines[k] or code_idx >= len(code_lines):
            continue
        text = code_lines[code_idx][cut:].rstrip()
        at = completion.find(text, cursor)
        if at < 0:
            continue
        cursor = at + len(text)
        shift = len(indent) if body.lines[k] else 0
        for ti, (s, e) in enumerate(offsets):
            lo, hi = max(s, at), min(e, at + len(text))
            if lo < hi:
                spans.append((k, lo - at + shift, hi - at + shift, ti))
    return spans
