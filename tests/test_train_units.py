"""bcoder.train pieces without a model: config resolution, shard stores, the sampler, collation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bcoder.core.errors import BcoderError
from bcoder.train.config import CONFIG_DIR, TrainConfig, load_config
from bcoder.train.data import MixedSampler, ShardStore, TrainingData, heldout_problems
from bcoder.train.diagnostics import mixed_td

# --- config -----------------------------------------------------------------------------------


def test_defaults_are_the_papers():
    c = TrainConfig()
    assert (c.model.alpha, c.model.gamma, c.model.r_max) == (1.0, 0.999, 1.0)
    assert (c.theta.beta_adv, c.theta.beta_ce, c.phi.rho_real, c.theta.rho_real) == (
        0.1,
        0.5,
        0.5,
        0.5,
    )
    assert (c.phi.lr, c.phi.schedule, c.phi.weight_decay) == (1e-5, "constant", 0.05)
    assert (c.theta.lr, c.theta.schedule, c.theta.weight_decay) == (3e-5, "linear", 0.05)
    assert c.collect.samples_per_problem == 256 and c.theta.operator == "conservative"


def test_precedence_file_env_set(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[phi]\nlr = 2e-4\nsteps = 7\n[model]\nmode = "lora"\n[data]\nids = [601, 602]\n'
    )
    env = {"BCODER_TRAIN_PHI_LR": "3e-4", "BCODER_TRAIN_THETA_BATCH_SIZE": "5", "OTHER": "x"}
    c = load_config(path, ["phi.lr=4e-4", "run.dir=/tmp/some where"], env=env)
    assert c.phi.lr == 4e-4  # --set beats the environment, which beats the file
    assert c.phi.steps == 7 and c.model.mode == "lora" and c.theta.batch_size == 5
    assert c.data.ids == ["601", "602"] and c.run.dir == "/tmp/some where"
    assert isinstance(load_config(path, ["theta.lr=1"], env={}).theta.lr, float)


def test_yaml_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("theta:\n  operator: optimality\n  skip_phi: true\n")
    c = load_config(path, env={})
    assert c.theta.operator == "optimality" and c.theta.skip_phi


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.mode=half"], "model.mode"),
        (["phi.rho_real=1.5"], "rho_real"),
        (["theta.operator=greedy"], "operator"),
        (["theta.imitate=everything"], "imitate"),
        (["phi.lr=fast"], "phi.lr"),
        (["phi.nope=1"], "unknown key phi.nope"),
        (["nosuch.x=1"], "SECTION.KEY"),
        (["phi.lr"], "SECTION.KEY=VALUE"),
    ],
)
def test_bad_values_are_user_errors(overrides, message):
    with pytest.raises(BcoderError, match=message):
        load_config(None, overrides, env={})


def test_packaged_configs_load():
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
    assert {"smollm2-135m-head", "qwen2.5-coder-1.5b-lora", "coderl-770m-full"} <= set(names)
    for name in names:
        c = load_config(name, env={})
        assert name.endswith(c.model.mode) and c.run.dir.endswith(name)
    with pytest.raises(BcoderError, match="no such config"):
        load_config("no-such-config", env={})


# --- stores and data --------------------------------------------------------------------------


def _rows(n: int, gt: list[bool], lengths: list[int]) -> dict[str, list]:
    return {
        "problem_id": [f"p{i // 2}" for i in range(n)],
        "source": ["ground_truth" if g else "sample" for g in gt],
        "is_ground_truth": gt,
        "prompt_ids": [[5, 6, 7][: 1 + i % 3] for i in range(n)],
        "action_ids": [list(range(10, 10 + t)) for t in lengths],
        "completion": [""] * n,
        "code": [""] * n,
        "count": [1 + i for i in range(n)],
        "outcome": ["pass" if g else "fail" for g in gt],
        "reward": [1.0 if g else -0.3 for g in gt],
        "finish_reason": ["eos"] * n,
    }


def test_store_lists_only_finished_shards_and_data_joins(tmp_path):
    from bcoder.train.data import collect_features

    data = tmp_path / "data"
    collect = ShardStore(data / "collect")
    collect.write("shard-00000", _rows(3, [True, False, False], [2, 3, 1]), collect_features())
    collect.write("shard-00001", _rows(2, [False, True], [4, 2]), collect_features())
    (data / "collect" / "shard-00002").mkdir()  # killed before its entry was written
    assert [s["name"] for s in collect.shards()] == ["shard-00000", "shard-00001"]
    feats = ShardStore(data / "features")
    H = 3
    for name, lengths in (("shard-00000", [2, 3, 1]), ("shard-00001", [4, 2])):
        feats.write(
            name,
            {
                "ckpt_adv": [[-0.5 * t] * t for t in lengths],
                "ckpt_argmax": [[t] * t for t in lengths],
                "hidden": [np.arange(t * H, dtype=np.float16) for t in lengths],
            },
        )
    feats.set_meta({"hidden_size": H})
    d = TrainingData.load(data, need=["ckpt_adv", "hidden"])
    assert len(d) == 5 and d.hidden_size == H
    assert d.action_ids.lengths().tolist() == [2, 3, 1, 4, 2]
    assert d.columns["hidden"].row(3).shape == (4, H)
    b = d.collate([3, 2], pad_id=0, columns=["ckpt_adv", "hidden", "ckpt_argmax"])
    assert b["action_ids"].tolist() == [[10, 11, 12, 13], [10, 0, 0, 0]]
    assert b["action_mask"].tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]
    assert b["prompt_ids"].tolist() == [[0, 0, 5], [5, 6, 7]]  # left-padded
    assert b["hidden"].shape == (2, 4, H) and b["hidden"][0, 3].tolist() == [9.0, 10.0, 11.0]
    assert b["ckpt_adv"][1].tolist() == [-0.5, 0, 0, 0] and b["ckpt_argmax"].dtype == torch.long
    assert b["reward"].tolist() == pytest.approx([-0.3, -0.3]) and b["count"].tolist() == [1, 3]
    with pytest.raises(BcoderError, match="u_phi"):
        TrainingData.load(data, need=["u_phi"])


def test_heldout_problems_are_stable():
    ids = [f"mbpp/{i}" for i in range(601, 641)]
    held = heldout_problems(ids, 0.1, seed=0)
    assert len(held) == 4 and held <= set(ids)
    assert heldout_problems(list(reversed(ids)), 0.1, seed=0) == held
    assert heldout_problems(ids, 0.1, seed=1) != held
    assert heldout_problems(ids[:1], 0.5) == set() and heldout_problems(ids, 0.0) == set()


# --- the sampler ------------------------------------------------------------------------------


def test_sampler_mixes_at_rho_and_is_a_function_of_the_index():
    real, gen = np.arange(0, 5), np.arange(100, 130)
    s = MixedSampler(real, gen, batch_size=8, rho_real=0.5, seed=3)
    rows = s.rows(7)
    assert sum(r < 100 for r in rows) == 4 and sum(r >= 100 for r in rows) == 4
    again = MixedSampler(real, gen, batch_size=8, rho_real=0.5, seed=3)
    assert again.rows(7) == rows and again.rows(0) == s.rows(0)
    assert MixedSampler(real, gen, 8, 0.5, seed=4).rows(7) != rows
    # every generated row once per epoch (30 rows = 7.5 batches of 4)
    seen = [r for i in range(7) for r in s.rows(i) if r >= 100] + s.rows(7)[4:6]
    assert sorted(seen) == list(range(100, 130))


def test_sampler_ranks_read_disjoint_slices_of_one_global_batch():
    real, gen = np.arange(0, 40), np.arange(100, 140)
    s = MixedSampler(real, gen, batch_size=4, rho_real=0.5, seed=0)
    a, b = s.rows(2, rank=0, world=2), s.rows(2, rank=1, world=2)
    assert not set(a) & set(b)
    one = MixedSampler(real, gen, batch_size=8, rho_real=0.5, seed=0)
    assert sorted(a + b) == sorted(one.rows(2))  # the same global batch as one process of 8


def test_sampler_weights_by_count_and_handles_missing_pools():
    gen = np.array([100, 101])
    s = MixedSampler(np.array([], dtype=int), gen, 50, 0.5, seed=0, weights=np.array([9, 1]))
    rows = [r for i in range(20) for r in s.rows(i)]
    assert rows.count(100) == 9 * rows.count(101)  # drawn as often as they were sampled
    only_real = MixedSampler(np.array([1, 2]), np.array([], dtype=int), 4, 0.5, seed=0)
    assert set(only_real.rows(0)) <= {1, 2} and len(only_real.rows(0)) == 4
    with pytest.raises(BcoderError):
        MixedSampler(np.array([], dtype=int), np.array([], dtype=int), 4, 0.5, seed=0)


def test_mixed_td_weights_ground_truth_at_rho():
    td = np.array([1.0, 3.0, 2.0, 4.0])
    gt = np.array([True, True, False, False])
    count = np.array([1.0, 1.0, 3.0, 1.0])
    mixed, sampled = mixed_td(td, gt, count, 0.5)
    assert sampled == pytest.approx((2 * 3 + 4) / 4)
    assert mixed == pytest.approx(0.5 * 2.0 + 0.5 * 2.5)
    assert mixed_td(td[2:], gt[2:], count[2:], 0.5) == (pytest.approx(2.5), pytest.approx(2.5))
    assert json.dumps(mixed_td(td[:2], gt[:2], count[:2], 0.5)) == "[2.0, null]"


# --- labels of written programs ---------------------------------------------------------------


def test_a_ground_truth_cut_at_the_target_length_is_labelled_as_cut(tokenizer):
    """A ground truth longer than data.max_target_tokens trains as its first tokens: it is stored
    as that cut program and labelled by running it, even when whole ground truths are assumed
    to pass (collect.execute_ground_truth = false); a whole one keeps its +1."""
    from bcoder.core.spec import Problem, TestSpec
    from bcoder.execution import Executor
    from bcoder.train.programs import Prompter, label, written_programs

    short = "def add(a, b):\n    return a + b\n"
    long = "".join(f"def unused_{i}(x):\n    return x + {i}\n\n\n" for i in range(8)) + short
    problem = Problem(
        id="p", source="text", text="Add two numbers.", tests=TestSpec(asserts=("add(1, 2) == 3",))
    )
    cfg = load_config(None, ["data.max_target_tokens=26", "data.prompt_family=mbpp"], env={})
    prompter = Prompter(tokenizer, cfg, is_seq2seq=False)
    programs = written_programs(prompter, problem, [short, long], "ground_truth")
    whole, cut = programs
    assert (whole.finish_reason, cut.finish_reason) == ("eos", "length")
    assert len(cut.action_ids) == 26 and long.startswith(cut.code.rstrip())
    assert "def add" not in cut.code  # what the kept actions hold, not the whole solution
    assert cut.completion == tokenizer.decode(cut.action_ids, skip_special_tokens=True)
    with Executor(workers=1, timeout=4.0) as ex:
        label(programs, {"p": problem}, ex, execute_ground_truth=False)
    assert (whole.outcome, whole.reward) == ("pass", 1.0)
    assert cut.outcome != "pass" and cut.reward < 0
