"""The results store, on real SQLite files: round trips, prefixes, two writing processes, the CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from support.cli import bcoder

from bcoder.core.errors import BcoderError
from bcoder.core.types import Candidate, GeneratedTests, SolveResult, TokenScore
from bcoder.core.types import TestOutcome as Outcome
from bcoder.pipeline.store import SCHEMA_VERSION, Store


def make_result(seed: int = 0, n: int = 3) -> SolveResult:
    cands = []
    for i in range(n):
        toks = [
            TokenScore(f"t{j}é", 100 + j, 0.1 * j + seed, -0.2 * j, 0.3, 1 / 3 + j, -0.7, "x")
            for j in range(4 + i)
        ]
        cands.append(
            Candidate(
                code=f"def f():\n    return {i}\n",
                completion=f"```python\ndef f():\n    return {i}\n```",
                tokens=toks,
                reward=2.5 - i + seed,
                mean_logprob=-0.123456789,
                sum_logprob=-1.5,
                count=1 + i,
                outcome=["pass", "fail", None][i % 3],
                true_reward=[1.0, -0.3, None][i % 3],
                tests=[Outcome("pass", 0.01, "", "3\n", "")] if i == 0 else [],
                passed_examples=[True, False, None][i % 3],
                finish_reason="eos",
            )
        )
    return SolveResult(
        problem={"id": f"p{seed}", "text": "Return the max.\nMore text.", "tests": None},
        settings={"model": "tiny", "n": n, "temperature": 0.8, "seed": seed},
        candidates=cands,
        timings={"generate": 1.25, "score": 0.5},
    )


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "runs.sqlite")


def test_round_trip_is_equal(store):
    result = make_result()
    run_id = store.save(result)
    assert result.run_id == run_id
    back = store.get(run_id)
    assert back == result
    assert back.to_dict() == result.to_dict()
    assert back.candidates[0].tokens[1].v == -0.2  # floats survive exactly


def test_generated_tests_round_trip(store):
    """The tests the model wrote and each candidate's verdicts on them come back as saved."""
    result = make_result()
    result.generated = GeneratedTests(
        asserts=["assert f() == 0", "assert f() == 1"], samples=2, written=5, seconds=1.5
    )
    for c in result.candidates:
        c.generated = [Outcome("pass", 0.01, value="0"), Outcome("fail", 0.01, "", value="0")]
    back = store.get(store.save(result))
    assert back == result and back.generated.asserts[1] == "assert f() == 1"
    assert back.candidates[2].generated[1].verdict == "fail"
    none = make_result(seed=1)
    none.generated = GeneratedTests(note="the model wrote no test of f that parses")
    assert store.get(store.save(none)).generated.note.startswith("the model wrote no test")


def test_a_version_1_store_gains_the_generated_column(tmp_path):
    """A store written before runs had generated tests reads as before and takes new runs."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA_V1 + "PRAGMA user_version = 1;")
        db.execute(
            "INSERT INTO runs VALUES ('250101-000000-abcd', 1.0, 'p', 't', 'tiny', 0, NULL, NULL,"
            " 'none', '{\"id\": \"p\"}', '{}', '{}')"
        )
    store = Store(path)
    old = store.get("250101-000000-abcd")
    assert old.generated is None and old.problem == {"id": "p"}
    result = make_result()
    result.generated = GeneratedTests(asserts=["assert f() == 0"], samples=1, written=1)
    assert store.get(store.save(result)).generated == result.generated
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2


_SCHEMA_V1 = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY, created REAL NOT NULL, problem_id TEXT NOT NULL, title TEXT NOT NULL,
    model TEXT NOT NULL, n_candidates INTEGER NOT NULL, best_reward REAL, best_outcome TEXT,
    heads TEXT NOT NULL, problem TEXT NOT NULL, settings TEXT NOT NULL, timings TEXT NOT NULL
);
CREATE INDEX runs_created ON runs (created);
CREATE TABLE candidates (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, rank INTEGER NOT NULL,
    reward REAL NOT NULL, outcome TEXT, data TEXT NOT NULL, PRIMARY KEY (run_id, rank)
);
"""


def test_empty_result_round_trips(store):
    result = SolveResult(problem={"id": "", "text": ""}, settings={})
    back = store.get(store.save(result))
    assert back == result
    assert store.list()[0].best_reward is None


def test_list_summaries_newest_first(store):
    ids = [store.save(make_result(seed=s)) for s in range(3)]
    runs = store.list()
    assert [r.id for r in runs] == ids[::-1]
    top = runs[0]
    assert (top.problem_id, top.title, top.model, top.n_candidates) == (
        "p2",
        "Return the max.",
        "tiny",
        3,
    )
    assert top.best_reward == 4.5 and top.best_outcome == "pass"
    assert len(store.list(limit=2)) == 2


def test_a_cancelled_run_says_so_in_the_list(store):
    """A solve stopped by Ctrl-C is saved with what it had and settings.cancelled: runs list
    can tell it from a finished one."""
    done = store.save(make_result(0))
    partial = make_result(1, n=2)
    partial.settings.update(cancelled=True, samples_done=5)
    stopped = store.save(partial)
    flags = {r.id: r.cancelled for r in store.list()}
    assert flags == {done: False, stopped: True}
    assert store.list()[0].to_dict()["cancelled"] is True
    assert store.get(stopped).settings["cancelled"] is True
    from rich.console import Console

    from bcoder.cli.runs import runs_table

    console = Console(width=160, record=True)
    console.print(runs_table(store.list(), "runs", 160))
    lines = console.export_text().splitlines()
    rows = {r: next(line for line in lines if r in line) for r in (done, stopped)}
    assert "(cancelled)" in rows[stopped] and "(cancelled)" not in rows[done]


def test_prefix_lookup_and_errors(store):
    a = store.save(make_result(0))
    b = store.save(make_result(1))
    assert store.get(a[:-1]).run_id == a  # a unique prefix
    assert store.get("last").run_id == b
    # both ids start with the same date: an ambiguous prefix names the candidates
    with pytest.raises(BcoderError, match="ambiguous"):
        store.resolve_id(a[:6])
    with pytest.raises(BcoderError, match="no run 'nope'"):
        store.get("nope")
    with pytest.raises(BcoderError, match="no run"):
        store.get("%")  # LIKE wildcards are literal


def test_run_ids_sort_by_time():
    from bcoder.pipeline.store import new_run_id

    assert new_run_id(1_700_000_000) < new_run_id(1_700_000_001) < new_run_id(1_800_000_000)


def test_update_outcomes_after_the_fact(store):
    result = make_result()
    run_id = store.save(result)
    later = [Candidate.from_dict(c.to_dict()) for c in result.candidates]
    later[0].outcome, later[0].true_reward = "runtime_error", -0.6
    later[0].tests = [Outcome("runtime_error", 0.2, "ZeroDivisionError")]
    later[2].outcome = "pass"
    later[1].code = "ignored: only outcomes are updated"
    store.update_candidate_outcomes(run_id[:-1], later)
    back = store.get(run_id)
    assert [c.outcome for c in back.candidates] == ["runtime_error", "fail", "pass"]
    assert back.candidates[0].tests[0].detail == "ZeroDivisionError"
    assert back.candidates[1].code == result.candidates[1].code
    assert back.candidates[0].tokens == result.candidates[0].tokens
    assert store.list()[0].best_outcome == "runtime_error"
    with pytest.raises(BcoderError, match="3 candidates"):
        store.update_candidate_outcomes(run_id, later[:2])


def test_delete(store):
    run_id = store.save(make_result())
    store.delete(run_id)
    assert store.list() == []
    with sqlite3.connect(store.path) as db:  # candidates went with the run
        assert db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0] == 0


def test_schema_version_and_wal(store):
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(BcoderError, match="newer"):
        Store(store.path)


def test_default_path_follows_env(tmp_path, monkeypatch):
    monkeypatch.delenv("BCODER_STORE", raising=False)
    monkeypatch.setenv("BCODER_HOME", str(tmp_path / "home"))
    assert Store().path == tmp_path / "home" / "runs.sqlite"
    monkeypatch.setenv("BCODER_STORE", str(tmp_path / "x.sqlite"))
    assert Store().path == tmp_path / "x.sqlite"


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_store import make_result
    from bcoder.pipeline.store import Store
    store = Store(sys.argv[1])
    for i in range(int(sys.argv[2])):
        store.save(make_result(seed=int(sys.argv[3]) * 1000 + i, n=5))
    """
)


def test_two_processes_write_at_once(store):
    script = WRITER.format(tests=os.path.dirname(__file__))
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(store.path), "40", str(k)])
        for k in (1, 2)
    ]
    # and this process reads while they write
    seen = 0
    while any(p.poll() is None for p in procs):
        seen = max(seen, len(store.list(limit=1000)))
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    runs = store.list(limit=1000)
    assert len(runs) == 80 and len({r.id for r in runs}) == 80
    seeds = sorted(store.get(r.id).settings["seed"] for r in runs)
    assert seeds == sorted([1000 + i for i in range(40)] + [2000 + i for i in range(40)])


def test_cli_list_and_show(tmp_path):
    path = tmp_path / "runs.sqlite"
    run_id = Store(path).save(make_result())
    env = {"BCODER_STORE": str(path), "COLUMNS": "160"}
    out = bcoder("runs", "list", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert [r["id"] for r in json.loads(out.stdout)] == [run_id]
    out = bcoder("runs", "list", env=env)
    assert run_id in out.stdout and "Return the max." in out.stdout
    out = bcoder("runs", "show", run_id[:-1], "--json", env=env)
    assert SolveResult.from_dict(json.loads(out.stdout)) == Store(path).get(run_id)
    out = bcoder("runs", "show", "last", env=env)
    assert out.returncode == 0, out.stderr
    assert "candidates, best first" in out.stdout and "return 0" in out.stdout
    out = bcoder("runs", "show", "zzz", env=env)
    assert out.returncode == 2 and out.stderr.startswith("error: no run 'zzz'")
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("width", [80, 60])
def test_runs_list_keeps_the_numbers_whole_on_a_narrow_terminal(width):
    from rich.console import Console

    from bcoder.cli.runs import runs_table
    from bcoder.pipeline.store import RunSummary

    runs = [
        RunSummary("261201-053012-ab12", 1.7e9, "mbpp/11", "Write a python function to "
                   "remove the first and last occurrence of a given character from the string.",
                   "qwen2.5-coder-1.5b", 128, -123.456, "runtime_error"),
        RunSummary("261201-053013-cd34", 1.7e9, "", "two_sum", "/models/smollm2-135m.gguf", 8,
                   0.912, "pass"),
    ]  # fmt: skip
    console = Console(width=width, record=True)
    console.print(runs_table(runs, "runs", width))
    lines = console.export_text().splitlines()
    assert max(map(len, lines)) <= width
    for r in runs:
        row = next(line for line in lines if r.id in line)
        cells = [cell.strip() for cell in row.split("│")[1:-1]]
        assert cells[0] == r.id  # what `runs show` takes
        assert cells[-3:] == [str(r.n_candidates), f"{r.best_reward:.3f}", r.best_outcome]
