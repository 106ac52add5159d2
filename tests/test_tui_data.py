"""Solve results for the TUI tests (no tests here: builders shared by test_tui*.py).

``synthetic_result`` is fully deterministic (real token texts from the tiny tokenizer, values from a
formula that respects the B-Coder relations A <= 0, Q = A + V, r~ = Q - gamma * V_next), for
snapshots. ``scored_result`` runs the real scorer of bcoder.pipeline.solve on the tiny model.
"""

from __future__ import annotations

from bcoder.core.spec import Problem
from bcoder.core.types import Candidate, GeneratedTests, SolveResult, TestOutcome, TokenScore

GAMMA = 0.999

PROGRAMS = [
    "def add(a, b):\n    return a + b\n",
    "def add(a, b):\n    s = a\n    s += b\n    return s\n",
    "def add(a, b):\n    return sum([a, b])\n",
    "def add(a, b):\n    print(a + b)\n",
]

PROBLEM = {
    "id": "add",
    "source": "text",
    "text": "Write a function add(a, b) that returns the sum of a and b.\n",
    "starter_code": "",
    "entry_point": "add",
    "difficulty": None,
    "tests": {"asserts": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"], "setup": ""},
    "example_tests": None,
}


def synthetic_candidate(tokenizer, code: str, salt: int) -> Candidate:
    """Real token texts of ``code`` + EOS, and deterministic values that obey the math."""
    from bcoder.decode.scoring import token_texts

    ids = tokenizer(code, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    texts = token_texts(tokenizer, ids)
    n = len(ids)
    adv = [-((((t * 37 + salt * 11) % 9) / 8) ** 2) * 1.6 for t in range(n)]
    value = [round(0.9 - 0.5 * t / n - 0.1 * salt, 4) for t in range(n)]
    tokens = []
    for t in range(n):
        q = adv[t] + value[t]
        v_next = value[t + 1] if t + 1 < n else 0.0
        preferred = texts[t] if adv[t] == 0 else texts[(t + 1) % n]
        tokens.append(
            TokenScore(
                text=texts[t],
                token_id=ids[t],
                q=q,
                v=value[t],
                advantage=adv[t],
                reward=q - GAMMA * v_next,
                logprob=adv[t] - 0.2,
                preferred=preferred,
            )
        )
    return Candidate(
        code=code,
        completion=code,
        tokens=tokens,
        reward=sum(t.reward for t in tokens),
        mean_logprob=sum(t.logprob for t in tokens) / n,
        sum_logprob=sum(t.logprob for t in tokens),
        finish_reason="eos",
    )


def synthetic_result(tokenizer) -> SolveResult:
    cands = [synthetic_candidate(tokenizer, c, i) for i, c in enumerate(PROGRAMS)]
    cands.sort(key=lambda c: -c.reward)
    cands[0].outcome, cands[0].true_reward = "fail", -0.3
    return SolveResult(
        problem=dict(PROBLEM),
        settings={"model": "tiny", "n": len(PROGRAMS), "temperature": 0.6, "seed": 0},
        candidates=cands,
        run_id="260101-000000-abcd",
    )


def scored_result(model_dir) -> SolveResult:
    """PROGRAMS scored by the real engine on the tiny model, ranked by R~."""
    from bcoder.pipeline.engine import Engine
    from bcoder.pipeline.solve import score_codes

    engine = Engine.load(str(model_dir))
    cands = score_codes(Problem.from_dict(PROBLEM), engine, PROGRAMS)
    cands.sort(key=lambda c: -c.reward)
    return SolveResult(
        problem=dict(PROBLEM),
        settings={"model": str(model_dir), "n": len(PROGRAMS), "max_new_tokens": 16},
        candidates=cands,
    )


# tests a model wrote for the add problem (the third is wrong), and what each of PROGRAMS does on
# them, as the sandbox reports it: (verdict, value)
WRITTEN = [
    "assert add(1, 2) == 3",
    "assert add(-1, 1) == 0",
    "assert add(2, 2) == 5",
    "assert add('a', 'b') == 'ab'",
]
VERDICTS = {
    PROGRAMS[0]: [("pass", "3"), ("pass", "0"), ("fail", "4"), ("pass", "'ab'")],
    PROGRAMS[1]: [("pass", "3"), ("pass", "0"), ("fail", "4"), ("pass", "'ab'")],
    PROGRAMS[2]: [
        ("pass", "3"),
        ("pass", "0"),
        ("fail", "4"),
        ("runtime_error", "raise TypeError"),
    ],
    PROGRAMS[3]: [("fail", "None")] * 4,
}


def generated_result(tokenizer) -> SolveResult:
    """The synthetic run of a problem without tests of its own, whose model wrote ``WRITTEN``:
    each candidate's verdicts on them, the first candidate sampled 3 times."""
    result = synthetic_result(tokenizer)
    result.problem = {**result.problem, "tests": None, "example_tests": None}
    result.generated = GeneratedTests(asserts=list(WRITTEN), samples=2, written=7, seconds=12.5)
    for cand in result.candidates:
        cand.outcome, cand.true_reward = None, None
        cand.generated = [
            TestOutcome(
                verdict,
                0.01,
                "unsupported operand type(s)" if verdict == "runtime_error" else "",
                value=value,
            )
            for verdict, value in VERDICTS[cand.code]
        ]
    result.candidates[0].count = 3
    return result


def screen_lines(app) -> list[str]:
    """The text of the app's top screen as drawn, one string per terminal row."""
    return [strip.text for strip in app.screen._compositor.render_strips()]
