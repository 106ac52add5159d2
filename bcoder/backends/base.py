"""The backend interface, and the rule that picks one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from bcoder.core.errors import BcoderError

if TYPE_CHECKING:
    import torch

    from bcoder.qmodel.config import QConfig
    from bcoder.qmodel.scores import StepScores

BACKENDS = ("auto", "transformers", "llama.cpp")


class Runner(Protocol):
    """A KV-cached decoder over B rows, driven one token per row at a time.

    ``first`` holds the logits (B, V) float32 and the final hidden state (B, H) (None unless asked
    for) at the state after each row's prompt; ``step(tokens (b,))`` feeds one token to each active
    row and returns the same pair for the next state; ``keep(rows (b',))`` drops every other row.
    """

    first: tuple[torch.Tensor, torch.Tensor | None]

    def step(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def keep(self, rows: torch.Tensor) -> None: ...


class Backend(ABC):
    """A loaded policy l_theta with its value heads, as the sampling loop and scoring use it."""

    name: str = ""
    config: QConfig  # alpha, gamma, r_max and the checkpoint's mode
    is_seq2seq: bool = False

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where the tensors a Runner returns live."""

    @property
    @abstractmethod
    def scores_in_loop(self) -> bool:
        """True when the decode loop can score as it samples: V_theta comes from the final hidden
        state of the policy's own pass (head mode), so no second pass is needed."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Rows of the LM head (may exceed the tokenizer's length)."""

    @abstractmethod
    def start(
        self, prompts: list[list[int]], pad_id: int, hidden: bool, max_new_tokens: int
    ) -> Runner:
        """Evaluate the prompts (a prompt shared by every row once) and return the decoder, with
        room for ``max_new_tokens`` more tokens per row."""

    @abstractmethod
    def value_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """V_theta(s) from final hidden states. Shape: (..., H) -> (...)."""

    @abstractmethod
    def score(
        self,
        prompts: Sequence[Sequence[int]],
        actions: Sequence[Sequence[int]],
        pad_id: int,
        *,
        batch_size: int = 8,
    ) -> list[StepScores]:
        """Teacher-forced per-token A, V, log-prob and preferred token of given programs, in the
        order given."""

    def policy_logits(self, logits: torch.Tensor, hidden: torch.Tensor | None) -> torch.Tensor:
        """l_theta from a Runner's logits and final hidden states at the same states: the LM's
        logits themselves, unless a checkpoint's logit adapter (lmhead mode) adds its residual.
        The decode loop calls this on every step. Shape: (B, V), (B, H) or None -> (B, V)."""
        return logits

    @property
    def adapts_logits(self) -> bool:
        """True when :meth:`policy_logits` reads the hidden states (lmhead mode), so that the
        decode loop must ask the Runner for them on every step."""
        return False

    def constant_value(self) -> float | None:
        """V when it is the same in every state (untrained heads: R_max), else None. The decode
        loop then asks the runner for no hidden states."""
        return None

    def generation_eos_ids(self) -> list[int]:
        """End-of-sequence ids the model's own generation config names (beyond the tokenizer's)."""
        return []

    def describe(self) -> dict[str, Any]:
        """What is in force, for reports and ``bcoder doctor``: backend, dtype, threads, ..."""
        return {"backend": self.name}

    def close(self) -> None:  # noqa: B027 (optional: most backends need nothing)
        """Free native resources (a no-op where the garbage collector does it)."""


def llama_cpp_available() -> bool:
    """llama-cpp-python is installed (importing it loads the native library: only when used)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def choose_backend(requested: str | None, source_kind: str, *, cuda: bool | None = None) -> str:
    """The backend to use: ``requested`` unless it is ``auto`` (or None).

    ``auto`` picks llama.cpp for a GGUF model (a ``.gguf`` file, or a preset/registry artifact that
    is one) on a machine without a CUDA GPU, when llama-cpp-python is installed; transformers
    otherwise (Hugging Face directories and hub ids, seq2seq models, GPUs).
    """
    requested = (requested or "auto").strip().lower()
    if requested in ("llama", "llamacpp", "llama-cpp"):
        requested = "llama.cpp"
    if requested not in BACKENDS:
        raise BcoderError(f"unknown backend {requested!r}: use one of {', '.join(BACKENDS)}")
    if requested != "auto":
        if requested == "llama.cpp" and not llama_cpp_available():
            raise BcoderError(
                "the llama.cpp backend needs llama-cpp-python: run `bash scripts/install.sh` "
                "(or pip install llama-cpp-python), or use --backend transformers"
            )
        return requested
    if source_kind not in ("gguf", "registry"):
        return "transformers"
    if cuda is None:
        cuda = _cuda_available()
    return "llama.cpp" if not cuda and llama_cpp_available() else "transformers"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
