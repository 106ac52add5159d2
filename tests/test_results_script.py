"""scripts/results.py, the README's Results table, on eval run directories of synthetic records:
each comparison keeps the problems both its runs finished, and its paired differences are
recomputed naively."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_eval_report import naive_ci, naive_values, synthetic_records

from bcoder.evaluate.records import SELECTION, write_record

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "results.py"


def eval_run(root: Path, name: str, seed: int, ids: list[str]) -> list:
    """An eval run directory holding synthetic records of MBPP-like ids (all but the last)."""
    records = [
        dataclasses.replace(r, problem_id=pid, difficulty=None)
        for r, pid in zip(synthetic_records(n_problems=len(ids), seed=seed), ids, strict=True)
    ]
    run = root / name
    for r in records[:-1] if name == "eval-trained" else records:
        write_record(run, r)
    (run / SELECTION).write_text(json.dumps({"problem_ids": ids}))
    return records


def test_results_table_from_eval_runs(tmp_path):
    ids = [f"mbpp/{t}" for t in range(11, 20)]
    init = eval_run(tmp_path, "eval-init", 1, ids)
    ranked = eval_run(tmp_path, "eval-ranked", 2, ids)
    trained = eval_run(tmp_path, "eval-trained", 3, ids)
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", str(tmp_path), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    md = (out / "results.md").read_text()
    data = json.loads((out / "results.json").read_text())
    assert data["problems"] == ids and "9 problems (task ids 11-19)" in md
    # eval-trained has not finished the last problem: only its own rows do without it
    assert data["trained_problems"] == ids[:-1] and "8 problems (task ids 11-18)" in md
    assert (out / "reward_density-ranked.png").read_bytes()[:4] == b"\x89PNG"
    # ranked by the trained heads minus the base model's likelihood, paired by problem
    for k in (1, 5):
        diff = [
            naive_values(a, k)["ranked_reward"] - naive_values(b, k)["ranked_mean_logprob"]
            for a, b in zip(ranked, init, strict=True)
        ]
        cell = data["differences"]["ranked: reward - init: mean-logprob"][str(k)]
        assert cell["value"] == pytest.approx(np.mean(diff), abs=1e-12)
        assert cell["ci"] == pytest.approx(naive_ci(diff, 1000, 0), abs=1e-12)
        row = "| ranked: reward | init: mean-logprob | "
        assert row in md
    # the trained policy against the checkpoint policy, unranked, on the 8 problems both finished
    diff = [
        naive_values(a, 1)["unranked"] - naive_values(b, 1)["unranked"]
        for a, b in zip(trained[:-1], init[:-1], strict=True)
    ]
    cell = data["differences"]["trained: unranked - init: unranked"]["1"]
    assert cell["value"] == pytest.approx(np.mean(diff), abs=1e-12)
    assert cell["ci"] == pytest.approx(naive_ci(diff, 1000, 0), abs=1e-12)
    unranked = np.mean([naive_values(a, 1)["unranked"] for a in init])
    assert f"| checkpoint policy | unranked (no trained heads) | {100 * unranked:.1f} [" in md
