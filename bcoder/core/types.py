"""What a solve produces, shared by the CLI, the TUI, the language server and the results store.

Plain dataclasses with ``to_dict`` / ``from_dict`` so that they round-trip through JSON and SQLite.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class TokenScore:
    """The values of one action token a_t of a candidate (DESIGN section 2)."""

    text: str  # the token's text as it appears in the completion
    token_id: int
    q: float  # Q_theta(s_t, a_t)
    v: float  # V_theta(s_t)
    advantage: float  # A_theta(s_t, a_t) = Q - V
    reward: float  # r~_t = Q(s_t, a_t) - gamma * V(s_{t+1})
    logprob: float  # log pi_theta(a_t | s_t) at temperature 1
    preferred: str = ""  # the checkpoint's argmax token at s_t (what it would have written)


@dataclass
class TestOutcome:
    """One test's verdict, as shown beside a candidate."""

    verdict: str  # pass | fail | runtime_error | compile_error | skipped
    time: float = 0.0
    detail: str = ""  # first differing line, exception, or limit hit
    stdout: str = ""
    stderr: str = ""
    # what the program gave on a call-style test: a canonical text of the returned plain value,
    # or "raise NAME" for an exception ("" when unknown); agreement rankers group programs by it
    value: str = ""


@dataclass
class GeneratedTests:
    """Tests the model wrote for a problem from what the user gave (statement or docstring and
    signature, never hidden tests), and how they were made."""

    asserts: list[str] = field(default_factory=list)  # kept: ``assert f(literals) == literal``
    samples: int = 0  # test-writing completions sampled
    written: int = 0  # assert statements those completions held, before filtering
    seconds: float = 0.0  # wall time spent writing them (sampling and parsing)
    note: str = ""  # why there are none, when there are none

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratedTests:
        return cls(**_known(cls, d))


@dataclass
class Candidate:
    """A sampled (or imported) program with its per-token values and, when tested, its verdict."""

    code: str  # the program extracted from the completion
    completion: str  # the raw completion text the tokens spell
    tokens: list[TokenScore] = field(default_factory=list)
    reward: float = 0.0  # R~ = sum_t r~_t (the ranking score)
    mean_logprob: float = 0.0
    sum_logprob: float = 0.0
    count: int = 1  # identical programs are merged and counted
    outcome: str | None = None  # pass | fail | runtime_error | compile_error, None when untested
    true_reward: float | None = None  # the executor's reward (+1, -0.3, -0.6, -1)
    tests: list[TestOutcome] = field(default_factory=list)
    passed_examples: bool | None = None  # None when there are no example tests
    finish_reason: str = ""  # eos | code_block_end | length
    ids: list[str] = field(default_factory=list)  # the programs-file lines it came from (rank)
    # verdicts on the problem's generated tests (SolveResult.generated), in their order
    generated: list[TestOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        d = _known(cls, d)  # the JSON output's added names (recovered_reward, ...) read too
        d["tokens"] = [TokenScore(**t) for t in d.get("tokens", [])]
        d["tests"] = [TestOutcome(**_known(TestOutcome, t)) for t in d.get("tests", [])]
        d["generated"] = [TestOutcome(**_known(TestOutcome, t)) for t in d.get("generated", [])]
        return cls(**d)


@dataclass
class SolveResult:
    """A problem, the settings used, and its candidates best first."""

    problem: dict[str, Any]  # id, source, text, starter_code, tests (TestSpec dict or None)
    settings: dict[str, Any]  # model, checkpoint, ranker, n, temperature, top_p, seed, ...
    candidates: list[Candidate] = field(default_factory=list)  # ranked, best first
    heads: str = "none"  # "none" (no trained heads: Q = A_base + V at init; "init" in older records) or a path
    timings: dict[str, float] = field(default_factory=dict)  # load, generate, score, execute (s)
    run_id: str | None = None  # set once saved in the results store
    generated: GeneratedTests | None = None  # tests the model wrote, when it wrote any

    @property
    def ranker(self) -> str:
        """The name of the ranker that ordered the candidates (``bcoder.ranking.rankers.RANKERS``), kept
        in ``settings``; runs saved before there were several rankers were ranked by R~."""
        return str(self.settings.get("ranker") or "reward")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["candidates"] = [c.to_dict() for c in self.candidates]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SolveResult:
        d = _known(cls, d)  # the JSON output's added keys (schema_version, ...) read too
        d["candidates"] = [Candidate.from_dict(c) for c in d.get("candidates", [])]
        if isinstance(d.get("generated"), dict):
            d["generated"] = GeneratedTests.from_dict(d["generated"])
        return cls(**d)


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``d`` that are fields of the dataclass ``cls``."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


# Progress events, emitted by solve() through a callback; the CLI, TUI and LSP render them.
@dataclass
class Progress:
    stage: str  # load | generate | score | tests (the model writing tests) | execute
    done: int
    total: int
    message: str = ""


@dataclass
class CandidateReady:
    candidate: Candidate
    index: int  # order of arrival (not the rank)


@dataclass
class CandidateTested:
    """The candidate of a CandidateReady has its test outcome now (filled in place)."""

    candidate: Candidate
    index: int  # order of arrival, as in its CandidateReady


@dataclass
class Notice:
    """Something the user should know about a run, as one line (a statement cut to fit the
    prompt, the fallback ranker, ...): the CLI prints it on stderr, the TUI shows it as a warning,
    the language server logs it as one, and the run's record keeps it too."""

    message: str
