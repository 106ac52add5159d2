"""What ``bcoder train`` prints: ``train select``'s choice as a table of rankers (pass@1 and AUC on
the held-out problems), as eval's report shows them, not raw JSON in a table cell."""

from __future__ import annotations

import json
from pathlib import Path

from bcoder.cli.train import _print_result

SELECT = Path(__file__).resolve().parents[1] / "results/runs/qwen2.5-coder-1.5b-lmhead/candidate"


def test_select_prints_a_table_of_rankers(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    summary = json.loads((SELECT / "select.json").read_text())
    _print_result("select (runs/x)", summary, main=True)
    out = capsys.readouterr().out
    assert "{" not in out and '"' not in out, out  # no JSON
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    chosen = rows["example tests first, then R~"]
    assert "chosen" in chosen and "80.9" in chosen and "0.989" in chosen, out
    assert "learned" in rows["R~ (B-Coder)"] and "59.6" in rows["R~ (B-Coder)"]
    assert "83.0" in rows["upper bound"] and rows["upper bound"].rstrip(" │").endswith("-")
    assert "ranker chosen: tests-first" in out
    assert "46.3% sampling from the trained policy, 59.8% from the base LM" in out
    assert "samples from the base one" in out  # "checkpoint", the old name, shown as base


def test_other_stages_print_key_value_rows(capsys):
    _print_result("phi (runs/x)", {"steps": 10, "loss/td": 0.123456, "shards": [1, 2]}, main=True)
    out = capsys.readouterr().out
    assert "0.1235" in out and "1, 2" in out and "[" not in out
