"""Protocol glue: answering malformed requests, forwarding cancellation, throttled progress."""

from __future__ import annotations

import time
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol

from bcoder.results import Progress


class BcoderProtocol(LanguageServerProtocol):
    """Also forwards ``$/cancelRequest`` to the job a request started.

    pygls cancels only the request's own future; a command handler's work (a coroutine awaiting a
    worker thread) keeps running, so the job's cancel flag is set here as well.
    """

    def structure_message(self, data: dict[str, Any]) -> Any:
        """pygls drops a request whose params do not fit its type without answering; answer it."""
        try:
            return super().structure_message(data)
        except JsonRpcException as err:
            if isinstance(data, dict) and "id" in data and "method" in data:
                self._send_response(data["id"], error=err.to_response_error())
            raise

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        jobs = getattr(self._server, "jobs", None)
        if jobs is not None:
            jobs.cancel_request(msg_id)
        super()._handle_cancel_notification(msg_id)


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
            pct = int(100 * event.done / event.total) if event.total else None
            text = f"{event.stage}: {event.done}/{event.total}"
            self.report(text + (f" ({event.message})" if event.message else ""), pct)
