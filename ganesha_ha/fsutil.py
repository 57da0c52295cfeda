"""File-system primitives for state that must survive a crash at any instant.

`atomic_write` is the only way ganesha-ha writes state: temp file in the same directory,
fsync, rename over the old file, fsync of the directory. A reader (or the next node after
a failover) sees the old bytes or the new bytes, never a torn mix. `write_runtime` is for
the node's runtime files that are no state (the file handed to Ganesha's AddExport): written
in place, never synced.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from .errors import ApplyError, InsecureStateError, NotMountedError, RegistryError
from .linux import is_mountpoint, mount_points

TMP_MARK = ".tmp-"


def mounts_below(path: Path) -> list[str]:
    """Mount points strictly inside `path` (another volume nested in it), from mountinfo."""
    top = str(path).rstrip("/")
    return sorted({p for p in mount_points() if p.startswith(top + "/") and p.rstrip("/") != top})


def require_mountpoint(path: Path) -> None:
    """Refuse to touch a volume whose file system is not mounted here.

    Writing state into the bare directory under a mount point is a classic HA data-loss
    bug: the next mount hides it, and the node that mounts the real volume never sees it.
    """
    if not path.is_absolute():
        raise NotMountedError(f"{path}: the volume's mount point must be an absolute path")
    try:
        is_dir = path.is_dir()
    except OSError as exc:  # a name too long, a loop of links, ...
        raise NotMountedError(f"{path}: {exc.strerror}") from None
    if not is_dir:
        raise NotMountedError(f"{path}: no such directory (is the volume mounted on this node?)")
    if not is_mountpoint(path):
        raise NotMountedError(f"{path} is not a mounted file system on this node; refusing to "
                              "read or write its state")


def wait_for_lock(take: Callable[[], None], timeout: float) -> bool:
    """Call `take` (a non-blocking lock: fcntl.flock or fcntl.lockf with LOCK_NB) until it
    succeeds (True), or for `timeout` s while another process holds the lock (False), with
    pauses growing from 5 ms to 100 ms. An OSError other than EAGAIN/EACCES (the lock is
    held) is raised."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            take()
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def check_secure_dir(path: Path) -> None:
    """A state directory must be a real directory, owned by us, not writable by others."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise
    if stat.S_ISLNK(st.st_mode):
        raise InsecureStateError(f"{path} is a symbolic link; refusing to use it as state directory")
    if not stat.S_ISDIR(st.st_mode):
        raise InsecureStateError(f"{path} is not a directory")
    _check_owner_mode(path, st)


def check_secure_file(path: Path) -> os.stat_result | None:
    """A state file must be a regular file owned by us and not writable by others (or absent)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise InsecureStateError(f"{path} is a symbolic link; refusing to read or replace it")
    if not stat.S_ISREG(st.st_mode):
        raise InsecureStateError(f"{path} is not a regular file")
    _check_owner_mode(path, st)
    return st


def _check_owner_mode(path: Path, st: os.stat_result) -> None:
    if st.st_uid != os.geteuid():
        raise InsecureStateError(f"{path} is owned by uid {st.st_uid}, not by us (uid {os.geteuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InsecureStateError(f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})")


def ensure_secure_dir(path: Path, mode: int = 0o700) -> None:
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    check_secure_dir(path)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new content."""
    check_secure_file(path)
    directory = path.parent
    tmp = directory / f".{path.name}{TMP_MARK}{os.getpid()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(directory)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise RegistryError(f"cannot write {path}: no space left on the volume; "
                                "the previous state is unchanged") from None
        raise RegistryError(f"cannot write {path}: {exc.strerror}; the previous state is unchanged") from None


def write_runtime(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a node-local runtime file that is no state: the file an AddExport or
    UpdateExport hands to Ganesha, rewritten before each use and read by nobody after it. It
    lives in the node's runtime directory (tmpfs /run on a node), so it needs neither a
    rename nor an fsync: after a crash the node's Ganesha has lost every export anyway, and
    no file of this kind is read again. (An fsync per export was most of a 1000-export start.)
    The directory must be a secure one (ensure_secure_dir); a symbolic link or a file owned
    by another user in its place is refused (InsecureStateError). OSError passes through."""
    check_secure_file(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def remove_stale_temps(directory: Path, name: str) -> int:
    """Delete temp files a killed writer left behind (call with the lock held)."""
    removed = 0
    prefix = f".{name}{TMP_MARK}"
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.startswith(prefix):
            try:
                os.unlink(directory / entry)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def read_secure(path: Path) -> bytes | None:
    """Read a state file (None if absent), refusing symlinks and foreign files."""
    if check_secure_file(path) is None:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def require_export_directory(path: str, server: str) -> None:
    """ApplyError when `path`, the directory an export serves, is not a directory on this node
    (removed or renamed on the volume after the export was recorded). Neither server says so
    usefully: Ganesha refuses with "1 validation errors in block FSAL", and exportfs prints
    "Failed to stat" and still writes the etab line (exit 1, nfs-utils 2.6.2), so an etab
    read-back would call it live. The reason starts with what is wrong: Pacemaker keeps 128
    characters of an exit reason."""
    if not os.path.isdir(path):
        raise ApplyError(f"no directory {path} on this node (removed or renamed on the volume?), "
                         f"so {server} cannot export it")
