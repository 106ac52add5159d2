"""Rankers that see the whole candidate set (bcoder.ranking.agreement): group scores computed by
hand on constructed sets, a naive loop on random sets, the fallback without generated tests, and
the old per-candidate rankers unchanged on the committed eval records."""

from __future__ import annotations

import gzip
import json
import math
import random
from fractions import Fraction
from pathlib import Path

import pytest

from bcoder.core.types import Candidate
from bcoder.core.types import TestOutcome as Outcome
from bcoder.evaluate.records import SELECTION, load_records
from bcoder.ranking.agreement import (
    dual_agreement,
    functional_overlap,
    output_agreement,
    output_key,
)
from bcoder.ranking.rankers import (
    AGREEMENT,
    LEARNED,
    RANKER_LABELS,
    RANKERS,
    falls_back,
    get_ranker,
    rank,
    rank_order,
    uses_generated,
)

REPO = Path(__file__).resolve().parents[1]
VERDICT = {"p": "pass", "f": "fail", "r": "runtime_error", "c": "compile_error", "s": "skipped"}


def cand(
    name: str,
    runs: str,
    values: list[str] | None = None,
    *,
    count: int = 1,
    reward: float = 0.0,
    logprob: float = -1.0,
    examples: bool | None = None,
) -> Candidate:
    """A candidate named ``name`` whose verdicts on the generated tests are the letters of
    ``runs`` (p pass, f fail, r runtime error, c compile error, s skipped), having returned
    ``values`` there (default: its verdicts, so that equal verdicts mean equal outputs)."""
    values = list(runs) if values is None else values
    generated = [Outcome(VERDICT[v], value=x) for v, x in zip(runs, values, strict=True)]
    return Candidate(
        code=name,
        completion=name,
        reward=reward,
        mean_logprob=logprob,
        count=count,
        passed_examples=examples,
        generated=generated,
    )


def order(candidates: list[Candidate], ranker: str) -> str:
    return " ".join(c.code for c in rank(candidates, ranker))


def test_dual_agreement_scores_samples_times_tests_passed():
    """CodeT: group by the set of tests passed; (samples in the group) x (tests in the set)."""
    cands = [
        cand("A", "ppf", count=2, reward=0.0, logprob=-0.1),  # {0, 1}: 3 samples x 2 = 6
        cand("B", "ppr", reward=1.0, logprob=-0.9),  # the same set: a runtime error is no pass
        cand("C", "ppp", reward=-1.0, logprob=-0.2),  # {0, 1, 2}: 1 x 3 = 3
        cand("D", "ffp", count=3, reward=0.5, logprob=-0.5),  # {2}: 3 x 1 = 3
        cand("E", "fff", count=4, reward=9.0, logprob=0.0),  # passes nothing: 0, however many
    ]
    assert dual_agreement(cands) == [6.0, 6.0, 3.0, 3.0, 0.0]
    # inside a group and between groups of equal score: R~ or mean log-prob decides
    assert order(cands, "codet-reward") == "B A D C E"
    assert order(cands, "codet-logprob") == "A B C D E"


def test_output_agreement_counts_duplicates_and_groups_exceptions_and_time_outs():
    """MBR-exec: group by what the programs returned (exceptions and time-outs are outputs too,
    an unknown value stands for its verdict); score = samples in the group."""
    cands = [
        cand("A", "pr", ["1", "raise ValueError"], reward=0.3),
        cand("B", "pr", ["1", "raise ValueError"], reward=0.1),  # A's group: 2
        cand("C", "pr", ["1", "raise TypeError"], count=3, reward=-5.0),  # alone, 3 samples
        cand("D", "pr", ["1", "timeout"]),  # a hang on test 2 is its own output
        cand("E", "pr", ["1", "timeout"]),  # D's group: 2
        cand("F", "ps", ["1", ""], logprob=-0.1),  # unknown, skipped: agrees with F only
        cand("G", "pf", ["1", ""], logprob=-0.2),  # unknown, failed: not F's group
    ]
    assert output_key(cands[5]) == ("1", "? skipped")
    assert output_agreement(cands) == [2.0, 2.0, 3.0, 2.0, 2.0, 1.0, 1.0]
    assert order(cands, "outputs-reward") == "C A B D E F G"  # then 2s by R~ (D, E at 0.0)
    assert order(cands, "outputs-logprob") == "C A B D E F G"  # equal log-probs: arrival
    # no expected value is read: the verdicts may all be wrong and the groups stay
    known = cands[:5]  # (the unknown values stand for verdicts)
    flipped = [cand(c.code, "ff", [t.value for t in c.generated], count=c.count) for c in known]
    assert output_agreement(flipped) == output_agreement(known)


def test_functional_overlap_by_hand():
    """SRank: V_j = (n_j/N)(p_j/T), I_ij = shared returned values / T (I_ii = 1), R = I V.

    N = 5, T = 2. Groups: G1 (2 samples, "1","2", passes both): V = 2/5 * 2/2 = 0.4;
    G2 ("1","3", passes the first): V = 1/5 * 1/2 = 0.1; G3 (raise, "3"): V = 0;
    G4 (raise, timeout): V = 0. Overlaps: G1-G2 on test 1 (1/2); G2-G3 on test 2 (1/2);
    G3-G4 raise the same exception on test 1, which is no returned value (0).
    R1 = 0.4 + 0.5 * 0.1 = 0.45; R2 = 0.1 + 0.5 * 0.4 = 0.3; R3 = 0.5 * 0.1 = 0.05; R4 = 0.
    """
    cands = [
        cand("G3", "rf", ["raise ValueError", "3"], reward=2.0),
        cand("G1", "pp", ["1", "2"], count=2, reward=-1.0),
        cand("G4", "rr", ["raise ValueError", "timeout"], reward=5.0),
        cand("G2", "pf", ["1", "3"], reward=1.0),
    ]
    assert functional_overlap(cands) == pytest.approx([0.05, 0.45, 0.0, 0.3], abs=1e-15)
    assert order(cands, "overlap-reward") == "G1 G2 G3 G4"
    # output agreement sees only sizes here: G1 (2 samples) first, the rest by R~
    assert order(cands, "outputs-reward") == "G1 G4 G3 G2"


def test_a_wrong_majority_and_wrong_expectations():
    """Three samples agree on a wrong answer (failing the right generated tests), two on the
    right one: CodeT and SRank follow the tests, output agreement the majority. When every
    expectation is wrong (the right programs fail all), CodeT has no group and falls to R~,
    while output agreement still finds the right majority."""
    wrong = [cand(f"W{i}", "ff", ["0", "0"], reward=1.0) for i in range(3)]
    right = [cand(f"R{i}", "pp", ["1", "2"], reward=0.0) for i in range(2)]
    cands = [*wrong, *right]
    assert order(cands, "codet-reward").startswith("R0 R1")
    assert order(cands, "overlap-reward").startswith("R0 R1")
    assert order(cands, "outputs-reward").startswith("W0 W1 W2")
    right_majority = [*(cand(f"R{i}", "ff", ["1", "2"]) for i in range(3)),
                      *(cand(f"W{i}", "ff", ["0", "0"], reward=1.0) for i in range(2))]  # fmt: skip
    assert dual_agreement(right_majority) == [0.0] * 5
    assert order(right_majority, "codet-reward").startswith("W0 W1")  # by R~ alone
    assert order(right_majority, "outputs-reward").startswith("R0 R1 R2")


def test_example_tests_still_come_first():
    """A problem's own example tests outrank any agreement: a candidate that passed them, in a
    group of one, before a large group that failed them."""
    cands = [
        cand("big", "pp", count=5, reward=3.0, examples=False),
        cand("small", "ff", ["x", "y"], reward=-3.0, examples=True),
        cand("other", "pf", reward=0.0, examples=False),
    ]
    for name in AGREEMENT:
        assert order(cands, name) == "small big other", name
    assert order(cands, "reward") == "big other small"  # (today's R~ alone, for contrast)


def test_without_generated_verdicts_each_falls_back_to_its_within_group_score():
    """No generated test parsed (empty lists) or none ran (all skipped): the agreement rankers
    order as example tests first, then R~ / mean log-prob; callers can tell (falls_back)."""
    rng = random.Random(3)
    for runs in ("", "ss"):
        cands = [
            cand(f"c{i}", runs, [""] * len(runs), count=rng.randint(1, 3),
                 reward=round(rng.gauss(0, 1), 1), logprob=round(-rng.random(), 1),
                 examples=rng.choice([None, True, False]))
            for i in range(12)
        ]  # fmt: skip
        assert not uses_generated(cands)
        for name in AGREEMENT:
            within = "tests-first" if name.endswith("-reward") else "tests-first-logprob"
            assert order(cands, name) == order(cands, within), (runs, name)
            assert falls_back(name, cands)
        assert not falls_back("reward", cands) and not falls_back("tests-first", cands)
    ran = [cand("a", "sf"), cand("b", "ss")]
    assert uses_generated(ran) and not falls_back("codet-reward", ran)


def naive_group_scores(cands: list[Candidate], kind: str) -> list[Fraction]:
    """Each candidate's group score by loops over all pairs, from the papers' formulas, in
    exact fractions (so that equal scores tie)."""
    n_tests = max(len(c.generated) for c in cands)
    total = sum(c.count for c in cands)

    def passed(c):
        return {j for j, t in enumerate(c.generated) if t.verdict == "pass"}

    def outs(c):
        return [t.value or "? " + t.verdict for t in c.generated]

    if kind == "codet":
        return [Fraction(sum(d.count for d in cands if passed(d) == passed(c)) * len(passed(c)))
                for c in cands]  # fmt: skip
    if kind == "outputs":
        return [Fraction(sum(d.count for d in cands if outs(d) == outs(c))) for c in cands]
    groups = []  # kind == "overlap": distinct output lists, in arrival order
    for c in cands:
        if outs(c) not in [outs(g) for g in groups]:
            groups.append(c)
    size = [sum(d.count for d in cands if outs(d) == outs(g)) for g in groups]
    v = [Fraction(n, total) * Fraction(len(passed(g)), n_tests)
         for n, g in zip(size, groups, strict=True)]  # fmt: skip

    def returned(x):
        return x not in ("", "timeout") and not x.startswith(("raise ", "opaque "))

    inter = [[Fraction(1) if i == j else Fraction(sum(x.value == y.value and returned(x.value)
              for x, y in zip(g.generated, h.generated, strict=True)), n_tests)
              for j, h in enumerate(groups)] for i, g in enumerate(groups)]  # fmt: skip
    r = [sum(i_ij * v_j for i_ij, v_j in zip(row, v, strict=True)) for row in inter]  # R = I V
    return [r[[outs(g) for g in groups].index(outs(c))] for c in cands]


def test_group_scores_and_orders_match_a_naive_loop_on_random_sets():
    rng = random.Random(0)
    values = ["1", "2", "[1, 2]", "raise ValueError", "timeout", "opaque Foo", "None"]
    for trial in range(60):
        n_tests = rng.randint(1, 4)
        cands = []
        for i in range(rng.randint(1, 9)):
            outs = [rng.choice(values[: rng.randint(2, len(values))]) for _ in range(n_tests)]
            runs = "".join(rng.choice("pf") if not o.startswith(("raise", "timeout")) else "r"
                           for o in outs)  # fmt: skip
            cands.append(cand(f"{trial}.{i}", runs, outs, count=rng.randint(1, 3),
                              reward=rng.choice([0.0, 1.0, rng.gauss(0, 2)]),
                              logprob=rng.choice([-1.0, -rng.random()]),
                              examples=rng.choice([None, None, True, False])))  # fmt: skip
        for kind, fn in (("codet", dual_agreement), ("outputs", output_agreement),
                         ("overlap", functional_overlap)):  # fmt: skip
            naive = naive_group_scores(cands, kind)
            assert fn(cands) == pytest.approx([float(x) for x in naive], abs=1e-12), (trial, kind)
            for within in ("reward", "logprob"):
                key = {"reward": lambda c: c.reward, "logprob": lambda c: c.mean_logprob}[within]
                expect = sorted(
                    range(len(cands)),
                    key=lambda i: (cands[i].passed_examples is not True, -naive[i],
                                   -key(cands[i]), i),
                )  # fmt: skip
                assert rank(cands, f"{kind}-{within}") == [cands[i] for i in expect], trial


def test_agreement_rankers_are_named_labelled_and_need_no_heads():
    assert AGREEMENT == ("codet-reward", "codet-logprob", "outputs-reward", "outputs-logprob",
                         "overlap-reward", "overlap-logprob")  # fmt: skip
    for name in AGREEMENT:
        assert name in RANKERS and name not in LEARNED and RANKER_LABELS[name]
        assert get_ranker(name)([]) == []
        scores = get_ranker(name)([cand("a", "p"), cand("b", "f", reward=math.nan)])
        assert len(scores) == 2 and not math.isnan(scores[1])  # NaN R~: last in its group


def test_old_rankers_order_committed_records_exactly_as_before():
    """Every per-candidate ranker, now a ranker of the set, orders each problem of the committed
    eval-init and eval-ranked runs as the code before set rankers did (its orders are in
    tests/fixtures/ranker_orders.json.gz, written by that code)."""
    with gzip.open(REPO / "tests" / "fixtures" / "ranker_orders.json.gz", "rt") as f:
        before = json.load(f)
    names = [n for n in RANKERS if n not in AGREEMENT]
    assert sorted(names) == sorted(next(iter(before["eval-init"].values())))
    for run, orders in before.items():
        run_dir = REPO / "results" / "runs" / run
        ids = json.loads((run_dir / SELECTION).read_text())["problem_ids"]
        records, missing = load_records(run_dir, ids)
        assert not missing and len(records) == len(orders) == 500
        for record in records:
            cands = [c.to_candidate() for c in record.candidates]
            for name in names:
                got = " ".join(map(str, rank_order(get_ranker(name)(cands))))
                assert got == orders[record.problem_id][name], (run, record.problem_id, name)
