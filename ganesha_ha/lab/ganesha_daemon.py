"""Run a private D-Bus system bus and a private ganesha.nfsd, as the lab, tests and benchmarks need.

Measured on Debian 12 (nfs-ganesha 4.3): Ganesha registers `org.ganesha.nfsd` on a private
system-type bus given by DBUS_SYSTEM_BUS_ADDRESS, needs no rpcbind (it only logs
"Cannot register NFS V4"), and serves about 0.2 s after start. Readiness is
`NameHasOwner("org.ganesha.nfsd")` on its bus: Ganesha keeps serving without D-Bus control
when the bus is unreachable at start, so a running process alone proves nothing.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .procs import stop_popen, wait_until

GANESHA_BUS_NAME = "org.ganesha.nfsd"

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


@dataclass
class PrivateBus:
    """A dbus-daemon of system type listening on a unix socket in `workdir`."""

    workdir: Path
    proc: subprocess.Popen | None = None
    prefix_argv: list[str] = field(default_factory=list)  # e.g. nsenter into a lab node
    # "system_bus_socket" when the workdir is bind-mounted over a node's /run/dbus, so that
    # programs on that node find the bus where the system bus is, with no settings at all
    socket_name: str = "bus.sock"

    @property
    def socket(self) -> Path:
        return self.workdir / self.socket_name

    @property
    def address(self) -> str:
        return f"unix:path={self.socket}"

    def start(self, timeout: float = 10.0) -> "PrivateBus":
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "bus.conf"
        conf.write_text(_BUS_CONFIG.format(socket=self.socket))
        self.proc = subprocess.Popen(
            [*self.prefix_argv, "dbus-daemon", "--nofork", "--nopidfile", f"--config-file={conf}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        # Ready when the socket accepts, not when its file exists: dbus-daemon bind()s (the
        # file appears) before it listen()s, and a ganesha.nfsd that connects in between gets
        # ECONNREFUSED, logs "DBUS not initialized" and serves on without D-Bus control (met
        # once by the suite at load 10).
        if not wait_until(lambda: self._accepts() or self.proc.poll() is not None, timeout):
            self.stop()
            raise RuntimeError("private dbus-daemon did not listen on its socket")
        if self.proc.poll() is not None:
            raise RuntimeError(f"private dbus-daemon exited with {self.proc.returncode}")
        return self

    def _accepts(self) -> bool:
        """Whether a connect() to the bus socket succeeds now (the daemon listens)."""
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(self.socket))
            except OSError:
                return False
            return True

    def name_has_owner(self, name: str = GANESHA_BUS_NAME) -> bool:
        import dbus  # imported late: only the lab and tests need a bus client here

        try:
            conn = dbus.bus.BusConnection(self.address)
        except dbus.DBusException:
            return False
        try:
            return bool(conn.name_has_owner(name))
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc is not None:
            stop_popen(self.proc)
            self.proc = None
        try:
            self.socket.unlink()
        except FileNotFoundError:
            pass


_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def core_config(*, port: int, bind_addr: str, recovery_root: Path, grace_period: int = 5,
                lease_lifetime: int | None = None, dbus_name_prefix: str | None = None,
                nlm: bool = False, server_scope: str | None = None,
                server_owner: str | None = None) -> str:
    """The NFS_CORE_PARAM/NFSV4 part of a lab Ganesha's config. Without `nlm`: NFSv4 only,
    no NLM/RQUOTA/UDP. With it: Protocols 3, 4 and Enable_NLM (MOUNT and NLM register with
    the rpcbind of the daemon's network namespace, NLM monitors clients through its statd).

    `server_scope`/`server_owner` (NFSV4 Server_Scope/Server_Owner, 1..255 characters,
    src/support/nfs_read_conf.c; here restricted to letters, digits, '.', '_', '-') are
    what an NFSv4.1 client compares before it reclaims on another node (RFC 8881 2.10.4);
    unset, Ganesha presents `<host name>_NFS-Ganesha`, a different scope on every node.
    Everything of the NFSV4 block is written here, once: a second NFSV4 block silently
    resets the first one's Grace_Period to 90 (measured). Lease_Lifetime defaults to
    max(grace_period, 5). ValueError for a scope or owner out of that alphabet."""
    for what, value in (("server_scope", server_scope), ("server_owner", server_owner)):
        if value is not None and not _IDENTITY.fullmatch(value):
            raise ValueError(f"{what} {value!r}: 1..255 of letters, digits, '.', '_', '-'")
    lease = lease_lifetime if lease_lifetime is not None else max(grace_period, 5)
    prefix = f"    Dbus_Name_Prefix = {dbus_name_prefix};\n" if dbus_name_prefix else ""
    identity = "".join(f'    {key} = "{value}";\n' for key, value in
                       (("Server_Scope", server_scope), ("Server_Owner", server_owner)) if value)
    return (
        "NFS_CORE_PARAM {\n"
        f"    NFS_Port = {port};\n"
        f"    Bind_Addr = {bind_addr};\n"
        f"    Protocols = {'3, 4' if nlm else '4'};\n"
        f"    Enable_NLM = {'true' if nlm else 'false'};\n"
        "    Enable_RQUOTA = false;\n"
        "    Enable_UDP = false;\n"
        f"{prefix}"
        "}\n"
        "NFSV4 {\n"
        "    RecoveryBackend = fs;\n"
        f'    RecoveryRoot = "{recovery_root}";\n'
        f"    Grace_Period = {grace_period};\n"
        f"    Lease_Lifetime = {lease};\n"
        f"{identity}"
        "}\n"
    )


@dataclass
class GaneshaDaemon:
    """One ganesha.nfsd in the foreground (-F), controlled over `bus`.

    `extra_config` is appended to the generated config (for example EXPORT blocks or a
    `%include`), which is what a restart-based agent does and what the benchmarks compare.
    `nlm`, `server_scope`, `server_owner`, `lease_lifetime`: see `core_config`. `epoch`:
    Ganesha's server epoch (`-E`); see node.server_epoch for why a cluster's nodes need
    different ones.
    `check_netns`: the named network namespace the daemon listens in, when it runs in one
    through `prefix_argv` (nsenter): readiness then also waits for its NFS port there.
    """

    workdir: Path
    bus: PrivateBus
    port: int = 20490
    bind_addr: str = "127.0.0.1"
    grace_period: int = 5
    recovery_root: Path | None = None
    extra_config: str = ""
    nlm: bool = False
    server_scope: str | None = None
    server_owner: str | None = None
    lease_lifetime: int | None = None
    check_netns: str | None = None
    epoch: int | None = None   # -E: the server epoch in every client id and stateid (default: start time)
    env: dict[str, str] = field(default_factory=dict)
    netns: str | None = None
    prefix_argv: list[str] = field(default_factory=list)  # generic wrapper, e.g. nsenter -t PID -m -n
    # RecoveryRoot as the daemon sees it, when it runs in a mount namespace where another
    # directory is mounted there (a cluster-lab node's own /var/lib/nfs/ganesha)
    recovery_root_inside: str | None = None
    proc: subprocess.Popen | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "ganesha.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "ganesha.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        rec = self.recovery_root or (self.workdir / "recovery")
        rec.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            core_config(port=self.port, bind_addr=self.bind_addr,
                        recovery_root=Path(self.recovery_root_inside or rec),
                        grace_period=self.grace_period, lease_lifetime=self.lease_lifetime,
                        nlm=self.nlm, server_scope=self.server_scope,
                        server_owner=self.server_owner) + self.extra_config
        )
        return self.config_path

    def argv(self) -> list[str]:
        binary = shutil.which("ganesha.nfsd") or "/usr/bin/ganesha.nfsd"
        cmd = [binary, "-F", "-f", str(self.config_path), "-L", str(self.log_path),
               "-p", str(self.workdir / "ganesha.pid"), "-N", "NIV_EVENT"]
        if self.epoch is not None:
            cmd += ["-E", str(self.epoch)]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        return [*self.prefix_argv, *cmd]

    def start(self, timeout: float = 15.0) -> "GaneshaDaemon":
        self.write_config()
        env = dict(os.environ)
        env.update(self.env)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        self.proc = subprocess.Popen(self.argv(), env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = wait_until(lambda: self.proc.poll() is not None or self.bus.name_has_owner(), timeout)
        if not ok or self.proc.poll() is not None:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"ganesha.nfsd did not come up on its bus:\n{tail}")
        # Ganesha owns its bus name before it listens for NFS: on a loaded machine a client
        # that connects at once is refused. Wait for the port too, from the network
        # namespace it listens in (ours, or the one named).
        if self.reachable() and not wait_until(self.listening, timeout, interval=0.1):
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"ganesha.nfsd did not listen on port {self.port}:\n{tail}")
        return self

    def reachable(self) -> bool:
        """Whether `listening()` can look: the daemon shares our network namespace, or the
        one it runs in is named (`netns`, `check_netns`)."""
        return bool(self.netns or self.check_netns or not self.prefix_argv)

    def listening(self) -> bool:
        """A TCP connection to Ganesha's NFS port is accepted now, from the network
        namespace it listens in."""
        import socket

        host = "127.0.0.1" if self.bind_addr in ("0.0.0.0", "") else self.bind_addr

        def connect() -> bool:
            try:
                with socket.create_connection((host, self.port), timeout=0.5):
                    return True
            except OSError:
                return False
        ns = self.netns or self.check_netns
        if ns is None:
            return connect()
        from .nsthread import in_netns

        return in_netns(ns, connect)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL: a crash with no clean stop, as in a failover test."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM, or SIGKILL with NLM on: its SIGTERM takes ~12 s when NLM clients were
        seen (measured), which nothing the lab or the tests prove needs."""
        if self.nlm:
            self.kill()
        elif self.proc is not None:
            stop_popen(self.proc, timeout=10.0)
            self.proc = None


# ---------------------------------------------------------------------------------------
# D-Bus helpers (a lab looks at each node's Ganesha from outside, over its private bus)
# ---------------------------------------------------------------------------------------

def _ganesha_call(bus_address: str, path: str, iface: str, method: str, *args,
                  bus_name: str = GANESHA_BUS_NAME):
    import dbus

    conn = dbus.bus.BusConnection(bus_address)
    try:
        obj = conn.get_object(bus_name, path, introspect=False)
        return obj.get_dbus_method(method, iface)(*args, timeout=10)
    finally:
        conn.close()


def show_exports(bus_address: str, bus_name: str = GANESHA_BUS_NAME) -> dict[int, str]:
    """Export_Id -> path of the Ganesha owning `bus_name` (a volume's own instance has its own)."""
    _, exports = _ganesha_call(bus_address, "/org/ganesha/nfsd/ExportMgr",
                               "org.ganesha.nfsd.exportmgr", "ShowExports", bus_name=bus_name)
    return {int(e[0]): str(e[1]) for e in exports}


def in_grace(bus_address: str, bus_name: str = GANESHA_BUS_NAME) -> bool:
    """Whether the Ganesha owning `bus_name` on the bus at `bus_address` is in grace
    (org.ganesha.nfsd.admin get_grace); a D-Bus error when nobody owns the name."""
    reply = _ganesha_call(bus_address, "/org/ganesha/nfsd/admin", "org.ganesha.nfsd.admin", "get_grace",
                          bus_name=bus_name)
    # nfs-ganesha 4.3 answers (in_grace, success, message); older ones a bare boolean
    return bool(reply[0]) if isinstance(reply, (tuple, list)) else bool(reply)
