"""Per-token values of programs from the Q-model, and their teacher-forced computation.

:class:`StepScores` is what every backend returns per program (the decode loop records it while
sampling in head and lmhead modes); :func:`score_tokens` computes it for given programs by one
forward of a :class:`~bcoder.qmodel.model.BCoderModel` per batch (any mode). Its logits are
l_theta (in lmhead mode the logit adapter's residual is added by ``BCoderModel.forward``), so the
log-probabilities are the trained policy's, as in the decode loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bcoder import rl
from bcoder.qmodel.batch import make_batch
from bcoder.qmodel.model import BCoderModel


@dataclass
class StepScores:
    """Per action token values recorded by the decode loop (head, lmhead). Shapes: (T,) each."""

    advantage: torch.Tensor  # A(s_t, a_t)
    value: torch.Tensor  # V_theta(s_t)
    logprob: torch.Tensor  # log pi(a_t | s_t) at temperature 1
    preferred: torch.Tensor  # argmax_a l(s_t, a) (long)


def length_batches(lengths: Sequence[int], size: int, overhead: int) -> list[list[int]]:
    """Indices of programs, longest first, cut into batches of at most ``size`` so that the
    positions a teacher-forced pass evaluates are fewest: a batch costs ``overhead`` (its shared
    prompt, evaluated once a batch) plus its rows times its longest program (the rest is padding).
    With no overhead, plain batches of ``size`` by length (mixed prompts are evaluated per row).

    Cuts by dynamic programming over the sorted lengths (a problem has a few dozen programs).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    n = len(order)
    if overhead <= 0:
        return [order[i : i + size] for i in range(0, n, size)]
    longest = [lengths[i] for i in order]
    cost, cut = [0] * (n + 1), [n] * (n + 1)  # cost of rows i.. and where its first batch ends
    for i in range(n - 1, -1, -1):
        options = range(i + 1, min(n, i + size) + 1)
        cost[i], cut[i] = min((overhead + (j - i) * longest[i] + cost[j], j) for j in options)
    batches, i = [], 0
    while i < n:
        batches.append(order[i : cut[i]])
        i = cut[i]
    return batches


@torch.inference_mode()
def score_tokens(
    qmodel: BCoderModel,
    prompts: Sequence[Sequence[int]],
    actions: Sequence[Sequence[int]],
    pad_id: int,
    *,
    batch_size: int = 8,
) -> list[StepScores]:
    """Per-token values of programs by one forward of ``qmodel`` per batch (any mode).

    Programs are batched by length (less padding; :func:`length_batches`) and returned in the
    order given.
    """
    device = next(qmodel.parameters()).device
    lengths = [len(a) for a in actions]
    shared = len({tuple(p) for p in prompts}) == 1  # evaluated once a batch (BCoderModel)
    overhead = len(prompts[0]) if shared and actions else 0
    out: list[StepScores | None] = [None] * len(actions)
    for rows in length_batches(lengths, batch_size, overhead):
        batch = make_batch(
            [list(prompts[i]) for i in rows], [list(actions[i]) for i in rows], pad_id, str(device)
        )
        q = qmodel(batch)  # QOutput, (B, T[, V])
        logits = q.logits.float()
        logprob = rl.taken(logits.log_softmax(dim=-1), batch.action_ids)  # (B, T)
        for b, i in enumerate(rows):
            n = len(actions[i])
            out[i] = StepScores(
                advantage=q.advantage[b, :n].float().cpu(),
                value=q.value[b, :n].float().cpu(),
                logprob=logprob[b, :n].cpu(),
                preferred=q.ckpt_argmax[b, :n].cpu(),
            )
    return out  # type: ignore[return-value]
