"""Verdicts and ranking: run candidates' tests in the sandbox, filter by example tests, rank.

A *ranker* scores a problem's candidates as a set: ``Ranker = Callable[[Sequence[Candidate]],
list[float]]``, one score per candidate, higher = better; :func:`rank_order` sorts by them (ties
keep the order of arrival, NaN last). Agreement needs the set: a candidate's score depends on what
the others did. A score of one candidate on its own (:mod:`bcoder.ranking.scores`) becomes a ranker
through :func:`per_candidate`, with the same scores (so the same orders) as when rankers read one
candidate at a time. :data:`RANKERS` holds them by name, and ``solve``, ``rank``, ``eval``,
``train select``, the TUI and the language server all rank through it:

- ``reward``: R~ = sum_t r~_t, the recovered reward (the paper's ranking, DESIGN section 2);
- ``terminal``: Q(s_T, a_T) at the last action, the Q-function's own prediction of the program's
  reward (not in the paper; see :func:`~bcoder.ranking.scores.terminal_q`);
- ``tests-first`` / ``tests-first-terminal``: candidates that passed the problem's example tests
  first, then by R~ / by the terminal Q (not in the paper; see
  :func:`~bcoder.ranking.scores.tests_first`);
- ``mean-logprob``, ``sum-logprob``: likelihood baselines that need no trained heads, and
  ``tests-first-logprob``: example tests first, then mean log-prob (the likelihood counterpart of
  ``tests-first``, so that what the learned score adds beyond the example tests is measured);
- ``codet-*``, ``outputs-*``, ``overlap-*`` (:data:`AGREEMENT`): agreement on the tests the model
  wrote (:mod:`bcoder.ranking.agreement`): dual agreement (CodeT), output agreement (MBR-exec) and
  functional overlap (SRank), example tests first, then the group's score, then R~ (``-reward``)
  or mean log-prob (``-logprob``) inside a group. They fit nothing. Without generated verdicts
  (:func:`uses_generated` False) each orders by example tests, then its within-group score;
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
from bcoder.ranking.agreement import (
    agreement_ranker,
    dual_agreement,
    functional_overlap,
    output_agreement,
    uses_generated,
)
from bcoder.ranking.scores import (
    Ranker,
    Score,
    mean_logprob,
    random_score,
    recovered_reward,
    sum_logprob,
    terminal_q,
    tests_first,
)

DEFAULT_RANKER = "reward"
# For a problem without tests of its own, until a checkpoint's validation chooses: CodeT's dual
# agreement, candidates inside a group by mean log-prob, which ranked better than R~ on MBPP
# without tests (README "Results": R~ 54.4 against mean log-prob 57.4 pass@1).
DEFAULT_RANKER_WITHOUT_TESTS = "codet-logprob"


def per_candidate(score: Score) -> Ranker:
    """The ranker that scores each candidate on its own by ``score`` (the others do not count)."""

    def ranker(candidates: Sequence[Candidate]) -> list[float]:
        return [float(score(c)) for c in candidates]

    return ranker


RANKERS: dict[str, Ranker] = {
    "reward": per_candidate(recovered_reward),
    "terminal": per_candidate(terminal_q),
    "tests-first": per_candidate(tests_first(recovered_reward)),
    "tests-first-terminal": per_candidate(tests_first(terminal_q)),
    "mean-logprob": per_candidate(mean_logprob),
    "sum-logprob": per_candidate(sum_logprob),
    "tests-first-logprob": per_candidate(tests_first(mean_logprob)),
    "codet-reward": agreement_ranker(dual_agreement, recovered_reward),
    "codet-logprob": agreement_ranker(dual_agreement, mean_logprob),
    "outputs-reward": agreement_ranker(output_agreement, recovered_reward),
    "outputs-logprob": agreement_ranker(output_agreement, mean_logprob),
    "overlap-reward": agreement_ranker(functional_overlap, recovered_reward),
    "overlap-logprob": agreement_ranker(functional_overlap, mean_logprob),
    "random": per_candidate(random_score),
}
LEARNED = ("reward", "terminal", "tests-first", "tests-first-terminal")  # need trained heads
# read the candidates' verdicts on generated tests (Candidate.generated); fit nothing
AGREEMENT = (
    "codet-reward",
    "codet-logprob",
    "outputs-reward",
    "outputs-logprob",
    "overlap-reward",
    "overlap-logprob",
)
# the per-candidate ranker that orders inside an agreement ranker's groups: alone, after the
# example tests, when no generated test ran (falls_back)
WITHIN_GROUP = {
    name: "reward" if name.endswith("-reward") else "mean-logprob" for name in AGREEMENT
}
RANKER_LABELS = {
    "reward": "R~ (B-Coder)",
    "terminal": "terminal Q(s_T, a_T)",
    "tests-first": "example tests first, then R~",
    "tests-first-terminal": "example tests first, then terminal Q",
    "mean-logprob": "mean log-prob",
    "sum-logprob": "sum log-prob",
    "tests-first-logprob": "example tests first, then mean log-prob",
    "codet-reward": "dual agreement on generated tests (CodeT), then R~",
    "codet-logprob": "dual agreement on generated tests (CodeT), then mean log-prob",
    "outputs-reward": "output agreement on generated inputs (MBR-exec), then R~",
    "outputs-logprob": "output agreement on generated inputs (MBR-exec), then mean log-prob",
    "overlap-reward": "functional overlap of output groups (SRank), then R~",
    "overlap-logprob": "functional overlap of output groups (SRank), then mean log-prob",
    "random": "random order (hash of the code)",
}


def falls_back(ranker: str, candidates: Sequence[Candidate]) -> bool:
    """Whether ``ranker`` reads generated tests and none of ``candidates`` ran one, so that it
    orders them by its within-group score alone (``WITHIN_GROUP``; what solve tells the user)."""
    return ranker in AGREEMENT and not uses_generated(candidates)


def fallback_order(ranker: str, candidates: Sequence[Candidate]) -> str | None:
    """What ``ranker`` orders ``candidates`` by, in words, when it falls back (:func:`falls_back`:
    its within-group score alone, e.g. "mean log-prob"); None when it does not fall back."""
    return RANKER_LABELS[WITHIN_GROUP[ranker]] if falls_back(ranker, candidates) else None


def get_ranker(name: str) -> Ranker:
    """The ranker called ``name``, or a one-line error naming the known ones."""
    try:
        return RANKERS[name]
    except (KeyError, TypeError):
        raise BcoderError(f"unknown ranker {name!r} (known: {', '.join(RANKERS)})") from None


def checkpoint_ranker(checkpoint: str | Path | None, own_tests: bool = True) -> str:
    """The ranker a checkpoint's validation chose: for problems with tests of their own (its
    ``"ranker"`` field, else ``reward``), or with ``own_tests=False`` for problems without, which
    generated tests rank (its ``"ranker_without_tests"``, else :data:`DEFAULT_RANKER_WITHOUT_TESTS`;
    checkpoints older than that field read so).

    ``None`` and ``"none"`` (heads at their initialisation, :attr:`Engine.heads`; ``"init"`` in
    older records) take the defaults.
    """
    key, default = ("ranker", DEFAULT_RANKER)
    if not own_tests:
        key, default = ("ranker_without_tests", DEFAULT_RANKER_WITHOUT_TESTS)
    if checkpoint is None or is_no_heads(checkpoint):
        return default
    from bcoder.qmodel.config import read_checkpoint_config

    name = read_checkpoint_config(checkpoint).get(key, default)
    if name not in RANKERS:
        raise BcoderError(
            f"{checkpoint}: unknown ranker {name!r} in bcoder_config.json "
            f"(known: {', '.join(RANKERS)})"
        )
    return name


def rank(
    candidates: list[Candidate], ranker: str = DEFAULT_RANKER, *, passing_first: bool = False
) -> list[Candidate]:
    """Candidates best first by ``ranker``, which scores them as a set (ties keep their order
    of arrival, NaN last: the order of :func:`rank_order`, as ``bcoder eval`` ranks). With ``passing_first`` those whose
    outcome is ``pass`` come before the rest, each group in the ranker's order: what ``solve``
    shows once the problem's own tests have run (eval keeps the ranker's pure order)."""
    order = rank_order(get_ranker(ranker)(candidates))
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
