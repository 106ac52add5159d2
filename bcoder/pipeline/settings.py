"""What a solve does: the model, the heads, how to sample and whether to test.

Validation is pure (plain values only): which checkpoint ``None`` means (the one shipped for the
model) and the length a checkpoint was trained with are resolved where the engine loads
(:meth:`bcoder.pipeline.engine.Engine.load`), so ``dataclasses.replace(settings,
checkpoint="none")`` means what it says.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.settings import SamplingSettings, TestWriting
from bcoder.problems.prompts import PREFILL


@dataclass(frozen=True)
class SolveSettings:
    """How to solve; one documented field per knob, validated on construction."""

    model: str | None = None  # preset, HF id, directory or .gguf (None: the checkpoint's base)
    # trained heads (value heads / logit adapter): a checkpoint directory; None: the one shipped
    # for the model, if any; "none": no trained heads (their initialisation)
    checkpoint: str | None = None
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    run_tests: bool = True  # run the problem's tests in the sandbox, when it has tests
    filter_examples: bool = False  # drop candidates that fail the example tests before ranking
    dtype: str | None = None  # torch dtype name (None: what the hardware runs fast)
    device: str | None = None  # torch device (None: cuda when available, else cpu)
    backend: str = "auto"  # auto | transformers | llama.cpp (see bcoder.backends)
    timeout: float = 4.0  # seconds per test in the sandbox
    # a stub asked of a chat model: its answer starts in the prompt (the fence, signature and
    # docstring), so the model writes only the body; R~ and log-probs cover the body
    prefill: bool = PREFILL
    # a problem without tests of its own: the model writes tests, candidates run on them, and an
    # agreement ranker orders them (bcoder.pipeline.gentests); how the tests are written
    generate_tests: bool = True
    # ... and for a problem with tests of its own (a docstring's examples) too: those decide first,
    # agreement on the generated tests orders what they leave tied (off by default)
    generate_tests_with_examples: bool = False
    test_writing: TestWriting = field(default_factory=TestWriting)

    def __post_init__(self) -> None:
        if self.model is not None and (not isinstance(self.model, str) or not self.model.strip()):
            raise BcoderError("model must be a non-empty model name or path")
        if not isinstance(self.sampling, SamplingSettings):
            raise BcoderError("sampling must be a SamplingSettings")
        if not isinstance(self.test_writing, TestWriting):
            raise BcoderError("test_writing must be a TestWriting")
        if not self.timeout > 0:
            raise BcoderError(f"timeout must be positive, not {self.timeout}")

    def to_dict(self) -> dict[str, Any]:
        """Flat, as run records have always stored them (n, temperature, ... beside model)."""
        out = asdict(self)
        return {**out.pop("sampling"), **out}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SolveSettings:
        """From the flat dict :meth:`to_dict` writes (a run's settings); unknown keys ignored.
        Settings saved before ``prefill`` and generated tests existed ran without them."""
        values = {"prefill": False, "generate_tests": False, **values}
        if isinstance(values.get("test_writing"), dict):
            values = {**values, "test_writing": TestWriting(**values["test_writing"])}
        names = {f.name for f in fields(cls)} - {"sampling"}
        sampling = {f.name for f in fields(SamplingSettings)}
        return cls(
            sampling=SamplingSettings(**{k: v for k, v in values.items() if k in sampling}),
            **{k: v for k, v in values.items() if k in names},
        )
