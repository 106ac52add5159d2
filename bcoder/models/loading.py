"""Loading a model and its tokenizer from a source, with a fast-loading copy of GGUF files.

transformers loads a GGUF by dequantizing every tensor (tens of seconds for 1.5B parameters, and
the tokenizer is rebuilt from the file's metadata too). The first load of a GGUF therefore saves
the dequantized model (bf16 safetensors) and its tokenizer as a Hugging Face directory in the cache,
recording the SHA-256 of every file written; later loads read that directory instead. The model
returned by the first load is cast from that same bf16 form, so first and later loads give
identical weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_dir, cache_dir
from bcoder.core.types import Progress
from bcoder.models.sources import ProgressFn, ensure_local, resolve_source, sha256_file

_MARKER = "bcoder-converted.json"
# On a CPU with native bf16 (see bcoder.models.hardware), models at least this large default to bfloat16;
# smaller ones, and every model on a CPU without it, run in float32.
BF16_MIN_PARAMS = 300_000_000


def converted_dir(key: str) -> Path:
    """Where the fast-loading copy of the GGUF with hash (or key) ``key`` lives."""
    return cache_dir() / "converted" / f"{key[:16]}-bf16"


def file_key(path: Path) -> str:
    """A cache key for a user's GGUF file without hashing it: its path, size and mtime."""
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()


def _read_marker(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / _MARKER).read_text())
    except (OSError, ValueError):
        return None


def _converted_ok(directory: Path) -> bool:
    """The copy is complete and no file changed (size, mtime) since it was written and hashed."""
    marker = _read_marker(directory)
    if not marker:
        return False
    for name, rec in marker["files"].items():
        try:
            st = (directory / name).stat()
        except OSError:
            return False
        if (st.st_size, st.st_mtime_ns) != (rec["size"], rec["mtime_ns"]):
            return False
    return True


def verify_converted(directory: Path, on_progress: ProgressFn | None = None) -> bool:
    """Re-hash every file of a fast-loading copy; a bad copy is deleted (rebuilt on next load)."""
    marker = _read_marker(directory)
    ok = marker is not None and all(
        (directory / name).is_file() and sha256_file(directory / name, on_progress) == rec["sha256"]
        for name, rec in marker["files"].items()
    )
    if not ok:
        shutil.rmtree(directory, ignore_errors=True)
    return ok


def _save_converted(model: Any, tokenizer: Any, directory: Path, key: str) -> None:
    """Write model + tokenizer to ``directory`` atomically, with a marker of file hashes."""
    with atomic_dir(directory) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = {}
        for f in sorted(p for p in tmp.iterdir() if p.is_file()):
            st = f.stat()
            files[f.name] = {
                "sha256": sha256_file(f),
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
            }
        (tmp / _MARKER).write_text(json.dumps({"source": key, "files": files}, indent=1))


@contextlib.contextmanager
def quiet_transformers(on_progress: ProgressFn | None) -> Iterator[None]:
    """No tqdm bars from transformers while we load: progress goes through our callback."""
    from transformers.utils import logging as hf_logging

    try:  # the GGUF dequantizing loop uses a bare tqdm: count its steps ourselves instead
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        gguf_utils = None
    old_tqdm = getattr(gguf_utils, "tqdm", None)

    def counted(iterable: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        total = len(iterable) if hasattr(iterable, "__len__") else 0
        for i, item in enumerate(iterable):
            if on_progress:
                on_progress(Progress("load", i, total, "dequantizing GGUF tensors"))
            yield item

    was_enabled = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if old_tqdm is not None:
        gguf_utils.tqdm = counted
    try:
        yield
    finally:
        if old_tqdm is not None:
            gguf_utils.tqdm = old_tqdm
        hf_logging.set_verbosity(level)
        if was_enabled:
            hf_logging.enable_progress_bar()


def parse_dtype(dtype: Any) -> Any:
    """A torch dtype from a torch dtype, None, or a name (bf16, bfloat16, fp16, float32, ...)."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
        "float16": torch.float16, "half": torch.float16, "fp32": torch.float32,
        "float32": torch.float32, "float": torch.float32,
    }  # fmt: skip
    try:
        return names[str(dtype).lower()]
    except KeyError:
        raise BcoderError(f"unknown dtype {dtype!r}: use one of {', '.join(names)}") from None


def default_dtype(n_params: int, device: str) -> Any:
    """bf16 (or fp16 on GPUs without bf16) on a GPU; on a CPU, bf16 for large models only where
    the CPU computes bf16 natively (:func:`bcoder.models.hardware.default_cpu_dtype_name`), else fp32."""
    import torch

    from bcoder.models.hardware import default_cpu_dtype_name

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return parse_dtype(default_cpu_dtype_name(n_params, BF16_MIN_PARAMS)[0])


def _count_params(directory: Path, config: Any) -> int:
    """Parameters of the model in ``directory``: from the safetensors headers (no weights read),
    else by building the model from ``config`` on the meta device."""
    import torch

    files = sorted(directory.glob("*.safetensors"))
    if files:
        from safetensors import safe_open

        total = 0
        for f in files:
            with safe_open(f, "pt") as st:
                for key in st.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    total += math.prod(st.get_slice(key).get_shape())
        return total
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    with torch.device("meta"):
        model = auto.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _load_dir(directory: Path, dtype: Any, device: str) -> tuple[Any, Any, Any]:
    """Model, tokenizer and dtype from a Hugging Face directory (dtype chosen by size if None)."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
    )

    try:
        config = AutoConfig.from_pretrained(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError, KeyError) as err:
        raise BcoderError(f"cannot load the model in {directory}: {err}") from None
    dtype = dtype or default_dtype(_count_params(directory, config), device)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    model = auto.from_pretrained(directory, dtype=dtype)
    return model, tokenizer, dtype


def _load_gguf(path: Path) -> tuple[Any, Any]:
    """Model (dequantized to bf16) and tokenizer from a GGUF file: the slow path."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": path.name}
    try:
        from transformers import GgufConfig  # transformers 5: ask for dense weights explicitly

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:
        pass
    try:
        config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        auto = AutoModelForCausalLM
        model = auto.from_pretrained(path.parent, config=config, dtype=torch.bfloat16, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise BcoderError(f"cannot load the GGUF file {path}: {err}") from None
    # Dense now: drop the GGUF quantizer so save_pretrained writes plain safetensors.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    return model, tokenizer


def load_model_and_tokenizer(
    name_or_path: str,
    *,
    dtype: Any = None,
    device: str | None = None,
    on_progress: ProgressFn | None = None,
    allow_download: bool = True,
    pip_args: list[str] | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Load ``(model, tokenizer, info)`` for any model source, fetching it first if needed.

    ``dtype`` (torch dtype or name) defaults to what the device runs fast (:func:`default_dtype`); ``device`` defaults to cuda when available, else cpu. ``info`` holds ``name``,
    ``kind``, ``path`` (the source file or directory), ``loaded_from``, ``sha256`` (None when
    unknown), ``is_seq2seq``, ``dtype``, ``device``, ``n_params``, ``converted`` (this load wrote
    the fast-loading copy) and ``load_seconds``.
    """
    import torch

    source = resolve_source(name_or_path)
    local = ensure_local(source, on_progress, allow_download, pip_args)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = parse_dtype(dtype)
    t0 = time.perf_counter()
    converted = False

    def report(done: int, message: str) -> None:
        if on_progress:
            on_progress(Progress("load", done, 1, message))

    with quiet_transformers(on_progress):
        if local.is_file():
            fast = converted_dir(source.sha256 or file_key(local))
            if _converted_ok(fast):
                report(0, f"loading {source.name}")
                model, tokenizer, dtype = _load_dir(fast, dtype, device)
            else:
                report(0, f"dequantizing {local.name} (first load only, then cached)")
                model, tokenizer = _load_gguf(local)
                report(0, "saving a fast-loading copy")
                _save_converted(model, tokenizer, fast, source.sha256 or file_key(local))
                n = sum(p.numel() for p in model.parameters())
                dtype = dtype or default_dtype(n, device)
                converted = True
            loaded_from = fast
        else:
            report(0, f"loading {source.name}")
            model, tokenizer, dtype = _load_dir(local, dtype, device)
            loaded_from = local
    model = model.to(device=device, dtype=dtype).eval()
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    report(1, f"loaded {source.name}")
    info = {
        "name": source.name,
        "kind": source.kind,
        "preset": source.preset.name if source.preset else None,
        "hub_id": source.hub_id or (source.preset.hub_id if source.preset else None),
        "path": str(local),
        "loaded_from": str(loaded_from),
        "sha256": source.sha256,
        "is_seq2seq": bool(model.config.is_encoder_decoder),
        "dtype": str(dtype).removeprefix("torch."),
        "device": device,
        "n_params": sum(p.numel() for p in model.parameters()),
        "converted": converted,
        "load_seconds": time.perf_counter() - t0,
    }
    return model, tokenizer, info
