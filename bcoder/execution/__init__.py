"""Running untrusted programs against unit tests: sandbox, verdicts and rewards (DESIGN section 4).

Public API: :class:`Executor` (``run``, ``run_many``, ``close``), :class:`ExecResult`,
:class:`Outcome`, :data:`REWARDS` and :func:`isolation_level`.

How it is safe (details in each module):

- ``sandbox.py`` starts one sandbox per worker: bubblewrap (else ``unshare`` + ``jail.py``, else
  only resource limits, announced loudly) with fresh pid/net/ipc/uts/mount namespaces, a read-only
  view of the system and Python directories, a private size-limited tmpfs scratch directory, none
  of the caller's environment, home or working files, an unprivileged uid with no capabilities.
- ``zygote.py`` is pid 1 inside: warm (numpy and common modules preloaded), it forks a child per
  request with a new session, fresh fds, rlimits (CPU soft < hard, address space, file size, open
  files, processes), wall-clock, memory and output watchdogs; afterwards it kills every other
  process and wipes the scratch directory and SysV IPC.
- ``plan.py`` keeps expected outputs in the parent: stdout is compared here (``compare.py``, APPS
  rules); call-based answers and MBPP-style ``assert f(x) == literal`` come back as plain values
  (``wire.py``) and are compared here; other asserts run in a clean judge process that reaches
  the program only through a pipe carrying plain values (``harness.py``). Each call-style test
  has its own time budget, kept by the watchdog: a hanging one is that test's time-out and a fresh
  run answers the tests after it (``calls.py``); what each call returned is kept as a canonical
  text for agreement between programs (``values.py``). What a program prints
  about itself never counts; how its process ends does: a non-zero exit status (``sys.exit(1)``,
  a crash, ``os._exit(2)``) is a runtime error in every test format, even after right answers.
"""

from bcoder.execution.executor import Executor, Limits
from bcoder.execution.result import REWARDS, ExecResult, Outcome
from bcoder.execution.sandbox import isolation_level

__all__ = ["REWARDS", "ExecResult", "Executor", "Limits", "Outcome", "isolation_level"]
