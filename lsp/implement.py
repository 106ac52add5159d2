"""The implement job: a stub -> a problem -> candidates solved on a worker thread -> the best one
in the buffer.

:func:`implement_at` builds the problem from the stub at the cursor (its docstring's examples are
its tests), starts a job (cancelling an older one for the same function), loads the engine once,
solves with work-done progress, saves the run in the results store and puts the best usable
candidate in place (:mod:`bcoder.lsp.apply`). With ``fastPath`` and tests, the first candidate that
passes goes in at once and the others arrive in the background. :func:`implement_from_run` puts a
saved run's best candidate in place instead (no sampling).

User-facing failures (no model, not a function, nothing to implement) become a
``window/showMessage`` error and a result ``{"applied": false, "error": ...}``; cancellation gives
``{"applied": false, "cancelled": true}`` (or, after ``$/cancelRequest``, the protocol's
RequestCancelled error).
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from lsprotocol import types as lsp

from bcoder.core.cancel import Cancelled
from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem
from bcoder.core.types import CandidateTested, Notice, SolveResult
from bcoder.lsp.apply import show, usable_bodies
from bcoder.lsp.generated import written_line
from bcoder.lsp.jobs import Job, Stopped, wait
from bcoder.lsp.language_server import BcoderServer
from bcoder.lsp.protocol import Reporter
from bcoder.lsp.settings import ServerSettings
from bcoder.lsp.stubs import FunctionInfo, build_problem
from bcoder.lsp.values import Implemented
from bcoder.pipeline.engine import Engine
from bcoder.pipeline.settings import SolveSettings
from bcoder.pipeline.solve import solve
from bcoder.pipeline.store import Store
from bcoder.qmodel.shipped import label


async def implement_at(ls: BcoderServer, uri: str, pos: tuple[int, int]) -> dict[str, Any]:
    """Implement the stub at ``pos`` in document ``uri`` (see the module docstring)."""
    buf = ls.document(uri)
    if buf is None:
        return ls.fail(f"B-Coder: {uri} is not open in the editor")
    fn = buf.function_at(pos)
    if fn is None:
        return ls.fail("B-Coder: not a function — put the cursor inside a Python function")
    if not fn.is_stub:
        return ls.fail(
            f"B-Coder: nothing to implement — `{fn.qualname}` already has a body "
            "(its body must be empty, `pass`, `...` or only its docstring)"
        )
    settings = ls.settings
    problem = build_problem(buf, fn, f"{PurePosixPath(uri).name}:{fn.qualname}", settings.runTests)
    job, stale = ls.jobs.start((uri, fn.qualname), ls.protocol.msg_id)
    if stale is not None:
        ls.log(f"cancelled the earlier request for {fn.qualname}: a new one replaces it")
    reporter = await ls.begin_progress(f"B-Coder: {fn.qualname}", job)
    outcome, rest = "done", None
    try:
        result, rest = await _solve(ls, problem, settings, job, reporter)
    except Stopped as stop:
        outcome = "cancelled"
        ls.log(f"{fn.qualname}: {stop or 'cancelled'}")
        return {"applied": False, "cancelled": True, "reason": str(stop)}
    except asyncio.CancelledError:
        outcome = "cancelled"
        job.stop("cancelled")
        raise
    except BcoderError as err:
        outcome = "failed"
        return ls.fail(f"B-Coder: {err}")
    except Exception as err:
        outcome = "failed"
        ls.log(traceback.format_exc(), lsp.MessageType.Error)
        return ls.fail(f"B-Coder: internal error: {err!r}")
    finally:
        if rest is None:  # else the job goes on: _complete ends it
            ls.end_progress(reporter, outcome)
            ls.jobs.finish(job)
    answer = await _insert(ls, uri, fn, result, settings)
    if rest is not None:  # the fast path: the first passing candidate is in, more to come
        task = asyncio.ensure_future(_complete(ls, uri, fn, rest, job, reporter))
        ls.background.add(task)
        task.add_done_callback(ls.background.discard)
        answer["pending"] = True
    return answer


async def implement_from_run(
    ls: BcoderServer, uri: str, pos: tuple[int, int], run_id: str
) -> dict[str, Any]:
    """Put the best body of a saved run (``bcoder solve`` of the same stub, say) into the stub at
    ``pos``, as :func:`implement_at` does with a fresh one: no sampling, its candidates, tests
    and generated tests as they were saved."""
    buf = ls.document(uri)
    fn = buf.function_at(pos) if buf is not None else None
    if buf is None or fn is None or not fn.is_stub:
        return ls.fail("B-Coder: put the cursor in a stub (a function with no body yet)")
    try:
        result = await asyncio.wrap_future(ls.pool.submit(lambda: Store().get(run_id)))
    except BcoderError as err:
        return ls.fail(f"B-Coder: {err}")
    entry = result.problem.get("entry_point")
    if entry and entry != fn.name:
        return ls.fail(f"B-Coder: run {result.run_id} implemented `{entry}`, not `{fn.name}`")
    ls.log(f"{fn.qualname}: the {len(result.candidates)} candidates of run {result.run_id}")
    return await _insert(ls, uri, fn, result, ls.settings)


async def _complete(
    ls: BcoderServer, uri: str, fn: FunctionInfo, rest: Any, job: Job, reporter: Reporter
) -> None:
    """Fast path: wait for the rest of the candidates, then let "next candidate" step through
    all of them (the inserted one stays in the buffer)."""
    outcome = "done"
    try:
        result = await rest
    except (Stopped, asyncio.CancelledError) as stop:
        outcome = "cancelled"
        ls.log(f"{fn.qualname}: the other candidates were not finished ({stop or 'cancelled'})")
        return
    except Exception as err:
        outcome = "failed"
        ls.log(f"{fn.qualname}: the other candidates failed: {err!r}", lsp.MessageType.Warning)
        return
    finally:
        ls.end_progress(reporter, outcome)
        ls.jobs.finish(job)
    item = ls.implemented.get((uri, fn.qualname))
    buf = ls.document(uri)
    if item is None or buf is None:
        return
    inserted = item.candidate
    entry = result.problem.get("entry_point") or fn.name
    bodies = usable_bodies(result, entry, buf.top_level_imports())
    index = next((i for i, c in enumerate(result.candidates) if c is inserted), None)
    if index is None or index not in bodies:  # keep what is in the buffer reachable
        return
    item.result, item.bodies, item.current = result, bodies, index
    ls.log(
        f"{fn.qualname}: all {len(result.candidates)} candidates are in (the inserted one "
        f"ranks #{index + 1}); next candidate steps through them"
    )
    ls.publish(uri)


def solve_settings(settings: ServerSettings) -> SolveSettings:
    """The solve settings of one request, from the server's settings."""
    return SolveSettings(
        model=settings.model,
        checkpoint=settings.checkpoint,
        sampling=settings.sampling(),
        run_tests=settings.runTests,
        dtype=settings.dtype,
        device=settings.device,
        backend=settings.backend,
        timeout=settings.timeout,
        prefill=settings.prefill,
        generate_tests=settings.generateTests,
        generate_tests_with_examples=settings.generateTestsWithExamples,
    )


async def _load_engine(
    ls: BcoderServer, settings: ServerSettings, job: Job, reporter: Reporter
) -> Engine:
    """The engine for ``settings``: the loaded one, or loaded now (its progress reported)."""
    fresh = not ls.engines.loaded(settings)
    if fresh:
        ls.log(f"loading model {settings.model} (first use)")
        reporter.report(f"loading model {settings.model}", force=True)
    ls.engines.listen(reporter.event)
    try:
        engine = await wait(ls.engines.get(settings), job)
    finally:
        ls.engines.unlisten(reporter.event)
    if fresh and ls.engines.load_seconds is not None:
        ls.log(f"model {settings.model} ready ({ls.engines.load_seconds:.1f} s to load)")
    return engine


async def _solve(
    ls: BcoderServer, problem: Problem, settings: ServerSettings, job: Job, reporter: Reporter
) -> tuple[SolveResult, Any]:
    """The solve result, or on the fast path (``fastPath`` with tests) possibly a result
    holding only the first candidate that passed, and an awaitable of the full result."""
    config = solve_settings(settings)
    engine = await _load_engine(ls, settings, job, reporter)
    loop = asyncio.get_running_loop()
    first: asyncio.Future = loop.create_future()  # the first candidate that passed
    fast = settings.fastPath and problem.tests is not None

    def passed(candidate: Any) -> None:
        if not first.done():
            first.set_result(candidate)

    def on_event(event: Any) -> None:  # on the solve thread
        reporter.event(event)
        if isinstance(event, Notice):  # a docstring cut to fit, the fallback ranker, ...
            ls.call_soon(ls.log, f"{problem.id}: {event.message}", lsp.MessageType.Warning)
        if fast and isinstance(event, CandidateTested) and event.candidate.outcome == "pass":
            loop.call_soon_threadsafe(passed, event.candidate)

    def run() -> SolveResult:
        if not ls.jobs.acquire_run(job):
            raise Cancelled("cancelled while waiting for another run")
        try:
            return solve(problem, engine, config, on_event=on_event, cancel=job.cancel)
        finally:
            ls.jobs.run_lock.release()

    start = time.monotonic()
    full = asyncio.ensure_future(_finish_solve(ls, problem, run, job, start))
    if fast:
        await asyncio.wait({first, full}, return_when=asyncio.FIRST_COMPLETED)
        if first.done() and not full.done():
            ls.log(
                f"{problem.id}: a candidate passed the docstring's tests after "
                f"{time.monotonic() - start:.1f} s: inserting it (fast path)"
            )
            partial = SolveResult(
                problem=problem.to_dict(),
                settings={**config.to_dict(), "fast_path": True},
                candidates=[first.result()],
                heads=engine.heads,
            )
            return partial, full
    return await full, None


async def _finish_solve(
    ls: BcoderServer, problem: Problem, run: Callable[[], SolveResult], job: Job, start: float
) -> SolveResult:
    """Run the solve on the worker pool, log what it did and save it."""
    try:
        result = await wait(ls.pool.submit(run), job)
    except Cancelled as err:
        raise Stopped(job.reason or str(err)) from None
    ls.log(
        f"{problem.id}: {len(result.candidates)} candidates in {time.monotonic() - start:.1f} s"
        f" ({', '.join(f'{k} {v:.1f}s' for k, v in result.timings.items())})"
        f", ranked by {result.ranker} with {label(result.heads)}"
        f", sampled from the {result.settings.get('policy', 'trained')} policy"
    )
    if result.generated is not None:
        ls.log(f"{problem.id}: {written_line(result.generated)}")
    await _save(ls, result)
    return result


async def _save(ls: BcoderServer, result: SolveResult) -> None:
    """Save the run in the results store; a store problem is logged, never fatal."""

    def save() -> str:
        return Store().save(result)

    try:
        result.run_id = await asyncio.wrap_future(ls.pool.submit(save))
        ls.log(f"saved run {result.run_id}")
    except Exception as err:
        ls.log(f"could not save the run: {err}", lsp.MessageType.Warning)


async def _insert(
    ls: BcoderServer, uri: str, old: FunctionInfo, result: SolveResult, settings: ServerSettings
) -> dict[str, Any]:
    """Put the best usable candidate in place of the stub, if the stub is still there."""
    buf = ls.document(uri)
    fn = buf.find(old.qualname, near=old.def_line) if buf is not None else None
    if buf is None or fn is None or not fn.is_stub:
        return ls.fail(f"B-Coder: `{old.qualname}` changed while B-Coder worked; not editing")
    entry = result.problem.get("entry_point") or fn.name
    bodies = usable_bodies(result, entry, buf.top_level_imports())
    if not bodies:
        n = len(result.candidates)
        return ls.fail(
            f"B-Coder: none of the {n} candidates for `{fn.qualname}` has a usable body "
            f"(model {settings.model})"
        )
    # best by the ranker, except that a candidate which passed the docstring's tests goes first
    passed = [i for i in sorted(bodies) if result.candidates[i].outcome == "pass"]
    first = passed[0] if passed else min(bodies)
    item = Implemented(uri, fn.qualname, fn.def_line, result, bodies, first)
    return await show(ls, item, buf, fn.replace_start, fn.replace_end)
