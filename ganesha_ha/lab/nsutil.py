"""Linux namespace helpers that need no external program.

`enter_private_mount_namespace` moves the calling process into a new mount namespace with
private propagation: every mount made afterwards (a tmpfs volume, a bind mount over
/var/lib/nfs) is invisible to the host and disappears with the process. The test suite
calls it once at start-up, so no test can leave a mount behind on the host.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_BIND = 4096

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter_private_mount_namespace() -> None:
    """unshare(CLONE_NEWNS) and make every mount private (must be single-threaded)."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")


def mount(source: str, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                       data.encode() if data else None), f"mount {source} on {target}")


def bind_mount(source: str, target: str) -> None:
    mount(source, target, None, MS_BIND)


def umount(target: str, lazy: bool = False) -> None:
    _check(_libc.umount2(target.encode(), 2 if lazy else 0), f"umount {target}")
