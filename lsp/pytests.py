"""Generated tests as a pytest file beside the module: ``test_<module>.py``.

One test function per test (``test_<fn>_generated_<k>``, numbered on from the file's), so that
pytest reports each on its own and ``-k generated`` selects them, under a comment saying where
they come from; the function is imported from its module (``from pkg.mod import fn`` inside a
package: pytest's default rootdir-based import finds the package's parent). A test whose answer
the sandbox compared within a tolerance (floats) uses ``pytest.approx`` with that tolerance. In an
existing file the imports go after its last top-level import, the tests at its end, and a call
the file already asserts on is not added again.
"""

from __future__ import annotations

import ast
import re
from numbers import Number
from pathlib import Path
from typing import Any

from bcoder.lsp.generated import Test
from bcoder.pipeline.gentests import REL_TOL

_UNKNOWN = object()


def file_for_tests(source: Path) -> Path:
    """``dir/test_mod.py`` for ``dir/mod.py``."""
    return source.with_name(f"test_{source.stem}.py")


def module_name(source: Path) -> str:
    """The module's dotted name as pytest imports it: its package path, if it is in one."""
    parts, folder = [source.stem], source.parent
    while (folder / "__init__.py").is_file() and folder != folder.parent:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def _has_float(value: Any) -> bool:
    if isinstance(value, (float, complex)):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_float(v) for v in value)
    return False


def _approximable(value: Any) -> bool:
    """Whether ``pytest.approx`` compares ``value`` (a number, or a flat list, tuple or dict)."""
    flat = (list, tuple, dict, set, frozenset)
    if isinstance(value, Number) and not isinstance(value, bool):
        return True
    items = value.values() if isinstance(value, dict) else value
    return isinstance(value, (list, tuple, dict)) and not any(isinstance(v, flat) for v in items)


def _literal(shown: str | None) -> Any:
    try:
        return ast.literal_eval(shown) if shown is not None else _UNKNOWN
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNKNOWN


def assert_line(test: Test, shown: str | None) -> str | None:
    """The test's assert for pytest: ``==`` when the body's answer (``shown``: its repr, if
    known) equals the expected value exactly, ``pytest.approx`` when only within the sandbox's
    tolerance; None when neither holds it (floats nested in containers)."""
    actual = _literal(shown)
    exact = actual is not _UNKNOWN and actual == test.value
    if exact or (actual is _UNKNOWN and not _has_float(test.value)):
        return f"assert {test.call} == {test.expected}"
    if not _approximable(test.value):
        return None
    return f"assert {test.call} == pytest.approx({test.expected}, rel={REL_TOL}, abs={REL_TOL})"


def _existing(text: str, function: str) -> tuple[set[str], set[str], int, int]:
    """In a test file: the calls it asserts on, the names bound at its top level, the highest k
    of ``test_<function>_generated_<k>`` and the line after its last top-level import (or its
    docstring; 0-based)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return set(), set(), 0, 0
    calls = {
        ast.unparse(n.test.left)
        for n in ast.walk(tree)
        if isinstance(n, ast.Assert) and isinstance(n.test, ast.Compare)
    }
    bound, last_import, k = set(), 0, 0
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
        last_import = first.end_lineno or first.lineno  # imports go after the docstring
    number = re.compile(rf"test_{re.escape(function)}_generated_(\d+)$")
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
            last_import = node.end_lineno or node.lineno
        elif isinstance(node, ast.FunctionDef) and (m := number.match(node.name)):
            k = max(k, int(m.group(1)))
    return calls, bound, k, last_import


def new_tests(tests: list[Test], text: str, function: str) -> list[Test]:
    """The tests whose call the test file (``text``, "" when absent) does not assert on yet."""
    calls = _existing(text, function)[0]
    return [t for t in tests if t.call not in calls]


def additions(
    text: str, module: str, function: str, asserts: list[str], origin: str
) -> list[tuple[int, str]]:
    """What to insert into a test file holding ``text`` ("" for a new one): ``(line, text)``
    pairs, a line of -1 meaning the end of the file. ``origin`` is the comment above the tests."""
    _, bound, k, after_imports = _existing(text, function)
    imports = []
    if any("pytest.approx" in a for a in asserts) and "pytest" not in bound:
        imports.append("import pytest\n")
    if function not in bound:
        imports.append(f"from {module} import {function}\n")
    tests = [f"# {origin}\n"]
    for i, line in enumerate(asserts, start=k + 1):
        tests += [] if i == k + 1 else ["\n\n"]
        tests.append(f"def test_{function}_generated_{i}():\n    {line}\n")
    if not text.strip():
        head = "\n".join(imports)  # a blank line between pytest and the module's import
        return [(0, head + "\n\n" + "".join(tests))]
    out = [(after_imports, "".join(imports))] if imports else []
    tail = "" if text.endswith("\n") else "\n"
    return [*out, (-1, tail + "\n\n" + "".join(tests))]
