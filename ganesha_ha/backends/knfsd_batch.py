"""knfsd's one-process export of many option strings: a single `exportfs -a` in a private
mount namespace in which an exports file of ours is /etc/exports and /etc/exports.d is
empty (set up in the child between fork and exec, so it is one process and nothing is ever
mounted in the host's namespace). Why and what it costs: knfsd.py's docstring.

Imported only when a change exports entries of more than one option string: subprocess,
shutil and tempfile cost ~15 ms, which the agent's monitor of a correct volume never pays.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..linux import drain_until_exit, private_binds_preexec
from .knfsd_table import DesiredEntry, render_exports_file

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
        assert proc.stderr is not None
        try:
            err = drain_until_exit(proc.stderr.fileno(), proc.pid, timeout, argv[0])
        except TimeoutError:
            proc.kill()
            raise
        proc.wait()
    return proc.returncode, err


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
