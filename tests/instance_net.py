"""A node for volumes served by their own ganesha.nfsd (instance mode): a `gha-` network
namespace with the floating IPs on its loopback, a private D-Bus, volumes and a settings
file per "node" (its own runtime directory), and the real resource agent run in it.

The test itself runs inside the namespace (`InstanceNode.entered()`: this thread's network
namespace, set back at the end), so the lab's NFS clients, created in the test, connect from
the addresses given to them there; every process the test starts (the agent, through it each
ganesha.nfsd, the bus) is in it too. The namespace has an IPv6 address besides ::1 unless
asked not to (`ipv6=False`): without one, ganesha.nfsd 4.3 binds every address (the agent
refuses to start it, tests/server/test_instance_faults.py). Everything is removed at the end,
each process ended by its PID.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from conftest import ROOT

from ganesha_ha import linux
from ganesha_ha.lab.ganesha_daemon import PrivateBus
from ganesha_ha.lab.netns import remove_netns, undo_netns_dir_mount

AGENT = str(ROOT / "ra" / "exports")
SUBNET = "10.213.91"
IP1, IP2 = f"{SUBNET}.1", f"{SUBNET}.2"          # two volumes' floating IPs
C1, C2, C3 = f"{SUBNET}.11", f"{SUBNET}.12", f"{SUBNET}.13"   # client source addresses
V6 = "fd00:6761::1"


# the lab bus with the default policy of /usr/share/dbus-1/system.conf (Debian 12) instead of
# its own, which lets anyone own anything, and a place for a policy file
STRICT_POLICY = """  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
{include}"""


def strict_bus_config(socket: Path, include: str) -> str:
    """The lab's bus config (lab/ganesha_daemon.py) with STRICT_POLICY in place of its policy."""
    from ganesha_ha.lab.ganesha_daemon import _BUS_CONFIG

    text = _BUS_CONFIG.format(socket=socket)
    head, sep, rest = text.partition('  <policy context="default">')
    _, sep2, tail = rest.partition("  </policy>\n")
    if not (sep and sep2):
        raise AssertionError("the lab's bus config no longer has one default policy: update tests/instance_net.py")
    return head + STRICT_POLICY.format(include=include) + tail


@dataclass
class InstanceNode:
    """The namespace `name`, its bus, and per "node" settings (`config(node)`)."""

    work: Path
    name: str
    ipv6: bool = True
    addresses: tuple[str, ...] = (IP1, IP2, C1, C2, C3)
    bus: PrivateBus | None = None
    started: list[subprocess.Popen] = field(default_factory=list)
    netns_dir_was_mount: bool = False

    def create(self) -> "InstanceNode":
        from pyroute2 import NetNS, netns

        self.netns_dir_was_mount = linux.is_mountpoint("/run/netns")
        netns.create(self.name)
        with NetNS(self.name, flags=0) as ipr:
            lo = ipr.link_lookup(ifname="lo")[0]
            ipr.link("set", index=lo, state="up")
            for a in self.addresses:
                ipr.addr("add", index=lo, address=a, prefixlen=32)
            if self.ipv6:
                ipr.addr("add", index=lo, address=V6, prefixlen=128, flags=0x02)   # IFA_F_NODAD
        with self.entered():
            self.bus = PrivateBus(self.work / "bus").start()
        return self

    @contextmanager
    def entered(self) -> Iterator[None]:
        """This thread in the namespace for the body (sockets made meanwhile stay in it)."""
        original = os.open(f"/proc/self/task/{linux_tid()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.setns_path(f"/run/netns/{self.name}", linux.CLONE_NEWNET)
            try:
                yield
            finally:
                linux.setns(original, linux.CLONE_NEWNET)
        finally:
            os.close(original)

    def strict_bus(self, include: Path | None) -> None:
        """Give the bus the default policy of Debian's system bus (no name may be owned, no
        method called but the bus's own, unless a policy file allows it), with the policy
        file `include`; the bus reloads it at once (ReloadConfig)."""
        import dbus

        extra = f"  <include>{include}</include>\n" if include else ""
        (self.bus.workdir / "bus.conf").write_text(strict_bus_config(self.bus.socket, extra))
        conn = dbus.bus.BusConnection(self.bus.address)
        try:
            conn.call_blocking("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "ReloadConfig", "", ())
        finally:
            conn.close()

    def config(self, node: str, **instance: object) -> Path:
        """The settings file of "node" `node` (its own runtime directory, the node-local
        state), with [instance] keys given as keyword arguments over the test defaults."""
        keys = {"grace_period": 20, "lease_lifetime": 10, "log_dir": self.work / "log", "start_timeout": 20,
                "stop_timeout": 5} | instance
        path = self.work / f"{node}.conf"
        path.write_text("[ganesha]\n"
                        f"bus_address = {self.bus.address}\n"
                        "dbus_timeout = 5\n"
                        "[instance]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
                        + f"[node]\nruntime_dir = {self.work / ('run-' + node)}\n")
        return path

    def cli(self, config: Path, *args: str) -> subprocess.CompletedProcess:
        import sys

        return subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=60)

    def agent(self, action: str, config: Path, volume: Path, ip: str, **params: str) -> subprocess.CompletedProcess:
        """The real agent (ra/exports) as Pacemaker runs it, in the namespace."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
               "OCF_RESOURCE_INSTANCE": f"gha_{volume.name}", "OCF_RESKEY_server": "ganesha",
               "OCF_RESKEY_volume": str(volume), "OCF_RESKEY_ip": ip, "OCF_RESKEY_config": str(config),
               "OCF_RESKEY_CRM_meta_timeout": "60000"}
        env.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
        with self.entered():
            return subprocess.run([AGENT, action], env=env, capture_output=True, text=True, timeout=90)

    def spawn(self, argv: list[str]) -> subprocess.Popen:
        """A process of the test in the namespace, ended by its PID at the end."""
        with self.entered():
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
        self.started.append(proc)
        return proc

    def remove(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        for pid in ganesha_pids(self.work):
            linux.terminate(pid, linux.proc_starttime(pid), 5.0)
        if self.bus is not None:
            self.bus.stop()
        remove_netns(self.name)
        undo_netns_dir_mount(self.netns_dir_was_mount)


def linux_tid() -> int:
    import threading

    return threading.get_native_id()


def ganesha_pids(work: Path) -> list[int]:
    """ganesha.nfsd processes whose command line names a file under `work`."""
    out = []
    for pid in linux.all_pids():
        args = linux.cmdline(pid)
        if args and os.path.basename(args[0]) == "ganesha.nfsd" and any(str(work) in a for a in args):
            out.append(pid)
    return out


def bus_call(bus_address: str, prefix: str, path: str, iface: str, method: str, *args):
    import dbus

    conn = dbus.bus.BusConnection(bus_address)
    try:
        obj = conn.get_object(f"{prefix}.org.ganesha.nfsd", path, introspect=False)
        return obj.get_dbus_method(method, iface)(*args, timeout=10)
    finally:
        conn.close()


def show_exports(bus_address: str, prefix: str) -> dict[int, str]:
    _, exports = bus_call(bus_address, prefix, "/org/ganesha/nfsd/ExportMgr", "org.ganesha.nfsd.exportmgr",
                          "ShowExports")
    return {int(e[0]): str(e[1]) for e in exports}


def in_grace(bus_address: str, prefix: str) -> bool:
    reply = bus_call(bus_address, prefix, "/org/ganesha/nfsd/admin", "org.ganesha.nfsd.admin", "get_grace")
    return bool(reply[0]) if isinstance(reply, (tuple, list)) else bool(reply)


def volume_uuid(volume: Path) -> str:
    return json.loads((volume / ".ganesha-ha" / "registry.json").read_text())["volume"]["uuid"]


def prefix_of(volume: Path) -> str:
    from ganesha_ha.backends.ganesha_instance_conf import dbus_prefix

    return dbus_prefix(volume_uuid(volume))


def reasons(proc: subprocess.CompletedProcess) -> list[str]:
    return [l[len("ocf-exit-reason:"):] for l in proc.stderr.splitlines() if l.startswith("ocf-exit-reason:")]


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
