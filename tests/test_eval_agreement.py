"""Eval records and reports with the set rankers: generated verdicts and values kept compactly,
reports that recompute the agreement rankers, and older records that read as before."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest

from bcoder.core.types import Candidate, GeneratedTests
from bcoder.core.types import TestOutcome as Outcome
from bcoder.evaluate.records import (
    CandidateRecord,
    ProblemRecord,
    read_record,
    record_path,
    write_record,
)
from bcoder.evaluate.report import compute_figures, expand, problem_values, ranked_method
from bcoder.evaluate.summary import write_report
from bcoder.ranking.rankers import AGREEMENT, RANKER_LABELS

REPO = Path(__file__).resolve().parents[1]
VERDICT = {"p": "pass", "f": "fail", "r": "runtime_error", "s": "skipped"}


def outcomes(runs: str, values: list[str]) -> list[Outcome]:
    return [Outcome(VERDICT[v], value=x) for v, x in zip(runs, values, strict=True)]


def record(
    pid: str, rows: list[tuple], generated: GeneratedTests | None = GeneratedTests()
) -> ProblemRecord:
    """A problem's record from (name, count, outcome, R~, mean log-prob, verdicts, values) rows,
    made as eval makes it: from candidates."""
    cands = [
        Candidate(code=name, completion="", reward=reward, mean_logprob=lp, count=count,
                  outcome=outcome, true_reward=1.0 if outcome == "pass" else -0.3,
                  generated=outcomes(runs, values))
        for name, count, outcome, reward, lp, runs, values in rows
    ]  # fmt: skip
    return ProblemRecord(
        problem_id=pid,
        difficulty=None,
        has_example_tests=False,
        candidates=[CandidateRecord.from_candidate(c) for c in cands],
        generated=None if generated is None else generated.to_dict(),
    )


def three_problems() -> list[ProblemRecord]:
    """p/1: a wrong majority the likelihood prefers, which fails the (right) generated tests;
    p/2: no generated test parsed (the fallback: R~ or mean log-prob alone); p/3: wrong
    expectations that the wrong programs meet, while the right majority agrees on outputs."""
    written = GeneratedTests(asserts=["assert f(1) == 1", "assert f(2) == 2"], samples=2)
    none = GeneratedTests(samples=2, note="no parseable test")
    rows = {
        "p/1": [("W", 3, "fail", 1.0, -0.1, "ff", ["0", "0"]),
                ("R", 2, "pass", 0.0, -0.5, "pp", ["1", "2"])],
        "p/2": [("A", 2, "pass", 2.0, -1.0, "", []), ("B", 3, "fail", 1.0, -0.1, "", [])],
        "p/3": [("R", 3, "pass", 0.0, -0.9, "ff", ["1", "2"]),
                ("W", 2, "fail", 1.0, -0.1, "pp", ["0", "0"])],
    }  # fmt: skip
    return [record(pid, r, none if pid == "p/2" else written) for pid, r in rows.items()]


# top-1 pass per problem, worked out by hand from the docstring above
TOP1 = {
    "codet-reward": (1, 1, 0),  # p/2: by R~, A
    "codet-logprob": (1, 0, 0),  # p/2: by mean log-prob, B
    "outputs-reward": (0, 1, 1),
    "outputs-logprob": (0, 0, 1),
    "overlap-reward": (1, 1, 0),  # p/3: W's group passes both tests, R's none
    "overlap-logprob": (1, 0, 0),
    "mean-logprob": (0, 0, 0),
    "reward": (0, 1, 0),
}


def test_records_keep_generated_verdicts_and_values_compactly(tmp_path):
    rec = three_problems()[0]
    path = write_record(tmp_path, rec)
    raw = json.loads(gzip.decompress(path.read_bytes()))
    stored = raw["candidates"][0]
    assert stored["generated"] == "ff" and stored["generated_values"] == ["0", "0"]
    assert raw["generated"]["asserts"] == ["assert f(1) == 1", "assert f(2) == 2"]
    back = read_record(path)
    assert back.to_dict() == rec.to_dict()
    assert back.generated_tests == GeneratedTests(
        asserts=["assert f(1) == 1", "assert f(2) == 2"], samples=2
    )
    cand = back.candidates[1].to_candidate()
    assert [(t.verdict, t.value) for t in cand.generated] == [("pass", "1"), ("pass", "2")]
    # verdicts without known values keep no values column; all five verdicts survive
    plain = Candidate(code="x", completion="", generated=outcomes("pfrs", [""] * 4))
    plain.generated.append(Outcome("compile_error"))
    kept = CandidateRecord.from_candidate(plain)
    assert (kept.generated, kept.generated_values) == ("pfrsc", [])
    assert [t.verdict for t in kept.to_candidate().generated] == [
        "pass", "fail", "runtime_error", "skipped", "compile_error"
    ]  # fmt: skip


def test_an_older_record_without_generated_data_reads_as_before(tmp_path):
    committed = REPO / "results" / "runs" / "eval-ranked" / "problems"
    path = sorted(committed.iterdir())[0]
    raw = json.loads(gzip.decompress(path.read_bytes()))
    assert "generated" not in raw and "generated" not in raw["candidates"][0]  # an older one
    old = read_record(path)
    assert old.generated is None and old.generated_tests is None
    assert all(c.generated == "" and c.to_candidate().generated == [] for c in old.candidates)
    # written by the older code, read by this one: the same fields, nothing added but defaults
    assert {k: v for k, v in old.to_dict().items() if k != "generated"} == raw | {
        "candidates": [c | {"generated": "", "generated_values": []} for c in raw["candidates"]]
    }
    # a run of older records reports no agreement ranker (they would only repeat the fallback)
    fig = compute_figures([old], [1], n_boot=10)
    assert not any(ranked_method(n) in fig["metrics"]["all"] for n in AGREEMENT)
    assert not any(n in fig["auc"] for n in AGREEMENT) and "agreement" not in fig
    assert list(fig["vs_likelihood"]) == [
        "reward - mean-logprob", "terminal - mean-logprob", "tests-first - mean-logprob",
        "tests-first-terminal - mean-logprob", "tests-first - tests-first-logprob",
        "tests-first-terminal - tests-first-logprob",
    ]  # fmt: skip


def test_set_rankers_score_each_problem_as_a_whole():
    """expand: every ranker scores a problem's distinct programs together; samples repeat
    their program's score, and each problem's top 1 is the one worked out by hand."""
    for i, rec in enumerate(three_problems()):
        s = expand(rec)
        assert len(s.passed) == 5 == len(s.scores["codet-reward"])
        values = problem_values(s, 1)
        for name, top1 in TOP1.items():
            assert values[ranked_method(name)] == top1[i], (rec.problem_id, name)


def synthetic_run(run_dir: Path, records: list[ProblemRecord]) -> None:
    """An eval run directory as ``bcoder eval`` leaves it, minus the model work."""
    for rec in records:
        write_record(run_dir, rec)
    settings = {"dataset": "p", "split": None, "limit": None, "ids": None, "samples": 5,
                "ks": [1, 2], "model": "m", "checkpoint": None, "temperature": 0.6,
                "top_p": 0.95, "max_new_tokens": 64, "seed": 0, "rank_only": None,
                "bootstrap": 200, "data_path": "p.jsonl", "data_sha256": "ab" * 32,
                "protocol": "no-tests"}  # fmt: skip
    (run_dir / "config.json").write_text(json.dumps({"bcoder_eval": 1, "settings": settings}))
    selection = {"problem_ids": [r.problem_id for r in records], "ks": [1, 2],
                 "bootstrap": 200, "limit": None, "ids": None}  # fmt: skip
    (run_dir / "selection.json").write_text(json.dumps(selection))


def test_eval_report_of_a_run_that_wrote_tests_shows_the_agreement_rankers(tmp_path):
    run = tmp_path / "run"
    synthetic_run(run, three_problems())
    report = write_report(run, plots=False)
    cells = report["figures"]["metrics"]["all"]
    for name, top1 in TOP1.items():
        assert cells[ranked_method(name)]["1"]["value"] == pytest.approx(sum(top1) / 3), name
    assert list(report["figures"]["auc"])[-1] == "random"  # every ranker, agreement included
    assert set(AGREEMENT) <= set(report["figures"]["auc"])
    diff = report["figures"]["vs_likelihood"]["codet-reward - mean-logprob"]["1"]
    assert diff["value"] == pytest.approx(2 / 3) and diff["n"] == 3
    md = (run / "report.md").read_text()
    for name in AGREEMENT:
        assert f"| ranked by {RANKER_LABELS[name]} | " in md
        assert f"| `{name} - mean-logprob` | " in md
    assert "## rankers against likelihood (percentage points)" in md  # not all of them learned
    assert report["figures"]["agreement"] == {"problems": 3, "fell_back": 1}  # p/2: no test
    assert "generated tests ran on 2 of 3 problems; on the other 1 they order by" in md
    # a report recomputed later (bcoder eval report, a resumed run) reads the same records
    assert write_report(run, plots=False)["figures"] == report["figures"]
    assert record_path(run, "p/1").is_file()


def test_the_execute_stage_runs_candidates_and_the_ground_truth_on_generated_tests(
    fixture_data,
):
    """execute_record runs every candidate on the problem's own tests and on the tests the model
    wrote (the real sandbox), keeps the verdicts compactly, and runs the ground truth on the
    generated tests too: how many were right is the report's accuracy."""
    from bcoder.evaluate.config import EvalSettings
    from bcoder.evaluate.generated import generated_stats, markdown_lines
    from bcoder.evaluate.records import CandidateRecord
    from bcoder.evaluate.run import execute_record
    from bcoder.execution import Executor
    from bcoder.problems.load import load_problems
    from bcoder.problems.protocols import apply_protocol

    mbpp = next(iter(load_problems(fixture_data / "mbpp" / "mbpp.jsonl", split="test")))
    problem = apply_protocol(mbpp, "no-tests")  # mbpp/11: remove_Occ(s, ch)
    asserts = ['assert remove_Occ("hello", "l") == "heo"', 'assert remove_Occ("abcda", "a") == "bcd"',
               'assert remove_Occ("aaa", "a") == "b"']  # fmt: skip
    good = problem.solutions[0]
    bad = "def remove_Occ(s, ch):\n    return s[1:-1]\n"
    rec = ProblemRecord(
        problem_id=problem.id, difficulty=None, has_example_tests=False,
        candidates=[CandidateRecord.from_candidate(Candidate(good, "", count=3)),
                    CandidateRecord.from_candidate(Candidate(bad, "", count=1))],
        timings={"generate": 1.0, "write_tests": 2.0},
        generated=GeneratedTests(asserts=asserts, samples=2, written=5).to_dict(),
    )  # fmt: skip
    settings = EvalSettings(dataset="mbpp", protocol="no-tests")
    with Executor(timeout=4.0) as ex:
        execute_record(problem, rec, settings, ex, lambda _e: None)
    assert [c.outcome for c in rec.candidates] == ["pass", "fail"]  # MBPP's own asserts
    assert [c.generated for c in rec.candidates] == ["ppf", "fpf"]
    assert rec.generated["truth"] == "ppf" and rec.generated["asserts"] == asserts
    assert rec.timings["total"] == pytest.approx(3.0 + rec.timings["execute"])
    stats = generated_stats([rec])
    assert stats["accuracy"] == pytest.approx(2 / 3) and stats["with_tests"] == 1
    assert stats["codet_groups"] == {"groups": 2, "largest_share": 0.75}
    assert "66.7% of them right" in "\n".join(markdown_lines(stats))
    assert generated_stats([dataclasses.replace(rec, generated=None)]) is None


def test_with_examples_too_the_report_adds_pass_at_k_without_them():
    """HumanEval's docstring examples are the user's own tests: the rankers put the programs
    passing them first. The report then also ranks with the examples withheld, so that what the
    generated tests do alone shows; without examples there is no such table."""
    from bcoder.evaluate.markdown import render

    records = three_problems()
    plain = compute_figures(records, [1], n_boot=20)
    assert "without_examples" not in plain and "without_examples_vs_likelihood" not in plain
    assert "codet-reward - tests-first-logprob" not in plain["vs_likelihood"]
    for r in records:  # p/1's wrong majority W passes the examples, the right R does not
        r.has_example_tests = True
        for c in r.candidates:
            c.passed_examples = c.code == "W"
    fig = compute_figures(records, [1], n_boot=20)
    with_ex, alone = fig["metrics"]["all"], fig["without_examples"]
    # W first where it is (p/1, p/3: it fails); p/2 as before (by R~: A passes)
    assert with_ex["ranked_codet_reward"]["1"]["value"] == pytest.approx(1 / 3)
    assert alone["ranked_codet_reward"]["1"]["value"] == pytest.approx(2 / 3)  # as TOP1
    assert alone["unranked"] == with_ex["unranked"]
    # the differences to likelihood: without the examples, and with them against examples first
    vs_alone = fig["without_examples_vs_likelihood"]["codet-reward - mean-logprob"]["1"]
    expected = (
        alone["ranked_codet_reward"]["1"]["value"] - alone["ranked_mean_logprob"]["1"]["value"]
    )
    assert vs_alone["value"] == pytest.approx(expected) and vs_alone["n"] == 3
    vs_first = fig["vs_likelihood"]["codet-reward - tests-first-logprob"]["1"]["value"]
    first = with_ex["ranked_tests_first_logprob"]["1"]["value"]
    assert vs_first == pytest.approx(with_ex["ranked_codet_reward"]["1"]["value"] - first)
    for name in ("reward", "mean-logprob"):  # without examples, tests-first is the ranker alone
        first = "ranked_tests_first" if name == "reward" else "ranked_tests_first_logprob"
        assert alone[first]["1"]["value"] == alone[ranked_method(name)]["1"]["value"]
    report = {
        "config": {"ks": [1], "dataset": "humaneval", "split": "test", "model": "m",
                   "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 64, "seed": 0},
        "figures": fig, "model": {"name": "tiny"}, "data": {"path": "x", "sha256": "ab" * 32},
    }  # fmt: skip
    text = render(report)
    assert "Without the problems' own example tests" in text
    alone_part = text.split("Without the problems' own example tests")[1]
    assert "| ranker - likelihood |" in alone_part and "`codet-reward - mean-logprob`" in alone_part
