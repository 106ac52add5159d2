"""How candidates are sampled: one definition for solve, eval, collect, the TUI and the editor.

:class:`SamplingSettings` is embedded by each of them (``SolveSettings.sampling``,
``EvalSettings.sampling``, the train config's ``collect`` section, the language server's
settings) and validated once, here, on plain values: no disk, no torch. What depends on a
checkpoint (its default policy, its completion length) is resolved where the model loads.
:class:`TestWriting` is its sibling for the tests the model writes itself (issue 32), embedded
the same way wherever generated tests are used.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from bcoder.core.errors import BcoderError

# What the decode loop samples from: the trained policy softmax(l_theta), or the frozen base LM's
# own softmax(l_base) (scored with l_theta either way). "checkpoint" is the old name of "base".
POLICIES = ("trained", "base")
OLD_POLICY_NAMES = {"checkpoint": "base"}
# No trained heads (value heads at their initialisation): how a user and the records say it.
# "init" is the spelling of records written before this one; None means "not given".
NO_HEADS = "none"
_NO_HEADS_SPELLINGS = ("none", "init")
MAX_TEMPERATURE = 10.0


def policy_name(name: str | None) -> str | None:
    """``name`` as one of :data:`POLICIES` (old names mapped), None kept; else a one-line error."""
    if name is None:
        return None
    name = OLD_POLICY_NAMES.get(name, name)
    if name not in POLICIES:
        raise BcoderError(f"policy must be one of {', '.join(POLICIES)}, not {name!r}")
    return name


def is_no_heads(heads: object) -> bool:
    """True for "no trained heads" in any spelling a user or an older record uses."""
    return str(heads).strip().lower() in _NO_HEADS_SPELLINGS


def problem_seed(seed: int, problem_id: str) -> int:
    """The sampling seed of one problem: stable across selections, shards and resumes (the
    formula every committed eval run was sampled with)."""
    digest = int(hashlib.sha256(problem_id.encode()).hexdigest()[:8], 16)
    return (seed * 1_000_003 + digest) % (2**31)


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample candidates; one documented field per knob, validated on construction."""

    n: int = 8  # candidates sampled per problem (eval's M)
    temperature: float = 0.6  # 0 is greedy; the paper ranks samples drawn at 0.6
    top_p: float = 0.95  # nucleus sampling mass
    max_new_tokens: int | None = None  # completion length limit (None: the checkpoint's, 512)
    seed: int | None = 0  # sampling seed (None: a fresh random seed)
    batch_size: int = 8  # candidates decoded at once
    policy: str | None = None  # trained | base (None: the one the checkpoint chose)

    def __post_init__(self) -> None:
        if not _is_int(self.n) or self.n < 1:
            raise BcoderError(f"the number of candidates must be at least 1, not {self.n}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise BcoderError(f"batch size must be at least 1, not {self.batch_size}")
        if self.max_new_tokens is not None and (
            not _is_int(self.max_new_tokens) or self.max_new_tokens < 1
        ):
            raise BcoderError(f"max_new_tokens must be at least 1, not {self.max_new_tokens}")
        if not 0 <= self.temperature <= MAX_TEMPERATURE:
            raise BcoderError(
                f"temperature must be in [0, {MAX_TEMPERATURE:g}], not {self.temperature}"
            )
        if not 0 < self.top_p <= 1:
            raise BcoderError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.seed is not None and (not _is_int(self.seed) or self.seed < 0):
            raise BcoderError(f"seed must be an integer >= 0, not {self.seed}")
        object.__setattr__(self, "policy", policy_name(self.policy))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TestWriting:
    """How the model writes tests for a problem that has none (bcoder.pipeline.gentests): a
    test-writing prompt sampled ``samples`` times, the parsed asserts merged and capped.

    The sampling defaults are CodeT's for its generated tests (Chen et al. 2022: temperature 0.8,
    top-p 0.95, 300 new tokens). Four samples at most, not the issue's minimum of two, because
    one completion may hold no assert that parses: two samples still left 5 of 80 HumanEval
    problems with none (issue 32). Five tests kept, not the issue's 20, and an answer is asked
    for as many as are kept: on the checkpoint's 47 held-out problems five tests ranked as well
    as twenty (every agreement ranker within one problem) for a quarter of the writing, 19.9 s
    against 72.8 s a problem, and the first tests of an answer are the likelier right
    (docs/probe/README.md). Writing stops once ``max_tests`` distinct tests are kept: on a CPU,
    where answers are sampled one at a time, the first answer usually holds them.
    """

    __test__ = False  # not a pytest class, despite its name

    samples: int = 4  # test-writing completions sampled at most (the issue asks for >= 2)
    max_tests: int = 5  # distinct tests kept, first written first
    temperature: float = 0.8  # sampling temperature of the test-writing completions
    top_p: float = 0.95  # nucleus sampling mass
    max_new_tokens: int = 300  # completion length limit of one test-writing sample
    seed: int = 0  # sampling seed (the same seed writes the same tests)

    def __post_init__(self) -> None:
        if not _is_int(self.samples) or self.samples < 1:
            raise BcoderError(f"test-writing samples must be at least 1, not {self.samples}")
        if not _is_int(self.max_tests) or self.max_tests < 1:
            raise BcoderError(f"generated tests kept must be at least 1, not {self.max_tests}")
        if not _is_number(self.temperature) or not 0 <= self.temperature <= MAX_TEMPERATURE:
            raise BcoderError(
                f"test-writing temperature must be in [0, {MAX_TEMPERATURE:g}], "
                f"not {self.temperature}"
            )
        if not _is_number(self.top_p) or not 0 < self.top_p <= 1:
            raise BcoderError(f"test-writing top_p must be in (0, 1], not {self.top_p}")
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 1:
            raise BcoderError(
                f"test-writing max_new_tokens must be at least 1, not {self.max_new_tokens}"
            )
        if not _is_int(self.seed) or self.seed < 0:
            raise BcoderError(f"test-writing seed must be an integer >= 0, not {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
