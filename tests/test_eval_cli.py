"""``bcoder eval`` as a user drives it: a resumed run takes a new --limit (and refuses a changed
setting), Ctrl-C says how to go on, progress has an ETA and a token count that never shrinks,
and a finished run leaves no lock file."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cli import ONE_THREAD
from support.cli import bcoder as run_bcoder

from bcoder.cli.eval import Eta, _progress, duration
from bcoder.core.types import Progress

TINY = ["-M", "1", "--k", "1", "--max-new-tokens", "4", "--batch-size", "1", "--timeout", "2"]


def bcoder(*args: object, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return run_bcoder(*args, env=ONE_THREAD, timeout=timeout)


@pytest.fixture
def mbpp(fixture_data) -> Path:
    return fixture_data / "mbpp" / "mbpp.jsonl"


def _selected(run: Path) -> list[str]:
    return json.loads((run / "selection.json").read_text())["problem_ids"]


def test_a_resumed_run_takes_a_new_limit_and_leaves_no_lock(tmp_path, mbpp, tiny_model_dir):
    run = tmp_path / "run"
    first = bcoder("eval", "-d", mbpp, "--limit", "1", *TINY, "--model", tiny_model_dir,
                   "--out", run, "--generate-only", "--quiet")  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert _selected(run) == ["mbpp/11"] and not list(run.glob(".lock*"))
    assert "done (" not in first.stderr  # --quiet: no progress lines

    grown = bcoder("eval", "--out", run, "--resume", "--limit", "2", "--generate-only")
    assert grown.returncode == 0, grown.stderr
    assert _selected(run) == ["mbpp/11", "mbpp/12"]
    assert len(list((run / "samples").glob("*.json.gz"))) == 2
    assert not list(run.glob(".lock*"))

    # a setting that would make it another run is refused, in one line
    changed = bcoder("eval", "--out", run, "--resume", "--temperature", "0.9")
    assert changed.returncode == 2 and "Traceback" not in changed.stderr
    assert "temperature" in changed.stderr and len(changed.stderr.strip().splitlines()) == 1


def test_test_writing_options_on_a_resumed_run(tmp_path, mbpp, tiny_model_dir):
    """--test-samples and --max-tests change a resumed run's test writing over its own settings:
    the same ones go on, other ones would make the tests another run's and are refused."""
    run = tmp_path / "run"
    first = bcoder("eval", "-d", mbpp, "--limit", "1", *TINY, "--model", tiny_model_dir,
                   "--out", run, "--generate-only", "--quiet", "--protocol", "no-tests",
                   "--test-samples", "2")  # fmt: skip
    assert first.returncode == 0, first.stderr
    writing = json.loads((run / "config.json").read_text())["settings"]["test_writing"]
    assert (writing["samples"], writing["max_tests"]) == (2, 5)
    same = bcoder("eval", "--out", run, "--resume", "--max-tests", "5", "--generate-only")
    assert same.returncode == 0, same.stderr  # samples stays the run's 2, not the default 4
    other = bcoder("eval", "--out", run, "--resume", "--max-tests", "3", "--generate-only")
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "test_writing" in other.stderr and len(other.stderr.strip().splitlines()) == 1


def test_ctrl_c_says_how_to_go_on_and_that_command_finishes_the_run(tmp_path, mbpp, tiny_model_dir):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bcoder", "eval", "-d", str(mbpp), "--limit", "3", *TINY,
         "--model", str(tiny_model_dir), "--out", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, **ONE_THREAD},
    )  # fmt: skip
    deadline = time.time() + 240
    while not list((run / "samples").glob("*.json.gz")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    command = f"bcoder eval --out {run} --resume"
    assert command in err, err
    again = bcoder(*command.split()[1:])
    assert again.returncode == 0, again.stderr
    assert (run / "report.json").is_file() and len(_selected(run)) == 3


def test_eta_from_the_problems_done_since_work_began():
    eta = Eta()
    assert eta.left(1, 4, 100.0) is None  # nothing began
    eta.begin(100.0)
    eta.begin(105.0)  # only the first counts
    assert eta.left(0, 4, 110.0) is None
    assert eta.left(1, 4, 110.0) == pytest.approx(30.0)
    assert eta.left(4, 4, 140.0) is None
    assert [duration(s) for s in (4.4, 200, 7500)] == ["4 s", "3 min 20 s", "2 h 05 min"]


def test_a_log_line_per_problem_has_an_eta(capsys):
    with _progress() as on_event:  # stderr is not a terminal here: a line per problem
        on_event(Progress("load", 0, 1, "loading"))
        on_event(Progress("generate", 5, 40, "1/8 candidates"))
        on_event(Progress("problems", 1, 4, "mbpp/11"))
        on_event(Progress("problems", 4, 4, "mbpp/14"))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("[1/4] mbpp/11 done (") and "eta " in lines[0], lines
    assert lines[1].startswith("[4/4] mbpp/14 done (") and "eta" not in lines[1], lines


def test_the_live_display_counts_tokens_without_a_shrinking_total():
    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    progress = _progress(console=console)
    with progress as on_event:
        on_event(Progress("generate", 0, 64, "0/4 candidates"))
        on_event(Progress("generate", 30, 50, "2/4 candidates"))  # rows ended: the bound shrinks
        on_event(Progress("problems", 1, 3, "mbpp/[i]"))
        on_event(Progress("generate", 10, 64, "0/4 candidates"))
        tasks = {t.fields["stage"]: t for t in progress.bar.tasks}
        assert tasks["generate"].total is None and tasks["generate"].fields["count"] == "10 tokens"
        assert tasks["problems"].total == 3 and tasks["problems"].fields["eta"].startswith("eta ")
    assert "mbpp/[i]" in console.file.getvalue()  # an id is not markup
