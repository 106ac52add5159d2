"""The llama.cpp backend: GGUF models on a CPU (llama-cpp-python's low-level API).

Why: on a CPU, llama.cpp runs a GGUF model with its own quantized kernels, loads it in seconds with
no conversion, and evaluates a prompt once for all the candidates sampled from it (its KV cache is
copied to each candidate's sequence). transformers dequantizes the same file to a dense model and
is several times slower per token there.

What it gives is what the transformers backend gives (:class:`~bcoder.backends.base.Backend`):

- a :class:`Runner` for the shared sampling loop of :mod:`bcoder.decode.sampling`: one llama.cpp
  sequence per row, logits (B, V) and, when asked for, final hidden states (B, H) per step. One
  ``llama_decode`` returns both: the context has ``embeddings`` on with pooling NONE, which makes
  llama.cpp keep the final (normed) hidden state of every output token beside its logits;
- teacher-forced scoring (:meth:`LlamaBackend.score`): the prompt is evaluated once per group of
  programs that share it, every program's tokens are fed to its own sequence, and per action token
  A(s_t, a_t), log pi(a_t | s_t), the preferred token and V_theta(s_t) are computed from the logits
  and hidden states as they come (the (tokens, V) logits are never all kept).

Value heads (:class:`~bcoder.backends.heads.ValueHeads`) run in torch on the hidden states, and
so does an lmhead checkpoint's logit adapter (:class:`~bcoder.qmodel.adapter.LogitAdapter`, added to the
logits of every step and of teacher-forced scoring), so head and lmhead checkpoints serve on
either backend. Numbers differ from transformers' by the GGUF weights' quantization and float
rounding only: the tests bound the difference on one model.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bcoder.backends.base import Backend
from bcoder.backends.heads import ValueHeads
from bcoder.backends.llama_cpp import LlamaModel
from bcoder.qmodel.adapter import LogitAdapter
from bcoder.qmodel.config import QConfig
from bcoder.qmodel.scores import StepScores


class _LlamaRunner:
    """Rows as llama.cpp sequences: a shared prompt is evaluated once and its KV cache copied."""

    def __init__(self, lm: LlamaModel, prompts: list[list[int]], max_new: int, hidden: bool):
        self.lm, self.hidden = lm, hidden
        n = len(prompts)
        same = all(p == prompts[0] for p in prompts)
        lm.context(n, max(len(p) for p in prompts) + max_new + 1)
        firsts: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        rows = prompts[:1] if same else prompts
        starts = np.cumsum([0] + [len(p) for p in rows])

        def keep(ids: list[int], logits: np.ndarray, states: np.ndarray | None) -> None:
            for j, k in enumerate(ids):  # k: index of the token among all prompt tokens
                row = int(np.searchsorted(starts, k, side="right")) - 1
                firsts[row] = (logits[j], None if states is None else states[j])

        lm.feed([(p, i, 0, False) for i, p in enumerate(rows)], hidden, keep)
        if same:
            for seq in range(1, n):
                lm.copy_seq(0, seq)
            firsts = {i: firsts[0] for i in range(n)}
        self.seqs = list(range(n))  # llama.cpp sequence of each active row
        self.pos = [len(p) for p in prompts]  # the next position of each active row
        self.first = self._tensors([firsts[i] for i in range(n)])

    def _tensors(self, outs: list[tuple[np.ndarray, np.ndarray | None]]):
        logits = torch.from_numpy(np.stack([x for x, _ in outs]))  # (B, V)
        hidden = torch.from_numpy(np.stack([h for _, h in outs])) if self.hidden else None
        return logits, hidden  # hidden (B, H) float32

    def step(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        items = [
            (int(t), seq, pos, True)
            for t, seq, pos in zip(tokens.tolist(), self.seqs, self.pos, strict=True)
        ]
        logits, states = self.lm.decode(items, self.hidden)
        self.pos = [p + 1 for p in self.pos]
        hidden = torch.from_numpy(states) if states is not None else None
        return torch.from_numpy(logits), hidden

    def keep(self, rows: torch.Tensor) -> None:
        keep = rows.tolist()
        for r in set(range(len(self.seqs))) - set(keep):
            self.lm.drop_seq(self.seqs[r])
        self.seqs = [self.seqs[r] for r in keep]
        self.pos = [self.pos[r] for r in keep]


class LlamaBackend(Backend):
    """A GGUF model on llama.cpp plus torch value heads (untrained: V = R_max everywhere)."""

    name = "llama.cpp"

    def __init__(
        self,
        lm: LlamaModel,
        config: QConfig,
        heads: ValueHeads | None = None,
        adapter: LogitAdapter | None = None,
    ):
        self.lm = lm
        self.config = config
        self.heads = heads or ValueHeads(lm.n_embd, config)
        self.adapter = adapter  # lmhead mode: l_theta = l_ckpt + B A h
        self.lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def scores_in_loop(self) -> bool:
        return True  # the policy is the GGUF model itself: head mode

    @property
    def vocab_size(self) -> int:
        return self.lm.n_vocab

    def start(
        self, prompts: list[list[int]], pad_id: int, hidden: bool, max_new_tokens: int
    ) -> _LlamaRunner:
        return _LlamaRunner(self.lm, prompts, max_new_tokens, hidden)

    def value_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.heads.value(hidden)

    def policy_logits(self, logits: torch.Tensor, hidden: torch.Tensor | None) -> torch.Tensor:
        return logits if self.adapter is None else self.adapter.apply(logits, hidden)

    @property
    def adapts_logits(self) -> bool:
        return self.adapter is not None

    def constant_value(self) -> float | None:
        # llama.cpp computes hidden states only when asked (~9% of a decode step on a 1.5B model)
        return self.heads.constant_value()

    def generation_eos_ids(self) -> list[int]:
        return self.lm.eos_ids()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "dtype": "gguf",
            "device": "cpu",
            "threads": self.lm.threads,
            "mode": self.config.mode,
        }

    def close(self) -> None:
        self.lm.close()

    @torch.inference_mode()
    def score(
        self,
        prompts: Sequence[Sequence[int]],
        actions: Sequence[Sequence[int]],
        pad_id: int,
        *,
        batch_size: int = 8,
    ):
        """Teacher-forced scores; programs sharing a prompt share its evaluation."""
        groups = by_prompt(prompts)
        out: list[StepScores | None] = [None] * len(actions)
        alpha = self.config.alpha
        for prompt, members in groups.items():
            for start in range(0, len(members), batch_size):
                rows = members[start : start + batch_size]
                programs = [list(actions[i]) for i in rows]
                stats = self._teacher_forced(list(prompt), programs, policy=True)
                for i, st in zip(rows, stats, strict=True):
                    out[i] = StepScores(
                        advantage=torch.from_numpy(alpha * (st["chosen"] - st["best"])),
                        value=self.heads.value(torch.from_numpy(st["hidden"])).float(),
                        logprob=torch.from_numpy(st["chosen"] - st["lse"]),
                        preferred=torch.from_numpy(st["argmax"]),
                    )
        return out  # type: ignore[return-value]

    def features(
        self, prompts: Sequence[Sequence[int]], actions: Sequence[Sequence[int]], topk: int = 0
    ) -> list[dict[str, np.ndarray]]:
        """What ``bcoder train featurize`` stores, per program: ``ckpt_adv`` A_ckpt(s_t, a_t)
        (T,), ``ckpt_argmax`` the checkpoint's preferred token (T,), ``hidden`` the final hidden
        state (T, H) and, with ``topk`` (lmhead mode), the columns of
        :func:`bcoder.qmodel.adapter.topk_features`: ``topk_logits`` / ``topk_ids`` (T, K),
        ``ckpt_logit`` and ``tail_lse`` (T,)."""
        out: list[Any] = [None] * len(actions)
        for prompt, rows in by_prompt(prompts).items():
            stats = self._teacher_forced(list(prompt), [list(actions[i]) for i in rows], topk=topk)
            for i, st in zip(rows, stats, strict=True):
                st["ckpt_adv"] = self.config.alpha * (st.pop("chosen") - st.pop("best"))
                st["ckpt_argmax"] = st.pop("argmax")
                del st["lse"]
                out[i] = st
        return out

    def _teacher_forced(
        self, prompt: list[int], actions: list[list[int]], policy: bool = False, topk: int = 0
    ) -> list[dict[str, np.ndarray]]:
        """Per program: ``chosen`` l(s_t, a_t), ``best`` max_b l(s_t, b), ``lse`` logsumexp_b,
        ``argmax`` and ``hidden``, each (T[, H]), and with ``topk`` the top-k columns.

        l is the checkpoint's logits, or with ``policy`` l_theta (the logit adapter's residual
        added); the argmax, the preferred token, is always the checkpoint's."""
        from bcoder.qmodel.adapter import topk_features

        adapt = self.adapter is not None and policy
        lm = self.lm
        n = len(actions)
        lm.context(n, len(prompt) + max(len(a) for a in actions) + 1)
        T = [len(a) for a in actions]
        shapes = {"chosen": (), "best": (), "lse": (), "argmax": (), "hidden": (lm.n_embd,)}
        if topk:
            shapes.update(topk_logits=(topk,), topk_ids=(topk,), ckpt_logit=(), tail_lse=())
        ints = ("argmax", "topk_ids")
        out = [
            {k: np.zeros((t, *shape), np.int64 if k in ints else np.float32)
             for k, shape in shapes.items()}
            for t in T
        ]  # fmt: skip

        def store(owners: list[tuple[int, int]], logits: np.ndarray, states: np.ndarray) -> None:
            """Record the outputs whose (program, position) ``owners`` lists, row by row."""
            x = torch.from_numpy(logits)  # (n_out, V)
            acts = torch.tensor([actions[row][t] for row, t in owners])
            cols = {"argmax": x.argmax(dim=-1), "hidden": torch.from_numpy(states)}
            if topk:
                top_l, top_i, taken, tail = topk_features(x, acts, topk)
                cols.update(topk_logits=top_l, topk_ids=top_i, ckpt_logit=taken, tail_lse=tail)
            if adapt:
                x = self.policy_logits(x, cols["hidden"])
            cols["chosen"] = x.gather(-1, acts[:, None])[:, 0]
            cols["best"], cols["lse"] = x.max(dim=-1).values, torch.logsumexp(x, dim=-1)
            cols = {k: v.numpy() for k, v in cols.items()}
            for j, (row, t) in enumerate(owners):
                for k, v in cols.items():
                    out[row][k][t] = v[j]

        def first(ids: list[int], logits: np.ndarray, states: np.ndarray | None) -> None:
            assert states is not None  # the state after the prompt is s_0 of every program
            store(
                [(row, 0) for row in range(n)], logits[-1:].repeat(n, 0), states[-1:].repeat(n, 0)
            )

        lm.feed([(prompt, 0, 0, False)], True, first)
        for seq in range(1, n):
            lm.copy_seq(0, seq)
        # a_0 .. a_{T-2} of each program, all outputs: the logits after a_t score a_{t+1}.
        runs = [(a[:-1], row, len(prompt), True) for row, a in enumerate(actions) if len(a) > 1]
        owners = [(row, t) for _, row, _, _ in runs for t in range(1, T[row])]

        def rest(ids: list[int], logits: np.ndarray, states: np.ndarray | None) -> None:
            assert states is not None
            store([owners[k] for k in ids], logits, states)

        if runs:
            lm.feed(runs, True, rest)
        return out


def by_prompt(prompts: Sequence[Sequence[int]]) -> dict[tuple[int, ...], list[int]]:
    """Indices of the programs that share each prompt (its evaluation is shared)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(tuple(p), []).append(i)
    return groups
