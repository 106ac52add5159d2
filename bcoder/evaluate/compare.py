"""Two eval runs side by side: did a change help? (``bcoder eval compare BEFORE AFTER``)

Each method's pass@k (unranked, and ranked by the rankers asked for: by default each run's own,
the one its checkpoint chose) in both runs, on the problems both have finished, and the paired
difference AFTER minus BEFORE with a 95% paired bootstrap interval over problems: a problem's
two values are resampled together, so the noise that problems share (an easy problem is easy in
both) cancels. Runs must evaluate the same dataset and split; everything else may differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bcoder.core.errors import BcoderError
from bcoder.evaluate import metrics
from bcoder.evaluate.records import CONFIG, MODEL, SELECTION, ProblemRecord, load_records
from bcoder.evaluate.report import expand, problem_values, ranked_method
from bcoder.ranking.rankers import get_ranker


def finished(run_dir: Path) -> tuple[dict[str, Any], dict[str, ProblemRecord]]:
    """A run's settings and its finished (executed) records by problem id."""
    try:
        settings = json.loads((run_dir / CONFIG).read_text())["settings"]
        ids = json.loads((run_dir / SELECTION).read_text())["problem_ids"]
    except (OSError, ValueError, KeyError, TypeError):
        raise BcoderError(f"{run_dir}: not an eval run directory") from None
    records, _ = load_records(run_dir, ids)
    return settings, {r.problem_id: r for r in records}


def run_ranker(run_dir: Path) -> str | None:
    """The ranker a run's checkpoint chose (``model.json``), when it says."""
    try:
        return json.loads((run_dir / MODEL).read_text()).get("ranker")
    except (OSError, ValueError, AttributeError):
        return None


def compare_runs(
    before: Path,
    after: Path,
    ks: list[int],
    rankers: list[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The comparison the module docstring describes, as plain data."""
    (cfg_a, rec_a), (cfg_b, rec_b) = finished(before), finished(after)
    for key in ("dataset", "split"):
        if cfg_a.get(key) != cfg_b.get(key):
            raise BcoderError(
                f"the runs evaluate different {key}s ({cfg_a.get(key)!r} and {cfg_b.get(key)!r})"
            )
    common = [pid for pid in rec_a if pid in rec_b]
    if not common:
        raise BcoderError(f"{before} and {after} have no finished problem in common")
    names = rankers or list(dict.fromkeys(r for r in map(run_ranker, (before, after)) if r))
    for name in names:
        get_ranker(name)  # an unknown name fails here, in one line
    methods = ["unranked", *(ranked_method(n) for n in names)]
    values = {
        pid: [{k: problem_values(expand(rec[pid]), k) for k in ks} for rec in (rec_a, rec_b)]
        for pid in common
    }
    rows = []
    for method in methods:
        for k in ks:
            a = [values[p][0][k][method] for p in common]
            b = [values[p][1][k][method] for p in common]
            diff = [y - x for x, y in zip(a, b, strict=True)]
            low, high = metrics.bootstrap_ci(diff, n_boot, seed=seed)
            rows.append(
                {
                    "method": method,
                    "k": k,
                    "before": float(np.mean(a)),
                    "after": float(np.mean(b)),
                    "difference": float(np.mean(diff)),
                    "ci": [low, high],
                    "n": len(diff),
                }
            )
    return {
        "before": str(before),
        "after": str(after),
        "problems": len(common),
        "only_before": len(rec_a) - len(common),
        "only_after": len(rec_b) - len(common),
        "rows": rows,
    }
