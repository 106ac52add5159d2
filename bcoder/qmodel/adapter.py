"""The lmhead mode's policy: a low-rank adapter on the LM head, l_theta(s) = l_ckpt(s) + B A h(s).

Why (DESIGN section 2, "Why head mode alone cannot rank"): R~ telescopes to sum_t A(s_t, a_t) plus
terms that barely depend on the candidate, so only a theta whose logits move can reorder
candidates. Training the LM head from the final hidden states h(s) that featurize stores keeps
the backbone frozen (no LM pass per step, as in head mode), while A_theta, max_b l_theta and the
policy softmax(l_theta) all learn. A is (r, H), B is (V, r) and starts at zero, so l_theta = l_ckpt
and Q_theta = Q_phi at initialisation.

Sampling and teacher-forced scoring add the adapter's residual to the full logits at every step
(:meth:`LogitAdapter.apply`, which takes torch tensors or numpy arrays, so that any inference
backend that yields logits and final hidden states can use it). Training never forms the (V,)
logits: per action token featurize stores the checkpoint's top-k logits and ids, its logit of the
taken action and the log-mass of the rest of the vocabulary, and the step evaluates the adapter
only on that candidate set (K + 1 rows of B per token instead of V). The approximation this makes
is stated and bounded in :func:`candidate_max_and_lse`.

Notation: B batch, T action tokens, V vocabulary, H hidden size, K the stored top-k, C = K + 1
candidates (the top-k and the taken action).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ADAPTER_FILE = "logit_adapter.safetensors"


class LogitAdapter(nn.Module):
    """delta(s) = scale * B A h(s), the residual of l_theta over l_ckpt.

    ``down`` is A (r x H, nn.Linear's default init), ``up`` is B (V x r, zero at initialisation:
    the policy starts as the checkpoint's, and A still gets gradient once B moves).
    """

    def __init__(self, hidden_size: int, vocab_size: int, rank: int = 16, scale: float = 2.0):
        super().__init__()
        self.down = nn.Linear(hidden_size, rank, bias=False)  # A
        self.up = nn.Linear(rank, vocab_size, bias=False)  # B
        nn.init.zeros_(self.up.weight)
        self.scale = scale

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """delta over the whole vocabulary. Shape: hidden (..., H) -> (..., V) float32."""
        return self.scale * self.up(self.down(hidden.float()))

    def delta_at(self, hidden: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """delta at the given token ids only: K rows of B per state instead of V.

        Shape: hidden (B, T, H), ids (B, T, K) integer -> (B, T, K) float32.
        """
        low = self.down(hidden.float())  # (B, T, r)
        rows = self.up.weight[ids.long()]  # (B, T, K, r)
        return self.scale * (rows @ low.unsqueeze(-1)).squeeze(-1)

    def apply(self, logits: Any, hidden: Any) -> Any:
        """l_theta = l_ckpt + delta: what a decode loop samples from, step by step.

        Shape: logits (B, V), hidden (B, H) -> (B, V) float32; numpy in, numpy out.
        """
        if isinstance(logits, np.ndarray):
            with torch.no_grad():
                out = self.apply(torch.from_numpy(logits), torch.from_numpy(np.asarray(hidden)))
            return out.numpy()
        device = self.up.weight.device
        return logits.float() + self(hidden.to(device)).to(logits.device)


def candidate_set(
    topk_ids: torch.Tensor,
    topk_logits: torch.Tensor,
    actions: torch.Tensor,
    taken_logit: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The candidate tokens S_t of a state: the checkpoint's top-k, then the taken action a_t.

    The last slot's checkpoint logit is -inf when a_t is already in the top-k, so that no token
    counts twice in a sum over S_t. Column 0 is the checkpoint's argmax (the conservative
    operator's target action).
    Shape: topk_ids (B, T, K), topk_logits (B, T, K), actions (B, T), taken_logit (B, T)
    -> ids (B, T, C), l_ckpt (B, T, C) with C = K + 1.
    """
    actions = actions.long()
    in_topk = (topk_ids.long() == actions.unsqueeze(-1)).any(dim=-1)  # (B, T)
    last = taken_logit.masked_fill(in_topk, float("-inf"))
    ids = torch.cat([topk_ids.long(), actions.unsqueeze(-1)], dim=-1)
    return ids, torch.cat([topk_logits, last.unsqueeze(-1)], dim=-1)


def candidate_max_and_lse(
    cand_logits: torch.Tensor, tail_lse: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """max_b l_theta(s, b), its argmax (an index into S) and logsumexp_b l_theta(s, b), from S.

    The approximation: the tokens outside S keep their checkpoint logits in the normaliser, and
    none of them is taken as the maximum:

        max_theta ~= max_{b in S} l_theta(b)
        lse_theta ~= log( sum_{b in S} exp l_theta(b) + exp tail_lse ),
        tail_lse   = log sum_{b not in S} exp l_ckpt(b)     (exact, stored by featurize).

    Error bounds, with delta = l_theta - l_ckpt and d = max_{b not in S} |delta(b)|:
      * max: approx <= exact, and exact - approx <= max(0, max_{b not in S} delta(b) - delta(a^))
        <= 2 max_b |delta(b)|, a^ the checkpoint's argmax; exact whenever no token outside the
        top-k overtakes the best candidate (always at initialisation, delta = 0).
      * lse: with w = exp(tail_lse - lse_approx) the tail's share of the approximate mass,
        log(1 - w (1 - e^-d)) <= exact - approx <= log(1 + w (e^d - 1)), so |error| <= w d
        to first order and <= d always; 0 at initialisation.
    A_theta(s_t, a_t) = alpha (l_theta(a_t) - max) inherits the max's error times alpha (the
    taken logit is exact), and the cross-entropy lse - l_theta(a_t) the lse's. How small that is
    depends on how peaked the checkpoint is: with the top-32 holding ~95% of the mass and
    |delta| ~ 0.35 (up to 2), the max is exact and the lse within 0.03 nats; on a flat random
    LM the bounds hold but the lse can be off by ~0.3 (tests/test_adapter.py checks both).
    Shape: cand_logits (B, T, C) (l_theta on S, -inf on unused slots), tail_lse (B, T)
    -> max (B, T), argmax index (B, T) long, lse (B, T).
    """
    top = cand_logits.max(dim=-1)
    lse = torch.logsumexp(torch.cat([cand_logits, tail_lse.unsqueeze(-1)], dim=-1), dim=-1)
    return top.values, top.indices, lse


def topk_features(
    logits: torch.Tensor, actions: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """What featurize stores per action token so that a step needs no (V,) logits.

    top-k checkpoint logits and ids (descending, ids[..., 0] the argmax), the taken action's
    logit l_ckpt(s_t, a_t), and tail_lse = logsumexp of l_ckpt over the tokens outside the top-k
    and a_t (-inf when there are none).
    Shape: logits (B, T, V), actions (B, T) -> (B, T, K) float32, (B, T, K) long, (B, T), (B, T).
    """
    lf = logits.float()
    top = lf.topk(min(k, lf.shape[-1]), dim=-1)
    taken = lf.gather(-1, actions.long().unsqueeze(-1))  # (B, T, 1)
    rest = lf.scatter(-1, top.indices, float("-inf"))
    rest = rest.scatter(-1, actions.long().unsqueeze(-1), float("-inf"))
    return top.values, top.indices, taken.squeeze(-1), torch.logsumexp(rest, dim=-1)


def load_logit_adapter(directory: str | Path, config: dict[str, Any]) -> LogitAdapter | None:
    """The adapter of a checkpoint directory (None when its mode has none), without a base model,
    so that a backend that only has logits and hidden states can apply it. ``config`` is the
    checkpoint's Q-model config (``read_checkpoint_config(directory)["config"]``)."""
    from safetensors.torch import load_file

    if config.get("mode") != "lmhead":
        return None
    weights = load_file(str(Path(directory) / ADAPTER_FILE))
    rank, hidden_size = weights["down.weight"].shape
    vocab_size = weights["up.weight"].shape[0]
    adapter = LogitAdapter(hidden_size, vocab_size, rank, adapter_scale(config))
    adapter.load_state_dict(weights)
    return adapter.eval()


def adapter_scale(config: dict[str, Any]) -> float:
    """The LoRA-style scale lora_alpha / lora_r of a Q-model config (as a dict)."""
    return float(config.get("lora_alpha", 32)) / float(config.get("lora_r", 16))
