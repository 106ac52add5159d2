"""The configuration of an eval run, validated on construction, and the run's identity."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.settings import NO_HEADS, SamplingSettings, TestWriting, is_no_heads
from bcoder.evaluate.records import CONFIG
from bcoder.problems.prompts import PREFILL
from bcoder.problems.protocols import check_protocol

# Fields that change the samples or their scores: a resumed run must agree on all of them.
IDENTITY_FIELDS = (
    "dataset",
    "split",
    "samples",
    "model",
    "checkpoint",
    "temperature",
    "top_p",
    "max_new_tokens",
    "seed",
    "rank_only",
    "timeout",
    "prefill",
    "protocol",
    "test_writing",
)
DEFAULT_KS = (1, 5)  # pass@k reported when --k is not given (each k <= M)


@dataclass
class EvalSettings:
    """What ``bcoder eval`` does; one documented field per knob, validated on construction.

    Validation is pure. What a request means on disk (the checkpoint shipped for the model, the
    length a checkpoint was trained with) is filled in by :meth:`resolved` (``run_eval`` calls
    it); a run directory stores the resolved settings.
    """

    dataset: str  # apps | mbpp | humaneval | a problems file or folder
    split: str | None = "test"  # train | validation | test | prompt | None (every split)
    limit: int | None = None  # the first N problems of the selection
    ids: list[str] | None = None  # only these problem ids (dataset ids or Problem.id)
    # M = sampling.n candidates per problem; each problem samples with its own seed
    # (core.settings.problem_seed of sampling.seed and its id); sampling.seed seeds the bootstrap
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    ks: list[int] | None = None  # pass@k for these k (None: those of DEFAULT_KS that fit M)
    model: str = "qwen2.5-coder-1.5b"  # a preset, hub id, local dir or GGUF file
    # trained heads / adapter: a checkpoint directory; None: the one shipped for the model, if
    # any; "none": no trained heads (a run records it as null)
    checkpoint: str | None = None
    timeout: float = 4.0  # seconds per test run in the sandbox
    workers: int | None = None  # sandbox workers (None: the executor's default)
    rank_only: str | None = None  # jsonl of (problem id, code) from another model: score + rank
    bootstrap: int = 1000  # bootstrap resamples for the confidence intervals
    dtype: str | None = None  # torch dtype (transformers; None: what the hardware runs fast)
    device: str | None = None  # torch device (transformers; None: cuda if any)
    backend: str = "auto"  # auto | transformers | llama.cpp (see bcoder.backends)
    threads: int = 0  # CPU threads of this process (0: the idle cores); not part of the run
    prefill: bool = PREFILL  # stubs' answers start in the prompt (SolveSettings.prefill)
    # what the model and the rankers are shown: "tests" (the dataset's prompt and example tests)
    # or "no-tests" (a docstring, no tests: bcoder.problems.protocols)
    protocol: str = "tests"
    # how the model writes tests under the no-tests protocol
    test_writing: TestWriting = field(default_factory=TestWriting)

    def __post_init__(self) -> None:
        samples = self.sampling.n
        if self.ks is None:  # the defaults that fit M: -M 1 alone is a valid run
            self.ks = [k for k in DEFAULT_KS if self.rank_only or k <= samples]
        if not self.ks or any(k < 1 for k in self.ks):
            raise BcoderError(f"--k must list positive integers (got {self.ks})")
        self.ks = sorted(set(self.ks))
        if self.rank_only is None and max(self.ks) > samples:
            raise BcoderError(
                f"--k {max(self.ks)} is larger than --samples {samples}: pass@k needs k <= M"
            )
        if self.limit is not None and self.limit < 1:
            raise BcoderError(f"--limit must be at least 1 (got {self.limit})")
        if self.limit is not None and self.ids:
            raise BcoderError("give --limit or --ids, not both")
        check_protocol(self.protocol)
        if self.bootstrap < 1:
            raise BcoderError(f"--bootstrap must be at least 1 (got {self.bootstrap})")
        if not self.timeout > 0:
            raise BcoderError(f"--timeout must be positive (got {self.timeout})")

    def resolved(self) -> EvalSettings:
        """These settings as a run records them: the checkpoint a request means (a directory, or
        ``"none"``) and the completion length (None: the checkpoint's). Resolving twice changes
        nothing."""
        from bcoder.qmodel.config import checkpoint_prompt_settings
        from bcoder.qmodel.shipped import resolve_checkpoint

        checkpoint = resolve_checkpoint(self.model, self.checkpoint)
        length = self.sampling.max_new_tokens
        if length is None:  # as the checkpoint was trained (recorded in the run)
            length = checkpoint_prompt_settings(checkpoint).max_target_tokens
        sampling = replace(self.sampling, max_new_tokens=length)
        return replace(self, checkpoint=checkpoint or NO_HEADS, sampling=sampling)

    @property
    def heads(self) -> str | None:
        """The checkpoint directory of resolved settings; None for no trained heads."""
        return None if self.checkpoint is None or is_no_heads(self.checkpoint) else self.checkpoint

    def to_dict(self) -> dict[str, Any]:
        """Flat, as run directories have always stored them (``samples`` is M; no trained heads
        is ``checkpoint: null``)."""
        out = asdict(self)
        sampling = out.pop("sampling")
        out["checkpoint"] = self.heads
        return {**out, "samples": sampling.pop("n"), **sampling}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EvalSettings:
        """From the flat form :meth:`to_dict` writes (``checkpoint: null``, recorded, is no
        trained heads); unknown keys are ignored. Runs started before ``prefill`` existed ran
        without it."""
        writing = values.get("test_writing")
        values = {"prefill": False, **values}
        values.pop("test_writing", None)
        if isinstance(writing, dict):  # None (not given): the defaults
            values["test_writing"] = TestWriting(**writing)
        names = {f.name for f in fields(cls)} - {"sampling"}
        known = {f.name for f in fields(SamplingSettings)}
        sampling = {k: v for k, v in values.items() if k in known and k != "n"}
        if "samples" in values and not (values.get("rank_only") and values["samples"] < 1):
            sampling["n"] = values["samples"]  # (a rank-only run samples nothing: M is unused)
        if "checkpoint" in values and values["checkpoint"] is None:
            values = {**values, "checkpoint": NO_HEADS}
        return cls(
            sampling=SamplingSettings(**sampling),
            **{k: v for k, v in values.items() if k in names},
        )

    @classmethod
    def from_run(cls, run_dir: Path, given: dict[str, Any] | None = None) -> EvalSettings:
        """The settings a run directory was started with (to go on with ``--resume``), with the
        ``given`` ones (flat, as :meth:`to_dict` names them) in their place: a new ``limit``,
        ``ids``, ``ks`` or ``bootstrap`` changes what the run covers (a limit replaces the ids
        and the other way round; a given ``test_writing`` changes only the settings it names);
        a changed identity field is refused where the run starts (``prepare_run_dir``)."""
        try:
            stored = json.loads((run_dir / CONFIG).read_text())["settings"]
        except (OSError, ValueError, KeyError, TypeError):
            raise BcoderError(
                f"{run_dir}: no eval run to resume there; give --dataset to start one"
            ) from None
        given = dict(given or {})
        if "limit" in given and "ids" not in given:
            given["ids"] = None
        if "ids" in given and "limit" not in given:
            given["limit"] = None
        if isinstance(given.get("test_writing"), dict):
            given["test_writing"] = {**(stored.get("test_writing") or {}), **given["test_writing"]}
        return cls.from_dict({**stored, **given}).resolved()

    def identity(self) -> dict[str, Any]:
        flat = self.to_dict()
        return {name: flat[name] for name in IDENTITY_FIELDS}


def parse_ks(text: str) -> list[int]:
    """'1,5,10' -> [1, 5, 10]."""
    try:
        ks = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise BcoderError(
            f"--k: expected comma-separated integers like 1,5,10 (got {text!r})"
        ) from None
    if not ks:
        raise BcoderError("--k: give at least one k")
    return ks


def parse_shard(text: str | None) -> tuple[int, int]:
    """'0/2' -> (0, 2); None -> (0, 1)."""
    if not text:
        return (0, 1)
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise BcoderError(f"--shard: expected i/n like 0/2 (got {text!r})") from None
    if n < 1 or not 0 <= i < n:
        raise BcoderError(f"--shard {text}: need 0 <= i < n")
    return (i, n)
