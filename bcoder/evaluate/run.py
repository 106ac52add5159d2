"""Run an evaluation: M candidates per problem, scored, executed, one record file per problem.

    outcome = run_eval(EvalSettings(dataset="mbpp", limit=50, samples=8), Path("runs/mbpp"))
    outcome.report["figures"]["metrics"]["all"]["ranked_reward"]["1"]["value"]

Two stages per problem, each kept in its own atomic file: sampling and scoring (``samples/``, the
costly part; under the no-tests protocol the model's tests are written then too), then execution
in the sandbox (``problems/``, the complete record). Resumable: what has a file is never redone,
so an interrupted run continues where it stopped (``resume=True``), and a run with a larger
``--limit`` only adds problems (resume rules: :mod:`bcoder.evaluate.rundir`).
Shardable: ``shard=(i, n)`` takes the problems at positions i, i+n, i+2n, ... of the selection;
processes sharing a run directory agree through ``config.json``, and whichever finds every record
present writes the report (``write_report`` does it later for a directory, too).

Each problem is sampled with its own seed (``settings.sampling.seed`` and its id), so its samples do not
depend on the selection, the shard or the order in which problems run.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_write_text, exclusive
from bcoder.core.settings import problem_seed
from bcoder.core.spec import Problem
from bcoder.core.types import Progress
from bcoder.evaluate.config import EvalSettings
from bcoder.evaluate.records import (
    CONFIG,
    MODEL,
    PROBLEMS,
    SAMPLES,
    SELECTION,
    CandidateRecord,
    ProblemRecord,
    has_record,
    load_records,
    read_record,
    record_path,
    sha256_file,
    weights_sha256,
    write_record,
)
from bcoder.evaluate.rundir import (
    check_policy,
    check_same_candidates,
    distinct_codes,
    lacks_tests,
    prepare_run_dir,
)
from bcoder.problems.programs import by_problem, read_programs
from bcoder.ranking.rankers import checkpoint_ranker

EventFn = Callable[[Any], None]


@dataclass
class EvalOutcome:
    """What a run did, and its report when every problem of the selection has a record."""

    run_dir: Path
    problem_ids: list[str]
    done_now: list[str] = field(default_factory=list)  # problems this process finished
    missing: list[str] = field(default_factory=list)  # problems still without a record
    report: dict[str, Any] | None = None
    wall_seconds: float = 0.0


def select_problems(settings: EvalSettings) -> tuple[Path, list[Problem]]:
    """The dataset path and the selected problems, in dataset order."""
    from bcoder.problems.load import load_problems, resolve_dataset
    from bcoder.problems.protocols import apply_protocol

    path = resolve_dataset(settings.dataset)
    problems = load_problems(path, split=settings.split, ids=settings.ids)
    chosen = list(islice(problems, settings.limit) if settings.limit else problems)
    if settings.ids:
        known = {p.id for p in chosen} | {str(p.metadata.get("dataset_id")) for p in chosen}
        unknown = [i for i in settings.ids if str(i) not in known]
        if unknown:
            raise BcoderError(f"{path}: no problem with id {', '.join(map(str, unknown[:5]))}")
    if not chosen:
        hint = " (try --split all)" if settings.split else ""
        raise BcoderError(f"{path}: no problems selected (split {settings.split!r}){hint}")
    untested = [p.id for p in chosen if p.tests is None]
    if untested:
        raise BcoderError(f"{untested[0]} has no tests: eval needs problems with tests")
    return path, [apply_protocol(p, settings.protocol) for p in chosen]


def _lacks_tests(run_dir: Path, problem: Problem, settings: EvalSettings, stage: str = PROBLEMS):
    """Under the no-tests protocol: the problem has a record, without tests (rundir.gains_tests)."""
    return settings.protocol == "no-tests" and lacks_tests(run_dir, problem.id, stage)


def _record(problem: Problem, candidates: list[Any], timings: dict[str, float]) -> ProblemRecord:
    """A problem's record, before execution."""
    return ProblemRecord(
        problem_id=problem.id,
        difficulty=problem.difficulty,
        has_example_tests=problem.example_tests is not None,
        candidates=[CandidateRecord.from_candidate(c) for c in candidates],
        timings={k: float(v) for k, v in timings.items() if k != "load"},
    )


def _sample_problem(
    problem: Problem, engine: Any, settings: EvalSettings, emit: EventFn, cancel
) -> ProblemRecord:
    """M samples of a problem, scored and merged (counted), not executed."""
    from bcoder.pipeline.settings import SolveSettings
    from bcoder.pipeline.solve import solve

    sampling = replace(settings.sampling, seed=problem_seed(settings.sampling.seed, problem.id))
    solve_settings = SolveSettings(
        model=settings.model,
        checkpoint=settings.checkpoint,
        sampling=sampling,
        run_tests=False,
        filter_examples=False,
        timeout=settings.timeout,
        prefill=settings.prefill,
        generate_tests=False,  # hidden tests score; the no-tests protocol writes some: _write_tests
    )
    result = solve(problem, engine, solve_settings, on_event=emit, cancel=cancel)
    return _record(problem, result.candidates, result.timings)


def _write_tests(
    problem: Problem, record: ProblemRecord, engine: Any, settings: EvalSettings, emit, cancel
) -> None:
    """Under the no-tests protocol, the model writes tests for ``problem`` as solve does for a
    user, whoever wrote the candidates (sampled here or given by --rank-only)."""
    from bcoder.pipeline.gentests import write_tests

    generated = write_tests(problem, engine, settings.test_writing, cancel=cancel, on_event=emit)
    record.generated = generated.to_dict()
    record.timings["write_tests"] = generated.seconds


def _score_problem(
    problem: Problem, codes: list[str], engine: Any, settings: EvalSettings
) -> ProblemRecord:
    """Another model's programs for a problem, scored (duplicates merged and counted)."""
    from bcoder.pipeline.solve import score_codes

    t0 = time.perf_counter()
    distinct = distinct_codes(codes)
    candidates = score_codes(
        problem, engine, list(distinct), batch_size=settings.sampling.batch_size
    )
    for cand, count in zip(candidates, distinct.values(), strict=True):
        cand.count = count
    return _record(problem, candidates, {"score": time.perf_counter() - t0})


def execute_record(
    problem: Problem,
    record: ProblemRecord,
    settings: EvalSettings,
    executor: Any,
    emit: EventFn,
    cancel: threading.Event | None = None,
) -> ProblemRecord:
    """Run every candidate's tests (and example tests) in the sandbox; fill the verdicts."""
    from bcoder.core.types import Candidate
    from bcoder.pipeline.settings import SolveSettings
    from bcoder.ranking.rankers import run_tests

    t0 = time.perf_counter()
    cands = [Candidate(code=c.code, completion="") for c in record.candidates]
    run_settings = SolveSettings(model=settings.model, timeout=settings.timeout, run_tests=True)
    run_tests(problem, cands, run_settings, executor, emit, cancel)
    generated = record.generated_tests
    if generated is not None:  # and on the tests the model wrote (their verdicts rank)
        from bcoder.pipeline.gentests import test_candidates

        record.timings["run_generated"] = test_candidates(
            problem, cands, generated, executor, emit=emit, cancel=cancel
        )
        record.generated = {**generated.to_dict(), **_truth(problem, generated, executor)}
    for rec, cand in zip(record.candidates, cands, strict=True):
        rec.outcome = getattr(cand.outcome, "value", cand.outcome)  # a str enum -> plain str
        rec.true_reward = cand.true_reward
        rec.passed_examples = cand.passed_examples
        if generated is not None:
            rec.set_generated(cand.generated)
    record.timings["execute"] = time.perf_counter() - t0
    record.timings["total"] = sum(
        record.timings.get(k, 0.0) for k in ("generate", "score", "write_tests", "execute")
    )
    return record


def _truth(problem: Problem, generated: Any, executor: Any) -> dict[str, str]:
    """The ground truth's verdicts on the generated tests (``{"truth": "ppf..."}``), which say
    how many of the model's tests were right; nothing when the problem has no ground truth."""
    from bcoder.core.types import Candidate
    from bcoder.evaluate.records import generated_columns
    from bcoder.pipeline.gentests import test_candidates

    if not problem.solutions or not generated.asserts:
        return {}
    truth = [Candidate(code=problem.solutions[0], completion="")]
    test_candidates(problem, truth, generated, executor)
    return {"truth": generated_columns(truth[0].generated)["generated"]}


def read_rank_only(path: Path, problems: list[Problem]) -> dict[str, list[str]]:
    """{problem id: [code, ...]} of the selected problems, from a programs file."""
    out = by_problem(read_programs(path).rows, problems)
    if not out:
        raise BcoderError(f"{path}: no candidate belongs to the selected problems")
    return out


def run_eval(
    settings: EvalSettings,
    run_dir: Path,
    *,
    resume: bool = False,
    shard: tuple[int, int] = (0, 1),
    on_event: EventFn | None = None,
    cancel: threading.Event | None = None,
    engine: Any = None,
    execute: bool = True,
    plots: bool = True,
) -> EvalOutcome:
    """Evaluate the selection into ``run_dir``; write the report once every problem is done.

    With ``execute=False`` only sampling and scoring run (kept in ``samples/``); a later run
    executes them without sampling again. ``engine`` reuses a loaded :class:`bcoder.pipeline.solve.Engine`;
    ``plots=False`` skips the PNGs.
    """
    emit = on_event or (lambda _e: None)
    t_start = time.perf_counter()
    settings = settings.resolved()
    data_path, problems = select_problems(settings)
    codes_by_problem: dict[str, list[str]] = {}
    rank_sha = None
    if settings.rank_only:
        rank_path = Path(settings.rank_only)
        codes_by_problem = read_rank_only(rank_path, problems)
        problems = [p for p in problems if p.id in codes_by_problem]
        rank_sha = sha256_file(rank_path)
    config = {
        "bcoder_eval": 1,
        "settings": {
            **settings.to_dict(),
            "data_path": str(data_path),
            "data_sha256": sha256_file(data_path),
            "rank_only_sha256": rank_sha,
            "checkpoint_sha256": weights_sha256(settings.heads),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    # problems a protocol changes carry its name (bcoder.problems.protocols)
    same_prompts = not any("protocol" in p.metadata for p in problems)
    before = prepare_run_dir(run_dir, config, resume, shard[1] > 1, same_prompts)
    given = {k: config["settings"][k] for k in ("rank_only", "rank_only_sha256")}
    if any(before["settings"].get(k) != v for k, v in given.items()):  # another candidates file
        check_same_candidates(run_dir, codes_by_problem, Path(settings.rank_only))
        before["settings"].update(given)
        atomic_write_text(run_dir / CONFIG, json.dumps(before, indent=2) + "\n")
    where = str(run_dir) if shard[1] == 1 else f"{run_dir} shard {shard[0]}/{shard[1]}"
    with exclusive(run_dir / f".lock-{shard[0]}-of-{shard[1]}", where):
        ids = [p.id for p in problems]
        selection = {
            "problem_ids": ids,
            "ks": settings.ks,
            "bootstrap": settings.bootstrap,
            "limit": settings.limit,
            "ids": settings.ids,
        }
        atomic_write_text(run_dir / SELECTION, json.dumps(selection, indent=1) + "\n")
        mine = [p for i, p in enumerate(problems) if i % shard[1] == shard[0]]
        todo = [
            p for p in mine if not has_record(run_dir, p.id) or _lacks_tests(run_dir, p, settings)
        ]
        outcome = EvalOutcome(run_dir, ids)
        if todo:
            _run_problems(
                settings, run_dir, todo, codes_by_problem, engine, emit, cancel, outcome, execute
            )
        _, outcome.missing = load_records(run_dir, ids)
        outcome.wall_seconds = time.perf_counter() - t_start
        if not outcome.missing:
            from bcoder.evaluate.summary import write_report

            outcome.report = write_report(run_dir, plots=plots)
    return outcome


def _run_problems(
    settings: EvalSettings,
    run_dir: Path,
    todo: list[Problem],
    codes_by_problem: dict[str, list[str]],
    engine: Any,
    emit: EventFn,
    cancel: threading.Event | None,
    outcome: EvalOutcome,
    execute: bool,
) -> None:
    """Sample (or score) what has no samples file yet, have the model write tests where the
    protocol wants them and there are none, then execute what has no complete record."""
    unsampled = [p for p in todo if not has_record(run_dir, p.id, SAMPLES)]
    needs_model = unsampled or [p for p in todo if _lacks_tests(run_dir, p, settings, SAMPLES)]
    if unsampled and not settings.rank_only:  # before a model loads: one run, one policy
        from bcoder.qmodel.config import checkpoint_policy

        check_policy(run_dir, settings.sampling.policy or checkpoint_policy(settings.checkpoint))
    if needs_model and engine is None:
        from bcoder.pipeline.engine import Engine

        engine = Engine.load(
            settings.model, settings.checkpoint, dtype=settings.dtype, device=settings.device,
            backend=settings.backend, threads=settings.threads, on_event=emit,
        )  # fmt: skip
    if engine is not None:
        model_info = {
            **engine.info,
            "heads": engine.heads,
            "ranker": checkpoint_ranker(engine.heads),
        }
        if not settings.rank_only:  # what sampled the candidates
            model_info["policy"] = policy = engine.policy(settings.sampling.policy)
            check_policy(run_dir, policy)
        atomic_write_text(run_dir / MODEL, json.dumps(model_info, indent=2, default=str) + "\n")
    with contextlib.ExitStack() as stack:
        executor = None
        if execute:
            from bcoder.execution import Executor

            executor = stack.enter_context(
                Executor(workers=settings.workers, timeout=settings.timeout)
            )
        for n, problem in enumerate(todo):
            if cancel is not None and cancel.is_set():
                break
            new = not has_record(run_dir, problem.id, SAMPLES)
            if not new:
                record = read_record(record_path(run_dir, problem.id, SAMPLES))
            elif settings.rank_only:
                record = _score_problem(problem, codes_by_problem[problem.id], engine, settings)
            else:
                record = _sample_problem(problem, engine, settings, emit, cancel)
            if settings.protocol == "no-tests" and record.generated is None:
                _write_tests(problem, record, engine, settings, emit, cancel)
                new = True
            if new:
                write_record(run_dir, record, SAMPLES)
            if executor is not None:
                record = execute_record(problem, record, settings, executor, emit, cancel)
                write_record(run_dir, record)
                outcome.done_now.append(problem.id)
            emit(Progress("problems", n + 1, len(todo), problem.id))
