"""The trusted side of the sandbox: which isolation is available, and one worker process.

A worker is one sandbox (bubblewrap, or ``unshare`` + ``jail.py``, or only rlimits) whose pid 1
is ``zygote.py``; it answers one request at a time over frames on its stdin/stdout. Nothing it
sends is trusted: frames are size-capped and parsed as plain JSON, and a worker that stalls,
crashes or talks nonsense is killed (with everything inside it) and replaced.

Running as root, the sandboxed code still runs as an unprivileged uid without capabilities:
bubblewrap runs privileged without a user namespace and the zygote drops to a uid of its own
(``sandbox_uid``: one per worker, so that process limits are not shared); as a normal user,
bubblewrap maps the user to uid 65534 inside a user namespace.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import os
import pwd
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.execution import wire

LEVELS = ("bubblewrap", "unshare", "rlimits-only")
UID_BASE = 61000
SANDBOX_FILES = ("wire.py", "harness.py", "judge.py", "watch.py", "zygote.py", "jail.py")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/alternatives",
)
MAX_FRAME = 256 << 20


class WorkerDied(Exception):
    """The sandbox worker stopped answering, answered nonsense, or died."""


def sandbox_env() -> dict[str, str]:
    """The whole environment of sandboxed code: nothing of the caller's."""
    pybin = os.path.dirname(os.path.realpath(sys.executable))
    return {
        "PATH": f"{pybin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
    }


def _python_dirs() -> list[str]:
    """Directories the sandboxed interpreter needs besides the system ones (deduplicated)."""
    exe = os.path.realpath(sys.executable)
    cands = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.dirname(exe))}
    cands.update(p for p in site.getsitepackages() if os.path.isdir(p))
    cands = {os.path.realpath(p) for p in cands if p and os.path.isdir(p)}
    out: list[str] = []
    for p in sorted(cands, key=len):
        if p == "/" or any(p == d or p.startswith(d + "/") for d in [*SYSTEM_DIRS, *out]):
            continue
        out.append(p)
    return out


@functools.lru_cache(maxsize=1)
def stage_dir() -> str:
    """A private copy of the sandbox-side files, readable by the sandbox uid."""
    d = tempfile.mkdtemp(prefix="bcoder-sandbox-")
    here = Path(__file__).resolve().parent
    for name in SANDBOX_FILES:
        shutil.copyfile(here / name, os.path.join(d, name))
        os.chmod(os.path.join(d, name), 0o644)
    os.chmod(d, 0o755)
    atexit.register(shutil.rmtree, d, True)
    return d


def _is_root() -> bool:
    return os.geteuid() == 0


def _privileged() -> bool:
    """Root, and not told to use the user-namespace variants anyway.

    ``BCODER_SANDBOX_USERNS=1`` makes root take the same path as a normal user (a user namespace
    mapped onto the caller) -- for testing that path only: the caller's uid is then root.
    """
    return _is_root() and os.environ.get("BCODER_SANDBOX_USERNS") != "1"


_WORKER_IDS = itertools.count()


def sandbox_uid(n: int) -> int:
    """The unprivileged uid of this process's worker number ``n`` when running as root.

    Distinct per worker and per process (no passwd entry), so that RLIMIT_NPROC, which counts
    per uid on the whole host, and ``kill(-1)`` never reach another worker's processes.
    """
    base = UID_BASE + (os.getpid() % 16384) * 1024
    for k in range(1024):
        uid = base + (n + k) % 1024
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise BcoderError("no free uid for the sandbox")


def bwrap_command(slot: int, scratch_mb: int) -> list[str]:
    root = _privileged()
    args = [
        "bwrap",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",
        "--hostname",
        "sandbox",
    ]
    if root:  # privileged bubblewrap; the zygote drops to its own uid (keeps CAP_SET* for that)
        args += ["--cap-drop", "ALL"]
        args += [a for cap in ("SETUID", "SETGID", "SETPCAP") for a in ("--cap-add", f"CAP_{cap}")]
    else:
        args += [
            "--unshare-user",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--disable-userns",
            "--cap-drop",
            "ALL",
        ]
    made: set[str] = set()

    def parents(dest: str) -> list[str]:  # bubblewrap would create them mode 0700 as root
        out = []
        for anc in reversed(Path(dest).parents[:-1]):
            if str(anc) not in made:
                made.add(str(anc))
                out += ["--perms", "0755", "--dir", str(anc)]
        return out

    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for f in ETC_FILES:
        if os.path.exists(f):
            args += [*parents(f), "--ro-bind", f, f]
    for d in _python_dirs():
        args += [*parents(d), "--ro-bind", d, d]
    args += [*parents("/opt/bcoder"), "--ro-bind", stage_dir(), "/opt/bcoder"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "1777", "--size", str(scratch_mb << 20), "--tmpfs", "/tmp"]
    args += ["--perms", "1777", "--size", str(16 << 20), "--tmpfs", "/dev/shm"]
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--clearenv"]
    for k, v in sandbox_env().items():
        args += ["--setenv", k, v]
    args += [
        "--chdir",
        "/tmp",
        "--",
        os.path.realpath(sys.executable),
        "-I",
        "-B",
        "/opt/bcoder/zygote.py",
        "--scratch",
        "/tmp",
        "--pid1",
    ]
    return args + (["--uid", str(sandbox_uid(slot))] if root else [])


def unshare_command(slot: int, scratch_mb: int) -> list[str]:
    ns = ["--mount", "--pid", "--fork", "--kill-child", "--net", "--ipc", "--uts", "--mount-proc"]
    user = [] if _privileged() else ["--user", "--map-root-user"]
    binds = [d for d in SYSTEM_DIRS if os.path.exists(d)] + list(ETC_FILES) + _python_dirs()
    jail = ["--jail", ":".join(binds), "--stage", stage_dir(), "--scratch-mb", str(scratch_mb)]
    uid = ["--uid", str(sandbox_uid(slot))] if _privileged() else ["--userns-uid", "65534"]
    return [
        "unshare",
        *user,
        *ns,
        "--",
        os.path.realpath(sys.executable),
        "-I",
        "-B",
        os.path.join(stage_dir(), "zygote.py"),
        "--scratch",
        "/tmp",
        "--pid1",
        *jail,
        *uid,
    ]


def _tree_readable_by_others(path: str) -> bool:
    p = Path(path).resolve()
    return all(os.stat(d).st_mode & 0o001 for d in [p, *p.parents])


def rlimits_command(slot: int, scratch: str) -> list[str]:
    argv = [
        os.path.realpath(sys.executable),
        "-I",
        "-B",
        os.path.join(stage_dir(), "zygote.py"),
        "--scratch",
        scratch,
    ]
    if _is_root():  # never run programs as root; drop after preloading when Python sits in a
        uid = sandbox_uid(slot)  # directory only root can read (then other imports fail)
        os.chown(scratch, uid, uid)
        argv += ["--uid", str(uid), "--own-uid"]
        if not _tree_readable_by_others(sys.prefix):
            argv.append("--drop-late")
    return argv


def _probe(argv: list[str]) -> bool:
    try:
        r = subprocess.run(argv, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


@functools.cache
def level_available(level: str) -> bool:
    """Whether ``level`` works here (runs a tiny sandbox once)."""
    if level == "rlimits-only":
        return sys.platform.startswith("linux")
    if not sys.platform.startswith("linux"):
        return False
    exe = os.path.realpath(sys.executable)
    if level == "bubblewrap":
        if not shutil.which("bwrap"):
            return False
        argv = bwrap_command(0, 8)
        return _probe(argv[: argv.index("--") + 1] + [exe, "-I", "-c", "pass"])
    if level == "unshare":  # start a real worker: the zygote builds its own root here
        if not shutil.which("unshare"):
            return False
        worker = Worker(0, "unshare", 8)
        try:
            worker.start()
            return worker.request({"op": "ping"}, 20).get("pong") is True
        except (WorkerDied, OSError):
            return False
        finally:
            worker.kill()
    raise BcoderError(f"unknown isolation level {level!r} (choose from {', '.join(LEVELS)})")


def isolation_level() -> str:
    """The strongest isolation available: "bubblewrap", "unshare" or "rlimits-only".

    ``BCODER_SANDBOX`` forces a level (an error when that level does not work here).
    """
    forced = os.environ.get("BCODER_SANDBOX", "").strip()
    if forced:
        if forced not in LEVELS:
            raise BcoderError(f"BCODER_SANDBOX={forced!r}: choose from {', '.join(LEVELS)}")
        if not level_available(forced):
            raise BcoderError(f"BCODER_SANDBOX={forced}: that isolation does not work here")
        return forced
    return next(lv for lv in LEVELS if level_available(lv))


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (``kill(-1)`` run as that uid reaches only those)."""
    kill = shutil.which("kill")
    if kill:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [kill, "-s", "KILL", "--", "-1"],
                user=uid,
                group=uid,
                extra_groups=[],
                timeout=10,
                capture_output=True,
            )


class Worker:
    """One sandbox process; ``request`` is called by one thread at a time."""

    def __init__(self, slot: int, level: str, scratch_mb: int = 128) -> None:
        """``slot``: the worker's place in its pool (it gets a uid of its own anyway)."""
        self.slot, self.level, self.scratch_mb = next(_WORKER_IDS), level, scratch_mb
        self.proc: subprocess.Popen[bytes] | None = None
        self.hello: dict[str, Any] = {}
        self.requests = 0
        self._scratch: str | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the sandbox and wait for the zygote's hello (must run on a long-lived thread:
        bubblewrap dies with the thread that started it)."""
        self.kill()
        env = sandbox_env()
        cwd = None
        if self.level == "bubblewrap":
            argv = bwrap_command(self.slot, self.scratch_mb)
        elif self.level == "unshare":
            argv = unshare_command(self.slot, self.scratch_mb)
        else:
            self._scratch = cwd = tempfile.mkdtemp(prefix="bcoder-scratch-")
            os.chmod(cwd, 0o700)
            argv = rlimits_command(self.slot, cwd)
            env.update(HOME=cwd, TMPDIR=cwd)
        debug = os.environ.get("BCODER_SANDBOX_DEBUG")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if debug else subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
        self.requests = 0
        hello = self._read(time.monotonic() + 60)
        if not isinstance(hello, dict) or hello.get("hello") != 1:
            self.kill()
            raise WorkerDied(f"the {self.level} sandbox did not start")
        self.hello = hello

    def request(
        self, req: dict[str, Any], timeout: float, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send one request (and an ``extra`` frame read by the judge); the answer, or
        WorkerDied (the worker is then killed)."""
        if not self.alive:
            raise WorkerDied("worker not running")
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(wire.frame(req) + (wire.frame(extra) if extra else b""))
            self.proc.stdin.flush()
            resp = self._read(time.monotonic() + timeout)
        except (OSError, ValueError) as err:
            self.kill()
            raise WorkerDied(str(err)) from None
        if not isinstance(resp, dict):
            self.kill()
            raise WorkerDied("the worker answered nonsense")
        self.requests += 1
        return resp

    def _read(self, deadline: float) -> Any:
        head = self._read_exact(4, deadline)
        size = int.from_bytes(head, "big")
        if size > MAX_FRAME:
            raise ValueError(f"frame of {size} bytes")
        return wire.loads(self._read_exact(size, deadline))

    def _read_exact(self, n: int, deadline: float) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        fd, chunks, left = self.proc.stdout.fileno(), [], n
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                self.kill()
                raise WorkerDied("the worker stopped answering")
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                self.kill()
                raise WorkerDied("the worker died")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        """Kill the sandbox with everything in it."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
            for f in (proc.stdin, proc.stdout):
                try:
                    if f:
                        f.close()
                except OSError:
                    pass
        if self.level == "rlimits-only" and _is_root():  # no pid namespace took the orphans
            _kill_uid(sandbox_uid(self.slot))
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
