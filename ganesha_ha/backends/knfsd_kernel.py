"""knfsd's kernel side: the export caches (/proc/net/rpc) and nfsd's control files
(/proc/fs/nfsd: threads, unlock_filesystem, unlock_ip, nfsv4leasetime).

Plain file reads and writes to the kernel, apart from knfsd.py's exportfs runs and etab
reading. Imported where used (a change, a stop, a status), never by the agent's monitor of a
correct volume. Every path is passed in: the backend's attributes, which tests point at
stand-ins.
"""
from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Sequence
from pathlib import Path

from .knfsd_table import normalize_path, parse_etab_entries

CACHES = ("auth.unix.ip", "auth.unix.gid", "nfsd.fh", "nfsd.export")  # nfs-utils' flush order


def read_number(path: Path) -> int | None:
    """The first number of a kernel file (/proc/fs/nfsd/threads, nfsv4leasetime); None when
    the file is missing (nfsd not loaded) or holds no number."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def flush_caches(proc_rpc: Path, dirs: Sequence[str] = (), checks: int = 3) -> bool:
    """Flush the kernel's export caches (what `exportfs -f` does); False without nfsd.

    Then, at most `checks` times, re-flush while nfsd.export still lists one of `dirs` (a
    busy entry can survive one flush). Never loops without bound.
    """
    files = [proc_rpc / c / "flush" for c in CACHES if (proc_rpc / c / "flush").exists()]
    if not files:
        return False
    wanted = {normalize_path(d) for d in dirs}
    for attempt in range(checks + 1):
        stamp = f"{int(time.time()) + 1}\n".encode()
        for f in files:
            try:
                fd = os.open(f, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, stamp)
                finally:
                    os.close(fd)
            except OSError:
                pass
        if not wanted or not (cached_paths(proc_rpc) & wanted) or attempt == checks:
            break
        time.sleep(0.2)
    return True


def cached_paths(proc_rpc: Path) -> set[str]:
    """The directories the kernel's nfsd.export cache holds now (empty when unreadable)."""
    try:
        text = (proc_rpc / "nfsd.export" / "content").read_bytes().decode("utf-8", "surrogateescape")
    except OSError:
        return set()
    return {e.path for e in parse_etab_entries(text)}


def write_control(target: Path, value: str) -> bool:
    """Write `value` to the nfsd control file `target` (as `echo value > file`); False when
    the kernel does not offer it (nfsd not loaded) or refuses."""
    if not target.exists():
        return False
    try:
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
        return True
    except OSError:
        return False


def unlock_filesystem(proc_nfsd: Path, mountpoint: str | os.PathLike[str]) -> bool:
    """Drop knfsd's NLM locks on the file system of `mountpoint` (so it can be unmounted):
    /proc/fs/nfsd/unlock_filesystem takes a path and releases every lock on that path's
    file system (fs/nfsd/nfsctl.c write_unlock_fs), as ocf:heartbeat:exportfs does at
    stop (unlock_on_stop). Affects every export on that file system: call at stop, after
    withdrawing all of them, while the volume is still mounted (the path is looked up).
    False when the kernel offers no unlock_filesystem (nfsd not loaded)."""
    return write_control(proc_nfsd / "unlock_filesystem", normalize_path(os.fspath(mountpoint)))


def unlock_ip(proc_nfsd: Path, ip: str) -> bool:
    """Drop knfsd's NLM locks taken through the server address `ip` (the floating IP),
    /proc/fs/nfsd/unlock_ip (nfsctl.c write_unlock_ip); False when not offered."""
    return write_control(proc_nfsd / "unlock_ip", str(ipaddress.ip_address(ip)))


def release_at_stop(proc_nfsd: Path, mountpoint: str | os.PathLike[str], ip: str | None,
                    unlock_fs: bool, unlock_by_ip: bool, lease_wait: float) -> list[str]:
    """Release the NLM locks of a volume (its file system at `mountpoint`, its floating `ip`)
    and, when `lease_wait` > 0, ride out the NFSv4 lease time (+2 s, as
    ocf:heartbeat:exportfs's wait_for_leasetime_on_stop, at most `lease_wait` s), so that
    the file system can be unmounted. Returns what was done, one phrase each."""
    done = []
    if unlock_fs:
        done.append(f"NLM locks on {mountpoint} released" if unlock_filesystem(proc_nfsd, mountpoint)
                    else f"no {proc_nfsd / 'unlock_filesystem'} (nfsd not loaded): no locks to release")
    if unlock_by_ip and ip:
        if unlock_ip(proc_nfsd, ip):
            done.append(f"NLM locks taken through {ip} released")
    if lease_wait > 0:
        lease = read_number(proc_nfsd / "nfsv4leasetime")
        if lease is None:
            done.append(f"NFSv4 lease time unknown ({proc_nfsd / 'nfsv4leasetime'}): not waited")
        else:
            wait = min(lease + 2.0, lease_wait)
            time.sleep(wait)
            done.append(f"waited {wait:g} s for NFSv4 leases ({lease} s)"
                        + ("" if wait >= lease + 2 else ", cut short to fit the stop timeout"))
    return done
