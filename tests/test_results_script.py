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


def run_script(script: Path, runs: Path, out: Path) -> subprocess.CompletedProcess:
    """``python3 SCRIPT --runs RUNS --out OUT``, as the README runs it."""
    return subprocess.run(
        [sys.executable, str(script), "--runs", str(runs), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


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
    r = run_script(SCRIPT, tmp_path, out)
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


def test_no_tests_tables_from_eval_runs(tmp_path):
    """scripts/results_no_tests.py: per ranker pass@k and its paired difference to likelihood,
    recomputed from the records as the eval's report computes them; HumanEval twice (examples
    withheld, and examples first against examples-first likelihood); the best ranker named with
    its interval; the generated tests' figures."""
    from test_eval_agreement import three_problems

    from bcoder.evaluate.records import CONFIG
    from bcoder.evaluate.report import compute_figures

    settings = {"samples": 5, "temperature": 0.6, "prefill": False}
    runs = {"mbpp-no-tests": three_problems(), "humaneval-no-tests": three_problems()}
    for r in runs["humaneval-no-tests"]:  # p/1's wrong majority W passes the examples
        r.has_example_tests = True
        for c in r.candidates:
            c.passed_examples = c.code == "W"
    for name, records in runs.items():
        for r in records:
            write_record(tmp_path / name, r)
        ids = [r.problem_id for r in records]
        (tmp_path / name / SELECTION).write_text(json.dumps({"problem_ids": ids}))
        (tmp_path / name / CONFIG).write_text(json.dumps({"settings": settings}))
    out = tmp_path / "out"
    script = SCRIPT.parent / "results_no_tests.py"
    r = run_script(script, tmp_path, out)
    assert r.returncode == 0, r.stderr[-3000:]
    md = (out / "results.md").read_text()
    data = json.loads((out / "results.json").read_text())
    fig = compute_figures(runs["mbpp-no-tests"], [1, 5], seed=0, n_boot=1000)
    mbpp = data["mbpp"]
    assert mbpp["figures"]["vs_likelihood"] == json.loads(json.dumps(fig["vs_likelihood"]))
    # the best agreement ranker by pass@1 (codet-reward and overlap-reward both 2/3; first wins)
    assert mbpp["best"]["ranker"] == "codet-reward"
    assert mbpp["best"]["vs_base"] == fig["vs_likelihood"]["codet-reward - mean-logprob"]
    assert "## mbpp: 3 problems (M = 5, temperature 0.6)" in md
    assert "Best: `codet-reward`, +66.7 points pass@1 over `mean-logprob`" in md
    he = md.split("## humaneval")[1]
    assert (
        "Docstring examples withheld" in he
        and "| ranked by | pass@1 | pass@5 | pass@1 - tests-first-logprob" in he
    )
    assert data["humaneval"]["best"]["base"] == "tests-first-logprob"
    assert data["humaneval"]["best_without_examples"]["base"] == "mean-logprob"
    assert "2 of 3 problems got at least one" in md and "Seconds a problem" in md
    empty = run_script(script, tmp_path / "none", out)
    assert empty.returncode == 1 and "no no-tests eval run" in empty.stderr
