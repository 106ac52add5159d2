"""Outcomes, rewards (DESIGN section 2) and the result of checking one program."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from bcoder.core.types import TestOutcome


class Outcome(str, Enum):
    """The verdict on a whole program."""

    PASS = "pass"
    FAIL = "fail"  # some test gave a wrong answer
    RUNTIME_ERROR = "runtime_error"  # exception, time-out, memory/output/file limit, signal
    COMPILE_ERROR = "compile_error"  # the source does not compile (nothing ran)


REWARDS: dict[Outcome, float] = {
    Outcome.PASS: 1.0,
    Outcome.FAIL: -0.3,
    Outcome.RUNTIME_ERROR: -0.6,
    Outcome.COMPILE_ERROR: -1.0,
}

# The worst test verdict decides (CodeRL's order); "skipped" tests never do.
_SEVERITY = {"pass": 0, "skipped": 0, "fail": 1, "runtime_error": 2, "compile_error": 3}


def overall(tests: list[TestOutcome]) -> Outcome:
    """The program's outcome from its tests' verdicts: the most severe one."""
    worst = max((t.verdict for t in tests), key=_SEVERITY.__getitem__, default="pass")
    return Outcome("pass" if worst == "skipped" else worst)


@dataclass
class ExecResult:
    """The verdict on one program: outcome, reward and what each test did."""

    outcome: Outcome
    reward: float
    tests: list[TestOutcome] = field(default_factory=list)
    time: float = 0.0  # wall seconds for the whole check
    isolation: str = ""  # the isolation level it ran under
    detail: str = ""  # the first failing test's detail (or the compile error)

    @classmethod
    def from_tests(cls, tests: list[TestOutcome], time: float, isolation: str) -> ExecResult:
        outcome = overall(tests)
        bad = next((t for t in tests if t.verdict == outcome.value), None)
        detail = bad.detail if bad is not None and outcome is not Outcome.PASS else ""
        return cls(outcome, REWARDS[outcome], tests, time, isolation, detail)

    @property
    def passed(self) -> int:
        return sum(t.verdict == "pass" for t in self.tests)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "reward": self.reward,
            "passed": self.passed,
            "total": len(self.tests),
            "time": round(self.time, 4),
            "isolation": self.isolation,
            "detail": self.detail,
            "tests": [asdict(t) for t in self.tests],
        }
