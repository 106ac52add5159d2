"""Protocol glue: answering malformed messages, forwarding cancellation, shutting down mid-run,
throttled progress."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Generator
from typing import Any
from urllib.parse import unquote

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest, JsonRpcParseError
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from bcoder.core.types import Progress

log = logging.getLogger("bcoder.lsp")


class BcoderProtocol(LanguageServerProtocol):
    """pygls's protocol, answering what it leaves unanswered and surviving what it trips on.

    It also forwards ``$/cancelRequest`` to the job a request started: pygls cancels only the
    request's own future; a command handler's work (a coroutine awaiting a worker thread) keeps
    running, so the job's cancel flag is set here as well.
    """

    def structure_message(self, data: dict[str, Any]) -> Any:
        """pygls drops a request whose params do not fit its type without answering; answer it."""
        try:
            return super().structure_message(data)
        except JsonRpcException as err:
            if isinstance(data, dict) and "id" in data and "method" in data:
                self._send_response(data["id"], error=err.to_response_error())
            raise

    def handle_message(self, message: Any) -> None:
        """JSON that is not a JSON-RPC message (``42``, ``[]``, ``{}``) gets Invalid Request."""
        if not hasattr(message, "jsonrpc"):
            self._send_error_without_id(JsonRpcInvalidRequest())
            return
        super().handle_message(message)

    def answer_unreadable(self, error: Exception) -> None:
        """A body that is not JSON gets Parse error (JSON-RPC 2.0, section 5.1); pygls only logs it.

        Called from the server's error handler, the only place that sees pygls's failed
        ``json.loads``.
        """
        if isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)):
            self._send_error_without_id(JsonRpcParseError(f"not JSON: {error}"))

    def _send_error_without_id(self, error: JsonRpcException) -> None:
        """An error response with ``"id": null`` (pygls's responses drop a None id altogether)."""
        body = error.to_response_error()
        self._send_data(
            {"jsonrpc": "2.0", "id": None, "error": {"code": body.code, "message": body.message}}
        )

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        jobs = getattr(self._server, "jobs", None)
        if jobs is not None:
            jobs.cancel_request(msg_id)
        super()._handle_cancel_notification(msg_id)

    @lsp_method(lsp.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        """pygls's shutdown, iterating over a copy of the pending requests.

        Cancelling a running command runs its done-callback at once, which removes it from
        ``_request_futures``: pygls's own loop over that dict then fails with -32603 "dictionary
        changed size during iteration" when the editor quits during a job.
        """
        if (user_handler := self.fm.features.get(lsp.SHUTDOWN)) is not None:
            yield user_handler, args, None
        current_id = self.msg_id  # the shutdown request itself is answered, not cancelled
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current_id and not future.done():
                future.cancel()
        self._shutdown = True

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(
        self, params: lsp.DidChangeTextDocumentParams
    ) -> Generator[Any, Any, None]:
        """A change to a document the client never opened is ignored with a warning.

        pygls would fail with a KeyError, reported as an internal error.
        """
        uri = params.text_document.uri
        if unquote(uri) not in self.workspace.text_documents:
            message = f"ignored a change to {uri}: the client never opened it"
            log.warning(message)
            self._server.window_log_message(
                lsp.LogMessageParams(type=lsp.MessageType.Warning, message=message)
            )
            return
        yield from super().lsp_text_document__did_change(params)


class Reporter:
    """One work-done progress on the client, fed from worker threads (throttled to 5 per second)."""

    def __init__(self, server: Any, token: str | None) -> None:
        self.server = server
        self.token = token
        self._last = 0.0

    def report(self, message: str, percentage: int | None = None, force: bool = False) -> None:
        """Thread-safe: schedule a ``$/progress`` report on the event loop."""
        now = time.monotonic()
        if self.token is None or (not force and now - self._last < 0.2):
            return
        self._last = now
        value = lsp.WorkDoneProgressReport(message=message, percentage=percentage)
        self.server.call_soon(self.server.work_done_progress.report, self.token, value)

    def event(self, event: Any) -> None:
        if isinstance(event, Progress):
            # one bar: the tokens sampled (tests run beside them, and the tests the model writes
            # for a problem without any come after them: both only leave a message)
            counted = event.stage not in ("execute", "tests")
            pct = int(100 * event.done / event.total) if event.total and counted else None
            text = f"{event.stage}: {event.done}/{event.total}"
            self.report(text + (f" ({event.message})" if event.message else ""), pct)
