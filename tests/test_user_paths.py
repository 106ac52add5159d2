"""Paths a user names that cannot be written (read-only, a file where a directory goes) and a
results store that is not one: a one-line error and exit 2, never a traceback; files written as a
plain ``open(path, "w")`` would write them (the umask's mode); no lock file left behind."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from pathlib import Path

import pytest
from support.cli import bcoder

from bcoder.core.errors import BcoderError
from bcoder.core.fs import (
    PathError,
    atomic_dir,
    atomic_write_bytes,
    atomic_write_text,
    exclusive,
)

REPO = Path(__file__).resolve().parents[1]
COMMITTED_RUN = REPO / "results" / "runs" / "eval-smollm2"


def one_line_error(out: subprocess.CompletedProcess, *words: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def read_only(tmp_path):
    """A directory nobody may write into, root included (chmod; as root also chattr +i)."""
    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o555)
    immutable = False
    if os.geteuid() == 0:  # root writes through modes: make the directory immutable
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a read-only directory as root: {done.stderr!r}")
        immutable = True
    try:
        (path / "probe").touch()
    except OSError:
        pass
    else:
        pytest.skip("the file system lets this user write into a read-only directory")
    yield path
    if immutable:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    path.chmod(0o755)


# --- the library: every write of a user path -------------------------------------------------


def test_writes_into_a_read_only_directory_are_one_line_path_errors(read_only):
    for write in (
        lambda: atomic_write_text(read_only / "report.md", "x"),
        lambda: atomic_write_bytes(read_only / "sub" / "record.json.gz", b"x"),
        lambda: atomic_dir(read_only / "checkpoint").__enter__(),
        lambda: exclusive(read_only / "run" / ".lock", "run").__enter__(),
    ):
        with pytest.raises(PathError, match="cannot write") as err:
            write()
        assert isinstance(err.value, BcoderError) and isinstance(err.value, OSError)
        assert str(read_only) in str(err.value) and "\n" not in str(err.value)
    assert list(read_only.iterdir()) == []


def test_a_file_where_a_directory_goes_is_named(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(PathError, match=r"a-file is a file, not a directory"):
        atomic_write_text(tmp_path / "a-file" / "config.json", "{}")
    with pytest.raises(PathError, match=r"a-file is a file, not a directory"):
        atomic_write_text(tmp_path / "a-file" / "deeper" / "config.json", "{}")


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_written_files_and_dirs_get_the_umask_mode(tmp_path, mask):
    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "report.md", "x")
        atomic_write_bytes(tmp_path / "record.gz", b"x")
        with atomic_dir(tmp_path / "checkpoint") as d:
            (d / "w").write_text("")
    finally:
        os.umask(old)
    for name, full in (("report.md", 0o666), ("record.gz", 0o666), ("checkpoint", 0o777)):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == full & ~mask, name


def test_a_rewritten_file_keeps_its_mode(tmp_path):
    path = tmp_path / "private.json"
    path.write_text("{}")
    path.chmod(0o600)
    atomic_write_text(path, "{} ")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "{} "


def test_a_finished_lock_leaves_no_file_and_the_next_holder_takes_it(tmp_path):
    lock = tmp_path / "run" / ".lock-0-of-1"
    with exclusive(lock, "run"):
        assert lock.read_text().strip() == str(os.getpid())
    assert not lock.exists()
    held = pytest.raises(BcoderError, match="in use by another process")
    with exclusive(lock, "run"), held, exclusive(lock, "run"):  # taken again, refused while held
        pass
    assert not lock.exists()


# --- the CLI ---------------------------------------------------------------------------------


def test_eval_out_on_a_file_or_a_read_only_directory(tmp_path, read_only, fixture_data):
    mbpp = fixture_data / "mbpp" / "mbpp.jsonl"
    (tmp_path / "a-file").write_text("keep me")
    common = ["eval", "-d", mbpp, "--limit", "1", "-M", "1", "--model", "nope/nope"]
    one_line_error(bcoder(*common, "--out", tmp_path / "a-file"), "a-file", "is a file")
    assert (tmp_path / "a-file").read_text() == "keep me"
    one_line_error(bcoder(*common, "--out", read_only), str(read_only), "cannot write")
    one_line_error(bcoder(*common, "--out", read_only / "run"), str(read_only), "cannot write")


def test_eval_export_and_report_into_a_read_only_place(tmp_path, read_only):
    assert (COMMITTED_RUN / "config.json").is_file()
    out = bcoder("eval", "export", COMMITTED_RUN, "-o", read_only / "cands.jsonl")
    one_line_error(out, "cands.jsonl", "cannot write")
    out = bcoder("eval", "export", COMMITTED_RUN, "-o", tmp_path)  # a directory
    one_line_error(out, "cannot write", "directory")
    with contextlib.ExitStack() as stack:  # a run directory that cannot take its report
        run = tmp_path / "run"
        subprocess.run(["cp", "-r", str(COMMITTED_RUN), str(run)], check=True)
        run.chmod(0o555)
        stack.callback(run.chmod, 0o755)
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i", str(run)], check=True)
            stack.callback(subprocess.run, ["chattr", "-i", str(run)], check=True)
        one_line_error(bcoder("eval", "report", run), "cannot write")


@pytest.mark.parametrize(
    "content, words",
    [
        (b"this is not a database at all, just text" * 100, ["cannot be used", "not a database"]),
        (b"SQLite format 3\x00" + b"\xff" * 4000, ["cannot be used"]),
    ],
    ids=["text", "a-broken-header"],
)
def test_a_corrupt_results_store_is_one_line(tmp_path, content, words):
    store = tmp_path / "corrupt.sqlite"
    store.write_bytes(content)
    for args in (["runs", "list"], ["runs", "show", "last"]):
        one_line_error(bcoder(*args, env={"BCODER_STORE": str(store)}), str(store), *words)
    assert store.read_bytes() == content  # left as it was


def test_a_results_store_under_a_file_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    out = bcoder("runs", "list", env={"BCODER_STORE": str(tmp_path / "a-file" / "runs.sqlite")})
    one_line_error(out, "results store", "a-file is a file, not a directory")


def test_a_bad_row_is_one_line_that_names_no_internal_parameter(tmp_path, fixture_data):
    good = (fixture_data / "mbpp" / "mbpp.jsonl").read_text().splitlines()[0]
    bad = tmp_path / "problems.jsonl"
    bad.write_text(good + "\n{not json\n")
    out = bcoder("eval", "-d", bad, "--split", "all", "--out", tmp_path / "run", "-M", "1")
    one_line_error(out, f"{bad}:2", "not valid JSON")
    assert "skip_bad" not in out.stderr


def test_train_into_a_read_only_place_is_one_line(tmp_path, read_only):
    """The run directory is locked (so created) before the model loads: a bad one fails at once."""
    (tmp_path / "a-file").write_text("")
    env = {"BCODER_CACHE": str(tmp_path / "cache"),  # the model is never reached: no download
           "BCODER_PIP_ARGS": "--index-url http://127.0.0.1:9/simple --retries 0"}  # fmt: skip
    for run_dir, words in ((read_only / "run", ["cannot write", str(read_only)]),
                           (tmp_path / "a-file" / "run", ["a-file is a file, not a directory"])):  # fmt: skip
        out = bcoder("train", "collect", "-c", "smollm2-135m-head", "--set", f"run.dir={run_dir}",
                     env=env)  # fmt: skip
        one_line_error(out, *words)
    assert not (tmp_path / "cache").exists()
