"""Hostile programs against the real sandbox: each gets its exact verdict and leaves the host as
it was (canary files intact, no process left behind, the next normal program still passes)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import socket
import threading
import time
from pathlib import Path

import pytest

from bcoder.core.spec import TestSpec as Spec
from bcoder.execution import Executor, Outcome, isolation_level

pytestmark = pytest.mark.skipif(
    isolation_level() == "rlimits-only", reason="needs Linux namespaces (bubblewrap or unshare)"
)

SECRET = "bcoder-secret-" + secrets.token_hex(8)
DOUBLE = Spec(inputs=("21\n",), outputs=("42\n",))  # the "normal" problem: print twice the input
ANSWER = "print(int(input()) * 2)\n"
# The scratch directory's entries, and whether its file system holds less than 64 KiB of data.
SCRATCH_PROBE = (
    "import os\nst = os.statvfs('.')\n"
    "print(sorted(os.listdir('.')), (st.f_blocks - st.f_bfree) * st.f_frsize < 64 << 10)\n"
)


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (host view)."""
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    parent[int(name)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


class Host:
    """Canary files and checks that the host is unchanged."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "canary"
        self.dir.mkdir()
        self.file = self.dir / "precious.txt"
        self.file.write_text("do not touch " + SECRET)
        self.home_file = Path.home() / f".bcoder-canary-{secrets.token_hex(4)}"
        self.home_file.write_text(SECRET)
        self.digest = self._digest()

    def _digest(self) -> str:
        h = hashlib.sha256()
        for p in sorted(self.dir.rglob("*")):
            h.update(str(p).encode() + (p.read_bytes() if p.is_file() else b""))
        h.update(self.home_file.read_bytes())
        return h.hexdigest()

    def check(self, ex: Executor) -> None:
        assert self._digest() == self.digest, "a canary file changed"
        worker = ex.workers[0]
        if worker.alive:  # only the sandbox's own process (bwrap / unshare) and its zygote
            assert len(_tree(worker.proc.pid)) <= 2 + (worker.level == "unshare"), _tree(
                worker.proc.pid
            )
        res = ex.run(ANSWER, DOUBLE)
        assert res.outcome is Outcome.PASS, res.to_dict()
        # The next program finds its scratch directory empty (the only place it can write, a
        # size-limited tmpfs): nothing left by the attack, no survivor still writing to it.
        # (The host's disk is not measured: any other process on the machine moves it.)
        time.sleep(0.05)
        res = ex.run(SCRATCH_PROBE, Spec(inputs=("",), outputs=("[] True",)))
        assert res.outcome is Outcome.PASS, res.tests[0].stdout + res.tests[0].stderr

    def cleanup(self) -> None:
        self.home_file.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    h = Host(tmp_path_factory.mktemp("host"))
    yield h
    h.cleanup()


@pytest.fixture(scope="module")
def ex():
    os.environ["BCODER_TEST_SECRET"] = SECRET  # in our environment before the sandbox starts
    try:
        with Executor(workers=1, timeout=1.5, memory_mb=512, output_mb=4) as e:
            yield e
    finally:
        os.environ.pop("BCODER_TEST_SECRET", None)


def attack(ex, host, code, spec=DOUBLE, expected=Outcome.RUNTIME_ERROR, detail=None):
    res = ex.run(code, spec)
    assert res.outcome is expected, res.to_dict()
    if detail is not None:
        assert detail in res.detail, res.detail
    host.check(ex)
    return res


# ---- time ----

SPIN = "while True:\n    pass\n"


@pytest.mark.parametrize(
    "code",
    [
        SPIN,
        "import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU):\n"
        "    signal.signal(s, signal.SIG_IGN)\n" + SPIN,
        "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n"
        "        pass\n",
        "import time\ntime.sleep(1000)\n",
    ],
    ids=["spin", "ignores-signals", "swallows-BaseException", "sleeps"],
)
def test_endless_programs_time_out(ex, host, code):
    attack(ex, host, code, detail="time limit")


# ---- processes ----


@pytest.mark.parametrize(
    "code",
    [
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        "import posix\nwhile True:\n    try:\n        posix.fork()\n    except OSError:\n        pass\n",
        "import os\nwhile True:\n    try:\n        os.posix_spawn('/bin/sleep', ['sleep', '1000'], {})\n"
        "    except OSError:\n        pass\n",
    ],
    ids=["fork-bomb", "posix-fork-bomb", "posix-spawn-flood"],
)
def test_process_floods_are_stopped_and_reaped(ex, host, code):
    attack(ex, host, code)


def test_double_forked_daemon_is_killed_with_the_program(ex, host):
    daemon = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        while True:\n            open('/tmp/daemon-was-here', 'w').write('x')\n"
        "            time.sleep(0.01)\n    os._exit(0)\ntime.sleep(0.1)\n" + ANSWER
    )
    attack(ex, host, daemon, expected=Outcome.PASS)
    time.sleep(0.2)
    look = "import os\nprint(sorted(os.listdir('/tmp')))\n"
    res = ex.run(look, Spec(inputs=("",), outputs=("[]",)))
    assert res.outcome is Outcome.PASS, res.tests[0].stdout


@pytest.mark.parametrize(
    "kill",
    [
        "os.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGKILL)",
        "os.kill(-1, signal.SIGKILL)",
    ],
    ids=["parent", "everything"],
)
def test_killing_the_parent_or_everything_changes_nothing(ex, host, kill):
    code = f"import os, signal\ntry:\n    {kill.replace(chr(10), chr(10) + '    ')}\nexcept OSError:\n    pass\n"
    attack(ex, host, code + ANSWER, expected=Outcome.PASS)


def test_killing_the_judge_is_a_runtime_error(ex, host):
    code = "import os, signal\ndef f(x):\n    os.kill(-1, signal.SIGKILL)\n    return 2 * x\n"
    attack(ex, host, code, Spec(asserts=("assert f(2) in (4,)",)))


# ---- memory ----


@pytest.mark.parametrize(
    "code",
    [
        "x = bytearray(8 * 1024 ** 3)\n",
        "a = []\nwhile True:\n    a.append(b'x' * 10 ** 7)\n",
        "import time\na = []\nwhile True:\n    a.append(b'x' * 5 * 10 ** 6)\n    time.sleep(0.002)\n",
        "import os, time\nfor i in range(8):\n    if os.fork() == 0:\n        b = b'x' * (300 * 10 ** 6)\n"
        "        time.sleep(30)\n        os._exit(0)\ntime.sleep(30)\n",
    ],
    ids=["one-huge-block", "fast-growth", "slow-creep", "forked-hogs"],
)
def test_memory_hogs_are_stopped(ex, host, code):
    attack(ex, host, code)


# ---- output and files ----


@pytest.mark.parametrize(
    "code",
    [
        "while True:\n    print('x' * 1000)\n",
        "import sys\nwhile True:\n    sys.stderr.write('e' * 1000)\n",
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
    ],
    ids=["stdout-flood", "stderr-flood", "one-giant-line"],
)
def test_output_floods_hit_the_output_limit(ex, host, code):
    attack(ex, host, code, detail="output limit")


@pytest.mark.parametrize(
    "code",
    [
        "with open('big', 'wb') as f:\n    while True:\n        f.write(b'0' * 2 ** 20)\n",
        "for i in range(1000):\n    with open(f'part{i}', 'wb') as f:\n"
        "        for _ in range(32):\n            f.write(b'0' * 2 ** 20)\n",
        "i = 0\nwhile True:\n    open(f'f{i}', 'w').close()\n    i += 1\n",
    ],
    ids=["one-big-file", "fill-the-disk", "inode-exhaustion"],
)
def test_disk_attacks_fail_inside_the_scratch_dir(ex, host, code):
    attack(ex, host, code)
    res = ex.run("import os\nprint(len(os.listdir('.')))\n", Spec(inputs=("",), outputs=("0",)))
    assert res.outcome is Outcome.PASS, "the next program must get an empty scratch dir"


def test_cannot_write_or_delete_outside_the_scratch_dir(ex, host):
    targets = [
        str(host.file),
        str(host.dir),
        str(host.home_file),
        "/usr/bin/true",
        "/opt/bcoder/zygote.py",
        "/etc/ld.so.cache",
        "/x",
        "/dev/x",
        "/root/x",
        os.path.realpath(__file__),
    ]
    code = (
        "import os, shutil\ntargets = TARGETS\nhits = []\nfor t in targets:\n"
        "    for action in (lambda: open(t, 'a').write('x'), lambda: os.remove(t),\n"
        "                   lambda: shutil.rmtree(t), lambda: os.rename(t, t + '.moved')):\n"
        "        try:\n            action()\n            hits.append(t)\n"
        "        except Exception:\n            pass\nprint('hits', hits)\n"
    ).replace("TARGETS", repr(targets))
    attack(ex, host, code, Spec(inputs=("",), outputs=("hits []",)), expected=Outcome.PASS)


# ---- secrets and network ----


def test_no_environment_home_or_parent_secrets(ex, host):
    code = (
        "import os, glob\nfound = []\nfor v in os.environ.values():\n    found.append(v)\n"
        "for p in ['/proc/self/environ', '/proc/1/environ', f'/proc/{os.getppid()}/environ',\n"
        "          '/proc/PID/environ', HOME, FILE] + glob.glob('/proc/*/environ'):\n"
        "    try:\n        found.append(open(p, 'rb').read().decode('latin-1'))\n"
        "    except Exception:\n        pass\n"
        "import sys\nsys.stderr.write(repr(found))\n"
        "print('leak' if any('BCODER_TEST_SECRET' in f for f in found) else 'clean')\n"
    )
    code = code.replace("PID", str(os.getpid())).replace("HOME", repr(str(host.home_file)))
    code = code.replace("FILE", repr(str(host.file)))
    res = attack(ex, host, code, Spec(inputs=("",), outputs=("clean",)), expected=Outcome.PASS)
    assert SECRET not in res.tests[0].stdout + res.tests[0].stderr


def test_no_network_outside_or_to_the_host_loopback(ex, host):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    accepted = []

    def serve():
        end = time.time() + 5
        while time.time() < end:
            with contextlib.suppress(OSError):
                accepted.append(server.accept())

    t = threading.Thread(target=serve)
    t.start()
    port = server.getsockname()[1]
    code = (
        "import socket\nopen_ = []\nfor addr in [('1.1.1.1', 53), ('8.8.8.8', 443), "
        "('127.0.0.1', PORT)]:\n    try:\n        socket.create_connection(addr, timeout=0.5)\n"
        "        open_.append(addr)\n    except OSError:\n        pass\n"
        "try:\n    socket.getaddrinfo('example.com', 80)\n    open_.append('dns')\n"
        "except OSError:\n    pass\nprint('open', open_)\n"
    ).replace("PORT", str(port))
    try:
        attack(ex, host, code, Spec(inputs=("",), outputs=("open []",)), expected=Outcome.PASS)
    finally:
        t.join()
        server.close()
    assert accepted == []


def test_runs_unprivileged_without_capabilities(ex, host):
    code = (
        "import os\nst = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
        "caps = [int(st[k], 16) for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')]\n"
        "print(os.getuid() != 0 and os.geteuid() != 0, caps, st['NoNewPrivs'].strip())\n"
    )
    attack(
        ex,
        host,
        code,
        Spec(inputs=("",), outputs=("True [0, 0, 0, 0, 0] 1",)),
        expected=Outcome.PASS,
    )


# ---- native crashes ----


@pytest.mark.parametrize(
    "code, signame",
    [("import ctypes\nctypes.string_at(0)\n", "SIGSEGV"), ("import os\nos.abort()\n", "SIGABRT")],
    ids=["null-read", "abort"],
)
def test_native_crashes_are_runtime_errors(ex, host, code, signame):
    attack(ex, host, code, detail=signame)
