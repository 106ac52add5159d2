"""Training records on disk and in memory: sharded datasets, a mixing sampler, collation.

On disk (DESIGN section 3) a *store* is a folder of Hugging Face ``datasets`` shards, each written
whole into a temporary folder, renamed into place and only then listed by an entry file, so a
stopped run loses at most the shard it was writing:

    data/collect/   problem_id, source, is_ground_truth, prompt_ids, action_ids, completion,
                    code, count, outcome, reward, finish_reason          (one row per program)
    data/features/  ckpt_adv, ckpt_argmax[, hidden[, topk_ids, topk_logits, ckpt_logit,
                    tail_lse]]                         row-aligned with the collect shard
    data/values/    u_phi                              row-aligned, written after the phi-stage

In memory, :class:`TrainingData` joins the three stores and keeps each per-token column as one
flat array plus row offsets (Arrow buffers, no per-row Python objects), so a mini-batch of any
rows is gathered and padded cheaply.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_dir, atomic_write_text

META = "meta.json"
# lmhead mode: the checkpoint's top-k logits and ids, its logit of the taken action and the
# log-mass of the rest of the vocabulary, per action token (bcoder.qmodel.adapter.topk_features)
TOPK_COLUMNS = ("topk_ids", "topk_logits", "ckpt_logit", "tail_lse")
LONG_COLUMNS = ("ckpt_argmax", "topk_ids")


def collect_features():
    """The schema of a collected program record."""
    from datasets import Features, Sequence, Value

    return Features(
        {
            "problem_id": Value("string"),
            "source": Value("string"),  # sample | ground_truth | import
            "is_ground_truth": Value("bool"),
            "prompt_ids": Sequence(Value("int32")),
            "action_ids": Sequence(Value("int32")),  # a_0 .. a_T, the terminal action last
            "completion": Value("string"),
            "code": Value("string"),
            "count": Value("int32"),  # how many samples produced exactly these actions
            "outcome": Value("string"),  # pass | fail | runtime_error | compile_error
            "reward": Value("float32"),  # the terminal reward r_T (+1, -0.3, -0.6, -1)
            "finish_reason": Value("string"),  # eos | code_block_end | length | ground_truth
        }
    )


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No "Saving the dataset" progress bars: the recipe reports progress through callbacks."""
    from datasets.utils import logging as ds_logging

    was = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            ds_logging.enable_progress_bar()


# --- shard stores ---------------------------------------------------------------------------


class ShardStore:
    """A folder of dataset shards, each listed by an entry file written after the shard itself.

    ``NAME/`` holds the dataset (``save_to_disk``), ``NAME.json`` its entry (row count and what
    it covers), ``meta.json`` what the whole store was computed with. A shard without an entry
    is unfinished work and is ignored. Processes of a multi-process run write different shards,
    so there is no shared file to race on (meta.json is written by one process).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def shards(self) -> list[dict[str, Any]]:
        """The finished shards' entries, sorted by name."""
        if not self.root.is_dir():
            return []
        entries = []
        for path in sorted(self.root.glob("*.json")):
            if path.name == META:
                continue
            try:
                entries.append(json.loads(path.read_text()))
            except json.JSONDecodeError as err:
                raise BcoderError(f"{path}: corrupt shard entry ({err})") from None
        return entries

    def names(self) -> set[str]:
        return {s["name"] for s in self.shards()}

    def meta(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / META).read_text())
        except FileNotFoundError:
            return {}

    def set_meta(self, meta: dict[str, Any]) -> None:
        atomic_write_text(self.root / META, json.dumps(meta, indent=1))

    def clear(self) -> None:
        """Forget every shard (their data is replaced when written again)."""
        for path in self.root.glob("*.json"):
            path.unlink()

    def write(self, name: str, rows: dict[str, list], features: Any = None, **info: Any) -> None:
        """Write one shard (columns -> lists), then its entry. Re-writing a name replaces it."""
        from datasets import Dataset

        self.save(name, Dataset.from_dict(rows, features=features), **info)

    def save(self, name: str, ds: Any, **info: Any) -> None:
        """Write a ``datasets.Dataset`` as shard ``name``, then its entry."""
        with atomic_dir(self.root / name) as tmp, _quiet_datasets():
            ds.save_to_disk(str(tmp))
        entry = {"name": name, "rows": len(ds), **info}
        atomic_write_text(self.root / f"{name}.json", json.dumps(entry))

    def load(self, name: str):
        from datasets import load_from_disk

        return load_from_disk(str(self.root / name))


# --- held-out problems --------------------------------------------------------------------


def heldout_problems(problem_ids: Sequence[str], frac: float, seed: int = 0) -> set[str]:
    """A stable subset of ``ceil(frac * n)`` problems (at least one when frac > 0 and n >= 2),
    chosen by a hash of the id, so adding problems does not reshuffle the others."""
    ids = sorted(set(problem_ids))
    if frac <= 0 or len(ids) < 2:
        return set()
    n = min(len(ids) - 1, max(1, math.ceil(frac * len(ids))))
    key = lambda pid: hashlib.sha1(f"{seed}:{pid}".encode()).hexdigest()  # noqa: E731
    return set(sorted(ids, key=key)[:n])


# --- in memory ------------------------------------------------------------------------------


@dataclass
class Ragged:
    """A per-token column: row i is ``values[offsets[i]:offsets[i+1]]`` (trailing dims kept)."""

    values: np.ndarray  # (N_tokens, ...) numpy, often a view of an Arrow buffer
    offsets: np.ndarray  # (rows + 1,) int64

    def row(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def as_ragged(ds, column: str, width: int = 0) -> Ragged:
    """A list column of a datasets.Dataset as a Ragged, through Arrow (no Python objects).

    ``width`` > 0 reshapes a flat column of ``T * width`` values per row into (T, width).
    """
    arr = ds.data.table.column(column).combine_chunks()
    offsets = arr.offsets.to_numpy().astype(np.int64)
    start = int(offsets[0])  # a sliced ListArray keeps its child whole: honour the offsets
    offsets = offsets - start
    values = arr.values.to_numpy(zero_copy_only=False)[start : start + int(offsets[-1])]
    if width:
        values, offsets = values.reshape(-1, width), offsets // width
    return Ragged(values, offsets)


def _concat(parts: list[Ragged]) -> Ragged:
    if len(parts) == 1:
        return parts[0]
    values = np.concatenate([p.values for p in parts])
    shift = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
    offsets = np.concatenate(
        [parts[0].offsets[:1]] + [p.offsets[1:] + s for p, s in zip(parts, shift, strict=True)]
    )
    return Ragged(values, offsets)


@dataclass
class TrainingData:
    """Collected programs joined with their features, ready to batch."""

    problem_id: np.ndarray  # (N,) object
    is_ground_truth: np.ndarray  # (N,) bool
    count: np.ndarray  # (N,) int
    outcome: np.ndarray  # (N,) object
    reward: np.ndarray  # (N,) float32, the terminal reward
    prompt_ids: Ragged
    action_ids: Ragged
    columns: dict[str, Ragged] = field(
        default_factory=dict
    )  # ckpt_adv, hidden, u_phi, ... (by name)
    hidden_size: int = 0
    featurized: np.ndarray | None = None  # (N,) bool: the rows with features (None: all)

    def __len__(self) -> int:
        return len(self.reward)

    def has(self, name: str) -> bool:
        return name in self.columns

    @classmethod
    def load(cls, run_data: str | Path, need: Sequence[str] = ()) -> TrainingData:
        """Join ``collect`` with ``features`` and ``values`` (when present) under ``run_data``."""
        run_data = Path(run_data)
        collect, feats, values = (
            ShardStore(run_data / n) for n in ("collect", "features", "values")
        )
        shards = [s["name"] for s in collect.shards()]
        if not shards:
            raise BcoderError(f"{run_data / 'collect'}: no collected programs yet (run collect)")
        feat_names = {s["name"] for s in feats.shards()}
        value_names = {s["name"] for s in values.shards()}
        hidden_size = int(feats.meta().get("hidden_size", 0))
        topk = int(feats.meta().get("topk", 0))
        scalars: dict[str, list] = {
            k: [] for k in ("problem_id", "is_ground_truth", "count", "outcome", "reward")
        }
        per_shard: list[dict[str, Ragged]] = []
        for name in shards:
            ds = collect.load(name)
            for k in scalars:
                scalars[k].append(ds.data.table.column(k).to_numpy(zero_copy_only=False))
            sources = [(ds, "prompt_ids", 0), (ds, "action_ids", 0)]
            if name in feat_names:
                fds = feats.load(name)
                sources += [(fds, "ckpt_adv", 0), (fds, "ckpt_argmax", 0)]
                if "hidden" in fds.column_names:
                    sources.append((fds, "hidden", hidden_size))
                for col in TOPK_COLUMNS:
                    if col in fds.column_names:
                        sources.append((fds, col, topk if col.startswith("topk") else 0))
            if name in value_names:
                sources.append((values.load(name), "u_phi", 0))
            per_shard.append({col: as_ragged(src, col, width) for src, col, width in sources})
        # a shard featurize has not reached yet: its rows have no features (and stay out of
        # training, like the samples featurize.max_samples_per_problem leaves out)
        featured = next((p for p in per_shard if "ckpt_adv" in p), {})
        for parts in per_shard:
            rows = len(parts["action_ids"].lengths())
            for col, like in featured.items():
                if col not in parts and col != "u_phi":
                    empty = np.empty((0, *like.values.shape[1:]), like.values.dtype)
                    parts[col] = Ragged(empty, np.zeros(rows + 1, np.int64))
        ragged: dict[str, list[Ragged]] = {}
        for parts in per_shard:
            for col, r in parts.items():
                ragged.setdefault(col, []).append(r)
        for col in need:
            if len(ragged.get(col, [])) != len(shards):
                stage = "the phi-stage's values" if col == "u_phi" else "featurize"
                raise BcoderError(
                    f"{run_data}: column {col!r} is missing for some shards; run {stage} first"
                )
        columns = {k: _concat(v) for k, v in ragged.items() if len(v) == len(shards)}
        actions = columns["action_ids"].lengths()
        featurized = (  # featurize.max_samples_per_problem leaves rows out (stored empty)
            columns["ckpt_adv"].lengths() == actions
            if "ckpt_adv" in columns
            else np.ones(len(actions), dtype=bool)
        )
        return cls(
            problem_id=np.concatenate(scalars["problem_id"]).astype(object),
            is_ground_truth=np.concatenate(scalars["is_ground_truth"]).astype(bool),
            count=np.concatenate(scalars["count"]).astype(np.int64),
            outcome=np.concatenate(scalars["outcome"]).astype(object),
            reward=np.concatenate(scalars["reward"]).astype(np.float32),
            prompt_ids=columns.pop("prompt_ids"),
            action_ids=columns.pop("action_ids"),
            columns=columns,
            hidden_size=hidden_size,
            featurized=featurized,
        )

    def split(self, heldout: set[str]) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of (training, held-out) programs, of those with features."""
        held = np.array([pid in heldout for pid in self.problem_id], dtype=bool)
        keep = np.ones(len(held), dtype=bool) if self.featurized is None else self.featurized
        return np.nonzero(~held & keep)[0], np.nonzero(held & keep)[0]

    def collate(
        self, rows: Sequence[int], pad_id: int, columns: Sequence[str] = ()
    ) -> dict[str, torch.Tensor]:
        """Pad the given rows into tensors (prompts left-padded, per-token columns right-padded).

        Shapes: prompt_ids/prompt_mask (B, P); action_ids/action_mask (B, T); each per-token column
        (B, T[, H or K]); reward (B,); is_ground_truth (B,); count (B,).
        """
        rows = list(rows)
        B = len(rows)
        plen = self.prompt_ids.lengths()[rows]
        alen = self.action_ids.lengths()[rows]
        P, T = max(1, int(plen.max(initial=0))), max(1, int(alen.max(initial=0)))
        out = {
            "prompt_ids": torch.full((B, P), pad_id, dtype=torch.long),
            "prompt_mask": torch.zeros((B, P), dtype=torch.long),
            "action_ids": torch.full((B, T), pad_id, dtype=torch.long),
            "action_mask": torch.zeros((B, T), dtype=torch.long),
        }
        for i, r in enumerate(rows):
            p, a = self.prompt_ids.row(r), self.action_ids.row(r)
            if len(p):
                out["prompt_ids"][i, P - len(p) :] = torch.from_numpy(p.astype(np.int64))
                out["prompt_mask"][i, P - len(p) :] = 1
            out["action_ids"][i, : len(a)] = torch.from_numpy(a.astype(np.int64))
            out["action_mask"][i, : len(a)] = 1
        for col in columns:
            rag = self.columns[col]
            dtype = torch.long if col in LONG_COLUMNS else torch.float32
            t = torch.zeros((B, T, *rag.values.shape[1:]), dtype=dtype)
            np_dtype = np.int64 if dtype == torch.long else np.float32
            for i, r in enumerate(rows):
                v = rag.row(r)  # a read-only view of the Arrow buffer: copy while converting
                t[i, : len(v)] = torch.from_numpy(np.array(v, dtype=np_dtype))
            out[col] = t
        out["reward"] = torch.from_numpy(self.reward[rows].copy())
        out["is_ground_truth"] = torch.from_numpy(self.is_ground_truth[rows].copy())
        out["count"] = torch.from_numpy(self.count[rows].copy())
        return out


# --- the mini-batch sampler ----------------------------------------------------------------


class MixedSampler:
    """Mini-batches mixing ground-truth and generated programs at ``rho_real`` (Appendix H).

    Stateless: the rows of a micro-batch are a function of (seed, global micro-batch index, rank),
    drawn from two streams of seeded permutations (one per epoch of each pool). A resumed run
    therefore sees exactly the batches the uninterrupted run would have seen, and the processes
    of a multi-process run read disjoint slices of the same global batch.
    """

    def __init__(
        self,
        real: np.ndarray,
        generated: np.ndarray,
        batch_size: int,
        rho_real: float,
        seed: int,
        weights: np.ndarray | None = None,
    ):
        self.real = np.asarray(real, dtype=np.int64)
        gen = np.asarray(generated, dtype=np.int64)
        if weights is not None:  # a program sampled k times is drawn k times as often
            gen = np.repeat(gen, np.maximum(1, np.asarray(weights, dtype=np.int64)))
        self.generated = gen
        if not len(self.real) and not len(self.generated):
            raise BcoderError("no training programs to sample from")
        n_real = round(rho_real * batch_size)
        if not len(self.generated):
            n_real = batch_size
        elif not len(self.real):
            n_real = 0
        self.n_real, self.n_gen = n_real, batch_size - n_real
        self.seed = seed

    @lru_cache(maxsize=8)  # noqa: B019 (a few epochs' permutations, per sampler)
    def _perm(self, stream: int, epoch: int) -> np.ndarray:
        pool = self.real if stream == 0 else self.generated
        return np.random.default_rng([self.seed, stream, epoch]).permutation(pool)

    def _take(self, stream: int, start: int, n: int) -> list[int]:
        size = len(self.real if stream == 0 else self.generated)
        return [int(self._perm(stream, p // size)[p % size]) for p in range(start, start + n)]

    def rows(self, micro_index: int, rank: int = 0, world: int = 1) -> list[int]:
        """The rows of global micro-batch ``micro_index`` that process ``rank`` of ``world`` reads."""
        real = self._take(0, (micro_index * world + rank) * self.n_real, self.n_real)
        gen = self._take(1, (micro_index * world + rank) * self.n_gen, self.n_gen)
        return real + gen
