"""What a lab node runs beside Ganesha when NLM is on: rpcbind and rpc.statd, and the
/etc/hosts that names the floating IPs.

As Debian runs them for nfs-ganesha (nfs-ganesha-lock.service; docs/research/clients-facts.md
section 3): `rpcbind -f -w` (clients find MOUNT's and NLM's dynamic ports there; Ganesha
registers with it) and `rpc.statd -F --no-notify` (Ganesha SM_MONs every locking client
with it, over TCP to localhost; statd keeps one file per client in /var/lib/nfs/sm/, and
sends no SM_NOTIFY itself: that is the take-over's job, from the floating IP). Both run in
the node's namespaces, with the node's own /run (rpcbind's socket, lock and state) and
/var/lib/nfs, so nothing of the host's is touched.

`sm-notify -v <floating ip>` refuses an address without a name (getnameinfo NI_NAMEREQD,
measured: "my_name '127.0.0.2' is unusable"), so each node gets an /etc/hosts naming the
floating IPs, `hosts_text` (pure).
"""
from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Mapping, Sequence

from .procs import stop_popen

_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9][A-Za-z0-9-]{0,62})*")
PROGRAMS = ("rpcbind", "rpc.statd", "sm-notify")


def hosts_text(names: Mapping[str, str]) -> str:
    """An /etc/hosts: localhost, then `address name short-name` for each of `names`
    (address -> fully qualified name). ValueError for a bad address or name."""
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    for addr, name in names.items():
        ipaddress.ip_address(addr)
        if not _HOSTNAME.fullmatch(name):
            raise ValueError(f"not a host name: {name!r}")
        short = name.split(".", 1)[0]
        lines.append(f"{addr} {name}" + (f" {short}" if short != name else ""))
    return "\n".join(lines) + "\n"


def prepare_statd_dir(var_lib_nfs: Path) -> None:
    """statd's directory as Debian's package leaves it: sm/ and sm.bak/ owned by statd (it
    drops to the owner of sm/), and its `state` file."""
    for d in ("sm", "sm.bak"):
        (var_lib_nfs / d).mkdir(parents=True, exist_ok=True)
        shutil.chown(var_lib_nfs / d, "statd", "nogroup")
    (var_lib_nfs / "state").touch()
    shutil.chown(var_lib_nfs / "state", "statd")


class RpcServices:
    """rpcbind and rpc.statd of one node, started through `nsenter_argv` (the node's
    namespaces), stopped by the PIDs started. `start()` returns once both are registered
    with rpcbind (`rpcinfo -p` in the node lists portmapper and status); RuntimeError
    after `timeout` seconds."""

    def __init__(self, nsenter_argv: Sequence[str], log: Path) -> None:
        self.nsenter_argv = list(nsenter_argv)
        self.log = log
        self.procs: list[subprocess.Popen] = []

    def start(self, timeout: float = 15.0) -> "RpcServices":
        # rpcbind's state directory, in the node's own /run, owned by the user it drops to
        self._run(["install", "-d", "-o", "_rpc", "-g", "nogroup", "/run/rpcbind"])
        with open(self.log, "ab") as log:
            for argv, registers in ((["rpcbind", "-f", "-w"], "portmapper"),
                                    (["rpc.statd", "-F", "--no-notify"], "status")):
                self.procs.append(subprocess.Popen(["setsid", *self.nsenter_argv, *argv],
                                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log))
                self._wait_registered(argv[0], registers, timeout)
        return self

    def _run(self, argv: list[str]) -> str:
        cp = subprocess.run([*self.nsenter_argv, *argv], capture_output=True, text=True, timeout=30)
        if cp.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {cp.stderr.strip()[:500]}")
        return cp.stdout

    def _wait_registered(self, prog: str, name: str, timeout: float) -> None:
        if not self.wait_registered((name,), timeout, alive=self.procs[-1]):
            tail = self.log.read_text(errors="replace")[-800:] if self.log.exists() else ""
            raise RuntimeError(f"{prog} did not register with rpcbind in the node: {tail}")

    def wait_registered(self, names: Sequence[str], timeout: float,
                        alive: subprocess.Popen | None = None) -> bool:
        """Until `rpcinfo -p` in the node lists every program of `names` (e.g. "nlockmgr",
        "mountd": Ganesha registers them after it listens for NFS), or `timeout` seconds,
        or `alive` exited. True when they all are."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if alive is not None and alive.poll() is not None:
                return False
            cp = subprocess.run([*self.nsenter_argv, "rpcinfo", "-p"], capture_output=True, text=True)
            if all(f" {n}" in cp.stdout for n in names):
                return True
            time.sleep(0.1)
        return False

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for p in reversed(self.procs):
            stop_popen(p)
        self.procs = []
