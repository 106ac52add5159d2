"""The stages as one recipe: collect -> featurize -> phi -> theta (``bcoder train all``).

Each function is one stage, resumable on its own: collect and featurize skip finished shards,
phi and theta continue from their last checkpoint with ``resume`` (and refuse to overwrite a
started stage without it). Every call writes the resolved config into the run directory and adds
its wall time to ``stages.json``. Progress and metrics reach the caller through ``on_event``
(:class:`bcoder.core.types.Progress`, :class:`bcoder.train.loop.Metrics`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from bcoder.qmodel.config import FROZEN_BACKBONE, QConfig
from bcoder.qmodel.model import BCoderModel
from bcoder.train import phi, select, setup, theta
from bcoder.train.collect import collect
from bcoder.train.config import TrainConfig
from bcoder.train.featurize import featurize
from bcoder.train.offpolicy import import_programs

EventFn = Callable[[Any], None]
STAGES = ("collect", "featurize", "phi", "theta")


def _checkpoint_policy(cfg: TrainConfig, device: Any) -> tuple[BCoderModel, Any]:
    """The checkpoint policy as a head-mode Q-model (no adapters or copies are needed to
    sample from or featurize with the checkpoint, whatever the training mode)."""
    base, tokenizer, _ = setup.load_base(cfg, device)
    qmodel = BCoderModel(
        base, QConfig(mode="head", alpha=cfg.model.alpha, base_model=cfg.model.name)
    )
    return qmodel.to(device).eval(), tokenizer


def stage_backend(cfg: TrainConfig, stage: str, device: Any) -> str:
    """The backend collect or featurize runs on: ``model.backend``, where ``auto`` means
    llama.cpp for a GGUF model on a CPU. Featurize uses llama.cpp in the frozen-backbone modes
    (head, lmhead) only: lora and full mode train the transformers LM, whose logits the stored
    features must match."""
    from bcoder.backends import choose_backend
    from bcoder.models.sources import resolve_source

    if stage == "featurize" and cfg.model.mode not in FROZEN_BACKBONE:
        return "transformers"
    src = resolve_source(cfg.model.name)
    cuda = str(device).startswith("cuda")
    return choose_backend(cfg.model.backend, "gguf" if src.is_gguf else src.kind, cuda=cuda)


def _checkpoint_backend(cfg: TrainConfig, stage: str, device: Any) -> tuple[Any, Any]:
    """The checkpoint policy on the stage's backend, and its tokenizer."""
    if stage_backend(cfg, stage, device) == "llama.cpp":
        from bcoder.core.settings import NO_HEADS
        from bcoder.pipeline.engine import Engine

        engine = Engine.load(cfg.model.name, NO_HEADS, backend="llama.cpp", threads=cfg.run.threads)
        return engine.backend, engine.tokenizer
    return _checkpoint_policy(cfg, device)


def _on_checkpoint_policy(
    cfg: TrainConfig, accelerator: Any, stage: Callable[..., Any], name: str
) -> dict[str, Any]:
    """Collect and featurize alike: write the config, load the checkpoint policy (on the stage's
    backend), run ``stage(root, policy, tokenizer, rank=, world=)`` on this process's shards,
    wait for the other processes; returns the stage's summary as a dict."""
    root = setup.write_config(cfg, accelerator.is_main_process)
    qmodel, tokenizer = _checkpoint_backend(cfg, name, accelerator.device)
    rank, world = accelerator.process_index, accelerator.num_processes
    summary = stage(root, qmodel, tokenizer, rank=rank, world=world)
    accelerator.wait_for_everyone()
    return asdict(summary)


def run_collect(
    cfg: TrainConfig, accelerator: Any, *, on_event: EventFn | None = None
) -> dict[str, Any]:
    """Sample and execute programs for every configured problem; returns the summary."""
    stage = partial(collect, cfg, on_event=on_event)
    return _on_checkpoint_policy(cfg, accelerator, stage, "collect")


def run_import(
    cfg: TrainConfig, path: str | Path, accelerator: Any, *, on_event: EventFn | None = None
) -> dict[str, Any]:
    """Import off-policy programs from a jsonl (main process only; others wait)."""
    root = setup.write_config(cfg, accelerator.is_main_process)
    summary: dict[str, Any] = {}
    if accelerator.is_main_process:
        _, tokenizer, info = setup.load_base(cfg, "cpu")
        result = import_programs(
            cfg, root, path, tokenizer, is_seq2seq=info["is_seq2seq"], on_event=on_event
        )
        setup.record_time(root, "import", result.seconds, programs=result.programs)
        summary = asdict(result)
    accelerator.wait_for_everyone()
    return summary


def run_featurize(
    cfg: TrainConfig, accelerator: Any, *, on_event: EventFn | None = None
) -> dict[str, Any]:
    """Compute the frozen per-token features of every collected shard not done yet."""

    def stage(root: Path, qmodel: BCoderModel, tokenizer: Any, **shard: int) -> Any:
        return featurize(cfg, root, qmodel, int(tokenizer.pad_token_id), on_event=on_event, **shard)

    return _on_checkpoint_policy(cfg, accelerator, stage, "featurize")


def run_phi(
    cfg: TrainConfig, accelerator: Any, *, resume: bool = False, on_event: EventFn | None = None
) -> dict[str, float]:
    setup.write_config(cfg, accelerator.is_main_process)
    return phi.run_phi(cfg, accelerator, resume=resume, on_event=on_event)


def run_theta(
    cfg: TrainConfig, accelerator: Any, *, resume: bool = False, on_event: EventFn | None = None
) -> dict[str, float]:
    setup.write_config(cfg, accelerator.is_main_process)
    return theta.run_theta(cfg, accelerator, resume=resume, on_event=on_event)


def run_select(
    cfg: TrainConfig, accelerator: Any, *, on_event: EventFn | None = None
) -> dict[str, Any]:
    """Choose the checkpoint's ranker on the held-out problems (main process; others wait)."""
    summary: dict[str, Any] = {}
    if accelerator.is_main_process:
        t0 = time.perf_counter()
        summary = select.run_select(cfg, on_event=on_event)
        setup.record_time(setup.run_dir(cfg), "select", time.perf_counter() - t0)
    accelerator.wait_for_everyone()
    return summary


def run_all(
    cfg: TrainConfig, accelerator: Any, *, resume: bool = False, on_event: EventFn | None = None
) -> dict[str, Any]:
    """collect -> featurize -> phi (unless theta.skip_phi) -> theta -> select (when problems are
    held out); returns each stage's result."""
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    results["collect"] = run_collect(cfg, accelerator, on_event=on_event)
    results["featurize"] = run_featurize(cfg, accelerator, on_event=on_event)
    if not cfg.theta.skip_phi:
        results["phi"] = run_phi(cfg, accelerator, resume=resume, on_event=on_event)
    results["theta"] = run_theta(cfg, accelerator, resume=resume, on_event=on_event)
    if cfg.data.heldout_frac > 0:
        results["select"] = run_select(cfg, accelerator, on_event=on_event)
    results["seconds"] = time.perf_counter() - t0
    return results
