"""The JSON that ``solve --json``, ``rank --json`` and ``runs show --json`` print (docs/json.md).

    result_json(result)   -> the documented object: schema_version, the run, the clear names

A :class:`~bcoder.core.types.SolveResult` as stored, plus what a reader should not have to work
out: the schema's version, the clear names of the two rewards (``recovered_reward``, R~, beside
its old name ``reward``; ``test_reward``, the sandbox's, beside ``true_reward``), what the heads
are and how the ranker is called in words. Within one ``SCHEMA_VERSION`` keys are only added,
never renamed or removed; ``SolveResult.from_dict`` reads the object back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.settings import is_no_heads
from bcoder.core.types import SolveResult

SCHEMA_VERSION = 1


def result_json(result: SolveResult) -> dict[str, Any]:
    """``result`` as the documented JSON object (docs/json.md)."""
    from bcoder.ranking.rankers import RANKER_LABELS

    out = {"schema_version": SCHEMA_VERSION, **result.to_dict()}
    out["candidates"] = [
        {**c, "recovered_reward": c["reward"], "test_reward": c["true_reward"]}
        for c in out["candidates"]
    ]
    out["ranker_label"] = RANKER_LABELS.get(result.ranker, result.ranker)
    out["heads_info"] = heads_info(result.heads)
    return out


def heads_info(heads: str) -> dict[str, Any]:
    """What the heads that scored a result are: trained or not, a short name, what they were
    trained on (a shipped checkpoint's TRAINING.json, else its training config), if known."""
    from bcoder.qmodel.shipped import label, training_info

    if is_no_heads(heads):
        return {"trained": False, "label": label(heads), "trained_on": None, "summary": None}
    info = training_info(heads) or {}
    return {
        "trained": True,
        "label": label(heads),
        "trained_on": trained_on(heads),
        "summary": info.get("summary"),
    }


def trained_on(heads: str | Path) -> str | None:
    """A few words on a checkpoint's training data ("417 mbpp problems", "mbpp"), else None."""
    from bcoder.qmodel.config import read_checkpoint_config
    from bcoder.qmodel.shipped import training_info

    info = training_info(heads) or {}
    data = (info.get("config") or {}).get("data") or {}
    if not data:
        try:
            data = (read_checkpoint_config(heads).get("train_config") or {}).get("data") or {}
        except (BcoderError, OSError):  # not a checkpoint here (a record from elsewhere)
            data = {}
    dataset = data.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        return None
    dataset = Path(dataset).name
    problems = (info.get("data") or {}).get("trained_problems")
    return f"{problems} {dataset} problems" if isinstance(problems, int) else dataset
