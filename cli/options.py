"""Options that several commands share (solve, rank, eval, tui, train): one definition each."""

from __future__ import annotations

from typing import Annotated

import typer

Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model preset, HF id, directory or .gguf (default: the checkpoint's base, else the "
        "default model).",
    ),
]
Checkpoint = Annotated[
    str | None,
    typer.Option(
        "--checkpoint",
        "-c",
        help="B-Coder checkpoint dir (trained heads; default: the ones shipped for the model, if "
        "any; 'none': untrained).",
    ),
]
Policy = Annotated[
    str | None,
    typer.Option(
        "--policy",
        help="Sample from the 'trained' policy or the 'base' LM's own (lmhead / head mode; "
        "default: the one the checkpoint's validation chose; 'checkpoint' is the old name of "
        "'base').",
    ),
]
Backend = Annotated[
    str,
    typer.Option(
        "--backend",
        help="auto, transformers or llama.cpp (auto: llama.cpp for a GGUF model on a CPU).",
    ),
]
Dtype = Annotated[
    str | None,
    typer.Option(
        "--dtype", help="bf16, fp16 or fp32 (default: what the hardware runs fast; transformers)."
    ),
]
Device = Annotated[
    str | None,
    typer.Option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if any; transformers)."),
]
Threads = Annotated[int, typer.Option("--threads", min=0, help="CPU threads (0: the idle cores).")]


def set_threads(threads: int, device: str | None) -> None:
    """Torch CPU threads: as asked, else the idle cores (see bcoder.models.hardware.cpu_threads)."""
    if device and not device.startswith("cpu") and not threads:
        return
    import torch

    from bcoder.models.hardware import cpu_threads

    torch.set_num_threads(threads or cpu_threads())
