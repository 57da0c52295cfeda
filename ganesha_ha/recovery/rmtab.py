"""knfsd's mounted clients: the volume's lines of /var/lib/nfs/rmtab, carried with the volume.

The volume's copy is `<mount point>/.ganesha-ha/rmtab` (format: rmtab_lines.py). The host file
is shared with mountd and with every other volume on the node, so it is changed only under
nfs-utils' own lock (an fcntl write lock on `<state dir>/.rmtab.lock`, `_PATH_RMTABLCK` in
support/nfs/rmtab.c), with a bounded wait, and only the volume's own lines are added or
removed; every other line is kept byte for byte.
"""
from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ServerUnavailableError
from ..fsutil import atomic_write, read_secure, wait_for_lock
from ..nfspath import from_bytes, normalize_path, to_bytes
from .rmtab_lines import (merge_rmtab, parse_saved_rmtab, rebase_rmtab_lines, remove_volume_lines,
                          render_saved_rmtab, select_volume_lines)

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from ..context import VolumeContext

SAVED_RMTAB = "rmtab"           # <mount point>/.ganesha-ha/rmtab (ctx.state_dir / SAVED_RMTAB)
RMTAB_LOCK = ".rmtab.lock"      # nfs-utils' _PATH_RMTABLCK: fcntl write lock around changes


class RmtabStore:
    """The volume's lines of the host rmtab in `nfs_state_dir` (knfsd's /var/lib/nfs)."""

    name = "rmtab"

    def __init__(self, nfs_state_dir: Path, lock_timeout: float = 10.0):
        self.nfs_state_dir = nfs_state_dir
        self.lock_timeout = lock_timeout    # seconds to wait for rmtab's lock

    @contextmanager
    def _lock(self, exclusive: bool) -> Iterator[None]:
        """nfs-utils' lock: fcntl record lock on state_dir/.rmtab.lock (bounded wait)."""
        lock = self.nfs_state_dir / RMTAB_LOCK
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise ServerUnavailableError(f"cannot open {lock}: {exc.strerror}") from None
        try:
            op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
            try:
                taken = wait_for_lock(lambda: fcntl.lockf(fd, op), self.lock_timeout)
            except OSError as exc:
                raise ServerUnavailableError(f"cannot lock {lock}: {exc.strerror}") from None
            if not taken:
                raise ServerUnavailableError(f"{lock} stayed locked for {self.lock_timeout:g} s "
                                             "(mountd or another ganesha-ha holds it)")
            yield
        finally:
            os.close(fd)

    def _host(self) -> str:
        path = self.nfs_state_dir / "rmtab"
        try:
            return from_bytes(path.read_bytes())
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise ServerUnavailableError(f"cannot read {path}: {exc.strerror}") from None

    def _write_host(self, text: str) -> None:
        path = self.nfs_state_dir / "rmtab"
        try:
            mode = stat.S_IMODE(os.lstat(path).st_mode)
        except FileNotFoundError:
            mode = 0o644
        atomic_write(path, to_bytes(text), mode)

    def save(self, ctx: VolumeContext) -> bool:
        """Copy the host rmtab's lines under the mount point to <volume>/.ganesha-ha/rmtab.

        Replaces the saved copy (a client that unmounted is dropped), writes only on change.
        """
        mountpoint = os.fspath(ctx.mountpoint)
        with self._lock(exclusive=False):
            host = self._host()
        raw = to_bytes(render_saved_rmtab(select_volume_lines(host, mountpoint), mountpoint))
        path = ctx.state_dir / SAVED_RMTAB
        if read_secure(path) == raw:
            return False
        atomic_write(path, raw, 0o600)
        return True

    def _saved_lines(self, ctx: VolumeContext) -> list[str]:
        raw = read_secure(ctx.state_dir / SAVED_RMTAB)
        if raw is None:
            return []
        saved_at, lines = parse_saved_rmtab(from_bytes(raw))
        mountpoint = normalize_path(os.fspath(ctx.mountpoint))
        if saved_at is not None and saved_at != mountpoint:
            lines = rebase_rmtab_lines(lines, saved_at, mountpoint)
        return select_volume_lines("\n".join(lines), mountpoint)

    def restore(self, ctx: VolumeContext) -> int:
        """Merge the volume's saved lines into the host rmtab; return how many it holds.

        Lines the host already has (same client and path) are kept as they are; lines of
        other volumes are never touched. A copy saved under another mount point is rebased.
        """
        lines = self._saved_lines(ctx)
        if not lines:
            return 0
        mountpoint = os.fspath(ctx.mountpoint)
        with self._lock(exclusive=True):
            host = self._host()
            merged = merge_rmtab(host, lines, mountpoint)
            if merged != host:
                self._write_host(merged)
        return len(lines)

    def clear(self, ctx: VolumeContext) -> None:
        """Remove the volume's lines from the host rmtab (after the last save at stop)."""
        mountpoint = os.fspath(ctx.mountpoint)
        with self._lock(exclusive=True):
            host = self._host()
            kept = remove_volume_lines(host, mountpoint)
            if kept != host:
                self._write_host(kept)
