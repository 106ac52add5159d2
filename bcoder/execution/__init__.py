"""Running untrusted programs against unit tests: sandbox, verdicts and rewards (DESIGN section 4).

Public API: :class:`Executor` (``run``, ``run_many``, ``close``), :class:`ExecResult`,
:class:`Outcome`, :data:`REWARDS` and :func:`isolation_level`.
"""

from bcoder.execution.executor import Executor, Limits
from bcoder.execution.result import REWARDS, ExecResult, Outcome
from bcoder.execution.sandbox import isolation_level

__all__ = ["REWARDS", "ExecResult", "Executor", "Limits", "Outcome", "isolation_level"]
