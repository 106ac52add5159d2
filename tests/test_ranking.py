"""The rankers of bcoder.ranking on hand-built candidates: each gives its own, known order."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random

import pytest

from bcoder.core.errors import BcoderError
from bcoder.core.types import Candidate, TokenScore
from bcoder.ranking.rankers import AGREEMENT, RANKERS, checkpoint_ranker, get_ranker, rank


def cand(
    code: str, rewards: list[float], last_q: float, logprobs: list[float], examples: bool | None
) -> Candidate:
    """A candidate whose R~ and log-probabilities are the sums of its tokens' values."""
    qs = [0.0] * (len(rewards) - 1) + [last_q]
    tokens = [
        TokenScore(f"t{i}", i, q=q, v=0.5, advantage=q - 0.5, reward=r, logprob=lp)
        for i, (q, r, lp) in enumerate(zip(qs, rewards, logprobs, strict=True))
    ]
    return Candidate(
        code=code,
        completion=code,
        tokens=tokens,
        reward=sum(rewards),
        mean_logprob=sum(logprobs) / len(logprobs),
        sum_logprob=sum(logprobs),
        passed_examples=examples,
    )


# code, per-token r~, Q at the last action, per-token log-probs, passed the example tests
A = cand("A", [3.0], -0.5, [-0.6], False)  # R~ 3.0, terminal -0.5, mean -0.6, sum -0.6
B = cand("B", [1.0, 0.5, 0.25, 0.25], 0.9, [-0.2] * 4, False)  # R~ 2, 0.9, -0.2, -0.8
C = cand("C", [1.0], 0.1, [-0.1], True)  # R~ 1, 0.1, -0.1, -0.1
D = cand("D", [0.5, -0.25, -0.25], 0.5, [-0.3] * 3, True)  # R~ 0, 0.5, -0.3, -0.9
EXPECTED = {
    "reward": "ABCD",
    "terminal": "BDCA",
    "tests-first": "CDAB",  # C, D passed the examples: by R~ among them, then A, B by R~
    "tests-first-terminal": "DCBA",  # the same groups, each by the terminal Q
    "mean-logprob": "CBDA",
    "sum-logprob": "CABD",
    "tests-first-logprob": "CDBA",  # C, D by mean log-prob, then B, A by mean log-prob
}


def order(candidates: list[Candidate], ranker: str) -> str:
    return "".join(c.code for c in rank(candidates, ranker))


def test_each_ranker_gives_its_own_known_order():
    shuffled = [C, A, D, B]
    for name, expected in EXPECTED.items():
        assert order(shuffled, name) == expected, name
        assert order([D, C, B, A], name) == expected, name  # no ties: arrival does not matter
    assert len(set(EXPECTED.values())) == len(EXPECTED)  # the orders differ pairwise
    # random: a fixed order from a hash of the code, whatever the arrival order
    by_hash = sorted("ABCD", key=lambda c: hashlib.sha256(c.encode()).hexdigest(), reverse=True)
    assert order(shuffled, "random") == "".join(by_hash) == order([B, D, A, C], "random")
    assert set(RANKERS) == {*EXPECTED, "random", *AGREEMENT}


def test_terminal_is_the_q_of_the_last_action_and_tests_first_falls_back():
    # a ranker scores a set: one score per candidate, in the set's order
    assert get_ranker("terminal")([B, A]) == [0.9, -0.5] and get_ranker("reward")([B]) == [2.0]
    untested = [cand(c.code, [t.reward for t in c.tokens], c.tokens[-1].q,
                     [t.logprob for t in c.tokens], None) for c in (A, B, C, D)]  # fmt: skip
    assert order(untested, "tests-first") == EXPECTED["reward"]  # no example tests: by R~
    assert order(untested, "tests-first-terminal") == EXPECTED["terminal"]
    # far-apart and close scores keep their order inside each group
    close = [cand(str(i), [x], 0.0, [-1.0], True) for i, x in enumerate([-900.0, -900.001, 40.0])]
    assert order(close, "tests-first") == "201"


def test_ties_keep_arrival_order_and_missing_values_go_last():
    empty = Candidate(code="E", completion="", reward=5.0)  # no tokens: no terminal Q
    twin = cand("A2", [3.0], -0.5, [-0.6], False)  # ties with A on every score but random
    assert order([empty, A, twin, B], "terminal") == "BAA2E"
    assert order([twin, A, empty], "reward") == "EA2A"
    assert rank([], "terminal") == []


def test_unknown_ranker_is_a_one_line_error():
    with pytest.raises(BcoderError) as err:
        rank([A, B], "best")
    assert str(err.value) == (
        "unknown ranker 'best' (known: reward, terminal, tests-first, tests-first-terminal, "
        "mean-logprob, sum-logprob, tests-first-logprob, codet-reward, codet-logprob, "
        "outputs-reward, outputs-logprob, overlap-reward, overlap-logprob, random)"
    )


def test_the_checkpoint_names_its_ranker(tmp_path):
    from bcoder.qmodel.config import CHECKPOINT_FORMAT

    def checkpoint(name: str, **extra) -> str:
        path = tmp_path / name
        path.mkdir()
        meta = {"format": CHECKPOINT_FORMAT, "config": {"mode": "head"}, **extra}
        (path / "bcoder_config.json").write_text(json.dumps(meta))
        return str(path)

    assert checkpoint_ranker(checkpoint("chosen", ranker="terminal")) == "terminal"
    assert checkpoint_ranker(checkpoint("older")) == "reward"  # no field: the paper's R~
    assert (
        checkpoint_ranker(None)
        == checkpoint_ranker("none")
        == checkpoint_ranker("init")
        == "reward"
    )
    bad = checkpoint("bad", ranker="best")
    with pytest.raises(BcoderError, match=r"bad: unknown ranker 'best' in bcoder_config.json"):
        checkpoint_ranker(bad)
    with pytest.raises(BcoderError, match="not a bcoder checkpoint"):
        checkpoint_ranker(tmp_path)


def test_rank_matches_a_naive_sort_on_random_candidates():
    rng = random.Random(0)
    pool = []
    for i in range(40):  # many ties (0.0, 1.0) among far-apart values
        rewards = [rng.choice([0.0, 1.0, rng.gauss(0, 50)]) for _ in range(rng.randint(1, 4))]
        last_q = rng.choice([0.0, rng.uniform(-1, 1)])
        examples = rng.choice([True, False, None])
        pool.append(cand(f"p{i}", rewards, last_q, [-1.0] * len(rewards), examples))
    for name in ("reward", "terminal"):
        key = {"reward": lambda c: c.reward, "terminal": lambda c: c.tokens[-1].q}[name]
        naive = sorted(range(len(pool)), key=lambda i: (-key(pool[i]), i))
        assert rank(pool, name) == [pool[i] for i in naive]
    naive = sorted(
        range(len(pool)), key=lambda i: (pool[i].passed_examples is not True, -pool[i].reward, i)
    )
    assert rank(pool, "tests-first") == [pool[i] for i in naive]


def test_passing_first_puts_what_passed_the_problems_tests_first():
    """solve's order once the problem's own tests ran: pass, then the rest, each group in the
    ranker's order; without the flag (eval) the ranker's pure order stays."""
    outcomes = {"A": "runtime_error", "B": "pass", "C": None, "D": "pass"}
    tested = [dataclasses.replace(c, outcome=outcomes[c.code]) for c in (C, A, D, B)]
    assert order(tested, "reward") == "ABCD"  # pure R~: the best is a runtime error
    assert "".join(c.code for c in rank(tested, "reward", passing_first=True)) == "BDAC"
    assert "".join(c.code for c in rank(tested, "tests-first", passing_first=True)) == "DBCA"
    nothing_passed = [dataclasses.replace(c, outcome="fail") for c in (C, A, D, B)]
    assert rank(nothing_passed, "reward", passing_first=True) == rank(nothing_passed, "reward")
