"""The run directory of ``bcoder eval``: one record file per problem, written atomically.

Layout of a run directory::

    config.json              the resolved configuration, data and model identity (first process)
    selection.json           the problem ids of the latest invocation, in order (what a report covers)
    samples/<slug>.json.gz   a problem's sampled and scored candidates, not yet executed
    problems/<slug>.json.gz  one ProblemRecord per finished problem (atomic: present means complete)
    report.json, report.md   every figure, and the Markdown tables
    plots/*.png              R~ density by outcome, pass@k against m, calibration

A problem's record holds each *distinct* program sampled for it with its ``count`` among the M
samples (sum of counts = M), its scores (R~, mean and sum log-probability), its verdicts (outcome,
true reward, example tests) and its per-token values as compact columns. When the model wrote
tests for the problem, the record keeps them (``generated``: the asserts and how they were made)
and each candidate its verdict on each (a letter per test) and what it returned there, so that a
report or a resumed run recomputes the agreement rankers; records without them (older runs, runs
that wrote no tests) read as before.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_write_bytes
from bcoder.core.types import Candidate, GeneratedTests, TestOutcome, TokenScore
from bcoder.problems.programs import program_row

# the layout above
CONFIG, SELECTION, MODEL = "config.json", "selection.json", "model.json"
PROBLEMS, SAMPLES = "problems", "samples"  # record folders: executed, sampled only

RECORD_VERSION = 1
TOKEN_COLUMNS = ("id", "q", "v", "a", "r", "logprob")  # per action token: id, Q, V, A, r~, log pi
_DIGITS = 5  # per-token floats are rounded to 5 decimals (R~ itself is stored unrounded)
# a generated test's verdict as one letter (TestOutcome.verdict); "?" for any other
VERDICT_LETTERS = {
    "pass": "p",
    "fail": "f",
    "runtime_error": "r",
    "compile_error": "c",
    "skipped": "s",
}
LETTER_VERDICTS = {letter: verdict for verdict, letter in VERDICT_LETTERS.items()}


def generated_columns(outcomes: list[TestOutcome]) -> dict[str, Any]:
    """A candidate's verdicts on the generated tests as a record stores them: a letter each,
    and the values only when some is known."""
    return {
        "generated": "".join(VERDICT_LETTERS.get(t.verdict, "?") for t in outcomes),
        "generated_values": [t.value for t in outcomes] if any(t.value for t in outcomes) else [],
    }


@dataclass
class CandidateRecord:
    """One distinct program among a problem's M samples."""

    code: str
    count: int  # how many of the M samples were this program
    reward: float  # R~ = sum_t r~_t, the ranking score
    mean_logprob: float
    sum_logprob: float
    outcome: str | None  # pass | fail | runtime_error | compile_error (None: not executed)
    true_reward: float | None  # +1, -0.3, -0.6, -1
    passed_examples: bool | None  # None when the problem has no example tests
    n_tokens: int = 0
    finish_reason: str = ""
    tokens: dict[str, list[float]] = field(default_factory=dict)  # TOKEN_COLUMNS -> values
    # on the problem's generated tests, in their order: a verdict letter each (VERDICT_LETTERS)
    # and what the program returned (TestOutcome.value; [] when none is known); "" without tests
    generated: str = ""
    generated_values: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"

    @classmethod
    def from_candidate(cls, c: Candidate) -> CandidateRecord:
        """Keep what evaluation needs of a solved candidate; per-token values as columns."""
        cols: dict[str, list[float]] = {name: [] for name in TOKEN_COLUMNS}
        for t in c.tokens:
            cols["id"].append(t.token_id)
            for name, value in (
                ("q", t.q),
                ("v", t.v),
                ("a", t.advantage),
                ("r", t.reward),
                ("logprob", t.logprob),
            ):
                cols[name].append(round(float(value), _DIGITS))
        return cls(
            code=c.code,
            count=int(c.count),
            reward=float(c.reward),
            mean_logprob=float(c.mean_logprob),
            sum_logprob=float(c.sum_logprob),
            outcome=c.outcome,
            true_reward=None if c.true_reward is None else float(c.true_reward),
            passed_examples=c.passed_examples,
            n_tokens=len(c.tokens),
            finish_reason=c.finish_reason,
            tokens=cols if c.tokens else {},
            **generated_columns(c.generated),
        )

    def set_generated(self, outcomes: list[TestOutcome]) -> None:
        """Keep the verdicts and values of a run on the generated tests."""
        for name, value in generated_columns(outcomes).items():
            setattr(self, name, value)

    def generated_outcomes(self) -> list[TestOutcome]:
        """The verdicts and values on the generated tests as the rankers read them."""
        return [
            TestOutcome(LETTER_VERDICTS.get(letter, "unknown"), value=value)
            for letter, value in zip_longest(self.generated, self.generated_values, fillvalue="")
            if letter
        ]

    def to_candidate(self) -> Candidate:
        """The Candidate the rankers read (``bcoder.ranking.rankers.RANKERS``): scores, verdicts and the
        per-token values as stored (rounded to 5 decimals; token texts are not kept)."""
        cols = self.tokens
        tokens = [
            TokenScore("", int(i), q, v, a, r, lp)
            for i, q, v, a, r, lp in zip(
                *(cols.get(name, []) for name in TOKEN_COLUMNS), strict=True
            )
        ]
        return Candidate(
            code=self.code,
            completion="",
            tokens=tokens,
            reward=self.reward,
            mean_logprob=self.mean_logprob,
            sum_logprob=self.sum_logprob,
            count=self.count,
            outcome=self.outcome,
            true_reward=self.true_reward,
            passed_examples=self.passed_examples,
            finish_reason=self.finish_reason,
            generated=self.generated_outcomes(),
        )


@dataclass
class ProblemRecord:
    """Everything ``bcoder eval`` keeps about one problem."""

    problem_id: str
    difficulty: str | None
    has_example_tests: bool
    candidates: list[CandidateRecord]
    timings: dict[str, float] = field(default_factory=dict)  # generate, score, execute, total (s)
    version: int = RECORD_VERSION
    # the tests the model wrote (GeneratedTests.to_dict()); None when it was not asked to
    generated: dict[str, Any] | None = None

    @property
    def generated_tests(self) -> GeneratedTests | None:
        return None if self.generated is None else GeneratedTests.from_dict(self.generated)

    @property
    def n_samples(self) -> int:
        """M: the number of samples (distinct programs weighted by their counts)."""
        return sum(c.count for c in self.candidates)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProblemRecord:
        d = dict(d)
        d["candidates"] = [CandidateRecord(**c) for c in d.get("candidates", [])]
        return cls(**d)


def slug(problem_id: str) -> str:
    """A file name for a problem id: readable, and unique through a short hash."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", problem_id).strip("._")[:60] or "problem"
    return f"{readable}-{hashlib.sha1(problem_id.encode()).hexdigest()[:8]}"


def record_path(run_dir: Path, problem_id: str, stage: str = PROBLEMS) -> Path:
    """Where a problem's record lives: ``problems/`` (complete) or ``samples/`` (not executed)."""
    return run_dir / stage / f"{slug(problem_id)}.json.gz"


def write_record(run_dir: Path, record: ProblemRecord, stage: str = PROBLEMS) -> Path:
    """Write a problem's record through a temporary file and a rename (present = complete)."""
    path = record_path(run_dir, record.problem_id, stage)
    data = gzip.compress(json.dumps(record.to_dict(), separators=(",", ":")).encode(), mtime=0)
    atomic_write_bytes(path, data)
    return path


def read_record(path: Path) -> ProblemRecord:
    try:
        data = json.loads(gzip.decompress(path.read_bytes()))
        return ProblemRecord.from_dict(data)
    except (OSError, EOFError, ValueError, TypeError) as err:
        raise BcoderError(f"{path}: unreadable problem record ({err}); delete it to redo") from None


def has_record(run_dir: Path, problem_id: str, stage: str = PROBLEMS) -> bool:
    return record_path(run_dir, problem_id, stage).is_file()


def load_records(run_dir: Path, problem_ids: list[str]) -> tuple[list[ProblemRecord], list[str]]:
    """The records of ``problem_ids`` in order, and the ids that have none yet."""
    records, missing = [], []
    for pid in problem_ids:
        path = record_path(run_dir, pid)
        if path.is_file():
            records.append(read_record(path))
        else:
            missing.append(pid)
    return records, missing


def exported_candidates(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Every program sampled in a run, a row per sample (``count`` rows for a merged program), as
    a programs file holds them (:mod:`bcoder.problems.programs`: ``--rank-only``, ``bcoder rank``
    and ``train import`` read it). Sampled but not yet executed problems count too; problems not
    sampled yet are left out."""
    try:
        ids = json.loads((run_dir / SELECTION).read_text())["problem_ids"]
        dataset = json.loads((run_dir / CONFIG).read_text())["settings"]["dataset"]
    except (OSError, ValueError, KeyError) as err:
        raise BcoderError(f"{run_dir}: not an eval run directory ({err})") from None
    for pid in ids:
        for stage in (PROBLEMS, SAMPLES):
            path = record_path(run_dir, pid, stage)
            if path.is_file():
                for c in read_record(path).candidates:
                    for _ in range(c.count):
                        yield program_row(dataset, pid, c.code)
                break


def weights_sha256(checkpoint: str | Path | None) -> str | None:
    """SHA-256 over a checkpoint's weights (every ``*.safetensors`` in it: heads, adapters), not its
    ``bcoder_config.json``, whose ``"ranker"`` select writes; None for no checkpoint."""
    if checkpoint is None or not Path(checkpoint).exists():
        return None
    path = Path(checkpoint)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(path.rglob("*.safetensors")):
        h.update(f"{p.relative_to(path)}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (sorted relative paths and contents)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode() + b"\0")
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
