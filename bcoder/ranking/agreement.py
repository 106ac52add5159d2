"""Rankers that see the whole candidate set: agreement on the tests the model wrote.

A problem without tests of its own gets tests the model wrote from its statement
(:class:`~bcoder.core.types.GeneratedTests`), and every candidate runs on them:
``Candidate.generated`` holds a verdict per generated test and what the program returned there
(``TestOutcome.value``: a canonical text of the value, ``raise NAME``, ``timeout``; "" unknown), in
the tests' order. A wrong program can be wrong in many ways and right ones agree, so programs that
behave alike vouch for each other, and tests that many programs pass vouch for their expected
values. Notation: N samples (a merged program counts ``Candidate.count`` times), T generated tests.

- **dual agreement** (CodeT, Chen et al. 2022): group the candidates by the set S of generated
  tests they pass; a group scores (samples in it) x |S|.
- **output agreement** (MBR-exec with the 0/1 loss, Shi et al. 2022): group them by what they
  returned on the T tests' inputs (:func:`output_key`: exceptions and time-outs are outputs too);
  a group scores its number of samples. It never reads an expected value, so it survives the
  model's wrong expectations.
- **functional overlap** (SRank, To et al. 2024): the output groups of MBR-exec, each with
  V_j = (n_j / N) * (p_j / T), n_j its samples and p_j the generated tests it passes (the paper's
  cluster size times pass rate, both weights 1), and I_ij = (1/T) * #{tests where groups i and j
  returned the same value}, counting only returned values (not exceptions, time-outs, opaque
  objects or unknowns), with I_ii = 1; group i scores R_i = sum_j I_ij V_j, in [0, 1].
  As the authors' code (SRank-CodeRanker) does, except: duplicates count in n_j (theirs counts
  distinct programs), overlap is over the T tests (theirs over distinct inputs, two tests on one
  input counting once), and programs that fail to run or return one constant on every input are
  not set apart into a group scored 0 (their ``check_validity``: a right predicate may return the
  same answer on every input the model chose). SRank learns nothing; nothing is fitted here.

Every candidate gets its group's score. :func:`agreement_ranker` turns a group score into a
ranker: example tests first (when the problem has its own: ``passed_examples``), then the group
score, then a per-candidate score inside the group (R~ or mean log-prob). When no candidate has a
verdict on a generated test that ran (none parsed, or none ran: :func:`uses_generated` is False),
every group score is 0 and the order is example tests first, then the within-group score alone.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence

from bcoder.core.types import Candidate
from bcoder.ranking.scores import Ranker, Score, squash

GroupScore = Callable[[Sequence[Candidate]], list[float]]  # each candidate's group's score
# values that are not a returned plain value (bcoder.execution.values): never overlap
_NOT_RETURNED = ("raise ", "opaque ")
_TIMEOUT = "timeout"


def uses_generated(candidates: Sequence[Candidate]) -> bool:
    """Whether any candidate has a verdict on a generated test that ran (not "skipped").

    When none has, the agreement rankers fall back to their within-group score (after the
    example tests); solve and eval say so.
    """
    return any(t.verdict != "skipped" for c in candidates for t in c.generated)


def output_key(c: Candidate) -> tuple[str, ...]:
    """What ``c`` did on each generated test: the value it returned (``raise NAME`` and
    ``timeout`` included), or ``? VERDICT`` where the value is unknown, so that unknowns agree
    only with the same verdict rather than with every other unknown."""
    return tuple(t.value or f"? {t.verdict}" for t in c.generated)


def _samples(keys: Sequence[Hashable], candidates: Sequence[Candidate]) -> Counter:
    """{key: samples with it}: a merged program counts as many times as it was sampled."""
    size: Counter = Counter()
    for key, c in zip(keys, candidates, strict=True):
        size[key] += c.count
    return size


def dual_agreement(candidates: Sequence[Candidate]) -> list[float]:
    """CodeT's score of each candidate's group: (samples passing exactly the same generated
    tests) x (how many tests that is). A group that passes nothing scores 0."""
    passed = [
        frozenset(j for j, t in enumerate(c.generated) if t.verdict == "pass") for c in candidates
    ]
    size = _samples(passed, candidates)
    return [float(size[p] * len(p)) for p in passed]


def output_agreement(candidates: Sequence[Candidate]) -> list[float]:
    """MBR-exec's score of each candidate's group: the samples that returned the same on every
    generated test's input (:func:`output_key`)."""
    keys = [output_key(c) for c in candidates]
    size = _samples(keys, candidates)
    return [float(size[k]) for k in keys]


def is_returned_value(value: str) -> bool:
    """Whether a stored output (``TestOutcome.value``) is a plain value the program returned:
    not an exception, a time-out, an opaque object or unknown."""
    return bool(value) and value != _TIMEOUT and not value.startswith(_NOT_RETURNED)


def _overlap(a: Candidate, b: Candidate) -> int:
    """Generated tests on which ``a`` and ``b`` returned the same plain value."""
    return sum(
        x.value == y.value and is_returned_value(x.value)
        for x, y in zip(a.generated, b.generated, strict=False)
    )


def functional_overlap(candidates: Sequence[Candidate]) -> list[float]:
    """SRank's R_i = sum_j I_ij V_j of each candidate's output group (module docstring).

    Computed in integers, R_i * N * T^2 = T n_i p_i + sum_{j != i} overlap_ij n_j p_j, and divided
    once, so that groups with equal scores tie exactly.
    """
    keys = [output_key(c) for c in candidates]
    first: dict[tuple[str, ...], Candidate] = {}  # a group's members returned the same
    for key, c in zip(keys, candidates, strict=True):
        first.setdefault(key, c)
    n_tests = max((len(c.generated) for c in candidates), default=0)  # T
    total = sum(c.count for c in candidates)  # N
    if n_tests == 0 or total <= 0:
        return [0.0] * len(candidates)
    size = _samples(keys, candidates)
    weight = {  # V_j * N * T = n_j p_j
        key: size[key] * sum(t.verdict == "pass" for t in c.generated) for key, c in first.items()
    }
    units = {
        key: n_tests * weight[key]  # I_ii = 1
        + sum(_overlap(c, d) * weight[other] for other, d in first.items() if other != key)
        for key, c in first.items()
    }
    return [units[key] / (total * n_tests * n_tests) for key in keys]


def lexicographic(keys: Sequence[tuple[float, ...]], last: Sequence[float]) -> list[float]:
    """One float per candidate that orders as (key, last) compared in that order does: the
    place of its key among the distinct keys (0 the lowest) plus squash(last), in (0, 1) (NaN
    counts 0: last among its key). Keys are compared exactly, however close two are; only the
    order of the result means something, and only within this set."""
    places = {k: float(i) for i, k in enumerate(sorted(set(keys)))}
    return [
        places[k] + (0.0 if math.isnan(x) else squash(x)) for k, x in zip(keys, last, strict=True)
    ]


def agreement_ranker(group_score: GroupScore, within: Score) -> Ranker:
    """A ranker of a candidate set: example tests passed first, then ``group_score`` (0 for
    every candidate when none ran a generated test), then ``within`` inside a group."""

    def ranker(candidates: Sequence[Candidate]) -> list[float]:
        cands = list(candidates)
        groups = group_score(cands) if uses_generated(cands) else [0.0] * len(cands)
        keys = [(float(c.passed_examples is True), g) for c, g in zip(cands, groups, strict=True)]
        return lexicographic(keys, [float(within(c)) for c in cands])

    return ranker
