"""Judge mode: a clean judge process runs the test code; the program answers over a pipe.

Stdlib only (runs in the sandbox). ``serve`` runs in the program's process: it runs the program,
then answers the judge's lookups and calls with plain values (``wire``), or with handles for other
objects. ``judge`` runs in a fresh fork of the zygote that never executes program code: it reads
the test code itself from the parent's channel (so no copy of it exists in the memory the program
is forked from), runs it with the program's names resolved through the pipe, and writes one
verdict per statement on fd 3, which the program never holds.
"""

from __future__ import annotations

import builtins
import os
import sys
import time
from typing import Any, NoReturn

import wire
from harness import (
    CHANNEL_FD,
    MAX_MSG,
    REQ_FD,
    RESP_FD,
    RESULT_FD,
    compile_program,
    describe,
    end_program,
    flush_exit,
    program_globals,
)

# A private copy of the builtins for these functions (see wire.py).
__builtins__ = dict(builtins.__dict__)


def serve(req: dict[str, Any]) -> NoReturn:
    """The program side of judge mode: run the program, then answer lookups and calls.

    As in ``harness.run_calls``: ``SystemExit`` while loading is a failure to load; when the
    judge is done (end of the request pipe) the process ends as a script would, and the
    parent judges its status as well as the judge's verdicts.
    """
    obj = compile_program(req["code"])
    g = program_globals("__solution__", req.get("preamble", False))
    table: list[Any] = []

    def handle(value: Any) -> int:
        table.append(value)
        return len(table) - 1

    try:
        exec(obj, g)
        wire.write_frame(RESP_FD, {"ready": True})
    except BaseException as e:
        wire.write_frame(RESP_FD, {"fatal": describe(e)})
        flush_exit(1)
    while True:
        msg = wire.read_frame(REQ_FD)
        if msg is None:
            end_program(0)
        try:
            out = _serve_one(msg, g, table, handle)
        except BaseException as e:
            out = {"exc": type(e).__name__[:80], "msg": describe(e)}
        try:
            wire.write_frame(RESP_FD, out)
        except BaseException:
            flush_exit(1)


def _serve_one(msg: dict[str, Any], g: dict[str, Any], table: list[Any], handle: Any) -> Any:
    op = msg["op"]
    if op == "lookup":
        name = msg["name"]
        if name not in g:
            return {"missing": True}
        value = g[name]
        if type(value).__name__ == "module" and isinstance(getattr(value, "__name__", 0), str):
            return {"module": value.__name__}
        return {"ok": wire.encode(value, handle)}
    target = table[msg["h"]]

    def arg(x: Any) -> Any:
        return wire.decode(x, table.__getitem__)

    if op == "call":
        args = [arg(a) for a in msg["args"]]
        kwargs = {k: arg(v) for k, v in msg["kwargs"]}
        value = target(*args, **kwargs)
        mutated = [
            [i, wire.encode(a, handle)] for i, a in enumerate(args) if type(a) in (list, dict, set)
        ]
        return {"ok": wire.encode(value, handle), "mut": mutated}
    if op == "getattr":
        return {"ok": wire.encode(getattr(target, msg["name"]), handle)}
    if op == "setattr":
        setattr(target, msg["name"], arg(msg["value"]))
        return {"ok": None}
    raise ValueError(f"unknown op {op!r}")


class ProgramRaised(Exception):
    """Marks an exception that came from the program (or its absence), not from the test."""


_RAISED: dict[str, type] = {}


def _program_exception(name: str, msg: str) -> BaseException:
    base = getattr(builtins, name, None)
    if isinstance(base, type) and issubclass(base, Exception) and base.__module__ == "builtins":
        cls = _RAISED.get(name) or _RAISED.setdefault(name, type(name, (base, ProgramRaised), {}))
        try:
            return cls(msg)
        except BaseException:
            pass
    return ProgramRaised(msg)


class _Client:
    """The judge's pipe to the program server; every answer is decoded as plain data."""

    def __init__(self) -> None:
        self.ready: bool | None = None
        self.fatal = ""

    def ask(self, msg: dict[str, Any]) -> Any:
        if self.ready is None:
            first = self._recv()
            self.ready, self.fatal = "ready" in first, str(first.get("fatal", ""))[:MAX_MSG]
        if not self.ready:
            raise ProgramRaised(f"the program failed before the tests: {self.fatal}")
        try:
            wire.write_frame(REQ_FD, msg)
        except OSError:
            raise ProgramRaised("the program process is gone") from None
        out = self._recv()
        if "exc" in out:
            raise _program_exception(str(out["exc"]), str(out.get("msg", ""))[:MAX_MSG])
        return out

    def _recv(self) -> dict[str, Any]:
        try:
            out = wire.read_frame(RESP_FD, max_bytes=32 << 20)
        except (ValueError, OSError) as err:
            raise ProgramRaised(f"malformed answer from the program ({err})") from None
        if not isinstance(out, dict):
            raise ProgramRaised("the program process ended or answered nonsense")
        return out

    def value(self, data: Any) -> Any:
        try:
            return wire.decode(data, lambda h: Proxy(self, h))
        except (ValueError, TypeError, KeyError) as err:
            raise ProgramRaised(f"malformed value from the program ({err})") from None

    def send(self, value: Any) -> Any:
        def handle(v: Any) -> int:
            if type(v) is Proxy:
                return object.__getattribute__(v, "_h")
            raise TypeError(f"cannot pass a {type(v).__name__} to the program")

        return wire.encode(value, handle)


class Proxy:
    """A program object the judge may call, read or set attributes on; equal only to itself."""

    __slots__ = ("_c", "_h")

    def __init__(self, client: _Client, h: int) -> None:
        object.__setattr__(self, "_c", client)
        object.__setattr__(self, "_h", h)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        c: _Client = object.__getattribute__(self, "_c")
        h = object.__getattribute__(self, "_h")
        out = c.ask(
            {
                "op": "call",
                "h": h,
                "args": [c.send(a) for a in args],
                "kwargs": [[k, c.send(v)] for k, v in kwargs.items()],
            }
        )
        for i, new in out.get("mut", []):  # reflect in-place changes to list/dict/set arguments
            old, new = args[i], c.value(new)
            if type(old) is type(new) and type(old) in (list, dict, set):
                old.clear()
                (old.extend if type(old) is list else old.update)(new)
        return c.value(out.get("ok"))

    def __getattr__(self, name: str) -> Any:
        c: _Client = object.__getattribute__(self, "_c")
        h = object.__getattribute__(self, "_h")
        return c.value(c.ask({"op": "getattr", "h": h, "name": name}).get("ok"))

    def __setattr__(self, name: str, value: Any) -> None:
        c: _Client = object.__getattribute__(self, "_c")
        c.ask(
            {
                "op": "setattr",
                "h": object.__getattribute__(self, "_h"),
                "name": name,
                "value": c.send(value),
            }
        )

    def __repr__(self) -> str:
        return f"<program object #{object.__getattribute__(self, '_h')}>"


class _LazyBuiltins(dict):
    """Builtins for the judge's test code: names it does not define are asked of the program."""

    def __init__(self, client: _Client) -> None:
        super().__init__(builtins.__dict__)
        self.client = client

    def __missing__(self, name: str) -> Any:
        out = self.client.ask({"op": "lookup", "name": name})
        if out.get("missing"):
            raise _program_exception("NameError", f"name {name!r} is not defined")
        if "module" in out:  # the judge imports its own clean copy of a stdlib module
            mod = str(out["module"])
            if mod.split(".")[0] not in sys.stdlib_module_names and mod not in sys.modules:
                raise ProgramRaised(f"module {mod[:80]!r} is not available to the tests")
            value = __import__(mod)
            for part in mod.split(".")[1:]:
                value = getattr(value, part)
        else:
            value = self.client.value(out.get("ok"))
        self[name] = value
        return value


def judge(req: dict[str, Any]) -> NoReturn:
    """Run the test statements on the program's plain answers; report a verdict per statement.

    The judge is a fresh fork of the zygote: no program code ever runs in this process, so its
    verdicts (written on fd 3, which the program never holds) cannot be forged.
    """
    tests = wire.read_frame(CHANNEL_FD)  # the test code, straight from the parent
    os.close(CHANNEL_FD)
    wire.write_frame(RESULT_FD, {"loaded": True})
    req = {**req, **tests}
    client = _Client()
    g: dict[str, Any] = {"__name__": "__test__", "__builtins__": _LazyBuiltins(client)}
    setup_error = None
    try:
        exec(compile(req.get("setup") or "", "setup", "exec"), g)
    except BaseException as e:
        setup_error = e
    for i, stmt in enumerate(req["statements"]):
        t0 = time.perf_counter()
        verdict, detail = "pass", ""
        try:
            if setup_error is not None:
                raise setup_error
            exec(compile(stmt, f"test {i + 1}", "exec"), g)
        except BaseException as e:
            detail = describe(e)
            if isinstance(e, ProgramRaised) or not isinstance(e, AssertionError):
                verdict = "runtime_error"
            else:
                verdict = "fail"
                detail = detail if str(e) else "assertion failed"
        wire.write_frame(
            RESULT_FD,
            {"i": i, "verdict": verdict, "detail": detail, "time": time.perf_counter() - t0},
        )
    os._exit(0)
