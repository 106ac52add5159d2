"""What a report says about the tests the model wrote (the no-tests protocol): how many, how
many were right, how the candidates grouped on them, and what writing and running them cost.

- *accuracy*: the share of a problem's generated tests that its ground truth passes (a wrong
  expected value, or a test of behaviour the statement did not ask for, fails it), averaged over
  the problems with a ground truth and at least one test;
- *groups*: CodeT's groups (candidates passing the same set of generated tests) and MBR-exec's
  (candidates returning the same values), as the number of groups and the share of the samples
  in the largest, averaged over the problems whose tests ran;
- *seconds*: writing the tests (sampling and parsing) and running every candidate on them, per
  problem;
- *without the examples*: where the problems had example tests of their own beside the generated
  ones (HumanEval's docstring examples, which its user wrote), pass@k of every method again with
  the examples withheld from the rankers, so that what the generated tests do alone shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from statistics import mean
from typing import Any

from bcoder.evaluate.records import ProblemRecord


def without_examples(record: ProblemRecord) -> ProblemRecord:
    """``record`` as if its problem had no example tests (the rankers do not see them)."""
    from dataclasses import replace

    cands = [replace(c, passed_examples=None) for c in record.candidates]
    return replace(record, has_example_tests=False, candidates=cands)


def shows_without_examples(records: Sequence[ProblemRecord]) -> bool:
    """Whether a report adds the table without examples: some problem had both kinds of test."""
    return any(r.has_example_tests and r.generated is not None for r in records)


def generated_stats(records: Sequence[ProblemRecord]) -> dict[str, Any] | None:
    """The figures the module docstring lists; None when no record has generated tests."""
    written = [r for r in records if r.generated is not None]
    if not written:
        return None
    kept = [len(r.generated.get("asserts") or []) for r in written]
    truths = [r.generated["truth"] for r in written if r.generated.get("truth")]
    ran = [r for r in written if any(c.generated for c in r.candidates)]
    return {
        "problems": len(written),
        "with_tests": sum(k > 0 for k in kept),
        "tests_per_problem": mean(kept),
        "accuracy": mean(t.count("p") / len(t) for t in truths) if truths else None,
        "accuracy_problems": len(truths),
        "codet_groups": _groups(
            ran, lambda c: tuple(i for i, v in enumerate(c.generated) if v == "p")
        ),
        "output_groups": _groups(ran, lambda c: tuple(c.generated_values) or c.generated),
        "write_seconds": mean(r.timings.get("write_tests", 0.0) for r in written),
        "run_seconds": mean(r.timings.get("run_generated", 0.0) for r in written),
    }


def _groups(records: Sequence[ProblemRecord], key: Any) -> dict[str, float] | None:
    """Mean number of groups and mean share of the samples in the largest group."""
    if not records:
        return None
    counts, shares = [], []
    for r in records:
        sizes: Counter[Any] = Counter()
        for c in r.candidates:
            sizes[key(c)] += c.count
        counts.append(len(sizes))
        shares.append(max(sizes.values()) / sum(sizes.values()))
    return {"groups": mean(counts), "largest_share": mean(shares)}


def markdown_lines(stats: dict[str, Any] | None, table: list[str] | None = None) -> list[str]:
    """The report's paragraph on the generated tests, and the pass@k rows without the examples
    (``table``: the rows :func:`bcoder.evaluate.markdown.metrics_rows` makes) when there are."""
    if not stats:
        return []
    accuracy = stats["accuracy"]
    right = (
        f"{100 * accuracy:.1f}% of them right (the ground truth passes them; "
        f"{stats['accuracy_problems']} problems)"
        if accuracy is not None
        else "their accuracy unknown (no ground truth)"
    )
    lines = [
        "",
        "## Tests the model wrote",
        "",
        f"- {stats['with_tests']} of {stats['problems']} problems got at least one test; "
        f"{stats['tests_per_problem']:.1f} tests a problem, {right}.",
    ]
    for name, label in (("codet_groups", "passing the same tests"), ("output_groups",
                                                                    "returning the same values")):  # fmt: skip
        g = stats[name]
        if g:
            lines.append(
                f"- groups of candidates {label}: {g['groups']:.1f} a problem, the largest "
                f"holding {100 * g['largest_share']:.0f}% of the samples."
            )
    lines.append(
        f"- time a problem: {stats['write_seconds']:.1f} s writing the tests, "
        f"{stats['run_seconds']:.2f} s running every candidate on them."
    )
    if table:
        lines += [
            "",
            "Without the problems' own example tests (withheld from the rankers; the generated "
            "tests alone), pass@k (%):",
            "",
            *table,
        ]
    return lines
