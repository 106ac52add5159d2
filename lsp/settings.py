"""The server's settings: the ``bcoder`` section of the client's configuration.

They arrive through ``initializationOptions`` (editors without ``workspace/configuration``),
``workspace/configuration`` (pulled after ``initialized`` and on every
``workspace/didChangeConfiguration``) or the ``settings`` of ``didChangeConfiguration`` itself.
Names are the VS Code setting names without the ``bcoder.`` prefix. A value of the wrong type is
ignored with a warning (the old value stays), never an error that stops the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.settings import SamplingSettings
from bcoder.models.sources import DEFAULT_MODEL
from bcoder.problems.prompts import PREFILL


@dataclass(frozen=True)
class ServerSettings:
    """One field per setting; the defaults are the CLI's (DESIGN section 2)."""

    model: str = DEFAULT_MODEL  # preset name, Hugging Face id, local directory or GGUF file
    # trained B-Coder heads; None (or ""): the ones shipped for the model, if any; "none": the
    # untrained initialisation
    checkpoint: str | None = None
    samples: int = 8  # candidates sampled per request
    temperature: float = 0.6
    topP: float = 0.95
    maxNewTokens: int = 0  # 0: the checkpoint's target length (512 without a checkpoint)
    seed: int = 0
    policy: str | None = None  # trained | base; None (or ""): the one the checkpoint chose
    runTests: bool = True
    timeout: float = 4.0  # seconds per test run
    device: str | None = None  # cpu | cuda | mps; None (or ""): the best available
    dtype: str | None = None  # float32 | bfloat16 | float16; None (or ""): what runs fast here
    backend: str = "auto"  # auto | transformers | llama.cpp (auto: llama.cpp for GGUF on a CPU)
    allowDownload: bool = True
    fastPath: bool = False  # insert the first candidate that passes the docstring's tests at once
    prefill: bool = PREFILL  # start the answer with the stub written: the model writes the body
    # a stub without docstring examples: the model writes tests and agreement on them ranks
    generateTests: bool = True
    # ... and for a stub with docstring examples too: they decide first, agreement after them
    generateTestsWithExamples: bool = False
    unsureAdvantage: float = -2.0
    inlayHints: bool = True
    warnings: list[str] = field(default_factory=list, compare=False, repr=False)

    def updated(self, raw: Any) -> ServerSettings:
        """A copy with the values of ``raw`` (a dict, possibly ``{"bcoder": {...}}``) applied."""
        if isinstance(raw, dict) and isinstance(raw.get("bcoder"), dict):
            raw = raw["bcoder"]
        if not isinstance(raw, dict):
            return replace(self, warnings=[] if raw is None else ["settings: expected an object"])
        changes: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(self):
            if f.name == "warnings" or f.name not in raw:
                continue
            value = _coerce(raw[f.name], type(getattr(ServerSettings(), f.name)), f.name)
            if isinstance(value, _Bad):
                problems.append(value.message)
            else:
                changes[f.name] = value
        new = replace(self, **changes, warnings=problems)
        try:  # the sampling settings are checked as everywhere else; bad ones keep the old
            new.sampling()
        except BcoderError as err:
            return replace(self, warnings=[*problems, f"bcoder sampling settings: {err}"])
        return new

    def sampling(self) -> SamplingSettings:
        """The sampling settings of one request."""
        return SamplingSettings(
            n=self.samples,
            temperature=self.temperature,
            top_p=self.topP,
            max_new_tokens=self.maxNewTokens or None,  # 0: the checkpoint's length
            seed=self.seed,
            # the fast path wants one passing candidate soon: a step of few rows is quicker
            # (llama.cpp, 1.5B model, 2 cores: 2 rows ~3x faster per step than 8)
            batch_size=max(1, min(self.samples, 2 if self.fastPath and self.runTests else 8)),
            policy=self.policy,
        )

    def solve_key(self) -> tuple:
        """What the loaded engine depends on: a change reloads the model."""
        return (self.model, self.checkpoint, self.dtype, self.device, self.backend)


def changes(old: ServerSettings, new: ServerSettings) -> str:
    """``name=value`` for each setting that differs."""
    return " ".join(
        f"{f.name}={getattr(new, f.name)}"
        for f in fields(new)
        if f.compare and getattr(old, f.name) != getattr(new, f.name)
    )


class _Bad:
    def __init__(self, message: str) -> None:
        self.message = message


# Optional strings: None, "" or blanks mean unset. VS Code's Settings UI can only edit a plain
# string setting, and clearing its field sends "", so "" is how a user there returns to the default.
_OPTIONAL = {"checkpoint", "device", "dtype", "policy"}


def _coerce(value: Any, kind: type, name: str) -> Any:
    if name in _OPTIONAL:
        if value is None or isinstance(value, str):
            return (value or "").strip() or None
        return _Bad(f"bcoder.{name} must be a string")
    if kind is bool:
        return value if isinstance(value, bool) else _Bad(f"bcoder.{name} must be true or false")
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value if ok else _Bad(f"bcoder.{name} must be an integer")
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else _Bad(f"bcoder.{name} must be a number")
    if kind is str:
        return (
            value if isinstance(value, str) and value else _Bad(f"bcoder.{name} must be a string")
        )
    return _Bad(f"bcoder.{name}: unsupported")
