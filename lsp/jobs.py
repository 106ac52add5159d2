"""Threads behind the server: the lazily loaded engine, and the running jobs with their cancel flags.

Nothing here touches the protocol; the server passes callbacks. Loading a model and solving take
seconds to minutes, so both run on worker threads and the server's event loop only awaits them
(:func:`wait`, which gives up when the job is cancelled).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bcoder.lsp.settings import ServerSettings
from bcoder.pipeline.engine import Engine

Listener = Callable[[Any], None]


class Stopped(Exception):
    """A job was cancelled (by the user, the client, or a newer request)."""


class EngineCache:
    """One engine at a time, loaded on first use in a background thread and reloaded when the
    model, checkpoint, dtype or device setting changes. A failed load is retried on next use."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._future: Future | None = None
        self._listeners: set[Listener] = set()
        self.load_seconds: float | None = None

    def get(self, settings: ServerSettings) -> Future:
        """A future of the engine for ``settings`` (the current one if it fits)."""
        with self._lock:
            key = settings.solve_key()
            reuse = self._future is not None and self._key == key
            if reuse and self._future.done() and self._future.exception() is not None:
                reuse = False
            if not reuse:
                self._key = key
                self._future = self._pool.submit(self._load, settings)
            return self._future

    def loaded(self, settings: ServerSettings) -> bool:
        f = self._future
        return (
            f is not None
            and self._key == settings.solve_key()
            and f.done()
            and f.exception() is None
        )

    def listen(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.add(listener)

    def unlisten(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.discard(listener)

    def _emit(self, event: Any) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)

    def _load(self, settings: ServerSettings) -> Engine:
        start = time.monotonic()
        engine = Engine.load(
            settings.model,
            checkpoint=settings.checkpoint,
            dtype=settings.dtype,
            device=settings.device,
            backend=settings.backend,
            on_event=self._emit,
            allow_download=settings.allowDownload,
        )
        self.load_seconds = time.monotonic() - start
        return engine


@dataclass
class Job:
    """One implement request: what it works on, and the flag that stops it."""

    key: tuple[str, str]  # (document uri, function qualname)
    request_id: Any  # the JSON-RPC id of the request that started it (for $/cancelRequest)
    cancel: threading.Event = field(default_factory=threading.Event)
    reason: str = ""  # why it was cancelled

    def stop(self, reason: str) -> None:
        if not self.cancel.is_set():
            self.reason = reason
            self.cancel.set()


class Jobs:
    """Running jobs. Starting one for a function cancels the stale one for the same function."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], Job] = {}
        self.run_lock = threading.Lock()  # one solve at a time: they share the engine and the CPU

    def start(self, key: tuple[str, str], request_id: Any) -> tuple[Job, Job | None]:
        """Register a new job; returns it and the stale job it replaced (already cancelled)."""
        job = Job(key, request_id)
        with self._lock:
            stale = self._jobs.get(key)
            self._jobs[key] = job
        if stale is not None:
            stale.stop("superseded by a newer request for the same function")
        return job, stale

    def finish(self, job: Job) -> None:
        with self._lock:
            if self._jobs.get(job.key) is job:
                del self._jobs[job.key]

    def cancel_request(self, request_id: Any) -> bool:
        """Cancel the job started by request ``request_id`` ($/cancelRequest)."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.request_id == request_id]
        for job in jobs:
            job.stop("cancelled by the client")
        return bool(jobs)

    def cancel_all(self, reason: str) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.stop(reason)

    def acquire_run(self, job: Job) -> bool:
        """Wait for the run lock; False if ``job`` was cancelled while waiting."""
        while not job.cancel.is_set():
            if self.run_lock.acquire(timeout=0.1):
                return True
        return False


async def wait(future: Future, job: Job) -> Any:
    """Await a worker thread's future; raise :class:`Stopped` as soon as ``job`` is cancelled."""
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
