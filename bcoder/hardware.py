"""What this machine runs fast: the facts the dtype and backend choices rest on.

bfloat16 halves a model's memory, but it is fast only where the CPU computes in it natively
(x86: AVX512-BF16 or AMX; Arm: the BF16 extension). Elsewhere every bf16 matmul is emulated
through float32 conversions: on an AVX2-only CPU a transformers forward of a 1.5B model ran ~7x
slower in bf16 than in fp32 (issue 13). So the default dtype on a CPU follows these flags, not the
model's size.
"""

from __future__ import annotations

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
