"""From a TestSpec to sandbox requests, and from the sandbox's answers to per-test verdicts.

Expected outputs stay here, on the trusted side. Three request kinds:

- ``stdio``: one run of the program per test, stdin in, stdout compared here (APPS rules).
- ``call``: one run of the program, then one value per test reported as plain data and compared
  here: APPS call-based tests (``fn_name``, LeetCode ``class Solution``) and assert-style tests
  that are rewritten as ``left == literal`` (MBPP's ``assert f(x) == y``: ``f(x)`` is evaluated in
  the sandbox, ``y`` never leaves this process).
- ``judge``: any other assert (``math.isclose``, HumanEval ``check(candidate)``...): a clean judge
  process in the sandbox runs the test code and calls into the program process only through a
  pipe carrying plain values; its verdict travels on a pipe the program never holds.

Every answered item of a ``call`` request also records what the program gave
(``TestOutcome.value``, ``values.py``), and a ``call`` request may be answered in several runs
(``calls.py``): a ``Request.tail`` holds the items a fresh run still has to answer.
"""

from __future__ import annotations

import ast
import signal
from dataclasses import dataclass, replace
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.spec import TestSpec
from bcoder.core.types import TestOutcome
from bcoder.execution import compare, values, wire

SHOW = 2000  # characters of stdout / stderr kept per test for display


@dataclass
class Request:
    """One sandbox request and how its answer maps back to the spec's tests."""

    body: dict[str, Any]  # op + payload (the executor adds code and limits)
    tests: list[int]  # the spec's test indices it decides, in answer order
    expected: list[Any]  # per test: expected stdout / value (never sent)
    check: str = "equal"  # how answers are compared: stdio | apps (call-based) | equal | judge
    rel_tol: float = 0.0  # check "equal": the float tolerance of the spec (0: exact)

    def tail(self, start: int) -> Request:
        """The same ``call`` request without its first ``start`` items."""
        body = dict(self.body, items=self.body["items"][start:])
        return replace(self, body=body, tests=self.tests[start:], expected=self.expected[start:])


def split_assert(stmt: str) -> tuple[str, Any] | None:
    """``assert X == literal`` (either side) as ``(source of X, literal value)``, else None."""
    try:
        tree = ast.parse(stmt)
    except SyntaxError as err:
        raise BcoderError(f"tests: assert {stmt[:60]!r} is not valid Python ({err.msg})") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return None
    test = tree.body[0].test
    if not (
        isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
    ):
        return None
    for probe, literal in ((test.left, test.comparators[0]), (test.comparators[0], test.left)):
        try:
            expected = ast.literal_eval(literal)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        try:
            ast.literal_eval(probe)
            continue  # both sides literal: nothing of the program's to evaluate
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
        return ast.get_source_segment(stmt, probe) or ast.unparse(probe), expected
    return None


def plan(spec: TestSpec) -> list[Request]:
    """The requests that run every test of ``spec``, in order."""
    if len(spec) == 0:
        raise BcoderError("tests: there are no tests to run")
    if spec.kind == "stdio":
        return [
            Request(
                {"op": "stdio", "stdin": compare.as_text(inp), "preamble": True},
                [i],
                [out],
                "stdio",
            )
            for i, (inp, out) in enumerate(zip(spec.inputs or (), spec.outputs or (), strict=False))
        ]
    if spec.kind == "call":
        items, expected = [], []
        for inp, out in zip(spec.inputs or (), spec.outputs or (), strict=False):
            args = list(inp) if isinstance(inp, (list, tuple)) else [inp]
            if args:
                args[0] = compare.int_keys(args[0])
            items.append({"args": args})
            expected.append(out)
        return [
            Request(
                {"op": "call", "fn": spec.fn_name, "items": items, "preamble": True},
                list(range(len(items))),
                expected,
                "apps",
            )
        ]
    for a in spec.asserts or ():  # validate the test code here, not in the sandbox
        split_assert(a)
    try:
        ast.parse(spec.setup)
    except SyntaxError as err:
        raise BcoderError(f"tests: setup is not valid Python ({err.msg})") from None
    calls, judged = [], []
    for i, stmt in enumerate(spec.asserts or ()):
        split = split_assert(stmt)
        (calls if split else judged).append((i, split, stmt))
    reqs = []
    if calls:
        body = {"op": "call", "setup": spec.setup, "items": [{"expr": s[0]} for _, s, _ in calls]}
        tests, expected = [i for i, _, _ in calls], [s[1] for _, s, _ in calls]
        reqs.append(Request(body, tests, expected, rel_tol=spec.rel_tol))
    if judged:
        body = {"op": "judge", "setup": spec.setup, "statements": [s for _, _, s in judged]}
        reqs.append(Request(body, [i for i, _, _ in judged], [None] * len(judged), "judge"))
    return reqs


def _clip(text: str) -> str:
    return text if len(text) <= SHOW else text[:SHOW] + "\n… (truncated)"


def _last_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[-1].strip()[:300] if lines else ""


_SIGNALS = {
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGXFSZ: "file size limit exceeded",
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
}


def failure(resp: dict[str, Any], timeout: float) -> tuple[str, str] | None:
    """(verdict, detail) when the run as a whole failed, else None.

    A run fails when it did not compile, hit a limit, was killed by a signal, or its process
    (the program's, in judge mode) ended with a non-zero status: a runtime error even when every
    answer it gave was right (``sys.exit(1)`` after printing the output).
    """
    if "error" in resp:
        return "runtime_error", f"sandbox error: {resp['error']}"
    status = resp.get("status", "")
    if status.startswith("C"):
        return "compile_error", status[1:].strip() or "compile error"
    limit = resp.get("limit")
    if not status.startswith("R") and (limit or resp.get("signal")):
        return "compile_error", "compiling exceeded the limits"  # no program code had run
    if limit == "timeout":
        return "runtime_error", f"time limit exceeded ({timeout:g} s)"
    if limit == "total":
        return "runtime_error", "time limit exceeded (the time budget of all its tests is spent)"
    if limit == "memory":
        return "runtime_error", "memory limit exceeded"
    if limit == "output":
        return "runtime_error", "output limit exceeded"
    if resp.get("signal"):
        sig = resp["signal"]
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return "runtime_error", f"killed by {name}" + (
            f" ({_SIGNALS[sig]})" if sig in _SIGNALS else ""
        )
    if not status.startswith("R"):
        return "runtime_error", "the sandbox could not start the program"
    if resp.get("exit") != 0:
        return "runtime_error", _last_line(resp.get("stderr", "")) or (
            f"exit status {resp.get('exit')}"
        )
    return None


def judge_stdio(resp: dict[str, Any], expected: Any, timeout: float) -> TestOutcome:
    out, err = resp.get("stdout", ""), resp.get("stderr", "")
    t = float(resp.get("wall", 0.0))
    bad = failure(resp, timeout)
    if bad is not None:
        return TestOutcome(bad[0], t, bad[1], _clip(out), _clip(err))
    if compare.stdio_matches(out, expected):
        return TestOutcome("pass", t, "", _clip(out), _clip(err))
    return TestOutcome("fail", t, compare.first_difference(out, expected), _clip(out), _clip(err))


def judge_items(req: Request, resp: dict[str, Any], timeout: float) -> list[TestOutcome]:
    """Verdicts of a ``call`` or ``judge`` request's tests, in ``req.tests`` order.

    In a ``call`` request whose program loaded, the item that was running when time ran out is
    the one that timed out (value ``timeout``): ``calls.py`` answers the items after it in a
    fresh run.
    """
    out, err = _clip(resp.get("stdout", "")), _clip(resp.get("stderr", ""))
    n = len(req.tests)
    bad = failure(resp, timeout)
    if bad is not None and bad[0] == "compile_error":
        return [TestOutcome("compile_error", 0.0, bad[1], out, err), *_skipped(n - 1)]
    items, times = _parse(resp.get("items", [])), [float(t) for t in resp.get("times", [])]
    wall, loaded = float(resp.get("wall", 0.0)), False
    if req.body["op"] == "call":  # the first frame says whether the program's top level ran
        head = items.pop(0) if items else {}
        if "fatal" in head:
            msg = str(head["fatal"])[:300]
            return [TestOutcome("runtime_error", 0.0, msg, out, err), *_skipped(n - 1)]
        loaded = bool(head.get("ready"))
        if loaded:  # the item that failed ran since the last answer
            wall = max(0.0, wall - sum(times[: len(items) + 1]))
        times = times[1:]
    results = [
        _verdict(item, req, k, times[k] if k < len(times) else 0.0, out, err)
        for k, item in enumerate(items[:n])
    ]
    if len(results) < n:
        if bad is None:
            bad = (
                "runtime_error",
                _last_line(resp.get("stderr", ""))
                or ("the program exited before the tests finished"),
            )
        timed_out = loaded and resp.get("limit") in ("timeout", "total")
        value = values.TIMEOUT if timed_out else ""
        results.append(TestOutcome(bad[0], wall, bad[1], out, err, value))
        results += _skipped(n - len(results))
    elif bad is not None and all(r.verdict != "runtime_error" for r in results):
        # Every test was answered, then the process failed (exit status, limit, signal): the
        # run is a runtime error, shown on its last test (which keeps the value it returned).
        detail = f"after the tests: {bad[1]}"
        results[-1] = replace(results[-1], verdict="runtime_error", detail=detail)
    return results


def _parse(raw: list[Any]) -> list[dict[str, Any]]:
    out = []
    for text in raw:
        try:
            item = wire.loads(text) if isinstance(text, str) else None
        except ValueError:
            item = None
        out.append(item if isinstance(item, dict) else {"malformed": True})
    return out


def _skipped(n: int) -> list[TestOutcome]:
    return [TestOutcome("skipped", 0.0, "not run") for _ in range(max(0, n))]


def _verdict(
    item: dict[str, Any], req: Request, k: int, t: float, out: str, err: str
) -> TestOutcome:
    """The verdict on the answer to item ``k``, with what the program gave (``call`` requests)."""
    if req.check == "judge":
        verdict = item.get("verdict")
        if verdict not in ("pass", "fail", "runtime_error"):
            return TestOutcome("runtime_error", t, "malformed verdict from the judge", out, err)
        return TestOutcome(verdict, t, str(item.get("detail", ""))[:300], out, err)
    if "exc" in item:
        detail = str(item.get("msg") or item["exc"])[:300]
        return TestOutcome("runtime_error", t, detail, out, err, values.raised_text(item["exc"]))
    if "ok" not in item:
        return TestOutcome("runtime_error", t, "malformed answer from the program", out, err)
    try:
        value = wire.decode(item["ok"])
    except (ValueError, TypeError, KeyError, RecursionError) as e:
        return TestOutcome("fail", t, f"unreadable value ({e})", out, err)
    text = values.value_text(value)
    if isinstance(value, wire.Opaque):
        detail = f"returned a {value.type_name} object, not a plain value"
        return TestOutcome("fail", t, detail, out, err, text)
    expected = req.expected[k]
    if req.check == "apps":
        ok = compare.call_matches(value, expected)
    else:
        ok = compare.equal_within(value, expected, req.rel_tol)
    detail = (
        "" if ok else (f"expected {compare.clip_repr(expected)}, got {compare.clip_repr(value)}")
    )
    return TestOutcome("pass" if ok else "fail", t, detail, out, err, text)
