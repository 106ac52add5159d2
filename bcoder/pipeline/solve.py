"""Solve a problem: sample candidates, score them, merge, test and rank them.

    engine = Engine.load("smollm2-135m")            # a loaded model, reused across solves
    result = solve(problem, engine, SolveSettings())
    result.candidates[0]                            # the best by the checkpoint's ranker

The pipeline (DESIGN section 1): prompt -> sampling (+ in-loop scores in head mode) -> scoring
(one batched forward otherwise) -> merge identical programs -> execution when there are tests ->
ranking -> the results store. Progress reaches the caller as
:class:`~bcoder.core.types.Progress` and :class:`~bcoder.core.types.CandidateReady` events.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from bcoder.core.cancel import Cancelled
from bcoder.core.spec import Problem
from bcoder.core.types import (
    Candidate,
    CandidateReady,
    CandidateTested,
    GeneratedTests,
    Notice,
    Progress,
    SolveResult,
)
from bcoder.pipeline.engine import Engine, EventFn
from bcoder.pipeline.gentests import (
    no_function_to_test,
    test_candidates,
    wants_generated_tests,
    write_tests,
)
from bcoder.pipeline.settings import SolveSettings
from bcoder.ranking.rankers import checkpoint_ranker, fallback_order, rank, run_tests

if TYPE_CHECKING:  # torch is imported when a model is loaded, so that this module imports fast
    from bcoder.decode.sampling import DecodeOptions, Generation
    from bcoder.problems.prompts import Prompt
    from bcoder.qmodel.scores import StepScores

__all__ = ["Cancelled", "Interrupted", "score_codes", "solve"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a solve. ``result`` holds the candidates it had scored, ranked, marked
    ``"cancelled"`` in its settings, and saved when the solve had a store (``run_id``)."""

    def __init__(self, result: SolveResult):
        super().__init__("interrupted")
        self.result = result


def code_key(code: str) -> str:
    """Identity of a program for merging: trailing spaces and blank edges do not count."""
    return "\n".join(line.rstrip() for line in code.strip("\n").split("\n"))


def solve(
    problem: Problem,
    engine: Engine,
    settings: SolveSettings,
    *,
    on_event: EventFn | None = None,
    cancel: threading.Event | None = None,
    executor: Any = None,
    store: Any = None,
) -> SolveResult:
    """Sample ``settings.sampling.n`` programs for ``problem``, score, merge, test and rank them.

    Candidates stream: each is announced (:class:`CandidateReady`) as soon as it is scored, and
    its tests run in the sandbox while sampling goes on (:class:`CandidateTested` when done).
    When the problem's own tests ran, candidates that pass come first, each group in the
    ranker's order (``settings["passing_first"]``). A statement cut to fit the prompt is
    announced (:class:`Notice`) and noted (``settings["prompt_cut"]``). Ctrl-C raises
    :class:`Interrupted` with what the solve had, saved in ``store`` marked cancelled.
    """
    from bcoder.decode.sampling import sample

    emit = on_event or (lambda _e: None)
    sampling = settings.sampling
    ranker = checkpoint_ranker(engine.heads)  # the checkpoint's choice; a bad name fails now
    timings = {"load": float(engine.info.get("engine_load_seconds") or 0.0)}
    with engine.lock:
        prompt = engine.prompter.fitted(problem, settings.prefill)
        if prompt.cut is not None:
            emit(Notice(prompt.cut.message()))
        options = engine.options(sampling, prompt.family, bool(prompt.prefix))
        progress = TokenProgress(sampling.n, options.max_new_tokens, emit)
        ran = what_ran(engine, settings, options, ranker, prompt)
        t0 = time.perf_counter()
        tester = StreamTester(problem, settings, executor, emit, cancel)
        merger = Merger(engine, problem, prompt, tester, emit)
        try:
            with tester:
                for gen in sample(
                    engine.backend,
                    prompt.ids,
                    sampling.n,
                    options,
                    engine.pad_id,
                    batch_size=sampling.batch_size,
                    seed=sampling.seed,
                    on_step=progress.step,
                    cancel=cancel,
                ):
                    progress.row_done()
                    merger.add(gen)
                timings["generate"] = time.perf_counter() - t0
                t1 = time.perf_counter()
                merger.score_the_rest(sampling.batch_size)
                timings["score"] = time.perf_counter() - t1
                candidates = tester.finish(merger.candidates())
        except KeyboardInterrupt:
            timings.setdefault("generate", time.perf_counter() - t0)
            ran.update(cancelled=True, samples_done=progress.done)
            partial = ranked_result(problem, engine, ran, merger.candidates(), tester, timings)
            if store is not None and partial.candidates:
                partial.run_id = store.save(partial)
            raise Interrupted(partial) from None
        if tester.active:
            timings["execute"] = tester.waited  # test time not hidden behind sampling
    generated = None
    beside_own = settings.generate_tests_with_examples
    if wants_generated_tests(problem, settings.generate_tests, beside_own) and candidates:
        try:
            generated = self_tested(problem, engine, settings, candidates, executor, timings,
                                    emit, cancel)  # fmt: skip
        except KeyboardInterrupt:
            ran.update(cancelled=True, samples_done=progress.done)
            partial = ranked_result(problem, engine, ran, candidates, tester, timings)
            if store is not None:
                partial.run_id = store.save(partial)
            raise Interrupted(partial) from None
        ran["ranker"] = ranker_without_tests(engine, candidates, emit, tester.active)
    elif no_function_to_test(problem, settings.generate_tests):
        emit(Notice(f"no tests written: the problem names no function to call; ranked by {ranker}"))
    result = ranked_result(problem, engine, ran, candidates, tester, timings, generated)
    if store is not None:
        result.run_id = store.save(result)
    return result


def self_tested(
    problem: Problem,
    engine: Engine,
    settings: SolveSettings,
    candidates: list[Candidate],
    executor: Any,
    timings: dict[str, float],
    emit: EventFn,
    cancel: threading.Event | None,
) -> GeneratedTests:
    """The model writes tests of the problem, and every candidate runs on them (their verdicts
    in ``Candidate.generated``); the seconds each took go to ``timings``."""
    from bcoder.execution import Executor

    generated = write_tests(problem, engine, settings.test_writing, cancel=cancel, on_event=emit)
    timings["write_tests"] = generated.seconds
    with contextlib.ExitStack() as stack:
        if executor is None:
            executor = stack.enter_context(Executor(timeout=settings.timeout))
        seconds = test_candidates(problem, candidates, generated, executor, emit=emit,
                                  cancel=cancel)  # fmt: skip
    timings["run_generated"] = seconds
    return generated


def ranker_without_tests(
    engine: Engine, candidates: list[Candidate], emit: EventFn, own_tests_first: bool = False
) -> str:
    """The checkpoint's ranker for problems without tests (an agreement ranker). When no
    generated test ran it orders by its within-group score alone, as eval scores it, after the
    problem's own tests when they ran first; a notice says so."""
    chosen = checkpoint_ranker(engine.heads, own_tests=False)
    if alone := fallback_order(chosen, candidates):
        order = f"the problem's own tests, then {alone}" if own_tests_first else f"{alone} alone"
        emit(Notice(f"no generated test ran: ranked by {order} ({chosen} without tests)"))
    return chosen


def ranked_result(
    problem: Problem,
    engine: Engine,
    ran: dict[str, Any],
    candidates: list[Candidate],
    tester: StreamTester,
    timings: dict[str, float],
    generated: GeneratedTests | None = None,
) -> SolveResult:
    """The result, candidates best first: those that pass the problem's own tests first when
    they were run, then the ranker's order (the paper's pure orders stay eval's, which runs
    no tests in solve)."""
    passing_first = tester.runs_full_tests
    return SolveResult(
        problem=problem.to_dict(),
        settings={**ran, "passing_first": passing_first},
        candidates=rank(candidates, ran["ranker"], passing_first=passing_first),
        heads=engine.heads,
        timings=timings,
        generated=generated,
    )


class TokenProgress:
    """Sampling progress in tokens: those sampled, out of those plus what the rows still running
    (and the rows not started) may yet take; rows that end early shrink the total."""

    def __init__(self, n: int, limit: int, emit: EventFn):
        self.n, self.limit, self.emit = n, limit, emit
        self.done = self.tokens = self.ended = 0  # rows finished, tokens, rows ended this step
        emit(Progress("generate", 0, n * limit, f"0/{n} candidates"))

    def row_done(self) -> None:
        self.done += 1
        self.ended += 1

    def step(self, step: int, active: int) -> None:
        self.tokens += active + self.ended
        self.ended = 0
        waiting = self.n - self.done - active
        total = self.tokens + active * (self.limit - step) + waiting * self.limit
        self.emit(Progress("generate", self.tokens, total, f"{self.done}/{self.n} candidates"))


class Merger:
    """Sampled programs as candidates: identical programs merged (counted) and scored once, each
    new one announced and handed to the tester as soon as it has its scores (at once in head and
    lmhead modes; lora and full modes score the rest in one pass after sampling)."""

    def __init__(
        self, engine: Engine, problem: Problem, prompt: Prompt, tester: StreamTester, emit: EventFn
    ):
        self.engine, self.problem, self.prompt = engine, problem, prompt
        self.tester, self.emit = tester, emit
        self.gamma = engine.backend.config.gamma
        self.merged: dict[str, Candidate] = {}  # code key -> candidate, in order of arrival
        self.unscored: dict[str, tuple[Generation, str, int]] = {}  # scored after sampling

    def add(self, gen: Generation) -> None:
        from bcoder.problems.extract import extract_code

        text = self.engine.tokenizer.decode(gen.action_ids, skip_special_tokens=True)
        code = extract_code(self.prompt.answer(text), self.problem, self.prompt.family)
        key = code_key(code)
        if key in self.merged:
            self.merged[key].count += 1
        elif key in self.unscored:
            g, c, count = self.unscored[key]
            self.unscored[key] = (g, c, count + 1)
        elif gen.scores is not None:  # head mode: the decode loop already scored it
            self._ready(key, self._candidate(gen, gen.scores, code))
        else:
            self.unscored[key] = (gen, code, 1)

    def score_the_rest(self, batch_size: int) -> None:
        if not self.unscored:
            return
        self.emit(Progress("score", 0, len(self.unscored)))
        gens = [g for g, _, _ in self.unscored.values()]
        scores = self.engine.backend.score(
            [g.prompt_ids for g in gens],
            [g.action_ids for g in gens],
            self.engine.pad_id,
            batch_size=batch_size,
        )
        for (key, (gen, code, count)), sc in zip(self.unscored.items(), scores, strict=True):
            candidate = self._candidate(gen, sc, code)
            candidate.count = count
            self._ready(key, candidate)
        self.emit(Progress("score", len(self.unscored), len(self.unscored)))

    def candidates(self) -> list[Candidate]:
        return list(self.merged.values())

    def _ready(self, key: str, candidate: Candidate) -> None:
        """Test it while sampling goes on, and show it."""
        self.merged[key] = candidate
        index = len(self.merged) - 1
        shown = self.tester.submit(candidate, index)
        try:
            self.emit(CandidateReady(candidate, index))
        finally:  # its test waits for this: a Ctrl-C here must not leave it waiting
            shown.set()

    def _candidate(self, gen: Generation, scores: StepScores, code: str) -> Candidate:
        from bcoder.decode.scoring import make_candidate

        return make_candidate(
            self.engine.tokenizer,
            gen.action_ids,
            scores,
            self.gamma,
            code=code,
            finish_reason=gen.finish_reason,
        )


def what_ran(
    engine: Engine,
    settings: SolveSettings,
    options: DecodeOptions,
    ranker: str,
    prompt: Prompt,
) -> dict[str, Any]:
    """A result's settings: the ones asked for, with what actually ran in place of the defaults
    (the engine's model, heads, dtype and device; the policy and length sampled with; what was
    cut from the statement to fit the prompt, when anything was; the answer's start when the
    prompt held it, which the candidates' completions continue)."""
    notes: dict[str, Any] = {}
    if prompt.cut is not None:
        notes["prompt_cut"] = prompt.cut.to_dict()
    if prompt.prefix:
        notes["answer_prefix"] = prompt.prefix
    return {
        **settings.to_dict(),
        "max_new_tokens": options.max_new_tokens,
        "model": engine.info.get("name", settings.model),
        "checkpoint": engine.checkpoint,
        "ranker": ranker,
        "policy": options.policy,
        "dtype": engine.info.get("dtype", settings.dtype),
        "backend": engine.backend.name,
        "device": engine.info.get("device", settings.device),
        "prompt_family": prompt.family,
        "model_sha256": engine.info.get("sha256"),
        **notes,
    }


class StreamTester:
    """Runs each candidate's tests in the sandbox as soon as it is ready, on one background thread,
    while the model samples the next ones (the sandbox runs in its own processes).

    Does nothing when there is nothing to run (no tests, or ``run_tests`` off and no filtering).
    ``finish`` waits for the last runs and applies ``filter_examples``.
    """

    def __init__(
        self, problem: Problem, settings: SolveSettings, executor: Any, emit: EventFn, cancel: Any
    ):
        self.problem, self.settings, self.emit, self.cancel = problem, settings, emit, cancel
        wanted = settings.run_tests or settings.filter_examples
        # the problem's own tests decide candidates' outcomes (generated tests would not)
        self.runs_full_tests = settings.run_tests and problem.tests is not None
        self.active = wanted and (self.runs_full_tests or problem.example_tests is not None)
        self.executor = executor
        self.futures: list[Any] = []
        self.done = 0
        self.waited = 0.0  # seconds finish() waited for tests after sampling had ended
        self._stack = contextlib.ExitStack()
        self._pool: Any = None

    def __enter__(self) -> StreamTester:
        if self.active:
            from concurrent.futures import ThreadPoolExecutor

            if self.executor is None:
                from bcoder.execution import Executor

                self.executor = self._stack.enter_context(Executor(timeout=self.settings.timeout))
            self._pool = self._stack.enter_context(ThreadPoolExecutor(1, "bcoder-tests"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None and exc[0] is not None:
            for f in self.futures:
                f.cancel()
        self._stack.close()

    def submit(self, candidate: Candidate, index: int) -> threading.Event:
        """Start testing ``candidate``; set the returned event once its CandidateReady is out
        (its CandidateTested waits for that, so consumers see them in that order)."""
        shown = threading.Event()
        if self._pool is not None:
            self.futures.append(self._pool.submit(self._test, candidate, index, shown))
        return shown

    def _test(self, candidate: Candidate, index: int, shown: threading.Event) -> None:
        from dataclasses import replace

        one = replace(self.settings, filter_examples=False)  # filtering waits for finish()
        run_tests(self.problem, [candidate], one, self.executor, lambda _e: None, self.cancel)
        shown.wait()
        self.done += 1
        self.emit(Progress("execute", self.done, len(self.futures), "running tests"))
        self.emit(CandidateTested(candidate, index))

    def finish(self, candidates: list[Candidate]) -> list[Candidate]:
        t0 = time.perf_counter()
        for f in self.futures:
            f.result()  # re-raises a failed run (Cancelled included)
        self.waited = time.perf_counter() - t0
        if self.active and self.settings.filter_examples:
            candidates = [c for c in candidates if c.passed_examples is not False]
        return candidates


def score_codes(
    problem: Problem, engine: Engine, codes: list[str], *, batch_size: int = 8
) -> list[Candidate]:
    """Score programs written elsewhere (other models, people) as if the model had written them.

    Each program is tokenised as the completion of ``problem``'s prompt, as training data is
    (:meth:`~bcoder.problems.prompts.Prompter.actions`). Returns one Candidate per code, in the
    order given (not ranked, not merged).
    """
    from bcoder.decode.scoring import make_candidate
    from bcoder.problems.extract import with_prompt_definitions

    with engine.lock:
        family, prompt, prompt_ids = engine.prompt(problem)
        written = [engine.prompter.actions(c, family, prompt) for c in codes]
        scores = engine.backend.score(
            [prompt_ids] * len(codes),
            [a for a, _, _ in written],
            engine.pad_id,
            batch_size=batch_size,
        )
        gamma = engine.backend.config.gamma
        return [
            make_candidate(
                engine.tokenizer,
                actions,
                s,
                gamma,
                code=with_prompt_definitions(c, problem),
                finish_reason=reason,
            )
            for c, (actions, _, reason), s in zip(codes, written, scores, strict=True)
        ]
