"""Pieces every stage sets up the same way: accelerator, base model, run directory, data split."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_write_text
from bcoder.models.hardware import capped_threads
from bcoder.problems.prompts import PromptSettings
from bcoder.qmodel.config import FROZEN_BACKBONE, QConfig
from bcoder.train.config import TrainConfig
from bcoder.train.data import (
    TOPK_COLUMNS,
    TrainingData,
    heldout_problems,
)


def make_accelerator(cfg: TrainConfig):
    """An Accelerator for this process: autocast on GPU only (bf16 when supported, else fp16)."""
    import torch
    from accelerate import Accelerator

    if cfg.run.threads:  # at most the CPUs this process may use
        torch.set_num_threads(capped_threads(cfg.run.threads))
    cuda = torch.cuda.is_available() and cfg.run.device != "cpu"
    precision = cfg.run.precision
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "no"
    if not cuda:
        precision = "no"  # autocast on CPU is slower than float32 and not what the tests pin
    return Accelerator(mixed_precision=precision, cpu=not cuda)


def run_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.run.dir).expanduser()


def write_config(cfg: TrainConfig, main: bool) -> Path:
    """Create the run directory and write the resolved config into it."""
    root = run_dir(cfg)
    if main:
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(root / "config.json", cfg.to_json())
    return root


def record_time(
    root: Path,
    stage: str,
    seconds: float,
    *,
    new_run: bool = True,
    add: dict[str, int] | None = None,
    **info: Any,
) -> None:
    """Add a stage's wall time to ``stages.json`` (a resumed stage adds up its parts).

    Sharded stages call this after every shard (``new_run`` only for an invocation's first), so
    the time and the ``add`` counts of finished shards survive a killed run.
    """
    path = root / "stages.json"
    stages = json.loads(path.read_text()) if path.is_file() else {}
    entry = stages.get(stage, {"seconds": 0.0, "runs": 0})
    entry["seconds"] = entry["seconds"] + seconds
    entry["runs"] = entry["runs"] + int(new_run)
    for key, n in (add or {}).items():
        entry[key] = entry.get(key, 0) + n
    entry.update(info, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    stages[stage] = entry
    atomic_write_text(path, json.dumps(stages, indent=1))


def qconfig(cfg: TrainConfig) -> QConfig:
    m = cfg.model
    return QConfig(
        mode=m.mode,
        alpha=m.alpha,
        gamma=m.gamma,
        r_max=m.r_max,
        head_hidden=m.head_hidden,
        lora_r=m.lora_r,
        lora_alpha=m.lora_alpha,
        lora_dropout=m.lora_dropout,
        base_model=m.name,
    )


def prompt_settings(cfg: TrainConfig) -> PromptSettings:
    """How this run makes prompts and programs; every checkpoint records it, so that solve,
    eval, the TUI and the LSP prompt and cut completions as training did."""
    d = cfg.data
    return PromptSettings(d.prompt_family, d.max_source_tokens, d.max_target_tokens)


def load_base(cfg: TrainConfig, device: Any, trainable_lm: bool = False):
    """(base model, tokenizer, info) on ``device``; float32 weights when an LM copy trains."""
    from bcoder.models.loading import load_model_and_tokenizer

    dtype = None if cfg.model.dtype == "auto" else cfg.model.dtype
    if trainable_lm and cfg.model.mode == "full" and dtype is None:
        dtype = "float32"  # AdamW on the full LM keeps float32 master weights
    base, tokenizer, info = load_model_and_tokenizer(
        cfg.model.name, dtype=dtype, device=str(device), allow_download=True
    )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return base, tokenizer, info


def stage_columns(mode: str, stage: str) -> list[str]:
    """The featurize columns a stage's batches need."""
    if mode == "lmhead" and stage == "theta":  # the adapter's candidates: see bcoder.qmodel.adapter
        return ["hidden", "ckpt_adv", "ckpt_argmax", "u_phi", *TOPK_COLUMNS]
    if mode in FROZEN_BACKBONE:
        return ["hidden", "ckpt_adv"] + (["ckpt_argmax", "u_phi"] if stage == "theta" else [])
    return ["ckpt_adv"] if stage == "phi" else ["ckpt_adv", "ckpt_argmax", "u_phi"]


def split_rows(cfg: TrainConfig, data: TrainingData) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of (training, held-out) programs; held-out problems by a hash of their id."""
    held = heldout_problems(list(data.problem_id), cfg.data.heldout_frac, cfg.run.seed)
    return data.split(held)


def initial_value(cfg: TrainConfig, data: TrainingData, rows: np.ndarray) -> float:
    """Where the phi head starts: ``phi.init_value``, else the mean terminal reward of the
    training batches (ground truths weighted rho_real), kept below R_max.

    The head must start off u = 0: softabs'(0) = 0, so a head at zero gets no gradient at all.
    Starting at the data's mean return also puts it at the constant with the least initial TD
    error, so the first steps learn what depends on the state instead of an offset.
    """
    r_max = cfg.model.r_max
    if cfg.phi.init_value is not None:
        if cfg.phi.init_value >= r_max:
            raise BcoderError(f"phi.init_value must be below r_max ({r_max})")
        return cfg.phi.init_value
    else:
        gt = data.is_ground_truth[rows]
        reward, count = data.reward[rows], data.count[rows].astype(float)
        gen_mean = float((reward[~gt] * count[~gt]).sum() / max(count[~gt].sum(), 1))
        gt_mean = float(reward[gt].mean()) if gt.any() else gen_mean
        rho = cfg.phi.rho_real if gt.any() and (~gt).any() else float(gt.any())
        value = rho * gt_mean + (1 - rho) * gen_mean
    return min(value, r_max - 0.05)


def saved_diagnostics(stage_dir: Path) -> dict[str, float]:
    """A finished stage's diagnostics.json ({} when it has none)."""
    path = stage_dir / "diagnostics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def check_stage_dir(stage_dir: Path, resume: bool) -> bool:
    """True when the stage is already finished. Refuses to overwrite a started stage."""
    if (stage_dir / "final" / "bcoder_config.json").is_file():
        if resume:
            return True
        raise BcoderError(
            f"{stage_dir} is already finished; pass --resume to skip it, or use a new run.dir"
        )
    started = (stage_dir / "checkpoints").is_dir() or (stage_dir / "metrics.jsonl").is_file()
    if started and not resume:
        raise BcoderError(f"{stage_dir} already started; pass --resume to continue it")
    return False


def enable_gradient_checkpointing(model: Any) -> None:
    """Recompute activations in backward for the trainable LM(s) (lora / full)."""
    lms = [model.lm] if model.config.mode == "lora" else [model.phi_lm, model.theta_lm]
    for lm in lms:
        if lm is None:
            continue
        kwargs = {"use_reentrant": False}
        if hasattr(lm, "activation_checkpointing_enable"):  # transformers >= 5
            lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


class StageClock:
    """The wall time of a sharded stage, added to ``stages.json`` shard by shard (see record_time)."""

    def __init__(self, root: Path, stage: str):
        self.root, self.stage = root, stage
        self.mark = time.perf_counter()
        self.first = True

    def lap(self, add: dict[str, int]) -> None:
        now = time.perf_counter()
        record_time(self.root, self.stage, now - self.mark, new_run=self.first, add=add)
        self.mark, self.first = now, False
