"""bcoder eval end to end on a tiny model and a few MBPP problems: records, report, resume, shards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support.cli import ONE_THREAD
from support.cli import bcoder as run_bcoder
from test_eval_report import PER_CANDIDATE, naive_ci, naive_values

from bcoder.core.errors import BcoderError
from bcoder.evaluate import EvalSettings, run_eval, write_report
from bcoder.evaluate.records import load_records
from bcoder.problems.load import load_problem
from bcoder.problems.programs import by_reference, read_programs
from bcoder.problems.prompts import PREFILL
from bcoder.ranking.rankers import RANKER_LABELS

MBPP = ("11", "12", "13")
SAMPLING = ["--samples", "3", "--k", "1,2", "--max-new-tokens", "16", "--batch-size", "3"]


def bcoder(*args: object, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return run_bcoder(*args, env=ONE_THREAD, timeout=timeout)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mbpp(fixture_data) -> Path:
    return fixture_data / "mbpp" / "mbpp.jsonl"


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from bcoder.pipeline.engine import Engine

    return Engine.load(str(tiny_model_dir))


def _candidates_file(path: Path, mbpp: Path) -> Path:
    """Programs 'from another model': right, duplicated, wrong, crashing and broken ones."""
    rows = {}
    for line in mbpp.read_text().splitlines():
        row = json.loads(line)
        if str(row["task_id"]) in MBPP:
            rows[str(row["task_id"])] = row
    lines = []
    for tid, row in rows.items():
        good = row["code"].replace("\r\n", "\n")
        name = row["test_list"][0].split("assert ", 1)[1].split("(", 1)[0].strip()
        for code in (
            good,
            f"def {name}(*args):\n    return None\n",  # wrong answer
            good,  # a duplicate of the right one
            f"def {name}(*args):\n    raise ValueError('no')\n",  # runtime error
            f"def {name}(*args)\n    return 1\n",  # does not compile
        ):
            lines.append(json.dumps({"problem_id": tid, "code": code}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rank_only_report_figures_recomputed_from_records(
    tmp_path, mbpp, tiny_model_dir, engine, capsys
):
    cands = _candidates_file(tmp_path / "cands.jsonl", mbpp)
    settings = EvalSettings.from_dict(dict(
        dataset=str(mbpp), ids=list(MBPP), ks=[1, 2, 5], model=str(tiny_model_dir),
        rank_only=str(cands), bootstrap=200, seed=2,
    ))  # fmt: skip
    out = run_eval(settings, tmp_path / "run", engine=engine)
    assert out.missing == [] and out.report is not None
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    records, _ = load_records(tmp_path / "run", out.problem_ids)
    assert [r.problem_id for r in records] == [f"mbpp/{t}" for t in MBPP]
    for r in records:  # verdicts from the sandbox, duplicates merged and counted
        assert r.n_samples == 5 and len(r.candidates) == 4 and r.has_example_tests
        by_outcome = {c.outcome: c for c in r.candidates}
        assert set(by_outcome) == {"pass", "fail", "runtime_error", "compile_error"}
        assert by_outcome["pass"].count == 2 and by_outcome["pass"].true_reward == 1.0
        assert by_outcome["compile_error"].true_reward == -1.0
        assert by_outcome["pass"].passed_examples is True
        assert by_outcome["fail"].passed_examples is False
        for c in r.candidates:  # per-token values kept, and they add up to R~
            assert c.n_tokens == len(c.tokens["r"]) > 0
            assert sum(c.tokens["r"]) == pytest.approx(c.reward, abs=1e-3 * c.n_tokens)
    metrics = report["figures"]["metrics"]
    assert list(metrics) == ["all"]
    for k in (1, 2, 5):
        naive = [naive_values(r, k) for r in records]
        for method, by_k in metrics["all"].items():
            vals = [v[method] for v in naive]
            assert by_k[str(k)]["value"] == pytest.approx(np.mean(vals), abs=1e-12), (method, k)
            assert by_k[str(k)]["ci"] == pytest.approx(naive_ci(vals, 200, 2), abs=1e-12)
    assert metrics["all"]["unranked"]["1"]["value"] == pytest.approx(2 / 5)
    assert metrics["all"]["upper_bound"]["1"]["value"] == 1.0
    assert metrics["all"]["filtered_reward"]["1"]["value"] == 1.0  # only the right one passes ex.
    md = (tmp_path / "run" / "report.md").read_text()
    assert "ranked by R~ (B-Coder)" in md and "ranked by mean log-prob" in md
    assert list(report["figures"]["auc"]) == PER_CANDIDATE  # no tests written: no agreement
    for name in PER_CANDIDATE:  # a pass@k row and an AUC per ranker
        label = RANKER_LABELS[name]
        assert f"| ranked by {label} | " in md
        (row,) = [line for line in md.splitlines() if line.startswith(f"| `{name}` | {label} |")]
        assert row.endswith(f" | {report['figures']['auc'][name]:.3f} |")
    assert report["model"]["ranker"] == "reward"  # no checkpoint: R~, and the report says so
    best = report["figures"]["best_ranker"]
    assert f"Best learned ranker by pass@1 here: `{best}`; the checkpoint ranks by `reward`" in md
    assert report["data"]["sha256"] and report["model"]["name"]
    assert report["timings"]["problems"] == 3 and report["timings"]["score"] > 0
    for name in report["plots"]:
        png = (tmp_path / "run" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 15_000
    # The report command recomputes the same figures, and labels the paper's numbers.
    from bcoder.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "report", str(tmp_path / "run"), "--paper"])
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    assert "PAPER" in shown
    assert "Table 4" in shown
    again = json.loads((tmp_path / "run" / "report.json").read_text())
    assert again["figures"] == report["figures"]
    assert any(r["table"] == "Table 4" and r["run"] is not None for r in again["paper"])
    # --out DIR --resume alone goes on with DIR's own settings (here: nothing left to do)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--out", str(tmp_path / "run"), "--resume", "--json"])
    assert exit_info.value.code == 0
    assert json.loads(capsys.readouterr().out)["figures"] == report["figures"]
    # export gives back every program, a row per sample: another run's --rank-only input
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "export", str(tmp_path / "run"), "--out", str(tmp_path / "export.jsonl")])
    assert exit_info.value.code == 0
    exported = (tmp_path / "export.jsonl").read_text().splitlines()
    given = [json.loads(line) for line in cands.read_text().splitlines()]
    assert sorted((r["problem"], r["code"]) for r in map(json.loads, exported)) == sorted(
        (f"{mbpp}:mbpp/{r['problem_id']}", r["code"]) for r in given
    )
    # ... and what `bcoder rank` reads: every row names a problem it can load
    rows = read_programs(tmp_path / "export.jsonl").rows
    refs = [ref for ref, _ in by_reference(rows, None)]
    assert [load_problem(ref).id for ref in refs] == [f"mbpp/{t}" for t in MBPP]


def _figures(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())["figures"]


def test_interrupted_limited_and_sharded_runs_give_the_same_report(
    tmp_path, mbpp, tiny_model_dir, engine
):
    # today's default prefill, as the CLI makes new runs (from_dict reads a saved run without the
    # field as one made before prefill existed)
    base = dict(dataset=str(mbpp), samples=3, ks=[1, 2], model=str(tiny_model_dir),
                max_new_tokens=16, batch_size=3, prefill=PREFILL)  # fmt: skip
    fast = {"engine": engine, "plots": False}
    full = run_eval(EvalSettings.from_dict(dict(**base, limit=3)), tmp_path / "full", **fast)
    reference = _figures(tmp_path / "full")
    assert full.report is not None and reference["problems"] == 3 and reference["samples"] == [3]

    # A real process, killed (SIGKILL) once its first problem is complete, then resumed.
    run = tmp_path / "killed"
    cli = ["eval", "-d", str(mbpp), "--limit", "3", "--model", str(tiny_model_dir), *SAMPLING]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bcoder", *cli, "--out", str(run)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, **ONE_THREAD},
    )  # fmt: skip
    deadline = time.time() + 240
    while not list((run / "problems").glob("*.json.gz")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 1 <= len(list((run / "problems").glob("*.json.gz"))) < 3
    assert not (run / "report.json").exists()
    resumed = run_eval(EvalSettings.from_dict(dict(**base, limit=3)), run, **fast, resume=True)
    assert 1 <= len(resumed.done_now) <= 2 and _figures(run) == reference

    # A run limited to one problem, then extended; and the same run in two shards.
    run_eval(EvalSettings.from_dict(dict(**base, limit=1)), tmp_path / "grown", **fast)
    out = run_eval(
        EvalSettings.from_dict(dict(**base, limit=3)), tmp_path / "grown", **fast, resume=True
    )
    assert len(out.done_now) == 2 and _figures(tmp_path / "grown") == reference
    first = run_eval(
        EvalSettings.from_dict(dict(**base, limit=3)), tmp_path / "shards", **fast, shard=(0, 2)
    )
    assert first.report is None and len(first.missing) == 1
    with pytest.raises(BcoderError, match="no results yet"):
        write_report(tmp_path / "shards")
    second = run_eval(
        EvalSettings.from_dict(dict(**base, limit=3)), tmp_path / "shards", **fast, shard=(1, 2)
    )
    assert second.report is not None and _figures(tmp_path / "shards") == reference
    with pytest.raises(BcoderError, match="temperature"):  # a different run in the same place
        run_eval(
            EvalSettings.from_dict(dict(**base, limit=3, temperature=0.9)), run, **fast, resume=True
        )


def test_a_rank_only_run_extends_to_more_problems(tmp_path, mbpp, tiny_model_dir, engine):
    """Resumed with a candidates file exported for more problems (wherever it is), a rank-only
    run scores only the new ones; a file with other programs for a scored problem is refused."""
    from bcoder.evaluate.records import CONFIG, SAMPLES, record_path

    cands = _candidates_file(tmp_path / "all.jsonl", mbpp).read_text().splitlines()
    first = tmp_path / "first.jsonl"  # the first two problems' programs
    first.write_text("\n".join(r for r in cands if json.loads(r)["problem_id"] != "13") + "\n")
    base = dict(dataset=str(mbpp), ids=list(MBPP), ks=[1, 2], model=str(tiny_model_dir))
    run = tmp_path / "run"
    out = run_eval(
        EvalSettings.from_dict(dict(**base, rank_only=str(first))), run, engine=engine, plots=False
    )
    assert out.problem_ids == ["mbpp/11", "mbpp/12"] and out.report is not None
    scored = {p: record_path(run, p, SAMPLES).read_bytes() for p in out.problem_ids}
    more = tmp_path / "elsewhere" / "more.jsonl"  # the export, made again for three problems
    more.parent.mkdir()
    more.write_text("\n".join(cands) + "\n")
    out = run_eval(EvalSettings.from_dict(dict(**base, rank_only=str(more))), run, engine=engine, plots=False,
                   resume=True)  # fmt: skip
    assert out.problem_ids == [f"mbpp/{t}" for t in MBPP] and out.done_now == ["mbpp/13"]
    assert {p: record_path(run, p, SAMPLES).read_bytes() for p in scored} == scored
    records, _ = load_records(run, out.problem_ids)
    assert [r.n_samples for r in records] == [5, 5, 5] and out.report is not None
    assert json.loads((run / CONFIG).read_text())["settings"]["rank_only"] == str(more)
    changed = [r.replace("return None", "return 0") for r in cands]  # another wrong answer
    first.write_text("\n".join(changed) + "\n")
    with pytest.raises(BcoderError, match="scored other programs for mbpp/11"):
        run_eval(
            EvalSettings.from_dict(dict(**base, rank_only=str(first))),
            run,
            engine=engine,
            resume=True,
        )


def test_a_run_resumes_only_with_the_same_checkpoint_weights(tmp_path):
    from bcoder.evaluate.records import weights_sha256
    from bcoder.evaluate.rundir import prepare_run_dir

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "heads.safetensors").write_bytes(b"first weights")
    (ckpt / "bcoder_config.json").write_text('{"ranker": "reward"}')
    first = weights_sha256(ckpt)
    (ckpt / "bcoder_config.json").write_text('{"ranker": "tests-first"}')  # select's own edit
    assert weights_sha256(ckpt) == first and weights_sha256(None) is None
    settings = {"checkpoint": str(ckpt), "checkpoint_sha256": first}
    prepare_run_dir(tmp_path / "run", {"settings": settings}, resume=False, sharded=False)
    shipped = tmp_path / "shipped"  # the same weights copied elsewhere: the same run
    shutil.copytree(ckpt, shipped)
    moved = {"settings": {"checkpoint": str(shipped), "checkpoint_sha256": weights_sha256(shipped)}}
    prepare_run_dir(tmp_path / "run", moved, resume=True, sharded=False)
    (ckpt / "heads.safetensors").write_bytes(b"re-shipped weights")  # same path, new weights
    again = {"settings": {**settings, "checkpoint_sha256": weights_sha256(ckpt)}}
    with pytest.raises(BcoderError, match="checkpoint_sha256"):
        prepare_run_dir(tmp_path / "run", again, resume=True, sharded=False)


def test_cli_errors_are_one_line(tmp_path, mbpp):
    from bcoder.evaluate.rundir import prepare_run_dir

    prepare_run_dir(tmp_path / "old", {"settings": {}}, resume=False, sharded=False)
    res = bcoder("eval", "-d", str(mbpp), "--out", str(tmp_path / "old"))
    assert res.returncode == 2 and "--resume" in res.stderr  # a run is never overwritten
    res = bcoder("eval", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and res.stderr.startswith("error:") and "--dataset" in res.stderr
    res = bcoder("eval", "--out", str(tmp_path / "x"), "--resume")
    assert res.returncode == 2 and "no eval run to resume" in res.stderr
    res = bcoder("eval", "export", str(tmp_path / "x"))
    assert res.returncode == 2 and "not an eval run directory" in res.stderr
    res = bcoder("eval", "-d", str(mbpp), "--samples", "2", "--k", "1,5", "--out", str(tmp_path))
    assert res.returncode == 2 and "larger than --samples" in res.stderr
    # -M 1 alone is a valid run (the default k are those that fit M): the missing file is the error
    res = bcoder("eval", "-d", str(tmp_path / "no/such.jsonl"), "-M", "1", "--out", str(tmp_path))
    assert res.returncode == 2 and res.stderr.strip().endswith("no/such.jsonl: no such file")
    res = bcoder("eval", "-d", str(mbpp), "--k", "one", "--out", str(tmp_path / "y"))
    assert res.returncode == 2 and "--k" in res.stderr
    res = bcoder("eval", "report", str(tmp_path))
    assert res.returncode == 2 and "not an eval run directory" in res.stderr
    assert "Traceback" not in res.stderr


def test_default_k_are_the_defaults_that_fit_m():
    assert EvalSettings.from_dict(dict(dataset="mbpp", samples=1)).ks == [1]
    assert EvalSettings.from_dict(dict(dataset="mbpp", samples=4)).ks == [1]
    assert EvalSettings.from_dict(dict(dataset="mbpp", samples=5)).ks == [1, 5]
    assert EvalSettings.from_dict(dict(dataset="mbpp", samples=0, rank_only="c.jsonl")).ks == [1, 5]
    with pytest.raises(BcoderError, match="--k 5 is larger than --samples 1"):
        EvalSettings.from_dict(
            dict(dataset="mbpp", samples=1, ks=[1, 5])
        )  # an explicit k stays an error


def test_a_run_resumes_only_with_the_same_prefill_and_protocol(tmp_path):
    """Runs started before prefill and protocols existed ran without prefill under the tests
    protocol: they resume so, and a run never mixes problems prompted two ways."""
    from bcoder.evaluate import EvalSettings
    from bcoder.evaluate.rundir import prepare_run_dir

    prepare_run_dir(
        tmp_path / "old", {"settings": {"dataset": "mbpp"}}, resume=False, sharded=False
    )
    assert EvalSettings.from_dict({"dataset": "mbpp"}).prefill is False
    same = {"settings": {"dataset": "mbpp", "prefill": False}}
    prepare_run_dir(tmp_path / "old", same, resume=True, sharded=False)
    other = {"settings": {"dataset": "mbpp", "prefill": True}}
    with pytest.raises(BcoderError, match="prefill=False, not True"):
        prepare_run_dir(tmp_path / "old", other, resume=True, sharded=False)
    assert EvalSettings.from_dict({"dataset": "mbpp", "prefill": True}).to_dict()["prefill"]
    assert EvalSettings.from_dict({"dataset": "mbpp"}).protocol == "tests"
    no_tests = {"settings": {"dataset": "mbpp", "protocol": "no-tests"}}
    with pytest.raises(BcoderError, match="protocol='tests', not 'no-tests'"):
        prepare_run_dir(tmp_path / "old", no_tests, resume=True, sharded=False)
    with pytest.raises(BcoderError, match="unknown protocol"):
        EvalSettings(dataset="mbpp", protocol="none")
    # how tests would be written is the run's only where it writes them
    writing = {"dataset": "mbpp", "test_writing": {"max_tests": 20}}
    prepare_run_dir(tmp_path / "t", {"settings": writing}, resume=False, sharded=False)
    fewer = {"settings": {**writing, "test_writing": {"max_tests": 5}}}
    prepare_run_dir(tmp_path / "t", fewer, resume=True, sharded=False)
    prepare_run_dir(tmp_path / "n", {"settings": {**writing, "protocol": "no-tests"}},
                    resume=False, sharded=False)  # fmt: skip
    fewer["settings"]["protocol"] = "no-tests"
    with pytest.raises(BcoderError, match="test_writing="):
        prepare_run_dir(tmp_path / "n", fewer, resume=True, sharded=False)


def test_a_rank_only_run_without_tests_has_the_model_write_tests(
    tmp_path, mbpp, tiny_model_dir, engine
):
    """Under the no-tests protocol the model writes tests for every problem, whoever wrote the
    candidates: another model's programs given by --rank-only too (sampled runs were covered)."""
    cands = _candidates_file(tmp_path / "all.jsonl", mbpp)
    settings = EvalSettings.from_dict(
        dict(dataset=str(mbpp), ids=list(MBPP)[:2], ks=[1], model=str(tiny_model_dir),
             rank_only=str(cands), protocol="no-tests",
             test_writing={"samples": 2, "max_new_tokens": 8})
    )  # fmt: skip
    out = run_eval(settings, tmp_path / "run", engine=engine, plots=False)
    records, missing = load_records(tmp_path / "run", out.problem_ids)
    assert not missing and len(records) == 2
    for r in records:
        assert r.generated is not None and r.generated["samples"] == 2
        assert r.timings["write_tests"] > 0


def test_a_humaneval_run_gains_the_models_tests_under_no_tests(tmp_path, tiny_model_dir, engine):
    """HumanEval's prompt is the same under both protocols, so a finished run resumed with
    --protocol no-tests keeps its candidates and gains tests the model wrote (one set of samples
    serves both); the other way round, and on MBPP (whose prompt changes), it is refused."""
    from bcoder.evaluate.records import CONFIG, SAMPLES, read_record, record_path

    humaneval = Path(__file__).parent / "fixtures" / "humaneval.jsonl"
    base = dict(dataset=str(humaneval), split=None, samples=2, ks=[1], max_new_tokens=8,
                model=str(tiny_model_dir))  # fmt: skip
    run = tmp_path / "run"
    first = run_eval(EvalSettings.from_dict(base), run, engine=engine, plots=False)
    assert first.report is not None and len(first.problem_ids) == 3
    sampled = {p: read_record(record_path(run, p, SAMPLES)) for p in first.problem_ids}
    assert all(r.generated is None for r in sampled.values())
    no_tests = dict(**base, protocol="no-tests", test_writing={"samples": 2, "max_new_tokens": 8})
    out = run_eval(EvalSettings.from_dict(no_tests), run, engine=engine, plots=False, resume=True)
    assert out.done_now == first.problem_ids and out.report is not None
    settings = json.loads((run / CONFIG).read_text())["settings"]
    assert settings["protocol"] == "no-tests" and settings["test_writing"]["samples"] == 2
    records, _ = load_records(run, out.problem_ids)
    for r in records:
        assert r.generated is not None and r.generated["samples"] == 2
        before = sampled[r.problem_id]
        assert [c.code for c in r.candidates] == [c.code for c in before.candidates]
        assert [c.n_tokens for c in r.candidates] == [c.n_tokens for c in before.candidates]
    again = run_eval(EvalSettings.from_dict(no_tests), run, engine=engine, plots=False, resume=True)
    assert again.done_now == []  # nothing more to write
    with pytest.raises(BcoderError, match="protocol='no-tests', not 'tests'"):
        run_eval(EvalSettings.from_dict(base), run, engine=engine, plots=False, resume=True)
