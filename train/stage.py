"""What the phi- and theta-stage share once their model and data are ready: freeze what the
stage does not train, evaluate before training, run the loop, record diagnostics and wall time."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bcoder.core.fs import atomic_write_text
from bcoder.qmodel.config import FROZEN_BACKBONE
from bcoder.train.config import StageConfig, TrainConfig
from bcoder.train.data import MixedSampler, ShardStore, TrainingData
from bcoder.train.diagnostics import diagnose
from bcoder.train.loop import StageRun, train_stage
from bcoder.train.objectives import set_trainable
from bcoder.train.setup import enable_gradient_checkpointing, prompt_settings, record_time, run_dir


def make_sampler(
    cfg: TrainConfig, stage: StageConfig, data: TrainingData, rows: np.ndarray, offset: int
) -> MixedSampler:
    """The stage's mini-batch sampler over the training rows (ground truths at rho_real)."""
    gt = data.is_ground_truth[rows]
    weights = data.count[rows[~gt]] if stage.weight_by_count else None
    return MixedSampler(
        rows[gt], rows[~gt], stage.batch_size, stage.rho_real, cfg.run.seed + offset, weights
    )


SAMPLER_OFFSETS = {"phi": 1, "theta": 2}  # each stage draws its own order of the same rows


def train_and_record(
    cfg: TrainConfig,
    stage: str,
    objective: Any,
    data: TrainingData,
    rows: tuple[np.ndarray, np.ndarray],
    columns: list[str],
    pad_id: int,
    accelerator: Any,
    stage_dir: Path,
    *,
    resume_from: Path | None,
    started: float,
    on_event: Callable[[Any], None] | None = None,
) -> dict[str, float]:
    """What the phi- and theta-stage do once their model and data are ready.

    Freeze all but what ``stage`` ("phi" | "theta") trains, evaluate on the held-out problems
    before training (``initial.json``, not again on resume), run the loop, then write
    ``diagnostics.json`` and add the wall time since ``started`` to ``stages.json``. ``rows`` is
    (training, held-out) from :func:`bcoder.train.setup.split_rows`. Returns the final
    diagnostics (main process).
    """
    model, stage_cfg = objective.model, getattr(cfg, stage)  # cfg.phi | cfg.theta
    train_rows, held_rows = rows
    params = set_trainable(model, stage)
    if cfg.model.gradient_checkpointing and cfg.model.mode not in FROZEN_BACKBONE:
        enable_gradient_checkpointing(model)
    device, main = accelerator.device, accelerator.is_main_process

    def evaluate() -> dict[str, float]:
        return diagnose(
            objective, data, held_rows, train_rows, columns, pad_id, device, stage_cfg.rho_real
        )

    # the backend the features came from: serving the checkpoint on the other one says so
    backend = ShardStore(run_dir(cfg) / "data" / "features").meta().get("backend")
    extra = {
        "train_config": cfg.to_dict(),
        "features_backend": backend or "transformers",
        "prompt": prompt_settings(cfg).to_dict(),
    }
    run = StageRun(stage, stage_cfg, model, objective, params, columns, evaluate, extra=extra)
    sampler = make_sampler(cfg, stage_cfg, data, train_rows, offset=SAMPLER_OFFSETS[stage])
    if main and resume_from is None:
        initial = evaluate()  # the figures before training, for comparison
        stage_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stage_dir / "initial.json", json.dumps(initial, indent=1))
    accelerator.wait_for_everyone()
    diagnostics = train_stage(
        run,
        data,
        sampler,
        accelerator,
        stage_dir,
        pad_id,
        resume_from=resume_from,
        tensorboard=cfg.run.tensorboard,
        on_event=on_event,
    )
    if main:
        atomic_write_text(stage_dir / "diagnostics.json", json.dumps(diagnostics, indent=1))
        seconds = time.perf_counter() - started
        record_time(run_dir(cfg), stage, seconds, steps=stage_cfg.steps)
    return diagnostics
