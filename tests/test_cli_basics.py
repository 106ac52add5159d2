import os
import subprocess
import sys
import time

import pytest

from bcoder import __version__
from bcoder.core.errors import BcoderError
from bcoder.core.fs import exclusive


def test_version_and_help():
    out = subprocess.run(
        [sys.executable, "-m", "bcoder", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"bcoder {__version__}"
    out = subprocess.run(
        [sys.executable, "-m", "bcoder", "--help"], capture_output=True, text=True, check=True
    )
    assert "Usage" in out.stdout


HOLD_LOCK = """
import sys, time
from bcoder.core.fs import exclusive
with exclusive(sys.argv[1], "test"):
    print("held", flush=True)
    time.sleep(60)
"""


def _hold(lock_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock_path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_locked_run_directory_is_refused_until_its_holder_dies(tmp_path):
    lock = tmp_path / "run" / ".lock"
    holder = _hold(lock)
    try:
        match = f"in use by another process \\(pid {holder.pid}\\)"
        with pytest.raises(BcoderError, match=match), exclusive(lock, "run"):
            pass
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the kernel drops the lock
        holder.wait()
    with exclusive(lock, "run"):
        assert lock.read_text().strip() == str(os.getpid())


def test_train_refuses_a_run_directory_another_job_is_writing(tmp_path):
    run_dir = tmp_path / "run"
    holder = _hold(run_dir / ".lock")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bcoder", "train", "collect", "-c", "smollm2-135m-head",
             "--set", f"run.dir={run_dir}"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert f"run directory {run_dir} is in use by another process (pid {holder.pid})" in out.stderr
    assert not (run_dir / "data").exists()  # nothing was written


@pytest.mark.parametrize(
    "args, message",
    [
        (["collect", "--set", "data.dataset=nope"], "no dataset named 'nope'"),
        (["all", "--set", "data.dataset={tmp}/missing.jsonl"], "missing.jsonl: no such file"),
        (["import", "{tmp}/missing.jsonl"], "missing.jsonl: no such file"),
        (["import", "{tmp}"], "is a directory"),
        (["import", "{tmp}/programs.jsonl", "--set", "data.dataset=nope"], "no dataset named"),
    ],
)
def test_train_reads_its_input_before_loading_the_model(args, message, tmp_path, monkeypatch):
    """A bad input fails at once: the preset model would be loaded (or downloaded) first."""
    from typer.testing import CliRunner

    from bcoder.cli.main import app

    # Should the model be reached after all, it fails to download instead of downloading.
    monkeypatch.setenv("BCODER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BCODER_PIP_ARGS", "--index-url http://127.0.0.1:9/simple --retries 0")
    (tmp_path / "programs.jsonl").write_text('{"problem_id": 11, "code": "pass"}\n')
    stage, *rest = (a.format(tmp=tmp_path) for a in args)
    config = ["-c", "smollm2-135m-head", "--set", f"run.dir={tmp_path / 'run'}"]
    CliRunner().invoke(app, ["train", stage, "--help"])  # typer's own imports are not timed
    t0 = time.perf_counter()
    out = CliRunner().invoke(app, ["train", stage, *config, *rest])
    elapsed = time.perf_counter() - t0
    assert isinstance(out.exception, BcoderError) and message in str(out.exception)
    assert elapsed < 1.0
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
