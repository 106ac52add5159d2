"""What this machine runs fast: the facts the dtype and backend choices rest on.

bfloat16 halves a model's memory, but it is fast only where the CPU computes in it natively
(x86: AVX512-BF16 or AMX; Arm: the BF16 extension). Elsewhere every bf16 matmul is emulated
through float32 conversions: on an AVX2-only CPU a transformers forward of a 1.5B model ran ~7x
slower in bf16 than in fp32 (issue 13). So the default dtype on a CPU follows these flags, not the
model's size.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_X86_BF16 = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CpuInfo:
    """The instruction-set facts that matter here."""

    flags: frozenset[str]
    native_bf16: bool
    why: str  # one line for `bcoder doctor`


def _linux_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / Arm
            return frozenset(value.split())
    return frozenset()


def _mac_bf16() -> bool:
    try:
        out = subprocess.run(
            ["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True, timeout=2
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.stdout.strip() == "1"


@cache
def cpu_info() -> CpuInfo:
    """The CPU's flags and whether it computes bfloat16 natively (cached per process)."""
    flags = _linux_flags()
    if platform.system() == "Darwin":
        native = _mac_bf16()
        return CpuInfo(flags, native, "FEAT_BF16" if native else "no FEAT_BF16")
    found = [f for f in _X86_BF16 if f in flags] or (["bf16"] if "bf16" in flags else [])
    if found:
        return CpuInfo(flags, True, f"the CPU has {', '.join(found)}")
    best = next((f for f in ("avx512f", "avx2", "neon", "asimd") if f in flags), "no vector flags")
    return CpuInfo(flags, False, f"no native bf16 on this CPU ({best.upper()} only)")


def default_cpu_dtype_name(n_params: int, min_bf16_params: int) -> tuple[str, str]:
    """The dtype to run a model of ``n_params`` on this CPU, and why (for the doctor)."""
    info = cpu_info()
    if not info.native_bf16:
        return "float32", f"float32: {info.why}, where bf16 is several times slower"
    if n_params >= min_bf16_params:
        return "bfloat16", f"bfloat16: {info.why} and the model is large"
    return "float32", f"float32: a small model ({info.why})"


# --- how busy the CPU is now ------------------------------------------------------------------

# /proc/stat's first line: cpu user nice system idle iowait irq softirq steal ... (clock ticks)
_BUSY = (0, 2, 5, 6, 7)  # user, system, irq, softirq, steal: work our threads compete with
_ALL = 8  # user .. steal; nice time is neither busy nor idle to us: niced work yields to ours


def _cpu_ticks() -> list[int] | None:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 1 + _ALL:
        return None
    return [int(x) for x in fields[1 : 1 + _ALL]]


def busy_between(before: list[int], after: list[int], cores: int) -> float | None:
    """Cores busy with un-niced work between two /proc/stat samples (None: no time passed).

    Niced work (a background training or eval job started with ``nice``) does not count: the
    scheduler gives its cores to our threads, so a second thread is worth starting beside it.
    """
    total = sum(after[:_ALL]) - sum(before[:_ALL])
    if total <= 0:
        return None
    busy = sum(after[i] - before[i] for i in _BUSY)
    return cores * busy / total


def busy_cores(cores: int, window: float = 0.25) -> float | None:
    """Cores busy with un-niced work over the next ``window`` seconds (Linux), else None."""
    import time

    before = _cpu_ticks()
    if before is None:
        return None
    time.sleep(window)
    after = _cpu_ticks()
    return None if after is None else busy_between(before, after, cores)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (taskset, cgroup cpusets, a
    container's share), else every CPU the machine has."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def capped_threads(asked: int) -> int:
    """``asked`` threads, at most :func:`usable_cpus` (more only wait on each other); 0 is
    :func:`cpu_threads`, the idle ones."""
    return min(asked, usable_cpus()) if asked > 0 else cpu_threads()


def cpu_threads() -> int:
    """Torch / llama.cpp CPU threads worth using now: the cores not busy, at least 1. On an
    oversubscribed machine a second thread makes decoding several times slower (measured: 7x on
    2 shared cores), so callers apply this on CPU.

    Busy means un-niced work over the last quarter second (/proc/stat), so a niced background
    job leaves its cores to this one, and a stage that starts right after another one in the same
    process sees the cores that one freed (the 1-minute load average, the fallback elsewhere,
    still counts both for a minute).
    """
    cores = usable_cpus()
    busy = busy_cores(cores)
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:
            return cores
    return max(1, min(cores, int(cores - busy + 0.5)))
