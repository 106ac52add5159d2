"""Generated tests as doctests: ``>>> f(args)`` / expected-repr lines in the function's docstring.

A doctest compares printed text, not values, so each example's expected line is the repr of what
the body returns for that call (:mod:`bcoder.lsp.keep` asks the sandbox for it): ``2.0`` where the
model's test said ``2``, a dict in the order the body builds it. That passes whenever the test did,
floats compared within a tolerance included. When the repr is unknown, the example is
``>>> f(args) == expected`` / ``True``; a body returning None gets ``>>> print(f(args))`` / ``None``
(a bare call that returns None prints nothing).

The examples go before the docstring's closing quotes, indented as the docstring, after a blank
line; a one-line docstring is opened up, and a function without one gets one. Backslashes are
doubled in a docstring that is not raw. A call the docstring already shows as an example (``>>>
f(args)``, ``>>> f(args) == x`` or ``>>> print(f(args))``) is not added again.
"""

from __future__ import annotations

import ast
import doctest
import re

from bcoder.lsp.generated import Test
from bcoder.lsp.stubs import Buffer, FunctionInfo, Pos

_OPENING = re.compile(r"([rRuU]{0,2})(\"\"\"|'''|\"|')")


def present_calls(docstring: str | None) -> set[str]:
    """The calls the docstring's examples show, normalised (``ast.unparse``)."""
    try:
        examples = doctest.DocTestParser().get_examples(docstring or "")
    except ValueError:  # inconsistent indentation: no example is read
        return set()
    out = set()
    for ex in examples:
        try:
            node = ast.parse(ex.source.strip(), mode="eval").body
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq):
            node = node.left
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print" and node.args:
            node = node.args[0]
        out.add(ast.unparse(node))
    return out


def missing(tests: list[Test], docstring: str | None) -> list[Test]:
    """The tests whose call the docstring does not show yet."""
    shown = present_calls(docstring)
    return [t for t in tests if t.call not in shown]


def example_lines(test: Test, shown: str | None) -> list[str]:
    """The example of one test: its source line and expected output (see the module docstring)."""
    if shown == "None":
        return [f">>> print({test.call})", "None"]
    if shown is not None:
        return [f">>> {test.call}", shown]
    return [f">>> {test.call} == {test.expected}", "True"]


def docstring_edit(
    buf: Buffer, fn: FunctionInfo, examples: list[list[str]]
) -> tuple[Pos, Pos, str] | str:
    """The edit ``(start, end, new text)`` that puts ``examples`` (each a list of lines) into
    ``fn``'s docstring, or why it cannot (a one-quote docstring)."""
    indent, eol = fn.body_indent, buf.eol
    if fn.doc_range is None:  # a docstring of its own, first in the body
        raw, quote = False, '"""'
    else:
        literal = buf.text_range(*fn.doc_range)
        match = _OPENING.match(literal)
        if match is None or len(match.group(2)) != 3:
            return "its docstring is not triple-quoted"
        raw, quote = "r" in match.group(1).lower(), match.group(2)
    lines = [line if raw else line.replace("\\", "\\\\") for ex in examples for line in ex]
    if any(quote in line for line in lines):
        return f"an example holds {quote}, which would end the docstring"
    body = [indent + line if line else "" for line in lines]
    if fn.doc_range is None:
        at = fn.replace_start
        return at, at, eol + indent + quote + eol + eol.join(body) + eol + indent + quote
    (first, _), (line, col) = fn.doc_range
    close = col - 3  # the closing quotes
    if line > first and not buf.lines[line][:close].strip():  # the quotes on a line of their own
        blank = [""] if buf.lines[line - 1].strip() else []
        return (line, 0), (line, 0), "".join(text + eol for text in [*blank, *body])
    return (line, close), (line, close), eol + eol + eol.join(body) + eol + indent
