"""bcoder train end to end on a tiny Llama built from a config and six real MBPP problems:
collect (real sandbox) -> featurize -> phi -> theta -> a checkpoint that loads, in every mode."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from support.cli import bcoder as run_bcoder

IDS = [601, 602, 603, 604, 605, 606]


def tiny_sets(model_dir: Path, run_dir: Path, data: Path, mode: str = "head") -> list[str]:
    """--set overrides for a tiny, fast run (usable in-process and on the command line)."""
    return [
        f"model.name={model_dir}",
        f"model.mode={mode}",
        f"run.dir={run_dir}",
        "run.threads=1",
        f"data.dataset={data / 'mbpp' / 'mbpp.jsonl'}",
        f"data.ids={json.dumps([str(i) for i in IDS])}",
        "data.heldout_frac=0.34",
        "data.max_target_tokens=24",
        "collect.samples_per_problem=3",
        "collect.batch_size=3",
        "collect.shard_problems=2",
        "collect.workers=2",
        "phi.steps=30",
        "phi.lr=3e-3",
        "phi.batch_size=4",
        "phi.grad_accum=2",
        "phi.eval_every=10",
        "phi.save_every=10",
        "phi.log_every=5",
        "theta.steps=6",
        "theta.lr=1e-3",
        "theta.batch_size=4",
        "theta.eval_every=3",
        "theta.save_every=3",
        "theta.log_every=3",
    ]


def config(model_dir, run_dir, data, mode="head", extra=()):
    from bcoder.train.config import load_config

    return load_config(None, tiny_sets(model_dir, run_dir, data, mode) + list(extra), env={})


def bcoder(*args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_bcoder(*args, env={"PYTHONWARNINGS": "ignore"}, timeout=timeout)


@pytest.fixture(scope="module")
def collected(tmp_path_factory, tiny_model_dir, fixture_data):
    """One collection, shared by the tests (copied into each run directory)."""
    from bcoder.train import run, setup

    root = tmp_path_factory.mktemp("collected")
    cfg = config(tiny_model_dir, root, fixture_data)
    acc = setup.make_accelerator(cfg)
    summary = run.run_collect(cfg, acc)
    assert summary["shards_written"] == 3 and summary["problems"] == len(IDS)
    return root


def fresh_run(collected: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(collected / "data" / "collect", run_dir / "data" / "collect")
    return run_dir


def test_collect_stores_programs_with_outcomes_and_ground_truths(collected, fixture_data):
    from bcoder.train.data import ShardStore

    ds = ShardStore(collected / "data" / "collect")
    rows = [r for s in ds.shards() for r in ds.load(s["name"]).to_list()]
    gts = [r for r in rows if r["is_ground_truth"]]
    samples = [r for r in rows if r["source"] == "sample"]
    assert {r["problem_id"] for r in gts} == {f"mbpp/{i}" for i in IDS}
    solution = mbpp_solutions(fixture_data, "unparse")
    cut = [r for r in gts if r["finish_reason"] == "length"]
    assert cut  # data.max_target_tokens=24 cuts MBPP solutions
    for r in gts:
        if r["finish_reason"] == "length":  # labelled as the cut program it trains on
            assert len(r["action_ids"]) == 24
            assert solution[r["problem_id"]].startswith(r["code"].rstrip())
            assert r["outcome"] != "pass" and r["reward"] < 0
        else:
            assert r["outcome"] == "pass" and r["reward"] == 1.0  # MBPP's own code
    assert sum(r["count"] for r in samples) == 3 * len(IDS)  # duplicates merged, counted
    for r in samples:
        assert r["outcome"] in ("fail", "runtime_error", "compile_error")  # a random model
        assert round(r["reward"], 4) in (-0.3, -0.6, -1.0) and 1 <= len(r["action_ids"]) <= 24
    keys = [(r["problem_id"], tuple(r["action_ids"])) for r in rows]
    assert len(keys) == len(set(keys))


def mbpp_solutions(fixture_data: Path, style: str) -> dict[str, str]:
    """{problem id: its MBPP solution as collect writes it in ``style``}."""
    from bcoder.train.collect import restyled

    lines = (fixture_data / "mbpp" / "mbpp.jsonl").read_text().splitlines()
    return {
        f"mbpp/{r['task_id']}": restyled(r["code"], style).replace("\r\n", "\n")
        for r in map(json.loads, lines)
    }


def test_ground_truths_are_restyled_or_kept():
    from bcoder.train.collect import restyled

    mbpp = "def f(x): \r\n\tif x:   \r\n\t\treturn ('a')  # yes\r\n\treturn 'b'"
    assert restyled(mbpp, "unparse") == "def f(x):\n    if x:\n        return 'a'\n    return 'b'"
    assert restyled(mbpp, "raw") == mbpp
    assert restyled("print 'python 2'", "unparse") == "print 'python 2'"  # as it was


def test_collect_rewrites_ground_truths_in_a_new_style(
    collected, tmp_path, tiny_model_dir, fixture_data
):
    """A finished run asked for another ground-truth style writes its ground truths again and
    keeps its samples and their features; featurize then computes only the ground truths."""
    from bcoder.train import run, setup
    from bcoder.train.data import ShardStore

    run_dir = fresh_run(collected, tmp_path)
    cfg = config(tiny_model_dir, run_dir, fixture_data)
    acc = setup.make_accelerator(cfg)
    run.run_featurize(cfg, acc)
    store, feats = (ShardStore(run_dir / "data" / n) for n in ("collect", "features"))

    def rows(s: ShardStore) -> list[dict]:
        return [r for e in s.shards() for r in s.load(e["name"]).to_list()]

    before, before_feats = rows(store), rows(feats)
    raw = config(tiny_model_dir, run_dir, fixture_data, extra=["collect.ground_truth_style=raw"])
    summary = run.run_collect(raw, acc)
    assert summary["shards_restyled"] == summary["shards_skipped"] == 3
    assert summary["shards_written"] == 0
    after, after_feats = rows(store), rows(feats)
    assert [r for r in after if not r["is_ground_truth"]] == [
        r for r in before if not r["is_ground_truth"]]  # fmt: skip
    solution = mbpp_solutions(fixture_data, "raw")
    gts = [r for r in after if r["is_ground_truth"]]
    assert len(gts) == len(IDS)
    for r in gts:
        whole = r["finish_reason"] != "length"
        assert r["code"] == solution[r["problem_id"]] if whole else \
            solution[r["problem_id"]].startswith(r["code"].rstrip())  # fmt: skip
    assert any(a["code"] != b["code"] for a, b in zip(after, before, strict=True))
    for a, fa, fb in zip(after, after_feats, before_feats, strict=True):
        assert (fa == fb) if not a["is_ground_truth"] else fa["ckpt_adv"] == []
    redo = run.run_featurize(raw, acc)  # the new ground truths only
    assert redo["tokens"] == sum(len(r["action_ids"]) for r in gts)
    assert run.run_collect(raw, acc)["shards_restyled"] == 0


def test_collect_records_the_features_featurize_would_compute(
    collected, tmp_path, tiny_model_dir, fixture_data
):
    """collect keeps the samples' features (hidden states, A_ckpt, argmax) as it samples them;
    featurize then computes only the ground truths', and what was recorded matches its own
    teacher-forced pass over the same programs (transformers backend)."""
    from bcoder.train import run, setup
    from bcoder.train.data import ShardStore

    recorded_run = tmp_path / "recorded"
    shutil.copytree(collected / "data", recorded_run / "data")  # with data/sampled_features
    forced_run = fresh_run(collected, tmp_path)  # the collected programs only
    acc = setup.make_accelerator(config(tiny_model_dir, recorded_run, fixture_data))
    got = run.run_featurize(config(tiny_model_dir, recorded_run, fixture_data), acc)
    ref = run.run_featurize(config(tiny_model_dir, forced_run, fixture_data), acc)
    assert got["tokens_recorded"] > 0 and ref["tokens_recorded"] == 0
    assert got["tokens"] + got["tokens_recorded"] == ref["tokens"]
    a_store, b_store = (ShardStore(d / "data" / "features") for d in (recorded_run, forced_run))
    for shard in a_store.names():
        a, b = a_store.load(shard), b_store.load(shard)
        for col in a.column_names:
            for x, y in zip(a[col], b[col], strict=True):
                x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
                if col == "ckpt_argmax":
                    assert np.mean(x == y) > 0.98
                else:  # KV-cached decode against one padded forward (hidden in float16)
                    assert np.allclose(x, y, atol=1e-3 if col != "hidden" else 1e-2), col


def test_collect_resumes_a_lost_shard_identically(
    collected, tmp_path, tiny_model_dir, fixture_data
):
    from bcoder.train import run, setup
    from bcoder.train.data import ShardStore

    run_dir = fresh_run(collected, tmp_path)
    store = ShardStore(run_dir / "data" / "collect")
    before = store.load("shard-00001").to_dict()
    (run_dir / "data" / "collect" / "shard-00001.json").unlink()  # killed while writing it
    cfg = config(tiny_model_dir, run_dir, fixture_data)
    summary = run.run_collect(cfg, setup.make_accelerator(cfg))
    assert (summary["shards_skipped"], summary["shards_written"]) == (2, 1)
    assert store.load("shard-00001").to_dict() == before  # per-problem seeds: same programs
    # the time and counts of every finished shard are kept, whichever invocation wrote it
    stages = json.loads((collected / "stages.json").read_text())["collect"]
    assert stages["runs"] == 1 and stages["shards"] == 3 and stages["seconds"] > 0
    assert stages["programs"] == sum(
        s["rows"] for s in ShardStore(collected / "data" / "collect").shards()
    )
    resumed = json.loads((run_dir / "stages.json").read_text())["collect"]
    assert resumed["runs"] == 1 and resumed["shards"] == 1
    assert resumed["programs"] == store.shards()[1]["rows"]


def test_featurize_caps_samples_per_problem(collected, tmp_path, tiny_model_dir, fixture_data):
    """featurize.max_samples_per_problem: every ground truth and at most that many sampled
    programs per problem get features, the rest stay out of training; raising the cap computes
    only what it adds; a stage trains on what is there (shards featurize has not reached yet
    included)."""
    from bcoder.train import run, setup
    from bcoder.train.data import ShardStore, TrainingData

    run_dir = fresh_run(collected, tmp_path)

    metas: list[dict] = []  # the features' meta on disk as each shard is written

    def featurize(cap: int) -> tuple[dict, TrainingData]:
        cfg = config(tiny_model_dir, run_dir, fixture_data, extra=[
            f"featurize.max_samples_per_problem={cap}"])  # fmt: skip
        store = ShardStore(run_dir / "data" / "features")
        summary = run.run_featurize(
            cfg, setup.make_accelerator(cfg), on_event=lambda e: metas.append(store.meta())
        )
        return summary, TrainingData.load(run_dir / "data", need=["hidden", "ckpt_adv"])

    first, data = featurize(1)
    # readable from the first shard on (a featurize stopped early can be trained on)
    assert metas and all(m.get("hidden_size") == data.hidden_size > 0 for m in metas)
    gt = data.is_ground_truth
    assert data.featurized[gt].all()
    sampled = [pid for pid, g, f in zip(data.problem_id, gt, data.featurized, strict=True)
               if f and not g]  # fmt: skip
    several = {pid for pid in data.problem_id[~gt] if (data.problem_id[~gt] == pid).sum() > 1}
    assert several, "the fixture should sample several distinct programs for some problem"
    assert sorted(set(sampled)) == sorted(sampled) and set(sampled) == set(data.problem_id[~gt])
    assert first["tokens"] == int(data.action_ids.lengths()[data.featurized].sum())
    train_rows, held_rows = setup.split_rows(config(tiny_model_dir, run_dir, fixture_data), data)
    assert data.featurized[train_rows].all() and data.featurized[held_rows].all()
    assert len(train_rows) + len(held_rows) == int(data.featurized.sum()) < len(data)
    (run_dir / "data" / "features" / "shard-00001.json").unlink()  # one featurize has not reached
    data = TrainingData.load(run_dir / "data", need=["hidden"])
    shards = ShardStore(run_dir / "data" / "collect").shards()
    assert shards[1]["name"] == "shard-00001"
    start = shards[0]["rows"]
    unreached = (np.arange(len(data)) >= start) & (np.arange(len(data)) < start + shards[1]["rows"])
    assert not data.featurized[unreached].any() and data.featurized[gt & ~unreached].all()
    before = {i: data.columns["hidden"].row(i).copy() for i in np.nonzero(data.featurized)[0]}
    cfg = config(tiny_model_dir, run_dir, fixture_data, extra=["phi.steps=5", "phi.eval_every=5"])
    assert run.run_phi(cfg, setup.make_accelerator(cfg))["train/td"] >= 0  # on what is there
    values = ShardStore(run_dir / "data" / "values")
    assert values.names()

    second, data = featurize(2)  # only the added programs are computed; the rest are kept
    added = data.featurized & ~np.isin(np.arange(len(data)), list(before))
    assert added.any() and second["tokens"] == int(data.action_ids.lengths()[added].sum())
    assert all(np.array_equal(data.columns["hidden"].row(i), h) for i, h in before.items())
    assert not values.names()  # u_phi of the old features is gone
    assert featurize(2)[0]["shards_skipped"] == len(shards)

    everything, data = featurize(0)
    assert data.featurized.all() and everything["tokens"] > 0


@pytest.mark.parametrize("mode", ["head", "lmhead", "lora", "full"])
def test_featurize_phi_theta(mode, collected, tmp_path, tiny_model_dir, fixture_data, monkeypatch):
    from bcoder.core.errors import BcoderError
    from bcoder.models.loading import load_model_and_tokenizer
    from bcoder.qmodel.batch import make_batch
    from bcoder.qmodel.config import read_checkpoint_config
    from bcoder.qmodel.model import BCoderModel
    from bcoder.train import run, setup
    from bcoder.train.data import TrainingData
    from bcoder.train.featurize import ensure_values
    from bcoder.train.objectives import PhiObjective, ThetaObjective
    from bcoder.train.phi import weights_tag
    from bcoder.train.theta import initial_model

    run_dir = fresh_run(collected, tmp_path)
    # an LM that trains moves V much faster than a head: fewer steps at a lower rate
    extra = {
        "head": ["run.tensorboard=true"],
        "lmhead": ["featurize.topk=8", "model.lora_r=4"],
    }.get(mode, ["phi.steps=5", "phi.lr=1e-4", "phi.eval_every=0"])
    cfg = config(tiny_model_dir, run_dir, fixture_data, mode, extra)
    acc = setup.make_accelerator(cfg)
    assert run.run_featurize(cfg, acc)["shards_written"] == 3
    data = TrainingData.load(run_dir / "data", need=setup.stage_columns(mode, "phi"))
    assert data.has("hidden") == (mode in ("head", "lmhead"))
    assert data.has("topk_ids") == (mode == "lmhead")
    assert (data.columns["ckpt_adv"].values <= 0).all()

    # the stored A_ckpt and argmax are what the checkpoint computes on the same tokens
    base, _, _ = load_model_and_tokenizer(str(tiny_model_dir), device="cpu")
    ref = BCoderModel(base, setup.qconfig(cfg))
    i = int(data.action_ids.lengths().argmax())
    batch = make_batch([data.prompt_ids.row(i).tolist()], [data.action_ids.row(i).tolist()], 0)
    with torch.no_grad():
        out = ref(batch, stage="phi")
    torch.testing.assert_close(out.advantage[0], torch.from_numpy(data.columns["ckpt_adv"].row(i)))
    assert out.ckpt_argmax[0].tolist() == data.columns["ckpt_argmax"].row(i).tolist()
    if mode == "lmhead":  # the top-k, descending, the argmax first; the taken action's logit
        top_l, top_i = out.logits[0].float().topk(8, dim=-1)
        assert data.columns["topk_ids"].row(i).tolist() == top_i.tolist()
        torch.testing.assert_close(torch.from_numpy(data.columns["topk_logits"].row(i)), top_l)
        taken = out.logits[0].float().gather(-1, batch.action_ids[0, :, None])[:, 0]
        torch.testing.assert_close(torch.from_numpy(data.columns["ckpt_logit"].row(i)), taken)

    # phi (that it lowers the TD error is tested on data with learnable features, below)
    phi = run.run_phi(cfg, acc)
    initial = json.loads((run_dir / "phi" / "initial.json").read_text())
    assert phi["train/td"] != initial["train/td"]
    assert phi["heldout/value_saturated_frac"] < 0.5 and phi["processes/weights_agree"] == 1.0
    lines = [json.loads(x) for x in (run_dir / "phi" / "metrics.jsonl").read_text().splitlines()]
    train_lines = [x for x in lines if x["kind"] == "train"]
    assert [x["step"] for x in train_lines] == list(range(5, cfg.phi.steps + 1, 5))
    assert {"loss/td", "value/mean", "value/saturated_frac", "perf/tokens_per_s"} <= set(
        train_lines[0]
    )

    # theta at initialisation: Q_theta == Q_phi on every token
    base2, _, _ = load_model_and_tokenizer(str(tiny_model_dir), device="cpu")
    data = TrainingData.load(run_dir / "data", need=setup.stage_columns(mode, "phi"))
    model = initial_model(cfg, base2, data, setup.split_rows(cfg, data)[0])
    ensure_values(cfg, run_dir, model, weights_tag(run_dir / "phi" / "final"), 0)
    data = TrainingData.load(run_dir / "data", need=setup.stage_columns(mode, "theta"))
    b = data.collate(list(range(8)), 0, setup.stage_columns(mode, "theta"))
    with torch.no_grad():
        q_phi = PhiObjective(model).quantities(b)
        q_theta = ThetaObjective(model).quantities(b)
    m = b["action_mask"].bool()
    torch.testing.assert_close(q_theta["q"][m], q_phi["q"][m], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(q_theta["value"][m], q_phi["value"][m], rtol=1e-5, atol=1e-5)

    with pytest.raises(BcoderError, match="--resume"):  # a finished stage is not redone
        run.run_phi(cfg, acc)
    assert run.run_phi(cfg, acc, resume=True) == phi  # ... unless asked to skip it

    theta = run.run_theta(cfg, acc)
    assert theta["processes/weights_agree"] == 1.0 and "heldout/R~_ordered" in theta
    lines = (run_dir / "theta" / "metrics.jsonl").read_text().splitlines()
    last = [json.loads(x) for x in lines if '"train"' in x][-1]
    assert {"loss/td", "loss/adv", "adv/argmax_agreement"} <= set(last)
    assert ("loss/ce" in last) == (mode != "head")
    if mode == "lmhead":  # the adapter moved the policy: A_theta is no longer A_ckpt
        assert last["adv/argmax_agreement"] < 1.0 or theta["heldout/argmax_agreement"] < 1.0
        assert any(k.startswith("heldout/nll_change/") for k in theta)  # how the policy moved
    else:  # the policy is the checkpoint's
        assert not any("nll_change" in k for k in theta)
    assert last["lr"] == pytest.approx(1e-3 / 6)  # linear decay, no warm-up: the last step's

    # the run's checkpoint loads onto the base, and its residual head has learned
    base3, _, _ = load_model_and_tokenizer(str(tiny_model_dir), device="cpu")
    trained = BCoderModel.from_checkpoint(run_dir / "checkpoint", base3)
    assert trained.config.mode == mode
    # it records how its prompts and programs were made: solve / eval / TUI / LSP use that
    from bcoder.problems.prompts import PromptSettings
    from bcoder.qmodel.config import checkpoint_prompt_settings

    assert checkpoint_prompt_settings(run_dir / "checkpoint") == PromptSettings("auto", 600, 24)
    h1 = trained.residual_head.net[-1].weight
    assert not torch.equal(h1, trained.residual_frozen.net[-1].weight)
    if mode == "lmhead":
        assert trained.logit_adapter.up.weight.abs().sum() > 0  # B moved off zero
    stages = json.loads((run_dir / "stages.json").read_text())
    assert {"featurize", "phi", "values", "theta"} <= set(stages)

    # select: in lmhead mode it also samples the trained policy on the held-out problems and
    # keeps it only if it passes as often as the checkpoint policy's collected samples there
    chosen = run.run_select(cfg, acc)
    policy = chosen["policy"]
    if mode != "lmhead":
        assert policy is None and "policy" not in read_checkpoint_config(run_dir / "checkpoint")
        return
    assert 0 <= policy["trained"] <= 1 and 0 <= policy["base"] <= 1
    assert policy["base"] == chosen["pass@1"]["unranked"]
    better = policy["trained"] >= policy["base"]
    assert policy["chosen"] == ("trained" if better else "base")
    assert read_checkpoint_config(run_dir / "checkpoint")["policy"] == policy["chosen"]
    sampled = json.loads((run_dir / "select" / "policy" / "model.json").read_text())
    assert sampled["policy"] == "trained"  # whatever the checkpoint says by now
    records = list((run_dir / "select" / "policy" / "problems").glob("*.json.gz"))
    assert len(records) == chosen["problems"]
    from bcoder.qmodel.config import checkpoint_policy

    assert checkpoint_policy(run_dir / "checkpoint") == policy["chosen"]

    # one eval run's samples come from one policy: resuming it with the other is refused
    import dataclasses

    from bcoder.core.errors import BcoderError
    from bcoder.evaluate.config import EvalSettings
    from bcoder.evaluate.records import PROBLEMS, SAMPLES, record_path
    from bcoder.evaluate.run import run_eval

    policy_run = run_dir / "select" / "policy"
    saved = json.loads((policy_run / "config.json").read_text())["settings"]
    settings = EvalSettings.from_dict(saved)
    for stage in (PROBLEMS, SAMPLES):  # one problem left to sample
        record_path(policy_run, saved["ids"][0], stage).unlink(missing_ok=True)
    other = dataclasses.replace(
        settings, sampling=dataclasses.replace(settings.sampling, policy="base")
    )
    from bcoder.pipeline.engine import Engine

    loads, load = [], Engine.load.__func__
    monkeypatch.setattr(
        Engine, "load", classmethod(lambda *a, **k: loads.append(1) or load(*a, **k))
    )
    with pytest.raises(BcoderError, match="sampled from the trained policy, not the base"):
        run_eval(other, policy_run, resume=True)
    assert loads == []  # refused before a model loads
    assert run_eval(settings, policy_run, resume=True).report is not None  # the same one goes on
    assert loads == [1]
    # a run from before model.json named its policy was sampled from l_theta, the trained one
    info = json.loads((policy_run / "model.json").read_text())
    del info["policy"]
    (policy_run / "model.json").write_text(json.dumps(info))
    for stage in (PROBLEMS, SAMPLES):
        record_path(policy_run, saved["ids"][0], stage).unlink()
    with pytest.raises(BcoderError, match="sampled from the trained policy, not the base"):
        run_eval(other, policy_run, resume=True)


def write_learnable_data(run_dir: Path, hidden_size: int, seed: int = 0) -> None:
    """Collected + featurized records whose hidden states say how the program will end.

    A random tiny LM's hidden states carry nothing about outcomes, so "phi lowers the TD error"
    is tested on records where they do: hidden = onehot(outcome) + noise, small advantages.
    """
    import numpy as np

    from bcoder.train.data import ShardStore, collect_features

    rng = np.random.default_rng(seed)
    outcomes = {"pass": 1.0, "fail": -0.3, "runtime_error": -0.6, "compile_error": -1.0}
    rows: dict[str, list] = {k: [] for k in collect_features()}
    feats: dict[str, list] = {"ckpt_adv": [], "ckpt_argmax": [], "hidden": []}
    for i in range(48):
        name = list(outcomes)[i % 4]
        T = int(rng.integers(4, 12))
        rows["problem_id"].append(f"p{i % 6}")
        rows["source"].append("ground_truth" if name == "pass" and i % 8 == 0 else "sample")
        rows["is_ground_truth"].append(rows["source"][-1] == "ground_truth")
        rows["prompt_ids"].append([5, 6])
        rows["action_ids"].append(rng.integers(4, 300, T).tolist())
        rows["completion"].append("")
        rows["code"].append("")
        rows["count"].append(1)
        rows["outcome"].append(name)
        rows["reward"].append(outcomes[name])
        rows["finish_reason"].append("eos")
        h = rng.normal(0, 0.1, (T, hidden_size))
        h[:, i % 4] += 1.0
        feats["hidden"].append(h.astype(np.float16).reshape(-1))
        feats["ckpt_adv"].append(-rng.exponential(0.01, T).astype(np.float32))
        feats["ckpt_argmax"].append([0] * T)
    ShardStore(run_dir / "data" / "collect").write("shard-00000", rows, collect_features())
    features = ShardStore(run_dir / "data" / "features")
    features.write("shard-00000", feats)
    features.set_meta({"hidden_size": hidden_size})


def test_phi_lowers_the_td_error_on_its_data(tmp_path, tiny_model_dir, fixture_data):
    from bcoder.train import run, setup

    run_dir = tmp_path / "learnable"
    write_learnable_data(run_dir, hidden_size=32)
    cfg = config(
        tiny_model_dir,
        run_dir,
        fixture_data,
        "head",
        ["phi.steps=80", "phi.lr=5e-2", "phi.eval_every=0"],
    )
    phi = run.run_phi(cfg, setup.make_accelerator(cfg))
    initial = json.loads((run_dir / "phi" / "initial.json").read_text())
    assert phi["train/td"] < 0.5 * initial["train/td"]
    assert phi["heldout/td"] < 0.5 * initial["heldout/td"]  # it generalises to new problems
    assert phi["heldout/R~_ordered"] == 1.0  # correct programs highest, compile errors lowest
    r = {k: phi[f"heldout/R~/{k}"] for k in ("pass", "fail", "runtime_error", "compile_error")}
    assert r["pass"] > r["fail"] > r["runtime_error"] > r["compile_error"]


def write_action_learnable_data(run_dir: Path, hidden_size: int, topk: int = 8) -> None:
    """Records in which the *first action* decides the outcome: a_0 = 10 + outcome index, from
    a start state whose hidden state is the same for every program (so no V(s_0) can tell them
    apart), after which the hidden states show the outcome. The checkpoint likes the four first
    tokens equally (A_ckpt(s_0, .) = 0), and later tokens carry noisy advantages, as real ones do.
    Only a theta whose advantages learn can rank such programs by R~ (DESIGN section 2)."""
    import numpy as np

    from bcoder.train.data import ShardStore, collect_features

    rng = np.random.default_rng(0)
    outcomes = {"pass": 1.0, "fail": -0.3, "runtime_error": -0.6, "compile_error": -1.0}
    rows: dict[str, list] = {k: [] for k in collect_features()}
    cols = ("ckpt_adv", "ckpt_argmax", "hidden", "topk_ids", "topk_logits", "ckpt_logit")
    feats: dict[str, list] = {k: [] for k in (*cols, "tail_lse")}
    start_ids = [10, 11, 12, 13, 20, 21, 22, 23][:topk]
    later_ids = list(range(2, 2 + topk))  # never taken (actions are >= 30 after a_0)
    logits_row = -0.5 * np.arange(topk, dtype=np.float32)
    for i in range(64):
        k = i % 4
        name = list(outcomes)[k]
        T = int(rng.integers(4, 12))
        actions = [10 + k, *rng.integers(30, 300, T - 1).tolist()]
        rows["problem_id"].append(f"p{i // 8}")
        rows["source"].append("ground_truth" if k == 0 and i % 8 == 0 else "sample")
        rows["is_ground_truth"].append(rows["source"][-1] == "ground_truth")
        rows["prompt_ids"].append([5, 6])
        rows["action_ids"].append(actions)
        for key, value in (("completion", ""), ("code", ""), ("count", 1), ("outcome", name)):
            rows[key].append(value)
        rows["reward"].append(outcomes[name])
        rows["finish_reason"].append("eos")
        h = rng.normal(0, 0.1, (T, hidden_size))
        h[0, 0] += 1.0  # the start state: the same for every program
        h[1:, 1 + k] += 1.0  # then the outcome shows
        adv = np.concatenate([[0.0], -rng.exponential(0.3, T - 1)]).astype(np.float32)
        top_i = np.array([start_ids] + [later_ids] * (T - 1), dtype=np.int32)
        top_l = np.stack([np.where(np.arange(topk) < 4, 0.0, -1.0)] + [logits_row] * (T - 1))
        feats["hidden"].append(h.astype(np.float16).reshape(-1))
        feats["ckpt_adv"].append(adv)
        feats["ckpt_argmax"].append(top_i[:, 0])
        feats["topk_ids"].append(top_i.reshape(-1))
        feats["topk_logits"].append(top_l.astype(np.float32).reshape(-1))
        feats["ckpt_logit"].append(top_l[:, 0].astype(np.float32) + adv)
        feats["tail_lse"].append(np.full(T, np.log(300.0) - 3.0, dtype=np.float32))
    ShardStore(run_dir / "data" / "collect").write("shard-00000", rows, collect_features())
    features = ShardStore(run_dir / "data" / "features")
    features.write("shard-00000", feats)
    features.set_meta({"hidden_size": hidden_size, "topk": topk})


def test_only_lmhead_advantages_rank_by_the_first_action(tmp_path, tiny_model_dir, fixture_data):
    """The reason for the lmhead mode: on programs told apart only by the action a_0, the
    theta-stage in head mode moves the held-out R~ gap between passing programs and compile
    errors by ~(1 - gamma) sum V (its A is the checkpoint's), in lmhead mode by more than 1."""
    from bcoder.train import run, setup

    def gap(d: dict) -> float:
        return d["heldout/R~/pass"] - d["heldout/R~/compile_error"]

    moved = {}
    for mode in ("head", "lmhead"):
        run_dir = tmp_path / mode
        write_action_learnable_data(run_dir, hidden_size=32)
        extra = ["phi.steps=40", "phi.lr=5e-2", "phi.eval_every=0", "model.lora_r=4"]
        extra += ["theta.steps=30", "theta.lr=3e-2", "theta.eval_every=0", "data.heldout_frac=0.25"]
        cfg = config(tiny_model_dir, run_dir, fixture_data, mode, extra)
        acc = setup.make_accelerator(cfg)
        run.run_phi(cfg, acc)
        theta = run.run_theta(cfg, acc)
        initial = json.loads((run_dir / "theta" / "initial.json").read_text())
        moved[mode] = gap(theta) - gap(initial)
    assert abs(moved["head"]) < 0.02, moved
    assert moved["lmhead"] > 1.0, moved


def test_cli_all_solve_and_ablations(tmp_path, tiny_model_dir, fixture_data):
    run_dir = tmp_path / "cli-run"
    sets = [
        x
        for s in tiny_sets(tiny_model_dir, run_dir, fixture_data)
        + ["data.ids=['601','602','603']", "collect.samples_per_problem=2", "data.heldout_frac=0.4"]
        for x in ("--set", s)
    ]
    r = bcoder("train", "all", "--config", "smollm2-135m-head", *sets, "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run_dir / "checkpoint" / "heads.safetensors").is_file()
    assert "heldout/td" in r.stdout and "theta" in r.stdout
    resolved = json.loads((run_dir / "config.json").read_text())
    assert resolved["model"]["name"] == str(tiny_model_dir) and resolved["phi"]["steps"] == 30
    # select: the held-out problems' samples ranked by every ranker; the best learned one is
    # written into the checkpoint, and solve ranks with it
    from bcoder.ranking.rankers import LEARNED
    from bcoder.train.data import heldout_problems

    chosen = json.loads((run_dir / "select" / "select.json").read_text())
    held = heldout_problems(["mbpp/601", "mbpp/602", "mbpp/603"], 0.4)
    assert chosen["problems"] == len(held) == 2 and chosen["samples"] == 2 * len(held)
    assert chosen["ranker"] in LEARNED and set(LEARNED) <= set(chosen["pass@1"])
    meta = json.loads((run_dir / "checkpoint" / "bcoder_config.json").read_text())
    assert meta["ranker"] == chosen["ranker"]
    assert (run_dir / "select" / "eval" / "report.md").is_file()
    # and the ranker for problems without tests: the held-out problems sampled with no assert
    # shown, the model writing tests (a tiny random model writes none: every agreement ranker
    # falls back, a tie, so the default stays), the best agreement ranker kept
    from bcoder.ranking.rankers import AGREEMENT, DEFAULT_RANKER_WITHOUT_TESTS

    alone = chosen["without_tests"]
    assert set(alone["pass@1"]) == set(AGREEMENT) and alone["problems"] == 2
    best = max(alone["pass@1"].values())
    assert alone["pass@1"][alone["ranker"]] == best
    assert meta["ranker_without_tests"] == alone["ranker"]
    if alone["pass@1"][DEFAULT_RANKER_WITHOUT_TESTS] == best:
        assert alone["ranker"] == DEFAULT_RANKER_WITHOUT_TESTS
    no_tests = json.loads((run_dir / "select" / "no-tests" / "config.json").read_text())
    assert no_tests["settings"]["protocol"] == "no-tests"
    # select again: the same weights resume its eval (nothing scored again), new weights redo it
    record = next((run_dir / "select" / "eval" / "problems").glob("*.json.gz"))
    written = record.stat().st_mtime_ns
    r = bcoder("train", "select", "--config", "smollm2-135m-head", *sets, "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    assert record.stat().st_mtime_ns == written
    heads = run_dir / "checkpoint" / "heads.safetensors"
    tensors = load_file(heads)
    save_file({k: v + 0.5 if v.is_floating_point() else v for k, v in tensors.items()}, heads)
    r = bcoder("train", "select", "--config", "smollm2-135m-head", *sets, "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    assert record.stat().st_mtime_ns != written
    chosen = json.loads((run_dir / "select" / "select.json").read_text())
    assert chosen["problems"] == 2

    ablation = ["--operator", "optimality", "--skip-phi", "--quiet"]
    r = bcoder("train", "theta", "--config", "smollm2-135m-head", *sets, *ablation)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run_dir / "theta-optimality-skip-phi" / "final").is_dir()
    assert (run_dir / "checkpoint-optimality-skip-phi" / "heads.safetensors").is_file()
    resolved = json.loads((run_dir / "config.json").read_text())
    assert resolved["theta"]["operator"] == "optimality" and resolved["theta"]["skip_phi"]

    # no --model: solve loads the base the checkpoint was trained on
    solve = bcoder(
        "solve", "mbpp:601", "--checkpoint", str(run_dir / "checkpoint"), "-n", "2",
        "--max-new-tokens", "8", "--no-tests", "--no-save", "--json",
    )  # fmt: skip
    assert solve.returncode == 0, solve.stderr[-3000:]
    out = json.loads(solve.stdout)
    assert out["heads"] == str(run_dir / "checkpoint")
    assert out["settings"]["ranker"] == chosen["ranker"]
    assert out["settings"]["model"] == str(tiny_model_dir)

    # shipped: scripts/ship_checkpoint.py puts the checkpoint where solve finds it by default
    shipped = tmp_path / "shipped"
    script = Path(__file__).resolve().parents[1] / "scripts" / "ship_checkpoint.py"
    r = subprocess.run(
        [sys.executable, str(script), str(run_dir), "--into", str(shipped), "--name", "tiny"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((shipped / "tiny" / "TRAINING.json").read_text())
    assert info["data"]["problems"] == 3 and info["data"]["heldout_problems"] == 2
    assert info["data"]["featurized_programs"] == info["data"]["programs"]  # no cap: all of them
    assert info["select"]["ranker"] == chosen["ranker"] and "phi" in info["stages"]
    solve = subprocess.run(
        [sys.executable, "-m", "bcoder", "solve", "mbpp:601", "--model", str(tiny_model_dir),
         "-n", "2", "--max-new-tokens", "8", "--no-tests", "--no-save", "--json"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "BCODER_CHECKPOINTS": str(shipped), "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert solve.returncode == 0, solve.stderr[-3000:]
    assert json.loads(solve.stdout)["heads"] == str(shipped / "tiny")

    from bcoder.qmodel.config import read_checkpoint_config

    # --reselect: a new select result (here: another ranker and a policy) replaces the shipped
    # one's choice and keeps the rest of TRAINING.json; other weights are refused
    chosen.update(
        ranker="terminal", policy={"trained": 0.25, "checkpoint": 0.5, "chosen": "checkpoint"}
    )
    (run_dir / "select" / "select.json").write_text(json.dumps(chosen))
    meta.update(ranker="terminal", policy="checkpoint")
    (run_dir / "checkpoint" / "bcoder_config.json").write_text(json.dumps(meta))
    reship = [sys.executable, str(script), str(run_dir), "--into", str(shipped), "--name", "tiny"]
    r = subprocess.run([*reship, "--reselect"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    again = json.loads((shipped / "tiny" / "TRAINING.json").read_text())
    assert again["select"] == chosen and again["data"] == info["data"]
    assert (
        "samples from the base model's policy (trained policy pass@1 25.0% against 50.0%"
        in (again["summary"])
    )
    assert read_checkpoint_config(shipped / "tiny")["policy"] == "checkpoint"
    save_file({k: v * 2 for k, v in load_file(heads).items()}, heads)
    r = subprocess.run([*reship, "--reselect"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "not the weights of" in r.stderr


def test_cli_errors_are_one_line(tmp_path, tiny_model_dir, fixture_data):
    r = bcoder("train", "phi", "--config", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    r = bcoder("train", "phi", "--config", "smollm2-135m-head", "--set", "phi.lr=fast")
    assert r.returncode == 2 and "phi.lr" in r.stderr
    sets = ["--set", f"model.name={tiny_model_dir}", "--set", f"run.dir={tmp_path / 'empty'}"]
    r = bcoder("train", "phi", "--config", "smollm2-135m-head", *sets)
    assert r.returncode == 2 and "collect" in r.stderr and "Traceback" not in r.stderr


def test_import_off_policy_programs(collected, tmp_path, tiny_model_dir, fixture_data):
    from bcoder.train import run, setup
    from bcoder.train.data import ShardStore

    run_dir = fresh_run(collected, tmp_path)
    mbpp = [json.loads(x) for x in (fixture_data / "mbpp" / "mbpp.jsonl").read_text().splitlines()]
    code = next(r["code"] for r in mbpp if r["task_id"] == 602)
    path = tmp_path / "programs.jsonl"
    rows = [{"problem_id": "602", "code": code}, {"problem_id": "mbpp/603", "code": "def f(:\n"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = config(tiny_model_dir, run_dir, fixture_data)
    summary = run.run_import(cfg, path, setup.make_accelerator(cfg))
    # 602's correct program is longer than data.max_target_tokens (24): it is stored cut, and
    # labelled by running the cut program it trains on (here a compile error), not as a pass
    assert summary["programs"] == 2 and summary["outcomes"] == {"compile_error": 2}
    store = ShardStore(run_dir / "data" / "collect")
    names = [s["name"] for s in store.shards() if s["name"].startswith("import-")]
    got = {r["problem_id"]: r for n in names for r in store.load(n).to_list()}
    assert got["mbpp/602"]["source"] == "import" and not got["mbpp/602"]["is_ground_truth"]
    cut = got["mbpp/602"]
    assert cut["finish_reason"] == "length" and len(cut["action_ids"]) == 24
    assert cut["code"] != code and code.startswith(cut["code"].rstrip()[:20])
    assert cut["reward"] == -1.0 and got["mbpp/603"]["reward"] == -1.0


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(checkpoint.glob("*.safetensors")):
        out.update({f"{f.name}:{k}": v for k, v in load_file(str(f)).items()})
    return out


@pytest.mark.parametrize("mode", ["head", pytest.param("lora", marks=pytest.mark.slow)])
def test_killed_run_resumes_to_the_same_weights(
    mode, collected, tmp_path, tiny_model_dir, fixture_data
):
    """A phi-stage killed with SIGKILL and resumed ends exactly where an uninterrupted one does
    (weights, optimizer state, RNG states and data order restored)."""
    import signal
    import time

    from bcoder.train import run, setup

    if mode == "head":
        extra = ["phi.steps=150", "phi.save_every=15", "phi.eval_every=75", "phi.log_every=25"]
    else:
        extra = ["phi.steps=12", "phi.save_every=3", "phi.eval_every=6", "phi.lr=1e-4"]
    last = int(extra[0].split("=")[1])
    ref_dir = fresh_run(collected, tmp_path / "ref")
    cfg = config(tiny_model_dir, ref_dir, fixture_data, mode, extra)
    acc = setup.make_accelerator(cfg)
    run.run_featurize(cfg, acc)
    run.run_phi(cfg, acc)

    run_dir = tmp_path / "killed"
    shutil.copytree(ref_dir / "data" / "collect", run_dir / "data" / "collect")
    shutil.copytree(ref_dir / "data" / "features", run_dir / "data" / "features")
    sets = tiny_sets(tiny_model_dir, run_dir, fixture_data, mode) + extra
    args = ["train", "phi", "--config", "smollm2-135m-head", "-q"]
    args += [x for s in sets for x in ("--set", s)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bcoder", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    checkpoints = run_dir / "phi" / "checkpoints"
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        if any(checkpoints.glob("step-*/trainer.pt")):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert not (run_dir / "phi" / "final").exists()  # killed mid-stage

    resumed = bcoder(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    want, got = _weights(ref_dir / "phi" / "final"), _weights(run_dir / "phi" / "final")
    assert want.keys() == got.keys() and want
    for k in want:
        assert torch.equal(want[k], got[k]), k
    lines = (run_dir / "phi" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(x)["step"] for x in lines]
    assert steps == sorted(steps) and steps.count(last) == 2  # no lines twice after resuming


@pytest.mark.slow
def test_accelerate_two_cpu_processes_agree(collected, tmp_path, tiny_model_dir, fixture_data):
    """Two CPU processes (gloo): every stage runs split across them, DDP keeps their weights
    identical. accelerate 1.x starts ONE process for `--cpu --num_processes 2` (its simple
    launcher); `--multi_gpu` starts two (torchrun) and, with no GPU, they run on CPU."""
    run_dir = fresh_run(collected, tmp_path)
    extra = ["phi.steps=4", "phi.eval_every=0", "theta.steps=3", "theta.eval_every=0"]
    args = [
        x
        for s in tiny_sets(tiny_model_dir, run_dir, fixture_data, "lora") + extra
        for x in ("--set", s)
    ]
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "bcoder", "train", "all", "--config", "smollm2-135m-head", *args, "-q",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    for stage in ("phi", "theta"):
        info = json.loads((run_dir / stage / "processes.json").read_text())
        assert info["world"] == 2 and info["agree"], info
        assert len(set(info["weights_sha1"])) == 1
    assert (run_dir / "checkpoint" / "adapter_theta.safetensors").is_file()
