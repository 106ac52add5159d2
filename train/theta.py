"""The theta-stage (paper, sections 4.3-4.4 and Algorithm 1): fine-tune Q_theta, phi frozen.

setup   the phi-stage's model (or, with ``theta.skip_phi``, an untrained value head started
        where the phi-stage would start); the residual head h1 - h2 := 0, l_theta = l_ckpt,
        so Q_theta = Q_phi at initialisation
loop    L_ft = L_Q + beta_adv L_adv + beta_ce L_ce  (AdamW, peak lr 3e-5, linear decay, no
        warm-up, weight decay 0.05); u_phi and the target actions come from featurize, so a
        step is one forward/backward of the theta model
after   the final checkpoint is copied to ``<run>/checkpoint`` (``bcoder solve --checkpoint``)
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

import torch

from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_dir
from bcoder.qmodel.model import BCoderModel
from bcoder.train import setup
from bcoder.train.config import TrainConfig
from bcoder.train.data import TrainingData
from bcoder.train.featurize import ensure_values
from bcoder.train.loop import latest_checkpoint
from bcoder.train.objectives import ThetaObjective
from bcoder.train.phi import weights_tag
from bcoder.train.stage import train_and_record

EventFn = Callable[[Any], None]


def initial_model(cfg: TrainConfig, base: Any, data: TrainingData, train_rows: Any) -> BCoderModel:
    """The theta-stage's starting point: phi/final, or an untrained head with ``skip_phi``."""
    root = setup.run_dir(cfg)
    if cfg.theta.skip_phi:
        model = BCoderModel(base, setup.qconfig(cfg))
        model.phi_head.start_at(setup.initial_value(cfg, data, train_rows), cfg.model.r_max)
    else:
        phi_final = root / "phi" / "final"
        if not (phi_final / "bcoder_config.json").is_file():
            raise BcoderError(
                f"{phi_final}: no phi-stage result; run `bcoder train phi` first "
                "(or theta with --skip-phi for the ablation)"
            )
        model = BCoderModel.from_checkpoint(phi_final, base)
    model.sync_residual()  # h2 := h1, so V_theta = V_phi
    return model


def stage_name(cfg: TrainConfig) -> str:
    """``theta``, or ``theta-optimality`` / ``theta-skip-phi`` for the ablations, so that they
    run beside the default in the same run directory, on the same data."""
    name = "theta"
    if cfg.theta.operator != "conservative":
        name += f"-{cfg.theta.operator}"
    if cfg.theta.skip_phi:
        name += "-skip-phi"
    return name


def phi_tag(cfg: TrainConfig, model: BCoderModel) -> str:
    """What u_phi must have been computed with: phi/final's weights, or the untrained head."""
    if cfg.theta.skip_phi:
        bias = float(model.phi_head.net[-1].bias)
        return f"untrained:{cfg.model.mode}:{bias:.9g}"
    return weights_tag(setup.run_dir(cfg) / "phi" / "final")


def run_theta(
    cfg: TrainConfig, accelerator: Any, *, resume: bool = False, on_event: EventFn | None = None
) -> dict[str, float]:
    """Fine-tune Q_theta; write theta/final, theta/diagnostics.json and <run>/checkpoint
    (ablations: theta-optimality/, theta-skip-phi/ and checkpoint-*)."""
    t0 = time.perf_counter()
    root = setup.run_dir(cfg)
    stage_dir = root / stage_name(cfg)
    if setup.check_stage_dir(stage_dir, resume):
        _export(root, stage_dir, accelerator)
        return setup.saved_diagnostics(stage_dir)
    device = accelerator.device
    columns = setup.stage_columns(cfg.model.mode, "theta")
    pre = [c for c in columns if c != "u_phi"]
    data = TrainingData.load(root / "data", need=pre)
    base, tokenizer, _ = setup.load_base(cfg, device, trainable_lm=True)
    pad_id = int(tokenizer.pad_token_id)
    train_rows, held_rows = setup.split_rows(cfg, data)
    torch.manual_seed(cfg.run.seed)
    ckpt = latest_checkpoint(stage_dir) if resume else None
    if ckpt is not None:  # phi is frozen in this stage: the checkpoint's phi is phi/final's
        model = BCoderModel.from_checkpoint(ckpt / "model", base).to(device)
    else:
        model = initial_model(cfg, base, data, train_rows).to(device)
    ensure_values(
        cfg,
        root,
        model,
        phi_tag(cfg, model),
        pad_id,
        data=data,
        rank=accelerator.process_index,
        world=accelerator.num_processes,
        barrier=accelerator.wait_for_everyone,
        on_event=on_event,
    )
    data = TrainingData.load(root / "data", need=columns)
    t = cfg.theta
    diagnostics = train_and_record(
        cfg,
        "theta",
        ThetaObjective(model, t.beta_adv, t.beta_ce, t.operator, t.imitate),
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
    _export(root, stage_dir, accelerator)
    return diagnostics


def _export(root: Any, stage_dir: Any, accelerator: Any) -> None:
    """Copy theta/final to <run>/checkpoint (an ablation's to <run>/checkpoint-<ablation>)."""
    if accelerator.is_main_process:
        target = root / stage_dir.name.replace("theta", "checkpoint", 1)
        with atomic_dir(target) as tmp:
            shutil.copytree(stage_dir / "final", tmp, dirs_exist_ok=True)
    accelerator.wait_for_everyone()
