"""Verdicts that must be exact: forged passes, compile errors versus runtime errors, and legitimate
programs that a careless sandbox would break. Real sandboxed processes throughout."""

from __future__ import annotations

import sys

import pytest

from bcoder.core.spec import TestSpec as Spec
from bcoder.execution import Executor, Outcome, isolation_level

pytestmark = pytest.mark.skipif(
    isolation_level() == "rlimits-only", reason="needs Linux namespaces (bubblewrap or unshare)"
)

EXPECTED = "expected-7f3a9c"  # the answer; it must never be readable by the program
REWRITTEN = Spec(asserts=(f"assert f(2) == {EXPECTED!r}",))  # evaluated f(2), compared here
JUDGED = Spec(asserts=(f"assert f(2) in ({EXPECTED!r},)",))  # run by the clean judge
HUMANEVAL = Spec(
    asserts=(f"def check(candidate):\n    assert candidate(2) == {EXPECTED!r}\n\ncheck(f)\n",)
)
SPECS = [REWRITTEN, JUDGED, HUMANEVAL]
SPEC_IDS = ["rewritten", "judged", "humaneval"]


@pytest.fixture(scope="module")
def ex():
    with Executor(workers=1, timeout=10.0, memory_mb=768) as e:
        yield e


def run(ex, code, spec):
    res = ex.run(code, spec)
    everything = "".join(t.stdout + t.stderr + t.detail for t in res.tests)
    # Nothing the program could read of the expected value may come back from it.
    assert EXPECTED not in everything.replace(f"expected {EXPECTED!r}", ""), res.to_dict()
    return res


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_the_honest_program_passes(ex, spec):
    assert run(ex, f"def f(x):\n    return {EXPECTED!r}\n", spec).outcome is Outcome.PASS


FORGERIES = {
    "exit-0-before-tests": (
        "import os\nos._exit(0)\ndef f(x):\n    return 'wrong'\n",
        Outcome.RUNTIME_ERROR,
    ),
    "sys-exit-before-tests": ("import sys\nsys.exit(0)\n", Outcome.RUNTIME_ERROR),
    "atexit-hook": (
        "import atexit, os\natexit.register(lambda: os._exit(0))\ndef f(x):\n    return 'wrong'\n",
        Outcome.FAIL,
    ),
    "eq-always-true": (
        "class A:\n    def __eq__(self, o):\n        return True\n"
        "    __hash__ = object.__hash__\ndef f(x):\n    return A()\n",
        Outcome.FAIL,
    ),
    "str-subclass": (
        "class S(str):\n    def __eq__(self, o):\n        return True\n"
        "    __hash__ = str.__hash__\ndef f(x):\n    return S('wrong')\n",
        Outcome.FAIL,
    ),
    "patched-builtins": (
        "import builtins\nbuiltins.AssertionError = type('Nope', (BaseException,), {})\n"
        "builtins.isinstance = lambda *a: True\nbuiltins.repr = lambda o: 'x'\n"
        "def f(x):\n    return 'wrong'\n",
        Outcome.FAIL,
    ),
    # Breaking what the harness itself uses leaves no answer: a runtime error, never a pass.
    "sabotaged-harness": (
        "import builtins, json, os\nbuiltins.type = lambda *a: str\n"
        'json.dumps = lambda *a, **k: \'{"ok": "x"}\'\nos.write = lambda *a: 0\n'
        "def f(x):\n    return 'wrong'\n",
        Outcome.RUNTIME_ERROR,
    ),
    "frame-walk": (
        "import sys, gc, re\ndef f(x):\n    pat = re.compile('expected-7f[0-9a-f]{4}')\n"
        "    seen, frame = [], sys._getframe()\n    while frame:\n"
        "        for name in ('expected', 'verdict', 'ok', 'passed'):\n"
        "            if name in frame.f_locals:\n                frame.f_locals[name] = True\n"
        "        seen += [repr(v) for v in frame.f_locals.values()]\n"
        "        seen += [repr(v) for v in frame.f_globals.values()]\n        frame = frame.f_back\n"
        "    seen += [o for o in gc.get_objects() if type(o) is str]\n"
        "    leaked = [m.group() for s in seen for m in [pat.search(s)] if m]\n"
        "    return leaked[0] if leaked else 'wrong'\n",
        Outcome.FAIL,
    ),
    "fake-success-marker": (
        "print('PASS')\nprint('{\"verdict\": \"pass\"}')\n"
        "def f(x):\n    print('All tests passed')\n    return 'wrong'\n",
        Outcome.FAIL,
    ),
    "kill-everything": (
        "import os, signal\ndef f(x):\n    try:\n        os.kill(-1, signal.SIGKILL)\n"
        "    except OSError:\n        pass\n    return 'wrong'\n",
        None,
    ),
}


MEMORY_SCAN = (
    "import ctypes, re\ndef f(x):\n    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # dumpable\n"
    "    found = 'wrong'\n    maps = open('/proc/self/maps').read().splitlines()\n"
    "    with open('/proc/self/mem', 'rb') as mem:\n        for line in maps:\n"
    "            lo, hi = (int(v, 16) for v in line.split()[0].split('-'))\n"
    "            if hi - lo > 1 << 27 or 'r' not in line.split()[1]:\n                continue\n"
    "            try:\n                mem.seek(lo)\n                chunk = mem.read(hi - lo)\n"
    "            except OSError:\n                continue\n"
    "            m = re.search(rb'expected-7f[0-9a-f]{4}', chunk)\n"
    "            if m:\n                found = m.group().decode()\n    return found\n",
    Outcome.FAIL,
)


def test_expected_values_never_reach_the_program_process():
    """A program that reads its whole memory finds no expected value, in any mode. (A fresh worker:
    the zygote's heap may still hold earlier programs' source, which is not test data.)"""
    scan = MEMORY_SCAN[0]
    with Executor(workers=1, timeout=10.0) as fresh:
        for spec in SPECS:
            res = run(fresh, scan, spec)
            assert res.outcome is Outcome.FAIL, res.to_dict()
        stdio = Spec(inputs=("",), outputs=(EXPECTED,))
        assert run(fresh, scan + "print(f(0))\n", stdio).outcome is Outcome.FAIL
        # The scan does find what is in its memory (so the checks above are not vacuous).
        control = "marker = 'expected-7f' + '0000'\n" + scan + "print(f(0))\n"
        found = Spec(inputs=("",), outputs=("expected-7f0000",))
        assert run(fresh, control, found).outcome is Outcome.PASS


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@pytest.mark.parametrize("name", list(FORGERIES))
def test_forged_passes_are_refused(ex, name, spec):
    code, expected = FORGERIES[name]
    res = run(ex, code, spec)
    if expected is None:  # killing everything: the judge dies (runtime error), else a wrong answer
        expected = Outcome.FAIL if spec is REWRITTEN else Outcome.RUNTIME_ERROR
    assert res.outcome is expected, res.to_dict()
    assert run(ex, f"def f(x):\n    return {EXPECTED!r}\n", spec).outcome is Outcome.PASS


def test_stdout_is_judged_by_the_parent_not_by_what_the_program_says(ex):
    spec = Spec(inputs=("2\n",), outputs=("4\n",))
    res = run(ex, "print('All tests passed'); print('PASS')\n", spec)
    assert res.outcome is Outcome.FAIL and "expected '4'" in res.detail


# ---- compile errors versus runtime errors ----


@pytest.mark.parametrize(
    "code",
    [
        "def f(x)\n    return x\n",
        "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n",
        "x = 1" + " + 1" * 300000 + "\n",
        "print(1)\x00\n",
        "\tif True:\n  pass\n",
        "return 5\n",
    ],
    ids=["syntax", "deep-parens", "deep-expression", "nul-byte", "indentation", "return-outside"],
)
def test_sources_that_do_not_compile_are_compile_errors(ex, code):
    res = run(ex, code, REWRITTEN)
    assert res.outcome is Outcome.COMPILE_ERROR and res.reward == -1.0, res.to_dict()


@pytest.mark.parametrize(
    "code",
    [
        "exec('1 +')\n",
        "compile('x\\x00', 'f', 'exec')\n",
        "import ast\nast.parse('(' * 300)\n",
        "raise SyntaxError('at run time')\n",
    ],
    ids=["exec", "compile-nul", "ast-parse", "raise"],
)
def test_syntax_errors_at_run_time_are_runtime_errors(ex, code):
    res = run(ex, code + "def f(x):\n    return 1\n", REWRITTEN)
    assert res.outcome is Outcome.RUNTIME_ERROR and res.reward == -0.6, res.to_dict()


def test_a_top_level_return_compiles_for_stdin_programs_as_under_apps(ex):
    code = "n = int(input())\nif n > 0:\n    print(n)\n    return\nprint('neg')\n"
    assert run(ex, code, Spec(inputs=("3\n",), outputs=("3\n",))).outcome is Outcome.PASS


# ---- exit status: a program that ends with a failure status is a runtime error ----

TWICE_STDIO = Spec(inputs=("2\n",), outputs=("4\n",))
TWICE_FORMATS = {
    "stdio": TWICE_STDIO,
    "fn_name": Spec(inputs=([2],), outputs=(4,), fn_name="f"),
    "rewritten": Spec(asserts=("assert f(2) == 4",)),
    "judged": Spec(asserts=("assert f(2) in (4,)",)),
    "humaneval": Spec(
        asserts=("def check(candidate):\n    assert candidate(2) == 4\n\ncheck(f)\n",)
    ),
}
TWICE = "def f(x):\n    return 2 * x\n"
BAD_ENDS = {
    "SystemExit(3)": "raise SystemExit(3)\n",
    "sys.exit(1)": "import sys\nsys.exit(1)\n",
    "sys.exit(256)": "import sys\nsys.exit(256)\n",  # python would exit 0: 256 & 0xFF
    "SystemExit(message)": "raise SystemExit('giving up')\n",
    "os._exit(2)": "import os\nos._exit(2)\n",
    "crash": "raise ValueError('after the output')\n",
    # The process ends only when its non-daemon threads have (as python's does).
    "thread-exits-3": "import os, threading, time\n"
    "threading.Thread(target=lambda: (time.sleep(0.3), os._exit(3))).start()\n",
    "stdout-flush-fails": "import sys\nclass Out:\n    def write(self, s):\n        return len(s)\n"
    "    def flush(self):\n        raise OSError('disk full')\nsys.stdout = Out()\n",
}


@pytest.mark.parametrize("fmt", list(TWICE_FORMATS))
@pytest.mark.parametrize("end", list(BAD_ENDS))
def test_right_answers_then_a_failure_exit_is_a_runtime_error(ex, fmt, end):
    """The answers are right (stdout, or every value), then the process ends with a non-zero
    status: -0.6 in every test format, as a crash would be."""
    spec = TWICE_FORMATS[fmt]
    answer = TWICE + ("print(f(int(input())))\n" if fmt == "stdio" else "")
    assert run(ex, answer, spec).outcome is Outcome.PASS
    res = run(ex, answer + BAD_ENDS[end], spec)
    assert res.outcome is Outcome.RUNTIME_ERROR and res.reward == -0.6, res.to_dict()
    if end == "SystemExit(message)" and fmt == "stdio":
        assert "giving up" in res.detail


@pytest.mark.parametrize(
    "end",
    [
        "exit()\n",
        "quit(0)\n",
        "import sys\nsys.exit(0)\n",
        "raise SystemExit\n",
        "import sys\nsys.exit(False)\n",
    ],
)
def test_a_clean_exit_after_the_right_output_passes(ex, end):
    """``exit()`` / ``sys.exit(0)`` after printing the answer: a common stdin-program idiom."""
    res = run(ex, "print(int(input()) * 2)\n" + end, TWICE_STDIO)
    assert res.outcome is Outcome.PASS, res.to_dict()


@pytest.mark.parametrize("fmt", [f for f in TWICE_FORMATS if f != "stdio"])
def test_any_exit_before_or_during_the_calls_is_a_runtime_error(ex, fmt):
    """A call-based program must load and return its answers: ``exit()`` while loading (even with
    status 0) or inside the function leaves the tests nothing to check."""
    spec = TWICE_FORMATS[fmt]
    for code in (TWICE + "exit()\n", "def f(x):\n    print(2 * x)\n    raise SystemExit(0)\n"):
        res = run(ex, code, spec)
        assert res.outcome is Outcome.RUNTIME_ERROR, (code, res.to_dict())


def test_output_printed_by_a_thread_the_program_does_not_join(ex):
    """The deep-recursion idiom: ``threading.Thread(target=main).start()`` and nothing after it.
    The program's process ends when that thread has, as under python."""
    code = (
        "import sys, threading, time\nsys.setrecursionlimit(10 ** 5)\n"
        "threading.stack_size(64 * 2 ** 20)\n"
        "def main():\n    time.sleep(0.2)\n    print(int(input()) * 2)\n"
        "threading.Thread(target=main).start()\n"
    )
    res = run(ex, code, TWICE_STDIO)
    assert res.outcome is Outcome.PASS, res.to_dict()


# ---- legitimate programs ----


def test_ten_thousand_digit_integers(ex):
    big = "7" * 10_000
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        want = str(int(big) * 3 + 1)
    finally:
        sys.set_int_max_str_digits(old)
    code = "n = int(input())\nprint(n * 3 + 1)\n"
    assert run(ex, code, Spec(inputs=(big + "\n",), outputs=(want,))).outcome is Outcome.PASS
    call = "def f(x):\n    return int('9' * 10000) + x\n"
    spec = Spec(asserts=("assert f(1) == 10 ** 10000",))
    assert run(ex, call, spec).outcome is Outcome.PASS


def test_deep_recursion_in_a_thread_with_a_big_stack(ex):
    code = (
        "import sys, threading\nsys.setrecursionlimit(10 ** 6)\n"
        "threading.stack_size(256 * 2 ** 20)\n"
        "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\nout = []\n"
        "t = threading.Thread(target=lambda: out.append(depth(100000)))\nt.start()\nt.join()\n"
        "print(out[0])\n"
    )
    res = run(ex, code, Spec(inputs=("",), outputs=("100000",)))
    assert res.outcome is Outcome.PASS, res.to_dict()


def test_numpy_import(ex):
    code = "import numpy as np\nprint(int(np.arange(10).sum()), np.__name__)\n"
    assert run(ex, code, Spec(inputs=("",), outputs=("45 numpy",))).outcome is Outcome.PASS


def test_reading_a_million_numbers_from_stdin(ex):
    n = 10**6
    stdin = f"{n}\n" + " ".join(map(str, range(n))) + "\n"
    code = "import sys\ndata = sys.stdin.buffer.read().split()\nprint(sum(map(int, data[1:])))\n"
    res = run(ex, code, Spec(inputs=(stdin,), outputs=(str(n * (n - 1) // 2),)))
    assert res.outcome is Outcome.PASS, res.to_dict()


def test_writing_and_reading_a_scratch_file(ex):
    code = (
        "with open('notes.txt', 'w') as f:\n    f.write('hello')\nprint(open('notes.txt').read())\n"
    )
    assert run(ex, code, Spec(inputs=("",), outputs=("hello",))).outcome is Outcome.PASS


def test_call_based_leetcode_solution_with_list_annotation(ex):
    code = (
        "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
        "        seen = {}\n        for i, x in enumerate(nums):\n"
        "            if target - x in seen:\n                return [seen[target - x], i]\n"
        "            seen[x] = i\n"
    )
    spec = Spec(
        inputs=([[2, 7, 11, 15], 9], [[3, 2, 4], 6]), outputs=([0, 1], [[1, 2]]), fn_name="twoSum"
    )
    assert run(ex, code, spec).outcome is Outcome.PASS


def test_judge_mode_sees_in_place_changes_and_program_exceptions(ex):
    code = "def f(xs):\n    xs.append(1)\n\ndef g(x):\n    raise ValueError('bad')\n"
    spec = Spec(
        asserts=(
            "a = []\nf(a)\nassert a == [1]",
            "try:\n    g(1)\nexcept ValueError:\n    pass\nelse:\n    assert False",
        )
    )
    res = run(ex, code, spec)
    assert res.outcome is Outcome.PASS, res.to_dict()


def test_program_objects_can_be_built_by_setup_code(ex):
    code = (
        "class Node:\n    def __init__(self, v):\n        self.v, self.left = v, None\n"
        "def depth(n):\n    return 0 if n is None else 1 + depth(n.left)\n"
    )
    setup = "root = Node(1)\nroot.left = Node(2)\n"
    for asserts in (("assert depth(root) == 2",), ("assert depth(root) in (2,)",)):
        res = run(ex, code, Spec(asserts=asserts, setup=setup))
        assert res.outcome is Outcome.PASS, res.to_dict()
