"""Verdicts and ranking: run candidates' tests in the sandbox, filter by example tests, rank.

A *ranker* is a small pure function of a :class:`~bcoder.core.types.Candidate` (its per-token values
and verdicts) to a score, higher = better; :data:`RANKERS` holds them by name, and ``solve``,
``rank``, ``eval``, the TUI and the language server all rank through it:

- ``reward``: R~ = sum_t r~_t, the recovered reward (the paper's ranking, DESIGN section 2);
- ``terminal``: Q(s_T, a_T) at the last action, the Q-function's own prediction of the program's
  reward (not in the paper; see :func:`terminal_q`);
- ``tests-first`` / ``tests-first-terminal``: candidates that passed the problem's example tests
  first, then by R~ / by the terminal Q (not in the paper; see :func:`tests_first`);
- ``mean-logprob``, ``sum-logprob``: likelihood baselines that need no trained heads, and
  ``tests-first-logprob``: example tests first, then mean log-prob (the likelihood counterpart of
  ``tests-first``, so that what the learned score adds beyond the example tests is measured);
- ``random``: a fixed pseudo-random order (a hash of the code), the no-information baseline.

Which ranker ``solve`` uses is the checkpoint's: the ``"ranker"`` field of its
``bcoder_config.json`` (:func:`checkpoint_ranker`), ``reward`` when it has none or there is no
checkpoint. A training recipe writes it with ``save_checkpoint(..., extra={"ranker": name})``;
to set it by hand, choose the ranker with the best pass@1 on a *validation* split
(``bcoder eval --split validation --checkpoint DIR`` names it) and edit the field.

With ``filter_examples`` candidates failing the example tests are dropped before ranking (the
"filtered" protocol of DESIGN section 5); ``tests-first`` keeps them, after the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bcoder.core.cancel import check
from bcoder.core.errors import BcoderError
from bcoder.core.settings import is_no_heads
from bcoder.core.spec import Problem, TestSpec
from bcoder.core.types import Candidate, Progress

Ranker = Callable[[Candidate], float]
DEFAULT_RANKER = "reward"


def recovered_reward(c: Candidate) -> float:
    """R~ = sum_t r~_t (the paper's ranking score, computed when the candidate was scored)."""
    return c.reward


def terminal_q(c: Candidate) -> float:
    """Q(s_T, a_T): the Q-value of the last action (NaN for a candidate without tokens).

    The TD target there is the program's reward r_T itself, with no bootstrap (DESIGN section 2),
    so Q at the last action is the model's own estimate of the reward this program earns, while
    R~ sums per-token terms dominated by the advantages. V(s_T) is not the primary choice: it is
    the value of the state *before* the last token, so it cannot tell a program that ends (EOS,
    closing fence) from one cut there by the length limit; Q(s_T, a_T) = A(s_T, a_T) + V(s_T)
    is the quantity the loss fits to r_T.
    """
    return c.tokens[-1].q if c.tokens else math.nan


def mean_logprob(c: Candidate) -> float:
    """The mean token log-probability under the policy (a likelihood baseline)."""
    return c.mean_logprob


def sum_logprob(c: Candidate) -> float:
    """The program's log-probability under the policy (a likelihood baseline)."""
    return c.sum_logprob


def random_score(c: Candidate) -> float:
    """A uniform number in [0, 1) from sha256 of the code: a random order that is the same in
    every run, shard and resume, and the same for every copy of a program."""
    return int(hashlib.sha256(c.code.encode()).hexdigest()[:13], 16) / 16**13


def squash(x: float) -> float:
    """1/2 + atan(x)/pi: a strictly increasing map of the reals into (0, 1)."""
    return 0.5 + math.atan(x) / math.pi


def tests_first(score: Ranker) -> Ranker:
    """A ranker that puts candidates which passed the example tests before all others, each
    group ordered by ``score``: 1 + squash(score) for those, squash(score) for the rest.

    Unlike the filtered protocol it drops nothing, so it can always fill k slots; without
    example tests (``passed_examples`` is None everywhere) it is ``score``'s order.
    """

    def ranker(c: Candidate) -> float:
        return float(c.passed_examples is True) + squash(score(c))

    return ranker


RANKERS: dict[str, Ranker] = {
    "reward": recovered_reward,
    "terminal": terminal_q,
    "tests-first": tests_first(recovered_reward),
    "tests-first-terminal": tests_first(terminal_q),
    "mean-logprob": mean_logprob,
    "sum-logprob": sum_logprob,
    "tests-first-logprob": tests_first(mean_logprob),
    "random": random_score,
}
LEARNED = ("reward", "terminal", "tests-first", "tests-first-terminal")  # need trained heads
RANKER_LABELS = {
    "reward": "R~ (B-Coder)",
    "terminal": "terminal Q(s_T, a_T)",
    "tests-first": "example tests first, then R~",
    "tests-first-terminal": "example tests first, then terminal Q",
    "mean-logprob": "mean log-prob",
    "sum-logprob": "sum log-prob",
    "tests-first-logprob": "example tests first, then mean log-prob",
    "random": "random order (hash of the code)",
}


def get_ranker(name: str) -> Ranker:
    """The ranker called ``name``, or a one-line error naming the known ones."""
    try:
        return RANKERS[name]
    except (KeyError, TypeError):
        raise BcoderError(f"unknown ranker {name!r} (known: {', '.join(RANKERS)})") from None


def checkpoint_ranker(checkpoint: str | Path | None) -> str:
    """The ranker a checkpoint's validation chose (its ``"ranker"`` field), else ``reward``.

    ``None`` and ``"none"`` (heads at their initialisation, :attr:`Engine.heads`; ``"init"`` in
    older records) rank by R~.
    """
    if checkpoint is None or is_no_heads(checkpoint):
        return DEFAULT_RANKER
    from bcoder.qmodel.config import read_checkpoint_config

    name = read_checkpoint_config(checkpoint).get("ranker", DEFAULT_RANKER)
    if name not in RANKERS:
        raise BcoderError(
            f"{checkpoint}: unknown ranker {name!r} in bcoder_config.json "
            f"(known: {', '.join(RANKERS)})"
        )
    return name


def rank(
    candidates: list[Candidate], ranker: str = DEFAULT_RANKER, *, passing_first: bool = False
) -> list[Candidate]:
    """Candidates best first by ``ranker`` (ties keep their order of arrival, NaN last: the
    order of :func:`rank_order`, as ``bcoder eval`` ranks). With ``passing_first`` those whose
    outcome is ``pass`` come before the rest, each group in the ranker's order: what ``solve``
    shows once the problem's own tests have run (eval keeps the ranker's pure order)."""
    score = get_ranker(ranker)
    order = rank_order([score(c) for c in candidates])
    if passing_first:
        order.sort(key=lambda i: candidates[i].outcome != "pass")  # stable: the ranker's order
    return [candidates[i] for i in order]


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


def rank_order(scores: Sequence[float]) -> list[int]:
    """Indices from the highest score to the lowest; ties keep index order, NaN last."""
    return sorted(
        range(len(scores)),
        key=lambda i: (math.isnan(scores[i]), -scores[i] if not math.isnan(scores[i]) else 0, i),
    )
