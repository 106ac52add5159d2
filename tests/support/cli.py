"""``python -m bcoder ...`` in a fresh process, as a user runs it: the exit code, stdout and
stderr (text), never a mock of the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

# One torch thread in the child: on a shared, busy machine a tiny model's ops are 50x slower
# with two (the OpenMP threads wait on each other), and tests measure correctness, not speed.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def bcoder(
    *args: object,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``bcoder ARGS`` (each argument as ``str``) with this process's environment, ``env``
    set over it; ``stdin`` is its standard input."""
    return subprocess.run(
        [sys.executable, "-m", "bcoder", *map(str, args)],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
