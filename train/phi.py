"""The phi-stage (paper, section 4.2 and Algorithm 1): pre-train V_phi with A_ckpt frozen.

setup   base + Q-model (mode from the config); phi head started at the data's mean return
loop    L_V = mean_seq (1/T) sum_t (r_t + gamma SG(V_phi(s_{t+1})) - A_ckpt(s_t,a_t) - V_phi(s_t))^2
        AdamW, constant lr 1e-5, weight decay 0.05 (the paper's defaults)
after   u_phi(s_t) for every program (data/values), which the theta-stage reads frozen
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bcoder.qmodel.model import BCoderModel
from bcoder.train import setup
from bcoder.train.config import TrainConfig
from bcoder.train.data import TrainingData
from bcoder.train.featurize import ensure_values, values_fresh
from bcoder.train.loop import latest_checkpoint
from bcoder.train.objectives import PhiObjective
from bcoder.train.stage import train_and_record

EventFn = Callable[[Any], None]


def weights_tag(checkpoint: Path) -> str:
    """An identity of the phi weights in a checkpoint (what data/values was computed with)."""
    h = hashlib.sha1()
    for name in ("heads.safetensors", "adapter_phi.safetensors", "phi_lm.safetensors"):
        path = checkpoint / name
        if path.is_file():
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def run_phi(
    cfg: TrainConfig, accelerator: Any, *, resume: bool = False, on_event: EventFn | None = None
) -> dict[str, float]:
    """Train V_phi; write phi/final, phi/diagnostics.json and data/values. Returns diagnostics."""
    t0 = time.perf_counter()
    root = setup.run_dir(cfg)
    stage_dir = root / "phi"
    if setup.check_stage_dir(stage_dir, resume):
        return _finish_values(cfg, accelerator, stage_dir, None, None, on_event)
    device = accelerator.device
    columns = setup.stage_columns(cfg.model.mode, "phi")
    data = TrainingData.load(root / "data", need=columns)
    base, tokenizer, _ = setup.load_base(cfg, device, trainable_lm=True)
    train_rows, held_rows = setup.split_rows(cfg, data)
    ckpt = latest_checkpoint(stage_dir) if resume else None
    torch.manual_seed(cfg.run.seed)
    if ckpt is not None:
        model = BCoderModel.from_checkpoint(ckpt / "model", base)
    else:
        model = BCoderModel(base, setup.qconfig(cfg))
        model.phi_head.start_at(setup.initial_value(cfg, data, train_rows), cfg.model.r_max)
    model.to(device)
    pad_id = int(tokenizer.pad_token_id)
    train_and_record(
        cfg,
        "phi",
        PhiObjective(model),
        data,
        (train_rows, held_rows),
        columns,
        pad_id,
        accelerator,
        stage_dir,
        resume_from=ckpt,
        started=t0,
        on_event=on_event,
    )
    return _finish_values(cfg, accelerator, stage_dir, model, data, on_event, pad_id)


def _finish_values(
    cfg: TrainConfig,
    accelerator: Any,
    stage_dir: Path,
    model: BCoderModel | None,
    data: TrainingData | None,
    on_event: EventFn | None,
    pad_id: int | None = None,
) -> dict[str, float]:
    """Make sure data/values holds u_phi of phi/final; return the saved diagnostics."""
    root = setup.run_dir(cfg)
    t0 = time.perf_counter()
    diagnostics = setup.saved_diagnostics(stage_dir)
    tag = weights_tag(stage_dir / "final")
    if values_fresh(root, tag):
        return diagnostics
    if model is None:
        base, tokenizer, _ = setup.load_base(cfg, accelerator.device)
        model = BCoderModel.from_checkpoint(stage_dir / "final", base).to(accelerator.device)
        pad_id = int(tokenizer.pad_token_id)
    computed = ensure_values(
        cfg,
        root,
        model,
        tag,
        int(pad_id),
        data=data,
        rank=accelerator.process_index,
        world=accelerator.num_processes,
        barrier=accelerator.wait_for_everyone,
        on_event=on_event,
    )
    if computed and accelerator.is_main_process:
        setup.record_time(root, "values", time.perf_counter() - t0)
    return diagnostics
