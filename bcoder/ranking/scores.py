"""Per-candidate scores: what a ranker reads of one candidate on its own, higher = better.

Each is a small pure function of a :class:`~bcoder.core.types.Candidate` (its per-token values and
verdicts). :mod:`bcoder.ranking.rankers` turns each into a ranker of a candidate set
(:func:`~bcoder.ranking.rankers.per_candidate`), and the agreement rankers
(:mod:`bcoder.ranking.agreement`) use R~ and mean log-prob to order the candidates inside a group.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

from bcoder.core.types import Candidate

Score = Callable[[Candidate], float]  # one candidate on its own -> a score, higher = better
# a problem's candidates -> one score each, higher = better (bcoder.ranking.rankers)
Ranker = Callable[[Sequence[Candidate]], list[float]]


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


def tests_first(score: Score) -> Score:
    """A score that puts candidates which passed the example tests before all others, each
    group ordered by ``score``: 1 + squash(score) for those, squash(score) for the rest.

    Unlike the filtered protocol it drops nothing, so it can always fill k slots; without
    example tests (``passed_examples`` is None everywhere) it is ``score``'s order.
    """

    def ranker(c: Candidate) -> float:
        return float(c.passed_examples is True) + squash(score(c))

    return ranker
