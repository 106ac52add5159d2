"""Load a GGUF model for the llama.cpp backend: the file, its tokenizer (cached) and the heads."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bcoder.backends.heads import ValueHeads
from bcoder.backends.llama import LlamaBackend
from bcoder.backends.llama_cpp import LlamaModel
from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_dir, cache_dir
from bcoder.core.types import Progress
from bcoder.models.loading import file_key, quiet_transformers
from bcoder.models.sources import ensure_local, resolve_source
from bcoder.qmodel.adapter import load_logit_adapter
from bcoder.qmodel.config import QConfig


def gguf_path(model: str, on_event: Callable[[Any], None] | None, allow_download: bool) -> Path:
    """The local GGUF file of a model source (fetched when allowed), or a one-line error."""
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

    directory = cache_dir() / "tokenizers" / key[:16]
    with quiet_transformers(None):
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


def load_llama(
    model: str,
    checkpoint: str | None,
    *,
    threads: int = 0,
    on_event: Callable[[Any], None] | None = None,
    allow_download: bool = True,
) -> tuple[Any, LlamaBackend, dict[str, Any]]:
    """The tokenizer, the llama.cpp backend (the GGUF model with the value heads and logit adapter
    of ``checkpoint``, if any) and what was loaded, for an Engine."""
    t0 = time.perf_counter()
    path = gguf_path(model, on_event, allow_download)
    source = resolve_source(model)
    if on_event:
        on_event(Progress("load", 0, 1, f"loading {source.name} (llama.cpp)"))
    tokenizer = load_tokenizer(path, source.sha256 or file_key(path))
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
    return tokenizer, backend, info


__all__ = ["gguf_path", "load_llama", "load_tokenizer"]
