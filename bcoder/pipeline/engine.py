"""A loaded model: tokenizer, backend (policy + value heads) and the checkpoint's prompting.

    engine = Engine.load("smollm2-135m")     # the heads shipped for it, if any
    engine = Engine.load(checkpoint="runs/x/checkpoint")   # its base model, its heads

Which checkpoint a request means is resolved here, where the model loads: ``None`` is the one
shipped for the model (:mod:`bcoder.qmodel.shipped`), ``"none"`` no trained heads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bcoder.core.errors import BcoderError
from bcoder.core.settings import NO_HEADS, is_no_heads, policy_name
from bcoder.core.spec import Problem
from bcoder.models.sources import DEFAULT_MODEL
from bcoder.problems.prompts import Prompter
from bcoder.qmodel.config import (
    checkpoint_policy,
    checkpoint_prompt_settings,
    read_checkpoint_config,
)
from bcoder.qmodel.shipped import resolve_checkpoint

if TYPE_CHECKING:  # torch is imported when a model is loaded, so that this module imports fast
    from bcoder.backends import Backend
    from bcoder.core.settings import SamplingSettings
    from bcoder.decode.sampling import DecodeOptions, FenceStop
    from bcoder.qmodel.model import BCoderModel

EventFn = Callable[[Any], None]


# End-of-turn tokens of common chat templates: an instruct model's answer ends at one of them.
_TURN_ENDS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")


def model_for(model: str | None, checkpoint: str | None) -> str:
    """The model to load: ``model`` when given, else the base ``checkpoint`` was trained on (so
    that ``--checkpoint`` alone is enough), else the default model."""
    if model:
        return model
    if checkpoint and not is_no_heads(checkpoint):
        base = read_checkpoint_config(checkpoint)["config"].get("base_model")
        if base:
            return str(base)
    return DEFAULT_MODEL


class Engine:
    """A loaded model (tokenizer + backend), reused across solves; safe to share between threads.

    ``model`` is a :class:`~bcoder.backends.Backend`, or a BCoderModel (served by transformers).
    """

    def __init__(
        self, tokenizer: Any, model: Backend | BCoderModel, info: dict[str, Any], heads: str
    ):
        from bcoder.backends.hf import as_backend

        self.tokenizer = tokenizer
        self.backend = as_backend(model)
        self.info = info
        self.heads = NO_HEADS if is_no_heads(heads) else heads  # "none" or a checkpoint path
        # the prompt family and lengths the checkpoint was trained with (defaults without one)
        self.prompting = checkpoint_prompt_settings(None if self.heads == NO_HEADS else heads)
        self.prompter = Prompter(tokenizer, self.prompting, self.backend.is_seq2seq)
        self.lock = threading.Lock()  # one solve at a time on the model
        self._fence: FenceStop | None = None
        # tests the model wrote, by prompt and settings (bcoder.pipeline.gentests.write_tests)
        self.written_tests: OrderedDict[Any, Any] = OrderedDict()

    @property
    def qmodel(self) -> BCoderModel:
        """The Q-model of the transformers backend (training and lora/full checkpoints need it)."""
        qmodel = getattr(self.backend, "qmodel", None)
        if qmodel is None:
            raise BcoderError(f"the {self.backend.name} backend has no transformers Q-model")
        return qmodel

    @classmethod
    def load(
        cls,
        model: str | None = None,
        checkpoint: str | None = None,
        *,
        dtype: str | None = None,
        device: str | None = None,
        backend: str | None = "auto",
        threads: int = 0,
        on_event: EventFn | None = None,
        allow_download: bool = True,
    ) -> Engine:
        """Load ``model`` (fetching it if needed) and the B-Coder heads of ``checkpoint`` on
        ``backend`` (auto: llama.cpp for a GGUF model on a CPU, see bcoder.backends).

        ``checkpoint`` None is the one shipped for the model, if any; ``"none"`` no trained heads.
        ``model`` None is the checkpoint's base model, else the default model.
        """
        from bcoder.backends import choose_backend
        from bcoder.models.sources import resolve_source

        model = model_for(model, checkpoint)
        checkpoint = resolve_checkpoint(model, checkpoint)
        source = resolve_source(model)  # fail fast (before importing torch) on no model
        if checkpoint and not (Path(checkpoint) / "bcoder_config.json").is_file():
            raise BcoderError(f"{checkpoint}: not a bcoder checkpoint (no bcoder_config.json)")
        name = choose_backend(backend, "gguf" if source.is_gguf else source.kind)
        if name == "llama.cpp":
            if device and not device.startswith("cpu"):
                raise BcoderError("the llama.cpp backend runs on the CPU: drop --device")
            from bcoder.backends.gguf import load_llama

            tokenizer, llama, info = load_llama(
                model, checkpoint, threads=threads, on_event=on_event, allow_download=allow_download
            )
            return cls(tokenizer, llama, info, checkpoint or NO_HEADS)
        from bcoder.models.loading import load_model_and_tokenizer
        from bcoder.qmodel.config import QConfig
        from bcoder.qmodel.model import BCoderModel

        t0 = time.perf_counter()
        base, tokenizer, info = load_model_and_tokenizer(
            model, dtype=dtype, device=device, on_progress=on_event, allow_download=allow_download
        )
        if checkpoint:
            qmodel = BCoderModel.from_checkpoint(checkpoint, base)
        else:
            qmodel = BCoderModel(base, QConfig(mode="head", base_model=model))
        qmodel.to(info.get("device") or next(base.parameters()).device)  # heads to the device
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        info = {**info, "backend": "transformers"}
        info["engine_load_seconds"] = time.perf_counter() - t0  # download included
        from bcoder.backends.hf import TransformersBackend

        return cls(tokenizer, TransformersBackend(qmodel, info), info, checkpoint or NO_HEADS)

    @property
    def checkpoint(self) -> str | None:
        """The checkpoint directory of the heads in use, None without trained heads (as run
        records name it)."""
        return None if self.heads == NO_HEADS else self.heads

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def prompt(self, problem: Problem) -> tuple[str, str, list[int]]:
        """The prompt family, prompt text and prompt token ids for ``problem``, made as the
        checkpoint's training prompts were (its family, else the default; its source length)."""
        return self.prompter.prompt(problem)

    def eos_ids(self) -> tuple[int, ...]:
        """Token ids that end a completion: the tokenizer's and generation config's EOS, and
        the chat template's end-of-turn token."""
        ids: set[int] = set(self.backend.generation_eos_ids())
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[t] for t in _TURN_ENDS if t in vocab)
        return tuple(sorted(ids))

    def fence(self) -> FenceStop:
        from bcoder.decode.sampling import FenceStop

        if self._fence is None:
            self._fence = FenceStop(self.tokenizer, self.backend.vocab_size, self.backend.device)
        return self._fence

    def policy(self, requested: str | None = None) -> str:
        """What to sample from: ``requested``, else the checkpoint's choice. The base policy
        needs the base LM's logits in the decode loop, which a frozen backbone (head, lmhead) has."""
        policy = policy_name(requested) or checkpoint_policy(self.heads)
        if policy == "base" and not self.backend.scores_in_loop:
            raise BcoderError(
                f"{self.heads}: sampling the base policy needs head or lmhead mode "
                f"(this is {self.backend.config.mode} mode); use --policy trained"
            )
        return policy

    def max_new_tokens(self, sampling: SamplingSettings) -> int:
        """The completion length: as asked, else the length the checkpoint was trained with."""
        return sampling.max_new_tokens or self.prompting.max_target_tokens

    def options(
        self, sampling: SamplingSettings, family: str, prefilled: bool = False
    ) -> DecodeOptions:
        """How to decode. Without trained heads there is no trained policy (l_theta is l_base):
        the loop samples the base LM's own logits, the same ones, and the run says ``base``.
        ``prefilled``: the prompt opened the answer's code block."""
        from bcoder.decode.sampling import DecodeOptions

        policy = self.policy(sampling.policy)
        return DecodeOptions(
            policy="base" if self.heads == NO_HEADS else policy,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_new_tokens=self.max_new_tokens(sampling),
            eos_ids=self.eos_ids(),
            fence=self.fence() if family == "chat" else None,  # chat prompts ask for a block
            fence_opened=prefilled,
            score=self.backend.scores_in_loop,
        )
