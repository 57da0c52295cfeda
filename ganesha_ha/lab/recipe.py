"""The Pacemaker configuration of HA NFS volumes, rendered for crmsh and for pcs.

One description (`Recipe`) gives both the crmsh script that `ganesha-ha lab --cluster`
loads into its cluster and the commands the README tells users to run, so that what users
copy is what the lab ran. The only differences are the ones a real cluster needs and a lab
on one machine cannot have: a DRBD device (with its promotable clone, colocation and
order) in place of the loop device, and fencing on.

Per volume, one group, in this order::

    <vol>-fs (ocf:heartbeat:Filesystem) -> <vol>-exports (ocf:ganesha-ha:exports)
      -> <vol>-ip (ocf:heartbeat:IPaddr2) -> <vol>-notify (ocf:ganesha-ha:notify)

The floating IP comes up after the exports and goes down before them: a client that
reached the node while its exports were still being withdrawn or not yet added would get
NFS4ERR_STALE for handles that are valid one second later on the other node. Exports come
after the file system they live on, for the same reason on the other side. The NLM
clients' SM_NOTIFY (notify_agent.py) comes last: it must leave from the floating IP, and
the clients' reclaims must reach the new node through it.

A volume served by a Ganesha instance of its own (`ganesha_mode="instance"`) orders the IP
before the exports, and has no notification::

    <vol>-fs -> <vol>-ip -> <vol>-exports

The instance binds the floating IP (Bind_Addr) and Ganesha cannot bind an address that is
not up yet (it does not use IP_FREEBIND; net.ipv4.ip_nonlocal_bind would allow it, for
every program on the node). The window the first order closes stays closed: the instance
has every export in its config before it accepts a client, and before it listens a client
is refused (and retries) rather than served without the export. On the way down the
instance goes first, its port closes, then the IP. An instance is NFSv4 only (NLM off: see
backends/ganesha_instance_conf.py), so no client of it holds an NLM lock to be notified of.

Pure: no cluster, no files; every value is checked here (a crmsh or pcs line must never be
able to carry a second command).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .layout import UTILIZATION

_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
_PATH = re.compile(r"/[A-Za-z0-9._/+-]*")
_NIC = re.compile(r"[A-Za-z0-9._-]{1,15}")


@dataclass(frozen=True)
class VolumeRecipe:
    """One shared volume: where it is, how clients reach it, where it prefers to run."""

    name: str                  # resource name stem, e.g. "vol1"
    device: str                # /dev/drbd0 (a real cluster), /dev/loopN (the lab)
    mountpoint: str
    ip: str                    # the volume's floating IP (also the agent's take-over key)
    cidr_netmask: int
    preferred_node: str
    nic: str | None = None     # None: IPaddr2 finds it from the routing table
    fstype: str = "ext4"
    drbd_resource: str | None = None   # a DRBD resource under the file system
    ganesha_mode: str = "shared"       # "instance": the volume's own ganesha.nfsd binds the IP

    def __post_init__(self) -> None:
        _check(_NAME, self.name, "volume name")
        _check(_NAME, self.preferred_node, "node name")
        for what, value in (("device", self.device), ("mount point", self.mountpoint)):
            _check(_PATH, value, what)
        ipaddress.ip_address(self.ip)
        if not 1 <= self.cidr_netmask <= 32:
            raise ValueError(f"cidr_netmask out of range: {self.cidr_netmask}")
        if self.nic is not None:
            _check(_NIC, self.nic, "nic")
        _check(re.compile(r"[a-z0-9]{2,10}"), self.fstype, "fstype")
        if self.drbd_resource is not None:
            _check(_NAME, self.drbd_resource, "DRBD resource")
        if self.ganesha_mode not in ("shared", "instance"):
            raise ValueError(f"ganesha_mode must be shared or instance, got {self.ganesha_mode!r}")

    @property
    def group(self) -> str:
        return f"{self.name}-group"

    def ids(self) -> tuple[str, str, str]:
        """The primitive ids in group order: file system, exports, IP; with an instance of
        its own (which binds the IP), file system, IP, exports."""
        fs, exports, ip = f"{self.name}-fs", f"{self.name}-exports", f"{self.name}-ip"
        return (fs, ip, exports) if self.ganesha_mode == "instance" else (fs, exports, ip)

    @property
    def notify_id(self) -> str:
        return f"{self.name}-notify"

    def members(self) -> tuple[str, ...]:
        """Every primitive of the group, in its order: `ids()`, then the notification (none
        for an instance of its own: NFSv4 only, no NLM client to notify)."""
        return self.ids() if self.ganesha_mode == "instance" else (*self.ids(), self.notify_id)


@dataclass(frozen=True)
class Recipe:
    """The whole configuration: every volume, the server, and the cluster-wide defaults."""

    server: str
    volumes: tuple[VolumeRecipe, ...]
    monitor_s: int = 10               # exports and IP monitor interval
    fs_monitor_s: int = 20
    stickiness: int = 100             # > location score: no automatic fail-back
    preference: int = 50
    migration_threshold: int = 1      # a failed monitor moves the group at once
    fencing: bool = True
    # Volumes a node may hold (utilization "volumes": each group uses 1, each node has this
    # many) with placement-strategy=balanced; None: no limit. See layout.py.
    capacity: int | None = None
    nodes: tuple[str, ...] = ()       # the nodes given that capacity (default: the preferred ones)

    def __post_init__(self) -> None:
        if self.server not in ("ganesha", "knfsd"):
            raise ValueError(f"server must be ganesha or knfsd, got {self.server!r}")
        if self.server != "ganesha" and any(v.ganesha_mode != "shared" for v in self.volumes):
            raise ValueError("only server=ganesha has a per-volume instance mode")
        names = [v.name for v in self.volumes]
        if len(set(names)) != len(names) or not names:
            raise ValueError("volumes need distinct names")
        if self.capacity is not None and not 1 <= self.capacity <= 10000:
            raise ValueError(f"capacity out of range: {self.capacity}")
        for n in self.nodes:
            _check(_NAME, n, "node name")

    def capacity_nodes(self) -> tuple[str, ...]:
        return self.nodes or tuple(dict.fromkeys(v.preferred_node for v in self.volumes))

    # -- the primitives, as (id, agent, params, ops) -----------------------------------
    def primitives(self, v: VolumeRecipe) -> list[tuple[str, str, dict[str, str], list[tuple[str, str]]]]:
        """(id, agent, params, ops) of the volume's primitives, in group order."""
        fs, exports, ip = f"{v.name}-fs", f"{v.name}-exports", f"{v.name}-ip"
        ip_params = {"ip": v.ip, "cidr_netmask": str(v.cidr_netmask)}
        if v.nic:
            ip_params["nic"] = v.nic
        # timeouts: each agent's advised ones (its meta-data), so crmsh and pcs have nothing to warn of
        mon = f"interval={self.monitor_s}s timeout=20s"
        rows = [
            (fs, "ocf:heartbeat:Filesystem",
             {"device": v.device, "directory": v.mountpoint, "fstype": v.fstype},
             [("monitor", f"interval={self.fs_monitor_s}s timeout=40s"),
              ("start", "interval=0s timeout=60s"), ("stop", "interval=0s timeout=60s")]),
            (exports, "ocf:ganesha-ha:exports",
             {"server": self.server, "volume": v.mountpoint, "ip": v.ip},
             [("monitor", f"interval={self.monitor_s}s timeout=30s"),
              ("start", "interval=0s timeout=60s"), ("stop", "interval=0s timeout=60s")]),
            (ip, "ocf:heartbeat:IPaddr2", ip_params, [("monitor", mon)]),
            (v.notify_id, "ocf:ganesha-ha:notify", {"ip": v.ip, "volume": v.mountpoint},
             [("monitor", "interval=10s timeout=20s"), ("start", "interval=0s timeout=30s"),
              ("stop", "interval=0s timeout=20s")]),
        ]
        order = v.members()
        return sorted((row for row in rows if row[0] in order), key=lambda row: order.index(row[0]))

    # -- crmsh -------------------------------------------------------------------------
    def crmsh(self) -> str:
        """A script for `crm configure load update FILE` (or `crm configure < FILE`)."""
        out = []
        for v in self.volumes:
            for rid, agent, params, ops in self.primitives(v):
                p = " ".join(f'{k}="{val}"' for k, val in params.items())
                o = " ".join(f"op {name} {args}" for name, args in ops)
                if self.capacity is not None and rid == v.ids()[1]:
                    p += f" utilization {UTILIZATION}=1"
                out.append(f"primitive {rid} {agent} params {p} {o}")
            out.append(f"group {v.group} {' '.join(v.members())}")
            out.append(f"location {v.group}-prefers-{v.preferred_node} {v.group} "
                       f"{self.preference}: {v.preferred_node}")
            if v.drbd_resource:
                clone = f"{v.name}-drbd-clone"
                out.append(f'primitive {v.name}-drbd ocf:linbit:drbd params drbd_resource="{v.drbd_resource}" '
                           + " ".join(f"op {op}" for op in _DRBD_OPS))
                out.append(f"clone {clone} {v.name}-drbd meta promotable=true promoted-max=1 "
                           "promoted-node-max=1 clone-max=2 clone-node-max=1 notify=true")
                out.append(f"colocation {v.group}-on-drbd inf: {v.group} {clone}:Promoted")
                out.append(f"order {v.group}-after-drbd Mandatory: {clone}:promote {v.group}:start")
        out += [f"node {n} utilization {UTILIZATION}={self.capacity}" for n in self.capacity_nodes()
                if self.capacity is not None]
        out.append(f"rsc_defaults rsc-options: resource-stickiness={self.stickiness} "
                   f"migration-threshold={self.migration_threshold}")
        out.append(f"property cib-bootstrap-options: stonith-enabled={str(self.fencing).lower()}"
                   + (" placement-strategy=balanced" if self.capacity is not None else ""))
        return "\n".join(out) + "\n"

    # -- pcs ---------------------------------------------------------------------------
    def pcs(self) -> str:
        """The same configuration as pcs commands (pcs 0.11, Pacemaker 2.1)."""
        out = []
        for v in self.volumes:
            if v.drbd_resource:
                out.append(f"pcs resource create {v.name}-drbd ocf:linbit:drbd drbd_resource={v.drbd_resource} "
                           f"op {' '.join(_DRBD_OPS)} promotable promoted-max=1 promoted-node-max=1 "
                           "clone-max=2 clone-node-max=1 notify=true --no-default-ops")
            for rid, agent, params, ops in self.primitives(v):
                p = " ".join(f"{k}={val}" for k, val in params.items())
                o = " ".join(f"{name} {args}" for name, args in ops)
                # --no-default-ops: exactly these operations, as crmsh gives (pcs would add
                # every action of the meta-data otherwise)
                out.append(f"pcs resource create {rid} {agent} {p} op {o} --group {v.group} --no-default-ops")
            out.append(f"pcs constraint location {v.group} prefers {v.preferred_node}={self.preference}")
            if v.drbd_resource:
                out.append(f"pcs constraint colocation add {v.group} with Promoted {v.name}-drbd-clone INFINITY")
                out.append(f"pcs constraint order promote {v.name}-drbd-clone then start {v.group}")
        if self.capacity is not None:
            out += [f"pcs resource utilization {v.ids()[1]} {UTILIZATION}=1" for v in self.volumes]
            out += [f"pcs node utilization {n} {UTILIZATION}={self.capacity}" for n in self.capacity_nodes()]
        out.append(f"pcs resource defaults update resource-stickiness={self.stickiness} "
                   f"migration-threshold={self.migration_threshold}")
        out.append(f"pcs property set stonith-enabled={str(self.fencing).lower()}"
                   + (" placement-strategy=balanced" if self.capacity is not None else ""))
        return "\n".join(out) + "\n"


# The DRBD agent's advised timeouts (its meta-data): Pacemaker's 20 s default is too short.
_DRBD_OPS = ("monitor interval=29s role=Promoted timeout=20s", "monitor interval=31s role=Unpromoted timeout=20s",
             "start interval=0s timeout=240s", "stop interval=0s timeout=100s",
             "promote interval=0s timeout=90s", "demote interval=0s timeout=90s",
             "notify interval=0s timeout=90s")


def _check(rx: re.Pattern[str], value: str, what: str) -> None:
    if not isinstance(value, str) or not rx.fullmatch(value) or "//" in value or "/../" in value + "/":
        raise ValueError(f"unsafe {what} for a cluster recipe: {value!r}")
