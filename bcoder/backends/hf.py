"""The transformers backend: a :class:`~bcoder.qmodel.model.BCoderModel` over any Hugging Face LM.

The reference implementation of :class:`~bcoder.backends.base.Backend`: training, GPUs, seq2seq
models and lora/full checkpoints run here. Causal LMs decode left-padded rows whose positions count
real tokens only (as in ``BCoderModel._run_causal``); when every row has the same prompt it is
prefilled once and the cache repeated. Seq2seq LMs run the encoder once, then the decoder steps
with a cache from the start token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bcoder.backends.base import Backend
from bcoder.qmodel.batch import cache_arg, cache_of
from bcoder.qmodel.model import BCoderModel
from bcoder.qmodel.scores import score_tokens


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(self, qmodel: BCoderModel, info: dict[str, Any] | None = None):
        self.qmodel = qmodel
        self.config = qmodel.config
        self.is_seq2seq = qmodel.is_seq2seq
        self.info = info or {}

    @property
    def device(self) -> torch.device:
        return next(self.qmodel.parameters()).device

    @property
    def scores_in_loop(self) -> bool:
        return self.qmodel.single_pass

    @property
    def vocab_size(self) -> int:
        return int(self.qmodel.lm.get_output_embeddings().weight.shape[0])

    def start(self, prompts: list[list[int]], pad_id: int, hidden: bool, max_new_tokens: int):
        runner = _Seq2Seq if self.is_seq2seq else _Causal
        return runner(self.qmodel.policy_lm(), prompts, pad_id, hidden)

    def value_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.qmodel.value_from_hidden(hidden)

    def policy_logits(self, logits: torch.Tensor, hidden: torch.Tensor | None) -> torch.Tensor:
        return self.qmodel.policy_logits(logits, hidden)

    @property
    def adapts_logits(self) -> bool:
        return self.qmodel.adapts_logits

    def score(
        self,
        prompts: Sequence[Sequence[int]],
        actions: Sequence[Sequence[int]],
        pad_id: int,
        *,
        batch_size: int = 8,
    ):
        return score_tokens(self.qmodel, prompts, actions, pad_id, batch_size=batch_size)

    def generation_eos_ids(self) -> list[int]:
        gen = getattr(self.qmodel.lm, "generation_config", None)
        x = getattr(gen, "eos_token_id", None)
        return list(x) if isinstance(x, list) else [] if x is None else [int(x)]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "dtype": self.info.get("dtype"),
            "device": str(self.device),
            "threads": torch.get_num_threads() if self.device.type == "cpu" else None,
            "mode": self.config.mode,
        }


class _Causal:
    """A KV-cached decoder-only LM over left-padded rows."""

    def __init__(self, lm: torch.nn.Module, prompts: list[list[int]], pad_id: int, hidden: bool):
        self.lm, self.hidden = lm, hidden
        device = next(lm.parameters()).device
        same = all(p == prompts[0] for p in prompts)
        rows = prompts[:1] if same else prompts  # one shared prompt is prefilled once
        width = max(len(p) for p in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        for i, p in enumerate(rows):
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            attn[i, width - len(p) :] = 1
        ids, attn = ids.to(device), attn.to(device)
        pos = (attn.cumsum(dim=1) - 1).clamp(min=0)  # (B, P): real tokens only, as in run_lm
        out = lm(
            input_ids=ids,
            attention_mask=attn,
            position_ids=pos,
            use_cache=True,
            output_hidden_states=hidden,
            logits_to_keep=1,
        )
        self.cache = cache_of(out)
        self.first = self._read(out)
        self.attn, self.next_pos = attn, pos[:, -1] + 1  # (B, P), (B,)
        if same and len(prompts) > 1:
            n = len(prompts)
            self.cache.batch_repeat_interleave(n)
            self.attn, self.next_pos = self.attn.expand(n, -1), self.next_pos.expand(n)
            self.first = tuple(None if x is None else x.expand(n, -1) for x in self.first)

    def _read(self, out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, V) and last hidden state (B, H) at the newest position."""
        hidden = out.hidden_states[-1][:, -1] if self.hidden else None
        return out.logits[:, -1].float(), hidden

    def step(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Feed one token per row (B,); return the next state's logits and hidden state."""
        self.attn = torch.cat([self.attn, self.attn.new_ones((self.attn.shape[0], 1))], dim=1)
        out = self.lm(
            input_ids=tokens[:, None],
            attention_mask=self.attn,
            position_ids=self.next_pos[:, None],
            **cache_arg(self.lm, self.cache),
            use_cache=True,
            output_hidden_states=self.hidden,
        )
        self.cache, self.next_pos = cache_of(out), self.next_pos + 1
        return self._read(out)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (indices into the current batch)."""
        self.cache.batch_select_indices(rows)
        self.attn, self.next_pos = self.attn[rows], self.next_pos[rows]


class _Seq2Seq:
    """An encoder-decoder LM: the encoder once, then the decoder with a cache."""

    def __init__(self, lm: torch.nn.Module, prompts: list[list[int]], pad_id: int, hidden: bool):
        self.lm, self.hidden = lm, hidden
        device = next(lm.parameters()).device
        n = len(prompts)
        same = all(p == prompts[0] for p in prompts)
        rows = prompts[:1] if same else prompts
        width = max(len(p) for p in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, p in enumerate(rows):  # left-padded, as make_batch does for the scoring pass
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        self.encoded = lm.get_encoder()(input_ids=ids, attention_mask=mask)
        if same and n > 1:
            self.encoded.last_hidden_state = self.encoded.last_hidden_state.expand(n, -1, -1)
            mask = mask.expand(n, -1)
        self.mask = mask
        self.cache = None
        start = torch.full((n,), lm.config.decoder_start_token_id, dtype=torch.long, device=device)
        self.first = self.step(start)

    def step(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.lm(
            encoder_outputs=self.encoded,
            attention_mask=self.mask,
            decoder_input_ids=tokens[:, None],
            **cache_arg(self.lm, self.cache),
            use_cache=True,
            output_hidden_states=self.hidden,
        )
        self.cache = cache_of(out)
        hidden = out.decoder_hidden_states[-1][:, -1] if self.hidden else None
        return out.logits[:, -1].float(), hidden

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.encoded.last_hidden_state = self.encoded.last_hidden_state[rows]
        self.mask = self.mask[rows]


def as_backend(model: Any) -> Backend:
    """``model`` itself if it is a Backend, else a transformers backend over a BCoderModel."""
    if isinstance(model, Backend):
        return model
    return TransformersBackend(model)
