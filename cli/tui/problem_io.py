"""Turn what the user asked to open into a problem or a stored run."""

from __future__ import annotations

from pathlib import Path

from bcoder.cli.tui.screens import OpenRequest
from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem, TestSpec
from bcoder.core.types import SolveResult
from bcoder.pipeline.store import Store
from bcoder.problems.formats import text_problem
from bcoder.problems.load import load_problem


def open_request(request: OpenRequest, store: Store) -> tuple[Problem | None, SolveResult | None]:
    """(problem, None) for a problem to generate on, (None, run) for a stored run.

    A reference that is neither an existing file nor ``FILE:ID`` is tried as a run id.
    """
    if request.run_id:
        return None, store.get(request.run_id)
    tests = request.tests or None
    if request.ref:
        looks_like_file = Path(request.ref).expanduser().exists() or ":" in request.ref
        if looks_like_file:
            return load_problem(request.ref, tests=tests), None
        try:
            return None, store.get(request.ref)
        except BcoderError:
            raise BcoderError(
                f"{request.ref}: no such file or run (use FILE.txt, FILE.py, FILE.jsonl:ID or a run id)"
            ) from None
    spec = TestSpec.load(tests) if tests else None
    return text_problem(request.text, "typed", spec), None
