"""Output comparison, done by the trusted parent on plain data.

``stdio_matches`` follows the tolerance rules of the APPS harness (Hendrycks et al., 2021,
``eval/testing_util.py``), so that a program accepted there is accepted here: the whole output
stripped; line by line with each line stripped; blank lines dropped; every line a number within
``allclose`` tolerance; and, last, the *set* of lines, each taken as a set of whitespace-separated
tokens (order of lines and tokens ignored), also with numbers rounded to 3 decimals.
``call_matches`` follows its call-based rules (a tuple counts as a list; an expected value wrapped
in a one-element list also matches). ``equal_within`` is ``==`` with a tolerance on floats, for
assert-style tests whose spec asks for one (``TestSpec.rel_tol``: tests a model wrote).
"""

from __future__ import annotations

import math
from typing import Any

MAX_SET_MATCH = 1000  # set elements matched pairwise under a tolerance (quadratic); beyond: exact


def as_text(value: Any) -> str:
    """APPS stores stdin / expected stdout as a string or a list of lines."""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def _allclose(out: list[str], exp: list[str]) -> bool:
    try:
        a, b = [float(x) for x in out], [float(x) for x in exp]
    except (ValueError, OverflowError):
        return False
    return len(a) == len(b) and all(
        x == y or abs(x - y) <= 1e-8 + 1e-5 * abs(y) for x, y in zip(a, b, strict=False)
    )


def _token_sets(lines: list[str], rounded: bool) -> set[frozenset[Any]] | None:
    try:
        if rounded:
            return {frozenset(round(float(t), 3) for t in line.split()) for line in lines}
        return {frozenset(line.split()) for line in lines}
    except (ValueError, OverflowError):
        return None


def stdio_matches(output: str, expected: Any) -> bool:
    """Whether a program's stdout is accepted for the expected output (APPS rules)."""
    exp = as_text(expected)
    lines = output.splitlines()
    if "\n".join(lines).strip() == exp.strip():
        return True
    if "\n".join(line.strip() for line in lines).strip() == exp.strip():
        return True
    if lines == [exp]:
        return True
    exp_lines = [x.strip() for x in exp.split("\n") if x]
    if lines == exp_lines:
        return True
    out_lines = [x for x in lines if x]
    if out_lines == exp_lines or _allclose(out_lines, exp_lines):
        return True
    # Last resort of the APPS harness: lines as sets of tokens, line order ignored.
    out_sets = [line for line in out_lines if line.split()]
    for rounded in (False, True):
        a, b = _token_sets(out_sets, rounded), _token_sets(exp_lines, rounded)
        if a is not None and a == b:
            return True
    return False


def first_difference(output: str, expected: Any) -> str:
    """A one-line description of the first line that differs (whitespace-insensitive)."""
    got = [x.strip() for x in output.strip().splitlines()]
    exp = [x.strip() for x in as_text(expected).strip().splitlines()]
    for i in range(max(len(got), len(exp))):
        g = got[i] if i < len(got) else None
        e = exp[i] if i < len(exp) else None
        if g != e:
            if g is None:
                return f"line {i + 1}: expected {_clip(e)}, got end of output"
            if e is None:
                return f"line {i + 1}: expected end of output, got {_clip(g)}"
            return f"line {i + 1}: expected {_clip(e)}, got {_clip(g)}"
    return "output differs in whitespace only"


def _clip(s: Any, n: int = 80) -> str:
    text = s if isinstance(s, str) else repr(s)
    return repr(text[:n] + "…") if len(text) > n else repr(text)


def clip_repr(value: Any, n: int = 120) -> str:
    text = repr(value)
    return text[:n] + "…" if len(text) > n else text


def int_keys(value: Any) -> Any:
    """JSON turns dict keys into strings; APPS turns them back into ints where it can."""
    if isinstance(value, dict):
        try:
            return {int(k): v for k, v in value.items()}
        except (ValueError, TypeError):
            return value
    return value


def _detuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_detuple(v) for v in value]
    if isinstance(value, dict):
        return {k: _detuple(v) for k, v in value.items()}
    return value


def call_matches(output: Any, expected: Any) -> bool:
    """Whether a call-based answer is accepted (APPS rules, tuples compared as lists)."""
    out = _detuple(output)
    accepted = [expected, int_keys(expected)]
    if isinstance(expected, list) and expected:  # an answer wrapped in a one-element list
        accepted += [expected[0], int_keys(expected[0])]
    return any(_equal(out, e) for e in accepted)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def equal_within(a: Any, b: Any, rel_tol: float) -> bool:
    """``a == b``, except that a float (against an int or float) equals what
    ``math.isclose(a, b, rel_tol=rel_tol, abs_tol=rel_tol)`` accepts, recursively through lists,
    tuples, dicts (same keys, close values) and sets; ints, bools and everything else compare
    exactly. ``rel_tol == 0`` is plain ``==``."""
    if rel_tol <= 0:
        return _equal(a, b)
    try:
        return _close(a, b, rel_tol)
    except Exception:  # RecursionError on absurd nesting, OverflowError on huge ints
        return False


def _close(a: Any, b: Any, tol: float) -> bool:
    ta, tb = type(a), type(b)
    if (ta is float or tb is float) and ta in (int, float) and tb in (int, float):
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    if ta in (list, tuple) and ta is tb:
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b, strict=True))
    if ta is dict and tb is dict:
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if ta in (set, frozenset) and tb in (set, frozenset) and not _equal(a, b):
        return len(a) == len(b) <= MAX_SET_MATCH and _match(list(a), list(b), tol)
    return _equal(a, b)


def _match(a: list[Any], b: list[Any], tol: float) -> bool:
    """Whether each element of ``a`` pairs with its own close element of ``b`` (greedy: sets of
    floats a tolerance apart have at most one close partner each in practice)."""
    left = list(b)
    for x in a:
        k = next((i for i, y in enumerate(left) if _close(x, y, tol)), None)
        if k is None:
            return False
        left.pop(k)
    return True
