"""What a forked child does inside the sandbox: run a program on stdin, or evaluate calls.

Stdlib only (runs in the sandbox next to ``zygote.py`` and ``wire.py``). Every function here ends
the process with ``os._exit``; none returns to the zygote's loop.

Trust: the compile status is written (fd 4) and closed *before* any program code runs, so it is
exact. Everything written after that can be forged by the program and is treated as the program's
claim: its stdout, and the values it reports for calls (fd 3). Judge mode is in ``judge.py``.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sys
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


def describe(e: BaseException) -> str:
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
            msg = describe(e) + (f" (line {line})" if line else "")
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


def flush_exit(rc: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            rc = rc or 1
    os._exit(rc)


def end_program(rc: int) -> NoReturn:
    """End the program's process as ``python`` ends a script: wait for its non-daemon threads
    (``threading.Thread(target=main).start()`` is how deep recursion gets a big stack), flush
    stdout and stderr, exit with ``rc``; a failed flush makes the status non-zero.

    The parent takes any non-zero status (or a signal) as a runtime error, in every test format:
    a thread that ends the process with ``os._exit(3)`` after the last answer is one.
    """
    threading = sys.modules.get("threading")  # preloaded by the zygote
    if threading is not None:
        try:
            threading._shutdown()
        except BaseException:
            rc = rc or 1
    flush_exit(rc)


def exit_status(code: Any) -> int:
    """The status of a program that raised ``SystemExit(code)``, as ``python`` would end it:
    0 for None and 0 (``exit()``, ``sys.exit(0)``), the code for other integers, 1 with the
    message on stderr for anything else (``sys.exit("no solution")``). Unlike ``python``, a
    non-zero code never wraps to 0 (``sys.exit(256)``): the program asked to fail."""
    if code is None:
        return 0
    if isinstance(code, int):
        return 0 if code == 0 else (code & 0xFF) or 1
    with contextlib.suppress(BaseException):
        sys.stderr.write(f"SystemExit: {code}\n")
    return 1


def run_stdio(req: dict[str, Any]) -> NoReturn:
    """Run the program as ``__main__`` on stdin (fd 0); exit with the status ``python`` would.

    An uncaught exception is status 1. ``SystemExit`` is the program's own status
    (:func:`exit_status`): ``exit()`` or ``sys.exit(0)`` after printing the answer is a normal end
    (a common idiom of stdin programs, and what a judge running ``python`` sees), while
    ``sys.exit(1)`` or ``raise SystemExit(3)`` is a failure even after the right output. (The
    APPS harness ignored the code; the reward of DESIGN section 2 counts a failing run as a
    runtime error, and the process's status is the one fact about it that is not its output.)
    """
    obj = compile_program(req["code"], wrap=req.get("preamble", False))
    g = program_globals("__main__", req.get("preamble", False))
    rc = 0
    try:
        exec(obj, g)
    except SystemExit as e:
        rc = exit_status(e.code)
    except BaseException:
        rc = 1
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    end_program(rc)


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

    Here the program is a module that must load and then answer: ``SystemExit`` while it loads,
    whatever its code, leaves no answers (a runtime error, as under the HumanEval and APPS
    harnesses), and one raised by a call is that call's exception. After the last answer the
    process ends as a script would (:func:`end_program`), and its status counts too.
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
        _report({"fatal": describe(e)})
        flush_exit(1)
    _report({"ready": True})
    for item, expr in zip(req["items"], exprs, strict=False):
        try:
            value = eval(expr, g) if expr is not None else target(*item["args"])
            out = _encode_result(value)
        except BaseException as e:
            out = {"exc": type(e).__name__[:80], "msg": describe(e)}
        _report(out)
    end_program(0)


def _resolve(g: dict[str, Any], fn: str, code: str) -> Any:
    """The callable for an APPS call-based test: ``Solution().fn`` for LeetCode code."""
    if "class Solution" in code and "Solution" in g:
        return getattr(g["Solution"](), fn)
    if fn in g:
        return g[fn]
    raise NameError(f"name {fn!r} is not defined")
