"""Plain values and frames: what crosses the sandbox boundary.

Stdlib only: this file also runs inside the sandbox (copied next to ``zygote.py``).

A program's answer leaves the sandbox as *plain data* only: None, bool, int, float, complex, str,
bytes and (nested) list, tuple, dict, set, frozenset. ``encode`` turns a value into JSON-able data
with tags for what JSON lacks; subclasses of the builtin types are reduced to the builtin value with
the base type's own C methods (so an overridden ``__eq__`` or ``__str__`` never runs on the trusted
side); anything else becomes an "opaque" marker that never compares equal to an expected value.
``decode`` rebuilds exact builtin objects and runs no code from the data.

Tags (JSON objects are always tags): ``{"t": [..]}`` tuple, ``{"d": [[k, v], ..]}`` dict,
``{"s": [..]}`` set, ``{"fs": [..]}`` frozenset, ``{"b": "<base64>"}`` bytes, ``{"i": "<hex>"}`` a
large int, ``{"c": [re, im]}`` complex, ``{"x": "<type>"}`` opaque, ``{"h": n}`` a handle (judge mode).

Frames: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
"""

from __future__ import annotations

import base64
import builtins
import json
import os
import struct
from typing import Any

# A private copy of the builtins for the functions below: a program that patches
# ``builtins.isinstance`` (or ``type``, ``len``...) in its own process does not reach them.
__builtins__ = dict(builtins.__dict__)

MAX_DEPTH = 100  # nesting levels kept; deeper values are opaque
MAX_ITEMS = 2_000_000  # elements per encoded value
_SMALL_INT = 1 << 62
_HDR = struct.Struct(">I")


class Opaque:
    """A value that could not be reduced to plain data; equal only to itself."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


class _Budget:
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_ITEMS


def _type_name(value: Any) -> str:
    try:
        return str(type.__getattribute__(type(value), "__qualname__"))[:80]
    except Exception:
        return "object"


def encode(value: Any, handles: Any = None) -> Any:
    """A JSON-able tagged form of ``value`` (see the module docstring).

    ``handles``, when given, is called with a non-plain value and returns an int handle for it
    (the judge's program server); otherwise non-plain values become opaque markers.
    """
    return _enc(value, 0, _Budget(), handles)


def _enc(v: Any, depth: int, budget: _Budget, handles: Any) -> Any:
    budget.left -= 1
    if budget.left < 0 or depth > MAX_DEPTH:
        return {"x": "too large or too deep"}
    t = type(v)
    if v is None or t is bool or t is str:
        return v
    if t is int:
        return v if -_SMALL_INT < v < _SMALL_INT else {"i": hex(v)}
    if t is float:
        return v
    if t is list or t is tuple or t is set or t is frozenset:
        items = [_enc(x, depth + 1, budget, handles) for x in v]
        return items if t is list else {_SEQ_TAGS[t]: items}
    if t is dict:
        return {
            "d": [
                [_enc(k, depth + 1, budget, handles), _enc(x, depth + 1, budget, handles)]
                for k, x in dict.items(v)
            ]
        }
    if t is bytes:
        return {"b": base64.b64encode(v).decode("ascii")}
    if t is complex:
        return {"c": [v.real, v.imag]}
    # Subclasses of plain types: take the builtin value with the base type's C methods.
    for base, reduce in _REDUCERS:
        if issubclass(t, base):
            return _enc(reduce(v), depth, budget, handles)
    module = getattr(t, "__module__", "")
    if module == "numpy" and hasattr(v, "tolist"):  # numpy scalars and arrays
        return _enc(v.tolist(), depth, budget, handles)
    if handles is not None:
        return {"h": handles(v)}
    return {"x": _type_name(v)}


_SEQ_TAGS = {tuple: "t", set: "s", frozenset: "fs"}
_REDUCERS: tuple[tuple[type, Any], ...] = (
    (bool, bool),
    (int, int.__int__),
    (float, float.__float__),
    (str, str.__str__),
    (bytes, lambda b: bytes.__getitem__(b, slice(None))),
    (bytearray, bytes),
    (list, list.copy),
    (tuple, lambda x: tuple(tuple.__iter__(x))),
    (dict, dict.copy),
    (frozenset, frozenset.copy),
    (set, set.copy),
    (complex, lambda c: complex(c.real, c.imag)),
)


def decode(data: Any, handle: Any = None, depth: int = 0) -> Any:
    """Exact builtin objects from ``encode``'s output; raises ValueError on malformed data.

    ``handle``, when given, turns ``{"h": n}`` into an object (the judge's proxies).
    """
    if depth > MAX_DEPTH + 2:
        raise ValueError("value nested too deeply")
    t = type(data)
    if data is None or t is bool or t is int or t is float or t is str:
        return data
    if t is list:
        return [decode(x, handle, depth + 1) for x in data]
    if t is not dict or len(data) != 1:
        raise ValueError(f"malformed value of type {t.__name__}")
    ((tag, body),) = data.items()
    if tag == "t":
        return tuple(decode(x, handle, depth + 1) for x in _list(body))
    if tag == "s":
        return {decode(x, handle, depth + 1) for x in _list(body)}
    if tag == "fs":
        return frozenset(decode(x, handle, depth + 1) for x in _list(body))
    if tag == "d":
        pairs = [_list(p) for p in _list(body)]
        if any(len(p) != 2 for p in pairs):
            raise ValueError("malformed dict")
        return {decode(k, handle, depth + 1): decode(v, handle, depth + 1) for k, v in pairs}
    if tag == "i" and type(body) is str and len(body) < 1_000_000:
        return int(body, 16)
    if tag == "b" and type(body) is str:
        return base64.b64decode(body.encode("ascii"), validate=True)
    if tag == "c":
        re_, im = _list(body)
        if type(re_) not in (int, float) or type(im) not in (int, float):
            raise ValueError("malformed complex")
        return complex(re_, im)
    if tag == "x" and type(body) is str:
        return Opaque(body[:80])
    if tag == "h" and type(body) is int and handle is not None:
        return handle(body)
    raise ValueError(f"unknown tag {str(tag)[:20]!r}")


def _list(x: Any) -> list[Any]:
    if type(x) is not list:
        raise ValueError("malformed value")
    return x


def _parse_int(s: str) -> int:
    if len(s) > 40:  # large ints travel as hex tags; refuse slow decimal parsing
        raise ValueError("integer literal too long")
    return int(s)


def _no_default(obj: Any) -> Any:
    raise TypeError(f"cannot encode {type(obj).__name__}")


# The C encoder, made once: unlike json.dumps it does not look up (patchable) builtins such as
# isinstance each time, so a program that patches builtins does not break its own answers.
_C_ENCODE = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _no_default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )
    if getattr(json.encoder, "c_make_encoder", None)
    else None
)


def dumps(obj: Any) -> bytes:
    """One frame body: compact JSON (NaN and infinities allowed, as Python writes them)."""
    if _C_ENCODE is not None:
        return "".join(_C_ENCODE(obj, 0)).encode("ascii")
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")


_DECODER = json.JSONDecoder(parse_int=_parse_int)


def loads(raw: bytes | str) -> Any:
    """Parse a frame body; raises ValueError on anything malformed."""
    try:
        text = raw.decode("utf-8") if type(raw) is bytes else raw
        obj, end = _DECODER.raw_decode(text)  # the C scanner: no patchable builtins involved
    except (RecursionError, UnicodeDecodeError, TypeError, AttributeError) as err:
        raise ValueError(str(err)) from None
    if text[end:].strip():
        raise ValueError("extra data after the value")
    return obj


def frame(obj: Any) -> bytes:
    body = dumps(obj)
    return _HDR.pack(len(body)) + body


def write_frame(fd: int, obj: Any) -> None:
    """Write one frame to a blocking fd."""
    data = memoryview(frame(obj))
    while data:
        n = os.write(fd, data)
        data = data[n:]


def read_exact(fd: int, n: int) -> bytes | None:
    """Read exactly n bytes from a blocking fd; None at end of file."""
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, max_bytes: int = 64 << 20) -> Any:
    """Read one frame from a blocking fd; None at end of file, ValueError when malformed."""
    hdr = read_exact(fd, _HDR.size)
    if hdr is None:
        return None
    (size,) = _HDR.unpack(hdr)
    if size > max_bytes:
        raise ValueError(f"frame of {size} bytes exceeds {max_bytes}")
    body = read_exact(fd, size)
    if body is None:
        return None
    return loads(body)


def split_frames(buf: bytearray) -> list[bytes]:
    """Remove and return the complete frame bodies at the start of ``buf``."""
    out = []
    while len(buf) >= _HDR.size:
        (size,) = _HDR.unpack_from(buf)
        if len(buf) < _HDR.size + size:
            break
        out.append(bytes(buf[_HDR.size : _HDR.size + size]))
        del buf[: _HDR.size + size]
    return out
