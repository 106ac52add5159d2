"""What the model cache holds for a preset, and re-checking it (``bcoder models list | verify``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bcoder.models.fetch import ProgressFn, stamp_matches, verify_file
from bcoder.models.loading import converted_dir, verify_converted
from bcoder.models.sources import artifact_path, resolve_source


@dataclass
class ModelStatus:
    """What the cache holds for one preset."""

    name: str
    source: str  # where it comes from, in words
    size: int | None  # bytes of the artifact, when known
    cached: bool
    verified: bool | None  # hash recorded and file unchanged; None when nothing to check
    path: Path | None
    converted: bool = False  # a fast-loading copy exists


def model_status(name: str) -> ModelStatus:
    """The cache state of a preset or registry spec, without hashing anything."""
    src = resolve_source(name)
    if src.artifact is None:
        return ModelStatus(name, f"hub {src.hub_id}", None, False, None, None)
    path = artifact_path(src)
    cached = path.is_file()
    verified = stamp_matches(path, src.artifact.sha256) if cached else None
    conv = converted_dir(src.artifact.sha256).is_dir()
    return ModelStatus(
        name, src.artifact.describe(), src.artifact.size, cached, verified, path, conv
    )


def verify_cached(name: str, on_progress: ProgressFn | None = None) -> bool | None:
    """Re-hash a cached artifact (and its fast-loading copy): True ok, False bad, None absent."""
    src = resolve_source(name)
    if src.artifact is None:
        return None
    path = artifact_path(src)
    if not path.is_file():
        return None
    ok = verify_file(path, src.artifact.sha256, on_progress)
    conv = converted_dir(src.artifact.sha256)
    if conv.is_dir() and not verify_converted(conv, on_progress):
        ok = False
    return ok
