"""Every figure of an eval report, computed from the stored per-candidate records.

Per problem the M samples are the record's distinct programs repeated by their counts, in stored
order (so duplicates occupy as many ranking slots as they were sampled: "top k of M samples").
Methods (values in [0, 1], averaged over problems, with bootstrap intervals over problems):

- ``unranked``: the unbiased pass@k of Chen et al. from the M samples;
- ``ranked_<ranker>`` for each ranker of :data:`bcoder.ranking.rankers.RANKERS` (``-`` read as ``_``):
  top k of M by that ranker's score, pass if any passes (the paper's CodeT protocol).
  ``ranked_reward`` is the paper's (R~); ``ranked_terminal`` and ``ranked_tests_first*`` are
  learned rankers the paper does not have; ``ranked_mean_logprob`` / ``ranked_sum_logprob``
  are likelihood baselines that need no training and ``ranked_random`` a fixed random order;
- ``filtered_reward``: drop samples failing the example tests, then rank by R~ (only problems
  that have example tests);
- ``upper_bound``: rank by the true reward (the paper's r-filtered, Table 9).

``auc`` gives each ranker's ROC AUC for "the sample passes", and ``best_ranker`` the learned
ranker with the best overall pass@k at the smallest k: what a checkpoint's ``"ranker"`` should
say when this run is on a validation split. ``vs_likelihood`` gives each learned ranker's ranked
pass@k minus mean log-prob's (and the tests-first ones' minus ``tests-first-logprob``'s), with
a paired bootstrap interval over problems.

Rankers score a problem's distinct programs as a set (the agreement rankers need every program's
verdicts on the generated tests, and a program's count). A report shows the agreement rankers
(:data:`bcoder.ranking.rankers.AGREEMENT`) only when the run wrote tests for its problems (a record
with ``generated``), and then their differences against mean log-prob too; on other runs they
would only repeat their fallback, and the reports of older runs stay as they were.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bcoder.evaluate import metrics
from bcoder.evaluate.generated import generated_stats, shows_without_examples, without_examples
from bcoder.evaluate.records import ProblemRecord
from bcoder.ranking.rankers import AGREEMENT, LEARNED, RANKER_LABELS, RANKERS, uses_generated


def ranked_method(ranker: str) -> str:
    """The report's name for ranking by ``ranker``: 'tests-first' -> 'ranked_tests_first'."""
    return "ranked_" + ranker.replace("-", "_")


METHODS = ("unranked", *(ranked_method(r) for r in RANKERS), "filtered_reward", "upper_bound")
METHOD_LABELS = {
    "unranked": "unranked (unbiased, from M)",
    **{ranked_method(r): f"ranked by {RANKER_LABELS[r]}" for r in RANKERS},
    "filtered_reward": "example-filtered, ranked by R~",
    "upper_bound": "true-reward upper bound",
}
OUTCOMES = ("pass", "fail", "runtime_error", "compile_error")


@dataclass
class Samples:
    """A problem's M samples as parallel per-sample lists (each distinct program repeated)."""

    difficulty: str | None
    has_example_tests: bool
    scores: dict[str, list[float]]  # ranker name -> its score of each sample
    true_reward: list[float]
    passed: list[bool]
    passed_examples: list[bool]
    outcome: list[str]
    generated: bool = False  # some candidate ran a generated test (else agreement fell back)

    @property
    def reward(self) -> list[float]:
        return self.scores["reward"]

    @property
    def mean_logprob(self) -> list[float]:
        return self.scores["mean-logprob"]


def reported_rankers(records: Sequence[ProblemRecord]) -> list[str]:
    """The rankers a report shows: every one of RANKERS, the agreement rankers only when some
    problem of the run had tests written for it."""
    wrote = any(r.generated is not None for r in records)
    return [name for name in RANKERS if wrote or name not in AGREEMENT]


def expand(record: ProblemRecord) -> Samples:
    """The per-sample lists of a record: candidate i repeated ``count`` times, in stored order.
    Every ranker scores the problem's distinct programs once, as a set; the figures below all
    read these lists."""
    s = Samples(
        record.difficulty, record.has_example_tests, {n: [] for n in RANKERS}, [], [], [], []
    )
    cands = [c.to_candidate() for c in record.candidates]
    s.generated = uses_generated(cands)
    scored = {name: ranker(cands) for name, ranker in RANKERS.items()}
    for i, c in enumerate(record.candidates):
        for _ in range(c.count):
            for name, xs in scored.items():
                s.scores[name].append(float(xs[i]))
            # An unexecuted program earns nothing; NaN would rank it below everything anyway.
            s.true_reward.append(c.true_reward if c.true_reward is not None else -math.inf)
            s.passed.append(c.passed)
            s.passed_examples.append(bool(c.passed_examples))
            s.outcome.append(c.outcome or "untested")
    return s


def problem_values(s: Samples, k: int) -> dict[str, float | None]:
    """Each method's pass@k for one problem (None where a method does not apply)."""
    m = len(s.passed)
    out: dict[str, float | None] = {"unranked": metrics.pass_at_k(m, sum(s.passed), k)}
    for name in s.scores:
        out[ranked_method(name)] = metrics.ranked_pass_at_k(s.scores[name], s.passed, k)
    out["filtered_reward"] = None
    out["upper_bound"] = metrics.upper_bound_pass_at_k(s.true_reward, s.passed, k)
    if s.has_example_tests:
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
    samples: Sequence[Samples],
    ks: Sequence[int],
    seed: int = 0,
    n_boot: int = 1000,
    rankers: Sequence[str] | None = None,
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """{group: {method: {str(k): {"value", "ci", "n"}}}} for groups = difficulties + "all",
    ranked by ``rankers`` (every one of RANKERS when None)."""
    shown = {ranked_method(r) for r in (RANKERS if rankers is None else rankers)}
    methods = [m for m in METHODS if not m.startswith("ranked_") or m in shown]
    diffs = [s.difficulty for s in samples]
    table: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for k in ks:
        per_problem = [problem_values(s, k) for s in samples]
        for method in methods:
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

    Order all M samples by score (:func:`bcoder.evaluate.metrics.rank_order`). The top k of a subset are its
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


def pass_at_k_vs_m(samples: Sequence[Samples], ks: Sequence[int]) -> dict[str, Any]:
    """Mean over problems of ranked (by R~, expected over random m-subsets) and unranked pass@k
    for each budget m (the paper's Figure 5). Unranked pass@k does not depend on m in
    expectation (the estimator is unbiased), so it is the full-M estimate at every m."""
    m_max = min((len(s.passed) for s in samples), default=0)
    ms = budgets(m_max, ks) if m_max else []
    curves: dict[str, dict[str, list[float | None]]] = {"ranked_reward": {}, "unranked": {}}
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


def outcome_stats(all_samples: Sequence[Samples]) -> dict[str, dict[str, float | int | None]]:
    """Per true outcome: share of samples, and mean / std of R~ and of mean log-prob."""
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


def separation(
    samples: Sequence[Samples], rankers: Sequence[str] | None = None
) -> dict[str, float | None]:
    """ROC AUC of each ranker's score for "the sample passes", over all samples pooled (an
    agreement ranker's score orders one problem's candidates only, so its pooled AUC is rough)."""
    passed = [p for s in samples for p in s.passed]
    names = RANKERS if rankers is None else rankers
    return {name: auc([x for s in samples for x in s.scores[name]], passed) for name in names}


# Each learned ranker against the likelihood ranking (mean log-prob, as the issue of record asks)
# and, for the example-tests-first ones, against example tests first then mean log-prob too, so
# that what the learned score adds beyond the example tests shows on its own.
COMPARISONS = [(name, "mean-logprob") for name in LEARNED] + [
    ("tests-first", "tests-first-logprob"),
    ("tests-first-terminal", "tests-first-logprob"),
]


def comparisons(rankers: Sequence[str], examples: bool = False) -> list[tuple[str, str]]:
    """The pairs a report compares: :data:`COMPARISONS`, and each agreement ranker shown
    against mean log-prob (what ranking without tests has to beat); with ``examples`` (problems
    with example tests of their own, which the agreement rankers put first), against example
    tests first then mean log-prob too, so that what agreement adds to the examples shows."""
    shown = [name for name in AGREEMENT if name in rankers]
    pairs = COMPARISONS + [(name, "mean-logprob") for name in shown]
    return pairs + ([(name, "tests-first-logprob") for name in shown] if examples else [])


def against_likelihood(
    samples: Sequence[Samples],
    ks: Sequence[int],
    seed: int = 0,
    n_boot: int = 1000,
    pairs: Sequence[tuple[str, str]] = tuple(COMPARISONS),
) -> dict[str, dict[str, dict[str, Any]]]:
    """{"<ranker> - <baseline>": {str(k): {"value", "ci", "n"}}} for ``pairs``: the
    ranked pass@k of one minus the other, averaged over problems, with a *paired* bootstrap
    interval (problems are resampled with both rankings' values together: the interval of the
    difference, narrower than the two separate intervals suggest)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for k in ks:
        for name, baseline in pairs:
            diff = [
                metrics.ranked_pass_at_k(s.scores[name], s.passed, k)
                - metrics.ranked_pass_at_k(s.scores[baseline], s.passed, k)
                for s in samples
            ]
            low, high = metrics.bootstrap_ci(diff, n_boot, seed=seed)
            cell = {"value": float(np.mean(diff)), "ci": [low, high], "n": len(diff)}
            out.setdefault(f"{name} - {baseline}", {})[str(k)] = cell
    return out


def best_ranker(table: dict[str, dict[str, dict[str, Any]]], ks: Sequence[int]) -> str | None:
    """The learned ranker with the highest overall pass@k at the smallest k (ties: the first in
    RANKERS, R~ before the others); None when nothing was ranked."""
    cells = table.get("all", {})
    values = {
        r: cells[ranked_method(r)][str(min(ks))]["value"]
        for r in LEARNED
        if str(min(ks)) in cells.get(ranked_method(r), {})
    }
    return max(values, key=lambda r: values[r]) if values else None


def calibration(samples: Sequence[Samples], bins: int = 10) -> list[dict[str, Any]]:
    """R~ against the true reward: samples in equal-count bins of R~ (by rank), each with its
    R~ range and mean, mean true reward and pass rate."""
    pairs = sorted(
        (x, t, p)
        for s in samples
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
    samples = [expand(r) for r in records]
    rankers = reported_rankers(records)
    table = pass_at_k_table(samples, ks, seed, n_boot, rankers)
    agreement = {}
    if any(name in rankers for name in AGREEMENT):  # on how many problems they fell back
        ran = sum(s.generated for s in samples)
        agreement = {"agreement": {"problems": len(samples), "fell_back": len(samples) - ran}}
    stats = generated_stats(records)
    if stats is not None:  # (only then: reports of runs without generated tests stay as they were)
        agreement["generated"] = stats
    examples = shows_without_examples(records)
    if examples:
        alone = [expand(without_examples(r)) for r in records]
        agreement["without_examples"] = pass_at_k_table(alone, ks, seed, n_boot, rankers)["all"]
        pairs = [(name, "mean-logprob") for name in ("reward", *AGREEMENT) if name in rankers]
        agreement["without_examples_vs_likelihood"] = against_likelihood(
            alone, ks, seed, n_boot, pairs
        )
    return {
        "problems": len(records),
        "samples": sorted({r.n_samples for r in records}),
        "metrics": table,
        "best_ranker": best_ranker(table, ks),
        "vs_likelihood": against_likelihood(
            samples, ks, seed, n_boot, comparisons(rankers, examples)
        ),
        "pass_at_k_vs_m": pass_at_k_vs_m(samples, ks),
        "outcomes": outcome_stats(samples),
        "auc": separation(samples, rankers),
        "calibration": calibration(samples),
        **agreement,
    }
