"""Files: atomic writes (what the user made is never left half-written), reading a file the user
named (a bad path is a one-line error), and run-directory locks."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory next to ``target``; on success it replaces ``target``.

    On an exception the temporary directory is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a file the user named.

    Every path a command reads from its arguments comes through here, so whatever is wrong with
    one (missing, a directory, no permission, not UTF-8, ...) is a :class:`BcoderError` that says
    which on one line, never a traceback.
    """
    from bcoder.core.errors import BcoderError

    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BcoderError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BcoderError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise BcoderError(f"{path}: permission denied") from None
    except UnicodeDecodeError as err:
        raise BcoderError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise BcoderError(f"{path}: cannot read ({err.strerror or err})") from None


@contextlib.contextmanager
def exclusive(lock_path: str | Path, what: str) -> Iterator[None]:
    """Hold an advisory lock on ``lock_path`` for the block; a second holder gets a clear error.

    Two processes writing one run directory would mix their work, so every long job takes the
    lock of its directory first. The lock dies with its process (even on SIGKILL), so a crashed
    job never leaves a stale lock behind.
    """
    import fcntl

    from bcoder.core.errors import BcoderError

    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise BcoderError(f"{what} is in use by another process (pid {holder})") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cache_dir() -> Path:
    """The download cache: ``$BCODER_CACHE``, else the platform's user cache dir for bcoder."""
    env = os.environ.get("BCODER_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("bcoder"))
