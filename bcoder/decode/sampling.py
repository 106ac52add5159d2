"""Sampling programs from the theta policy pi(a|s) = softmax(Q(s, .)/alpha) = softmax(l_theta(s, .)).

Since Q/alpha and l_theta differ by a per-state constant, sampling with Q/alpha as logits is exactly
sampling from the LM head (DESIGN section 2): the decode loop below is an ordinary KV-cached loop
over the policy with temperature and top-p, driven through a backend's
:class:`~bcoder.backends.Runner` (transformers or llama.cpp: the same loop, sampler and stopping
rules for both). Every step's logits go through ``backend.policy_logits(logits, hidden)``, which
in lmhead mode adds the logit adapter's residual, so the loop samples from the trained policy
l_theta (or, with ``DecodeOptions.policy = "base"``, from the frozen base LM's own logits while
still scoring with l_theta: what ``train select`` picks when the trained policy samples worse on
held-out problems). With a frozen backbone (``backend.scores_in_loop``: head and lmhead modes)
the loop also keeps, per action token, everything the per-token scores need -- the advantage A(s_t, a_t) =
alpha * (l(s_t, a_t) - max l(s_t)), the value V(s_t) from the last hidden state (the very tensor
``BCoderModel.run_lm`` reads), the log-probability at temperature 1 and the checkpoint's preferred
token -- so scoring needs no second pass. With ``DecodeOptions.features`` it also keeps what
``bcoder train featurize`` would compute in a second, teacher-forced pass over the finished
program (the hidden states and the checkpoint's top-k logits), so collect can store the features
of what it samples as it samples them. Rows that finish (EOS, the end of a fenced code block,
or the length limit) leave the batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bcoder.backends.base import Backend
from bcoder.backends.hf import as_backend
from bcoder.core.cancel import Cancelled, check
from bcoder.core.settings import POLICIES
from bcoder.qmodel.scores import StepScores

__all__ = [
    "Cancelled",
    "DecodeOptions",
    "FenceStop",
    "Generation",
    "decode",
    "sample",
]

FINISH_EOS, FINISH_FENCE, FINISH_LENGTH = "eos", "code_block_end", "length"
# Top-p sampling looks at this many most likely tokens first; it sorts the whole vocabulary (~25 ms
# a row for 150k tokens) only when they hold less than top_p of the probability.
NUCLEUS_K = 256


@dataclass
class Generation:
    """One sampled completion, in action tokens."""

    index: int  # position of the row in the request (0 .. n-1)
    prompt_ids: list[int]
    action_ids: list[int]
    finish_reason: str  # eos | code_block_end | length
    scores: StepScores | None = None  # set when the loop scored (score=True)
    features: dict[str, Any] | None = None  # featurize's columns (DecodeOptions.features)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of tokens whose probability reaches ``top_p``.

    Shape: logits (B, V) -> (B, V), removed tokens set to -inf (the most likely one always stays).
    """
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above
    sorted_logits = sorted_logits.masked_fill(mass_before > top_p, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Draw one token per row from softmax(logits / temperature) after top-p; greedy at 0.

    The same distribution as ``top_p_filter`` then softmax over the whole vocabulary, drawn from
    the top NUCLEUS_K tokens when they cover the nucleus (the usual case).
    Shape: logits (B, V) float -> (B,) long.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    scaled = logits / temperature
    if top_p < 1.0:  # the nucleus usually lies in the top few hundred tokens: no full sort then
        top, ids = scaled.topk(min(NUCLEUS_K, scaled.shape[-1]), dim=-1)  # (B, K), descending
        probs = (top - scaled.logsumexp(dim=-1, keepdim=True)).exp()  # true probabilities
        if bool((probs.sum(dim=-1) >= top_p).all()):  # then top_p_filter keeps only these
            mass_before = probs.cumsum(dim=-1) - probs
            kept = top.masked_fill(mass_before > top_p, float("-inf")).softmax(dim=-1)
            choice = torch.multinomial(kept, 1, generator=generator)  # (B, 1)
            return ids.gather(-1, choice).squeeze(-1)
    probs = top_p_filter(scaled, top_p).softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class FenceStop:
    """Stop a row once a fenced code block closes: a line starting with ``` after an opening one.

    Only tokens containing a backtick can close a block, so the row is decoded only then.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, device: torch.device):
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        mask = torch.zeros(max(vocab_size, len(pieces)), dtype=torch.bool)
        for i, piece in enumerate(pieces):
            if piece and "`" in piece:
                mask[i] = True
        self.mask = mask.to(device)  # (V,) True for tokens that hold a backtick
        self.tokenizer = tokenizer

    def closed(self, action_ids: Sequence[int], opened: bool = False) -> bool:
        text = self.tokenizer.decode(list(action_ids), skip_special_tokens=True)
        return block_closed(text, opened)


def block_closed(text: str, opened: bool = False) -> bool:
    """True when ``text`` holds a complete opening fence line and a later line starting with ```;
    with ``opened`` (the prompt opened the block), when it holds a line starting with ```."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("```"):
            continue
        if opened:
            return True
        opened = i < len(lines) - 1  # the opening line is complete only once its newline came
    return False


class _Recorder:
    """The raw per-step statistics of in-loop scoring, kept with as few tensor ops per step as
    possible (the loop is the hot path); turned into StepScores once a row finishes."""

    def __init__(
        self, B: int, T: int, hidden: torch.Tensor | None, device: torch.device, topk: int = 0
    ):
        self.stats = torch.zeros((B, T, 3), device=device)  # l(s_t, a_t), max l(s_t), logsumexp
        self.preferred = torch.zeros((B, T), dtype=torch.long, device=device)
        self.hidden = (  # None when V does not depend on the state (untrained heads)
            None
            if hidden is None
            else torch.zeros((B, T, hidden.shape[-1]), dtype=hidden.dtype, device=device)
        )
        self.topk = topk  # > 0: also the checkpoint's top-k logits (featurize's columns)
        if topk:
            self.top_logits = torch.zeros((B, T, topk), device=device)
            self.top_ids = torch.zeros((B, T, topk), dtype=torch.long, device=device)
            self.ckpt = torch.zeros((B, T, 2), device=device)  # l_ckpt(s_t, a_t), tail_lse

    def record(
        self,
        rows: torch.Tensor,
        t: int,
        logits: torch.Tensor,
        taken: torch.Tensor,
        hidden: torch.Tensor | None,
        ckpt_logits: torch.Tensor,
    ) -> None:
        """Shapes: rows (b,), logits (b, V) float (l_theta), taken (b,), hidden (b, H) or None,
        ckpt_logits (b, V) (the frozen LM's, whose argmax is the preferred token)."""
        best = logits.max(dim=-1).values
        chosen = logits.gather(-1, taken[:, None]).squeeze(-1)
        self.stats[rows, t] = torch.stack([chosen, best, logits.logsumexp(dim=-1)], dim=-1)
        self.preferred[rows, t] = ckpt_logits.argmax(dim=-1)
        if self.hidden is not None:
            self.hidden[rows, t] = hidden
        if self.topk:
            from bcoder.qmodel.adapter import topk_features

            top_l, top_i, taken_l, tail = topk_features(ckpt_logits, taken, self.topk)
            self.top_logits[rows, t], self.top_ids[rows, t] = top_l, top_i
            self.ckpt[rows, t] = torch.stack([taken_l, tail], dim=-1)

    def features(self, alpha: float, row: int, n: int) -> dict[str, Any]:
        """Featurize's columns for the first ``n`` actions of ``row`` (numpy, as
        :func:`bcoder.train.featurize.token_features` computes them from a teacher-forced pass):
        ckpt_adv, ckpt_argmax and hidden (T[, H]), topk_logits / topk_ids (T, K), ckpt_logit
        and tail_lse (T,). Needs ``topk`` and the hidden states."""
        assert self.topk and self.hidden is not None
        top_l, taken_l = self.top_logits[row, :n].float(), self.ckpt[row, :n, 0]
        out = {
            "ckpt_adv": alpha * (taken_l - top_l[:, 0]),  # the top-1 logit is the max
            "ckpt_argmax": self.preferred[row, :n],
            "hidden": self.hidden[row, :n].float(),
            "topk_logits": top_l,
            "topk_ids": self.top_ids[row, :n],
            "ckpt_logit": taken_l,
            "tail_lse": self.ckpt[row, :n, 1],
        }
        return {k: v.cpu().numpy() for k, v in out.items()}

    def scores(self, backend: Backend, row: int, n: int) -> StepScores:
        """A, V, log-prob and preferred token of the first ``n`` actions of ``row``."""
        chosen, best, lse = self.stats[row, :n].unbind(dim=-1)  # (n,) each
        if self.hidden is None:  # V is the same in every state
            value = torch.full((n,), float(backend.constant_value()))  # type: ignore[arg-type]
        else:
            value = backend.value_from_hidden(self.hidden[row, :n])  # V(s_t), (n,)
        return StepScores(
            advantage=(backend.config.alpha * (chosen - best)).cpu(),
            value=value.float().cpu(),
            logprob=(chosen - lse).cpu(),
            preferred=self.preferred[row, :n].cpu(),
        )


@dataclass
class DecodeOptions:
    """How to decode (validated by the caller's settings)."""

    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 512
    eos_ids: tuple[int, ...] = ()
    fence: FenceStop | None = None  # stop at the end of a fenced code block
    fence_opened: bool = False  # the prompt opened the block (a prefilled answer)
    score: bool = False  # record StepScores (head and lmhead modes only)
    features: int = 0  # > 0 (with score): also featurize's columns, this many top-k logits
    # what to sample from: "trained", softmax(l_theta), or "base", softmax(l_base) -- the
    # frozen base LM's logits, which only a frozen backbone (scores_in_loop) has in the loop; the
    # scores are l_theta's either way (bcoder.qmodel.config.checkpoint_policy)
    policy: str = "trained"


@torch.inference_mode()
def decode(
    model: Backend | Any,
    prompts: list[list[int]],
    options: DecodeOptions,
    pad_id: int,
    *,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    first_index: int = 0,
) -> Iterator[Generation]:
    """Sample one completion per prompt row, yielding each as soon as it finishes.

    ``model`` is a :class:`~bcoder.backends.Backend` (or a BCoderModel, served by transformers).
    ``on_step(step, active_rows)`` is called after every decode step; ``cancel`` is checked before
    each step (raises :class:`Cancelled`). Generations carry ``index = first_index + row``.
    """
    backend = as_backend(model)
    if options.score and not backend.scores_in_loop:
        raise ValueError(
            "in-loop scoring needs a frozen backbone; score with backend.score() otherwise"
        )
    if options.features and not options.score:
        raise ValueError("DecodeOptions.features needs score=True")
    if options.policy not in POLICIES:
        raise ValueError(f"unknown policy {options.policy!r}")
    if options.policy == "base" and not backend.scores_in_loop:
        raise ValueError("sampling the base policy needs a frozen backbone (head or lmhead)")
    from_ckpt = options.policy == "base"
    check(cancel)
    # hidden states only when V or the logit adapter depends on them (a runtime may skip
    # computing them otherwise)
    hidden = (options.score and backend.constant_value() is None) or backend.adapts_logits
    hidden = hidden or bool(options.features)
    runner = backend.start(prompts, pad_id, hidden, options.max_new_tokens)
    raw, hidden = runner.first
    logits = backend.policy_logits(raw, hidden)  # l_theta
    B, T = len(prompts), options.max_new_tokens
    device = logits.device
    active = torch.arange(B, device=device)  # original row of each batch row
    tokens = torch.zeros((B, T), dtype=torch.long, device=device)
    recorder = _Recorder(B, T, hidden, device, options.features) if options.score else None
    eos = torch.tensor(options.eos_ids or (-1,), device=device)
    for t in range(T):
        policy = raw if from_ckpt else logits
        nxt = sample_next(policy, options.temperature, options.top_p, generator)  # (b,)
        tokens[active, t] = nxt
        if recorder is not None:
            recorder.record(active, t, logits, nxt, hidden, raw)
        done = torch.isin(nxt, eos)
        reasons = [FINISH_EOS if d else "" for d in done.tolist()]
        if options.fence is not None:
            ticks = options.fence.mask[nxt].nonzero().flatten().tolist()
            for r in ticks:
                row = int(active[r])
                if not reasons[r] and options.fence.closed(
                    tokens[row, : t + 1].tolist(), options.fence_opened
                ):
                    reasons[r] = FINISH_FENCE
        if t == T - 1:
            reasons = [x or FINISH_LENGTH for x in reasons]
        finished = [r for r, x in enumerate(reasons) if x]
        for r in finished:
            row = int(active[r])
            scores = features = None
            if recorder is not None:
                scores = recorder.scores(backend, row, t + 1)
                if options.features:
                    features = recorder.features(backend.config.alpha, row, t + 1)
            ids = tokens[row, : t + 1].tolist()
            yield Generation(first_index + row, prompts[row], ids, reasons[r], scores, features)
        if on_step:
            on_step(t + 1, len(reasons) - len(finished))
        if len(finished) == len(reasons) or t == T - 1:
            return
        check(cancel)
        if finished:
            keep = torch.tensor(
                [r for r, x in enumerate(reasons) if not x], dtype=torch.long, device=device
            )
            runner.keep(keep)
            active, nxt = active[keep], nxt[keep]
        raw, hidden = runner.step(nxt)
        logits = backend.policy_logits(raw, hidden)


def sample(
    model: Backend | Any,
    prompt_ids: list[int],
    n: int,
    options: DecodeOptions,
    pad_id: int,
    *,
    batch_size: int = 8,
    seed: int | None = 0,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[Generation]:
    """``n`` completions of one prompt, ``batch_size`` at a time, reproducible for a given seed
    (within a backend: the sampler is the same, the logits of two backends differ slightly)."""
    backend = as_backend(model)
    generator = torch.Generator(device=backend.device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    for start in range(0, n, batch_size):
        rows = min(batch_size, n - start)
        yield from decode(
            backend,
            [prompt_ids] * rows,
            options,
            pad_id,
            generator=generator,
            on_step=on_step,
            cancel=cancel,
            first_index=start,
        )
