"""Volumes served by a ganesha.nfsd of their own (`volume init --ganesha-mode instance`),
against the real ganesha.nfsd, resource agent and NFSv4.1 clients (tests/instance_net.py:
one network namespace standing in for the nodes, the floating IPs on its loopback).

What is shown:
- two volumes on one node, each with its own instance bound to its own floating IP on port
  2049, each serving only its own exports, under the same Export_Id and pseudo path (no
  cross-volume ranges or pseudo checks in this mode), with a server scope of its own;
  a live `export add` reaches only its volume's instance;
- the core claim of issue 17: a failover of one volume (stop, unmount, mount, start on
  another "node": a fresh instance from the same volume) puts only that volume's instance in
  grace; its NFSv4.1 client reclaims with CLAIM_PREVIOUS (same server scope, records found on
  the volume: no copying, no take-over event) while the OTHER volume's client keeps doing new
  OPENs with zero NFS4ERR_GRACE, as a third client of the moved volume gets NFS4ERR_GRACE.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import tmpfs
from ganesha_servers import NEEDS_GANESHA
from instance_net import (C1, C2, C3, IP1, IP2, SUBNET, InstanceNode, bus_call, ganesha_pids, in_grace,
                          prefix_of, show_exports, volume_uuid, wait_for)

from ganesha_ha import linux, linux_net
from ganesha_ha.backends.ganesha_instance_conf import server_scope
from ganesha_ha.lab.nfs.client import Nfs4Client
from ganesha_ha.lab.nfs.nfs4 import NfsError

pytestmark = NEEDS_GANESHA
EXPORT_MGR, EXPORT_IFACE = "/org/ganesha/nfsd/ExportMgr", "org.ganesha.nfsd.exportmgr"


@pytest.fixture
def node(tmp_path: Path):
    n = InstanceNode(tmp_path, f"gha-inst-{os.getpid()}").create()
    try:
        yield n
    finally:
        n.remove()
    assert ganesha_pids(tmp_path) == []


@pytest.fixture
def volumes(node: InstanceNode, tmp_path: Path):
    """Two volumes (bind mounts of directories of one tmpfs, so that a volume can be
    unmounted and mounted again with its content), each initialised for its own instance
    with the SAME Export_Id range and an export at the SAME pseudo path /data; vol2 sets its
    instance's grace and lease (the node's settings: 20 s and 10 s)."""
    with tmpfs(tmp_path / "store", size="32m") as store:
        vols = []
        config = node.config("a")
        for name, content, times in (("vol1", b"one\n", ()),
                                     ("vol2", b"two\n", ("--grace-period", "15", "--lease-lifetime", "7"))):
            (store / name / "data").mkdir(parents=True)
            (store / name / "data" / "file").write_bytes(content)
            vol = tmp_path / name
            vol.mkdir()
            linux.bind_mount(store / name, vol)
            for args in (("volume", "init", str(vol), "--server", "ganesha", "--ganesha-mode", "instance",
                          "--id-range", "100-199", *times),
                         ("export", "add", str(vol), "data", "--client", f"{SUBNET}.0/24(rw,no_root_squash)",
                          "--pseudo", "/data")):
                proc = node.cli(config, *args)
                assert proc.returncode == 0, proc.stderr
            vols.append(vol)
        try:
            yield store, vols
        finally:
            for vol in vols:
                if linux.is_mountpoint(vol):
                    linux.umount(vol, lazy=True)


def start(node: InstanceNode, config: Path, vol: Path, ip: str) -> None:
    proc = node.agent("start", config, vol, ip)
    assert proc.returncode == 0, proc.stderr
    assert "started ganesha.nfsd instance pid" in proc.stderr


def client(node: InstanceNode, ip: str, source: str, name: str) -> Nfs4Client:
    with node.entered():
        c = Nfs4Client(ip, 2049, minorversion=1, source_addr=source, client_name=name, timeout=3.0)
        c.connect()
        c.establish()
    return c


def test_two_volumes_each_served_by_its_own_instance(node, volumes):
    _, (vol1, vol2) = volumes
    config = node.config("a")
    start(node, config, vol1, IP1)
    start(node, config, vol2, IP2)
    p1, p2 = prefix_of(vol1), prefix_of(vol2)
    assert p1 != p2
    # the same Export_Id 100 and pseudo path /data, each in its own instance
    assert show_exports(node.bus.address, p1) == {0: "/", 100: f"{vol1}/data"}
    assert show_exports(node.bus.address, p2) == {0: "/", 100: f"{vol2}/data"}
    assert len(ganesha_pids(node.work)) == 2
    for vol, times in ((vol1, (20, 10)), (vol2, (15, 7))):   # the node's, and the volume's own
        conf = (node.work / "run-a" / "ganesha" / "instances" / volume_uuid(vol) / "ganesha.conf").read_text()
        assert f"Grace_Period = {times[0]};" in conf and f"Lease_Lifetime = {times[1]};" in conf, conf
    with node.entered():
        listening = {a for a, _ in linux_net.tcp_listeners(2049)}
    assert listening == {f"::ffff:{IP1}", f"::ffff:{IP2}"}, "each instance on its own IP only"

    c1, c2 = client(node, IP1, C1, "gha-two-c1"), client(node, IP2, C2, "gha-two-c2")
    with node.entered():
        assert c1.read(c1.lookup("/data/file"), 0, 100) == b"one\n"
        assert c2.read(c2.lookup("/data/file"), 0, 100) == b"two\n"
        assert c1.server.server_scope == server_scope(volume_uuid(vol1)).encode() + b"\0"
        assert c2.server.server_scope == server_scope(volume_uuid(vol2)).encode() + b"\0"

        # a live change goes to its volume's instance only
        (vol1 / "more").mkdir()
        (vol1 / "more" / "m").write_bytes(b"more\n")
        proc = node.cli(config, "export", "add", str(vol1), "more", "--client", f"{SUBNET}.0/24(rw)",
                        "--pseudo", "/more")
        assert proc.returncode == 0 and "live" in proc.stdout, proc.stderr
        assert show_exports(node.bus.address, p1) == {0: "/", 100: f"{vol1}/data", 101: f"{vol1}/more"}
        assert show_exports(node.bus.address, p2) == {0: "/", 100: f"{vol2}/data"}
        assert c1.read(c1.lookup("/more/m"), 0, 100) == b"more\n"
        with pytest.raises(NfsError) as ei:
            c2.lookup("/more")
        assert ei.value.name == "NFS4ERR_NOENT"
        c1.close()
        c2.close()

    for vol, ip in ((vol1, IP1), (vol2, IP2)):
        proc = node.agent("monitor", config, vol, ip, CRM_meta_interval="10000")
        assert proc.returncode == 0, proc.stderr
    status = node.cli(config, "volume", "status", str(vol1), "--json")
    assert '"ganesha_mode": "instance"' in status.stdout and '"live": true' in status.stdout, status
    for vol, ip in ((vol1, IP1), (vol2, IP2)):
        proc = node.agent("stop", config, vol, ip)
        assert proc.returncode == 0, proc.stderr
    assert ganesha_pids(node.work) == []
    with node.entered():
        assert linux_net.tcp_listeners(2049) == []


def display(node: InstanceNode, prefix: str, export_id: int):
    import dbus

    from ganesha_ha.backends.grants import parse_display

    return parse_display(bus_call(node.bus.address, prefix, EXPORT_MGR, EXPORT_IFACE, "DisplayExport",
                                  dbus.UInt16(export_id)))


def test_the_instance_is_read_back_and_its_grants_repaired(node, volumes, tmp_path):
    """What the instance holds is read back with DisplayExport, as for the node's Ganesha:
    grants changed behind ganesha-ha's back (UpdateExport on the instance's own bus name) are
    named by the monitor and repaired; the agent's monitor then finds nothing to repair."""
    _, (vol1, _) = volumes
    config = node.config("a")
    start(node, config, vol1, IP1)
    p1 = prefix_of(vol1)
    assert [(c.name, c.grant.access) for c in display(node, p1, 100).clients] == [(f"{SUBNET}.0/24", "RW")]
    behind = tmp_path / "behind.conf"
    behind.write_text(f'EXPORT {{ Export_Id = 100; Path = "{vol1}/data"; Pseudo = "/data"; Access_Type = None; '
                      f"Protocols = 4; FSAL {{ Name = VFS; }} CLIENT {{ Clients = {SUBNET}.0/24; Access_Type = RO; "
                      "Squash = No_Root_Squash; } }\n")
    assert str(bus_call(node.bus.address, p1, EXPORT_MGR, EXPORT_IFACE, "UpdateExport", str(behind),
                        "EXPORT(Export_Id=100)")) == "1 exports updated"
    assert display(node, p1, 100).clients[0].grant.access == "RO"
    proc = node.cli(config, "volume", "monitor", str(vol1), "--ip", IP1, "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["repaired"] == 1 and res["changed"] == ["data"]
    assert res["reasons"] == [f"Export_Id 100 (/data): client {SUBNET}.0/24: access is RO, the registry says RW"]
    assert [(c.name, c.grant.access) for c in display(node, p1, 100).clients] == [(f"{SUBNET}.0/24", "RW")]
    proc = node.agent("monitor", config, vol1, IP1, CRM_meta_interval="10000")
    assert proc.returncode == 0 and "repaired" not in proc.stderr, proc.stderr
    proc = node.agent("stop", config, vol1, IP1)
    assert proc.returncode == 0, proc.stderr


class OpenLoop(threading.Thread):
    """A client of a volume that does not move: new OPENs (create, write, close of a fresh
    file) one after the other, each result kept with its time, until told to stop."""

    def __init__(self, node: InstanceNode, c: Nfs4Client):
        super().__init__(daemon=True)
        self.node, self.c = node, c
        self.done: list[float] = []
        self.errors: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.node.entered():
            i = 0
            while not self.stop.is_set():
                i += 1
                t = time.monotonic()
                try:
                    f = self.c.open(f"/data/new-{i}", create=True, write=True)
                    self.c.write(f, 0, b"x" * 100)
                    self.c.close_file(f)
                    self.done.append(t)
                except (NfsError, OSError) as exc:
                    self.errors.append((t, getattr(exc, "name", type(exc).__name__)))
                time.sleep(0.05)


def test_a_failover_stalls_only_the_moved_volume(node, volumes):
    store, (vol1, vol2) = volumes
    on_a = node.config("a")
    start(node, on_a, vol1, IP1)
    start(node, on_a, vol2, IP2)
    scope1 = server_scope(volume_uuid(vol1)).encode() + b"\0"

    c1 = client(node, IP1, C1, "gha-move-c1")
    with node.entered():
        held = c1.open("/data/held", create=True, write=True)
        assert c1.write(held, 0, b"before") == 6
    assert held.server_scope == scope1
    # Ganesha wrote the client's record on the volume itself
    records = vol1 / ".ganesha-ha" / "nfs4-recovery" / "v4recov"
    assert [n for n in os.listdir(records) if n.startswith(f"::ffff:{C1}-(")], os.listdir(records)

    loop = OpenLoop(node, client(node, IP2, C2, "gha-move-c2"))
    loop.start()
    try:
        check_failover(node, store, vol1, vol2, held, c1, loop)
    finally:
        loop.stop.set()
        loop.join(10)


def check_failover(node: InstanceNode, store: Path, vol1: Path, vol2: Path, held, c1: Nfs4Client,
                   loop: OpenLoop) -> None:
    """vol1 moves from "node" a to b while `loop` opens files on vol2 (see the test)."""
    on_a, on_b = node.config("a"), node.config("b")
    p1, p2 = prefix_of(vol1), prefix_of(vol2)
    scope1 = held.server_scope
    assert wait_for(lambda: len(loop.done) >= 3, 10), loop.errors
    epoch_file = vol1 / ".ganesha-ha" / "instance-epoch"
    epoch = int(epoch_file.read_text())
    grace2 = []
    t0 = time.monotonic()

    # the move: stop on node a, unmount, mount again, start on node b (a fresh instance)
    proc = node.agent("stop", on_a, vol1, IP1)
    assert proc.returncode == 0, proc.stderr
    linux.umount(vol1)
    linux.bind_mount(store / "vol1", vol1)
    start(node, on_b, vol1, IP1)
    # a new epoch, even within the same second: new client ids, stateids and write verifier
    assert int(epoch_file.read_text()) > epoch
    assert in_grace(node.bus.address, p1), "the moved volume's instance starts in grace for its client"
    grace2.append(in_grace(node.bus.address, p2))

    # a new client of the moved volume is stalled by its grace ...
    c3 = client(node, IP1, C3, "gha-move-c3")
    with node.entered():
        with pytest.raises(NfsError) as ei:
            c3.open("/data/other", create=True, write=True)
        assert ei.value.name == "NFS4ERR_GRACE"
        # ... and the moved client reclaims its open with CLAIM_PREVIOUS: same scope, its
        # record found on the volume (nothing copied, no take-over event)
        again = c1.grace_aware(lambda: c1.reclaim(held), deadline=time.monotonic() + 15)
        assert again.fh == held.fh and again.server_scope == scope1
        c1.reclaim_complete()
        assert c1.write(again, 6, b" after") == 6
        assert c1.read(again, 0, 100) == b"before after"
    grace2.append(in_grace(node.bus.address, p2))
    # every client with a record reclaimed: grace ends at the next reaper tick (lease/2 = 5 s)
    assert wait_for(lambda: not in_grace(node.bus.address, p1), 12, 0.2)
    lifted = time.monotonic()
    with node.entered():
        c3.close_file(c3.open("/data/other", create=True, write=True))
    time.sleep(0.5)
    loop.stop.set()
    loop.join(10)
    assert not loop.is_alive()

    during = [t for t in loop.done if t0 <= t <= lifted]
    if loop.errors:
        names = sorted({name for _, name in loop.errors})
        pytest.fail(f"the unmoved volume's client got {len(loop.errors)} errors ({', '.join(names)}) "
                    f"from {loop.errors[0][0] - t0:.1f} s to {loop.errors[-1][0] - t0:.1f} s after the move began")
    assert len(during) >= 10, f"only {len(during)} new OPENs on the unmoved volume during the failover"
    assert grace2 == [False, False]
    assert (store / "vol1" / "data" / "held").read_bytes() == b"before after"
    assert len(list((store / "vol2" / "data").glob("new-*"))) == len(loop.done)
    for c in (c1, c3, loop.c):
        c.close()
    for vol, ip, config in ((vol1, IP1, on_b), (vol2, IP2, on_a)):
        proc = node.agent("stop", config, vol, ip)
        assert proc.returncode == 0, proc.stderr
