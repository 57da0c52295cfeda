"""The lab's network, built with pyroute2: nodes, a client, a switch, floating IPs.

The one network builder of the lab: the direct lab, the cluster lab and the sandbox cluster
(which, on its own, builds one without a client) all use `LabNet`. Topology (every name
starts with ``gha-<run id>-``, every address exists only inside these namespaces, so no
packet ever leaves the sandbox)::

    gha-<id>-a  eth0 10.213.N.1/24   ─┐
    gha-<id>-b  eth0 10.213.N.2/24   ─┼─ br0 in gha-<id>-sw (a switch, owned by nobody)
    gha-<id>-c  eth0 10.213.N.10/24  ─┘  (the client, unless client_ns=False)
    floating IP 10.213.N.100/24 on eth0 of whichever node is active

The bridge lives in its own namespace rather than in a node's, so "node A is gone" never
takes the wire down with it. `move_ip` is the IPaddr2 stand-in: delete the address on the
old node, add it on the new one, and drop the client's neighbour entry for it (a real
IPaddr2 sends gratuitous ARP; in a lab with one client, forgetting the stale MAC is the
same thing and needs no extra program).
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import linux

NETNS_DIR = Path("/run/netns")
IFA_F_NODAD = 0x02   # linux/if_addr.h: no duplicate address detection (the address is usable at once)
PREFIX = "gha-"


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def list_netns(prefix: str = PREFIX) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def remove_netns(name: str) -> None:
    """Remove a named network namespace (its bind mount and file); absent is fine."""
    from pyroute2 import netns

    if not netns_exists(name):
        return
    try:
        netns.remove(name)
    except FileNotFoundError:
        pass


def undo_netns_dir_mount(was_mount: bool) -> None:
    """pyroute2 (like `ip netns add`) turns /run/netns into a self-bind mount; undo it when
    it was not one before and no namespace (of anybody) is left there."""
    if was_mount or not NETNS_DIR.is_dir() or os.listdir(NETNS_DIR) or not linux.is_mountpoint(NETNS_DIR):
        return
    linux.umount(NETNS_DIR, lazy=True)


def _ipr(name: str):
    """An IPRoute bound to namespace `name`; flags=0 so a typo never creates a namespace.

    `NetNS` rather than `IPRoute(netns=...)`: the latter exists only from pyroute2 0.9, and
    Debian 12 ships 0.7.2 (python3-pyroute2, which the Debian package depends on)."""
    from pyroute2 import NetNS

    return NetNS(name, flags=0)


def link_up(ipr, ifname: str) -> int:
    """Set `ifname` up in the namespace `ipr` is bound to; returns its index."""
    idx = ipr.link_lookup(ifname=ifname)[0]
    ipr.link("set", index=idx, state="up")
    return idx


@dataclass
class LabNet:
    """The lab's namespaces and addresses. `create()` builds, `remove()` tears down.

    Node names must be distinct, at most 10 characters (the switch port is ``p-<node>``)
    and neither ``sw`` nor ``c``; with a client, at most 9 nodes (the client is ``.10``).
    """

    run_id: str
    subnet: str = "10.213.77"            # a /24, inside the lab's namespaces only
    nodes: tuple[str, ...] = ("a", "b")
    prefixlen: int = 24
    client_ns: bool = True               # a client namespace ("c") on the switch
    created: list[str] = field(default_factory=list)
    # whether /run/netns was a mount before this lab made its first namespace (see remove)
    netns_dir_was_mount: bool = field(default_factory=lambda: linux.is_mountpoint(NETNS_DIR))

    def __post_init__(self) -> None:
        self.nodes = tuple(self.nodes)
        if (len(set(self.nodes)) != len(self.nodes) or {"sw", "c"} & set(self.nodes)
                or any(not n or len(n) > 10 for n in self.nodes)
                or (self.client_ns and len(self.nodes) > 9)):
            raise ValueError(f"bad node names for a lab network: {self.nodes}")

    # ---- names and addresses ----------------------------------------------------------
    def ns(self, who: str) -> str:
        """Namespace of node `who` ('a', 'b'), of the client ('c') or of the switch ('sw')."""
        return f"{PREFIX}{self.run_id}-{who}"

    @property
    def switch(self) -> str:
        return self.ns("sw")

    @property
    def client(self) -> str:
        return self.ns("c")

    def addr(self, who: str) -> str:
        if who == "c":
            return f"{self.subnet}.10"
        return f"{self.subnet}.{self.nodes.index(who) + 1}"

    @property
    def floating_ip(self) -> str:
        return f"{self.subnet}.100"

    def all_names(self) -> list[str]:
        return [self.switch, *(self.ns(n) for n in self.nodes), *([self.client] if self.client_ns else [])]

    # ---- build ------------------------------------------------------------------------
    def create(self) -> "LabNet":
        from pyroute2 import netns

        for name in self.all_names():
            if netns_exists(name):
                raise RuntimeError(f"network namespace {name} already exists "
                                   "(a kept lab? 'ganesha-ha lab down' removes it)")
        if not self.created:
            self.netns_dir_was_mount = linux.is_mountpoint(NETNS_DIR)
        netns.create(self.switch)
        self.created.append(self.switch)
        with _ipr(self.switch) as sw:
            link_up(sw, "lo")
            sw.link("add", ifname="br0", kind="bridge", br_stp_state=0, br_forward_delay=0)
            br = link_up(sw, "br0")
            for who in (*self.nodes, *(["c"] if self.client_ns else [])):
                name = self.ns(who)
                netns.create(name)
                self.created.append(name)
                port = f"p-{who}"
                sw.link("add", ifname=port, kind="veth", peer={"ifname": "eth0", "net_ns_fd": name})
                sw.link("set", index=sw.link_lookup(ifname=port)[0], master=br, state="up")
                with _ipr(name) as ipr:
                    link_up(ipr, "lo")
                    eth = link_up(ipr, "eth0")
                    ipr.addr("add", index=eth, address=self.addr(who), prefixlen=self.prefixlen)
        return self

    def add_client_addr(self, addr: str) -> None:
        """One more address on the client's eth0 (a second client host of the lab)."""
        with _ipr(self.client) as ipr:
            if not self._has_ip(ipr, addr):
                ipr.addr("add", index=ipr.link_lookup(ifname="eth0")[0], address=addr,
                         prefixlen=self.prefixlen)

    def add_loopback_v6(self, who: str, addr: str) -> None:
        """An IPv6 address (/128, no duplicate detection) on `who`'s loopback: what a node
        serving Ganesha instances needs besides ::1 (README, "A volume with its own Ganesha
        instance"). It stays for the namespace's life, reboots of the node included."""
        with _ipr(self.ns(who)) as ipr:
            lo = ipr.link_lookup(ifname="lo")[0]
            if not any(x.get_attr("IFA_ADDRESS") == addr for x in ipr.get_addr(family=10, index=lo)):
                ipr.addr("add", index=lo, address=addr, prefixlen=128, flags=IFA_F_NODAD)

    # ---- the floating IP --------------------------------------------------------------
    def _has_ip(self, ipr, ip: str) -> bool:
        return any(a.get_attr("IFA_ADDRESS") == ip for a in ipr.get_addr(family=2))

    def ip_holder(self) -> str | None:
        """The node whose eth0 carries the floating IP now, or None."""
        for n in self.nodes:
            with _ipr(self.ns(n)) as ipr:
                if self._has_ip(ipr, self.floating_ip):
                    return n
        return None

    def add_ip(self, node: str) -> None:
        with _ipr(self.ns(node)) as ipr:
            if not self._has_ip(ipr, self.floating_ip):
                eth = ipr.link_lookup(ifname="eth0")[0]
                ipr.addr("add", index=eth, address=self.floating_ip, prefixlen=self.prefixlen)
        self.forget_neighbour()

    def del_ip(self, node: str) -> None:
        with _ipr(self.ns(node)) as ipr:
            if self._has_ip(ipr, self.floating_ip):
                eth = ipr.link_lookup(ifname="eth0")[0]
                ipr.addr("del", index=eth, address=self.floating_ip, prefixlen=self.prefixlen)
        self.forget_neighbour()

    def move_ip(self, src: str, dst: str) -> None:
        self.del_ip(src)
        self.add_ip(dst)

    def forget_neighbour(self) -> None:
        """Drop the client's ARP entry for the floating IP (what gratuitous ARP achieves)."""
        if not self.client_ns:
            return
        with _ipr(self.client) as ipr:
            eth = ipr.link_lookup(ifname="eth0")[0]
            try:
                ipr.neigh("del", dst=self.floating_ip, ifindex=eth, family=2)
            except Exception as exc:  # NetlinkError ENOENT: nothing cached, nothing to drop
                if getattr(exc, "code", None) not in (errno.ENOENT, errno.ESRCH):
                    raise

    # ---- a node's wire ------------------------------------------------------------------
    def set_link(self, who: str, up: bool) -> None:
        """Plug or unplug `who`'s cable at the switch (a lost machine answers nothing)."""
        with _ipr(self.switch) as sw:
            sw.link("set", index=sw.link_lookup(ifname=f"p-{who}")[0], state="up" if up else "down")

    def flush_foreign(self, who: str) -> list[str]:
        """Remove every IPv4 address but the node's own from its eth0 (what a reboot does to
        floating IPs an agent had added); returns what was removed."""
        gone = []
        with _ipr(self.ns(who)) as ipr:
            eth = ipr.link_lookup(ifname="eth0")[0]
            for a in ipr.get_addr(family=2, index=eth):
                ip = a.get_attr("IFA_ADDRESS")
                if ip != self.addr(who):
                    ipr.addr("del", index=eth, address=ip, prefixlen=a["prefixlen"])
                    gone.append(ip)
        return gone

    # ---- tear down --------------------------------------------------------------------
    def remove(self) -> list[str]:
        """Remove every namespace this lab created; return those that would not go. When
        none is left and /run/netns was no mount before, undo its self-bind too."""
        left = []
        for name in reversed(self.created or self.all_names()):
            try:
                remove_netns(name)
            except OSError:
                pass
            if netns_exists(name):
                left.append(name)
        self.created = left
        if not left:
            undo_netns_dir_mount(self.netns_dir_was_mount)
        return left
