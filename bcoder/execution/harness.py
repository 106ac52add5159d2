"""What a forked child does inside the sandbox: run a program, evaluate calls, or judge asserts.

Stdlib only (runs in the sandbox next to ``zygote.py`` and ``wire.py``). Every function here ends
the process with ``os._exit``; none returns to the zygote's loop.

Trust: the compile status is written (fd 4) and closed *before* any program code runs, so it is
exact. Everything written after that can be forged by the program and is treated as the program's
claim: its stdout, and the values it reports for calls (fd 3). The judge (``judge``) never runs
program code: it executes the test statements itself and reaches the program only through a
pipe to a separate server process (``serve``) that answers with plain values.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sys
import time
import traceback
from typing import Any, NoReturn

import wire

# A private copy of the builtins for the harness's own functions (see wire.py).
__builtins__ = dict(builtins.__dict__)

# Child fds: 0-2 stdio, 3 results (calls / verdicts), 4 compile status; judge mode adds the
# request pipe (the judge writes fd 5, the server reads its own fd 5) and the answer pipe (fd 6).
# The judge also gets the parent's channel as fd 7, to read the test code from.
RESULT_FD, STATUS_FD, REQ_FD, RESP_FD, CHANNEL_FD = 3, 4, 5, 6, 7
MAX_MSG = 300

# The names the APPS harness provides to every program (it prepends these imports), so that
# programs relying on them (``List`` in LeetCode signatures, ``np``, ``heappush``...) still run.
_APPS_MODULES = ("sys", "time", "itertools", "collections", "math", "fractions", "random", "heapq")
_APPS_FROM = {
    "itertools": ("accumulate", "product", "permutations", "combinations"),
    "collections": ("Counter", "OrderedDict", "deque", "defaultdict", "ChainMap"),
    "functools": ("lru_cache",),
    "math": ("sqrt", "sin", "cos", "tan", "ceil", "fabs", "floor", "gcd", "exp", "log", "log2"),
    "typing": ("List", "Tuple"),
    "heapq": (
        "heappush",
        "heappop",
        "heapify",
        "heapreplace",
        "heappushpop",
        "nlargest",
        "nsmallest",
        "merge",
    ),
}


def program_globals(name: str, preamble: bool) -> dict[str, Any]:
    g: dict[str, Any] = {"__name__": name, "__builtins__": builtins, "__file__": "program.py"}
    if preamble:
        for mod in _APPS_MODULES:
            g[mod] = __import__(mod)
        for mod, names in _APPS_FROM.items():
            m = __import__(mod)
            g.update({n: getattr(m, n) for n in names})
        if "numpy" in sys.modules:
            g["np"] = sys.modules["numpy"]
    return g


def _short(e: BaseException) -> str:
    try:
        text = f"{type(e).__name__}: {e}"
    except BaseException:
        text = type(e).__name__
    return text[:MAX_MSG]


def compile_program(code: str, wrap: bool = False) -> Any:
    """Compile and report on the status fd; a compile failure ends the process here.

    ``wrap``: when the source only fails because of a top-level ``return`` or ``nonlocal``,
    compile it as the body of a function that is then called, as the APPS harness runs stdin
    programs (so that the ground truths accepted there compile here too).
    """
    try:
        obj = compile(code, "program.py", "exec", dont_inherit=True)
    except BaseException as e:  # whatever compile raises is a compile error
        fixable = isinstance(e, SyntaxError) and any(m in str(e.msg) for m in _FIXABLE)
        obj = _wrapped(code) if wrap and fixable else None
        if obj is None:
            line = getattr(e, "lineno", None)
            msg = _short(e) + (f" (line {line})" if line else "")
            os.write(STATUS_FD, b"C" + msg.encode("utf-8", "replace"))
            os._exit(0)
    os.write(STATUS_FD, b"R")
    os.close(STATUS_FD)  # from here on the program runs; nothing it writes counts as status
    return obj


_FIXABLE = ("'return' outside function", "nonlocal")


def _wrapped(code: str) -> Any:
    """The program's statements (after its leading imports) as the body of a called function."""
    import ast

    try:
        tree = ast.parse(code)
        body = tree.body
        k = 0
        while k < len(body) and isinstance(body[k], (ast.Import, ast.ImportFrom)):
            k += 1
        args = ast.arguments(
            posonlyargs=[],
            args=[],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=[],
        )
        fn = ast.FunctionDef(
            name="_program_",
            args=args,
            body=body[k:] or [ast.Pass()],
            decorator_list=[],
            returns=None,
            type_comment=None,
        )
        call = ast.Expr(ast.Call(ast.Name("_program_", ast.Load()), [], []))
        tree.body = [*body[:k], fn, call]
        return compile(ast.fix_missing_locations(tree), "program.py", "exec", dont_inherit=True)
    except BaseException:
        return None


def _flush_exit(rc: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            rc = rc or 1
    os._exit(rc)


def run_stdio(req: dict[str, Any]) -> NoReturn:
    """Run the program as ``__main__`` on stdin (fd 0); exit 0 normally, 1 on an exception.

    ``SystemExit`` counts as a normal end, whatever its code (as in the APPS harness).
    """
    obj = compile_program(req["code"], wrap=req.get("preamble", False))
    g = program_globals("__main__", req.get("preamble", False))
    rc = 0
    try:
        exec(obj, g)
    except SystemExit:
        pass
    except BaseException:
        rc = 1
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    _flush_exit(rc)


def _report(obj: Any) -> None:
    try:
        wire.write_frame(RESULT_FD, obj)
    except BaseException:
        os._exit(3)


def _encode_result(value: Any) -> Any:
    try:
        return {"ok": wire.encode(value)}
    except BaseException as e:
        return {"ok": {"x": f"unserializable ({type(e).__name__})"}}


def run_calls(req: dict[str, Any]) -> NoReturn:
    """Run the program (not as ``__main__``) and setup, then report one value per item on fd 3.

    An item is ``{"expr": source}`` (evaluated in the program's globals: a rewritten assert's
    left side) or ``{"args": [...]}`` (a call of ``req["fn"]``, APPS call-based style).
    """
    exprs = [compile(it["expr"], "test", "eval") if "expr" in it else None for it in req["items"]]
    setup = compile(req.get("setup") or "", "setup", "exec")
    obj = compile_program(req["code"])
    g = program_globals("__solution__", req.get("preamble", False))
    try:
        exec(obj, g)
        exec(setup, g)
        target = _resolve(g, req["fn"], req["code"]) if req.get("fn") else None
    except BaseException as e:
        _report({"fatal": _short(e)})
        _flush_exit(1)
    _report({"ready": True})
    for item, expr in zip(req["items"], exprs, strict=False):
        try:
            value = eval(expr, g) if expr is not None else target(*item["args"])
            out = _encode_result(value)
        except BaseException as e:
            out = {"exc": type(e).__name__[:80], "msg": _short(e)}
        _report(out)
    _flush_exit(0)


def _resolve(g: dict[str, Any], fn: str, code: str) -> Any:
    """The callable for an APPS call-based test: ``Solution().fn`` for LeetCode code."""
    if "class Solution" in code and "Solution" in g:
        return getattr(g["Solution"](), fn)
    if fn in g:
        return g[fn]
    raise NameError(f"name {fn!r} is not defined")


# ---- judge mode: a clean judge process talks to a program server over two pipes ----


def serve(req: dict[str, Any]) -> NoReturn:
    """The program side of judge mode: run the program, then answer lookups and calls."""
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
        wire.write_frame(RESP_FD, {"fatal": _short(e)})
        _flush_exit(1)
    while True:
        msg = wire.read_frame(REQ_FD)
        if msg is None:
            _flush_exit(0)
        try:
            out = _serve_one(msg, g, table, handle)
        except BaseException as e:
            out = {"exc": type(e).__name__[:80], "msg": _short(e)}
        try:
            wire.write_frame(RESP_FD, out)
        except BaseException:
            _flush_exit(1)


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
            detail = _short(e)
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
