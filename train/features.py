"""The stored per-token features: the settings they depend on, their schema, a program's row as
stored, and reading them back, from featurize's store (``data/features``) and from the records
collect makes while sampling (``data/sampled_features``).

Which columns there are and what they mean: :mod:`bcoder.train.featurize`. Every column is
stored flat per program ((T,), or (T * H,) / (T * K,) for the 2-d ones); hidden states are
clipped to the float16 range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bcoder.qmodel.config import FROZEN_BACKBONE
from bcoder.train.config import TrainConfig
from bcoder.train.data import ShardStore, as_ragged
from bcoder.train.programs import Program

F16_MAX = 65504.0
SAMPLED_FEATURES = "sampled_features"  # data/<this>: featurize's columns of sampled programs


def features_meta(cfg: TrainConfig, model: Any) -> dict[str, Any]:
    """What the stored features depend on; a change recomputes them all. ``backend`` is kept
    with the checkpoints trained on them (served on the other backend, solve says so)."""
    llama = getattr(model, "name", "") == "llama.cpp"
    meta = {
        "base_fingerprint": model.lm.fingerprint if llama else model.config.base_fingerprint,
        "backend": "llama.cpp" if llama else "transformers",
        "alpha": cfg.model.alpha,
        "hidden": cfg.model.mode in FROZEN_BACKBONE,
        "hidden_dtype": cfg.featurize.hidden_dtype,
    }
    if cfg.model.mode == "lmhead":  # (absent otherwise, so head-mode features stay valid)
        meta["topk"] = cfg.featurize.topk
    return meta


def feature_schema(meta: dict[str, Any]):
    """The features schema (one flat list per row: (T,), or (T * H,) / (T * K,) for the 2-d)."""
    from datasets import Features, Sequence, Value

    f = {"ckpt_adv": Sequence(Value("float32")), "ckpt_argmax": Sequence(Value("int32"))}
    if meta["hidden"]:
        f["hidden"] = Sequence(Value(meta["hidden_dtype"]))
    if meta.get("topk"):
        f["topk_ids"] = Sequence(Value("int32"))
        for col in ("topk_logits", "ckpt_logit", "tail_lse"):
            f[col] = Sequence(Value("float32"))
    return Features(f)


def stored_row(columns: dict[str, np.ndarray], schema: Any) -> dict[str, np.ndarray]:
    """A program's features as stored: each column of ``schema`` flat in its dtype (hidden
    states clipped to the float16 range first)."""
    out = {}
    for col in schema:
        x = columns[col]
        if col == "hidden":
            x = np.clip(x, -F16_MAX, F16_MAX)
        out[col] = np.asarray(x).astype(schema[col].feature.dtype).reshape(-1)
    return out


def featurized_rows(ds: Any, schema: Any) -> dict[int, dict[str, np.ndarray]]:
    """{row: its stored columns} of a features shard, for the rows that have them (a row left
    out by ``featurize.max_samples_per_problem`` is stored empty)."""
    ragged = {col: as_ragged(ds, col) for col in schema if col in ds.column_names}
    if set(ragged) != set(schema):  # stored with other columns: recompute
        return {}
    n = len(ragged["ckpt_adv"].lengths())
    return {i: {c: r.row(i) for c, r in ragged.items()} for i in range(n)
            if len(ragged["ckpt_adv"].row(i))}  # fmt: skip


def write_recorded(
    store: ShardStore, name: str, programs: list[Program], meta: dict[str, Any], problems: list
) -> None:
    """The recorded features of a shard's sampled programs, with their row in the shard."""
    from datasets import Features, Value

    schema = feature_schema(meta)
    rows = [i for i, p in enumerate(programs) if p.features is not None]
    stored = [stored_row(programs[i].features, schema) for i in rows]  # type: ignore[arg-type]
    columns: dict[str, list] = {"row": rows, **{c: [s[c] for s in stored] for c in schema}}
    schema = Features({"row": Value("int32"), **schema})
    store.write(name, columns, schema, problems=problems, features_meta=meta)


def recorded_rows(
    data: Path, entry: dict[str, Any], meta: dict[str, Any], schema: Any
) -> dict[int, dict[str, np.ndarray]]:
    """{row: its stored columns} for the programs of a collect shard whose features collect
    recorded while sampling (``data/sampled_features``); none when it recorded them with other
    settings than ``meta`` (another backend, base, alpha or top-k) or for another shard."""
    store = ShardStore(data / SAMPLED_FEATURES)
    mine = [s for s in store.shards() if s["name"] == entry["name"]]
    if not mine or mine[0].get("problems") != entry.get("problems"):
        return {}
    if mine[0].get("features_meta") != meta:
        return {}
    ds = store.load(entry["name"])
    rows = ds.data.table.column("row").to_pylist()
    ragged = {col: as_ragged(ds, col) for col in schema}
    return {row: {col: r.row(j) for col, r in ragged.items()} for j, row in enumerate(rows)}
