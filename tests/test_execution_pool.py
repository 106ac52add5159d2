"""The worker pool: streaming batch results, concurrent callers, replaced workers."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from bcoder.core.spec import TestSpec as Spec
from bcoder.execution import Executor, Outcome, isolation_level

pytestmark = pytest.mark.skipif(
    isolation_level() == "rlimits-only", reason="needs Linux namespaces (bubblewrap or unshare)"
)
DOUBLE = Spec(inputs=("21\n",), outputs=("42\n",))


@pytest.fixture(scope="module")
def ex():
    with Executor(workers=2, timeout=2.0) as e:
        yield e


def test_run_many_streams_every_index_once_with_its_own_result(ex):
    slow = ("import time\ntime.sleep(1.0)\nprint(42)\n", DOUBLE)
    list(ex.run_many([slow, slow]))  # both workers up
    jobs = [(f"print(int(input()) * 2 + {i % 2})\n", DOUBLE) for i in range(20)]
    jobs.insert(3, slow)
    seen = {}
    order = []
    for i, res in ex.run_many(iter(jobs)):  # any iterable, consumed lazily
        seen[i] = res.outcome
        order.append(i)
    assert sorted(seen) == list(range(len(jobs)))
    assert seen[3] is Outcome.PASS
    assert all(
        seen[i]
        is (Outcome.PASS if (i < 3 and i % 2 == 0) or (i > 3 and i % 2 == 1) else Outcome.FAIL)
        for i in seen
        if i != 3
    )
    assert order.index(3) > 3, "results arrive as they finish, not in submission order"


def test_concurrent_callers_share_the_workers(ex):
    results = {}

    def call(k: int) -> None:
        results[k] = ex.run(f"print({k})\n", Spec(inputs=("",), outputs=(str(k),)))

    threads = [threading.Thread(target=call, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[k].outcome is Outcome.PASS for k in range(6))


def test_a_killed_worker_is_replaced(ex):
    assert ex.run("print(42)\n", DOUBLE).outcome is Outcome.PASS
    for w in ex.workers:
        if w.alive:
            os.killpg(w.proc.pid, signal.SIGKILL)  # from outside, as a crash would
    res = [ex.run("print(42)\n", DOUBLE) for _ in range(3)]
    assert all(r.outcome is Outcome.PASS for r in res), [r.to_dict() for r in res]


def test_a_closed_executor_refuses_work():
    e = Executor(workers=1)
    e.close()
    with pytest.raises(Exception, match="closed"):
        e.run("print(1)", DOUBLE)


def test_an_unknown_isolation_level_is_a_user_error():
    from bcoder.core.errors import BcoderError

    with pytest.raises(BcoderError, match="unknown isolation level"):
        Executor(level="chroot")
