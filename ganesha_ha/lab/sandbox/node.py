"""One node of the sandbox cluster seen from outside: its directories and logs, its
processes (those in its mount namespace, and the init's descendants), running a cluster
tool inside it (nsenter on the namespace fds the parent holds), and killing it."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ... import linux

from . import ClusterError, clean_env

# What each node bind-mounts over the real paths, by workdir subdirectory.
NODE_DIRS = {
    "var-lib-pacemaker": "/var/lib/pacemaker",
    "var-lib-corosync": "/var/lib/corosync",
    "var-log-pacemaker": "/var/log/pacemaker",
    "var-log-corosync": "/var/log/corosync",
    "etc-corosync": "/etc/corosync",
}
PCMK_SUBDIRS = ("cib", "pengine", "blackbox", "cores")


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@dataclass
class ClusterNode:
    name: str
    nodeid: int
    workdir: Path
    addr: str
    netns: str | None = None                      # named netns, None = anonymous (single node)
    binds: list[tuple[Path, Path]] = field(default_factory=list)   # extra (src, dst) binds
    env: dict[str, str] = field(default_factory=dict)              # extra env for pacemakerd
    proc: subprocess.Popen | None = None
    init_pid: int | None = None
    corosync_pid: int | None = None
    pacemakerd_pid: int | None = None
    seen_pids: set[int] = field(default_factory=set, repr=False)   # every PID kill() ended
    _ns_fds: dict[str, int] = field(default_factory=dict, repr=False)

    # -- files --------------------------------------------------------------------
    def dir(self, key: str) -> Path:
        return self.workdir / key

    @property
    def status_file(self) -> Path:
        return self.workdir / "init-status.json"

    @property
    def init_log(self) -> Path:
        return self.workdir / "init.log"

    @property
    def pacemaker_log(self) -> Path:
        return self.dir("var-log-pacemaker") / "pacemaker.log"

    @property
    def corosync_log(self) -> Path:
        return self.dir("var-log-corosync") / "corosync.log"

    def logs_tail(self, n: int = 30) -> str:
        parts = []
        for p in (self.init_log, self.corosync_log, self.pacemaker_log):
            t = tail(p, n)
            if t:
                parts.append(f"--- {self.name}: {p}\n{t}")
        return "\n".join(parts)

    # -- state --------------------------------------------------------------------
    def is_running(self) -> bool:
        """The init is alive (daemons may still be starting or stopping)."""
        return self.proc is not None and self.proc.poll() is None

    def processes(self) -> set[int]:
        """PIDs of every live process of this node: same mount namespace, or init descendant."""
        fd = self._ns_fds.get("mnt")
        if fd is None:
            return set()
        st = os.fstat(fd)
        me = os.getpid()
        out: set[int] = set()
        for pid in linux.all_pids():
            if pid == me:
                continue
            try:
                s = os.stat(f"/proc/{pid}/ns/mnt")
            except OSError:
                continue
            if s.st_ino == st.st_ino and s.st_dev == st.st_dev:
                out.add(pid)
        if self.is_running():
            out.add(self.proc.pid)
            out |= linux.descendants(self.proc.pid)
        return out

    # -- running commands inside ---------------------------------------------------
    def nsenter_argv(self) -> tuple[list[str], list[int]]:
        if not self._ns_fds:
            raise ClusterError(f"node {self.name} has not been started")
        fds = self._ns_fds
        argv = ["nsenter", f"--mount=/proc/self/fd/{fds['mnt']}",
                f"--net=/proc/self/fd/{fds['net']}", f"--uts=/proc/self/fd/{fds['uts']}", "--"]
        return argv, list(fds.values())

    def run(self, argv: Sequence[str], *, check: bool = False, timeout: float = 60,
            input: str | None = None, env: Mapping[str, str] | None = None,
            capture: bool = True) -> subprocess.CompletedProcess:
        """Run `argv` inside this node's mount, network and UTS namespaces."""
        prefix, fds = self.nsenter_argv()
        cp = subprocess.run(
            [*prefix, *argv], input=input, text=True, timeout=timeout, pass_fds=fds,
            env=clean_env(env), stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None)
        if check and cp.returncode != 0:
            out = f"{(cp.stderr or '').strip()} {(cp.stdout or '').strip()}".strip()
            raise ClusterError(f"{self.name}: {' '.join(argv)} exited {cp.returncode}: {out[:2000]}")
        return cp

    # -- lifecycle (driven by SandboxCluster) --------------------------------------
    def _close_ns(self) -> None:
        for fd in self._ns_fds.values():
            os.close(fd)
        self._ns_fds = {}

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL every process of the node (node loss) and wait until none is left."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.processes()
            self.seen_pids |= pids
            init = self.proc.pid if self.proc is not None else None
            # children first, so the init (a subreaper) reaps them; then the init.
            for pid in sorted(pids, key=lambda p: p == init):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if self.proc is not None:
                try:
                    self.proc.wait(0.5)
                except subprocess.TimeoutExpired:
                    pass
            if not pids:
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"node {self.name}: processes survive SIGKILL: {sorted(pids)}")
            time.sleep(0.05)
        self._reaped()

    def _reaped(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            if self.proc.poll() is not None:
                self.proc = None
        self.init_pid = self.corosync_pid = self.pacemakerd_pid = None
