"""Evaluation metrics (DESIGN section 5): pass@k, ranked / filtered pass@k, breakdowns, CIs.

Per problem, with m sampled programs:
- ``pass_at_k(n, c, k)``: the unbiased estimator of Chen et al. (2021),
  1 - C(n-c, k) / C(n, k), from n samples of which c pass.
- ``ranked_pass_at_k(scores, passed, k)``: the CodeT protocol used by B-Coder: keep the k
  programs with the highest score (R~), 1.0 if any of them passes.
- ``filtered_ranked_pass_at_k``: first drop programs that fail the example tests, then rank.
- ``upper_bound_pass_at_k``: rank by the true reward instead (the paper's r-filtered, Table 9).
Across problems: ``breakdown`` (mean per difficulty and overall) and ``bootstrap_ci``.

Conventions:
- Ranking ties: equal scores keep their original order (the earlier sample ranks higher); NaN
  scores rank below every number.
- k larger than the number of programs: all of them are kept (ranked pass@k with k > m is
  ranked pass@m). For the unbiased estimator, n < k is read the same way: the estimate is that of
  k = n, i.e. 1.0 if any of the n samples passes, else 0.0 (a lower bound of the true pass@k).
- No programs at all (n = 0, m = 0, or nothing survives the example filter): 0.0 — nothing can be
  submitted, so nothing passes (as in the paper's filtered setting).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bcoder.ranking.rankers import rank_order

DIFFICULTIES = ("introductory", "interview", "competition")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` correct (Chen et al., 2021).

    1 - C(n-c, k)/C(n, k), computed as 1 - prod_{i=n-c+1..n} (1 - k/i) for numerical stability.
    """
    if k < 1 or n < 0 or not 0 <= c <= n:
        raise ValueError(f"pass_at_k needs k >= 1 and 0 <= c <= n (got n={n}, c={c}, k={k})")
    if c == 0:
        return 0.0
    if n - c < k:  # every k-subset holds a correct sample (also covers n < k)
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _check(k: int, *columns: Sequence) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1 (got {k})")
    if len({len(c) for c in columns}) > 1:
        raise ValueError(f"sequences of different lengths: {[len(c) for c in columns]}")


def ranked_pass_at_k(scores: Sequence[float], passed: Sequence[bool], k: int) -> float:
    """1.0 if any of the top ``k`` programs by ``scores`` passed, else 0.0 (see ties above)."""
    _check(k, scores, passed)
    return float(any(passed[i] for i in rank_order(scores)[:k]))


def filtered_ranked_pass_at_k(
    scores: Sequence[float], passed: Sequence[bool], passed_examples: Sequence[bool], k: int
) -> float:
    """Ranked pass@k among the programs that pass the example tests (0.0 if none does).

    A problem without example tests should pass ``passed_examples`` all True.
    """
    _check(k, scores, passed, passed_examples)
    keep = [i for i, ok in enumerate(passed_examples) if ok]
    return ranked_pass_at_k([scores[i] for i in keep], [passed[i] for i in keep], k)


def upper_bound_pass_at_k(true_rewards: Sequence[float], passed: Sequence[bool], k: int) -> float:
    """Ranked pass@k with the true reward as the score: the ceiling of any ranking of these
    programs (1.0 whenever one of them passes, since passing earns the highest reward)."""
    return ranked_pass_at_k(true_rewards, passed, k)


def bootstrap_ci(
    values: Sequence[float], n_resamples: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval of the mean of per-problem ``values``.

    Problems are resampled with replacement; the same seed gives the same interval. Returns
    (nan, nan) for no values.
    """
    if not 0 < alpha < 1 or n_resamples < 1:
        raise ValueError("need 0 < alpha < 1 and n_resamples >= 1")
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))  # (R, N)
    means = x[idx].mean(axis=1)  # (R,)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


@dataclass(frozen=True)
class Summary:
    """A metric over a group of problems: mean, count and bootstrap interval."""

    mean: float
    n: int
    low: float
    high: float


def breakdown(
    values: Sequence[float],
    difficulties: Sequence[str | None],
    *,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Summary]:
    """Per-difficulty summaries of per-problem ``values``, then ``"all"``.

    Keys: the APPS difficulties present (introductory, interview, competition, in that order),
    any other difficulty labels present (sorted; None becomes "unknown"), and "all".
    """
    if len(values) != len(difficulties):
        raise ValueError(f"{len(values)} values but {len(difficulties)} difficulties")
    labels = ["unknown" if d is None else d for d in difficulties]
    present = set(labels)
    order = [d for d in DIFFICULTIES if d in present] + sorted(present - set(DIFFICULTIES))
    groups = {name: [v for v, d in zip(values, labels, strict=True) if d == name] for name in order}
    groups["all"] = list(values)
    out = {}
    for name, vals in groups.items():
        low, high = bootstrap_ci(vals, n_resamples, alpha, seed)
        out[name] = Summary(float(np.mean(vals)) if vals else math.nan, len(vals), low, high)
    return out
