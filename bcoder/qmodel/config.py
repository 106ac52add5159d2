"""A Q-model's configuration and a checkpoint's metadata (``bcoder_config.json``), torch-free.

What a checkpoint directory says about itself is read here, so that settings, rankers and the
CLI can look at a checkpoint without importing torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from bcoder.core.errors import BcoderError
from bcoder.core.settings import OLD_POLICY_NAMES, POLICIES, is_no_heads
from bcoder.problems.prompts import PromptSettings

Mode = Literal["full", "lora", "head", "lmhead"]


MODES = ("full", "lora", "head", "lmhead")


FROZEN_BACKBONE = ("head", "lmhead")  # modes that train on stored hidden states


Role = Literal["ckpt", "phi", "theta"]


CHECKPOINT_FORMAT = 1


@dataclass
class QConfig:
    """Hyper-parameters of the Q-model; saved with every checkpoint."""

    mode: Mode = "head"  # full | lora | head | lmhead (see the module docstring)
    alpha: float = 1.0  # energy temperature: A = alpha * (l - max l)
    gamma: float = 0.999  # discount
    r_max: float = 1.0  # bound on V and Q
    head_hidden: int = 0  # value-head width: 0 for a linear head, else one hidden layer
    lora_r: int = 16  # LoRA rank (lora mode; the LM-head adapter's rank in lmhead mode)
    lora_alpha: int = 32  # LoRA scaling numerator (lora and lmhead modes)
    lora_dropout: float = 0.0  # LoRA dropout (lora mode)
    lora_target_modules: list[str] | str = "all-linear"  # peft target modules (lora mode)
    base_model: str = ""  # the model source the base was loaded from (informational)
    base_fingerprint: str = ""  # identity of the base weights, checked when loading

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BcoderError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.alpha <= 0:
            raise BcoderError(f"alpha must be positive, not {self.alpha}")
        if not 0 < self.gamma <= 1:
            raise BcoderError(f"gamma must be in (0, 1], not {self.gamma}")
        if self.head_hidden < 0 or self.lora_r <= 0:
            raise BcoderError("head_hidden must be >= 0 and lora_r > 0")

    @classmethod
    def from_dict(cls, d: dict) -> QConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def read_checkpoint_config(directory: str | Path) -> dict:
    """The JSON metadata of a checkpoint directory, with a clear error if it is not one."""
    path = Path(directory) / "bcoder_config.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise BcoderError(f"{directory}: not a bcoder checkpoint (no bcoder_config.json)") from None
    except json.JSONDecodeError as err:
        raise BcoderError(f"{path}: corrupt checkpoint config ({err})") from None
    if meta.get("format") != CHECKPOINT_FORMAT or "config" not in meta:
        raise BcoderError(f"{path}: unsupported checkpoint format {meta.get('format')!r}")
    return meta


def checkpoint_policy(checkpoint: str | Path | None) -> str:
    """The policy a checkpoint's validation chose to sample from: its ``"policy"`` field
    (``train select`` writes it in lmhead mode), else ``trained``, softmax(l_theta).

    ``base`` means softmax(l_base): the frozen base LM's own policy, still scored (Q, V, A, r~)
    with the trained l_theta. ``select`` chooses it when the trained policy's held-out pass rate
    falls below the base policy's. No heads (``None``, ``"none"``) have no trained policy.
    Checkpoints written before the name ``base`` say ``checkpoint``: read as ``base``.
    """
    if checkpoint is None or is_no_heads(checkpoint):
        return "trained"
    stored = read_checkpoint_config(checkpoint).get("policy", "trained")
    name = OLD_POLICY_NAMES.get(stored, stored)
    if name not in POLICIES:
        raise BcoderError(
            f"{checkpoint}: unknown policy {name!r} in bcoder_config.json "
            f"(known: {', '.join(POLICIES)})"
        )
    return name


def checkpoint_prompt_settings(checkpoint: str | Path | None) -> PromptSettings:
    """The prompt settings a checkpoint was trained with (defaults without a checkpoint)."""
    if not checkpoint:
        return PromptSettings()
    return PromptSettings.from_meta(read_checkpoint_config(checkpoint))
