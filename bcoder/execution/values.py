"""What a program returned, as a short canonical text: the key agreement rankers group programs by.

Trusted side only: it reads values that ``wire.decode`` rebuilt as exact builtin objects, so no
code of the program runs here. The text follows Python's ``==`` on plain values: two programs
whose answers are equal get equal texts, whatever order they built a set or a dict in, and
whether they answered ``2``, ``2.0`` or ``True``-as-``1`` (``True == 1 == 1.0``, so these share a
text, as the assert ``f(x) == 1`` would accept each). Floats are rounded to ``SIG_DIGITS``
significant digits (``0.1 + 0.2`` and ``0.3`` agree), ``-0.0`` is ``0``, NaN is ``nan``; lists and
tuples stay apart (they are unequal). Texts longer than ``MAX_CHARS`` keep a prefix and the
sha256 of the whole text, so equality survives the cut while records stay small.

Other answers: ``raise NAME`` for an exception (the class name only: a message may hold
addresses or timings that differ between equal behaviours), ``opaque TYPE`` for an object that
is not plain data, ``timeout`` for an item that ran out of time (set by ``plan``).
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from bcoder.execution.wire import Opaque

SIG_DIGITS = 10  # significant digits a float keeps
MAX_CHARS = 200  # longer texts become PREFIX_CHARS characters + the sha256 of the full text
PREFIX_CHARS = 100
TIMEOUT = "timeout"
_NAME = re.compile(r"[^A-Za-z0-9_.]")


def value_text(value: Any) -> str:
    """The canonical text of a decoded plain value (equal values, equal texts)."""
    if isinstance(value, Opaque):
        return f"opaque {_NAME.sub('', value.type_name)[:80]}"
    return _capped(_text(value))


def raised_text(name: Any) -> str:
    """``raise NAME`` for an exception class name reported by the program (sanitised)."""
    return f"raise {_NAME.sub('', str(name))[:80] or 'exception'}"


def _capped(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{text[:PREFIX_CHARS]}… sha256={digest}"


def _text(v: Any) -> str:
    t = type(v)
    if v is None or t is str or t is bytes:
        return repr(v)
    if t is bool or t is int:
        return _int_text(int(v))
    if t is float:
        return _float_text(v)
    if t is complex:  # complex(2, 0) == 2
        if v.imag == 0:
            return _float_text(v.real)
        return f"complex({_float_text(v.real)}, {_float_text(v.imag)})"
    if t is list:
        return "[" + ", ".join(_text(x) for x in v) + "]"
    if t is tuple:
        return "(" + ", ".join(_text(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if t is set or t is frozenset:  # set({1}) == frozenset({1})
        return "{" + ", ".join(sorted(_text(x) for x in v)) + "}" if v else "set()"
    if t is dict:
        return "{" + ", ".join(sorted(f"{_text(k)}: {_text(x)}" for k, x in v.items())) + "}"
    if t is Opaque:
        return f"<opaque {_NAME.sub('', v.type_name)[:80]}>"
    return f"<{t.__name__}>"  # wire.decode builds nothing else


def _int_text(n: int) -> str:
    # Decimal text of a huge int is slow (and capped by sys.int_max_str_digits): hex is exact.
    return str(n) if n.bit_length() <= 4000 else hex(n)


def _float_text(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x.is_integer():  # exact, so that 12345678901.0 matches the int 12345678901
        return _int_text(int(x))
    rounded = float(f"{x:.{SIG_DIGITS}g}")
    return _int_text(int(rounded)) if rounded.is_integer() else repr(rounded)
