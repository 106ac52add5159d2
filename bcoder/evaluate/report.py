"""Every figure of an eval report, computed from the stored per-candidate records.

Per problem the M samples are the record's distinct programs repeated by their counts, in stored
order (so duplicates occupy as many ranking slots as they were sampled: "top k of M samples").
Methods (values in [0, 1], averaged over problems, with bootstrap intervals over problems):

- ``unranked``: the unbiased pass@k of Chen et al. from the M samples;
- ``ranked_reward``: top k of M by R~, pass if any passes (the paper's CodeT protocol);
- ``ranked_mean_logprob`` / ``ranked_sum_logprob``: the same ranking by mean / sum of token
  log-probabilities (likelihood baselines that need no training);
- ``ranked_random``: the same ranking in a seeded random order (:func:`random_scores`);
- ``filtered_reward``: drop samples failing the example tests, then rank by R~ (only problems
  that have example tests);
- ``upper_bound``: rank by the true reward (the paper's r-filtered, Table 9).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bcoder import metrics
from bcoder.evaluate.records import ProblemRecord

METHODS = (
    "unranked",
    "ranked_reward",
    "ranked_mean_logprob",
    "ranked_sum_logprob",
    "ranked_random",
    "filtered_reward",
    "upper_bound",
)
METHOD_LABELS = {
    "unranked": "unranked (unbiased, from M)",
    "ranked_reward": "ranked by R~ (B-Coder)",
    "ranked_mean_logprob": "ranked by mean log-prob",
    "ranked_sum_logprob": "ranked by sum log-prob",
    "ranked_random": "random order (seeded)",
    "filtered_reward": "example-filtered, ranked by R~",
    "upper_bound": "true-reward upper bound",
}
OUTCOMES = ("pass", "fail", "runtime_error", "compile_error")


@dataclass
class Samples:
    """A problem's M samples as parallel per-sample lists (each distinct program repeated)."""

    reward: list[float]
    mean_logprob: list[float]
    sum_logprob: list[float]
    true_reward: list[float]
    passed: list[bool]
    passed_examples: list[bool]
    outcome: list[str]


def expand(record: ProblemRecord) -> Samples:
    """The per-sample lists of a record: candidate i repeated ``count`` times, in stored order."""
    s = Samples([], [], [], [], [], [], [])
    for c in record.candidates:
        for _ in range(c.count):
            s.reward.append(c.reward)
            s.mean_logprob.append(c.mean_logprob)
            s.sum_logprob.append(c.sum_logprob)
            # An unexecuted program earns nothing; NaN would rank it below everything anyway.
            s.true_reward.append(c.true_reward if c.true_reward is not None else -math.inf)
            s.passed.append(c.passed)
            s.passed_examples.append(bool(c.passed_examples))
            s.outcome.append(c.outcome or "untested")
    return s


def random_scores(problem_id: str, m: int, seed: int) -> list[float]:
    """Seeded uniform random scores for a problem's m samples (the random-order baseline).

    The generator is numpy's default_rng seeded with (seed, first 8 bytes of sha256(problem id)),
    so the order is stable across runs, shards and resumes.
    """
    key = int(hashlib.sha256(problem_id.encode()).hexdigest()[:16], 16)
    return np.random.default_rng([seed, key]).random(m).tolist()


def problem_values(record: ProblemRecord, k: int, seed: int) -> dict[str, float | None]:
    """Each method's pass@k for one problem (None where a method does not apply)."""
    s = expand(record)
    m = len(s.passed)
    out: dict[str, float | None] = {
        "unranked": metrics.pass_at_k(m, sum(s.passed), k),
        "ranked_reward": metrics.ranked_pass_at_k(s.reward, s.passed, k),
        "ranked_mean_logprob": metrics.ranked_pass_at_k(s.mean_logprob, s.passed, k),
        "ranked_sum_logprob": metrics.ranked_pass_at_k(s.sum_logprob, s.passed, k),
        "ranked_random": metrics.ranked_pass_at_k(
            random_scores(record.problem_id, m, seed), s.passed, k
        ),
        "filtered_reward": None,
        "upper_bound": metrics.upper_bound_pass_at_k(s.true_reward, s.passed, k),
    }
    if record.has_example_tests:
        out["filtered_reward"] = metrics.filtered_ranked_pass_at_k(
            s.reward, s.passed, s.passed_examples, k
        )
    return out


def _summaries(
    values: list[float | None], difficulties: list[str | None], n_boot: int, seed: int
) -> dict[str, dict[str, Any]]:
    """{group: {"value", "ci", "n"}} over the problems where the value applies."""
    keep = [(v, d) for v, d in zip(values, difficulties, strict=True) if v is not None]
    if not keep:
        return {}
    vals, diffs = [v for v, _ in keep], [d for _, d in keep]
    groups = metrics.breakdown(vals, diffs, n_resamples=n_boot, seed=seed)
    if all(d is None for d in diffs):
        groups.pop("unknown", None)  # no difficulty labels (MBPP, HumanEval): "all" says it
    return {g: {"value": s.mean, "ci": [s.low, s.high], "n": s.n} for g, s in groups.items()}


def pass_at_k_table(
    records: Sequence[ProblemRecord], ks: Sequence[int], seed: int = 0, n_boot: int = 1000
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """{group: {method: {str(k): {"value", "ci", "n"}}}} for groups = difficulties + "all"."""
    diffs = [r.difficulty for r in records]
    table: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for k in ks:
        per_problem = [problem_values(r, k, seed) for r in records]
        for method in METHODS:
            summaries = _summaries([p[method] for p in per_problem], diffs, n_boot, seed)
            for group, cell in summaries.items():
                table.setdefault(group, {}).setdefault(method, {})[str(k)] = cell
    order = [g for g in (*metrics.DIFFICULTIES, "unknown") if g in table]
    order += sorted(set(table) - {*order, "all"}) + ["all"]
    return {g: table[g] for g in order if g in table}


def expected_ranked_pass_at_k(
    scores: Sequence[float], passed: Sequence[bool], k: int, m: int
) -> float:
    """Ranked pass@k of a uniformly random m-subset of the samples, in expectation (exact).

    Order all M samples by score (:func:`bcoder.metrics.rank_order`). The top k of a subset are its
    k earliest members; none passes iff the k-th earliest member sits at a failing position p with
    k-1 of the failures before p chosen too, and the other m-k members after p:
    P(no pass) = sum_p [p fails] C(F(p)-1, k-1) C(M-p, m-k) / C(M, m), F(p) = failures in 1..p.
    """
    n = len(scores)
    if not 1 <= k <= m <= n:
        raise ValueError(f"need 1 <= k <= m <= M (got k={k}, m={m}, M={n})")
    order = metrics.rank_order(scores)
    fails, none = 0, 0
    for p, i in enumerate(order, start=1):
        if not passed[i]:
            fails += 1
            none += math.comb(fails - 1, k - 1) * math.comb(n - p, m - k)
    return 1.0 - none / math.comb(n, m)


def budgets(m_max: int, ks: Sequence[int] = ()) -> list[int]:
    """Ranking budgets m for the pass@k-against-m curve: powers of two up to M, M, and each
    k <= M (where its curve starts)."""
    ms, m = {m_max, *(k for k in ks if k <= m_max)}, 1
    while m < m_max:
        ms.add(m)
        m *= 2
    return sorted(ms)


def pass_at_k_vs_m(records: Sequence[ProblemRecord], ks: Sequence[int]) -> dict[str, Any]:
    """Mean over problems of ranked (by R~, expected over random m-subsets) and unranked pass@k
    for each budget m (the paper's Figure 5). Unranked pass@k does not depend on m in
    expectation (the estimator is unbiased), so it is the full-M estimate at every m."""
    m_max = min((r.n_samples for r in records), default=0)
    ms = budgets(m_max, ks) if m_max else []
    curves: dict[str, dict[str, list[float | None]]] = {"ranked_reward": {}, "unranked": {}}
    samples = [expand(r) for r in records]
    for k in ks:
        ranked, unranked = [], []
        for m in ms:
            if k > m:
                ranked.append(None)
                unranked.append(None)
                continue
            ranked.append(
                float(
                    np.mean([expected_ranked_pass_at_k(s.reward, s.passed, k, m) for s in samples])
                )
            )
            unranked.append(
                float(
                    np.mean([metrics.pass_at_k(len(s.passed), sum(s.passed), k) for s in samples])
                )
            )
        curves["ranked_reward"][str(k)] = ranked
        curves["unranked"][str(k)] = unranked
    return {"m": ms, **curves}


def outcome_stats(records: Sequence[ProblemRecord]) -> dict[str, dict[str, float | int | None]]:
    """Per true outcome: share of samples, and mean / std of R~ and of mean log-prob."""
    all_samples = [expand(r) for r in records]
    total = sum(len(s.outcome) for s in all_samples)
    out: dict[str, dict[str, float | int | None]] = {}
    for o in (*OUTCOMES, "untested"):
        rs = [x for s in all_samples for x, oc in zip(s.reward, s.outcome, strict=True) if oc == o]
        lps = [
            x
            for s in all_samples
            for x, oc in zip(s.mean_logprob, s.outcome, strict=True)
            if oc == o
        ]
        if o == "untested" and not rs:
            continue
        out[o] = {
            "n": len(rs),
            "share": len(rs) / total if total else None,
            "reward_mean": float(np.mean(rs)) if rs else None,
            "reward_std": float(np.std(rs)) if rs else None,
            "mean_logprob_mean": float(np.mean(lps)) if lps else None,
        }
    return out


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """P(score of a random positive > that of a random negative), ties counting 1/2 (ROC AUC)."""
    pos = np.asarray([s for s, p in zip(scores, positive, strict=True) if p], dtype=float)
    neg = np.asarray([s for s, p in zip(scores, positive, strict=True) if not p], dtype=float)
    if pos.size == 0 or neg.size == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def separation(records: Sequence[ProblemRecord]) -> dict[str, float | None]:
    """ROC AUC of each score for "the sample passes", over all samples pooled."""
    samples = [expand(r) for r in records]
    passed = [p for s in samples for p in s.passed]
    pick: dict[str, Callable[[Samples], list[float]]] = {
        "reward": lambda s: s.reward,
        "mean_logprob": lambda s: s.mean_logprob,
        "sum_logprob": lambda s: s.sum_logprob,
    }
    return {name: auc([x for s in samples for x in f(s)], passed) for name, f in pick.items()}


def calibration(records: Sequence[ProblemRecord], bins: int = 10) -> list[dict[str, Any]]:
    """R~ against the true reward: samples in equal-count bins of R~ (by rank), each with its
    R~ range and mean, mean true reward and pass rate."""
    pairs = sorted(
        (x, t, p)
        for s in (expand(r) for r in records)
        for x, t, p in zip(s.reward, s.true_reward, s.passed, strict=True)
        if math.isfinite(t)
    )
    out = []
    for chunk in np.array_split(np.arange(len(pairs)), min(bins, len(pairs))):
        if chunk.size == 0:
            continue
        xs = [pairs[i][0] for i in chunk]
        out.append(
            {
                "n": int(chunk.size),
                "reward_low": xs[0],
                "reward_high": xs[-1],
                "reward_mean": float(np.mean(xs)),
                "true_reward_mean": float(np.mean([pairs[i][1] for i in chunk])),
                "pass_rate": float(np.mean([pairs[i][2] for i in chunk])),
            }
        )
    return out


def compute_figures(
    records: Sequence[ProblemRecord], ks: Sequence[int], seed: int = 0, n_boot: int = 1000
) -> dict[str, Any]:
    """Every figure of the report from the records (see the module docstring)."""
    return {
        "problems": len(records),
        "samples": sorted({r.n_samples for r in records}),
        "metrics": pass_at_k_table(records, ks, seed, n_boot),
        "pass_at_k_vs_m": pass_at_k_vs_m(records, ks),
        "outcomes": outcome_stats(records),
        "auc": separation(records),
        "calibration": calibration(records),
    }
