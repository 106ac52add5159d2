"""``bcoder eval compare``: two committed runs, paired by problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.cli import bcoder

from bcoder.core.errors import BcoderError
from bcoder.evaluate.compare import compare_runs
from bcoder.evaluate.records import SELECTION, load_records
from bcoder.evaluate.report import expand, problem_values

RUNS = Path(__file__).resolve().parents[1] / "results" / "runs"


def _part(run: str, dest: Path, n: int) -> Path:
    """A copy of a committed run with only its first ``n`` problems' records."""
    shutil.copytree(RUNS / run, dest, ignore=shutil.ignore_patterns("problems", "samples"))
    ids = json.loads((RUNS / run / SELECTION).read_text())["problem_ids"][:n]
    (dest / "problems").mkdir()
    for pid in ids:
        name = next((RUNS / run / "problems").glob(f"{pid.replace('/', '_')}-*"))
        shutil.copy(name, dest / "problems" / name.name)
    return dest


def test_two_runs_are_compared_on_the_problems_both_finished(tmp_path):
    before = _part("eval-init", tmp_path / "a", 30)  # the checkpoint policy's candidates
    after = _part("eval-trained", tmp_path / "b", 20)  # the trained policy's
    out = compare_runs(before, after, [1, 5], ["mean-logprob"], n_boot=200)
    assert out["problems"] == 20 and out["only_before"] == 10 and out["only_after"] == 0
    rows = {(r["method"], r["k"]): r for r in out["rows"]}
    assert set(rows) == {(m, k) for m in ("unranked", "ranked_mean_logprob") for k in (1, 5)}
    ids = json.loads((after / SELECTION).read_text())["problem_ids"][:20]
    a, _ = load_records(before, ids)
    b, _ = load_records(after, ids)
    want = np.mean([problem_values(expand(y), 1)["unranked"] for y in b]) - np.mean(
        [problem_values(expand(x), 1)["unranked"] for x in a]
    )
    row = rows[("unranked", 1)]
    assert row["difference"] == pytest.approx(want) and row["after"] - row["before"] == (
        pytest.approx(want)
    )
    assert row["ci"][0] <= row["difference"] <= row["ci"][1]
    same = compare_runs(before, before, [1], ["mean-logprob"], n_boot=50)["rows"]
    assert all(r["difference"] == 0 and r["ci"] == [0, 0] for r in same)  # a run against itself
    res = bcoder("eval", "compare", str(before), str(after), "--ranker", "mean-logprob")
    assert res.returncode == 0 and "20 problems both finished" in res.stdout
    assert "10 problems finished only before" in res.stderr


def test_runs_of_different_data_or_no_run_are_refused(tmp_path):
    mbpp = _part("eval-init", tmp_path / "a", 2)
    other = _part("eval-init", tmp_path / "b", 2)
    config = json.loads((other / "config.json").read_text())
    config["settings"]["split"] = "validation"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(BcoderError, match="different splits"):
        compare_runs(mbpp, other, [1])
    res = bcoder("eval", "compare", str(mbpp), str(tmp_path))
    assert res.returncode == 2 and res.stderr.strip().endswith("not an eval run directory")
    res = bcoder("eval", "compare", str(mbpp), str(mbpp), "--ranker", "nope")
    assert res.returncode == 2 and "unknown ranker" in res.stderr
