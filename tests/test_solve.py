"""solve() end to end on tiny local models: events, ranking, merging, tests in the sandbox,
checkpoints, score_codes / rank_programs, the store round trip, cancellation."""

import dataclasses
import threading
import time
from pathlib import Path

import pytest
import torch

from bcoder.core.errors import BcoderError
from bcoder.core.settings import SamplingSettings
from bcoder.core.spec import Problem
from bcoder.core.spec import TestSpec as Spec  # (not a test class)
from bcoder.core.types import CandidateReady, CandidateTested, Progress, SolveResult
from bcoder.models.sources import DEFAULT_MODEL
from bcoder.pipeline.engine import Engine, model_for
from bcoder.pipeline.rank import rank_programs
from bcoder.pipeline.settings import SolveSettings
from bcoder.pipeline.solve import Cancelled, code_key, score_codes, solve
from bcoder.pipeline.store import Store
from bcoder.problems.load import load_problems
from bcoder.qmodel.config import QConfig
from bcoder.qmodel.model import BCoderModel
from bcoder.qmodel.scores import score_tokens

FIXTURES = Path(__file__).parent / "fixtures"
TWO_SUM = Spec(
    inputs=([[2, 7, 11, 15], 9], [[3, 2, 4], 6]), outputs=([0, 1], [1, 2]), fn_name="two_sum"
)
CORRECT = (
    "def two_sum(nums, target):\n"
    "    for i in range(len(nums)):\n"
    "        for j in range(i + 1, len(nums)):\n"
    "            if nums[i] + nums[j] == target:\n"
    "                return [i, j]\n"
)


def _problem(tests=None, examples=None):
    return Problem(
        id="two_sum",
        source="text",
        text="Write two_sum(nums, target).",
        tests=tests,
        example_tests=examples,
        entry_point="two_sum",
    )


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return Engine.load(str(tiny_model_dir))


def _settings(model, run_tests=False, timeout=4.0, **sampling):
    sampling = SamplingSettings(**{"n": 6, "max_new_tokens": 16, **sampling})
    return SolveSettings(model=str(model), sampling=sampling, run_tests=run_tests, timeout=timeout)


def _check_scores(engine, result):
    """The stored per-token values equal a fresh forward of the Q-model on the same tokens."""
    _, _, prompt_ids = engine.prompt(_problem())
    for c in result.candidates:
        ids = [t.token_id for t in c.tokens]
        fresh = score_tokens(engine.qmodel, [prompt_ids], [ids], engine.pad_id)[0]
        assert torch.allclose(torch.tensor([t.v for t in c.tokens]), fresh.value, atol=1e-4)
        assert torch.allclose(
            torch.tensor([t.advantage for t in c.tokens]), fresh.advantage, atol=1e-4
        )
        assert c.reward == pytest.approx(sum(t.reward for t in c.tokens), abs=1e-4)


def test_solve_causal_end_to_end(engine, tiny_model_dir):
    events = []
    settings = dataclasses.replace(_settings(tiny_model_dir), generate_tests=False)
    result = solve(_problem(), engine, settings, on_event=events.append)
    rewards = [c.reward for c in result.candidates]
    assert rewards == sorted(rewards, reverse=True)
    assert sum(c.count for c in result.candidates) == 6
    assert len({code_key(c.code) for c in result.candidates}) == len(result.candidates)
    ready = [e for e in events if isinstance(e, CandidateReady)]
    assert len(ready) == len(result.candidates)
    gen = [e for e in events if isinstance(e, Progress) and e.stage == "generate"]
    # progress counts tokens: it only grows, never passes its (shrinking) estimate, and ends
    # at the tokens sampled, with every candidate counted
    assert [e.done for e in gen] == sorted(e.done for e in gen)
    assert all(e.done <= e.total for e in gen)
    assert gen[0].total == 6 * 16  # n * max_new_tokens
    assert gen[-1].done == gen[-1].total >= sum(c.count for c in result.candidates)
    assert gen[-1].message == "6/6 candidates"
    assert result.heads == "none" and result.settings["prompt_family"] == "chat"
    # no tests, none written: the checkpoint's ranker (no checkpoint: R~)
    assert result.ranker == result.settings["ranker"] == "reward"
    for c in result.candidates:
        assert c.outcome is None and c.finish_reason in ("eos", "code_block_end", "length")
        assert all(t.v == pytest.approx(1.0) for t in c.tokens)  # untrained heads: V = R_max
    _check_scores(engine, result)


def test_solve_seq2seq_end_to_end(tiny_seq2seq_dir):
    engine = Engine.load(str(tiny_seq2seq_dir))
    assert engine.qmodel.is_seq2seq
    result = solve(_problem(), engine, _settings(tiny_seq2seq_dir, n=3, temperature=1.0))
    assert result.settings["prompt_family"] == "apps"  # plain prompt, no chat turns
    assert sum(c.count for c in result.candidates) == 3
    rewards = [c.reward for c in result.candidates]
    assert rewards == sorted(rewards, reverse=True)
    assert all(len(c.tokens) > 0 for c in result.candidates)


def test_identical_programs_are_merged(engine, tiny_model_dir):
    result = solve(_problem(), engine, _settings(tiny_model_dir, n=4, temperature=0.0))
    assert len(result.candidates) == 1 and result.candidates[0].count == 4


def test_seeds_reproducible(engine, tiny_model_dir):
    def run(seed):
        settings = _settings(tiny_model_dir, n=3, max_new_tokens=8, seed=seed, temperature=1.0)
        r = solve(_problem(), engine, settings)
        return [(c.completion, c.count, round(c.reward, 6)) for c in r.candidates]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_cancel_raises_promptly(engine, tiny_model_dir):
    cancel = threading.Event()
    seen = []

    def on_event(e):
        if isinstance(e, Progress) and e.stage == "generate" and e.done:  # a decode step
            seen.append(e)
            if len(seen) == 3:
                cancel.set()

    with pytest.raises(Cancelled):
        solve(
            _problem(),
            engine,
            _settings(tiny_model_dir, max_new_tokens=200),
            on_event=on_event,
            cancel=cancel,
        )
    assert len(seen) == 3
    assert seen[-1].done == 3 * 6  # three steps of six rows


def test_candidates_are_tested_while_sampling_goes_on(engine, tiny_model_dir):
    """The first candidate's tests finish while the other rows are still being sampled: the event
    callback (called on the sampling thread) holds sampling until its outcome is in, which would
    never happen if tests only ran after sampling. CandidateTested follows its CandidateReady."""
    order = []

    def on_event(e):
        if isinstance(e, CandidateTested):
            order.append(("tested", e.index, e.candidate.outcome))
        elif isinstance(e, CandidateReady):
            order.append(("ready", e.index))
            deadline = time.monotonic() + 60
            while e.index == 0 and not e.candidate.outcome and time.monotonic() < deadline:
                time.sleep(0.02)
            assert e.candidate.outcome or e.index, "candidate 0 was not tested during sampling"

    settings = _settings(tiny_model_dir, run_tests=True, timeout=2.0, max_new_tokens=24)
    result = solve(_problem(tests=TWO_SUM), engine, settings, on_event=on_event)
    assert order[0] == ("ready", 0)
    first = order.index(next(x for x in order if x[0] == "tested" and x[1] == 0))
    assert order[first][2] in ("fail", "runtime_error", "compile_error")
    for x in order:  # each candidate's CandidateTested comes after its CandidateReady
        if x[0] == "tested":
            assert order.index(("ready", x[1])) < order.index(x)
    assert len([x for x in order if x[0] == "tested"]) == len(result.candidates)
    assert all(c.outcome for c in result.candidates)


def test_tests_run_in_the_sandbox_and_store_round_trip(engine, tiny_model_dir, tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    settings = _settings(tiny_model_dir, run_tests=True, timeout=2.0)
    result = solve(_problem(tests=TWO_SUM), engine, settings, store=store)
    assert result.run_id
    for c in result.candidates:  # garbage from a random model, but every one has a verdict
        assert c.outcome in ("fail", "runtime_error", "compile_error")
        assert c.true_reward in (-0.3, -0.6, -1.0) and c.tests
    again = store.get(result.run_id)
    assert again.to_dict() == result.to_dict()
    assert SolveResult.from_dict(result.to_dict()).to_dict() == result.to_dict()


def test_score_codes_and_filter_examples(engine):
    problem = _problem(
        tests=TWO_SUM, examples=Spec(inputs=([[3, 3], 6],), outputs=([0, 1],), fn_name="two_sum")
    )
    wrong = "def two_sum(nums, target):\n    return [1, 0]\n"
    cands = score_codes(problem, engine, [wrong, CORRECT])
    assert [c.code for c in cands] == [wrong, CORRECT]
    text = "".join(t.text for t in cands[1].tokens)
    assert text.startswith("```python\n") and text.endswith("```")  # chat prompts: a fenced block
    assert cands[1].finish_reason == "code_block_end"
    result = rank_programs(
        problem, engine, [wrong, CORRECT, CORRECT + "\n"], filter_examples=True, timeout=2.0,
        ids=["a", "b", "c"],
    )  # fmt: skip
    assert len(result.candidates) == 1
    best = result.candidates[0]
    assert best.count == 2 and best.passed_examples is True and best.outcome == "pass"
    assert best.ids == ["b", "c"]  # the lines it was made from (identical programs merged)
    assert best.reward == pytest.approx(cands[1].reward, abs=1e-5)


def test_rank_puts_programs_that_pass_the_problems_tests_first(engine):
    """As solve does: once the problem's own tests ran, passing programs come first (each group in
    the ranker's order); without tests the ranker's order alone."""
    problem = _problem(tests=TWO_SUM)
    codes = [f"def two_sum(nums, target):\n    return [0, {k}]\n" for k in range(1, 4)] + [CORRECT]
    untested = rank_programs(problem, engine, codes, run_tests_=False)
    assert untested.candidates[0].code != CORRECT  # short wrong programs have the higher R~
    assert untested.settings["passing_first"] is False
    tested = rank_programs(problem, engine, codes, timeout=2.0)
    assert tested.settings["passing_first"] is True
    assert tested.candidates[0].code == CORRECT and tested.candidates[0].outcome == "pass"
    rest = [c.reward for c in tested.candidates[1:]]
    assert rest == sorted(rest, reverse=True)


def test_ranked_programs_are_run_and_shown_with_the_prompts_helpers(engine):
    """A chat answer that defines only the entry point of HumanEval/10 (whose prompt defines
    is_palindrome): rank runs and shows it after the prompt's helper, scores only the answer."""
    problem = {p.id: p for p in load_problems(FIXTURES / "humaneval_helpers.jsonl")}["HumanEval/10"]
    answer = (
        "def make_palindrome(string: str) -> str:\n    for i in range(len(string)):\n"
        "        if is_palindrome(string[i:]):\n            return string + string[:i][::-1]\n"
        "    return string\n"
    )
    best = rank_programs(problem, engine, [answer], timeout=5.0).candidates[0]
    assert best.code.startswith("def is_palindrome(string: str) -> bool:\n")
    assert best.code.endswith("\n\n\n" + answer)
    assert best.outcome == "pass", best.tests
    assert "is_palindrome(string: str)" not in "".join(t.text for t in best.tokens)


def test_lora_checkpoint_scored_by_one_forward(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    qmodel = BCoderModel(base, QConfig(mode="lora", lora_r=4))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in qmodel.phi_head.parameters():
            p.normal_(0, 0.5)
    qmodel.save_checkpoint(tmp_path / "ckpt")
    engine = Engine.load(str(tiny_model_dir), str(tmp_path / "ckpt"))
    assert engine.heads == str(tmp_path / "ckpt") and not engine.qmodel.single_pass
    result = solve(_problem(), engine, _settings(tiny_model_dir, n=3, temperature=1.0))
    values = [t.v for c in result.candidates for t in c.tokens]
    assert max(values) < 1.0 and len(set(values)) > 1  # trained-looking heads, not the init
    _check_scores(engine, result)


def test_lmhead_checkpoint_samples_from_the_trained_policy(engine, tiny_model_dir, tmp_path):
    """solve with an lmhead checkpoint decodes from l_theta = l_ckpt + B A h: greedy decoding
    follows the adapter (not the base LM), and the in-loop scores are the Q-model's."""
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    qmodel = BCoderModel(base, QConfig(mode="lmhead", lora_r=4))
    torch.manual_seed(0)
    with torch.no_grad():
        qmodel.logit_adapter.up.weight.normal_(0, 0.3)
    qmodel.save_checkpoint(tmp_path / "ckpt")
    trained = Engine.load(str(tiny_model_dir), str(tmp_path / "ckpt"))
    assert trained.qmodel.single_pass and trained.qmodel.adapts_logits
    greedy = _settings(tiny_model_dir, n=1, temperature=0.0)
    ours = solve(_problem(), trained, greedy).candidates[0]
    base_only = solve(_problem(), engine, greedy).candidates[0]
    assert [t.token_id for t in ours.tokens] != [t.token_id for t in base_only.tokens]
    assert all(
        t.advantage == pytest.approx(0.0, abs=1e-5) for t in ours.tokens
    )  # argmax of l_theta
    _check_scores(trained, solve(_problem(), trained, _settings(tiny_model_dir, n=3)))

    # the checkpoint's validation chose the base policy: solve samples from the base LM (and
    # says so) while scoring with l_theta; --policy trained overrides it. A checkpoint written
    # before the name "base" says "checkpoint": the same choice.
    qmodel.save_checkpoint(tmp_path / "base-policy", extra={"policy": "checkpoint"})
    chose_base = Engine.load(str(tiny_model_dir), str(tmp_path / "base-policy"))
    result = solve(_problem(), chose_base, greedy)
    assert result.settings["policy"] == "base"
    assert [t.token_id for t in result.candidates[0].tokens] == [
        t.token_id for t in base_only.tokens
    ]
    assert any(t.advantage < -1e-3 for t in result.candidates[0].tokens)  # not l_theta's argmax
    _check_scores(chose_base, result)
    trained_policy = dataclasses.replace(greedy.sampling, policy="trained")
    override = solve(_problem(), chose_base, dataclasses.replace(greedy, sampling=trained_policy))
    assert override.settings["policy"] == "trained"
    assert [t.token_id for t in override.candidates[0].tokens] == [t.token_id for t in ours.tokens]
    with pytest.raises(BcoderError, match="policy must be one of"):
        dataclasses.replace(greedy.sampling, policy="greedy")
    lora = BCoderModel(AutoModelForCausalLM.from_pretrained(tiny_model_dir), QConfig(mode="lora"))
    lora.save_checkpoint(tmp_path / "lora", extra={"policy": "base"})
    with pytest.raises(BcoderError, match="needs head or lmhead mode"):
        solve(_problem(), Engine.load(str(tiny_model_dir), str(tmp_path / "lora")), greedy)


def test_the_checkpoints_prompt_settings_are_used(engine, tiny_model_dir, tmp_path):
    """A checkpoint trained with mbpp prompts cut to 50 tokens and 5-token programs is solved
    (and evaluated, in the TUI and the LSP: all go through Engine) the same way, unless a length
    is given; without a checkpoint the defaults stay."""
    from transformers import AutoModelForCausalLM

    from bcoder.evaluate import EvalSettings

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompt = {"family": "mbpp", "max_source_tokens": 50, "max_target_tokens": 5}
    ckpt = str(tmp_path / "ckpt")
    BCoderModel(base, QConfig(mode="head")).save_checkpoint(ckpt, extra={"prompt": prompt})
    trained = Engine.load(str(tiny_model_dir), ckpt)
    assert trained.max_new_tokens(SamplingSettings()) == 5
    assert trained.max_new_tokens(SamplingSettings(max_new_tokens=9)) == 9
    assert engine.max_new_tokens(SamplingSettings()) == 512
    eval_settings = EvalSettings(dataset="mbpp", checkpoint=ckpt).resolved()
    assert eval_settings.sampling.max_new_tokens == 5
    problem = Problem(
        id="long", source="mbpp", text="Add two numbers. " * 40, tests=Spec(asserts=("True",))
    )
    family, text, ids = trained.prompt(problem)
    assert family == "mbpp" and len(ids) <= 55 and text.startswith('"""')
    assert engine.prompt(problem)[0] == "chat" and len(engine.prompt(problem)[2]) > 100
    sampling = SamplingSettings(n=2, temperature=1.0)
    settings = SolveSettings(
        model=str(tiny_model_dir), checkpoint=ckpt, sampling=sampling, run_tests=False
    )
    result = solve(problem, trained, settings)
    assert result.settings["prompt_family"] == "mbpp" and result.settings["max_new_tokens"] == 5
    assert all(len(c.tokens) <= 5 for c in result.candidates)


def test_settings_are_validated():
    for bad in ({"n": 0}, {"temperature": -1}, {"top_p": 0}, {"max_new_tokens": 0}, {"model": ""}):
        with pytest.raises(BcoderError):
            SolveSettings.from_dict(bad)
    for bad in ({"temperature": 11}, {"seed": -1}, {"policy": "best"}, {"batch_size": 0}):
        with pytest.raises(BcoderError):  # the one check solve, eval, collect and the LSP share
            SamplingSettings(**bad)
    assert SamplingSettings(policy="checkpoint").policy == "base"  # the old name still reads


def test_settings_are_pure_values(tmp_path):
    """Building settings reads no disk and imports no torch; what a checkpoint means is resolved
    where the engine loads, so replacing a field means what it says."""
    settings = SolveSettings(checkpoint=str(tmp_path / "missing"))
    assert dataclasses.replace(settings, checkpoint="none").checkpoint == "none"
    assert SolveSettings().checkpoint is None and SolveSettings().model is None
    assert SolveSettings.from_dict(settings.to_dict()) == settings
    code = (
        "import sys; from bcoder.pipeline.settings import SolveSettings; SolveSettings(); "
        "from bcoder.evaluate.config import EvalSettings; EvalSettings(dataset='mbpp'); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_the_model_defaults_to_the_checkpoints_base(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    BCoderModel(base, QConfig(mode="head", base_model="some/base")).save_checkpoint(
        tmp_path / "ckpt"
    )
    assert model_for(None, str(tmp_path / "ckpt")) == "some/base"
    assert model_for("other", str(tmp_path / "ckpt")) == "other"  # --model wins
    assert model_for(None, None) == DEFAULT_MODEL
    with pytest.raises(BcoderError, match="not a bcoder checkpoint"):
        model_for(None, str(tmp_path))


def _head_checkpoint(tiny_model_dir, path, **extra):
    """A head-mode checkpoint with random (trained-looking) value heads and ``extra`` fields."""
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    qmodel = BCoderModel(base, QConfig(mode="head"))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in qmodel.phi_head.parameters():
            p.normal_(0, 0.5)
    qmodel.save_checkpoint(path, extra=extra)
    return str(path)


def test_the_checkpoints_ranker_orders_solve_and_rank(tiny_model_dir, tmp_path):
    ckpt = _head_checkpoint(tiny_model_dir, tmp_path / "ckpt", ranker="terminal")
    engine = Engine.load(str(tiny_model_dir), ckpt)
    settings = _settings(tiny_model_dir, n=8, temperature=1.5)
    result = solve(_problem(), engine, dataclasses.replace(settings, generate_tests=False))
    assert result.ranker == result.settings["ranker"] == "terminal"
    terminal = [c.tokens[-1].q for c in result.candidates]
    assert len(terminal) >= 2 and terminal == sorted(terminal, reverse=True)
    codes = [CORRECT, "def two_sum(a, b):\n    return [0, 1]\n", "x = 1\n", "pass\n", "1 +"]
    ranked = rank_programs(_problem(), engine, codes, run_tests_=False)
    assert ranked.ranker == ranked.settings["ranker"] == "terminal"
    terminal = [c.tokens[-1].q for c in ranked.candidates]
    assert terminal == sorted(terminal, reverse=True)
    rewards = [c.reward for c in ranked.candidates]
    assert rewards != sorted(rewards, reverse=True)  # R~ would have ordered them otherwise
    again = Store(tmp_path / "runs.sqlite")
    assert again.get(again.save(result)).ranker == "terminal"  # the store keeps it


def test_a_checkpoint_with_an_unknown_ranker_fails_before_sampling(tiny_model_dir, tmp_path):
    ckpt = _head_checkpoint(tiny_model_dir, tmp_path / "ckpt", ranker="best")
    engine = Engine.load(str(tiny_model_dir), ckpt)
    events = []
    with pytest.raises(BcoderError, match="unknown ranker 'best'"):
        solve(_problem(), engine, _settings(tiny_model_dir), on_event=events.append)
    assert events == []  # nothing was sampled


def test_a_statement_cut_to_fit_is_announced_and_noted(engine, tiny_model_dir, tmp_path):
    from bcoder.core.types import Notice

    data = "\n".join(" ".join(str(i * j) for j in range(10)) for i in range(300))
    problem = Problem(
        id="long", source="text", text=f"Write two_sum(nums, target).\n\n{data}\n\nThat is all."
    )
    events = []
    store = Store(tmp_path / "runs.sqlite")
    result = solve(problem, engine, _settings(tiny_model_dir, n=2), on_event=events.append,
                   store=store)  # fmt: skip
    notices = [e.message for e in events if isinstance(e, Notice)]  # (and: no function named)
    cuts = [n for n in notices if "too long" in n]
    assert len(cuts) == 1 and "too long for the 600-token prompt" in cuts[0]
    cut = result.settings["prompt_cut"]
    assert (
        cut["limit"] == 600
        and cut["parts"] == 1
        and cut["kept"] < cut["chars"] == len(problem.text)
    )
    assert store.get(result.run_id).settings["prompt_cut"] == cut
    assert "prompt_cut" not in solve(_problem(), engine, _settings(tiny_model_dir, n=1)).settings
    problem.starter_code = "x = 1\n" * 2000  # fixed parts alone over the limit: refused
    with pytest.raises(BcoderError, match="cannot fit in the 600-token prompt"):
        solve(problem, engine, _settings(tiny_model_dir, n=1), on_event=events.append)


def test_ctrl_c_keeps_what_the_solve_had_marked_cancelled(engine, tiny_model_dir, tmp_path):
    """A KeyboardInterrupt while candidates come in: the ones scored so far are ranked, saved in
    the store marked cancelled, and handed to the caller on the exception (still a
    KeyboardInterrupt, so the CLI exits 130)."""
    from bcoder.pipeline.solve import Interrupted

    store = Store(tmp_path / "runs.sqlite")

    def on_event(e):
        if isinstance(e, CandidateReady):
            raise KeyboardInterrupt  # Ctrl-C as the first candidate is shown

    settings = _settings(tiny_model_dir, run_tests=True, timeout=2.0, temperature=1.0)
    with pytest.raises(Interrupted) as stop:
        solve(_problem(tests=TWO_SUM), engine, settings, on_event=on_event, store=store)
    assert isinstance(stop.value, KeyboardInterrupt)
    partial = stop.value.result
    assert len(partial.candidates) == 1 and partial.candidates[0].tokens
    assert partial.settings["cancelled"] is True and 1 <= partial.settings["samples_done"] <= 6
    assert partial.run_id and store.list()[0].id == partial.run_id
    assert store.get(partial.run_id).to_dict() == partial.to_dict()
    assert "cancelled" not in solve(_problem(), engine, _settings(tiny_model_dir, n=1)).settings


def test_candidates_that_pass_the_problems_tests_come_first(engine, tiny_model_dir, monkeypatch):
    """With the problem's own tests run, solve puts what passes first (each group by the
    ranker); eval's solve runs no tests, so its order stays the ranker's alone."""
    import bcoder.problems.extract as extract

    made = []

    def alternate(text, problem=None, family=None):  # every other sample is a correct program
        made.append(text)
        i = len(made)
        return CORRECT + f"# {i}\n" if i % 2 else f"def two_sum(nums, target):\n    return [{i}]\n"

    monkeypatch.setattr(extract, "extract_code", alternate)
    settings = _settings(tiny_model_dir, run_tests=True, timeout=2.0, n=8, temperature=1.0)
    result = solve(_problem(tests=TWO_SUM), engine, settings)
    outcomes = [c.outcome for c in result.candidates]
    assert outcomes == ["pass"] * 4 + ["fail"] * 4 and result.settings["passing_first"] is True
    for group in (result.candidates[:4], result.candidates[4:]):
        assert [c.reward for c in group] == sorted((c.reward for c in group), reverse=True)
    pure = [c.outcome for c in sorted(result.candidates, key=lambda c: -c.reward)]
    assert pure != outcomes  # R~ alone would have mixed them
    from rich.console import Console

    from bcoder.cli.render import render_result

    console = Console(record=True, width=100)
    render_result(console, result)  # what `bcoder solve` prints
    assert "4 of 8 pass the tests; those that pass are ranked first" in console.export_text()
    untested = solve(
        _problem(tests=TWO_SUM), engine, dataclasses.replace(settings, run_tests=False)
    )
    assert untested.settings["passing_first"] is False
    rewards = [c.reward for c in untested.candidates]
    assert rewards == sorted(rewards, reverse=True)


def test_a_prefilled_stub_samples_only_the_body(engine, tiny_model_dir, tmp_path):
    """With prefill, the prompt ends with the stub's fence, signature and docstring: the model
    samples only what follows, the candidates' code is the stub and that, the run records the
    prefix, and the scores are those of the body's tokens after the prefilled prompt."""
    from bcoder.problems.load import load_problem

    stub = load_problem(Path(__file__).resolve().parents[1] / "examples" / "max_of_list.py")
    settings = dataclasses.replace(_settings(tiny_model_dir, n=3), prefill=True)
    store = Store(tmp_path / "runs.sqlite")
    result = solve(stub, engine, settings, store=store)
    prompt = engine.prompter.fitted(stub, prefill=True)
    assert prompt.prefix.startswith("```python\ndef max_of_list(")
    assert result.settings["prefill"] is True
    assert result.settings["answer_prefix"] == prompt.prefix
    for c in result.candidates:
        assert c.code.startswith("def max_of_list(numbers: list[int]) -> int:\n")
        assert "def max_of_list" not in c.completion  # the model did not write the stub
        ids = [t.token_id for t in c.tokens]
        fresh = score_tokens(engine.qmodel, [prompt.ids], [ids], engine.pad_id)[0]
        assert torch.allclose(torch.tensor([t.logprob for t in c.tokens]), fresh.logprob, atol=1e-4)
    saved = store.get(result.run_id).settings
    assert SolveSettings.from_dict(saved).prefill is True
    assert SolveSettings.from_dict({"n": 2}).prefill is False  # runs saved before the field
    plain = solve(stub, engine, dataclasses.replace(settings, prefill=False))
    assert "answer_prefix" not in plain.settings and plain.settings["prefill"] is False


def _two_sum_stub():
    """A problem without tests of its own: a statement and a function to write."""
    return Problem(
        id="ts", source="text", text="Write two_sum(nums, target).", entry_point="two_sum"
    )


def test_candidates_run_on_generated_tests_in_the_sandbox():
    """Each candidate's verdict on each generated test, and what it returned, from the real
    sandbox: a right and a wrong program disagree where the wrong one is wrong."""
    from bcoder.core.types import Candidate, GeneratedTests
    from bcoder.execution import Executor
    from bcoder.pipeline.gentests import test_candidates

    wrong = "def two_sum(nums, target):\n    return [0, 1]\n"
    cands = [Candidate(CORRECT, ""), Candidate(wrong, ""), Candidate("def two_sum(:\n", "")]
    tests = GeneratedTests(
        asserts=["assert two_sum([2, 7, 11, 15], 9) == [0, 1]", "assert two_sum([3, 2, 4], 6) == [1, 2]",
                 "assert two_sum([1, 1], 2) == [0, 1]"], samples=2, written=3
    )  # fmt: skip
    with Executor(timeout=4.0) as ex:
        assert test_candidates(_two_sum_stub(), cands, tests, ex) > 0
    right, bad, broken = ([t.verdict for t in c.generated] for c in cands)
    assert right == ["pass", "pass", "pass"]
    assert bad == ["pass", "fail", "pass"] and cands[1].generated[1].value == "[0, 1]"
    assert broken[0] == "compile_error"


def test_a_problem_without_tests_gets_generated_tests(engine, tiny_model_dir, monkeypatch):
    """solve() writes tests for a problem without its own, runs every candidate on them and
    ranks by the checkpoint's ranker for problems without tests; the run keeps the tests. Here
    the tests are written by hand in the model's place (a tiny random model writes none)."""
    from bcoder.core.types import GeneratedTests, Notice
    from bcoder.pipeline import solve as solving

    written = GeneratedTests(asserts=["assert two_sum([3, 2, 4], 6) == [1, 2]"], samples=2,
                             written=1, seconds=0.1)  # fmt: skip
    monkeypatch.setattr(solving, "write_tests", lambda *a, **k: written)
    result = solve(_two_sum_stub(), engine, _settings(tiny_model_dir, n=3))
    assert result.generated == written and result.timings["write_tests"] == 0.1
    assert all(len(c.generated) == 1 for c in result.candidates)  # each ran on the test
    assert result.ranker == result.settings["ranker"] == "codet-logprob"
    monkeypatch.undo()  # the tiny model itself: nothing parses, and the same ranker orders by
    events = []  # mean log-prob alone, as eval scores it; said so
    result = solve(_two_sum_stub(), engine, _settings(tiny_model_dir, n=2), on_event=events.append)
    assert result.generated is not None and result.generated.samples == 4
    assert result.generated.asserts == [] and "parses" in result.generated.note
    assert result.ranker == "codet-logprob"
    by_likelihood = sorted(result.candidates, key=lambda c: c.mean_logprob, reverse=True)
    assert [c.code for c in result.candidates] == [c.code for c in by_likelihood]
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert notes == [
        "no generated test ran: ranked by mean log-prob alone (codet-logprob without tests)"
    ]
    off = dataclasses.replace(_settings(tiny_model_dir, n=2), generate_tests=False)
    assert solve(_two_sum_stub(), engine, off).generated is None
    events = []  # no function to call (a program reading stdin): nothing to write, said so
    stdin = dataclasses.replace(_two_sum_stub(), entry_point=None)
    result = solve(stdin, engine, _settings(tiny_model_dir, n=2), on_event=events.append)
    assert result.generated is None and result.ranker == "reward"
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert notes == ["no tests written: the problem names no function to call; ranked by reward"]
    quiet = []
    solve(stdin, engine, off, on_event=quiet.append)
    assert not [e for e in quiet if isinstance(e, Notice)]  # not asked for: nothing to say
    own = solve(_problem(tests=TWO_SUM), engine, _settings(tiny_model_dir, n=2))
    assert own.generated is None  # a problem with its own tests is ranked by them


def test_tests_are_written_beside_a_problems_own_only_when_asked(
    engine, tiny_model_dir, monkeypatch
):
    """``generate_tests_with_examples``: a problem with tests of its own (a docstring's examples)
    gets generated tests too; its own tests still decide first (passing first) and the agreement
    ranker orders the rest. Off by default. When none of the model's tests runs, the note says
    the own tests came first."""
    from bcoder.core.types import GeneratedTests, Notice
    from bcoder.pipeline import solve as solving

    written = GeneratedTests(asserts=["assert two_sum([3, 2, 4], 6) == [1, 2]"], samples=2,
                             written=1, seconds=0.1)  # fmt: skip
    monkeypatch.setattr(solving, "write_tests", lambda *a, **k: written)
    own = _problem(tests=TWO_SUM, examples=TWO_SUM)
    settings = _settings(tiny_model_dir, run_tests=True, n=2)
    default = solve(own, engine, settings)
    assert default.generated is None and default.ranker == "reward"
    asked = dataclasses.replace(settings, generate_tests_with_examples=True)
    result = solve(own, engine, asked)
    assert result.generated == written and result.ranker == "codet-logprob"
    assert result.settings["passing_first"] is True
    assert result.settings["generate_tests_with_examples"] is True
    assert all(c.outcome is not None and len(c.generated) == 1 for c in result.candidates)
    monkeypatch.undo()  # the tiny model itself: no test parses
    events = []
    solve(own, engine, asked, on_event=events.append)
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert notes == [
        "no generated test ran: ranked by the problem's own tests, then mean log-prob "
        "(codet-logprob without tests)"
    ]
    off = dataclasses.replace(asked, generate_tests=False)
    assert solve(own, engine, off).generated is None  # --no-generated-tests wins
