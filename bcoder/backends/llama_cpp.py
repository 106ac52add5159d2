"""A llama.cpp model through llama-cpp-python's low-level (ctypes) API: load a GGUF file, make a
context with one sequence per row, decode tokens and read back logits and final hidden states.

:class:`LlamaModel` is all :mod:`bcoder.backends.llama` needs of llama.cpp; the context has
``embeddings`` on with pooling NONE, which makes llama.cpp keep the final (normed) hidden state of
every output token beside its logits, so one ``llama_decode`` returns both.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bcoder.core.errors import BcoderError
from bcoder.models.hardware import capped_threads

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
        self.threads = capped_threads(threads)  # at most the CPUs this process may use
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
