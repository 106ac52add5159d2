"""featurize: the frozen per-token quantities, computed once (DESIGN section 2, "Precompute once").

Per action token of every collected program, from the checkpoint:

    ckpt_adv[t]    = A_ckpt(s_t, a_t) = alpha * (l_ckpt(s_t, a_t) - max_b l_ckpt(s_t, b))  float32
    ckpt_argmax[t] = argmax_b l_ckpt(s_t, b), the conservative operator's target action     int32
    hidden[t]      = the last hidden state at s_t, head and lmhead modes          float16 (T*H)

in lmhead mode also what the logit adapter's training step needs instead of the (V,) logits
(bcoder.qmodel.adapter.topk_features; the approximation is stated in candidate_max_and_lse):

    topk_ids[t], topk_logits[t]  the checkpoint's K largest logits at s_t, descending   (T*K)
    ckpt_logit[t] = l_ckpt(s_t, a_t)                                                  float32
    tail_lse[t]   = log sum exp l_ckpt(s_t, b) over b outside the top-k and a_t       float32

and after the phi-stage (:func:`compute_values`), ``u_phi[t]``, the raw phi head output at s_t.

Where they come from. In head and lmhead mode collect records them for the programs it samples
while it samples them (``featurize.in_collect``, :class:`bcoder.decode.sampling.DecodeOptions`
``features``: the decode loop has each step's logits and hidden states anyway) in
``data/sampled_features``, and featurize computes only the rest -- ground truths and imported
programs, which were never decoded -- in one teacher-forced pass, taking the recorded rows whose
settings (backend, base, alpha, top-k) are its own. On a CPU that pass is not cheap beside the
decode: llama.cpp scored 8 programs at ~26 tok/s where it sampled 8 rows at ~18 tok/s (README,
"Speed, measured"), so recomputing the samples cost nearly as much as sampling them. Recorded and
recomputed features differ only by floating-point order (KV-cached decode against one pass;
tests/test_train_e2e.py and tests/test_backend_llama.py compare them). lora and full mode, whose
LM trains, compute everything here. Hidden states are stored as float16 (10 mantissa bits; the
last hidden state of a causal LM is normalised, so its range fits; values are clamped to the
float16 range).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bcoder import rl
from bcoder.core.types import Progress
from bcoder.qmodel.adapter import topk_features
from bcoder.qmodel.batch import ActionBatch, make_batch
from bcoder.qmodel.config import FROZEN_BACKBONE
from bcoder.qmodel.model import BCoderModel
from bcoder.train.config import TrainConfig
from bcoder.train.data import ShardStore, TrainingData
from bcoder.train.features import (
    F16_MAX,
    feature_schema,
    features_meta,
    featurized_rows,
    recorded_rows,
    stored_row,
)
from bcoder.train.objectives import lm_hidden
from bcoder.train.setup import StageClock

EventFn = Callable[[Any], None]


@dataclass
class FeaturizeSummary:
    shards_written: int = 0
    shards_skipped: int = 0
    programs: int = 0
    tokens: int = 0  # computed here
    tokens_recorded: int = 0  # recorded by collect while sampling (featurize.in_collect)
    seconds: float = 0.0


def _batches(lengths: np.ndarray, size: int) -> list[list[int]]:
    """Row indices grouped by similar length (less padding), longest first."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + size].tolist() for i in range(0, len(order), size)]


def _prompt_batches(
    prompts: list[list[int]], rows: list[int], lengths: np.ndarray, size: int, padded: bool
) -> list[list[int]]:
    """``rows`` grouped by their prompt, longest program first, at most ``size`` a batch: the
    programs of a batch that share a prompt share its evaluation (llama.cpp's teacher-forced pass
    and BCoderModel's shared-prompt pass), so a prompt is evaluated once a batch (a prompt is
    ~2.5x a program's tokens on MBPP; batches by length, which mix problems, evaluated it once a
    program). Where rows are ``padded`` to the longest (transformers), a group is cut as
    ``score_tokens`` cuts it (:func:`bcoder.qmodel.scores.length_batches`)."""
    from bcoder.backends.llama import by_prompt
    from bcoder.qmodel.scores import length_batches

    batches = []
    for prompt, group in by_prompt([prompts[i] for i in rows]).items():  # positions in ``rows``
        members = [rows[k] for k in group]
        cuts = length_batches([int(lengths[i]) for i in members], size, len(prompt) * padded)
        batches += [[members[k] for k in batch] for batch in cuts]
    return batches


def token_features(
    logits: torch.Tensor, hidden: torch.Tensor, actions: torch.Tensor, alpha: float, meta: dict
) -> dict[str, torch.Tensor]:
    """The stored columns of a batch, before cutting rows to their length.

    Shape: logits (B, T, V), hidden (B, T, H), actions (B, T) -> name -> (B, T[, H or K]).
    """
    lf = logits.float()
    out = {
        "ckpt_adv": rl.taken(rl.advantage(lf, alpha), actions),
        "ckpt_argmax": lf.argmax(dim=-1),
    }
    if meta["hidden"]:
        out["hidden"] = hidden.float().clamp(-F16_MAX, F16_MAX)
    if meta.get("topk"):
        top_l, top_i, taken, tail = topk_features(lf, actions, meta["topk"])
        out.update(topk_ids=top_i, topk_logits=top_l, ckpt_logit=taken, tail_lse=tail)
    return out


@torch.no_grad()
def featurize(
    cfg: TrainConfig,
    run_dir: str | Path,
    ckpt: BCoderModel,
    pad_id: int,
    *,
    rank: int = 0,
    world: int = 1,
    on_event: EventFn | None = None,
) -> FeaturizeSummary:
    """Compute ckpt_adv, ckpt_argmax (and hidden in head / lmhead mode, the top-k columns in
    lmhead mode) for every collected shard not featurized yet. ``ckpt`` is any BCoderModel over
    the checkpoint (its "ckpt" role is used), or the llama.cpp backend.

    When the stored features were made with other settings (another base, alpha or mode), they
    are all recomputed.
    """
    t0 = time.perf_counter()
    emit = on_event or (lambda _e: None)
    data = Path(run_dir) / "data"
    collect, feats = ShardStore(data / "collect"), ShardStore(data / "features")
    meta = features_meta(cfg, ckpt)
    stale = settings_changed(feats.meta(), meta)
    if stale:
        emit(Progress("featurize", 0, 1, "settings changed: recomputing all features"))
        if rank == 0:
            feats.clear()
    done = set() if stale else feats.names()
    shards = collect.shards()
    checkpoint = CheckpointFeatures(ckpt, meta, cfg.model.alpha, pad_id)
    summary = FeaturizeSummary()
    clock = StageClock(Path(run_dir), "featurize")
    for k, entry in enumerate(shards):
        if k % world != rank:
            continue
        wrote = featurize_shard(cfg, data, entry, entry["name"] in done, checkpoint)
        if wrote is None:
            summary.shards_skipped += 1
            continue
        if rank == 0:  # after every shard: a stopped featurize leaves features that can be read
            feats.set_meta(checkpoint.stored_meta())
            clock.lap(add={"shards": 1, "programs": wrote.computed, "tokens": wrote.tokens})
        summary.shards_written += 1
        summary.programs += wrote.programs
        summary.tokens += wrote.tokens
        summary.tokens_recorded += wrote.tokens_recorded
        emit(Progress("featurize", k + 1, len(shards), f"wrote {entry['name']}"))
    if rank == 0:
        if summary.shards_written:  # u_phi was computed on other features
            ShardStore(data / "values").clear()
        feats.set_meta(checkpoint.stored_meta())
    summary.seconds = time.perf_counter() - t0
    return summary


def settings_changed(old: dict[str, Any], meta: dict[str, Any]) -> bool:
    """True when features are stored (``old`` is their meta) and were made with other settings
    than ``meta``."""
    # (features stored before backends were recorded came from transformers)
    return bool(old) and any(old.get(k, "transformers" if k == "backend" else None) != v
                             for k, v in meta.items())  # fmt: skip


class CheckpointFeatures:
    """The checkpoint's stored columns for some programs: from llama.cpp's teacher-forced pass,
    or from a forward of the transformers model (:func:`token_features`). Remembers the size of
    the hidden states it saw, which the features' meta records."""

    def __init__(self, ckpt: Any, meta: dict[str, Any], alpha: float, pad_id: int):
        self.ckpt, self.meta, self.alpha, self.pad_id = ckpt, meta, alpha, pad_id
        self.schema = feature_schema(meta)
        self.llama = meta["backend"] == "llama.cpp"
        self.device = ckpt.device if self.llama else next(ckpt.parameters()).device
        if not self.llama:
            ckpt.eval()
        self.hidden_size = 0

    def compute(
        self, prompts: list[list[int]], actions: list[list[int]]
    ) -> list[dict[str, np.ndarray]]:
        """Each program's columns as stored (flat, in the schema's dtypes)."""
        if self.llama:
            got = self.ckpt.features(prompts, actions, topk=self.meta.get("topk", 0))
            for st in got:
                self.hidden_size = st["hidden"].shape[-1]
            return [stored_row(st, self.schema) for st in got]
        batch = make_batch(prompts, actions, self.pad_id, str(self.device))
        logits, h = self.ckpt.run_lm("ckpt", batch)  # (B, T, V), (B, T, H)
        per_token = token_features(logits, h, batch.action_ids, self.alpha, self.meta)
        self.hidden_size = h.shape[-1]
        out: list[dict[str, np.ndarray]] = [{} for _ in actions]
        for col, x in per_token.items():
            x = x.cpu().numpy()
            dtype = self.schema[col].feature.dtype  # float32, int32 or the hidden dtype
            for b, program in enumerate(actions):
                out[b][col] = x[b, : len(program)].astype(dtype).reshape(-1)
        return out

    def stored_meta(self) -> dict[str, Any]:
        """The features' meta: their settings and the hidden size."""
        ckpt = self.ckpt
        size = self.hidden_size or (ckpt.lm.n_embd if self.llama else _hidden_size(ckpt))
        return {**self.meta, "hidden_size": size}


def _hidden_size(model: BCoderModel) -> int:
    return int(model.lm.get_input_embeddings().weight.shape[1])


@dataclass
class ShardFeatures:
    """What featurize did for one collect shard."""

    programs: int  # rows of the shard
    computed: int  # programs whose features were computed here
    tokens: int  # their tokens
    tokens_recorded: int  # tokens of the programs collect recorded while sampling


def featurize_shard(
    cfg: TrainConfig,
    data: Path,
    entry: dict[str, Any],
    featurized: bool,
    checkpoint: CheckpointFeatures,
) -> ShardFeatures | None:
    """Write the features of one collect shard (``entry``): the rows an earlier featurize
    stored (when ``featurized``) and the ones collect recorded while sampling are kept, the rest
    of the wanted rows (:func:`wanted_rows`) computed. None when all are there already."""
    collect, feats = ShardStore(data / "collect"), ShardStore(data / "features")
    name, schema = entry["name"], checkpoint.schema
    ds = collect.load(name)
    table = ds.data.table
    want = wanted_rows(table, cfg.featurize.max_samples_per_problem, cfg.run.seed)
    previous = featurized_rows(feats.load(name), schema) if featurized else {}
    if featurized and want <= set(previous):
        return None
    prompts, actions = (table.column(c).to_pylist() for c in ("prompt_ids", "action_ids"))
    lengths = np.array([len(a) for a in actions])
    have = recorded_rows(data, entry, checkpoint.meta, schema)  # row -> its stored columns
    tokens_recorded = int(lengths[list(have)].sum())
    have.update(previous)
    todo = np.array(sorted(want - set(have)), dtype=np.int64)
    size = cfg.featurize.batch_size
    for rows in _prompt_batches(prompts, todo.tolist(), lengths, size, not checkpoint.llama):
        got = checkpoint.compute([prompts[i] for i in rows], [actions[i] for i in rows])
        have.update(zip(rows, got, strict=True))
    rows_out: dict[str, list] = {
        col: [[] for _ in range(len(ds))] for col in schema
    }  # [] = left out
    for i, stored in have.items():
        for col, value in stored.items():
            rows_out[col][i] = value
    feats.write(name, rows_out, schema)
    return ShardFeatures(len(ds), len(todo), int(lengths[todo].sum()), tokens_recorded)


def wanted_rows(table: Any, max_samples: int, seed: int) -> set[int]:
    """The rows of a collect shard to featurize: every ground truth and import, and of each
    problem's sampled programs all, or with ``max_samples`` the first that many by a hash of
    (seed, problem, code) -- a stable choice, so a larger cap only adds programs."""
    cols = {c: table.column(c).to_pylist() for c in ("problem_id", "source", "code")}
    rows = list(zip(*cols.values(), strict=True))
    want = {i for i, (_, source, _) in enumerate(rows) if source != "sample"}
    by_problem: dict[str, list[tuple[str, int]]] = {}
    for i, (pid, source, code) in enumerate(rows):
        if source == "sample":
            key = hashlib.sha1(f"{seed}:{pid}:{code}".encode()).hexdigest()
            by_problem.setdefault(pid, []).append((key, i))
    for sampled in by_problem.values():
        want.update(i for _, i in sorted(sampled)[: max_samples or None])
    return want


def values_fresh(run_dir: str | Path, tag: str) -> bool:
    """True when data/values holds u_phi of the phi weights ``tag`` for every collected shard."""
    root = Path(run_dir) / "data"
    values = ShardStore(root / "values")
    return (
        values.meta().get("phi") == tag and values.names() >= ShardStore(root / "collect").names()
    )


def ensure_values(
    cfg: TrainConfig,
    run_dir: str | Path,
    model: BCoderModel,
    tag: str,
    pad_id: int,
    *,
    data: TrainingData | None = None,
    rank: int = 0,
    world: int = 1,
    barrier: Callable[[], None] = lambda: None,
    on_event: EventFn | None = None,
) -> bool:
    """Make data/values hold u_phi(s_t) of ``model``'s phi for every program; True if computed.

    ``tag`` names the phi weights; values of other weights (or incomplete ones) are recomputed.
    Head mode reads the stored hidden states (no LM pass); lora / full run the phi LM once.
    Every process must call this (``barrier`` synchronises them).
    """
    root = Path(run_dir) / "data"
    values = ShardStore(root / "values")
    if values_fresh(run_dir, tag):
        return False
    fresh = values.meta().get("phi") == tag
    if rank == 0 and not fresh:
        values.clear()
    barrier()
    done = values.names() if fresh else set()
    _compute_values(cfg, root, model, pad_id, data, done, rank, world, on_event)
    barrier()
    if rank == 0:
        values.set_meta({"phi": tag})
    barrier()
    return True


@torch.no_grad()
def _compute_values(
    cfg: TrainConfig,
    root: Path,
    model: BCoderModel,
    pad_id: int,
    data: TrainingData | None,
    done: set[str],
    rank: int,
    world: int,
    on_event: EventFn | None,
) -> None:
    from datasets import Features, Sequence, Value

    emit = on_event or (lambda _e: None)
    collect, values = ShardStore(root / "collect"), ShardStore(root / "values")
    head = cfg.model.mode in FROZEN_BACKBONE
    if data is None:
        data = TrainingData.load(root, need=("hidden",) if head else ())
    device = next(model.parameters()).device
    model.eval()
    start = 0
    shards = collect.shards()
    for k, entry in enumerate(shards):
        n = int(entry["rows"])
        rows_all = list(range(start, start + n))
        start += n
        if k % world != rank or entry["name"] in done:
            continue
        out: list[Any] = [None] * n
        lengths = data.action_ids.lengths()[rows_all]
        for local in _batches(lengths, cfg.featurize.batch_size):
            rows = [rows_all[i] for i in local]
            b = data.collate(rows, pad_id, ["hidden"] if head else [])
            if head:
                hid = b["hidden"].to(device)  # (B, T, H)
            else:
                fields = ("prompt_ids", "prompt_mask", "action_ids", "action_mask")
                hid = lm_hidden(model, "phi", ActionBatch(*(b[f].to(device) for f in fields)))
            u = model.phi_head(hid).float().cpu().numpy()  # (B, T)
            for j, i in enumerate(local):
                out[i] = u[j, : int(lengths[i])].astype(np.float32)
        feats = Features({"u_phi": Sequence(Value("float32"))})
        values.write(entry["name"], {"u_phi": out}, feats)
        emit(Progress("values", k + 1, len(shards), f"wrote {entry['name']}"))
