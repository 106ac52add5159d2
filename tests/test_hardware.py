"""How many threads to start: un-niced CPU work from /proc/stat, not the 1-minute load average."""

from __future__ import annotations

import os

import pytest

from bcoder.models.hardware import busy_between, busy_cores, cpu_threads

# user nice system idle iowait irq softirq steal (clock ticks)
BEFORE = [1000, 500, 300, 9000, 10, 5, 5, 0]


def after(**ticks: int) -> list[int]:
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return [b + ticks.get(n, 0) for b, n in zip(BEFORE, names, strict=True)]


def test_busy_counts_un_niced_work_only():
    # 2 cores for 100 ticks each: one core busy (user + system), one idle -> 1 core busy
    assert busy_between(BEFORE, after(user=80, system=20, idle=100), 2) == pytest.approx(1.0)
    # a niced job on one core is not busy: our threads would preempt it
    assert busy_between(BEFORE, after(nice=100, idle=100), 2) == pytest.approx(0.0)
    # interrupts and a hypervisor's stolen time are
    assert busy_between(BEFORE, after(irq=50, softirq=50, steal=100), 2) == pytest.approx(2.0)
    assert busy_between(BEFORE, BEFORE, 2) is None  # no time passed


def test_threads_on_this_machine_are_within_the_cores():
    cores = os.cpu_count() or 1
    busy = busy_cores(cores, 0.2)
    assert busy is None or 0.0 <= busy <= cores + 1e-9
    assert 1 <= cpu_threads() <= cores
