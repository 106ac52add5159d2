"""The optimisation loop both stages share: setup -> step -> log -> evaluate -> checkpoint.

One recipe for one CPU, one GPU and ``accelerate launch`` (DDP; FSDP / DeepSpeed through an
accelerate config): the stage's objective module is prepared by accelerate, every process reads
its own slice of each global micro-batch from the stateless :class:`MixedSampler`, gradients are
accumulated locally (``no_sync``) and synchronised on the last micro-batch.

A stage directory holds::

    checkpoints/step-NNNNNNNN/   model/ (BCoderModel checkpoint) + trainer.pt (optimizer,
                                 scheduler, step, best, every process's RNG states)
    best/                        the model with the lowest held-out TD error so far
    final/                       the model at the last step (the stage is done when it exists)
    metrics.jsonl                one JSON object per log / eval line, namespaced keys
    diagnostics.json             the end-of-stage diagnostics
    tb/                          TensorBoard events (run.tensorboard)

Resuming restores the weights (by the caller, from ``model/``), the optimizer and scheduler, the
step and the RNG states; the data order is a function of the step, so on CPU a resumed run ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_dir, atomic_write_text
from bcoder.core.types import Progress
from bcoder.qmodel.model import BCoderModel
from bcoder.train.config import StageConfig
from bcoder.train.data import MixedSampler, TrainingData

EventFn = Callable[[Any], None]
_STEP_DIR = re.compile(r"step-(\d+)$")


@dataclass
class Metrics:
    """A metrics line, as an event for the CLI (the same dict goes to metrics.jsonl)."""

    stage: str
    step: int
    values: dict[str, float]
    kind: str = "train"  # train | eval


@dataclass
class StageRun:
    """Everything the loop needs about a stage; built by bcoder.train.phi / bcoder.train.theta."""

    name: str  # phi | theta
    cfg: StageConfig
    model: BCoderModel  # the unwrapped model (what checkpoints save)
    objective: nn.Module  # forward(batch) -> (loss, stats)
    params: list[nn.Parameter]  # what the optimizer updates
    columns: list[str]  # featurize columns the batches need
    evaluate: Callable[[], dict[str, float]]  # held-out diagnostics, on the main process
    extra: dict[str, Any] = field(default_factory=dict)  # saved with every checkpoint


def latest_checkpoint(stage_dir: Path) -> Path | None:
    """The newest complete step checkpoint of a stage, or None."""
    steps = []
    for p in (stage_dir / "checkpoints").glob("step-*"):
        m = _STEP_DIR.search(p.name)
        if m and (p / "trainer.pt").is_file():
            steps.append((int(m.group(1)), p))
    return max(steps)[1] if steps else None


def _rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _schedule(cfg: StageConfig) -> Callable[[int], float]:
    if cfg.schedule == "linear":  # linear decay to 0 over the run, no warm-up (Appendix H)
        return lambda step: max(0.0, 1.0 - step / max(1, cfg.steps))
    return lambda step: 1.0


class MetricsLog:
    """metrics.jsonl (+ TensorBoard); on resume the lines after the resumed step are dropped."""

    def __init__(self, stage_dir: Path, tensorboard: bool, resume_step: int | None):
        self.path = stage_dir / "metrics.jsonl"
        if resume_step is not None and self.path.exists():
            kept = []
            for line in self.path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    if json.loads(line).get("step", 0) <= resume_step:
                        kept.append(line)
            atomic_write_text(self.path, "".join(k + "\n" for k in kept))
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise BcoderError(
                    "run.tensorboard needs TensorBoard: pip install 'bcoder[tensorboard]'"
                ) from None
            self.tb = SummaryWriter(str(stage_dir / "tb"))

    def write(self, line: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(line) + "\n")
        if self.tb is not None:
            for k, v in line.items():
                if isinstance(v, (int, float)) and k not in ("step", "time"):
                    self.tb.add_scalar(k, v, line["step"])
            self.tb.flush()


def train_stage(
    run: StageRun,
    data: TrainingData,
    sampler: MixedSampler,
    accelerator: Any,
    stage_dir: Path,
    pad_id: int,
    *,
    resume_from: Path | None = None,
    tensorboard: bool = False,
    on_event: EventFn | None = None,
) -> dict[str, Any]:
    """Run the stage's remaining steps; return the final diagnostics (main process) or {}."""
    emit = on_event or (lambda _e: None)
    cfg, main = run.cfg, accelerator.is_main_process
    optimizer = torch.optim.AdamW(run.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg))
    objective, optimizer = accelerator.prepare(run.objective, optimizer)
    start, best = 0, float("inf")
    if resume_from is not None:
        state = torch.load(resume_from / "trainer.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, best = int(state["step"]), float(state["best"])
        rngs = state["rng"]
        _set_rng_state(rngs[accelerator.process_index % len(rngs)])
    log = MetricsLog(stage_dir, tensorboard, start if resume_from else None) if main else None
    device, world, rank = accelerator.device, accelerator.num_processes, accelerator.process_index

    def evaluate_and_keep_best(step: int) -> dict[str, float]:
        values: dict[str, float] = {}
        nonlocal best
        if main:
            run.model.eval()
            with accelerator.autocast():  # the same precision as the training forward
                values = run.evaluate()
            _log(log, emit, run.name, step, values, "eval")
            td = values.get("heldout/td")
            if td is not None and td < best:
                best = td
                run.model.save_checkpoint(stage_dir / "best", extra=_extra(run, step))
        accelerator.wait_for_everyone()
        return values

    t_last, tokens, sums, n_steps = time.perf_counter(), 0.0, {}, 0
    for step in range(start, cfg.steps):
        objective.train()
        for micro in range(cfg.grad_accum):
            rows = sampler.rows(step * cfg.grad_accum + micro, rank, world)
            batch = {k: v.to(device) for k, v in data.collate(rows, pad_id, run.columns).items()}
            last = micro == cfg.grad_accum - 1
            with contextlib.nullcontext() if last else accelerator.no_sync(objective):
                loss, stats = objective(batch)
                accelerator.backward(loss / cfg.grad_accum)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float() / cfg.grad_accum
            tokens += float(batch["action_mask"].sum())
        if cfg.max_grad_norm:
            norm = accelerator.clip_grad_norm_(run.params, cfg.max_grad_norm)
            sums["grad/norm"] = sums.get("grad/norm", 0.0) + torch.as_tensor(norm).float().cpu()
        lr = scheduler.get_last_lr()[0]  # the rate this step used
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done, n_steps = step + 1, n_steps + 1
        emit(Progress(run.name, done, cfg.steps, f"loss/td {float(stats['loss/td']):.4f}"))
        if done % cfg.log_every == 0 or done == cfg.steps:
            keys = sorted(sums)
            vec = torch.stack([torch.as_tensor(sums[k]).to(device) for k in keys])
            vec = accelerator.reduce(vec, "mean")
            tok = accelerator.reduce(torch.tensor([tokens], device=device), "sum")
            dt = time.perf_counter() - t_last
            values = {k: float(v) / n_steps for k, v in zip(keys, vec.tolist(), strict=True)}
            values["perf/tokens_per_s"] = float(tok) / max(dt, 1e-9)
            values["perf/step_s"] = dt / n_steps
            values["lr"] = lr
            if main:
                _log(log, emit, run.name, done, values, "train")
            t_last, tokens, sums, n_steps = time.perf_counter(), 0.0, {}, 0
        paused = time.perf_counter()
        if cfg.eval_every and done % cfg.eval_every == 0 and done != cfg.steps:
            evaluate_and_keep_best(done)
        if done % cfg.save_every == 0 and done != cfg.steps:
            _save(run, accelerator, stage_dir, done, optimizer, scheduler, best)
        t_last += time.perf_counter() - paused  # perf/* measure training steps only
    final = evaluate_and_keep_best(cfg.steps)
    agree = _processes_agree(run, accelerator, stage_dir)
    if main:
        final["processes/weights_agree"] = float(agree)
        run.model.save_checkpoint(stage_dir / "final", extra=_extra(run, cfg.steps))
    accelerator.wait_for_everyone()
    return final


def weights_digest(params: list[nn.Parameter]) -> str:
    """A hash of the trained weights' exact bytes."""
    import hashlib

    h = hashlib.sha1()
    for p in params:
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _processes_agree(run: StageRun, accelerator: Any, stage_dir: Path) -> bool:
    """Whether every process ended with the same trained weights (a DDP desync shows here);
    written to ``processes.json``."""
    from accelerate.utils import gather_object

    digests = gather_object([weights_digest(run.params)])
    agree = len(set(digests)) == 1
    if accelerator.is_main_process:
        info = {"world": accelerator.num_processes, "weights_sha1": digests, "agree": agree}
        atomic_write_text(stage_dir / "processes.json", json.dumps(info, indent=1))
    return agree


def _extra(run: StageRun, step: int) -> dict[str, Any]:
    return {"stage": run.name, "step": step, **run.extra}


def _log(log: MetricsLog | None, emit: EventFn, stage: str, step: int, values: dict, kind: str):
    line = {"stage": stage, "step": step, "kind": kind, "time": time.time(), **values}
    if log is not None:
        log.write(line)
    emit(Metrics(stage, step, values, kind))


def _save(
    run: StageRun,
    accelerator: Any,
    stage_dir: Path,
    step: int,
    optimizer: Any,
    scheduler: Any,
    best: float,
) -> None:
    """A step checkpoint: the model, optimizer, scheduler and all processes' RNG states."""
    from accelerate.utils import gather_object

    rngs = gather_object([_rng_state()])  # one per process, in rank order
    if accelerator.is_main_process:
        target = stage_dir / "checkpoints" / f"step-{step:08d}"
        with atomic_dir(target) as tmp:
            run.model.save_checkpoint(tmp / "model", extra=_extra(run, step))
            state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": step,
                "best": best,
                "rng": rngs,
            }
            torch.save(state, tmp / "trainer.pt")
        kept = sorted((stage_dir / "checkpoints").glob("step-*"))
        for old in kept[: -run.cfg.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
