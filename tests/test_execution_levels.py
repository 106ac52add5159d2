"""The other isolation levels (``unshare``, ``rlimits-only``) and the user-namespace variants that a
normal user gets, each on a few essential cases with real processes."""

from __future__ import annotations

import os
import time

import pytest

from bcoder.core.spec import TestSpec as Spec
from bcoder.execution import Executor, Outcome
from bcoder.execution.sandbox import level_available, sandbox_uid

DOUBLE = Spec(inputs=("21\n",), outputs=("42\n",))
ANSWER = "print(int(input()) * 2)\n"
FORK_BOMB = (
    "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
)
PROBE = (
    "import os, socket\nst = open('/proc/self/status').read()\n"
    "eff = [l.split()[1] for l in st.splitlines() if l.startswith('CapEff')][0]\n"
    "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=0.5)\n    net = 'net'\n"
    "except OSError:\n    net = 'nonet'\n"
    "print(os.getuid() != 0, int(eff, 16), net, os.path.exists('/work'), len(os.listdir('/proc')) < 8)\n"
)


def _descendants(pid: int) -> int:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(name))
    todo, n = [pid], 0
    while todo:
        n += 1
        todo += kids.get(todo.pop(), [])
    return n - 1


def _uid_processes(uid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    out.append(int(name))
            except OSError:
                pass
    return out


@pytest.fixture(params=["unshare", "unshare-userns", "bubblewrap-userns", "rlimits-only"])
def level_ex(request, monkeypatch):
    level, userns = request.param.removesuffix("-userns"), request.param.endswith("-userns")
    if userns:
        if os.geteuid() != 0:
            pytest.skip("the user-namespace variant is the default when not root")
        monkeypatch.setenv("BCODER_SANDBOX_USERNS", "1")
    if not level_available(level):
        pytest.skip(f"{level} is not available here")
    warnings: list[str] = []
    with Executor(
        workers=1, timeout=1.5, memory_mb=512, level=level, on_warning=warnings.append
    ) as ex:
        yield request.param, ex, warnings


def test_essential_verdicts_at_every_level(level_ex):
    name, ex, warnings = level_ex
    assert bool(warnings) == (name == "rlimits-only")  # weak isolation is announced
    assert ex.run(ANSWER, DOUBLE).outcome is Outcome.PASS
    assert ex.run("print(", DOUBLE).outcome is Outcome.COMPILE_ERROR
    assert ex.run("print(1 // 0)", DOUBLE).outcome is Outcome.RUNTIME_ERROR
    assert ex.run("while True:\n    pass\n", DOUBLE).outcome is Outcome.RUNTIME_ERROR
    asserts = Spec(asserts=("assert f(2) == 4", "import math\nassert math.isclose(f(1), 2.0)"))
    assert ex.run("def f(x):\n    return 2 * x\n", asserts).outcome is Outcome.PASS
    assert ex.run("def f(x):\n    return 3 * x\n", asserts).outcome is Outcome.FAIL


def test_fork_bombs_leave_nothing_behind_at_every_level(level_ex):
    name, ex, _ = level_ex
    assert ex.run(FORK_BOMB, DOUBLE).outcome is Outcome.RUNTIME_ERROR
    worker = ex.workers[0]
    assert worker.alive and _descendants(worker.proc.pid) <= 2
    assert ex.run(ANSWER, DOUBLE).outcome is Outcome.PASS
    if os.geteuid() == 0 and "userns" not in name:  # the worker's own uid: nothing survives it
        ex.run(
            "import os\nfor _ in range(5):\n    os.fork()\nimport time\ntime.sleep(60)\n", DOUBLE
        )
        uid = sandbox_uid(worker.slot)
        worker.kill()
        end = time.monotonic() + 5  # pid 1 of a namespace takes a moment to tear it down
        while _uid_processes(uid) and time.monotonic() < end:
            time.sleep(0.05)
        assert _uid_processes(uid) == [], f"processes of uid {uid} outlived their worker"


def test_namespaced_levels_isolate(level_ex):
    name, ex, _ = level_ex
    if name == "rlimits-only":
        pytest.skip("no namespaces at this level")
    res = ex.run(PROBE, Spec(inputs=("",), outputs=("True 0 nonet False True",)))
    assert res.outcome is Outcome.PASS, res.to_dict()
