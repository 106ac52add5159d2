"""Python functions in an editor buffer, found with tree-sitter: which are stubs, where a body goes.

tree-sitter (not ``ast``) because a buffer being edited is often not valid Python: an empty body
(``def f(x):`` followed by nothing) parses as an empty ``block``, and an error elsewhere in the file
does not hide the functions around it. Positions here are ``(line, column)`` in *characters* of
the buffer's lines (tree-sitter's byte columns are converted); :meth:`Buffer.units` / :meth:`Buffer.column`
convert to and from the client's columns (UTF-16 code units by default; UTF-8 or UTF-32 when the
client negotiated them).

A *stub* is a function whose body is empty, ``pass``, ``...`` or only its docstring (comments
allowed). Methods and nested functions count, and have a dotted ``qualname`` (``Stack.push``,
``outer.inner``) by which the server finds them again after the buffer changed.
"""

from __future__ import annotations

import ast
import doctest
import inspect
from dataclasses import dataclass
from functools import lru_cache

from bcoder.core.spec import Problem, TestSpec

Pos = tuple[int, int]  # (line, character column)


@lru_cache(maxsize=1)
def _parser():
    import tree_sitter_python
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_python.language()))


@dataclass(frozen=True)
class FunctionInfo:
    """A ``def`` in the buffer and the places an edit needs."""

    name: str
    qualname: str  # dotted path through classes and functions: "Stack.push", "outer.inner"
    kind: str  # function (top level) | method | nested
    start: Pos  # the first decorator, else the ``def`` (or ``async``) keyword
    end: Pos  # end of the function's last statement
    def_line: int  # the line of the ``def`` keyword
    indent: str  # the ``def`` line's indentation
    body_indent: str  # indentation for statements of the body
    docstring: str | None  # cleaned (inspect.cleandoc); None without one
    replace_start: Pos  # an implementation replaces [replace_start, replace_end) ...
    replace_end: Pos  # ... i.e. everything after the docstring (or after the ``:`` line)
    body_line: int  # the line where the first inserted statement will be
    is_stub: bool
    signature: str  # decorators + ``def ...:`` dedented to column 0
    prompt: str  # signature + docstring dedented to column 0 (the HumanEval-style prompt)
    doc_range: tuple[Pos, Pos] | None = None  # the docstring literal, quotes included

    def contains(self, pos: Pos) -> bool:
        """Whether ``pos`` is on one of the function's lines (decorators to last statement)."""
        return self.start[0] <= pos[0] <= self.end[0]


class Buffer:
    """A parsed snapshot of a document's text."""

    def __init__(self, text: str, encoding: str = "utf-16") -> None:
        self.text = text
        self.encoding = encoding  # the client's position encoding: utf-16, utf-8 or utf-32
        self.lines = text.split("\n")
        self._bytes = text.encode("utf-8")
        self.tree = _parser().parse(self._bytes)
        self.eol = "\r\n" if "\r\n" in text else "\n"

    def pos(self, point) -> Pos:
        """tree-sitter (row, byte column) -> (line, character column)."""
        row, col = point
        line = self.lines[row] if row < len(self.lines) else ""
        return row, len(line.encode("utf-8")[:col].decode("utf-8", errors="ignore"))

    def node_text(self, node) -> str:
        return self._bytes[node.start_byte : node.end_byte].decode("utf-8", errors="replace")

    def units(self, line: int, col: int) -> int:
        """Character column ``col`` of ``line`` in the client's units."""
        return to_client(self.lines[line] if line < len(self.lines) else "", col, self.encoding)

    def column(self, line: int, units: int) -> int:
        """A client column of ``line`` as a character column."""
        return from_client(self.lines[line] if line < len(self.lines) else "", units, self.encoding)

    def line_end(self, line: int) -> Pos:
        """The end of ``line`` without trailing whitespace (or a carriage return)."""
        return line, len(self.lines[line].rstrip())

    def functions(self) -> list[FunctionInfo]:
        """Every function in the buffer, outer before inner, in source order."""
        out: list[FunctionInfo] = []
        self._walk(self.tree.root_node, [], out)
        return out

    def _walk(self, node, scope: list[tuple[str, str]], out: list[FunctionInfo]) -> None:
        for child in node.named_children:
            if child.type == "function_definition":
                info = self._function(child, scope)
                if info is not None:
                    out.append(info)
                    self._walk(child, [*scope, ("function", info.name)], out)
                    continue
            elif child.type == "class_definition":
                name = child.child_by_field_name("name")
                if name is not None:
                    self._walk(child, [*scope, ("class", self.node_text(name))], out)
                    continue
            self._walk(child, scope, out)

    def _function(self, node, scope: list[tuple[str, str]]) -> FunctionInfo | None:
        name_node = node.child_by_field_name("name")
        block = node.child_by_field_name("body")
        colon = next((c for c in node.children if c.type == ":"), None)
        if name_node is None or block is None or colon is None:
            return None
        name = self.node_text(name_node)
        outer = (
            node.parent
            if node.parent is not None and node.parent.type == "decorated_definition"
            else node
        )
        start = self.pos(outer.start_point)
        def_line = self.pos(node.start_point)[0]
        indent = _indent(self.lines[def_line])
        kind = "function" if not scope else ("method" if scope[-1][0] == "class" else "nested")
        stmts = [c for c in block.named_children if c.type != "comment"]
        doc_node = stmts[0] if stmts and _is_docstring(stmts[0]) else None
        docstring = self._docstring(doc_node)
        if docstring is None:
            doc_node = None
        rest = stmts[1:] if doc_node is not None else stmts
        is_stub = not node.has_error and all(_is_placeholder(s) for s in rest)
        header_line = self.pos(colon.end_point)[0]
        if doc_node is not None:
            replace_start = self.pos(doc_node.end_point)
        elif stmts and self.pos(stmts[0].start_point)[0] == header_line:
            replace_start = self.pos(colon.end_point)  # one-liner: def f(): pass
        else:
            replace_start = self.line_end(header_line)
        replace_end = max(replace_start, self.pos(block.end_point)) if rest else replace_start
        first = stmts[0] if stmts else None
        if first is not None and self.pos(first.start_point)[0] > header_line:
            body_indent = _indent(self.lines[self.pos(first.start_point)[0]])
        else:
            body_indent = indent + self._indent_unit()
        head = self.text_range(start, self.pos(colon.end_point))
        signature = _dedent(head, indent, first_has_indent=start[1] > 0)
        prompt = signature + "\n"
        if doc_node is not None:
            doc_text = self.text_range((self.pos(doc_node.start_point)[0], 0), replace_start)
            prompt += _dedent(doc_text, indent, first_has_indent=True) + "\n"
        return FunctionInfo(
            name=name,
            qualname=".".join([*(n for _, n in scope), name]),
            kind=kind,
            start=start,
            end=max(self.pos(node.end_point), self.pos(colon.end_point)),
            def_line=def_line,
            indent=indent,
            body_indent=body_indent,
            docstring=docstring,
            replace_start=replace_start,
            replace_end=replace_end,
            body_line=replace_start[0] + 1,
            is_stub=is_stub,
            signature=signature,
            prompt=prompt,
            doc_range=(self.pos(doc_node.start_point), replace_start) if doc_node else None,
        )

    def _docstring(self, node) -> str | None:
        if node is None:
            return None
        try:
            value = ast.literal_eval(self.node_text(node).strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None  # an f-string or something odd: not a docstring
        return inspect.cleandoc(value) if isinstance(value, str) else None

    def _indent_unit(self) -> str:
        """The file's indentation step: the first indented line's whitespace, else 4 spaces."""
        for line in self.lines:
            ws = _indent(line)
            if ws and line.strip() and not line.strip().startswith("#"):
                return "\t" if ws.startswith("\t") else ws
        return "    "

    def text_range(self, start: Pos, end: Pos) -> str:
        if start[0] == end[0]:
            return self.lines[start[0]][start[1] : end[1]]
        parts = [self.lines[start[0]][start[1] :]]
        parts += self.lines[start[0] + 1 : end[0]]
        parts.append(self.lines[end[0]][: end[1]])
        return "\n".join(parts).replace("\r\n", "\n")

    def top_level_imports(self) -> list[str]:
        """The source of each module-level ``import`` / ``from ... import`` statement."""
        kinds = ("import_statement", "import_from_statement", "future_import_statement")
        return [
            self.node_text(n).replace("\r\n", "\n")
            for n in self.tree.root_node.named_children
            if n.type in kinds
        ]

    def function_at(self, pos: Pos) -> FunctionInfo | None:
        """The innermost function whose span contains ``pos``."""
        inside = [f for f in self.functions() if f.contains(pos)]
        return max(inside, key=lambda f: f.start, default=None)

    def find(self, qualname: str, near: int | None = None) -> FunctionInfo | None:
        """The function named ``qualname`` (the one nearest line ``near`` when there are several)."""
        found = [f for f in self.functions() if f.qualname == qualname]
        if not found:
            return None
        if near is None:
            return found[0]
        return min(found, key=lambda f: abs(f.def_line - near))


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _dedent(text: str, indent: str, first_has_indent: bool) -> str:
    """Remove ``indent`` from every line of ``text`` (the first line only if it carries it)."""
    lines = text.replace("\r\n", "\n").split("\n")
    out = []
    for i, line in enumerate(lines):
        if (i > 0 or first_has_indent) and line.startswith(indent):
            line = line[len(indent) :]
        out.append(line)
    return "\n".join(out)


def _is_docstring(stmt) -> bool:
    return (
        stmt.type == "expression_statement"
        and stmt.named_child_count == 1
        and stmt.named_children[0].type in ("string", "concatenated_string")
    )


def _is_placeholder(stmt) -> bool:
    if stmt.type == "pass_statement":
        return True
    return (
        stmt.type == "expression_statement"
        and stmt.named_child_count == 1
        and stmt.named_children[0].type == "ellipsis"
    )


def _units(ch: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(ch.encode("utf-8"))
    if encoding == "utf-32":
        return 1
    return 2 if ord(ch) > 0xFFFF else 1


def to_client(line: str, col: int, encoding: str = "utf-16") -> int:
    """A character column of ``line`` in the client's position encoding (utf-8/16/32 units)."""
    return sum(_units(ch, encoding) for ch in line[:col])


def from_client(line: str, units: int, encoding: str = "utf-16") -> int:
    """A client column (in ``encoding`` units) of ``line`` as a character column, clamped."""
    seen = 0
    for i, ch in enumerate(line):
        if seen >= units:
            return i
        seen += _units(ch, encoding)
    return len(line)


def doctest_asserts(docstring: str, entry_point: str) -> tuple[str, ...]:
    """``>>> expr`` / expected-value pairs of a docstring as ``assert expr == expected``.

    Examples that print, span several lines, expect an exception or whose expected text is not a
    Python expression are skipped; so are examples that do not mention ``entry_point``.
    """
    try:
        examples = doctest.DocTestParser().get_examples(docstring)
    except ValueError:  # inconsistent indentation inside the docstring
        return ()
    asserts = []
    for ex in examples:
        src, want = ex.source.strip(), ex.want.strip()
        if not want or "\n" in src or "\n" in want or entry_point not in src:
            continue
        try:
            expr = ast.parse(src, mode="eval").body
            ast.parse(want, mode="eval")
        except SyntaxError:
            continue
        if isinstance(expr, ast.Call) and getattr(expr.func, "id", None) == "print":
            continue
        simple = (ast.Call, ast.Name, ast.Attribute, ast.Subscript, ast.Constant)
        lhs = src if isinstance(expr, simple) else f"({src})"
        asserts.append(f"assert {lhs} == {want}")
    return tuple(asserts)


def build_problem(buf: Buffer, fn: FunctionInfo, problem_id: str, run_tests: bool) -> Problem:
    """The problem an editor stub poses: its docstring, its signature (after the file's imports),
    and, with ``run_tests``, its doctest examples as assert tests (top-level functions only: a
    method or a nested function cannot be called by name from a test)."""
    imports = "".join(imp + "\n" for imp in buf.top_level_imports())
    tests = None
    if run_tests and fn.kind == "function" and fn.docstring:
        asserts = doctest_asserts(fn.docstring, fn.name)
        tests = TestSpec(asserts=asserts) if asserts else None
    text = fn.docstring or f"Implement the function `{fn.name}`."
    prompt = imports + (("\n" if imports else "") + fn.prompt)
    if fn.docstring is None:
        prompt = imports + ("\n" if imports else "") + fn.signature + "\n"
    return Problem(
        id=problem_id,
        source="python",
        text=text,
        starter_code=imports + ("\n" if imports else "") + fn.signature + "\n",
        tests=tests,
        example_tests=tests,
        entry_point=fn.name,
        metadata={"prompt": prompt, "qualname": fn.qualname, "kind": fn.kind},
    )
