"""What the Q-model reads and returns: padded batches of prompt + action tokens, the per-token
outputs of one forward, and the KV-cache plumbing that differs between transformers releases."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn

from bcoder import rl


@dataclass
class ActionBatch:
    """Prompts (left-padded) and action tokens (right-padded) of B programs."""

    prompt_ids: torch.Tensor  # (B, P)
    prompt_mask: torch.Tensor  # (B, P)
    action_ids: torch.Tensor  # (B, T)
    action_mask: torch.Tensor  # (B, T)

    def to(self, device: torch.device | str) -> ActionBatch:
        return ActionBatch(*(getattr(self, f.name).to(device) for f in fields(self)))


def make_batch(
    prompts: list[list[int]], actions: list[list[int]], pad_id: int, device: str | None = None
) -> ActionBatch:
    """Pad token lists into an ActionBatch: prompts on the left, actions on the right."""
    if len(prompts) != len(actions):
        raise ValueError("prompts and actions must have the same length")
    P = max(1, *(len(p) for p in prompts))
    T = max(1, *(len(a) for a in actions))
    B = len(prompts)
    prompt_ids = torch.full((B, P), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((B, P), dtype=torch.long)
    action_ids = torch.full((B, T), pad_id, dtype=torch.long)
    action_mask = torch.zeros((B, T), dtype=torch.long)
    for i, (p, a) in enumerate(zip(prompts, actions, strict=True)):
        if p:
            prompt_ids[i, P - len(p) :] = torch.tensor(p)
            prompt_mask[i, P - len(p) :] = 1
        if a:
            action_ids[i, : len(a)] = torch.tensor(a)
            action_mask[i, : len(a)] = 1
    batch = ActionBatch(prompt_ids, prompt_mask, action_ids, action_mask)
    return batch.to(device) if device else batch


@dataclass
class QOutput:
    """Everything one forward yields, aligned to action tokens (B, T[, V])."""

    logits: torch.Tensor  # (B, T, V) logits of the policy at s_t
    advantage: torch.Tensor  # (B, T) A(s_t, a_t)
    value: torch.Tensor  # (B, T) V(s_t)
    q: torch.Tensor  # (B, T) Q(s_t, a_t)
    ckpt_argmax: torch.Tensor  # (B, T) the checkpoint's argmax action at s_t
    hidden: torch.Tensor  # (B, T, H) the hidden state the value head read
    mask: torch.Tensor  # (B, T) 1 on real action tokens
    u: torch.Tensor = field(default=None)  # (B, T) raw value-head output before the bound

    def q_all(self, alpha: float) -> torch.Tensor:
        """Q(s_t, .) over the whole vocabulary. Shape: (B, T, V)."""
        return rl.advantage(self.logits.float(), alpha) + self.value.unsqueeze(-1)


def cache_arg(lm: nn.Module, cache: object) -> dict[str, object]:
    """The KV cache as the forward wants it: transformers 5.x renamed ``past_key_values`` to
    ``cache`` (the old name warns); older releases know only the old one."""
    import inspect

    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm  # peft wraps forward
    name = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    return {name: cache}


def cache_of(out: object) -> object:
    """The KV cache a forward returned (``cache`` in transformers 5.x)."""
    return out.cache if hasattr(out, "cache") else out.past_key_values  # type: ignore[attr-defined]
