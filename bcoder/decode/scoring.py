"""Per-token scores of a program: Q(s_t, a_t), V(s_t), A(s_t, a_t), r~_t and the cumulative R~.

Two ways to get the raw per-token values (DESIGN section 2):

- in head and lmhead modes the decode loop records them while sampling
  (:class:`bcoder.qmodel.scores.StepScores`);
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
from bcoder.qmodel.scores import StepScores


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
