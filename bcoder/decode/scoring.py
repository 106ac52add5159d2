"""Per-token scores of a program: Q(s_t, a_t), V(s_t), A(s_t, a_t), r~_t and the cumulative R~.

Two ways to get the raw per-token values (DESIGN section 2):

- in head and lmhead modes the decode loop records them while sampling
  (:class:`bcoder.decode.sampling.StepScores`);
- otherwise (lora / full mode, or a program the model did not write) one batched forward of the
  Q-model over prompt + action tokens: :func:`score_tokens`. Its logits are l_theta (in lmhead
  mode the logit adapter's residual is added by ``BCoderModel.forward``), so the log-probabilities
  are the trained policy's, as in the decode loop.

Either way :func:`make_candidate` turns them into a :class:`~bcoder.core.types.Candidate`, with the
recovered rewards from :func:`bcoder.rl.recovered_rewards` (gamma from the model's config).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bcoder import rl
from bcoder.core.types import Candidate, TokenScore
from bcoder.decode.sampling import StepScores
from bcoder.qmodel.model import BCoderModel, make_batch


def token_texts(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """The text each token adds to the decoded string, special tokens included.

    Fast path: each token decoded alone, when that concatenates to the whole decoded string (true
    of byte-level BPE on text whose characters do not straddle tokens). Otherwise decoded
    incrementally with a little left context (as streaming detokenizers do), so that a character
    split across byte-level tokens appears whole at the token that completes it (the earlier
    pieces get "") and spaces that depend on context are right.
    """
    ids = list(ids)
    backend = getattr(tokenizer, "backend_tokenizer", None)  # the Rust tokenizer: no overheads
    if backend is not None:
        pieces = backend.decode_batch([[i] for i in ids], skip_special_tokens=False)
        if "".join(pieces) == backend.decode(ids, skip_special_tokens=False):
            return pieces

        def decode(x: list[int]) -> str:
            return backend.decode(x, skip_special_tokens=False)
    else:

        def decode(x: list[int]) -> str:
            return tokenizer.decode(x, clean_up_tokenization_spaces=False)

    texts: list[str] = []
    prefix, read = 0, 0  # context start, and the first token whose text is not out yet
    for i in range(len(ids)):
        before = decode(ids[prefix:read])
        after = decode(ids[prefix : i + 1])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            texts.extend([""] * (i - read))
            texts.append(after[len(before) :])
            prefix, read = read, i + 1
        elif i == len(ids) - 1:  # an incomplete character at the very end: show what there is
            texts.extend([""] * (i - read))
            texts.append(after[len(before) :])
    return texts


def _single_texts(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each token's text on its own (ids past the tokenizer's vocabulary give "")."""
    n = len(tokenizer)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        texts = backend.decode_batch([[i] for i in ids], skip_special_tokens=False)
    else:
        texts = [tokenizer.decode([i]) for i in ids]
    return [t if i < n else "" for t, i in zip(texts, ids, strict=True)]


def recovered(scores: StepScores, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Q(s_t, a_t) and r~_t of one program, from its advantages and values.

    Shape: scores fields (T,) -> q (T,), r~ (T,).
    """
    q = (scores.advantage + scores.value).float()
    mask = torch.ones_like(q)
    rewards = rl.recovered_rewards(q[None], scores.value.float()[None], mask[None], gamma)[0]
    return q, rewards


def make_candidate(
    tokenizer: Any,
    action_ids: Sequence[int],
    scores: StepScores,
    gamma: float,
    *,
    code: str,
    finish_reason: str = "",
) -> Candidate:
    """A Candidate with per-token values; ``completion`` is the decoded text without specials."""
    q, rewards = recovered(scores, gamma)
    texts = token_texts(tokenizer, action_ids)
    pref_text = _single_texts(tokenizer, scores.preferred.tolist())
    cols = zip(
        texts,
        action_ids,
        q.tolist(),
        scores.value.tolist(),
        scores.advantage.tolist(),
        rewards.tolist(),
        scores.logprob.tolist(),
        pref_text,
        strict=True,
    )
    tokens = [TokenScore(*c) for c in cols]
    logprob = float(scores.logprob.sum())
    return Candidate(
        code=code,
        completion=tokenizer.decode(list(action_ids), skip_special_tokens=True),
        tokens=tokens,
        reward=float(rewards.sum()),
        mean_logprob=logprob / max(1, len(tokens)),
        sum_logprob=logprob,
        finish_reason=finish_reason,
    )


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
