"""The model writes tests for a problem that has none (issue 32, item 1).

    generated = write_tests(problem, engine, TestWriting())
    generated.asserts          # ["assert f(1) == 2", ...]: literal calls of the entry point
    spec = generated_spec(problem, generated)   # what the sandbox runs, None without tests

The same model that writes the programs writes the tests, from what the user gave only (the
prompt is :func:`bcoder.problems.gentests.test_prompt`'s, asking an answer for as many tests as
are kept, at most 10), sampled up to ``writing.samples`` times (:func:`gather_answers` stops once
the answers hold ``writing.max_tests`` distinct tests);
each completion is parsed with :func:`~bcoder.problems.gentests.parse_asserts` (nothing is
executed here) and the kept tests are merged in sample order, deduplicated and capped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bcoder.core.errors import BcoderError
from bcoder.core.settings import NO_HEADS, TestWriting
from bcoder.core.spec import Problem, TestSpec
from bcoder.core.types import Candidate, GeneratedTests, Progress
from bcoder.pipeline.engine import Engine, EventFn
from bcoder.problems.gentests import TESTS_ASKED, parse_asserts, test_prompt

if TYPE_CHECKING:  # torch is imported when a model is loaded, so that this module imports fast
    from bcoder.decode.sampling import DecodeOptions

BATCH_SIZE = 8  # test-writing rows decoded at once where batching pays (writing_batch)
# problems whose tests an engine keeps (an editor asks again for the function it is on)
CACHED_TESTS = 32


def write_tests(
    problem: Problem,
    engine: Engine,
    writing: TestWriting,
    *,
    cancel: threading.Event | None = None,
    on_event: EventFn | None = None,
) -> GeneratedTests:
    """Tests of ``problem``'s entry point written by ``engine``'s model (see the module
    docstring), with how many samples and asserts it took and how long; ``note`` says why there
    are none (no entry point, a prompt that cannot fit, nothing that parses). Progress reaches
    ``on_event`` as ``Progress("tests", samples done, samples)``; ``cancel`` stops sampling
    (:class:`~bcoder.core.cancel.Cancelled`).

    Takes ``engine.lock`` for the whole of its sampling, as a solve does: call it before or after
    a solve's sampling, not inside it. The engine keeps the tests of its last
    :data:`CACHED_TESTS` prompts: asked again for the same prompt and settings (an editor's
    second request on one function), it returns them without sampling, as the same seed would
    write them again.
    """
    from bcoder.decode.sampling import sample

    t0 = time.perf_counter()
    entry = problem.entry_point
    if not entry:
        return GeneratedTests(note="the problem has no entry point")
    emit = on_event or (lambda _e: None)
    with engine.lock:
        family = engine.prompter.family(problem)
        limit = engine.prompting.max_source_tokens
        try:
            asked = min(TESTS_ASKED, writing.max_tests)  # no more than it keeps
            text, prefix = test_prompt(problem, family, engine.tokenizer, limit, tests=asked)
        except BcoderError as err:  # a statement too long even when cut: a note, not a crash
            return GeneratedTests(seconds=time.perf_counter() - t0, note=str(err))
        ids = list(engine.tokenizer(text, add_special_tokens=family != "chat").input_ids)
        options = writing_options(engine, writing, family)
        key = (text, tuple(sorted(writing.to_dict().items())), options.policy)
        if key in engine.written_tests:  # the same seed would write the same tests again
            engine.written_tests.move_to_end(key)
            return replace(engine.written_tests[key], seconds=time.perf_counter() - t0)
        emit(Progress("tests", 0, writing.samples, "writing tests"))
        rows = sample(
            engine.backend,
            ids,
            writing.samples,
            options,
            engine.pad_id,
            batch_size=writing_batch(engine, writing),
            seed=writing.seed,
            cancel=cancel,
        )
        finished = (
            (gen.index, prefix + engine.tokenizer.decode(gen.action_ids, skip_special_tokens=True))
            for gen in rows
        )

        def progress(done: int) -> None:
            emit(Progress("tests", done, writing.samples, "writing tests"))

        answers = gather_answers(finished, entry, writing.max_tests, progress)
        rows.close()  # the rows not sampled yet: their decoder goes now, not when collected
    asserts, written = merge_tests(answers, entry, writing.max_tests)
    note = "" if asserts else f"the model wrote no test of {entry} that parses"
    generated = GeneratedTests(
        asserts=asserts,
        samples=len(answers),
        written=written,
        seconds=time.perf_counter() - t0,
        note=note,
    )
    with engine.lock:
        engine.written_tests[key] = generated
        while len(engine.written_tests) > CACHED_TESTS:
            engine.written_tests.popitem(last=False)  # the least recently used
    return generated


def writing_batch(engine: Engine, writing: TestWriting) -> int:
    """Test-writing answers decoded at once. On a GPU, all of them: a batch costs about what one
    row costs. On a CPU, one at a time: a decode step there costs per token whatever the batch
    (llama.cpp, 2 cores: 77, 66 and 78 ms a token with 1, 4 and 8 rows,
    research/bench_draft_tokens.py), so rows one after another cost no more, and writing stops
    as soon as the answers so far hold ``max_tests`` distinct tests."""
    on_gpu = engine.backend.device.type == "cuda"
    return min(writing.samples, BATCH_SIZE) if on_gpu else 1


def gather_answers(
    finished: Iterator[tuple[int, str]],
    entry_point: str,
    limit: int,
    progress: Callable[[int], None] = lambda _n: None,
) -> list[str]:
    """The test-writing answers (index, prefix and completion) that ``finished`` yields as rows
    finish, in sample order (rows finish in any order; sample order keeps the tests the same
    for a seed), taken until they hold ``limit`` distinct tests: the cap would cut off later
    answers, so the rows not sampled by then never are.
    ``progress(answers so far)`` after each."""
    answers: dict[int, str] = {}
    for index, text in finished:
        answers[index] = text
        progress(len(answers))
        if len(merge_tests(list(answers.values()), entry_point, limit)[0]) >= limit:
            break
    return [answers[i] for i in sorted(answers)]


def merge_tests(answers: list[str], entry_point: str, limit: int) -> tuple[list[str], int]:
    """The distinct tests of several test-writing answers (prefix and completion each), first
    written first, at most ``limit``; and the assert statements they held in all."""
    kept: list[str] = []
    written = 0
    for answer in answers:
        tests, n = parse_asserts(answer, entry_point, limit)
        written += n
        kept.extend(t for t in tests if t not in kept)
    return kept[:limit], written


def writing_options(engine: Engine, writing: TestWriting, family: str) -> DecodeOptions:
    """How test-writing completions are decoded: as :meth:`Engine.options` decodes programs,
    with the writing settings' temperature, top-p and length, no scores (nothing ranks the tests
    by them), and, for a chat prompt, a stop at the end of the block its prefix opened."""
    from bcoder.decode.sampling import DecodeOptions

    return DecodeOptions(
        policy="base" if engine.heads == NO_HEADS else engine.policy(),
        temperature=writing.temperature,
        top_p=writing.top_p,
        max_new_tokens=writing.max_new_tokens,
        eos_ids=engine.eos_ids(),
        fence=engine.fence() if family == "chat" else None,
        fence_opened=family == "chat",
        score=False,
    )


def generated_spec(problem: Problem, generated: GeneratedTests | None) -> TestSpec | None:
    """The tests to run for ``generated``: assert style, one statement each, no setup (they call
    the entry point on literals, so they need no import; the problem's own setup belongs to its
    hidden tests). None when there are none, or ``problem`` has no entry point to call. The
    caller sets how floats compare: it is the sandbox's to decide, not the tests'."""
    if generated is None or not generated.asserts or not problem.entry_point:
        return None
    return TestSpec(asserts=tuple(generated.asserts))


# Generated expectations are written by a model, often as rounded decimals: floats compare with
# this relative (and absolute) tolerance (TestSpec.rel_tol); the problem's own tests stay exact.
REL_TOL = 1e-6


def wants_generated_tests(problem: Problem, enabled: bool, beside_own: bool = False) -> bool:
    """Whether a solve writes tests: asked for (on by default), and the problem has no tests of
    its own to decide (none, and no example tests: a docstring's examples are the user's own)
    unless ``beside_own`` asks for them there too (its own tests decide first, agreement on the
    generated ones after them), and a function to call."""
    return enabled and (beside_own or not _has_own_tests(problem)) and bool(problem.entry_point)


def no_function_to_test(problem: Problem, enabled: bool) -> bool:
    """Whether a solve would write tests for ``problem`` (asked for, none of its own) but cannot:
    it names no function to call (a program reading stdin, say)."""
    return enabled and not _has_own_tests(problem) and not problem.entry_point


def _has_own_tests(problem: Problem) -> bool:
    return problem.tests is not None or problem.example_tests is not None


def test_candidates(
    problem: Problem,
    candidates: list[Candidate],
    generated: GeneratedTests,
    executor: Any,
    *,
    emit: EventFn | None = None,
    cancel: threading.Event | None = None,
) -> float:
    """Run every candidate on the generated tests in the sandbox, one run per candidate (a test
    that hangs is that test's time-out), and keep its verdicts in ``Candidate.generated``.
    Returns the seconds it took; does nothing without generated tests."""
    from dataclasses import replace

    from bcoder.core.cancel import check

    spec = generated_spec(problem, generated)
    if spec is None or not candidates:
        return 0.0
    t0 = time.perf_counter()
    spec = replace(spec, rel_tol=REL_TOL)
    report = emit or (lambda _e: None)
    report(Progress("execute", 0, len(candidates), "running the generated tests"))
    jobs = [(c.code, spec) for c in candidates]
    results = executor.run_many(jobs, stop_on_failure=False)  # every verdict counts
    for done, (index, res) in enumerate(results, 1):
        candidates[index].generated = list(res.tests)
        report(Progress("execute", done, len(candidates), "running the generated tests"))
        check(cancel)
    return time.perf_counter() - t0
