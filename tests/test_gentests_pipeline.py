"""write_tests end to end on the tiny local model (random weights: it writes no test that parses)
and with a rigged sampler whose completions do parse; generated_spec."""

from __future__ import annotations

import dataclasses
import threading

import pytest

import bcoder.decode.sampling as sampling
from bcoder.core.cancel import Cancelled
from bcoder.core.settings import TestWriting
from bcoder.core.spec import Problem
from bcoder.core.types import GeneratedTests, Progress
from bcoder.pipeline import gentests
from bcoder.pipeline.engine import Engine
from bcoder.problems.gentests import parse_asserts
from bcoder.problems.load import load_problems

FEW = TestWriting(samples=3, max_new_tokens=24)


def _problem() -> Problem:
    return Problem(
        id="two_sum",
        source="text",
        text="Return the indices of the two numbers that add up to target.",
        starter_code="def two_sum(nums, target):\n",
        entry_point="two_sum",
    )


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return Engine.load(str(tiny_model_dir))


@pytest.fixture(autouse=True)
def no_tests_kept(engine):
    """Each test writes its own tests: none kept from another (the engine's cache)."""
    engine.written_tests.clear()


def test_write_tests_samples_and_notes_when_nothing_parses(engine):
    events: list[Progress] = []
    got = gentests.write_tests(_problem(), engine, FEW, on_event=events.append)
    assert isinstance(got, GeneratedTests) and got.samples == FEW.samples
    assert got.asserts == [] and got.note == "the model wrote no test of two_sum that parses"
    assert got.seconds > 0 and got.written >= 0
    assert [(e.stage, e.done, e.total) for e in events] == [("tests", i, 3) for i in range(4)]
    assert all(e.message == "writing tests" for e in events)
    assert gentests.generated_spec(_problem(), got) is None
    assert engine.lock.acquire(blocking=False)  # released
    engine.lock.release()


def test_write_tests_is_reproducible_for_a_seed(engine, monkeypatch):
    """The same seed gives the same completions (recorded where they are parsed), another seed
    others; each answer is the prompt's prefix and what the model wrote."""
    answers: list[list[str]] = []
    last: list[str] = []

    def merge(texts, entry, limit):  # called after each answer, then on all of them
        last[:] = texts
        return [], 0

    monkeypatch.setattr(gentests, "merge_tests", merge)
    for seed in (0, 0, 1):
        gentests.write_tests(_problem(), engine, dataclasses.replace(FEW, seed=seed))
        answers.append(list(last))
    assert answers[0] == answers[1] and answers[0] != answers[2]
    assert len(answers[0]) == 3 and all(
        a.startswith("```python\nassert two_sum(") for a in answers[0]
    )


def _rigged(monkeypatch, engine, completions: dict[int, str], seen: list) -> None:
    """``sample`` yields these completions (as token ids, in the given order) and records its
    prompt ids and options."""

    def fake(backend, prompt_ids, n, options, pad_id, **kw):
        seen.append((prompt_ids, n, options, kw))
        for i, text in completions.items():
            ids = engine.tokenizer(text, add_special_tokens=False).input_ids
            yield sampling.Generation(i, prompt_ids, ids, "code_block_end")

    monkeypatch.setattr(sampling, "sample", fake)


@pytest.mark.parametrize("max_tests, asked", [(20, 10), (10, 10), (3, 3)])
def test_an_answer_asks_for_at_most_the_tests_kept(engine, monkeypatch, max_tests, asked):
    seen: list = []
    _rigged(monkeypatch, engine, {0: "[1], 1) == [0]\n```"}, seen)
    gentests.write_tests(_problem(), engine, dataclasses.replace(FEW, max_tests=max_tests))
    text = engine.tokenizer.decode(seen[0][0])
    assert f"Write {asked} distinct unit tests of `two_sum`" in text


def test_rigged_completions_are_parsed_merged_in_sample_order_and_capped(engine, monkeypatch):
    """Completions continue the prefix ("```python\\nassert two_sum("); they finish out of
    order, but tests merge in sample order, deduplicated, at most max_tests."""
    completions = {
        2: "[1, 2], 3) == [0, 1]\nassert two_sum([5], 5) == []\n```",
        0: "[2, 7, 11, 15], 9) == [0, 1]\nassert two_sum([3, 2, 4], 6)==[1, 2]\n```",
        1: "[3, 2, 4], 6) == [1, 2]\nassert two_sum(x, 1) == y\nassert two_sum([3, 3], 6) == [0, 1]",
    }
    seen: list = []
    _rigged(monkeypatch, engine, completions, seen)
    writing = dataclasses.replace(FEW, max_tests=5)
    got = gentests.write_tests(_problem(), engine, writing)
    assert got.asserts == [
        "assert two_sum([2, 7, 11, 15], 9) == [0, 1]",
        "assert two_sum([3, 2, 4], 6) == [1, 2]",
        "assert two_sum([3, 3], 6) == [0, 1]",
        "assert two_sum([1, 2], 3) == [0, 1]",
        "assert two_sum([5], 5) == []",
    ]
    assert got.samples == 3 and got.written == 7 and got.note == ""
    prefix = "```python\nassert two_sum("
    direct = parse_asserts(prefix + completions[0], "two_sum", 20)
    assert direct == (got.asserts[:2], 2)
    spec = gentests.generated_spec(_problem(), got)
    assert spec is not None and spec.kind == "assert" and spec.asserts == tuple(got.asserts)
    assert spec.setup == ""
    prompt_ids, n, options, kw = seen[0]
    text = engine.tokenizer.decode(prompt_ids)
    assert text.endswith("<|im_start|>assistant\n" + prefix) and n == 3
    assert "Write 5 distinct unit tests" in text  # an answer is asked for no more than is kept
    assert prompt_ids == engine.tokenizer(text, add_special_tokens=False).input_ids
    assert options.fence is not None and options.fence_opened and not options.score
    assert (options.temperature, options.top_p, options.max_new_tokens) == (0.8, 0.95, 24)
    assert options.policy == "base" and kw["seed"] == 0
    assert kw["batch_size"] == 1  # on a CPU, answers one at a time (gentests.writing_batch)


def test_writing_stops_once_the_cap_is_reached(engine, monkeypatch):
    """Answers are taken until they hold max_tests distinct tests: the rows after are never
    sampled (the sampler is not asked for them), and the record says how many were."""
    completions = {
        0: "[1], 1) == [0]\nassert two_sum([2], 2) == [0]\n```",
        1: "[1], 1) == [0]\n```",  # a duplicate only: the cap is not reached yet
        2: "[3], 3) == [0]\nassert two_sum([4], 4) == [0]\n```",
        3: "[5], 5) == [0]\n```",
    }
    seen: list = []
    _rigged(monkeypatch, engine, completions, seen)
    asked: list[int] = []
    real = gentests.merge_tests

    def merge(texts, entry, limit):
        asked.append(len(texts))
        return real(texts, entry, limit)

    monkeypatch.setattr(gentests, "merge_tests", merge)
    writing = dataclasses.replace(FEW, samples=4, max_tests=3)
    events: list[Progress] = []
    got = gentests.write_tests(_problem(), engine, writing, on_event=events.append)
    assert got.samples == 3 and len(got.asserts) == 3 and got.written == 5
    assert got.asserts[-1] == "assert two_sum([3], 3) == [0]"
    assert asked == [1, 2, 3, 3]  # checked after each answer; the fourth was never taken
    assert [e.done for e in events] == [0, 1, 2, 3]
    few = gentests.gather_answers(iter([(1, "b"), (0, "a")]), "two_sum", 3)
    assert few == ["a", "b"]  # nothing parses: every answer is taken, in sample order


def test_the_prompt_sampled_never_holds_mbpp_hidden_tests(engine, monkeypatch, fixture_data):
    mbpp = next(iter(load_problems(fixture_data / "mbpp/mbpp.jsonl")))
    seen: list = []
    _rigged(monkeypatch, engine, {0: "1, 2) == 3\n```"}, seen)
    got = gentests.write_tests(mbpp, engine, FEW)
    assert got.asserts == [f"assert {mbpp.entry_point}(1, 2) == 3"]
    text = engine.tokenizer.decode(seen[0][0])
    assert mbpp.text.strip() in text
    assert all(t not in text for t in mbpp.tests.asserts)


def test_base_families_decode_without_a_fence(engine):
    options = gentests.writing_options(engine, FEW, "mbpp")
    assert options.fence is None and not options.fence_opened
    assert options.eos_ids == engine.eos_ids()


def test_no_entry_point_and_a_prompt_that_cannot_fit_are_notes(engine):
    stdio = dataclasses.replace(_problem(), entry_point=None, starter_code="")
    got = gentests.write_tests(stdio, engine, FEW)
    assert got == GeneratedTests(note="the problem has no entry point")
    assert gentests.generated_spec(stdio, GeneratedTests(asserts=["assert f(1) == 1"])) is None
    huge = dataclasses.replace(_problem(), starter_code="# pad\n" * 2000 + "def two_sum(a, b):\n")
    got = gentests.write_tests(huge, engine, FEW)
    assert got.samples == 0 and got.asserts == []
    assert got.note.startswith("no test-writing prompt: ") and "\n" not in got.note


def test_cancel_stops_writing(engine):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        gentests.write_tests(_problem(), engine, FEW, cancel=cancel)
    assert engine.lock.acquire(blocking=False)
    engine.lock.release()


def test_no_generated_tests_no_spec():
    assert gentests.generated_spec(_problem(), None) is None
    assert gentests.generated_spec(_problem(), GeneratedTests()) is None


def test_the_engine_keeps_the_tests_it_wrote(engine, monkeypatch):
    """Asked again for the same prompt and settings (an editor's second request on a function),
    write_tests returns the tests it wrote without sampling; another seed, another problem or
    more tests sample again; only the last CACHED_TESTS prompts are kept."""
    seen: list = []
    _rigged(monkeypatch, engine, {0: "[1], 1) == [0]\n```"}, seen)
    first = gentests.write_tests(_problem(), engine, FEW)
    again = gentests.write_tests(_problem(), engine, FEW)
    assert len(seen) == 1 and again.asserts == first.asserts == ["assert two_sum([1], 1) == [0]"]
    assert again.samples == first.samples and again.seconds < first.seconds + 1
    gentests.write_tests(_problem(), engine, dataclasses.replace(FEW, seed=1))
    other = dataclasses.replace(_problem(), text="Return the two indices, smallest first.")
    gentests.write_tests(other, engine, FEW)
    assert len(seen) == 3 and len(engine.written_tests) == 3
    monkeypatch.setattr(gentests, "CACHED_TESTS", 2)
    gentests.write_tests(_problem(), engine, dataclasses.replace(FEW, max_tests=3))
    assert len(seen) == 4 and len(engine.written_tests) == 2  # the oldest went
    gentests.write_tests(_problem(), engine, FEW)
    assert len(seen) == 5  # it was the oldest
