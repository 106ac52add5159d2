"""Inference backends: one interface, two implementations (DESIGN section 6).

- ``transformers`` (:mod:`bcoder.backends.hf`): any Hugging Face model, GPUs, training, lora/full
  checkpoints. The reference implementation.
- ``llama.cpp`` (:mod:`bcoder.backends.llama`): GGUF models on a CPU, with quantized kernels, no
  conversion at load time, and one prompt evaluation shared by all candidates.

Both give the same things: a KV-cached decoder over rows (:class:`Runner`) that the sampling loop of
:mod:`bcoder.decode.sampling` drives, V_theta from final hidden states, and teacher-forced per-token scores
of given programs (:meth:`Backend.score`). ``auto`` picks llama.cpp for a GGUF source on a machine
without a CUDA GPU when llama.cpp is installed, else transformers.
"""

from __future__ import annotations

from bcoder.backends.base import BACKENDS, Backend, Runner, choose_backend

__all__ = ["BACKENDS", "Backend", "Runner", "choose_backend"]
