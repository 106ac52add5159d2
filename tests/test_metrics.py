"""Metrics against hand-computed values and naive enumerations."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from bcoder.evaluate.metrics import (
    Summary,
    bootstrap_ci,
    breakdown,
    filtered_ranked_pass_at_k,
    pass_at_k,
    ranked_pass_at_k,
    upper_bound_pass_at_k,
)
from bcoder.ranking.rankers import rank_order


def test_pass_at_k_hand_values():
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(10, 1, 5) == pytest.approx(0.5)  # 1 - C(9,5)/C(10,5) = 1 - 126/252
    assert pass_at_k(10, 10, 3) == 1.0
    assert pass_at_k(4, 0, 1) == 0.0  # no correct samples


def test_pass_at_k_with_fewer_samples_than_k():
    assert pass_at_k(3, 1, 5) == 1.0  # read as k = n: one of the 3 passes
    assert pass_at_k(3, 0, 5) == 0.0  # none does (Chen et al.'s code would say 1.0 here)
    assert pass_at_k(0, 0, 1) == 0.0  # no samples: nothing to submit


def test_pass_at_k_matches_enumerating_subsets():
    for n in range(1, 8):
        for c in range(n + 1):
            for k in range(1, n + 1):
                samples = [True] * c + [False] * (n - c)
                subsets = list(itertools.combinations(samples, k))
                naive = sum(any(s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(naive), (n, c, k)


def test_pass_at_k_rejects_nonsense():
    for n, c, k in [(3, 4, 1), (3, -1, 1), (3, 1, 0)]:
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def test_ranked_pass_at_k():
    scores, passed = [0.1, 0.9, 0.5], [True, False, False]
    assert ranked_pass_at_k(scores, passed, 1) == 0.0  # top-1 is index 1, which fails
    assert ranked_pass_at_k(scores, passed, 2) == 0.0  # top-2 are 1 and 2
    assert ranked_pass_at_k(scores, passed, 3) == 1.0
    assert ranked_pass_at_k(scores, passed, 10) == 1.0  # k > m: all of them
    assert ranked_pass_at_k([], [], 1) == 0.0
    assert ranked_pass_at_k([2.0], [False], 1) == 0.0  # no correct samples


def test_ties_and_nan_are_deterministic():
    assert rank_order([1.0, 3.0, 1.0, 3.0]) == [1, 3, 0, 2]  # equal scores keep index order
    assert rank_order([float("nan"), -5.0, 0.0]) == [2, 1, 0]  # NaN below every number
    assert ranked_pass_at_k([1.0, 1.0, 1.0], [False, True, False], 1) == 0.0
    assert ranked_pass_at_k([1.0, 1.0, 1.0], [False, True, False], 2) == 1.0
    assert ranked_pass_at_k([float("nan"), 0.0], [True, False], 1) == 0.0


def test_ranked_matches_a_naive_loop():
    rng = random.Random(0)
    for _ in range(200):
        m = rng.randint(1, 12)
        scores = [rng.choice([0.0, 0.5, 1.0, rng.random()]) for _ in range(m)]
        passed = [rng.random() < 0.3 for _ in range(m)]
        k = rng.randint(1, 14)
        # naive: repeatedly pick the best remaining (first one on ties)
        left, chosen = list(range(m)), []
        while left and len(chosen) < k:
            best = left[0]
            for i in left:
                if scores[i] > scores[best]:
                    best = i
            chosen.append(best)
            left.remove(best)
        assert ranked_pass_at_k(scores, passed, k) == float(any(passed[i] for i in chosen))


def test_filtered_ranked_pass_at_k():
    scores = [0.9, 0.8, 0.1, 0.05]
    passed = [False, False, True, True]
    examples = [True, False, True, False]
    # survivors 0 (0.9, fails) and 2 (0.1, passes)
    assert filtered_ranked_pass_at_k(scores, passed, examples, 1) == 0.0
    assert filtered_ranked_pass_at_k(scores, passed, examples, 2) == 1.0
    assert ranked_pass_at_k(scores, passed, 2) == 0.0  # unfiltered top-2 both fail
    assert filtered_ranked_pass_at_k(scores, passed, [False] * 4, 5) == 0.0  # nothing survives
    with pytest.raises(ValueError, match="different lengths"):
        filtered_ranked_pass_at_k(scores, passed, [True], 1)


def test_upper_bound():
    rewards, passed = [-0.3, 1.0, -1.0, -0.6], [False, True, False, False]
    assert upper_bound_pass_at_k(rewards, passed, 1) == 1.0
    assert upper_bound_pass_at_k([-0.3, -0.6], [False, False], 2) == 0.0
    scores = [5.0, -1.0, 3.0, 2.0]  # a ranking by R~ can only do as well
    for k in range(1, 5):
        assert ranked_pass_at_k(scores, passed, k) <= upper_bound_pass_at_k(rewards, passed, k)


def test_bootstrap_ci():
    assert bootstrap_ci([0.25] * 7) == (0.25, 0.25)
    lo, hi = bootstrap_ci([0.0, 1.0] * 50)
    assert 0.38 < lo < 0.5 < hi < 0.62  # ~ 0.5 +- 1.96 * 0.05
    assert bootstrap_ci([0.0, 1.0, 1.0], seed=3) == bootstrap_ci([0.0, 1.0, 1.0], seed=3)
    wide = bootstrap_ci([0.0, 1.0] * 5)
    assert wide[1] - wide[0] > hi - lo  # fewer problems, wider interval
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], alpha=0)


def test_breakdown():
    values = [1.0, 0.0, 0.5, 1.0, 0.0]
    diffs = ["competition", "introductory", "introductory", None, "interview"]
    out = breakdown(values, diffs, n_resamples=200)
    assert list(out) == ["introductory", "interview", "competition", "unknown", "all"]
    assert out["introductory"].mean == 0.25 and out["introductory"].n == 2
    assert out["competition"] == Summary(1.0, 1, 1.0, 1.0)
    assert out["all"].mean == pytest.approx(0.5) and out["all"].n == 5
    assert out["all"].low <= 0.5 <= out["all"].high
    with pytest.raises(ValueError):
        breakdown([1.0], [])
