"""The B-Coder language server's state and its two long actions: implement a stub, switch candidate.

:class:`BcoderServer` is a pygls ``LanguageServer`` holding the settings, the lazily loaded engine,
the running jobs and the functions it implemented. The protocol handlers in
:mod:`bcoder.lsp.server` are thin and call into it. User-facing failures (no model, not a function,
nothing to implement) become a ``window/showMessage`` error and a result ``{"applied": false,
"error": ...}``; cancellation gives ``{"applied": false, "cancelled": true}`` (or, after
``$/cancelRequest``, the protocol's RequestCancelled error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import fields
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from bcoder import __version__
from bcoder.core.errors import BcoderError
from bcoder.core.types import SolveResult
from bcoder.lsp.edits import extract_body, place
from bcoder.lsp.jobs import EngineCache, Job, Jobs
from bcoder.lsp.protocol import BcoderProtocol, Reporter
from bcoder.lsp.settings import ServerSettings
from bcoder.lsp.stubs import Buffer, FunctionInfo, build_problem
from bcoder.lsp.values import Implemented, diagnostics

log = logging.getLogger("bcoder.lsp")


class Stopped(Exception):
    """A job was cancelled (by the user, the client, or a newer request)."""


class BcoderServer(LanguageServer):
    """The server: settings, engine, jobs and implemented functions (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("bcoder", __version__, protocol_cls=BcoderProtocol, max_workers=4)
        self.settings = ServerSettings()
        self.settings_epoch = 0  # bumped by every change, so a late answer to a pull is dropped
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bcoder-work")
        self.engines = EngineCache(self.pool)
        self.jobs = Jobs()
        self.implemented: dict[tuple[str, str], Implemented] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Future] = set()  # fast-path completions still running

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Protocol errors (a malformed message) go to the log, not to a pop-up."""
        self.protocol.answer_unreadable(error)
        self.log(f"protocol error ({source.__name__}): {error!r}", lsp.MessageType.Error)

    # --- messages --------------------------------------------------------------------------

    def call_soon(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the event loop (from any thread)."""
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: client gone
                self.loop.call_soon_threadsafe(fn, *args)

    def log(self, message: str, kind: lsp.MessageType = lsp.MessageType.Info) -> None:
        log.info(message)
        self.window_log_message(lsp.LogMessageParams(type=kind, message=message))

    def fail(self, message: str) -> dict[str, Any]:
        """A user-facing error: shown, logged, and returned as the command's result."""
        self.window_show_message(lsp.ShowMessageParams(type=lsp.MessageType.Error, message=message))
        self.log(message, lsp.MessageType.Error)
        return {"applied": False, "error": message}

    def apply_settings(self, raw: Any, origin: str) -> None:
        self.settings_epoch += 1
        new = self.settings.updated(raw)
        for warning in new.warnings:
            self.log(f"{origin}: {warning}", lsp.MessageType.Warning)
        changed = _changes(self.settings, new)
        if changed:
            self.log(f"settings from {origin}: {changed}")
        self.settings = new

    async def pull_settings(self) -> None:
        """Ask the client for the ``bcoder`` section (ignored if settings are pushed meanwhile)."""
        caps = self.client_capabilities.workspace
        if caps is None or not caps.configuration:
            return
        params = lsp.ConfigurationParams(items=[lsp.ConfigurationItem(section="bcoder")])
        epoch = self.settings_epoch
        try:
            values = await self.workspace_configuration_async(params)
        except Exception as err:  # a client that answers oddly must not stop the server
            self.log(f"workspace/configuration failed: {err}", lsp.MessageType.Warning)
            return
        if values and epoch == self.settings_epoch:
            self.apply_settings(values[0], "workspace/configuration")

    # --- progress --------------------------------------------------------------------------

    async def begin_progress(self, title: str, job: Job) -> Reporter:
        caps = self.client_capabilities.window
        if caps is None or not caps.work_done_progress:
            return Reporter(self, None)
        token = f"bcoder-{uuid.uuid4().hex[:12]}"
        try:
            await self.work_done_progress.create_async(token)
        except Exception as err:
            self.log(f"could not create progress: {err}", lsp.MessageType.Warning)
            return Reporter(self, None)
        self.work_done_progress.begin(
            token, lsp.WorkDoneProgressBegin(title=title, cancellable=True, percentage=0)
        )
        future = self.work_done_progress.tokens.get(token)
        if future is not None:  # window/workDoneProgress/cancel cancels this future
            future.add_done_callback(
                lambda f: f.cancelled() and job.stop("cancelled from the progress notification")
            )
        return Reporter(self, token)

    def end_progress(self, reporter: Reporter, message: str) -> None:
        if reporter.token is not None:
            self.work_done_progress.end(reporter.token, lsp.WorkDoneProgressEnd(message=message))
            self.work_done_progress.tokens.pop(reporter.token, None)

    async def wait(self, future: Future, job: Job) -> Any:
        """Await a worker thread's future, giving up as soon as ``job`` is cancelled."""
        wrapped = asyncio.wrap_future(future)
        try:
            while True:
                done, _ = await asyncio.wait({wrapped}, timeout=0.1)
                if done:
                    return wrapped.result()
                if job.cancel.is_set():
                    raise Stopped(job.reason)
        finally:  # abandoned (cancelled): its eventual exception is expected, not news
            if not wrapped.done():
                wrapped.add_done_callback(lambda f: f.cancelled() or f.exception())

    # --- implement -------------------------------------------------------------------------

    def document(self, uri: str) -> Buffer | None:
        """The open document ``uri``, parsed; None if the client has not opened it."""
        doc = self.workspace.text_documents.get(unquote(uri))
        if doc is None:
            return None
        encoding = self.workspace.position_encoding or "utf-16"
        return Buffer(doc.source, str(getattr(encoding, "value", encoding)))

    async def implement(self, uri: str, pos: tuple[int, int]) -> dict[str, Any]:
        buf = self.document(uri)
        if buf is None:
            return self.fail(f"B-Coder: {uri} is not open in the editor")
        fn = buf.function_at(pos)
        if fn is None:
            return self.fail("B-Coder: not a function — put the cursor inside a Python function")
        if not fn.is_stub:
            return self.fail(
                f"B-Coder: nothing to implement — `{fn.qualname}` already has a body "
                "(its body must be empty, `pass`, `...` or only its docstring)"
            )
        settings = self.settings
        problem = build_problem(
            buf, fn, f"{PurePosixPath(uri).name}:{fn.qualname}", settings.runTests
        )
        job, stale = self.jobs.start((uri, fn.qualname), self.protocol.msg_id)
        if stale is not None:
            self.log(f"cancelled the earlier request for {fn.qualname}: a new one replaces it")
        reporter = await self.begin_progress(f"B-Coder: {fn.qualname}", job)
        outcome, rest = "done", None
        try:
            result, rest = await self._solve(problem, settings, job, reporter)
        except Stopped as stop:
            outcome = "cancelled"
            self.log(f"{fn.qualname}: {stop or 'cancelled'}")
            return {"applied": False, "cancelled": True, "reason": str(stop)}
        except asyncio.CancelledError:
            outcome = "cancelled"
            job.stop("cancelled")
            raise
        except BcoderError as err:
            outcome = "failed"
            return self.fail(f"B-Coder: {err}")
        except Exception as err:
            outcome = "failed"
            self.log(traceback.format_exc(), lsp.MessageType.Error)
            return self.fail(f"B-Coder: internal error: {err!r}")
        finally:
            if rest is None:  # else the job goes on: _complete ends it
                self.end_progress(reporter, outcome)
                self.jobs.finish(job)
        answer = await self._insert(uri, fn, result, settings)
        if rest is not None:  # the fast path: the first passing candidate is in, more to come
            task = asyncio.ensure_future(self._complete(uri, fn, rest, job, reporter))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            answer["pending"] = True
        return answer

    async def _complete(
        self, uri: str, fn: FunctionInfo, rest: Any, job: Job, reporter: Reporter
    ) -> None:
        """Fast path: wait for the rest of the candidates, then let "next candidate" step through
        all of them (the inserted one stays in the buffer)."""
        outcome = "done"
        try:
            result = await rest
        except (Stopped, asyncio.CancelledError) as stop:
            outcome = "cancelled"
            self.log(
                f"{fn.qualname}: the other candidates were not finished ({stop or 'cancelled'})"
            )
            return
        except Exception as err:
            outcome = "failed"
            self.log(
                f"{fn.qualname}: the other candidates failed: {err!r}", lsp.MessageType.Warning
            )
            return
        finally:
            self.end_progress(reporter, outcome)
            self.jobs.finish(job)
        item = self.implemented.get((uri, fn.qualname))
        buf = self.document(uri)
        if item is None or buf is None:
            return
        inserted = item.candidate
        entry = result.problem.get("entry_point") or fn.name
        bodies = usable_bodies(result, entry, buf.top_level_imports())
        index = next((i for i, c in enumerate(result.candidates) if c is inserted), None)
        if index is None or index not in bodies:  # keep what is in the buffer reachable
            return
        item.result, item.bodies, item.current = result, bodies, index
        self.log(
            f"{fn.qualname}: all {len(result.candidates)} candidates are in (the inserted one "
            f"ranks #{index + 1}); next candidate steps through them"
        )
        self.publish(uri)

    async def _solve(
        self, problem: Any, settings: ServerSettings, job: Job, reporter: Reporter
    ) -> tuple[SolveResult, Any]:
        """The solve result, or on the fast path (``fastPath`` with tests) possibly a result
        holding only the first candidate that passed, and an awaitable of the full result."""
        from bcoder.core.types import CandidateTested
        from bcoder.pipeline.solve import Cancelled, SolveSettings, solve

        solve_settings = SolveSettings(
            model=settings.model,
            checkpoint=settings.checkpoint,
            n=settings.samples,
            temperature=settings.temperature,
            top_p=settings.topP,
            max_new_tokens=settings.maxNewTokens or None,  # 0: the checkpoint's length
            seed=settings.seed,
            # the fast path wants one passing candidate soon: a step of few rows is quicker
            # (llama.cpp, 1.5B model, 2 cores: 2 rows ~3x faster per step than 8)
            batch_size=min(settings.samples, 2 if settings.fastPath and settings.runTests else 8),
            run_tests=settings.runTests,
            dtype=settings.dtype,
            device=settings.device,
            backend=settings.backend,
            timeout=settings.timeout,
        )
        fresh = not self.engines.loaded(settings)
        if fresh:
            self.log(f"loading model {settings.model} (first use)")
            reporter.report(f"loading model {settings.model}", force=True)
        self.engines.listen(reporter.event)
        try:
            engine = await self.wait(self.engines.get(settings), job)
        finally:
            self.engines.unlisten(reporter.event)
        if fresh and self.engines.load_seconds is not None:
            self.log(f"model {settings.model} ready ({self.engines.load_seconds:.1f} s to load)")

        loop = asyncio.get_running_loop()
        first: asyncio.Future = loop.create_future()  # the first candidate that passed
        fast = settings.fastPath and problem.tests is not None

        def passed(candidate: Any) -> None:
            if not first.done():
                first.set_result(candidate)

        def on_event(event: Any) -> None:  # on the solve thread
            reporter.event(event)
            if fast and isinstance(event, CandidateTested) and event.candidate.outcome == "pass":
                loop.call_soon_threadsafe(passed, event.candidate)

        def run() -> SolveResult:
            if not self.jobs.acquire_run(job):
                raise Cancelled("cancelled while waiting for another run")
            try:
                return solve(problem, engine, solve_settings, on_event=on_event, cancel=job.cancel)
            finally:
                self.jobs.run_lock.release()

        start = time.monotonic()
        full = asyncio.ensure_future(self._finish_solve(problem, run, job, start))
        if fast:
            await asyncio.wait({first, full}, return_when=asyncio.FIRST_COMPLETED)
            if first.done() and not full.done():
                self.log(
                    f"{problem.id}: a candidate passed the docstring's tests after "
                    f"{time.monotonic() - start:.1f} s: inserting it (fast path)"
                )
                partial = SolveResult(
                    problem=problem.to_dict(),
                    settings={**solve_settings.to_dict(), "fast_path": True},
                    candidates=[first.result()],
                    heads=engine.heads,
                )
                return partial, full
        return await full, None

    async def _finish_solve(self, problem: Any, run: Any, job: Job, start: float) -> SolveResult:
        from bcoder.pipeline.solve import Cancelled
        from bcoder.qmodel.shipped import label

        try:
            result = await self.wait(self.pool.submit(run), job)
        except Cancelled as err:
            raise Stopped(job.reason or str(err)) from None
        self.log(
            f"{problem.id}: {len(result.candidates)} candidates in {time.monotonic() - start:.1f} s"
            f" ({', '.join(f'{k} {v:.1f}s' for k, v in result.timings.items())})"
            f", ranked by {result.ranker} with {label(result.heads)}"
            f", sampled from the {result.settings.get('policy', 'trained')} policy"
        )
        await self._save(result)
        return result

    async def _save(self, result: SolveResult) -> None:
        """Save the run in the results store; a store problem is logged, never fatal."""

        def save() -> str:
            from bcoder.pipeline.store import Store

            return Store().save(result)

        try:
            result.run_id = await asyncio.wrap_future(self.pool.submit(save))
            self.log(f"saved run {result.run_id}")
        except Exception as err:
            self.log(f"could not save the run: {err}", lsp.MessageType.Warning)

    async def _insert(
        self, uri: str, old: FunctionInfo, result: SolveResult, settings: ServerSettings
    ) -> dict[str, Any]:
        buf = self.document(uri)
        fn = buf.find(old.qualname, near=old.def_line) if buf is not None else None
        if buf is None or fn is None or not fn.is_stub:
            return self.fail(f"B-Coder: `{old.qualname}` changed while B-Coder worked; not editing")
        entry = result.problem.get("entry_point") or fn.name
        bodies = usable_bodies(result, entry, buf.top_level_imports())
        if not bodies:
            n = len(result.candidates)
            return self.fail(
                f"B-Coder: none of the {n} candidates for `{fn.qualname}` has a usable body "
                f"(model {settings.model})"
            )
        # best by the ranker, except that a candidate which passed the docstring's tests goes first
        passed = [i for i in sorted(bodies) if result.candidates[i].outcome == "pass"]
        first = passed[0] if passed else min(bodies)
        item = Implemented(uri, fn.qualname, fn.def_line, result, bodies, first)
        return await self.show(item, buf, fn.replace_start, fn.replace_end)

    async def show(
        self, item: Implemented, buf: Buffer, start: tuple[int, int], end: tuple[int, int]
    ) -> dict[str, Any]:
        """Replace ``[start, end)`` of the buffer by the current candidate's body."""
        fn = buf.find(item.qualname, near=item.def_line)
        assert fn is not None
        ins = place(item.bodies[item.current], fn.body_indent, item.candidate)
        rng = lsp.Range(
            lsp.Position(start[0], buf.units(*start)),
            lsp.Position(end[0], buf.units(*end)),
        )
        edit = lsp.TextEdit(range=rng, new_text=buf.eol + ins.text(buf.eol))
        doc = self.workspace.get_text_document(item.uri)
        caps = self.client_capabilities.workspace
        versioned = bool(caps and caps.workspace_edit and caps.workspace_edit.document_changes)
        if versioned:
            ident = lsp.OptionalVersionedTextDocumentIdentifier(uri=item.uri, version=doc.version)
            wedit = lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(ident, [edit])])
        else:
            wedit = lsp.WorkspaceEdit(changes={item.uri: [edit]})
        label = f"B-Coder: {item.qualname} (candidate #{item.current + 1})"
        answer = await self.workspace_apply_edit_async(
            lsp.ApplyWorkspaceEditParams(edit=wedit, label=label)
        )
        if not answer.applied:
            return self.fail(
                f"B-Coder: the editor did not apply the edit ({answer.failure_reason})"
            )
        item.lines, item.spans = ins.lines, ins.spans
        self.implemented[(item.uri, item.qualname)] = item
        self.log(f"{label}: {item.summary()}")
        self.publish(item.uri)
        refresh = caps and caps.inlay_hint and caps.inlay_hint.refresh_support
        if refresh:
            self.workspace_inlay_hint_refresh(None)
        c = item.candidate
        return {
            "applied": True,
            "qualname": item.qualname,
            "rank": item.current + 1,
            "of": len(item.result.candidates),
            "ranker": item.result.ranker,
            "reward": c.reward,
            "outcome": c.outcome,
            "runId": item.result.run_id,
            "usable": [i + 1 for i in item.usable],
            "lines": len(ins.lines),
        }

    # --- candidates ------------------------------------------------------------------------

    def find_implemented(self, uri: str, pos: tuple[int, int] | None) -> Implemented | None:
        """The implemented function at ``pos`` (innermost first), or the only one in ``uri``."""
        items = [it for (u, _), it in self.implemented.items() if u == uri]
        if pos is None or not items:
            return items[0] if len(items) == 1 else None
        buf = self.document(uri)
        if buf is None:
            return None
        around = [f for f in buf.functions() if f.contains(pos)]
        for fn in sorted(around, key=lambda f: f.start, reverse=True):
            item = self.implemented.get((uri, fn.qualname))
            if item is not None:
                return item
        return None

    async def switch(self, item: Implemented, index: int | None) -> dict[str, Any]:
        """Put candidate ``index`` (default: the next usable one) in place of the current one."""
        buf = self.document(item.uri)
        k = item.locate(buf) if buf is not None else None
        if buf is None or k is None:
            return self.fail(
                f"B-Coder: the body of `{item.qualname}` was edited since B-Coder inserted it; "
                "not replacing it"
            )
        usable = item.usable
        if index is None:
            later = [i for i in usable if i > item.current]
            index = later[0] if later else usable[0]
        if index not in item.bodies:
            return self.fail(f"B-Coder: candidate #{index + 1} has no usable body")
        item.current = index
        start = (k - 1, len(buf.lines[k - 1].rstrip("\r")))
        last = k + len(item.lines) - 1
        return await self.show(item, buf, start, (last, len(buf.lines[last].rstrip("\r"))))

    def publish(self, uri: str) -> None:
        """Send the unsure-token diagnostics of every implemented function in ``uri``."""
        buf = self.document(uri)
        found: list[lsp.Diagnostic] = []
        if buf is not None:
            for (u, _), item in list(self.implemented.items()):
                if u == uri:
                    found += diagnostics(item, buf, self.settings.unsureAdvantage)
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, diagnostics=found)
        )


def usable_bodies(result: SolveResult, entry: str, imports: Any) -> dict[int, Any]:
    """Candidate index -> the body to insert, for the candidates that give a non-empty one."""
    bodies = {}
    for i, c in enumerate(result.candidates):
        body = extract_body(c.code, entry, imports)
        if body is not None and any(line.strip() for line in body.lines):
            bodies[i] = body
    return bodies


def _changes(old: ServerSettings, new: ServerSettings) -> str:
    """``name=value`` for each setting that differs."""
    return " ".join(
        f"{f.name}={getattr(new, f.name)}"
        for f in fields(new)
        if f.compare and getattr(old, f.name) != getattr(new, f.name)
    )
