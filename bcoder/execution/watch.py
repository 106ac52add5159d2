"""Watching one request's children: wall clock, memory and output limits, and their output.

Stdlib only (runs in the sandbox, used by ``zygote.py``).
"""

from __future__ import annotations

import os
import selectors
import time
from collections.abc import Callable
from typing import Any

import wire

STDERR_KEEP = 8 << 10  # bytes of stderr kept (the end, where tracebacks are)


def processes(page: int) -> list[tuple[int, int, int]]:
    """(pid, ppid, resident bytes) of every visible process."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            out.append((int(name), int(fields[1]), int(fields[21]) * page))
        except (OSError, IndexError, ValueError):
            continue
    return out


class Watch:
    """Collects a request's output while enforcing wall clock, memory and output limits.

    It waits until ``main`` and ``server`` have both ended (one process in ``stdio`` and ``call``
    requests; in judge mode the judge and the program, which ends once the judge is done), so
    that the status of the program's own process is known: ``exit`` and ``signal`` are the
    program's (a signal that killed the judge is reported when the program had none).

    Time: the first answer (``call``: the program loaded) and each answer after it get
    ``lim["timeout"]`` seconds from the one before (limit ``timeout``); ``lim["total"]``, when
    given, caps the whole request (limit ``total``).
    """

    def __init__(
        self,
        rss: Callable[[], int],
        fds: dict[str, int],
        main: int,
        server: int,
        lim: dict[str, Any],
    ) -> None:
        self.rss, self.fds, self.main, self.server, self.lim = rss, fds, main, server, lim
        self.buf = {k: bytearray() for k in fds}
        self.seen = dict.fromkeys(fds, 0)
        self.items: list[str] = []
        self.times: list[float] = []
        self.status: dict[int, int] = {}  # pid -> wait status, once it has ended
        self.sel = selectors.DefaultSelector()
        for name, fd in fds.items():
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, name)
        self.pidfds = {os.pidfd_open(pid): pid for pid in {main, server}}
        for pidfd in self.pidfds:
            self.sel.register(pidfd, selectors.EVENT_READ, "exit")

    def run(self, t0: float) -> dict[str, Any]:
        timeout, limit = float(self.lim["timeout"]), None
        deadline, last, next_mem = t0 + timeout, t0, t0 + 0.05
        total = self.lim.get("total")
        end = t0 + (float(total) if total is not None else float("inf"))
        while True:
            now = time.monotonic()
            if now >= min(deadline, end):
                limit = "timeout" if now >= deadline else "total"
                break
            if now >= next_mem:
                next_mem = now + 0.1
                if self.rss() > self.lim["rss_bytes"]:
                    limit = "memory"
                    break
            for key, _ in self.sel.select(max(0.0, min(deadline, end, next_mem) - now)):
                if key.data == "exit":
                    self._reap(key.fd)
                    if len(self.status) == len(self.pidfds):
                        return self._resp(t0, None)
                    continue
                limit = self._read(key.data)
                if key.data == "result" and len(self.items) > len(self.times):
                    now = time.monotonic()
                    self.times.extend([now - last] * (len(self.items) - len(self.times)))
                    last, deadline = now, now + timeout  # each answer earns a fresh time budget
            if limit:
                break
        return self._resp(t0, limit)

    def _read(self, name: str) -> str | None:
        fd = self.fds[name]
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return None
        if not chunk:
            self.sel.unregister(fd)
            return None
        self.seen[name] += len(chunk)
        buf = self.buf[name]
        buf += chunk
        if name == "err" and len(buf) > 2 * STDERR_KEEP:
            del buf[: len(buf) - STDERR_KEEP]
        if name == "result":
            self.items += [b.decode("utf-8", "replace") for b in wire.split_frames(buf)]
        cap = self.lim["stdout_max"] if name != "status" else 4096
        return "output" if self.seen[name] > cap else None

    def _reap(self, pidfd: int) -> None:
        self.sel.unregister(pidfd)
        pid = self.pidfds[pidfd]
        self.status[pid] = os.waitpid(pid, 0)[1]

    def _resp(self, t0: float, limit: str | None) -> dict[str, Any]:
        exit_, signal = None, None
        for pid in (self.server, self.main):  # the program's process first
            status = self.status.get(pid)
            if status is None:
                continue
            if os.WIFSIGNALED(status) and signal is None:
                signal = os.WTERMSIG(status)
            if pid == self.server and os.WIFEXITED(status):
                exit_ = os.WEXITSTATUS(status)
        return {
            "limit": limit,
            "exit": exit_,
            "signal": signal,
            "wall": time.monotonic() - t0,
            "times": self.times,
        }

    def collect(self) -> tuple[str, str, list[str], str]:
        """After every writer is dead: drain the pipes and return stdout, stderr, items, status."""
        for name, fd in self.fds.items():
            try:
                while self.seen[name] <= self.lim["stdout_max"]:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break
                    self.seen[name] += len(chunk)
                    self.buf[name] += chunk
            except OSError:
                pass
            os.close(fd)
        self.sel.close()
        for pidfd in self.pidfds:
            os.close(pidfd)
        rest = wire.split_frames(self.buf["result"])
        self.items += [b.decode("utf-8", "replace") for b in rest]
        out = bytes(self.buf["out"][: self.lim["stdout_max"]]).decode("utf-8", "replace")
        err = bytes(self.buf["err"][-STDERR_KEEP:]).decode("utf-8", "replace")
        return out, err, self.items, bytes(self.buf["status"][:4096]).decode("utf-8", "replace")
