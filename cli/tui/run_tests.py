"""The body of the TUI's "run tests" worker: every test of one candidate, in the sandbox.

No Textual here, as in :mod:`bcoder.cli.tui.generate`: warnings and errors go to ``say``, and the
app hands the verdict back to its own thread, where :func:`record_outcome` writes it onto the
candidate and :func:`save_outcomes` into the stored run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bcoder.core.errors import BcoderError
from bcoder.core.spec import TestSpec
from bcoder.core.types import Candidate
from bcoder.execution import ExecResult, Executor
from bcoder.pipeline.store import Store


def run_tests(
    code: str, tests: TestSpec, timeout: float, say: Callable[[str, str], None]
) -> ExecResult | None:
    """Check ``code`` against ``tests``: every test, not only up to the first failure (the tests
    panel lists them all). Warnings reach ``say(message, "warning")``; when the tests or the
    sandbox are unusable, ``say(message, "error")`` and None."""
    try:
        with Executor(
            workers=1,
            timeout=timeout,
            stop_on_failure=False,
            on_warning=lambda message: say(message, "warning"),
        ) as ex:
            return ex.run(code, tests)
    except BcoderError as err:
        say(f"tests: {err}", "error")
        return None


def record_outcome(candidate: Candidate, verdict: ExecResult) -> None:
    """Write the verdict onto ``candidate``: its outcome, true reward and per-test results."""
    candidate.outcome = getattr(verdict.outcome, "value", verdict.outcome)
    candidate.true_reward = float(verdict.reward)
    candidate.tests = list(verdict.tests)


def save_outcomes(store: Store, run_id: str | None, candidates: Sequence[Candidate]) -> str:
    """Record the candidates' outcomes in stored run ``run_id`` (none: nothing to do); "" or why
    it could not."""
    if not run_id:
        return ""
    try:
        store.update_candidate_outcomes(run_id, candidates)
    except BcoderError as err:
        return f"not recorded in the store: {err}"
    return ""
