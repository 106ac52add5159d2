"""collect: sample m programs per training problem from the checkpoint policy, run them in the
sandbox, and store them with the ground-truth programs (paper, Appendix H: "Training data").

A program is stored as the *actions* the policy took (its completion tokens, ending at EOS, at
the end of a fenced code block, or at the length limit) together with the code extracted from
them and the terminal reward of running that code. Identical action sequences of a problem are
stored once with a ``count``; identical code is executed once. Ground truths are written the way
the policy would have written them (:func:`bcoder.problems.prompts.completion_for`), in the style
``collect.ground_truth_style`` names (:func:`restyled`), and, like imported
programs (:mod:`bcoder.train.offpolicy`: anyone's programs, from a jsonl), executed the same way.
One that is longer than ``data.max_target_tokens`` is cut there, like a sample, and is then the
cut program: its code is what the kept actions say, and its reward is that code's, from the
sandbox (even with ``collect.execute_ground_truth`` off), not the full solution's +1.

Shards hold ``collect.shard_problems`` problems each; problem k of the ordered problem list goes
to shard ``k // shard_problems``, and each shard samples from its own seed, so a resumed run
skips the finished shards and produces exactly what an uninterrupted one would have (and a run
that adds problems, e.g. a larger ``data.limit``, keeps the shards it already has). A finished
shard whose ground truths were written in another style gets them written again
(:func:`rewrite_ground_truths`); its samples stay.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.settings import NO_HEADS, problem_seed
from bcoder.core.spec import Problem
from bcoder.core.types import Progress
from bcoder.train.config import TrainConfig
from bcoder.train.data import ShardStore, collect_features
from bcoder.train.features import SAMPLED_FEATURES, features_meta, write_recorded
from bcoder.train.programs import (
    CollectSummary,
    Program,
    Prompter,
    executor_for,
    label,
    tally,
    to_columns,
    written_programs,
)
from bcoder.train.setup import StageClock

EventFn = Callable[[Any], None]


def load_training_problems(cfg: TrainConfig) -> list[Problem]:
    """The configured problems in file order (split, ids and limit applied)."""
    from bcoder.problems.load import load_problems

    data = cfg.data
    problems = list(load_problems(data.dataset, split=data.split, ids=data.ids or None))
    if data.limit:
        problems = problems[: data.limit]
    if not problems:
        raise BcoderError(f"no problems in {data.dataset!r} (split={data.split}, ids={data.ids})")
    return problems


def sample_programs(
    qmodel: Any,
    tokenizer: Any,
    prompter: Prompter,
    problems: list[Problem],
    seed: int,
    on_row: Callable[[], None] | None = None,
    features: int = 0,
) -> list[Program]:
    """m samples of the checkpoint policy for each problem, merged by identical actions.

    With ``features`` (the top-k of :class:`bcoder.decode.sampling.DecodeOptions`), each program also
    carries featurize's columns, recorded by the decode loop (``Program.features``).

    Rows of several problems share a decode batch (``collect.batch_size`` rows), which is what
    makes small-batch decoding affordable; the batches of a chunk are seeded from the seed and
    the chunk's first problem, so the same chunk always yields the same programs.
    """
    import torch

    from bcoder.decode.sampling import DecodeOptions, decode
    from bcoder.pipeline.engine import Engine
    from bcoder.problems.extract import extract_code

    m = prompter.cfg.collect.samples_per_problem
    if not problems or not m:
        return []
    sampling = prompter.cfg.collect.sampling()
    engine = Engine(tokenizer, qmodel, {}, NO_HEADS)  # stop tokens and fences exactly as solve's
    device = engine.backend.device
    prompts = {p.id: prompter.prompt(p) for p in problems}  # id -> (family, text, ids)
    merged: dict[tuple[str, tuple[int, ...]], Program] = {}
    by_id = {p.id: p for p in problems}
    generator = torch.Generator(device=device)
    generator.manual_seed(problem_seed(seed, problems[0].id))
    for family in sorted({f for f, _, _ in prompts.values()}):
        rows = [pid for p in problems for pid in [p.id] * m if prompts[p.id][0] == family]
        options = DecodeOptions(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_new_tokens=prompter.cfg.data.max_target_tokens,
            eos_ids=engine.eos_ids(),
            fence=engine.fence() if family == "chat" else None,  # chat prompts ask for a block
            score=bool(features),
            features=features,
        )
        for start in range(0, len(rows), sampling.batch_size):
            batch = rows[start : start + sampling.batch_size]
            ids = [prompts[pid][2] for pid in batch]
            gens = decode(qmodel, ids, options, tokenizer.pad_token_id, generator=generator)
            for gen in sorted(gens, key=lambda g: g.index):
                pid = batch[gen.index]
                key = (pid, tuple(gen.action_ids))
                if on_row is not None:
                    on_row()
                if key in merged:
                    merged[key].count += 1
                    continue
                text = tokenizer.decode(gen.action_ids, skip_special_tokens=True)
                code = extract_code(text, by_id[pid], family)
                merged[key] = Program(
                    pid, "sample", ids[gen.index], gen.action_ids, text, code, gen.finish_reason,
                    features=gen.features,
                )  # fmt: skip
    return list(merged.values())


def restyled(code: str, style: str) -> str:
    """A ground truth as the training data holds it.

    ``raw`` is the dataset's text. ``unparse`` is the program as ``ast.unparse`` prints it:
    4-space indents, no trailing spaces, no comments, the same semantics. The cross-entropy term
    of the theta-stage trains the policy on the ground truths, and on MBPP's text (tabs, 1- and
    2-space indents, trailing spaces) the lmhead adapter learnt that formatting: on MBPP test the
    trained policy wrote narrow indents in 123 of 496 programs, trailing spaces in 194 (the
    checkpoint: 0 and 1), and mixed them into programs that did not compile. A program that does
    not parse as Python 3 stays as it is (it is labelled by running it, like any other).
    """
    if style == "raw":
        return code
    try:
        return ast.unparse(ast.parse(code.replace("\r\n", "\n").replace("\r", "\n")))
    except (SyntaxError, ValueError, RecursionError):
        return code


def ground_truth_programs(prompter: Prompter, problem: Problem) -> list[Program]:
    """A problem's ground truths (``collect.max_ground_truths`` of them), in the configured style."""
    c = prompter.cfg.collect
    codes = [restyled(code, c.ground_truth_style)
             for code in problem.solutions[: c.max_ground_truths or None]]  # fmt: skip
    return written_programs(prompter, problem, codes, "ground_truth")


class _RowProgress:
    """Progress in problems while a shard's rows are being sampled."""

    def __init__(self, emit: EventFn, before: int, total: int, per_problem: int, name: str):
        self.emit, self.before, self.total, self.name = emit, before, total, name
        self.per_problem, self.rows = max(1, per_problem), 0

    def __call__(self) -> None:
        self.rows += 1
        done = self.before + self.rows // self.per_problem
        self.emit(Progress("collect", done, self.total, f"sampling {self.name}"))


def recording(cfg: TrainConfig, policy: Any) -> dict[str, Any]:
    """Whether collect records featurize's columns while sampling: ``{"topk": k, "meta": the
    features' settings}`` (k = 0: not). It does in the frozen-backbone modes, on a backend that
    scores in its decode loop, unless ``featurize.in_collect`` is off; featurize then uses the
    records whose settings are its own (the same backend, base, alpha, top-k)."""
    from bcoder.backends.hf import as_backend
    from bcoder.qmodel.config import FROZEN_BACKBONE

    backend = as_backend(policy)
    if not (cfg.featurize.in_collect and cfg.model.mode in FROZEN_BACKBONE):
        return {"topk": 0, "meta": None}
    if not backend.scores_in_loop:
        return {"topk": 0, "meta": None}
    meta = features_meta(cfg, policy)
    return {"topk": meta.get("topk", 1), "meta": meta}


def _check_meta(store: ShardStore, meta: dict[str, Any], what: str) -> None:
    old = store.meta()
    if old and any(old.get(k) != v for k, v in meta.items()):
        changed = ", ".join(k for k, v in meta.items() if old.get(k) != v)
        raise BcoderError(
            f"{store.root}: this run's {what} was made with different settings ({changed}); "
            "use a new run.dir"
        )


def collect(
    cfg: TrainConfig,
    run_dir: str | Path,
    qmodel: Any,
    tokenizer: Any,
    *,
    rank: int = 0,
    world: int = 1,
    executor: Any = None,
    on_event: EventFn | None = None,
) -> CollectSummary:
    """Sample, execute and store programs for every configured problem (shards not yet done).

    ``qmodel`` is the checkpoint policy: a BCoderModel (any mode at initialisation) or an
    inference backend (bcoder.backends, e.g. llama.cpp for a GGUF model);
    with ``world`` > 1, process ``rank`` does the shards ``k`` with ``k % world == rank``.
    """
    t0 = time.perf_counter()
    emit = on_event or (lambda _e: None)
    store = ShardStore(Path(run_dir) / "data" / "collect")
    problems = load_training_problems(cfg)
    c = cfg.collect
    meta = {
        "model": cfg.model.name,
        "samples_per_problem": c.samples_per_problem,
        "temperature": c.temperature,
        "top_p": c.top_p,
        "seed": cfg.run.seed,
        "shard_problems": c.shard_problems,
        "max_target_tokens": cfg.data.max_target_tokens,
    }
    _check_meta(store, meta, "collected data")
    if rank == 0:
        store.set_meta(meta)
    summary = CollectSummary(problems=len(problems))
    prompter = Prompter(tokenizer, cfg, qmodel.is_seq2seq)
    recorded = recording(cfg, qmodel)
    sampled = ShardStore(Path(run_dir) / "data" / SAMPLED_FEATURES)
    seed = cfg.run.seed
    emit(Progress("collect", 0, len(problems), "starting"))
    # a shard is done when it covers exactly its chunk (a changed problem list redoes the rest)
    done = {s["name"]: s for s in store.shards()}
    chunks = [problems[i : i + c.shard_problems] for i in range(0, len(problems), c.shard_problems)]
    finished = 0
    clock = StageClock(Path(run_dir), "collect")
    with executor_for(cfg, executor) as ex:
        for k, chunk in enumerate(chunks):
            name = f"shard-{k:05d}"
            if k % world != rank:
                continue
            entry = done.get(name, {})
            if entry.get("problems") == [p.id for p in chunk]:
                if c.ground_truth and entry.get("ground_truths", "raw") != c.ground_truth_style:
                    rewrite_ground_truths(store, entry, chunk, prompter, ex)
                    summary.shards_restyled += 1
                    emit(Progress("collect", finished, len(problems), f"{name}: ground truths"))
                summary.shards_skipped += 1
                finished += len(chunk)
                emit(Progress("collect", finished, len(problems), f"{name} already done"))
                continue
            with_tests = [p for p in chunk if p.tests is not None]
            summary.skipped_no_tests += [p.id for p in chunk if p.tests is None]
            on_row = _RowProgress(emit, finished, len(problems), c.samples_per_problem, name)
            programs = sample_programs(
                qmodel, tokenizer, prompter, with_tests, seed, on_row, recorded["topk"]
            )
            if c.ground_truth:
                for problem in with_tests:
                    programs += ground_truth_programs(prompter, problem)
            finished += len(chunk)
            label(programs, {p.id: p for p in chunk}, ex, c.execute_ground_truth)
            problem_ids = [p.id for p in chunk]
            if recorded["topk"]:  # before the shard's entry: an entry means both are there
                write_recorded(sampled, name, programs, recorded["meta"], problem_ids)
            store.write(
                name, to_columns(programs), collect_features(), problems=problem_ids,
                ground_truths=c.ground_truth_style,
            )  # fmt: skip
            if rank == 0:
                clock.lap(add={"shards": 1, "programs": len(programs)})
            summary.shards_written += 1
            tally(summary, programs)
            emit(Progress("collect", finished, len(problems), f"wrote {name}"))
    summary.seconds = time.perf_counter() - t0
    return summary


def rewrite_ground_truths(
    store: ShardStore,
    entry: dict[str, Any],
    chunk: list[Problem],
    prompter: Prompter,
    executor: Any,
) -> None:
    """Write a finished shard's ground truths again, in ``collect.ground_truth_style``.

    The other rows keep their order and their row numbers (collect writes ground truths last),
    so the features computed for them stay valid; the features of the old ground-truth rows are
    dropped (featurize computes the new ones, and then the phi values again). The features shard
    is rewritten first: a stop in between leaves a shard that is rewritten again next time.
    """
    from datasets import Dataset, concatenate_datasets

    name = entry["name"]
    ds = store.load(name)
    keep = [i for i, gt in enumerate(ds["is_ground_truth"]) if not gt]
    if keep != list(range(len(keep))):
        raise BcoderError(f"{store.root / name}: ground truths are not the shard's last rows")
    programs = [p for problem in chunk if problem.tests is not None
                for p in ground_truth_programs(prompter, problem)]  # fmt: skip
    label(programs, {p.id: p for p in chunk}, executor, prompter.cfg.collect.execute_ground_truth)

    def replaced(old: Any, new: dict[str, list]) -> Any:
        added = Dataset.from_dict(new, features=old.features)
        return concatenate_datasets([old.select(keep), added])

    feats = ShardStore(store.root.parent / "features")
    for fentry in feats.shards():
        if fentry["name"] == name:
            fds = feats.load(name)
            fds = replaced(fds, {col: [[] for _ in programs] for col in fds.column_names})
            feats.save(name, fds, **info_of(fentry))
    info = {**info_of(entry), "ground_truths": prompter.cfg.collect.ground_truth_style}
    store.save(name, replaced(ds, to_columns(programs)), **info)


def info_of(entry: dict[str, Any]) -> dict[str, Any]:
    """A shard entry's own fields (what ``ShardStore.write`` takes as ``info``)."""
    return {k: v for k, v in entry.items() if k not in ("name", "rows")}
