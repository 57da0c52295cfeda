"""A lab node: its own network, mount and UTS namespaces, D-Bus, ganesha.nfsd and config.

A node is pinned by a *holder*: this module run as ``python -m ganesha_ha.lab.node holder``.
The holder setns()'s into the node's named network namespace, unshares a mount namespace
(every mount private, so the volume mounted on node A is invisible on the host and on
node B, as a disk attached to one machine is) and a UTS namespace (hostname = node name),
bind-mounts the node's own directory over /var/lib/nfs (etab, rmtab, knfsd's state), says
"ready" and sleeps until it is told to go. Everything else of the node (dbus-daemon,
ganesha.nfsd, the resource agent, mount, exportfs, the CLI) runs through
``nsenter -t <holder pid> -m -n -u``, so "what node A sees" is exactly one PID's namespaces.

Daemons are started under ``setsid`` (a new session: a Ctrl-C in the lab's terminal reaches
only the lab, which then tears down in order) and are stopped by the PID we started.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from .. import linux
from ..linux import proc_starttime, same_process
from .ganesha_daemon import GANESHA_BUS_NAME, GaneshaDaemon, PrivateBus, show_exports
from .nlm_services import RpcServices, hosts_text, prepare_statd_dir
from .procs import end_process, stop_popen

PY = sys.executable
PROTOCOLS = {False: "4", True: '"3, 4"'}   # ganesha-ha.conf's [ganesha] protocols, NLM off/on
CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


EPOCH_SLOTS = 16   # at least layout.MAX_NODES; epoch stays below 2**32 (the low 32 bits count)


def server_epoch(slot: int, last: int | None, now: float | None = None) -> int:
    """The `-E` epoch for a Ganesha of lab node `slot` (0..EPOCH_SLOTS-1) starting now:
    different from every other node's and above this node's `last` one. Pure.

    Why: Ganesha makes a client id from its server epoch and a counter that starts at 1
    (low 32 bits of the epoch << 32 | counter: src/SAL/nfs4_clientid.c new_clientid), and a
    4.1 session id from the client id. With the default epoch, the start time in seconds,
    two nodes started in the same second hand out the same client and session ids: a client
    moving from one to the other then sends SEQUENCE on *another client's* session
    (measured here: NFS4ERR_SEQ_MISORDERED on every call after a move). Debian passes
    $EPOCH from /etc/default/nfs-ganesha for this."""
    if not 0 <= slot < EPOCH_SLOTS:
        raise ValueError(f"epoch slot {slot} out of 0..{EPOCH_SLOTS - 1}")
    base = int(time.time() if now is None else now) & 0x0FFFFFFF
    epoch = base * EPOCH_SLOTS + slot
    if last is not None and epoch <= last:
        epoch = last + EPOCH_SLOTS
    return epoch


@dataclass
class LabNode:
    """One node of the lab. `start()` brings up holder, bus and Ganesha; `stop()` ends them."""

    name: str                      # "a" / "b"
    netns: str                     # its named network namespace
    workdir: Path                  # its own directory (config, bus, logs, recovery root)
    addr: str                      # its fixed address
    grace_period: int = 5
    run_ganesha: bool = True
    binds: list[tuple[str, str]] = field(default_factory=list)  # extra (source, target) bind mounts
    # NLM on: NFSv3 + NLM in Ganesha, rpcbind and rpc.statd beside it (nlm_services.py), the
    # node's own /run and an /etc/hosts naming `hosts` (address -> name: the floating IPs)
    nlm: bool = False
    hosts: dict[str, str] = field(default_factory=dict)
    server_scope: str | None = None       # NFSV4 Server_Scope (None: Ganesha's per-node default)
    lease_lifetime: int | None = None
    holder: subprocess.Popen | None = None
    holder_pid: int | None = None
    bus: PrivateBus | None = None
    rpc: RpcServices | None = None
    ganesha: GaneshaDaemon | None = None
    ganesha_restarts: int = 0
    epoch_slot: int = 0                  # this node's place in the lab: its Ganesha epochs differ
    last_epoch: int | None = None
    _started: dict[int, int | None] = field(default_factory=dict)   # pid -> starttime

    # ---- paths ------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.workdir / "ganesha-ha.conf"

    @property
    def recovery_root(self) -> Path:
        return self.workdir / "recovery"

    @property
    def runtime_dir(self) -> Path:
        return self.workdir / "run"

    @property
    def var_lib_nfs(self) -> Path:
        return self.workdir / "var-lib-nfs"

    @property
    def etc_exports(self) -> Path:
        return self.workdir / "etc-exports"

    @property
    def bus_address(self) -> str:
        return f"unix:path={self.workdir / 'bus' / 'bus.sock'}"

    @property
    def ganesha_config(self) -> Path:
        """The node's ganesha.nfsd config (GaneshaDaemon writes it at each start): what the
        agent reads for the node's NFSv4 Server_Scope, Plugins_Dir and the like."""
        return self.workdir / "ganesha" / "ganesha.conf"

    @property
    def hosts_file(self) -> Path:
        return self.workdir / "etc-hosts"

    @property
    def slash_run(self) -> Path:
        """The node's own /run with NLM on (rpcbind's socket, lock and state; statd's pid)."""
        return self.workdir / "slash-run"

    def remembered_clients(self, names: Sequence[str]) -> list[str]:
        """Those of the NFSv4 client names `names` that this node's Ganesha still holds a
        confirmed client id for: its own record tree (<RecoveryRoot>/v4recov/node<N>/, one
        directory `<client ip>-(<length>:<name>)` per confirmed client, removed when the
        client expires: src/SAL/recovery/recovery_fs.c), not the take-over copies."""
        own = self.recovery_root / "v4recov"
        try:
            entries = [p.name for p in own.rglob("*")]
        except OSError:
            return []
        return [n for n in names if any(e.endswith(f"-({len(n.encode())}:{n})") for e in entries)]

    # ---- running things inside --------------------------------------------------------
    def nsenter(self) -> list[str]:
        if self.holder_pid is None:
            raise RuntimeError(f"node {self.name} is not up")
        return ["nsenter", "-t", str(self.holder_pid), "-m", "-n", "-u", "--"]

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60,
            check: bool = False, clean_env: bool = False) -> subprocess.CompletedProcess:
        """Run `argv` inside this node (its mount, network and UTS namespaces).

        `clean_env`: only PATH and `env`, as Pacemaker's executor gives a resource agent."""
        full_env = {"PATH": CLEAN_PATH} if clean_env else dict(os.environ)
        full_env.update(env or {})
        cp = subprocess.run([*self.nsenter(), *argv], env=full_env, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
        if check and cp.returncode != 0:
            raise RuntimeError(f"node {self.name}: {' '.join(argv)} exited {cp.returncode}: "
                               f"{(cp.stderr or cp.stdout).strip()[:1500]}")
        return cp

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`ganesha-ha --config <this node's config> ARGS` inside the node."""
        return self.run([PY, "-m", "ganesha_ha.cli", "--config", str(self.config), *args], check=check)

    # ---- life cycle -------------------------------------------------------------------
    def prepare(self) -> None:
        for d in (self.workdir, self.recovery_root, self.runtime_dir, self.var_lib_nfs):
            d.mkdir(parents=True, exist_ok=True, mode=0o755)
        for f in ("etab", "rmtab", "xtab"):
            (self.var_lib_nfs / f).touch()
        self.etc_exports.write_text("# /etc/exports of lab node %s: empty, ganesha-ha exports live\n"
                                    % self.name)
        self.config.write_text(
            "# ganesha-ha settings of lab node %s (written by ganesha-ha lab)\n"
            "[ganesha]\n"
            f"bus_address = {self.bus_address}\n"
            "dbus_timeout = 10\n"
            f"recovery_root = {self.recovery_root}\n"
            f"ganesha_config = {self.ganesha_config}\n"
            f"protocols = {PROTOCOLS[self.nlm]}\n"
            "[node]\n"
            f"runtime_dir = {self.runtime_dir}\n"
            "[knfsd]\n"
            f"state_dir = {self.var_lib_nfs}\n" % self.name
        )
        if self.nlm:
            self.prepare_nlm()

    def prepare_nlm(self) -> None:
        """statd's directory, the node's /etc/hosts and (unless the node has one) its /run."""
        prepare_statd_dir(self.var_lib_nfs)
        self.hosts_file.write_text(hosts_text({self.addr: f"{self.netns}.lab", **self.hosts}))
        self.slash_run.mkdir(exist_ok=True, mode=0o755)

    def nlm_binds(self) -> list[tuple[str, str]]:
        """With NLM on: the node's own /run and /etc/hosts."""
        if not self.nlm:
            return []
        return [(str(self.slash_run), "/run"), (str(self.hosts_file), "/etc/hosts")]

    def start_holder(self, timeout: float = 10.0) -> None:
        self.prepare()
        argv = [PY, "-m", "ganesha_ha.lab.node", "holder", "--netns", self.netns,
                "--hostname", f"{self.netns}", "--bind", f"{self.var_lib_nfs}:/var/lib/nfs",
                "--workdir", str(self.workdir)]
        if Path("/etc/exports").is_file():  # each node its own (empty) /etc/exports
            argv += ["--bind", f"{self.etc_exports}:/etc/exports"]
        for src, dst in [*self.binds, *self.nlm_binds()]:  # e.g. a cluster node's /var/lib/pacemaker
            argv += ["--bind", f"{src}:{dst}"]
        self.holder = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, start_new_session=True)
        self.holder_pid = self.holder.pid
        self._started[self.holder.pid] = proc_starttime(self.holder.pid)
        line = self.holder.stdout.readline()  # "ready\n" once the namespaces are set up
        if line.strip() != b"ready":
            err = self.holder.stderr.read() if self.holder.poll() is not None else b""
            self.stop()
            raise RuntimeError(f"node {self.name}: namespace holder failed: "
                               f"{(line + err).decode(errors='replace').strip()}")

    def start_daemons(self) -> None:
        prefix = ["setsid", *self.nsenter()]
        self.bus = PrivateBus(self.workdir / "bus", prefix_argv=prefix)
        self.bus.start()
        self._started[self.bus.proc.pid] = proc_starttime(self.bus.proc.pid)
        if self.run_ganesha:
            self.start_rpc_services()
            self.ganesha = self.make_ganesha(recovery_root=self.recovery_root)
            self.start_ganesha()

    def start_rpc_services(self) -> None:
        """With NLM on: rpcbind and rpc.statd in the node, before Ganesha registers with them."""
        if not self.nlm:
            return
        self.rpc = RpcServices(self.nsenter(), self.workdir / "rpc-services.log")
        try:
            self.rpc.start()
        finally:
            for pid in self.rpc.pids:
                self._started[pid] = proc_starttime(pid)

    def make_ganesha(self, **paths) -> GaneshaDaemon:
        """The node's ganesha.nfsd on port 2049 of every address, with the node's settings;
        `paths`: recovery_root (and recovery_root_inside) as the node has them."""
        assert self.bus is not None
        return GaneshaDaemon(self.workdir / "ganesha", self.bus, port=2049, bind_addr="0.0.0.0",
                             grace_period=self.grace_period, lease_lifetime=self.lease_lifetime,
                             nlm=self.nlm, server_scope=self.server_scope,
                             prefix_argv=["setsid", *self.nsenter()], check_netns=self.netns, **paths)

    def start_ganesha(self) -> None:
        """ganesha.nfsd as the node's service starts it: first the ExecStartPre the README
        gives (`ganesha-ha node prune-records`: no records of volumes not active here)."""
        assert self.ganesha is not None
        self.cli("node", "prune-records")
        self.last_epoch = server_epoch(self.epoch_slot, self.last_epoch)
        self.ganesha.epoch = self.last_epoch
        self.ganesha.start()
        # NLM on: MOUNT and NLM are found through rpcbind, where Ganesha registers them only
        # after it listens for NFS: an NFSv3 client is ready to go once they are there
        if self.rpc is not None and not self.rpc.wait_registered(("mountd", "nlockmgr"), 15,
                                                                 alive=self.ganesha.proc):
            raise RuntimeError(f"node {self.name}: ganesha.nfsd did not register MOUNT and NLM with rpcbind")
        self._started[self.ganesha.proc.pid] = proc_starttime(self.ganesha.proc.pid)

    def kill_ganesha(self) -> int | None:
        """SIGKILL this node's ganesha.nfsd (a crash: no clean stop). Returns its PID."""
        if self.ganesha is None or self.ganesha.proc is None:
            return None
        pid = self.ganesha.proc.pid
        self.ganesha.kill()
        return pid

    def restart_ganesha(self) -> None:
        """What the node's service manager does after a crash: start ganesha.nfsd again."""
        if self.ganesha is None:
            return
        if self.ganesha.proc is not None:
            self.ganesha.stop()
        self.start_ganesha()
        self.ganesha_restarts += 1

    def pids(self) -> dict[int, int | None]:
        """Every process this node started that still runs: PID → start time."""
        return {p: t for p, t in self._started.items() if same_process(p, t)}

    def stop(self) -> None:
        """Stop Ganesha, the bus and the holder, by PID (the mount namespace dies with them)."""
        for obj in (self.ganesha, self.rpc, self.bus):
            if obj is not None:
                try:
                    obj.stop()
                except Exception:
                    pass
        if self.holder is not None:
            stop_popen(self.holder, timeout=5.0)
            self.holder = None
        for pid, st in reversed(list(self._started.items())):
            end_process(pid, st, timeout=5.0)
        self.holder_pid = None

    # ---- the volume (the DRBD stand-in) -----------------------------------------------
    def is_mounted(self, mountpoint: str | Path) -> bool:
        """Whether `mountpoint` is mounted in this node's mount namespace (the holder's)."""
        return self.holder_pid is not None and linux.is_mountpoint(mountpoint, pid=self.holder_pid)

    def mount(self, device: str, mountpoint: str | Path) -> None:
        self.run(["mount", "-t", "ext4", device, str(mountpoint)], check=True)

    def umount(self, mountpoint: str | Path, *, lazy: bool = False) -> str:
        """Unmount; on EBUSY fall back to a lazy unmount. Returns 'clean' or 'lazy'."""
        if not self.is_mounted(mountpoint):
            return "not mounted"
        if not lazy:
            cp = self.run(["umount", str(mountpoint)])
            if cp.returncode == 0:
                return "clean"
        self.run(["umount", "-l", str(mountpoint)], check=True)
        return "lazy"

    # ---- what the node's Ganesha shows ------------------------------------------------
    def live_ids(self, mountpoint: str | Path, also: tuple[str, ...] = (),
                 bus_name: str = GANESHA_BUS_NAME) -> dict[int, str]:
        """Export_Id → path that this node's Ganesha (or the one owning `bus_name`: a volume's
        own instance) serves under `mountpoint` or at one of the paths `also` (exports in an
        FSAL's own namespace) (ShowExports)."""
        top = str(mountpoint).rstrip("/")
        try:
            return {i: p for i, p in show_exports(self.bus_address, bus_name).items()
                    if p == top or p.startswith(top + "/") or p in also}
        except Exception:
            return {}

    def takeover_records(self, ip: str) -> int:
        """Client records this node's Ganesha was given for floating IP `ip` (take-over dir)."""
        root = self.recovery_root / ip
        if not root.is_dir():
            return 0
        return sum(1 for p in root.rglob("*") if p.name.startswith("::ffff:") or "-(" in p.name)

    def grace_events(self, ip: str) -> int:
        """Take-over grace events for `ip` that this node's Ganesha logged
        ("NFS Server recovery event 5 nodeid -1 ip <ip>", EVENT_TAKE_IP)."""
        try:
            text = (self.workdir / "ganesha" / "ganesha.log").read_text(errors="replace")
        except OSError:
            return 0
        return len(re.findall(rf"recovery event 5 nodeid \S+ ip {re.escape(ip)}\b", text))

    # ---- state for 'lab down' ---------------------------------------------------------
    def to_state(self) -> dict:
        return {"name": self.name, "netns": self.netns, "workdir": str(self.workdir),
                "holder_pid": self.holder_pid,
                "pids": [[p, t] for p, t in self._started.items()]}


# --------------------------------------------------------------------------------------
# The holder process
# --------------------------------------------------------------------------------------

def _holder_main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="ganesha_ha.lab.node holder")
    p.add_argument("--netns", required=True)
    p.add_argument("--hostname")
    p.add_argument("--bind", action="append", default=[], metavar="SRC:DST")
    p.add_argument("--workdir")
    args = p.parse_args(argv)
    try:
        linux.setns_path(f"/run/netns/{args.netns}", linux.CLONE_NEWNET)
        linux.enter_private_mount_namespace()
        if args.hostname:
            linux.unshare(linux.CLONE_NEWUTS)
            socket.sethostname(args.hostname)
        # The host's /run/netns bind mounts were copied into this namespace; keeping them
        # would pin every lab namespace for as long as this node lives. Drop the copies.
        detach_netns_copies()
        for spec in args.bind:
            src, dst = spec.rsplit(":", 1)
            linux.bind_mount(src, dst)
    except OSError as exc:
        print(f"holder: {exc}", file=sys.stderr, flush=True)
        return 1
    stop = False

    def on_signal(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.close(1)
    os.open(os.devnull, os.O_WRONLY)
    while not stop:
        signal.pause()
    return 0


def detach_netns_copies() -> None:
    """Lazily unmount, in this (new, private) mount namespace, the copies of the host's
    /run/netns/* bind mounts; failure is harmless."""
    for mp in sorted((m for m in linux.mount_points() if m.startswith("/run/netns/")), reverse=True):
        try:
            linux.umount(mp, lazy=True)
        except OSError:
            pass


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "holder":
        sys.exit(_holder_main(sys.argv[2:]))
    print("usage: python -m ganesha_ha.lab.node holder --netns NAME [...]", file=sys.stderr)
    sys.exit(2)
