"""Rank programs written elsewhere (other models, people) by R~: the paper's Table 3 use.

A candidates file is JSON lines, one program per line: ``{"problem": REF, "code": "..."}``, where
REF is anything :func:`bcoder.problems.load_problem` accepts (``FILE.jsonl:ID``, ``mbpp:11``,
``problem.txt`` ...); ``problem`` may be omitted when one problem is given for the whole file.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.settings import NO_HEADS
from bcoder.core.spec import Problem
from bcoder.core.types import Candidate, Progress, SolveResult
from bcoder.pipeline.engine import Engine
from bcoder.pipeline.solve import code_key, score_codes
from bcoder.ranking.rankers import checkpoint_ranker, rank, run_tests


def read_candidates(path: str | Path, problem: str | None = None) -> list[tuple[str, list[str]]]:
    """The programs of a candidates file grouped by problem ref, in order of first appearance."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BcoderError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BcoderError(f"{path}: cannot read ({err})") from None
    groups: dict[str, list[str]] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise BcoderError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("code"), str):
            raise BcoderError(f'{where}: expected an object with a string "code"')
        ref = row.get("problem", problem)
        if not isinstance(ref, str) or not ref:
            raise BcoderError(f'{where}: no "problem" on this line and no --problem given')
        groups.setdefault(ref, []).append(row["code"])
    if not groups:
        raise BcoderError(f"{path}: no candidates")
    return list(groups.items())


def rank_programs(
    problem: Problem,
    engine: Engine,
    codes: list[str],
    *,
    run_tests_: bool = True,
    filter_examples: bool = False,
    timeout: float = 4.0,
    batch_size: int = 8,
    executor: Any = None,
    store: Any = None,
    on_event: Callable[[Any], None] | None = None,
    source: str = "",
) -> SolveResult:
    """Merge identical programs, score each once, test them when there are tests, rank by R~."""
    emit = on_event or (lambda _e: None)
    t0 = time.perf_counter()
    unique: dict[str, tuple[str, int]] = {}
    for code in codes:
        key = code_key(code)
        first, count = unique.get(key, (code, 0))
        unique[key] = (first, count + 1)
    emit(Progress("score", 0, len(unique)))
    candidates: list[Candidate] = score_codes(
        problem, engine, [c for c, _ in unique.values()], batch_size=batch_size
    )
    for cand, (_, count) in zip(candidates, unique.values(), strict=True):
        cand.count = count
    emit(Progress("score", len(unique), len(unique)))
    timings = {"score": time.perf_counter() - t0}
    opts = SimpleNamespace(run_tests=run_tests_, filter_examples=filter_examples, timeout=timeout)
    if run_tests_ or filter_examples:
        t1 = time.perf_counter()
        candidates = run_tests(problem, candidates, opts, executor, emit, threading.Event())
        timings["execute"] = time.perf_counter() - t1
    settings = {
        "model": engine.info.get("name", ""),
        "checkpoint": None if engine.heads == NO_HEADS else engine.heads,
        "ranker": checkpoint_ranker(engine.heads),
        "mode": "rank",
        "candidates_file": source,
        "n": len(codes),
        "run_tests": run_tests_,
        "filter_examples": filter_examples,
        "dtype": engine.info.get("dtype"),
        "device": engine.info.get("device"),
    }
    result = SolveResult(
        problem=problem.to_dict(),
        settings=settings,
        candidates=rank(candidates, settings["ranker"]),
        heads=engine.heads,
        timings=timings,
    )
    if store is not None:
        result.run_id = store.save(result)
    return result
