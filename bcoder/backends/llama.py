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

import ctypes
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bcoder.backends.base import Backend
from bcoder.backends.heads import ValueHeads
from bcoder.core.errors import BcoderError
from bcoder.core.types import Progress
from bcoder.qmodel.adapter import LogitAdapter, load_logit_adapter
from bcoder.qmodel.model import QConfig

_INIT_LOCK = threading.Lock()
_LOG: list[str] = []  # llama.cpp's recent log lines (kept for error messages, never printed)
_LOG_CALLBACK: Any = None  # the ctypes callback must outlive every llama.cpp call


def _llama() -> Any:
    """The llama_cpp module, initialised once, its logging routed away from the user's terminal."""
    global _LOG_CALLBACK
    try:
        import llama_cpp
    except ImportError:
        raise BcoderError(
            "the llama.cpp backend needs llama-cpp-python: run `bash scripts/install.sh` "
            "(or pip install llama-cpp-python), or use --backend transformers"
        ) from None
    with _INIT_LOCK:
        if _LOG_CALLBACK is None:

            @llama_cpp.llama_log_callback
            def keep(level: int, text: bytes, _user: Any) -> None:
                _LOG.append(text.decode("utf-8", errors="replace"))
                del _LOG[:-50]

            _LOG_CALLBACK = keep
            llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
    return llama_cpp


def _last_log() -> str:
    lines = [x.strip() for x in _LOG if x.strip()]
    return lines[-1][:200] if lines else "no details"


class LlamaModel:
    """A GGUF model loaded by llama.cpp, with one context that grows on demand."""

    def __init__(self, path: str | Path, threads: int = 0):
        self.ll = ll = _llama()
        self.path = Path(path)
        params = ll.llama_model_default_params()
        params.n_gpu_layers = 0
        self.model = ll.llama_model_load_from_file(str(self.path).encode(), params)
        if not self.model:
            raise BcoderError(f"llama.cpp cannot load {self.path}: {_last_log()}")
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab = int(ll.llama_vocab_n_tokens(self.vocab))
        self.n_embd = int(ll.llama_model_n_embd(self.model))
        self.n_ctx_train = int(ll.llama_model_n_ctx_train(self.model))
        st = self.path.stat()  # identity of the weights, for stored features (no hashing)
        self.fingerprint = f"gguf:{self.path.name}:{st.st_size}"
        self.threads = threads or _default_threads()
        self.ctx: Any = None
        self.ctx_seqs = self.ctx_per_seq = 0
        self.n_batch = 512

    # ---- the context -------------------------------------------------------------------
    def context(self, seqs: int, per_seq: int) -> Any:
        """A context with room for ``seqs`` sequences of ``per_seq`` tokens each, memory cleared.

        The context is reused while it is large enough (made anew, larger, when it is not).
        """
        ll = self.ll
        per_seq = min(max(per_seq, 64), max(self.n_ctx_train, 64))
        if self.ctx is None or seqs > self.ctx_seqs or per_seq > self.ctx_per_seq:
            self.free_context()
            seqs, per_seq = max(seqs, self.ctx_seqs), max(per_seq, self.ctx_per_seq)
            per_seq = -(-per_seq // 256) * 256  # rounded up: fewer re-creations
            params = ll.llama_context_default_params()
            params.n_ctx = seqs * per_seq
            params.n_batch = params.n_ubatch = self.n_batch
            params.n_seq_max = seqs
            params.n_threads = params.n_threads_batch = self.threads
            params.embeddings = True  # final hidden states beside the logits
            params.pooling_type = ll.LLAMA_POOLING_TYPE_NONE
            params.kv_unified = False  # one KV stream per sequence: rows diverge after the prompt
            params.no_perf = True
            ctx = ll.llama_init_from_model(self.model, params)
            if not ctx:
                raise BcoderError(f"llama.cpp cannot make a context: {_last_log()}")
            self.ctx, self.ctx_seqs, self.ctx_per_seq = ctx, seqs, per_seq
        ll.llama_memory_clear(ll.llama_get_memory(self.ctx), True)
        return self.ctx

    def free_context(self) -> None:
        if self.ctx is not None:
            self.ll.llama_free(self.ctx)
            self.ctx, self.ctx_seqs, self.ctx_per_seq = None, 0, 0

    def close(self) -> None:
        self.free_context()
        if self.model:
            self.ll.llama_model_free(self.model)
            self.model = None

    # ---- decoding ----------------------------------------------------------------------
    def decode(
        self, items: Sequence[tuple[int, int, int, bool]], hidden: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Evaluate ``(token, seq, pos, output)`` items (at most n_batch) in one llama_decode.

        Returns the logits (n_out, V) and, with ``hidden``, the final hidden states (n_out, H) of
        the items marked for output, in their order (copies: the next decode overwrites them).
        With embeddings on, llama.cpp makes *every* token an output (and computes its logits),
        so callers turn them on only for batches whose items are all outputs (see :meth:`feed`).
        """
        ll, n = self.ll, len(items)
        ll.llama_set_embeddings(self.ctx, hidden)
        batch = ll.llama_batch_init(n, 0, 1)
        try:
            for i, (token, seq, pos, out) in enumerate(items):
                batch.token[i] = token
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = out
            batch.n_tokens = n
            rc = ll.llama_decode(self.ctx, batch)
            if rc != 0:
                raise BcoderError(f"llama.cpp decode failed ({rc}): {_last_log()}")
        finally:
            ll.llama_batch_free(batch)
        outs = [i for i, item in enumerate(items) if item[3]]
        logits = np.empty((len(outs), self.n_vocab), np.float32)
        states = np.empty((len(outs), self.n_embd), np.float32) if hidden else None
        for j, i in enumerate(outs):  # by batch index: right whichever tokens llama.cpp output
            logits[j] = np.ctypeslib.as_array(ll.llama_get_logits_ith(self.ctx, i), (self.n_vocab,))
            if states is not None:
                ptr = ll.llama_get_embeddings_ith(self.ctx, i)
                states[j] = np.ctypeslib.as_array(ptr, (self.n_embd,))
        return logits, states

    def feed(
        self,
        rows: Sequence[tuple[Sequence[int], int, int, bool]],
        hidden: bool,
        on_chunk: Callable[[list[int], np.ndarray, np.ndarray | None], None],
    ) -> None:
        """Feed token runs ``(tokens, seq, first_pos, outputs)`` in n_batch chunks.

        Each run's last token is always an output; ``outputs`` makes every token one. After each
        decode with outputs, ``on_chunk(item_ids, logits, hidden)`` gets them with the index (into
        the flattened runs) of the token each belongs to. Tokens that are no output (a prompt's
        prefix) are decoded with embeddings off, so no logits are computed for them.
        """
        items: list[tuple[int, int, int, bool]] = []
        for tokens, seq, pos0, outputs in rows:
            for j, token in enumerate(tokens):
                items.append((int(token), seq, pos0 + j, outputs or j == len(tokens) - 1))
        for start in range(0, len(items), self.n_batch):
            chunk = list(enumerate(items[start : start + self.n_batch], start))
            # within a run the outputs come last, so the quiet prefix can go first
            quiet = [it for _, it in chunk if not it[3]]
            loud = [(k, it) for k, it in chunk if it[3]]
            if quiet:
                self.decode(quiet, False)
            if loud:
                logits, states = self.decode([it for _, it in loud], hidden)
                on_chunk([k for k, _ in loud], logits, states)

    def copy_seq(self, src: int, dst: int) -> None:
        ll = self.ll
        ll.llama_memory_seq_cp(ll.llama_get_memory(self.ctx), src, dst, -1, -1)

    def drop_seq(self, seq: int) -> None:
        ll = self.ll
        ll.llama_memory_seq_rm(ll.llama_get_memory(self.ctx), seq, -1, -1)

    def eos_ids(self) -> list[int]:
        ids = [int(self.ll.llama_vocab_eos(self.vocab)), int(self.ll.llama_vocab_eot(self.vocab))]
        return sorted({i for i in ids if i >= 0})


def _default_threads() -> int:
    from bcoder.pipeline.solve import cpu_threads

    return cpu_threads()


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
        from bcoder.decode.sampling import StepScores

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


def gguf_path(model: str, on_event: Callable[[Any], None] | None, allow_download: bool) -> Path:
    """The local GGUF file of a model source (fetched when allowed), or a one-line error."""
    from bcoder.models.sources import ensure_local, resolve_source

    source = resolve_source(model)
    local = ensure_local(source, on_event, allow_download)
    if not (local.is_file() and local.suffix.lower() == ".gguf"):
        raise BcoderError(
            f"{model} is not a GGUF model: the llama.cpp backend needs a .gguf file or a GGUF "
            "preset; use --backend transformers"
        )
    return local


def load_tokenizer(path: Path, key: str) -> Any:
    """The Hugging Face tokenizer stored in a GGUF file, cached as a tokenizer directory (reading
    it from the GGUF metadata takes seconds; the cached copy loads in a fraction of that)."""
    from transformers import AutoTokenizer

    from bcoder.core.fs import atomic_dir
    from bcoder.models.loading import _quiet_transformers
    from bcoder.models.sources import cache_dir

    directory = cache_dir() / "tokenizers" / key[:16]
    with _quiet_transformers(None):
        if (directory / "tokenizer_config.json").is_file():
            try:
                return AutoTokenizer.from_pretrained(directory)
            except (OSError, ValueError):
                pass
        try:
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        except (OSError, ValueError, KeyError) as err:
            raise BcoderError(f"cannot read the tokenizer of {path}: {err}") from None
        with atomic_dir(directory) as tmp:
            tokenizer.save_pretrained(tmp)
    return tokenizer


def load_llama_engine(
    engine_cls: Any,
    model: str,
    checkpoint: str | None,
    *,
    threads: int = 0,
    on_event: Callable[[Any], None] | None = None,
    allow_download: bool = True,
) -> Any:
    """An Engine on the llama.cpp backend: the GGUF model, its tokenizer and the value heads."""
    from bcoder.models.loading import _file_key
    from bcoder.models.sources import resolve_source

    t0 = time.perf_counter()
    path = gguf_path(model, on_event, allow_download)
    source = resolve_source(model)
    if on_event:
        on_event(Progress("load", 0, 1, f"loading {source.name} (llama.cpp)"))
    tokenizer = load_tokenizer(path, source.sha256 or _file_key(path))
    lm = LlamaModel(path, threads)
    meta: dict[str, Any] = {}
    adapter = None
    if checkpoint:
        heads, meta = ValueHeads.from_checkpoint(checkpoint, lm.n_embd)
        config = heads.config
        adapter = load_logit_adapter(checkpoint, meta["config"])
        if adapter is not None and adapter.up.weight.shape[0] != lm.n_vocab:
            raise BcoderError(
                f"checkpoint {checkpoint} adapts {adapter.up.weight.shape[0]} logits, but "
                f"{model} has {lm.n_vocab}: load it with the base model it was trained on"
            )
    else:
        config = QConfig(mode="head", base_model=model)
        heads = None
    backend = LlamaBackend(lm, config, heads, adapter)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    info = {
        "name": source.name,
        "kind": source.kind,
        "preset": source.preset.name if source.preset else None,
        "path": str(path),
        "sha256": source.sha256,
        "is_seq2seq": False,
        "backend": "llama.cpp",
        "dtype": "gguf",
        "device": "cpu",
        "threads": lm.threads,
        "converted": False,
        "load_seconds": time.perf_counter() - t0,
        "engine_load_seconds": time.perf_counter() - t0,
    }
    trained_on = meta.get("features_backend")
    if checkpoint and trained_on and trained_on != "llama.cpp":
        info["notice"] = (
            f"the heads of {checkpoint} were trained on {trained_on} features and are served "
            "on llama.cpp (hidden states agree to rounding and quantization)"
        )
    if on_event:
        on_event(Progress("load", 1, 1, f"loaded {source.name} (llama.cpp)"))
    return engine_cls(tokenizer, backend, info, checkpoint or "init")


__all__ = ["LlamaBackend", "LlamaModel", "gguf_path", "load_llama_engine"]
