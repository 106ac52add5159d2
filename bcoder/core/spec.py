"""The shared data types: a problem and its tests (DESIGN section 3).

``TestSpec`` is also the JSON format of ``bcoder check --tests`` and ``bcoder solve --tests``:
``{"inputs": [...], "outputs": [...]}`` (stdin/stdout), the same plus ``"fn_name"`` (call-based),
or ``{"asserts": [...], "setup": "..."}`` (assert style, MBPP / HumanEval), optionally with
``"rel_tol": 1e-6`` (floats in ``assert f(x) == literal`` compared with that tolerance).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bcoder.core.errors import BcoderError
from bcoder.core.fs import read_text

TestKind = Literal["stdio", "call", "assert"]


@dataclass(frozen=True)
class TestSpec:
    """Unit tests for one problem, in one of three styles."""

    inputs: tuple[Any, ...] | None = None  # stdin strings (stdio) or argument lists (call)
    outputs: tuple[Any, ...] | None = None  # expected stdout strings or return values
    fn_name: str | None = None  # call-based: the function (or Solution method) to call
    asserts: tuple[str, ...] | None = None  # assert style: statements run after the program
    setup: str = ""  # assert style: code run before the asserts (MBPP test_setup_code)
    # assert style: > 0 compares floats in ``assert X == literal`` with math.isclose (rel_tol and
    # abs_tol both this), through lists, tuples, dicts and sets; 0 is exact (MBPP, every dataset)
    rel_tol: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.rel_tol, (int, float)) and not isinstance(self.rel_tol, bool)):
            raise BcoderError("tests: 'rel_tol' must be a number")
        if not (math.isfinite(self.rel_tol) and 0 <= self.rel_tol < 1):
            raise BcoderError(f"tests: 'rel_tol' must be in [0, 1), got {self.rel_tol!r}")
        if self.rel_tol and self.asserts is None:
            raise BcoderError("tests: 'rel_tol' applies to asserts only")
        if self.asserts is not None:
            if self.inputs is not None or self.outputs is not None:
                raise BcoderError("tests: give either asserts or inputs/outputs, not both")
        elif self.inputs is None or self.outputs is None:
            raise BcoderError("tests: need 'inputs' and 'outputs', or 'asserts'")
        elif len(self.inputs) != len(self.outputs):
            raise BcoderError(f"tests: {len(self.inputs)} inputs but {len(self.outputs)} outputs")

    @property
    def kind(self) -> TestKind:
        if self.asserts is not None:
            return "assert"
        return "call" if self.fn_name else "stdio"

    def __len__(self) -> int:
        return len(self.asserts) if self.asserts is not None else len(self.inputs or ())

    def to_dict(self) -> dict[str, Any]:
        if self.asserts is not None:
            tol = {"rel_tol": self.rel_tol} if self.rel_tol else {}
            return {"asserts": list(self.asserts), "setup": self.setup, **tol}
        d: dict[str, Any] = {"inputs": list(self.inputs or ()), "outputs": list(self.outputs or ())}
        if self.fn_name:
            d["fn_name"] = self.fn_name
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "tests") -> TestSpec:
        """Build from the JSON form; a malformed value raises BcoderError naming ``where``."""
        if not isinstance(d, dict):
            raise BcoderError(f"{where}: expected a JSON object, got {type(d).__name__}")
        if "asserts" in d:
            asserts, setup = d["asserts"], d.get("setup", "") or ""
            if not isinstance(asserts, list) or not all(isinstance(a, str) for a in asserts):
                raise BcoderError(f"{where}: 'asserts' must be a list of strings")
            if not isinstance(setup, str):
                raise BcoderError(f"{where}: 'setup' must be a string")
            try:
                return cls(asserts=tuple(asserts), setup=setup, rel_tol=d.get("rel_tol", 0.0))
            except BcoderError as err:
                raise BcoderError(f"{where}: {str(err).removeprefix('tests: ')}") from None
        inputs, outputs, fn_name = d.get("inputs"), d.get("outputs"), d.get("fn_name")
        if not isinstance(inputs, list) or not isinstance(outputs, list):
            raise BcoderError(f"{where}: need lists 'inputs' and 'outputs', or 'asserts'")
        if fn_name is not None and not isinstance(fn_name, str):
            raise BcoderError(f"{where}: 'fn_name' must be a string")
        try:
            return cls(
                inputs=tuple(inputs),
                outputs=tuple(outputs),
                fn_name=fn_name or None,
                rel_tol=d.get("rel_tol", 0.0),
            )
        except BcoderError as err:
            raise BcoderError(f"{where}: {str(err).removeprefix('tests: ')}") from None

    @classmethod
    def load(cls, path: str | Path) -> TestSpec:
        """Read a tests JSON file; errors name the file."""
        text = read_text(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise BcoderError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data, where=str(path))


@dataclass
class Problem:
    """A programming problem: statement, tests and known solutions."""

    id: str
    source: str  # apps | mbpp | humaneval | text | python
    text: str  # the statement (or docstring) in natural language
    starter_code: str = ""  # signature / starter code the program must complete or keep
    tests: TestSpec | None = None  # the hidden / full tests that decide the reward
    example_tests: TestSpec | None = None  # tests shown in the statement (for --filter-examples)
    solutions: list[str] = field(default_factory=list)  # ground-truth programs
    difficulty: str | None = None  # introductory | interview | competition (APPS), else None
    split: str | None = None  # train | validation | test | prompt
    entry_point: str | None = None  # function name to implement, when known
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept with a run: statement, starter code and tests (no solutions)."""
        return {
            "id": self.id,
            "source": self.source,
            "text": self.text,
            "starter_code": self.starter_code,
            "entry_point": self.entry_point,
            "difficulty": self.difficulty,
            "tests": self.tests.to_dict() if self.tests is not None else None,
            "example_tests": self.example_tests.to_dict() if self.example_tests else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Problem:
        """Rebuild the problem of a stored run (so that it can be generated again or tested)."""
        tests, examples = d.get("tests"), d.get("example_tests")
        return cls(
            id=str(d.get("id") or "problem"),
            source=str(d.get("source") or "text"),
            text=str(d.get("text") or ""),
            starter_code=str(d.get("starter_code") or ""),
            tests=TestSpec.from_dict(tests, "run tests") if tests else None,
            example_tests=TestSpec.from_dict(examples, "run example tests") if examples else None,
            entry_point=d.get("entry_point"),
            difficulty=d.get("difficulty"),
        )
