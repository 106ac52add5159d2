"""Checkpoints that ship with bcoder: trained heads (and logit adapter) used when no
``--checkpoint`` is given, so that a fresh install ranks with a learned value.

Each subfolder of ``bcoder/checkpoints/`` is a checkpoint directory (``bcoder_config.json`` and
its safetensors) plus ``TRAINING.json``, what it was trained on. A checkpoint serves the model
its config names as ``base_model`` (e.g. ``qwen2.5-coder-1.5b``, the default model); the base
fingerprint check at load time still guards against another file under that name.
``BCODER_CHECKPOINTS=DIR`` adds a folder of such checkpoints, searched first (a team's own
defaults). ``--checkpoint none`` ranks with the untrained initialisation instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bcoder.core.settings import is_no_heads

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
TRAINING_JSON = "TRAINING.json"


def _folders() -> list[Path]:
    extra = os.environ.get("BCODER_CHECKPOINTS")
    return ([Path(extra).expanduser()] if extra else []) + [SHIPPED_DIR]


def _base_model(directory: Path) -> str | None:
    try:
        meta = json.loads((directory / "bcoder_config.json").read_text())
        return meta["config"]["base_model"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def shipped_checkpoint(model: str) -> Path | None:
    """The shipped checkpoint trained on ``model`` (as named: a preset, a path), if any."""
    for folder in _folders():
        if not folder.is_dir():
            continue
        for directory in sorted(folder.iterdir()):
            if directory.is_dir() and _base_model(directory) == model:
                return directory
    return None


def resolve_checkpoint(model: str | None, checkpoint: str | None) -> str | None:
    """The checkpoint to serve: ``checkpoint`` when given, None (no trained heads) for
    ``none``, else the one shipped for ``model`` (the default model when None), if any."""
    from bcoder.models.sources import DEFAULT_MODEL

    if checkpoint:
        return None if is_no_heads(checkpoint) else checkpoint
    found = shipped_checkpoint(model or DEFAULT_MODEL)
    return str(found) if found is not None else None


def training_info(checkpoint: str | Path) -> dict[str, Any] | None:
    """What a shipped checkpoint was trained on (its TRAINING.json), None for other ones."""
    path = Path(checkpoint) / TRAINING_JSON
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def label(heads: str | Path) -> str:
    """A short name for the heads a result was ranked with: a shipped checkpoint's name, another
    checkpoint's folder name, or "untrained heads" ("none"; "init" in older records)."""
    if is_no_heads(heads):
        return "untrained heads"
    info = training_info(heads)
    return str(info.get("name")) if info and info.get("name") else Path(heads).name


def describe(checkpoint: str | Path) -> str:
    """One line naming a checkpoint and, for a shipped one, its training data."""
    info = training_info(checkpoint)
    if info is None:
        return str(checkpoint)
    return f"{info.get('name', Path(checkpoint).name)} (shipped; {info.get('summary', '')})"
