"""A node of the cluster lab as its services see it (cluster_lab.py): the node's system D-Bus
and, in the shared mode, its ganesha.nfsd (NodeServices), inside the namespaces of the node's
cluster init (sandbox/), with its own state bound at the packaged paths; with a Ganesha
instance per volume, the instances the agent started there (kill_instance)."""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import linux
from ..linux import proc_starttime
from .ganesha_daemon import PrivateBus
from .node import PY, LabNode


@dataclass
class NodeServices(LabNode):
    """What runs on a cluster node besides the cluster: the system bus and ganesha.nfsd.

    The node's namespaces belong to its cluster init (sandbox/init.py); `attach()` points this
    at them. The bus directory is bind-mounted over the node's /run/dbus and its
    /var/lib/nfs is the node's own, so paths are the packaged defaults inside the node.
    """

    @property
    def recovery_root(self) -> Path:
        return self.var_lib_nfs / "ganesha"

    @property
    def bus_address(self) -> str:
        return f"unix:path={self.workdir / 'bus' / 'system_bus_socket'}"

    def prepare(self) -> None:
        for d in (self.workdir, self.var_lib_nfs, self.recovery_root, self.workdir / "bus"):
            d.mkdir(parents=True, exist_ok=True, mode=0o755)
        for f in ("etab", "rmtab", "xtab"):
            (self.var_lib_nfs / f).touch()
        self.etc_exports.write_text(f"# /etc/exports of lab node {self.name}: empty\n")
        self.ganesha_config.parent.mkdir(parents=True, exist_ok=True)
        self.ganesha_config.touch()   # bound at the packaged path; written in place at each start
        if self.nlm:
            self.prepare_nlm()

    def attach(self, init_pid: int) -> None:
        self.holder_pid = init_pid

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`ganesha-ha ARGS` inside the node, with no config file: the packaged defaults."""
        return self.run([PY, "-m", "ganesha_ha", *args], check=check, clean_env=True)

    def start_daemons(self) -> None:
        prefix = ["setsid", *self.nsenter()]
        self.bus = PrivateBus(self.workdir / "bus", prefix_argv=prefix, socket_name="system_bus_socket")
        self.bus.start()
        self._started[self.bus.proc.pid] = proc_starttime(self.bus.proc.pid)
        if self.run_ganesha:
            self.start_rpc_services()
            self.ganesha = self.make_ganesha(recovery_root=self.recovery_root,
                                             recovery_root_inside="/var/lib/nfs/ganesha")
            self.start_ganesha()

    def kill_instance(self, volume_uuid: str) -> int | None:
        """SIGKILL the ganesha.nfsd of volume `volume_uuid`'s own on this node (a crash: no
        clean stop). The agent started it, so it is found by its config's path
        (<runtime_dir>/ganesha/instances/<uuid>/, ganesha_instance.py) among the processes
        of this node's mount namespace. Returns its PID, None when there is none."""
        mine = os.stat(f"/proc/{self.holder_pid}/ns/mnt").st_ino
        for pid in linux.all_pids():
            args = linux.cmdline(pid)
            if not args or os.path.basename(args[0]) != "ganesha.nfsd" \
                    or not any(f"/instances/{volume_uuid}/" in a for a in args):
                continue
            try:
                if os.stat(f"/proc/{pid}/ns/mnt").st_ino != mine:
                    continue
                os.kill(pid, signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                continue
            return pid
        return None

    def node_binds(self) -> list[tuple[Path, str]]:
        """Bind mounts that make the node's own state appear at the packaged paths."""
        out = [(self.var_lib_nfs, "/var/lib/nfs"), (self.workdir / "bus", "/run/dbus")]
        if self.nlm:   # the node's /run is its own already (sandbox/): only /etc/hosts
            out.append((self.hosts_file, "/etc/hosts"))
        if Path("/etc/exports").is_file():
            out.append((self.etc_exports, "/etc/exports"))
        if Path("/etc/ganesha/ganesha.conf").is_file():   # the agent reads the node's own
            out.append((self.ganesha_config, "/etc/ganesha/ganesha.conf"))
        if not self.run_ganesha and Path("/var/log/ganesha").is_dir():   # the instances' logs: the node's own
            (self.workdir / "log-ganesha").mkdir(exist_ok=True)
            out.append((self.workdir / "log-ganesha", "/var/log/ganesha"))
        if Path("/etc/ganesha-ha").is_dir():  # the host's settings are not this node's
            (self.workdir / "etc-ganesha-ha").mkdir(exist_ok=True)
            out.append((self.workdir / "etc-ganesha-ha", "/etc/ganesha-ha"))
        if Path("/var/log/crmsh").is_dir():
            (self.workdir / "crmsh-log").mkdir(exist_ok=True)
            out.append((self.workdir / "crmsh-log", "/var/log/crmsh"))
        return out
