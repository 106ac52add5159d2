"""The filesystem of the ``unshare`` isolation level, built by the zygote itself.

Stdlib only (runs in the sandbox). ``unshare`` gives the zygote fresh mount, pid, network, IPC
and UTS namespaces (and, for a normal user, a user namespace where it is root); ``enter`` then
builds a new root like bubblewrap's: read-only binds of the system and Python directories, a
size-limited tmpfs at /tmp, a few device nodes, /proc of the new pid namespace, and pivots into
it. ``drop`` then leaves the zygote without any capability, as an unprivileged uid.
"""

from __future__ import annotations

import ctypes
import os

_LIBC = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
CLONE_NEWUSER, MNT_DETACH = 0x10000000, 2
DEVICES = ("null", "zero", "full", "random", "urandom")
# statvfs flags that must be kept when remounting a bind mount inside a user namespace.
_KEEP = {
    2: MS_NOSUID,
    4: MS_NODEV,
    8: MS_NOEXEC,
    1024: MS_NOATIME,
    2048: MS_NODIRATIME,
    4096: MS_RELATIME,
}


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    if _LIBC.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} on {dst}: {os.strerror(err)}")


def _bind_ro(src: str, dst: str) -> None:
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    _mount(src, dst, None, MS_BIND | MS_REC, None)
    keep = sum(ms for st, ms in _KEEP.items() if os.statvfs(src).f_flag & st)
    _mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, None)


def enter(binds: list[str], stage: str, scratch_mb: int) -> None:
    """Build the new root under ``stage``/root and chroot into it."""
    root = os.path.join(stage, "root")
    os.makedirs(root, exist_ok=True)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    for path in binds:
        if os.path.islink(path):
            os.makedirs(os.path.dirname(root + path), exist_ok=True)
            os.symlink(os.readlink(path), root + path)
        elif os.path.exists(path):
            _bind_ro(path, root + path)
    _bind_ro(stage, root + "/opt/bcoder")
    for name, size in (("/tmp", scratch_mb), ("/dev/shm", 16)):
        os.makedirs(root + name, exist_ok=True)
        _mount("tmpfs", root + name, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size}m,mode=1777")
    for dev in DEVICES:
        dst = f"{root}/dev/{dev}"
        open(dst, "a").close()
        _mount(f"/dev/{dev}", dst, None, MS_BIND, None)
    os.makedirs(root + "/proc", exist_ok=True)
    _mount("/proc", root + "/proc", None, MS_BIND | MS_REC, None)  # the new pid namespace's
    _mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
    # pivot_root, not chroot: the old root is detached entirely (and a chrooted process could
    # not create the user namespace that ``new_userns`` needs).
    os.chdir(root)
    if _LIBC.pivot_root(b".", b".") != 0 or _LIBC.umount2(b".", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "pivot_root")
    os.chdir("/tmp")


def new_userns(uid: int) -> None:
    """Move into a child user namespace where this process is ``uid`` (not root)."""
    if _LIBC.unshare(CLONE_NEWUSER) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} 0 1"), ("gid_map", f"{uid} 0 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
