"""Call requests as ranking without tests needs them (issue 32), in real sandboxed processes: a
hanging test is that test's own time-out while the others still run (with a cap on the total),
every answer records a canonical text of what the program gave, and floats may be compared with
a tolerance."""

from __future__ import annotations

import time

import pytest

from bcoder.core.spec import TestSpec as Spec
from bcoder.execution import Executor, Outcome, isolation_level

pytestmark = pytest.mark.skipif(
    isolation_level() == "rlimits-only", reason="needs Linux namespaces (bubblewrap or unshare)"
)

T = 1.5  # seconds per test
THREE = Spec(asserts=("assert f(1) == 1", "assert f(2) == 2", "assert f(3) == 3"))
THREE_CALLS = Spec(inputs=([1], [2], [3]), outputs=(1, 2, 3), fn_name="f")


@pytest.fixture(scope="module")
def ex():
    with Executor(workers=1, timeout=T, stop_on_failure=False) as e:
        yield e


HANGS = {
    "spin": "def f(x):\n    while x == 2:\n        pass\n    return x\n",
    "sleep": "import time\ndef f(x):\n    if x == 2:\n        time.sleep(1000)\n    return x\n",
    "swallows-BaseException": (
        "def f(x):\n    while x == 2:\n        try:\n            while True:\n                pass\n"
        "        except BaseException:\n            pass\n    return x\n"
    ),
    "own-alarm-and-ignored-signals": (
        "import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "def f(x):\n    signal.alarm(1)\n    while x == 2:\n        pass\n    return x\n"
    ),
}


@pytest.mark.parametrize("spec", [THREE, THREE_CALLS], ids=["asserts", "call-based"])
@pytest.mark.parametrize("code", list(HANGS.values()), ids=list(HANGS))
def test_a_hanging_test_is_its_own_time_out_and_the_next_tests_still_run(ex, code, spec):
    res = ex.run(code, spec)
    first, second, third = res.tests
    assert (first.verdict, first.value) == ("pass", "1"), res.to_dict()
    assert (second.verdict, second.value) == ("runtime_error", "timeout"), res.to_dict()
    assert second.detail == f"time limit exceeded ({T:g} s)"
    assert T - 0.2 < second.time < T + 1.0
    assert (third.verdict, third.value) == ("pass", "3"), res.to_dict()
    assert res.outcome is Outcome.RUNTIME_ERROR


def test_the_tests_after_a_time_out_run_in_a_fresh_process(ex):
    code = (
        "calls = []\ndef f(x):\n    calls.append(x)\n    while x == 2:\n        pass\n"
        "    return len(calls)\n"
    )
    res = ex.run(code, Spec(asserts=("assert f(1) == 1", "assert f(2) == 2", "assert f(3) == 1")))
    assert [t.verdict for t in res.tests] == ["pass", "runtime_error", "pass"], res.to_dict()


def test_with_stop_on_failure_a_time_out_still_ends_the_run(ex):
    t0 = time.monotonic()
    res = ex.run(HANGS["spin"], THREE, stop_on_failure=True)
    assert [t.verdict for t in res.tests] == ["pass", "runtime_error", "skipped"]
    assert res.tests[1].value == "timeout" and time.monotonic() - t0 < 2 * T


def test_twenty_hanging_tests_cost_three_time_outs_not_twenty(ex):
    spec = Spec(asserts=tuple(f"assert f({i}) == {i}" for i in range(20)))
    t0 = time.monotonic()
    res = ex.run("def f(x):\n    while True:\n        pass\n", spec)
    elapsed = time.monotonic() - t0
    assert [t.value for t in res.tests[:3]] == ["timeout"] * 3, res.to_dict()
    assert all(t.verdict == "skipped" for t in res.tests[3:])
    assert res.tests[3].detail == "not run: 3 tests timed out"
    assert elapsed < 3 * T + 3.0, elapsed


def test_all_runs_of_a_request_share_one_time_budget():
    # Loading takes T/2 and every test hangs: runs end at 1.5 T and 3 T; the third test would
    # end at 4.5 T but the budget of the request, (3 + 1) x T, stops it at 4 T.
    code = f"import time\ntime.sleep({T / 2})\ndef f(x):\n    time.sleep(1000)\n"
    with Executor(workers=1, timeout=T, stop_on_failure=False, max_timeouts=10) as big:
        t0 = time.monotonic()
        res = big.run(code, THREE)
        elapsed = time.monotonic() - t0
    assert [t.verdict for t in res.tests] == ["runtime_error"] * 3, res.to_dict()
    assert [t.detail for t in res.tests[:2]] == [f"time limit exceeded ({T:g} s)"] * 2
    assert "time budget of all its tests" in res.tests[2].detail
    assert 4 * T - 0.3 < elapsed < 4 * T + 2.0, elapsed


def test_equal_answers_of_different_programs_get_equal_values(ex):
    spec = Spec(
        asserts=(
            "assert f(1) == None",
            "assert g() == None",
            "assert h() == None",
            "assert k(0) == None",
        )
    )
    one = (
        "def f(x):\n    return {'b': {3, 2, 1}, 'a': [0.1 + 0.2, -0.0]}\n"
        "def g():\n    return frozenset(range(5, 0, -1))\n"
        "def h():\n    return list(range(100000))\n"
        "def k(x):\n    return 1 / x\n"
    )
    two = (
        "def f(x):\n    d = {'a': [0.3, 0.0]}\n    d['b'] = {1, 2, 3}\n    return d\n"
        "def g():\n    return {1, 2, 3, 4, 5}\n"
        "def h():\n    return [i for i in range(100000)]\n"
        "def k(x):\n    raise ZeroDivisionError(f'at {id(x)}')\n"
    )
    a, b = ex.run(one, spec), ex.run(two, spec)
    assert [t.value for t in a.tests] == [t.value for t in b.tests], (a.to_dict(), b.to_dict())
    assert a.tests[0].value == "{'a': [0.3, 0], 'b': {1, 2, 3}}"
    assert a.tests[3].value == "raise ZeroDivisionError"
    assert len(a.tests[2].value) <= 200 and "sha256=" in a.tests[2].value


def test_different_answers_get_different_values(ex):
    spec = Spec(asserts=("assert f(1) == 1",))
    texts = [
        ex.run(code, spec).tests[0].value
        for code in (
            "def f(x):\n    return [1, 2]\n",
            "def f(x):\n    return (1, 2)\n",
            "def f(x):\n    return '[1, 2]'\n",
            "def f(x):\n    raise ValueError\n",
            "class Node:\n    pass\ndef f(x):\n    return Node()\n",
        )
    ]
    assert texts == ["[1, 2]", "(1, 2)", "'[1, 2]'", "raise ValueError", "opaque Node"]


def test_call_based_answers_record_their_values(ex):
    code = "class Solution:\n    def f(self, x):\n        return [x] * x\n"
    res = ex.run(code, THREE_CALLS)
    assert [t.value for t in res.tests] == ["[1]", "[2, 2]", "[3, 3, 3]"]


FLOATS = (
    "assert f() == 0.3",
    "assert g() == [1.0, (2.0, 3)]",
    "assert h() == {'a': 0.1, 'b': {0.5}}",
    "assert k() == 3",
)
FLOAT_CODE = (
    "def f():\n    return 0.1 + 0.2\n"
    "def g():\n    return [1 + 1e-9, (2.0000001, 3)]\n"
    "def h():\n    return {'a': 0.3 / 3, 'b': {1 / 2 + 1e-12}}\n"
    "def k():\n    return 3.0000000001\n"
)


def test_a_float_tolerance_accepts_rounding_through_containers(ex):
    exact = ex.run(FLOAT_CODE, Spec(asserts=FLOATS))
    assert [t.verdict for t in exact.tests] == ["fail"] * 4, exact.to_dict()
    loose = ex.run(FLOAT_CODE, Spec(asserts=FLOATS, rel_tol=1e-6))
    assert loose.outcome is Outcome.PASS, loose.to_dict()


def test_a_float_tolerance_still_refuses_wrong_answers_and_keeps_ints_exact(ex):
    spec = Spec(
        asserts=("assert f() == 0.3", "assert g() == 3", "assert h() == [1.0]"), rel_tol=1e-6
    )
    code = "def f():\n    return 0.31\ndef g():\n    return 4\ndef h():\n    return (1.0,)\n"
    res = ex.run(code, spec)
    assert [t.verdict for t in res.tests] == ["fail"] * 3, res.to_dict()
