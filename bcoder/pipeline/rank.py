"""Rank programs written elsewhere (other models, people) by R~: the paper's Table 3 use.

The programs come from a programs file (:mod:`bcoder.problems.programs`); each candidate names
the lines it was made from (``Candidate.ids``: identical programs are merged).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from bcoder.core.spec import Problem
from bcoder.core.types import Candidate, Progress, SolveResult
from bcoder.pipeline.engine import Engine
from bcoder.pipeline.solve import code_key, score_codes
from bcoder.ranking.rankers import checkpoint_ranker, rank, run_tests


def rank_programs(
    problem: Problem,
    engine: Engine,
    codes: list[str],
    *,
    ids: list[str] | None = None,
    run_tests_: bool = True,
    filter_examples: bool = False,
    timeout: float = 4.0,
    batch_size: int = 8,
    executor: Any = None,
    store: Any = None,
    on_event: Callable[[Any], None] | None = None,
    source: str = "",
) -> SolveResult:
    """Merge identical programs, score each once, test them when there are tests, rank by R~.
    ``ids`` name the programs (a programs file's lines): each candidate lists those it merges."""
    emit = on_event or (lambda _e: None)
    t0 = time.perf_counter()
    unique: dict[str, tuple[str, list[str]]] = {}
    for i, code in enumerate(codes):
        _, names = unique.setdefault(code_key(code), (code, []))
        names.append(ids[i] if ids else str(i))
    emit(Progress("score", 0, len(unique)))
    candidates: list[Candidate] = score_codes(
        problem, engine, [c for c, _ in unique.values()], batch_size=batch_size
    )
    for cand, (_, names) in zip(candidates, unique.values(), strict=True):
        cand.count = len(names)
        cand.ids = names if ids else []
    emit(Progress("score", len(unique), len(unique)))
    timings = {"score": time.perf_counter() - t0}
    opts = SimpleNamespace(run_tests=run_tests_, filter_examples=filter_examples, timeout=timeout)
    if run_tests_ or filter_examples:
        t1 = time.perf_counter()
        candidates = run_tests(problem, candidates, opts, executor, emit, threading.Event())
        timings["execute"] = time.perf_counter() - t1
    settings = {
        "model": engine.info.get("name", ""),
        "checkpoint": engine.checkpoint,
        "ranker": checkpoint_ranker(engine.heads),
        # as solve shows them: when the problem's own tests ran, the passing programs first
        "passing_first": run_tests_ and problem.tests is not None,
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
        candidates=rank(candidates, settings["ranker"], passing_first=settings["passing_first"]),
        heads=engine.heads,
        timings=timings,
    )
    if store is not None:
        result.run_id = store.save(result)
    return result
