"""The body of the TUI's "run tests" worker: every test of one candidate, in the sandbox.

No Textual here, as in :mod:`bcoder.cli.tui.generate`: warnings go to ``on_warning``, and the app
hands the verdict back to its own thread, where :func:`record_outcome` writes it onto the candidate.
"""

from __future__ import annotations

from collections.abc import Callable

from bcoder.core.spec import TestSpec
from bcoder.core.types import Candidate
from bcoder.execution import ExecResult, Executor


def run_tests(
    code: str, tests: TestSpec, timeout: float, on_warning: Callable[[str], None]
) -> ExecResult:
    """Check ``code`` against ``tests``: every test, not only up to the first failure (the tests
    panel lists them all). Raises ``BcoderError`` when the tests or the sandbox are unusable."""
    with Executor(workers=1, timeout=timeout, stop_on_failure=False, on_warning=on_warning) as ex:
        return ex.run(code, tests)


def record_outcome(candidate: Candidate, verdict: ExecResult) -> None:
    """Write the verdict onto ``candidate``: its outcome, true reward and per-test results."""
    candidate.outcome = getattr(verdict.outcome, "value", verdict.outcome)
    candidate.true_reward = float(verdict.reward)
    candidate.tests = list(verdict.tests)
