"""The warm worker inside the sandbox: forks one child per request, watches it, cleans up.

Stdlib only; started by ``sandbox.py`` as ``python -I -B zygote.py --scratch DIR [--uid N]
[--pid1]``. It talks to the trusted parent over frames on its original stdin/stdout and never runs
program code itself: each request (``stdio``, ``call`` or ``judge``) forks children that get a new
session, fresh fds, resource limits and the scratch directory, and run ``harness.py``. Afterwards
every other process in the sandbox is killed (``kill(-1)`` as pid 1 of the pid namespace, else the
descendants found through the child-subreaper), the scratch directory and SysV IPC are wiped.

The zygote is pid 1 of its pid namespace (signals from its children cannot reach it) and not
dumpable (its memory and fds are out of its children's reach through ``/proc`` or ptrace).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import resource
import selectors
import signal
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


import harness
import judge
import wire
from watch import Watch, processes

PRELOAD = (
    "ast",
    "json",
    "re",
    "string",
    "bisect",
    "copy",
    "decimal",
    "datetime",
    "statistics",
    "functools",
    "operator",
    "itertools",
    "collections",
    "math",
    "fractions",
    "random",
    "heapq",
    "typing",
    "array",
    "io",
    "traceback",
    "threading",
    "numpy",
)
_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 4, 24, 36, 38
MAX_ENTRIES = 20_000  # scratch entries above which the worker asks to be replaced


def drop_privileges(uid: int) -> None:
    """Become ``uid`` with no capabilities at all (bounding, inheritable, ambient included)."""
    for cap in range(64):
        _LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    with contextlib.suppress(PermissionError):  # denied in a user namespace without groups
        os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    _LIBC.capset(header, data)
    _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    with open("/proc/self/status") as f:
        status = f.read()
    caps = [line.split()[1] for line in status.splitlines() if line.startswith("Cap")]
    if os.getuid() != uid or any(int(c, 16) for c in caps):
        raise SystemExit(f"could not drop privileges: uid {os.getuid()}, caps {caps}")


class Zygote:
    def __init__(self, scratch: str, pid1: bool, own_uid: bool = False) -> None:
        self.scratch, self.pid1, self.own_uid = scratch, pid1, own_uid
        self.chan_in, self.chan_out = os.dup(0), os.dup(1)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):
            os.dup2(null, fd)
        os.close(null)
        self.page = os.sysconf("SC_PAGE_SIZE")

    def serve(self) -> None:
        hello = {
            "hello": 1,
            "pid": os.getpid(),
            "uid": os.getuid(),
            "vsz": _vsz(),
            "numpy": "numpy" in sys.modules,
        }
        wire.write_frame(self.chan_out, hello)
        while True:
            req = wire.read_frame(self.chan_in)
            if req is None:
                return
            try:
                resp = self.handle(req)
            except Exception as e:  # a bug or an exhausted sandbox: report, and get replaced
                resp = {"error": f"{type(e).__name__}: {e}"[:500], "recycle": True}
            wire.write_frame(self.chan_out, resp)
            if resp.get("exit_now"):  # the channel may be out of step: let the parent replace us
                return
            del req, resp  # no earlier program's code or output stays alive for the next one

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("op") == "ping":
            return {"pong": True}
        op, lim = req["op"], req["limits"]
        pipes = {name: os.pipe() for name in ("out", "err", "status", "result")}
        stdin = self._stdin(req.get("stdin", "")) if op == "stdio" else os.open(os.devnull, 0)
        fdmap = {
            0: stdin,
            1: pipes["out"][1],
            2: pipes["err"][1],
            3: pipes["result"][1],
            4: pipes["status"][1],
        }
        t0 = time.monotonic()
        if op == "judge":
            # The judge starts first and reads the test code itself from the channel (a second
            # frame this process never reads), so that no copy of it is in the memory the
            # program process is forked from.
            req_r, req_w = os.pipe()
            resp_r, resp_w = os.pipe()
            null = os.open(os.devnull, os.O_RDWR)
            jmap = {
                0: null,
                1: null,
                2: pipes["err"][1],
                3: pipes["result"][1],
                5: req_w,
                6: resp_r,
            }
            main = self.spawn({**jmap, 7: self.chan_in}, judge.judge, req, lim)
            if not _loaded(pipes["result"][0]):
                self.kill_all()
                os.close(pipes["err"][1])
                why = os.read(pipes["err"][0], 4096).decode("utf-8", "replace")
                return {
                    "error": f"the judge did not start {why}",
                    "recycle": True,
                    "exit_now": True,
                }
            fdmap.update({3: null, 5: req_r, 6: resp_w})
            server = self.spawn(fdmap, judge.serve, req, lim)
            for fd in (req_r, req_w, resp_r, resp_w, null):
                os.close(fd)
        else:
            main = server = self.spawn(fdmap, _ENTRY[op], req, lim)
        for fd in (stdin, *(w for _, w in pipes.values())):
            os.close(fd)
        watch = Watch(self.rss, {k: r for k, (r, _) in pipes.items()}, main, server, lim)
        resp = watch.run(t0)
        self.kill_all()
        resp["stdout"], resp["stderr"], resp["items"], resp["status"] = watch.collect()
        resp["recycle"] = not self.wipe()
        return resp

    def spawn(
        self, fdmap: dict[int, int], entry: Any, req: dict[str, Any], lim: dict[str, Any]
    ) -> int:
        pid = os.fork()
        if pid:
            return pid
        try:
            self.child_setup(fdmap, lim)
            entry(req)
        except BaseException:
            try:
                import traceback

                os.write(2, b"sandbox harness: " + traceback.format_exc().encode()[-2000:])
            except BaseException:
                pass
        os._exit(70)

    def child_setup(self, fdmap: dict[int, int], lim: dict[str, Any]) -> None:
        os.setsid()
        high = {t: fcntl.fcntl(src, fcntl.F_DUPFD, 100) for t, src in fdmap.items()}
        for target, fd in high.items():
            os.dup2(fd, target)
        top = max(fdmap) + 1
        for fd in range(top):
            if fd not in fdmap:
                with contextlib.suppress(OSError):
                    os.close(fd)
        os.closerange(top, 1 << 16)
        os.chdir(self.scratch)
        os.umask(0o077)
        cpu = int(lim["cpu"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (lim["as_bytes"], lim["as_bytes"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim["fsize"], lim["fsize"]))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim["nofile"], lim["nofile"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if lim.get("nproc"):
            resource.setrlimit(resource.RLIMIT_NPROC, (lim["nproc"], lim["nproc"]))
        import random

        random.seed()
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()

    @staticmethod
    def _stdin(text: str) -> int:
        fd = os.memfd_create("stdin")
        data = memoryview(text.encode("utf-8", "surrogateescape"))
        while data:
            data = data[os.write(fd, data) :]
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def kill_all(self) -> None:
        """Kill every process but this one, and reap them."""
        if self.pid1 or self.own_uid:  # kill(-1) reaches everything but us (pid 1 of the
            # namespace, or the only other processes of our uid are our descendants)
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
            while True:
                try:
                    os.waitpid(-1, 0)
                except ChildProcessError:
                    return
        for _ in range(1000):  # a subreaper: orphans come back to us; kill until none is left
            kids = [pid for pid, ppid, _ in processes(self.page) if ppid == os.getpid()]
            for sig in (signal.SIGSTOP, signal.SIGKILL):  # stopped processes cannot fork
                for pid in kids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:
                if not kids:
                    return
            time.sleep(0.001)

    def rss(self) -> int:
        """Resident bytes of every process in the sandbox but this one."""
        procs = processes(self.page)
        if self.pid1:
            return sum(rss for pid, _, rss in procs if pid != os.getpid())
        parent = {pid: ppid for pid, ppid, _ in procs}
        me, total = os.getpid(), 0
        for pid, _, rss in procs:
            p, hops = parent.get(pid), 0
            while p and p != me and hops < 64:
                p, hops = parent.get(p), hops + 1
            total += rss if p == me else 0
        return total

    def wipe(self) -> bool:
        """Empty the scratch dirs and SysV IPC; False when the worker should be replaced."""
        roots = [self.scratch] + (["/dev/shm"] if self.pid1 and os.access("/dev/shm", 2) else [])
        for root in roots:
            try:
                st = os.statvfs(root)
                if self.pid1 and st.f_files - st.f_ffree > MAX_ENTRIES:
                    return False
                for entry in os.scandir(root):
                    _remove(entry.path)
            except OSError:
                return False
        if self.pid1:
            _wipe_ipc()
        return True


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
            for entry in os.scandir(path):
                _remove(entry.path)
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _loaded(fd: int) -> bool:
    """Wait for the judge's first frame, saying it has read the test code."""
    if not selectors.select.select([fd], [], [], 10)[0]:
        return False
    try:
        return wire.read_frame(fd, 4096) == {"loaded": True}
    except (ValueError, OSError):
        return False


def _wipe_ipc() -> None:
    """Remove SysV shared memory, message queues and semaphores (IPC_RMID = 0)."""
    for kind in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            ident = int(line.split()[1])
            if kind == "sem":
                _LIBC.semctl(ident, 0, 0)
            else:
                getattr(_LIBC, f"{kind}ctl")(ident, 0, None)


def _vsz() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


_ENTRY = {"stdio": harness.run_stdio, "call": harness.run_calls}


def main(argv: list[str]) -> None:
    opts = {
        "--scratch": "/tmp",
        "--uid": None,
        "--userns-uid": None,
        "--jail": None,
        "--stage": None,
        "--scratch-mb": "128",
    }
    it = iter(argv)
    pid1 = "--pid1" in argv
    for arg in it:
        if arg in opts:
            opts[arg] = next(it)
    if opts["--jail"] is not None:  # the unshare level: build our own root, then drop
        import jail

        jail.enter(opts["--jail"].split(":"), opts["--stage"], int(opts["--scratch-mb"]))
        if opts["--userns-uid"] is not None:
            jail.new_userns(int(opts["--userns-uid"]))
            drop_privileges(int(opts["--userns-uid"]))
    uid = opts["--uid"]
    if uid is not None and "--drop-late" not in argv:
        drop_privileges(int(uid))
    _LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    if not pid1:
        _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    sys.set_int_max_str_digits(0)
    for name in PRELOAD:
        with contextlib.suppress(Exception):
            __import__(name)
    if "fractions" in sys.modules and "math" in sys.modules:  # gone in Python 3.9; old code uses it
        fractions = sys.modules["fractions"]
        fractions.gcd = getattr(fractions, "gcd", sys.modules["math"].gcd)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()  # the first seeding is slow (~0.1 s): pay it once
    if uid is not None and "--drop-late" in argv:
        drop_privileges(int(uid))
        _LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    Zygote(opts["--scratch"], pid1, "--own-uid" in argv and uid is not None).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
