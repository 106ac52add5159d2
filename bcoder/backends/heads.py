"""Value heads without their LM: V_theta from final hidden states that another runtime computed.

A head-mode checkpoint is small: three value heads (phi, and the theta residual h1 - h2) over the
final hidden state, plus its QConfig. The llama.cpp backend reads the hidden states from llama.cpp
and applies these heads in torch, with the same formula as ``BCoderModel.value_from_hidden``:

    V_theta(s) = R_max - softabs(u_phi(h) + h1(h) - h2(h))
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bcoder import rl
from bcoder.core.errors import BcoderError
from bcoder.qmodel.config import FROZEN_BACKBONE, QConfig, read_checkpoint_config
from bcoder.qmodel.heads import ValueHead

HEAD_NAMES = ("phi_head", "residual_head", "residual_frozen")


class ValueHeads(nn.Module):
    """phi_head, residual_head (h1) and residual_frozen (h2), as in BCoderModel."""

    def __init__(self, hidden_size: int, config: QConfig):
        super().__init__()
        self.config = config
        self.hidden_size = hidden_size
        for name in HEAD_NAMES:
            setattr(self, name, ValueHead(hidden_size, config.head_hidden))
        self.requires_grad_(False)

    @classmethod
    def from_checkpoint(cls, directory: str | Path, hidden_size: int) -> tuple[ValueHeads, dict]:
        """The heads of a checkpoint directory and its metadata; the checkpoint must be one whose
        policy is the base model (head mode) or the base model plus a logit adapter (lmhead mode,
        :func:`bcoder.qmodel.adapter.load_logit_adapter`), since only these are applied here."""
        from safetensors.torch import load_file

        meta = read_checkpoint_config(directory)
        config = QConfig.from_dict(meta["config"])
        if config.mode not in FROZEN_BACKBONE:
            raise BcoderError(
                f"checkpoint {directory} is a {config.mode}-mode checkpoint: its policy is not the "
                "base model, so it needs --backend transformers"
            )
        heads = load_file(str(Path(directory) / "heads.safetensors"))
        found = heads["phi_head.net.0.weight"].shape[-1]
        if found != hidden_size:
            raise BcoderError(
                f"checkpoint {directory} was trained on hidden states of size {found}, but the "
                f"loaded model's are {hidden_size}: load it with the base model it was trained on"
            )
        model = cls(hidden_size, config)
        for name in HEAD_NAMES:
            prefix = f"{name}."
            sd = {k[len(prefix) :]: v for k, v in heads.items() if k.startswith(prefix)}
            getattr(model, name).load_state_dict(sd)
        return model, meta

    def constant_value(self) -> float | None:
        """R_max when every head's output layer is zero (untrained heads: u = 0 in every state,
        so V = R_max - softabs(0) = R_max), else None."""
        last = [getattr(self, name).net[-1] for name in HEAD_NAMES]
        if all(not m.weight.any() and not m.bias.any() for m in last):
            return float(self.config.r_max)
        return None

    @torch.no_grad()
    def value(self, hidden: torch.Tensor) -> torch.Tensor:
        """V_theta(s). Shape: hidden (..., H) -> (...)."""
        u = self.phi_head(hidden) + self.residual_head(hidden) - self.residual_frozen(hidden)
        return rl.bounded_value(u, self.config.r_max)
