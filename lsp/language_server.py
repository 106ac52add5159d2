"""The language server object: its state, and what every feature asks of it.

:class:`BcoderServer` is a pygls ``LanguageServer`` holding the settings, the lazily loaded engine,
the running jobs and the functions B-Coder implemented. It sends messages (a log line, a failure
shown to the user), work-done progress and diagnostics, and reads the open documents. The two long
actions use it: :mod:`bcoder.lsp.implement` (implement a stub) and :mod:`bcoder.lsp.apply` (put a
candidate into the document, switch to another); the protocol handlers in :mod:`bcoder.lsp.server`
are thin and call into them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from bcoder import __version__
from bcoder.lsp.jobs import EngineCache, Job, Jobs
from bcoder.lsp.protocol import BcoderProtocol, Reporter
from bcoder.lsp.settings import ServerSettings, changes
from bcoder.lsp.stubs import Buffer
from bcoder.lsp.values import Implemented, diagnostics

log = logging.getLogger("bcoder.lsp")


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
        self.background: set[asyncio.Future] = set()  # fast-path completions still running

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
        changed = changes(self.settings, new)
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

    # --- documents and implemented functions -----------------------------------------------

    def document(self, uri: str) -> Buffer | None:
        """The open document ``uri``, parsed; None if the client has not opened it."""
        doc = self.workspace.text_documents.get(unquote(uri))
        if doc is None:
            return None
        encoding = self.workspace.position_encoding or "utf-16"
        return Buffer(doc.source, str(getattr(encoding, "value", encoding)))

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
