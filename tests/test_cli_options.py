"""The command line's flags: one meaning per short flag across commands, help that shows what to
type, shell completion, ``--quiet`` wherever there is progress, ``--threads`` capped at the CPUs
the process may use, and an unknown ``--model`` or ``--backend`` refused before torch loads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bcoder.cli.main import app
from bcoder.models.hardware import capped_threads, usable_cpus

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# train has no checkpoint flag; its -c is its config (README, scripts/reproduce_default.sh)
SHARED_SHORT_FLAGS = {"-c": {"--checkpoint", "--config"}}


def _commands() -> list[tuple[list[str], Any]]:
    """Every command as (its words after ``bcoder``, the click command), groups included."""
    out: list[tuple[list[str], Any]] = []

    def walk(words: list[str], cmd: Any) -> None:
        out.append((words, cmd))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk([*words, name], sub)

    walk([], typer.main.get_command(app))
    return out


def test_a_short_flag_means_one_thing_in_every_command():
    meaning: dict[str, set[str]] = {}
    where: dict[tuple[str, str], list[str]] = {}
    for words, cmd in _commands():
        for param in cmd.params:
            if param.param_type_name != "option":
                continue
            names = [*param.opts, *param.secondary_opts]
            longs = [n for n in names if n.startswith("--")]
            for short in (n for n in names if re.fullmatch(r"-[A-Za-z]", n)):
                meaning.setdefault(short, set()).update(longs[:1])
                where.setdefault((short, longs[0]), []).append(" ".join(words))
    clashes = {
        short: {long: where[(short, long)] for long in longs}
        for short, longs in meaning.items()
        if len(longs) > 1 and longs != SHARED_SHORT_FLAGS.get(short)
    }
    assert not clashes, clashes
    assert meaning["-n"] == {"--samples"} and meaning["-t"] == {"--tests"}


def _help(words: list[str]) -> str:
    out = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert out.exit_code == 0, out.output
    return out.output


def test_help_shows_what_to_type():
    """Boolean flags take no value; no Python type or format-string names leak into help."""
    for words, cmd in _commands():
        text = _help(words)
        for leak in ("<bool>", "BOOLEAN", "<list[", "{problem}", "<str>", "<path>"):
            assert leak not in text, (words, leak, text)
        for param in cmd.params:
            if param.param_type_name == "option" and param.is_flag:
                assert param.display_type_rich(None) is None, (words, param.opts)


def test_shell_completion_is_offered():
    text = _help([])
    assert "--install-completion" in text and "--show-completion" in text
    out = subprocess.run(
        [sys.executable, "-m", "bcoder", "--show-completion", "bash"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"},
    )  # fmt: skip
    assert out.returncode == 0 and "complete" in out.stdout and "bcoder" in out.stdout, out


@pytest.mark.parametrize("words", [["solve"], ["rank"], ["eval"], ["train", "all"]])
def test_every_command_with_progress_takes_quiet(words):
    text = _help(words)
    assert "--quiet" in text and "-q" in text


def test_threads_are_capped_at_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert usable_cpus() == 1 and capped_threads(999) == 1 and capped_threads(1) == 1


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is missing")
def test_threads_999_is_capped_and_said():
    """On one CPU (taskset), --threads 4 becomes 1 with a note, before anything loads."""
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", _REPORT_TORCH, "solve",
         str(EXAMPLES / "two_sum.txt"), "--threads", "4", "--model", "no-such-model"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "note: --threads 4 is more than the 1 CPU this process may use: using 1" in out.stderr


def test_the_capped_threads_reach_torch_and_the_engine(monkeypatch):
    """What the engine loads with and torch runs with, when --threads asks for too many."""
    import torch

    from bcoder.core.errors import BcoderError
    from bcoder.pipeline.engine import Engine

    seen = {}

    def load(cls, *args, threads=0, **kwargs):
        seen["threads"] = threads
        raise BcoderError("stop here")

    monkeypatch.setattr(Engine, "load", classmethod(load))
    before = torch.get_num_threads()
    try:
        out = CliRunner().invoke(
            app, ["solve", str(EXAMPLES / "two_sum.txt"), "--threads", "999", "--no-save"]
        )
        assert isinstance(out.exception, BcoderError), out.output
        assert torch.get_num_threads() <= usable_cpus()
    finally:
        torch.set_num_threads(before)
    assert seen["threads"] == usable_cpus()
    assert f"--threads 999 is more than the {usable_cpus()} CPU" in out.output


# Runs the CLI in this process and says, after it exits, whether torch was imported.
_REPORT_TORCH = """
import sys
from bcoder.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as end:
    print(end.code, "torch" in sys.modules)
"""


@pytest.mark.parametrize(
    "args, message",
    [
        (["solve", EXAMPLES / "two_sum.txt", "--model", "no-such-model"], "unknown model"),
        (["solve", EXAMPLES / "two_sum.txt", "--backend", "nope"], "unknown backend"),
        (["rank", EXAMPLES / "two_sum.txt", "--model", "no-such-model"], "unknown model"),
        (["eval", "-d", "mbpp", "--out", "{tmp}", "--backend", "nope"], "unknown backend"),
        (["eval", "-d", "mbpp", "--out", "{tmp}", "-m", "./missing.gguf"], "not found"),
        (["tui", "--model", "no-such-model"], "unknown model"),
    ],
)
def test_an_unknown_model_or_backend_fails_before_torch_loads(args, message, tmp_path):
    args = [str(a).format(tmp=tmp_path / "run") for a in args]
    out = subprocess.run(
        [sys.executable, "-c", _REPORT_TORCH, *args], capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == ["2", "False"], out.stdout + out.stderr
    assert out.stderr.startswith("error: ") and message in out.stderr


def test_quiet_solve_prints_no_progress_lines(tiny_model_dir, tmp_path):
    """Without a terminal, solve streams a line per tested candidate on stderr; --quiet drops
    them."""
    args = [sys.executable, "-m", "bcoder", "solve", str(EXAMPLES / "two_sum.txt"), "--model",
            str(tiny_model_dir), "-n", "2", "--max-new-tokens", "4", "--no-save",
            "--format", "json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BCODER_CACHE": str(tmp_path)}
    loud = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    quiet = subprocess.run([*args, "-q"], capture_output=True, text=True, timeout=300, env=env)
    assert loud.returncode == 0 and quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "candidate 1:" in loud.stderr and "candidate" not in quiet.stderr, quiet.stderr
