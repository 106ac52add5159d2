"""The executor: a pool of warm sandboxed workers (one per core) and the batch API.

Usage::

    with Executor(workers=4, timeout=4.0) as ex:
        result = ex.run(code, spec)                  # one program
        for i, result in ex.run_many(jobs):          # stream results as they finish
            ...

``run`` may be called from several threads at once (each call borrows one worker). A ``call``
request (call-based and ``assert f(x) == literal`` tests) gives each test its own time budget
(``calls.py``).
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.spec import TestSpec
from bcoder.core.types import TestOutcome
from bcoder.execution import plan as planning
from bcoder.execution.calls import answer_calls
from bcoder.execution.result import ExecResult
from bcoder.execution.sandbox import Worker, WorkerDied, isolation_level, level_available

WEAK_WARNING = (
    "bcoder: no Linux namespaces available (bubblewrap / unshare); untrusted programs run with "
    "resource limits and a new session only, and can read your files and reach the network. "
    "Install bubblewrap (apt-get install bubblewrap) to sandbox them."
)


@dataclass(frozen=True)
class Limits:
    """Per-test resource limits."""

    timeout: float = 4.0  # wall-clock seconds per test (a call-based test: per call)
    memory_mb: int = 1024  # address space the program may add (RLIMIT_AS above the baseline)
    output_mb: int = 16  # stdout (and stderr) bytes before the run is stopped
    file_mb: int = 64  # largest file the program may write (RLIMIT_FSIZE)
    scratch_mb: int = 128  # size of the private scratch directory (tmpfs)
    nproc: int = 64  # processes + threads of the sandbox uid (RLIMIT_NPROC)
    nofile: int = 256  # open files (RLIMIT_NOFILE)
    max_timeouts: int = 3  # tests of one call request that may time out before the rest is skipped

    def __post_init__(self) -> None:
        if not (self.timeout > 0 and self.memory_mb > 0 and self.output_mb > 0):
            raise BcoderError("timeout, memory and output limits must be positive")
        if self.max_timeouts < 1:
            raise BcoderError("max_timeouts must be at least 1")

    def for_request(
        self, n_items: int, hello: dict[str, Any], total: float | None = None
    ) -> dict[str, Any]:
        """The zygote's limits for one request; ``total`` caps its wall seconds (``calls.py``)."""
        mem = self.memory_mb << 20
        return {
            "total": total,
            "timeout": self.timeout,
            "cpu": math.ceil(self.timeout * (n_items + 1)) + 1,
            "as_bytes": int(hello.get("vsz", 0)) + mem,
            "rss_bytes": 2 * mem + (256 << 20),
            "fsize": self.file_mb << 20,
            "nofile": self.nofile,
            "nproc": self.nproc,
            "stdout_max": self.output_mb << 20,
        }


class _Spawner(threading.Thread):
    """Starts workers from one long-lived thread (bubblewrap dies with its starting thread)."""

    def __init__(self) -> None:
        super().__init__(name="bcoder-sandbox-spawner", daemon=True)
        self.jobs: queue.Queue[tuple[Worker, Future[None]] | None] = queue.Queue()
        self.lock = threading.Lock()
        self.stopped = False

    def run(self) -> None:
        while (job := self.jobs.get()) is not None:
            worker, fut = job
            try:
                worker.start()
                fut.set_result(None)
            except BaseException as err:
                fut.set_exception(err)

    def start_worker(self, worker: Worker) -> None:
        fut: Future[None] = Future()
        with self.lock:  # jobs queued before stop() are still served (the queue is FIFO)
            if self.stopped:
                raise WorkerDied("the executor is closed")
            self.jobs.put((worker, fut))
        fut.result()

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self.jobs.put(None)


def _shutdown(workers: list[Worker], spawner: _Spawner) -> None:
    spawner.stop()
    for w in workers:
        w.kill()


class Executor:
    """Runs untrusted programs against tests in sandboxed, pre-forked workers."""

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = 4.0,
        memory_mb: int = 1024,
        *,
        output_mb: int = 16,
        stop_on_failure: bool = True,
        level: str | None = None,
        on_warning: Callable[[str], None] | None = None,
        recycle_after: int = 2000,
        max_timeouts: int = 3,
    ) -> None:
        """``stop_on_failure``: skip a program's remaining tests after its first non-pass (also
        the tests after a time-out in a call request, which would need a fresh run; off, they
        run, up to ``max_timeouts`` time-outs per request: see ``calls.py``).
        ``level``: force an isolation level (default: the strongest available).
        ``on_warning``: receives the weak-isolation warning (default: ``warnings.warn``)."""
        self.limits = Limits(
            timeout=timeout, memory_mb=memory_mb, output_mb=output_mb, max_timeouts=max_timeouts
        )
        if level is not None and not level_available(level):
            raise BcoderError(
                f"isolation level {level!r} is not available here (see bcoder doctor)"
            )
        self.level = level or isolation_level()
        self.stop_on_failure = stop_on_failure
        self.recycle_after = recycle_after
        n = workers or os.cpu_count() or 1
        if n < 1:
            raise BcoderError("workers must be at least 1")
        self.workers = [Worker(i, self.level, self.limits.scratch_mb) for i in range(n)]
        self._idle: queue.Queue[Worker] = queue.Queue()
        for w in self.workers:
            self._idle.put(w)
        self._spawner = _Spawner()
        self._spawner.start()
        self._closed = False
        # Workers die with this object even when close() is forgotten.
        self._finalizer = weakref.finalize(self, _shutdown, self.workers, self._spawner)
        if self.level == "rlimits-only":
            (on_warning or (lambda m: warnings.warn(m, RuntimeWarning, stacklevel=3)))(WEAK_WARNING)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill every worker (and everything inside them)."""
        self._closed = True
        self._finalizer()

    # ---- one program ----

    def run(self, code: str, spec: TestSpec, *, stop_on_failure: bool | None = None) -> ExecResult:
        """Check one program against ``spec``; blocks until a worker is free.

        ``stop_on_failure`` overrides the executor's for this program (tests a model wrote want
        a verdict each, the hidden tests of the same problem only an outcome)."""
        if self._closed:
            raise BcoderError("the executor is closed")
        requests = planning.plan(spec)  # bad tests raise here, before a worker is taken
        stop = self.stop_on_failure if stop_on_failure is None else stop_on_failure
        worker = self._idle.get()
        try:
            return self._check(worker, code, spec, requests, stop)
        finally:
            self._idle.put(worker)

    def _check(
        self,
        worker: Worker,
        code: str,
        spec: TestSpec,
        requests: list[planning.Request],
        stop_on_failure: bool,
    ) -> ExecResult:
        t0 = time.monotonic()
        tests: list[TestOutcome | None] = [None] * len(spec)
        stop = False
        for req in requests:
            if stop:
                break
            outcomes = self._run_request(worker, code, req, stop_on_failure)
            for idx, outcome in zip(req.tests, outcomes, strict=False):
                tests[idx] = outcome
                if outcome.verdict not in ("pass", "skipped") and stop_on_failure:
                    stop = True
            if any(t.verdict == "compile_error" for t in outcomes):
                break
        done = [t or TestOutcome("skipped", 0.0, "not run") for t in tests]
        return ExecResult.from_tests(done, time.monotonic() - t0, self.level)

    def _run_request(
        self, worker: Worker, code: str, req: planning.Request, stop_on_failure: bool
    ) -> list[TestOutcome]:
        lim = self.limits
        if req.body["op"] == "call":

            def send(part: planning.Request, total: float) -> dict[str, Any]:
                return self._send(worker, code, part, total)

            return answer_calls(send, req, lim.timeout, lim.max_timeouts, not stop_on_failure)
        resp = self._send(worker, code, req)
        if req.check == "stdio":
            return [planning.judge_stdio(resp, req.expected[0], lim.timeout)]
        return planning.judge_items(req, resp, lim.timeout)

    def _send(
        self, worker: Worker, code: str, req: planning.Request, total: float | None = None
    ) -> dict[str, Any]:
        """Send a request, restarting a dead worker and retrying once."""
        n_items = len(req.tests)
        for attempt in range(2):
            try:
                if not worker.alive or worker.requests >= self.recycle_after:
                    self._spawner.start_worker(worker)
                lim = self.limits.for_request(n_items, worker.hello, total)
                body = dict(req.body, code=code, limits=lim)
                extra = None
                if body["op"] == "judge":  # the test code goes to the judge process only
                    extra = {k: body.pop(k) for k in ("setup", "statements")}
                resp = worker.request(body, self.limits.timeout * (n_items + 2) + 30, extra)
                if resp.get("recycle"):
                    worker.kill()
                return resp
            except WorkerDied as err:
                worker.kill()
                if self._closed:
                    raise BcoderError("the executor was closed while running a program") from None
                if attempt:
                    return {"error": f"the sandbox worker failed ({err})"}
        raise AssertionError("unreachable")

    # ---- many programs ----

    def run_many(
        self, jobs: Iterable[tuple[str, TestSpec]], *, stop_on_failure: bool | None = None
    ) -> Iterator[tuple[int, ExecResult]]:
        """Check many programs in parallel; yields ``(index in jobs, result)`` as they finish."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(self.workers), thread_name_prefix="bcoder-exec") as pool:
            pending: dict[Future[ExecResult], int] = {}
            it = enumerate(jobs)
            exhausted = False
            while pending or not exhausted:
                while not exhausted and len(pending) < 2 * len(self.workers):
                    try:
                        i, (code, spec) = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    fut = pool.submit(self.run, code, spec, stop_on_failure=stop_on_failure)
                    pending[fut] = i
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield pending.pop(fut), fut.result()
