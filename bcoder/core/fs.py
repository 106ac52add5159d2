"""Files: atomic writes (what the user made is never left half-written), reading a file the user
named (a bad path is a one-line error), and run-directory locks.

Every write to a path the user named goes through here, so whatever is wrong with one (no
permission, a read-only file system, a file where a directory should be, a full disk) is a
:class:`PathError` that says which on one line, never a traceback; and a written file gets the
mode a plain ``open(path, "w")`` would give it (the umask's, or the mode of the file it replaces),
not the 0600 of a temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bcoder.core.errors import BcoderError


class PathError(BcoderError, OSError):
    """A path that cannot be written or read, explained in one line. An OSError too, so code that
    handles a failed write (the TUI's save) goes on handling it."""


_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EISDIR: "it is a directory",
    errno.ENOENT: "no such file or directory",
    errno.ENAMETOOLONG: "file name too long",
}


def write_error(path: str | Path, err: OSError) -> PathError:
    """The one-line error for a failed write of ``path``; names the part of the path at fault
    when that is not ``path`` itself (a parent that is a file, or that is not writable)."""
    path = Path(path)
    why = _REASONS.get(err.errno or 0) or err.strerror or type(err).__name__
    where = Path(err.filename) if isinstance(err.filename, str) else None
    if err.errno in (errno.EEXIST, errno.ENOTDIR) and where is not None:
        bad = next((p for p in (where, *where.parents) if p.exists() and not p.is_dir()), where)
        why = f"{bad} is a file, not a directory"
    elif where is not None and where != path and where in path.parents:
        why = f"{why}: {where}"
    return PathError(f"{path}: cannot write ({why})")


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an OSError raised in the block into a :class:`PathError` naming ``path``."""
    try:
        yield
    except PathError:
        raise
    except OSError as err:
        raise write_error(path, err) from None


def umask() -> int:
    """The process's umask, read without changing it where Linux shows it."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (not atomic across threads)
    os.umask(mask)
    return mask


def _new_file_mode(path: Path) -> int:
    """What ``open(path, "w")`` leaves: the mode of the file it replaces, else 0666 - umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~umask()


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory next to ``target``; on success it replaces ``target``.

    On an exception the temporary directory is removed and ``target`` is left as it was. The
    directory gets the mode ``mkdir`` would give it (0777 - umask). A failure to create or move it
    into place is a :class:`PathError`; what the block raises passes through as it is.
    """
    target = Path(target)
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        os.chmod(tmp, 0o777 & ~umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        with writing(target):
            old = None
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                os.replace(target, old)
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: ``path`` is either as it
    was or complete. Its mode is what ``open(path, "w")`` would give; a failure is a
    :class:`PathError`."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = _new_file_mode(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), mode)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` as :func:`atomic_write_bytes` does."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a file the user named.

    Every path a command reads from its arguments comes through here, so whatever is wrong with
    one (missing, a directory, no permission, not UTF-8, ...) is a :class:`BcoderError` that says
    which on one line, never a traceback.
    """
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
    job never leaves a stale lock behind, and a job that ends removes the file too (while it
    still holds the lock: one that opened the file just before checks, once it has the lock,
    that the file is still there, and else takes the new one).
    """
    import fcntl

    lock_path = Path(lock_path)
    with writing(lock_path):
        lock_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        with writing(lock_path):
            f = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 (closed below)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise BcoderError(f"{what} is in use by another process (pid {holder})") from None
        if _same_file(f, lock_path):
            break
        f.close()  # removed by the holder that just finished: lock the file there now
    try:
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def _same_file(f: object, path: Path) -> bool:
    """Whether the open file ``f`` is still the file at ``path``."""
    try:
        there = path.stat()
    except FileNotFoundError:
        return False
    here = os.fstat(f.fileno())  # type: ignore[attr-defined]
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def cache_dir() -> Path:
    """The download cache: ``$BCODER_CACHE``, else the platform's user cache dir for bcoder."""
    env = os.environ.get("BCODER_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("bcoder"))
