"""Cancelling a running solve: the caller sets a ``threading.Event``; work stops between steps."""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """Raised between decode steps (or test runs) once the caller's cancel event is set."""


def check(cancel: threading.Event | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")
