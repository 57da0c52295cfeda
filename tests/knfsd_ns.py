"""Test helpers for running the real exportfs without touching the host's export table.

`private_nfs_state(workdir)` moves *this* process into a new private mount namespace,
bind-mounts `workdir/var-lib-nfs` over /var/lib/nfs and an empty file over /etc/exports,
and on exit returns the process to its original namespace (setns), whose mounts were never
changed. Every exportfs the test starts inherits the private namespace, so the backend is
tested in-process, exactly as the agent runs it, and a crash at any point leaves the host
untouched (the private mounts die with the namespace). Mounts are checked with a sentinel
file before anything runs, as ../shared/bench/ra_bench.sh does.

`counting_exportfs(dir)` writes a wrapper script that logs each call and execs the real
exportfs: point settings.knfsd["exportfs"] at it to count processes.
"""
from __future__ import annotations

import os
import shutil
import stat
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ganesha_ha import linux
from ganesha_ha.context import VolumeContext
from ganesha_ha.settings import Settings

REAL_EXPORTFS = shutil.which("exportfs") or "/usr/sbin/exportfs"
NFS_STATE = Path("/var/lib/nfs")
ETC_EXPORTS = Path("/etc/exports")

def skip_reason() -> str | None:
    """Why the namespace tests cannot run here (None: they can)."""
    if os.geteuid() != 0:
        return "needs root (mount namespaces, exportfs)"
    if not os.path.exists(REAL_EXPORTFS):
        return "exportfs (nfs-kernel-server) is not installed"
    if not NFS_STATE.is_dir():
        return "/var/lib/nfs does not exist"
    return None


def bind(src: Path, dst: Path) -> None:
    linux.bind_mount(src, dst)


def mount_tmpfs(target: Path, size: str = "64m") -> None:
    """A real file system at `target` (a stand-in for the shared volume)."""
    target.mkdir(parents=True, exist_ok=True)
    linux.mount("gha-test-volume", target, "tmpfs", 0, f"size={size},mode=0755")


_inside = False


def private_etc(workdir: Path) -> None:
    """A writable /etc for this namespace only: an overlay whose changes land in `workdir`.

    Only inside `private_nfs_state` (refused elsewhere), e.g. to create /etc/exports.d.
    Raises OSError where overlayfs is not available.
    """
    if not _inside:
        raise RuntimeError("private_etc() outside private_nfs_state() would change the host's /etc")
    upper, work = workdir / "etc-upper", workdir / "etc-work"
    upper.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    linux.mount("gha-test-etc", "/etc", "overlay", 0, f"lowerdir=/etc,upperdir={upper},workdir={work}")


def _tasks() -> set[str]:
    """The kernel's threads of this process (/proc/self/task)."""
    return set(os.listdir("/proc/self/task"))


def _wait_for_abandoned_threads(timeout: float = 60.0, known: set[str] | None = None) -> None:
    """ganesha-ha runs a host name lookup or a bus connection in a daemon thread (named gha-...)
    and abandons it when it outlives its time budget, blocked in libc: an earlier step may have
    left one. It ends on its own (the resolver's own timeout), and unshare/setns need the process
    single-threaded, also in the kernel's eyes: a thread Python already counts as finished may
    still be exiting (/proc/self/task lists it), which made setns fail with EINVAL.

    `known`: the kernel's threads when the namespace was entered. Those share no file-system
    attributes with the thread that unshared (unshare gave it its own), so setns does not wait
    for them: threads Python does not know, such as pytest-xdist's I/O thread in a worker, made
    a wait for "one thread" run out its 60 s there. None: Python's threads only."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        others = [t for t in threading.enumerate() if t is not threading.current_thread()]
        if not all(t.daemon and t.name.startswith("gha-") for t in others):
            return
        if not others and (known is None or _tasks() <= known):
            return
        time.sleep(0.01)


@contextmanager
def private_nfs_state(workdir: Path) -> Iterator[Path]:
    """Run the body in a private mount namespace with a fresh, empty /var/lib/nfs.

    Yields the directory that is /var/lib/nfs inside (so the test can inspect it after).
    """
    _wait_for_abandoned_threads()
    if threading.active_count() != 1:
        raise RuntimeError("private_nfs_state needs a single-threaded process (unshare/setns)")
    state = workdir / "var-lib-nfs"
    state.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    known = _tasks()
    original = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.unshare(linux.CLONE_NEWNS)
        try:
            linux.make_mounts_private()
            bind(state, NFS_STATE)
            sentinel = state / ".gha-test-sentinel"
            sentinel.touch()
            if not (NFS_STATE / sentinel.name).exists():
                raise RuntimeError("bind mount of /var/lib/nfs did not take effect")
            sentinel.unlink()
            if ETC_EXPORTS.is_file():  # the host's /etc/exports must not leak into the tests
                empty = workdir / "etc-exports"
                empty.write_text("")
                bind(empty, ETC_EXPORTS)
            for name in ("etab", "rmtab"):
                (state / name).write_text("")
            global _inside
            _inside = True
            try:
                yield state
            finally:
                _inside = False
        finally:
            _wait_for_abandoned_threads(known=known)  # setns wants no thread started inside
            linux.setns(original, linux.CLONE_NEWNS)  # back to the original mount namespace
            os.chdir(cwd)
    finally:
        os.close(original)


def counting_exportfs(directory: Path, real: str = REAL_EXPORTFS) -> tuple[Path, Path]:
    """A wrapper that appends its first argument to a log, then execs `real`. (wrapper, log)."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "exportfs.calls"
    log.write_text("")
    wrapper = directory / "exportfs"
    wrapper.write_text(f"#!/bin/sh\nprintf '%s\\n' \"${{1:-(none)}}\" >> '{log}'\nexec '{real}' \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines()


def make_settings(exportfs: str | os.PathLike[str] = REAL_EXPORTFS, state_dir: Path = NFS_STATE,
                  runtime_dir: Path = Path("/run/ganesha-ha")) -> Settings:
    """Settings as a config file with these three keys gives them: every other key (timeouts,
    ...) at its configspec default, as in production."""
    import tempfile

    from ganesha_ha.settings import load_settings

    with tempfile.NamedTemporaryFile("w", suffix=".conf") as fh:
        fh.write(f"[knfsd]\nexportfs = {os.fspath(exportfs)}\nstate_dir = {os.fspath(state_dir)}\n"
                 f"[node]\nruntime_dir = {os.fspath(runtime_dir)}\n")
        fh.flush()
        return load_settings(fh.name)


def volume(mountpoint: Path, uuid: str = "00000000-0000-4000-8000-000000000001") -> VolumeContext:
    state = mountpoint / ".ganesha-ha"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    return VolumeContext(mountpoint=mountpoint, state_dir=state, volume_uuid=uuid)


def etab_lines(state: Path) -> list[str]:
    return (state / "etab").read_text().splitlines()
