"""knfsd's one-process export of many option strings: a single `exportfs -a` in a private
mount namespace in which an exports file of ours is /etc/exports and /etc/exports.d is
empty (set up in the child between fork and exec, so it is one process and nothing is ever
mounted in the host's namespace). Why and what it costs: knfsd.py's docstring.

Imported only when a change exports entries of more than one option string: subprocess,
shutil and tempfile cost ~15 ms, which the agent's monitor of a correct volume never pays.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from ..linux import private_binds_preexec
from .knfsd_table import DesiredEntry, render_exports_file

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

_private_mounts = private_binds_preexec   # the batch export's private /etc/exports (tests replace it)


class NoNamespace(Exception):
    """The private mount namespace for a batch export could not be set up."""


def run_in_namespace(argv: list[str], env: dict[str, str], preexec: Callable[[], None],
                     timeout: float) -> tuple[int, bytes]:
    """Run `argv` with `preexec` between fork and exec: (exit code, stderr). Never through a
    shell. FileNotFoundError/PermissionError when the program cannot be run, NoNamespace when
    `preexec` failed, TimeoutError (the program killed) after `timeout` s."""
    import subprocess

    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env, preexec_fn=preexec, close_fds=True)
    except subprocess.SubprocessError:
        raise NoNamespace() from None
    with proc:
        try:
            err = _finish(proc, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise TimeoutError(f"{argv[0]} did not finish within {timeout:g} s") from None
    return proc.returncode, err


def _finish(proc: Any, timeout: float) -> bytes:
    """All of `proc`'s stderr, and its exit reaped, within `timeout` s (else TimeoutExpired).

    subprocess's own timed wait polls waitpid with sleeps of 1 ms and more, which one monitor
    in two paid (measured): a pidfd (Linux 5.3) wakes the wait the moment the child exits.
    """
    import select
    import subprocess

    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    chunks = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:  # until EOF: a child that exits closes its stderr
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise subprocess.TimeoutExpired(proc.args, timeout)
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:  # a kernel before 5.3
        proc.wait(max(deadline - time.monotonic(), 0.001))
        return b"".join(chunks)
    try:
        exited = select.poll()
        exited.register(pidfd, select.POLLIN)
        left = deadline - time.monotonic()
        if left <= 0 or not exited.poll(left * 1000):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    proc.wait()
    return b"".join(chunks)


def export_batch(run: Callable[..., tuple[int, str]], exe: str, entries: list[DesiredEntry],
                 runtime_dir: Path, etc_exports: Path, etc_exports_d: Path) -> list[str]:
    """All entries in one `exportfs -a` (run by `run(argv, preexec=)`), reading an exports
    file of ours only, written in a temporary directory under `runtime_dir` and removed
    after. Returns exportfs's complaints (empty: none). NoNamespace when this process cannot
    make the namespace (not root, or neither `etc_exports` nor `etc_exports_d` to hide)."""
    has_file = etc_exports.is_file()
    has_dir = etc_exports_d.is_dir()
    if os.geteuid() != 0 or not (has_file or has_dir):
        raise NoNamespace()
    import shutil
    import tempfile

    runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    tmp = Path(tempfile.mkdtemp(prefix="exports-", dir=runtime_dir))
    try:
        empty = tmp / "exports.d"
        empty.mkdir(mode=0o700)
        data = render_exports_file(entries).encode("utf-8", "surrogateescape")
        binds = []
        if has_file:
            (tmp / "exports").write_bytes(data)
            binds.append((str(tmp / "exports"), str(etc_exports)))
        else:
            (empty / "ganesha-ha.exports").write_bytes(data)
        if has_dir:
            binds.append((str(empty), str(etc_exports_d)))
        rc, err = run([exe, "-a"], preexec=_private_mounts(binds))
        return [err] if rc != 0 or err.strip() else []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
