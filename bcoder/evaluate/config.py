"""The configuration of an eval run, validated on construction, and the run's identity."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.evaluate.records import CONFIG

# Fields that change the samples or their scores: a resumed run must agree on all of them.
IDENTITY_FIELDS = (
    "dataset",
    "split",
    "samples",
    "model",
    "checkpoint",
    "temperature",
    "top_p",
    "max_new_tokens",
    "seed",
    "rank_only",
    "timeout",
)
DEFAULT_KS = (1, 5)  # pass@k reported when --k is not given (each k <= M)


@dataclass
class EvalSettings:
    """What ``bcoder eval`` does; one documented field per knob."""

    dataset: str  # apps | mbpp | humaneval | a problems file or folder
    split: str | None = "test"  # train | validation | test | prompt | None (every split)
    limit: int | None = None  # the first N problems of the selection
    ids: list[str] | None = None  # only these problem ids (dataset ids or Problem.id)
    samples: int = 8  # M: candidates sampled per problem
    ks: list[int] | None = None  # pass@k for these k (None: those of DEFAULT_KS that fit M)
    model: str = "qwen2.5-coder-1.5b"  # a preset, hub id, local dir or GGUF file
    checkpoint: str | None = None  # trained heads / adapter (None: the shipped one; "none")
    temperature: float = 0.6  # sampling temperature (the paper's ranking setting)
    top_p: float = 0.95
    max_new_tokens: int | None = None  # None: the checkpoint's target length, else 512
    seed: int = 0  # sampling seed (per problem: seed + problem index), and the bootstrap's
    batch_size: int = 8  # rows decoded together
    timeout: float = 4.0  # seconds per test run in the sandbox
    workers: int | None = None  # sandbox workers (None: the executor's default)
    rank_only: str | None = None  # jsonl of (problem id, code) from another model: score + rank
    bootstrap: int = 1000  # bootstrap resamples for the confidence intervals
    dtype: str | None = None  # torch dtype (transformers; None: what the hardware runs fast)
    device: str | None = None  # torch device (transformers; None: cuda if any)
    backend: str = "auto"  # auto | transformers | llama.cpp (see bcoder.backends)
    threads: int = 0  # CPU threads of this process (0: the idle cores); not part of the run
    policy: str | None = None  # trained | checkpoint (None: the checkpoint's; SolveSettings)

    def __post_init__(self) -> None:
        from bcoder.qmodel.shipped import resolve_checkpoint

        self.checkpoint = resolve_checkpoint(self.model, self.checkpoint)
        if self.max_new_tokens is None:  # as the checkpoint was trained (recorded in the run)
            from bcoder.qmodel.config import checkpoint_prompt_settings

            self.max_new_tokens = checkpoint_prompt_settings(self.checkpoint).max_target_tokens
        if self.samples < 1 and self.rank_only is None:
            raise BcoderError(f"--samples must be at least 1 (got {self.samples})")
        if self.ks is None:  # the defaults that fit M: -M 1 alone is a valid run
            self.ks = [k for k in DEFAULT_KS if self.rank_only or k <= self.samples]
        if not self.ks or any(k < 1 for k in self.ks):
            raise BcoderError(f"--k must list positive integers (got {self.ks})")
        self.ks = sorted(set(self.ks))
        if self.rank_only is None and max(self.ks) > self.samples:
            raise BcoderError(
                f"--k {max(self.ks)} is larger than --samples {self.samples}: pass@k needs k <= M"
            )
        if self.limit is not None and self.limit < 1:
            raise BcoderError(f"--limit must be at least 1 (got {self.limit})")
        if self.limit is not None and self.ids:
            raise BcoderError("give --limit or --ids, not both")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise BcoderError("need --temperature >= 0 and 0 < top-p <= 1")
        if self.max_new_tokens < 1 or self.batch_size < 1 or self.bootstrap < 1:
            raise BcoderError("max_new_tokens, batch_size and bootstrap must be positive")
        from bcoder.qmodel.config import POLICIES

        if self.policy is not None and self.policy not in POLICIES:
            raise BcoderError(
                f"--policy must be one of {', '.join(POLICIES)} (got {self.policy!r})"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_run(cls, run_dir: Path) -> EvalSettings:
        """The settings a run directory was started with (to go on with ``--resume`` alone)."""
        try:
            stored = json.loads((run_dir / CONFIG).read_text())["settings"]
        except (OSError, ValueError, KeyError, TypeError):
            raise BcoderError(
                f"{run_dir}: no eval run to resume there; give --dataset to start one"
            ) from None
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in stored.items() if k in names}
        kept["checkpoint"] = kept.get("checkpoint") or "none"  # as run: not the shipped one
        return cls(**kept)

    def identity(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in IDENTITY_FIELDS}


def parse_ks(text: str) -> list[int]:
    """'1,5,10' -> [1, 5, 10]."""
    try:
        ks = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise BcoderError(
            f"--k: expected comma-separated integers like 1,5,10 (got {text!r})"
        ) from None
    if not ks:
        raise BcoderError("--k: give at least one k")
    return ks


def parse_shard(text: str | None) -> tuple[int, int]:
    """'0/2' -> (0, 2); None -> (0, 1)."""
    if not text:
        return (0, 1)
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise BcoderError(f"--shard: expected i/n like 0/2 (got {text!r})") from None
    if n < 1 or not 0 <= i < n:
        raise BcoderError(f"--shard {text}: need 0 <= i < n")
    return (i, n)
