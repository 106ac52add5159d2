"""Off-policy programs (other models', people's, historical) as training records
(``bcoder train import``).

Using programs the checkpoint did not write is the point of a value-based method. Each program
of a jsonl (``{"problem_id": ..., "code": ...}``) is written as the policy would have written it,
executed in the sandbox like collected samples, and stored in ``import-*`` shards of the collect
store (``source = "import"``, merged by identical actions with a count).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bcoder.core.errors import BcoderError
from bcoder.core.spec import Problem
from bcoder.core.types import Progress
from bcoder.problems.programs import read_programs
from bcoder.train.config import TrainConfig
from bcoder.train.data import ShardStore, collect_features
from bcoder.train.programs import (
    CollectSummary,
    Program,
    Prompter,
    execute,
    executor_for,
    tally,
    to_columns,
    written_programs,
)

EventFn = Callable[[Any], None]


def read_imports(path: str | Path) -> tuple[dict[str, list[str]], list[str]]:
    """Programs to import, grouped by the problem each names (a programs file,
    :mod:`bcoder.problems.programs`: its ``DATASET:`` prefix dropped, so ``mbpp:mbpp/601`` is
    ``mbpp/601``), and the file's notes."""
    programs = read_programs(path)
    out: dict[str, list[str]] = {}
    for row in programs.rows:
        if row.problem is None:
            raise BcoderError(f'{row.id}: no "problem" on this line')
        out.setdefault(row.problem.rsplit(":", 1)[-1], []).append(row.code)
    return out, programs.notes


def import_programs(
    cfg: TrainConfig,
    run_dir: str | Path,
    path: str | Path,
    tokenizer: Any,
    *,
    is_seq2seq: bool = False,
    executor: Any = None,
    on_event: EventFn | None = None,
) -> CollectSummary:
    """Import off-policy programs from a programs file: tokenise them as the policy's actions, execute
    them, and store them as ``source="import"`` shards (one per ``shard_problems`` problems)."""
    from bcoder.problems.extract import extract_code
    from bcoder.problems.load import load_problems

    t0 = time.perf_counter()
    emit = on_event or (lambda _e: None)
    wanted, notes = read_imports(path)
    digest = hashlib.sha1(Path(path).read_bytes()).hexdigest()[:10]
    lookup: dict[str, Problem] = {}
    for p in load_problems(cfg.data.dataset, ids=list(wanted)):
        # the file may name a problem by Problem.id ("mbpp/601") or by its dataset id ("601")
        lookup[p.id] = lookup[str(p.metadata.get("dataset_id", p.id))] = p
    missing = [pid for pid in wanted if pid not in lookup]
    if missing:
        raise BcoderError(f"{path}: unknown problem ids in {cfg.data.dataset}: {missing[:5]}")
    store = ShardStore(Path(run_dir) / "data" / "collect")
    prompter = Prompter(tokenizer, cfg, is_seq2seq)
    ids = sorted(wanted)
    size = cfg.collect.shard_problems
    summary = CollectSummary(problems=len(ids), notes=notes)
    done = store.names()
    with executor_for(cfg, executor) as ex:
        for k in range(0, len(ids), size):
            name = f"import-{digest}-{k // size:05d}"
            if name in done:
                summary.shards_skipped += 1
                continue
            programs: list[Program] = []
            for pid in ids[k : k + size]:
                problem = lookup[pid]
                if problem.tests is None:
                    summary.skipped_no_tests.append(problem.id)
                    continue
                family = prompter.family(problem)
                codes = [extract_code(c, problem, family) or c for c in wanted[pid]]
                programs += written_programs(prompter, problem, codes, "import")
            execute(programs, {p.problem_id: lookup[p.problem_id] for p in programs}, ex)
            store.write(name, to_columns(programs), collect_features(), problems=ids[k : k + size])
            summary.shards_written += 1
            tally(summary, programs)
            emit(Progress("import", min(k + size, len(ids)), len(ids), f"wrote {name}"))
    summary.seconds = time.perf_counter() - t0
    return summary
