"""Verdicts and ranking: run candidates' tests in the sandbox, filter by example tests, rank by R~.

Ranking is by the recovered reward R~ alone (highest first, DESIGN section 2); test outcomes are
shown beside it, and with ``filter_examples`` candidates failing the example tests are dropped
before ranking (the "filtered" protocol of DESIGN section 5).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from bcoder.cancel import check
from bcoder.results import Candidate, Progress
from bcoder.spec import Problem, TestSpec


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates best first by R~ (stable: ties keep their order of arrival)."""
    return sorted(candidates, key=lambda c: -c.reward)


def _run(
    executor: Any,
    codes: list[str],
    spec: TestSpec,
    on_done: Callable[[int, Any], None],
    cancel: threading.Event | None,
) -> None:
    for index, res in executor.run_many([(code, spec) for code in codes]):
        on_done(index, res)
        check(cancel)


def run_tests(
    problem: Problem,
    candidates: list[Candidate],
    settings: Any,
    executor: Any = None,
    emit: Callable[[Any], None] = lambda _e: None,
    cancel: threading.Event | None = None,
) -> list[Candidate]:
    """Fill outcome / true_reward / tests (and passed_examples) in the sandbox; with
    ``settings.filter_examples`` drop the candidates that fail the example tests.

    Runs the full tests when ``settings.run_tests`` and the problem has tests, and the example
    tests when the problem has them (and tests are run or filtering is asked for).
    """
    full = problem.tests if settings.run_tests else None
    examples = problem.example_tests
    if not candidates or (full is None and examples is None):
        return candidates
    total = len(candidates) * ((full is not None) + (examples is not None))
    done = 0

    def progress() -> None:
        nonlocal done
        done += 1
        emit(Progress("execute", done, total, "running tests"))

    def full_done(i: int, res: Any) -> None:
        c = candidates[i]
        c.outcome = str(getattr(res.outcome, "value", res.outcome))  # Outcome is a str enum
        c.true_reward, c.tests = float(res.reward), list(res.tests)
        progress()

    def example_done(i: int, res: Any) -> None:
        candidates[i].passed_examples = res.outcome == "pass"
        progress()

    emit(Progress("execute", 0, total, "running tests"))
    with contextlib.ExitStack() as stack:
        if executor is None:
            from bcoder.execution import Executor

            executor = stack.enter_context(Executor(timeout=settings.timeout))
        if examples is not None:
            _run(executor, [c.code for c in candidates], examples, example_done, cancel)
            if settings.filter_examples:  # dropped ones need no full run
                candidates = [c for c in candidates if c.passed_examples is not False]
                total = done + (len(candidates) if full is not None else 0)
        if full is not None:
            _run(executor, [c.code for c in candidates], full, full_done, cancel)
    return candidates
