"""The take-over grace ends early for NFSv4.1 clients, with Ganesha's default Grace_Period
(90 s): a real ganesha.nfsd 4.3 (NLM off), the product's record store, the admin D-Bus
take-over event, and the lab's NFSv4.1 client (issue 16, "grace as short as correctness
allows").

Ganesha lifts a grace period before its end only when every client record it loaded has
sent RECLAIM_COMPLETE, checked at the reaper's tick (src/SAL/nfs4_recovery.c
`nfs_try_lift_grace`; every 10 s, or Lease_Lifetime/2 under a 20 s lease:
nfs_reaper_thread.c `reaper_init`), and never with Enable_NLM on. The take-over path meets
that when the records it loads are exactly the moved volume's clients: the store copies only
the clients connected to the volume's floating IP (recovery/ganesha_records.py), so an
NFSv4.0 client of another IP on the same node, which can never send RECLAIM_COMPLETE, does
not pin the grace to its 90 s.

Measured (the event sent right after node B's daemon started, so the next reaper tick is a
whole period away: the worst case): Lease_Lifetime 10 -> lifted 5.0 s after the event,
Lease_Lifetime 60 (Ganesha's default) -> 10.0 s; the reclaim itself took 0.05 s.

The "node" that dies and the one that takes over are two ganesha.nfsd instances on one
port, one after the other, each with its own RecoveryRoot. Floating IP 127.0.0.2, the
volume's 4.1 client from 127.0.0.5; another volume's IP 127.0.0.3 with a 4.0 client from
127.0.0.6.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import free_port
from ganesha_servers import NEEDS_GANESHA, PSEUDO, export_block, grace_held

from ganesha_ha.context import VolumeContext
from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon, PrivateBus, _ganesha_call, in_grace
from ganesha_ha.lab.nfs.client import Nfs4Client
from ganesha_ha.recovery import peers
from ganesha_ha.recovery.ganesha_records import GaneshaRecordStore

pytestmark = NEEDS_GANESHA

FIP, OTHER_IP, CLIENT, OTHER_CLIENT = "127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.6"
GRACE = 90          # Ganesha's default Grace_Period


def wait_lifted(bus: str, limit: float) -> float:
    """When grace was seen lifted (monotonic s), inf if it held `limit` s."""
    return grace_held(bus, limit)[1]


class Nodes:
    """The "nodes" of a test: ganesha.nfsd instances on one port of one bus, one after the
    other, and the clients; `close()` ends them all."""

    def __init__(self, tmp_path: Path, lease: int):
        self.tmp, self.lease = tmp_path, lease
        (tmp_path / "exp").mkdir()
        (tmp_path / "exp" / "file").write_bytes(b"before the move\n")
        self.port = free_port()
        self.bus = PrivateBus(tmp_path / "bus").start()
        self.daemons: list[GaneshaDaemon] = []
        self.clients: list[Nfs4Client] = []

    def ganesha(self, name: str, recovery: str) -> GaneshaDaemon:
        """A ganesha.nfsd with Grace_Period GRACE, Lease_Lifetime `lease`, RecoveryRoot
        tmp_path/`recovery`, and a server epoch (-E) of its own: client and session ids are
        epoch << 32 | counter, and two instances started in the same second would hand a moved
        client the ids it had (measured: NFS4ERR_SEQ_MISORDERED on its old session instead of
        BADSESSION)."""
        g = GaneshaDaemon(self.tmp / name, self.bus, port=self.port, bind_addr="0.0.0.0", grace_period=GRACE,
                          recovery_root=self.tmp / recovery, server_scope="gha-one",
                          lease_lifetime=self.lease, epoch=int(time.time()) + 1000 * len(self.daemons),
                          extra_config=export_block(7, self.tmp / "exp", clients="127.0.0.0/8"))
        self.daemons.append(g)
        return g.start()

    def client(self, host: str, source: str, minor: int, name: str) -> Nfs4Client:
        c = Nfs4Client(host, self.port, timeout=3.0, source_addr=source, minorversion=minor, client_name=name)
        self.clients.append(c)
        c.connect()
        return c

    def close(self) -> None:
        for c in self.clients:
            c.close()
        for g in self.daemons:
            g.kill()
        self.bus.stop()


@pytest.mark.parametrize("lease", [10, 60])
def test_takeover_grace_ends_once_the_volumes_41_clients_reclaimed(tmp_path: Path, lease: int) -> None:
    tick = lease // 2 if lease < 20 else 10
    nodes = Nodes(tmp_path, lease)
    port, bus, daemons = nodes.port, nodes.bus, nodes.daemons

    def ganesha(name: str) -> GaneshaDaemon:
        return nodes.ganesha(name, f"recovery-{name}")

    client = nodes.client

    try:
        ganesha("a")
        assert wait_lifted(bus.address, 5) < float("inf"), "no record: the start's grace ends at once"
        mine = client(FIP, CLIENT, 1, "gha-vol-client")
        f = mine.open(f"{PSEUDO}/file", write=True)
        assert mine.write(f, 0, b"BEFORE") == 6
        other = client(OTHER_IP, OTHER_CLIENT, 0, "gha-other-volume")
        other.establish()
        other.close_file(other.open(f"{PSEUDO}/file"))

        vol = tmp_path / "vol"
        (vol / ".ganesha-ha").mkdir(parents=True, mode=0o700)
        ctx = VolumeContext(mountpoint=vol, state_dir=vol / ".ganesha-ha", volume_uuid="u", ip=FIP)
        peers.forget()
        assert GaneshaRecordStore(tmp_path / "recovery-a", "v4recov", nfs_port=port).save(ctx)

        daemons[-1].kill()                      # node A is lost
        ganesha("b")                            # node B: its own records only (none)
        assert wait_lifted(bus.address, 5) < float("inf")
        store_b = GaneshaRecordStore(tmp_path / "recovery-b", "v4recov", nfs_port=port)
        assert store_b.restore(ctx) == 1        # the 4.0 client of the other IP is not the volume's
        t0 = time.monotonic()
        ok, msg = _ganesha_call(bus.address, "/org/ganesha/nfsd/admin", "org.ganesha.nfsd.admin", "grace",
                                f"5:{FIP}")[:2]
        assert ok, msg
        assert in_grace(bus.address)
        with pytest.raises(Exception):          # a client with nothing to reclaim cannot open yet
            client(FIP, "127.0.0.7", 1, "gha-newcomer").open(f"{PSEUDO}/new", create=True, write=True)

        f2 = mine.grace_aware(lambda: mine.reclaim(f), deadline=t0 + 20)   # CLAIM_PREVIOUS
        mine.reclaim_complete()
        reclaimed = time.monotonic() - t0
        held, lifted = (t - t0 for t in grace_held(bus.address, GRACE))
        print(f"Lease_Lifetime {lease} (reaper every {tick} s): reclaimed {reclaimed:.2f} s, "
              f"grace held {held:.2f} s, lifted {lifted:.2f} s after the take-over event (Grace_Period {GRACE} s)")
        assert lifted < float("inf"), f"grace held its {GRACE} s"
        # the lift comes at the reaper's first tick after RECLAIM_COMPLETE (0.5 s for the
        # tick's own lateness); with tick 5 that is the target, and as the event came
        # right after the daemon's start, that tick is a whole period away: the worst case
        assert held <= reclaimed + tick + 0.5, f"grace held {held:.1f} s with the reaper every {tick} s"
        assert mine.write(f2, 0, b"AFTER!") == 6 and mine.read(f2, 0, 6) == b"AFTER!"
        newcomer = client(FIP, "127.0.0.8", 1, "gha-newcomer-2")
        newcomer.close_file(newcomer.open(f"{PSEUDO}/new", create=True, write=True))
    finally:
        nodes.close()


@pytest.mark.parametrize("stop_clears", [True, False], ids=["product", "records-left-behind"])
def test_a_restarted_node_does_not_wait_for_the_clients_of_a_volume_that_moved_away(
        tmp_path: Path, stop_clears: bool) -> None:
    """Issue 16 A, as the lab met it (kill -9, then a take-over by the restarted node): node N
    serves vol1 (client c1) until its ganesha.nfsd is killed; vol1 moves away, its stop on N
    running with Ganesha dead (the store's `clear`); N's Ganesha restarts; then N takes over
    vol2 (client c2) from node M. Ganesha's restart loads every record left in N's tree into
    its start grace, and a take-over inside that grace adds its records to the same list
    (nfs4_recovery.c nfs_start_grace): with c1's record left behind (`records-left-behind`,
    what the store did before) the take-over cannot lift before Grace_Period although c2
    reclaimed; with the product's clear it lifts one reaper tick after c2's RECLAIM_COMPLETE.
    Nodes are ganesha.nfsd instances on one port, one after the other, each node its own
    RecoveryRoot; Lease_Lifetime 10 (reaper every 5 s), Grace_Period 90."""
    lease, tick, vol1_ip, vol2_ip, c1_addr, c2_addr = 10, 5, "127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.6"
    nodes = Nodes(tmp_path, lease)
    port, bus, daemons = nodes.port, nodes.bus, nodes.daemons

    def ganesha(node: str) -> GaneshaDaemon:
        return nodes.ganesha(f"{node}-{len(daemons)}", f"recovery-{node}")

    def client(host: str, source: str, name: str) -> Nfs4Client:
        return nodes.client(host, source, 1, name)

    def volume(name: str, ip: str) -> VolumeContext:
        vol = tmp_path / name
        (vol / ".ganesha-ha").mkdir(parents=True, mode=0o700)
        return VolumeContext(mountpoint=vol, state_dir=vol / ".ganesha-ha", volume_uuid=f"uuid-{name}", ip=ip)

    vol1, vol2 = volume("vol1", vol1_ip), volume("vol2", vol2_ip)
    store_n = GaneshaRecordStore(tmp_path / "recovery-n", "v4recov", nfs_port=port)
    try:
        # node M serves vol2; its monitor saves c2's record to vol2; then M dies
        ganesha("m")
        c2 = client(vol2_ip, c2_addr, "gha-vol2-client")
        f2 = c2.open(f"{PSEUDO}/file", write=True)
        peers.forget()
        assert GaneshaRecordStore(tmp_path / "recovery-m", "v4recov", nfs_port=port).save(vol2)
        daemons[-1].kill()
        # node N serves vol1 (c1), its monitor saves; kill -9; vol1 moves away (its stop on N)
        ganesha("n")
        assert wait_lifted(bus.address, 5) < float("inf")
        c1 = client(vol1_ip, c1_addr, "gha-vol1-client")
        c1.open(f"{PSEUDO}/file", write=True)
        peers.forget()
        assert store_n.save(vol1)
        daemons[-1].kill()
        peers.forget()
        if stop_clears:
            store_n.clear(vol1)
            assert store_n.tree_dirs() and not any(any(d.iterdir()) for d in store_n.tree_dirs() if d.is_dir())
        # N's Ganesha restarts (its service manager): what is left in its tree is its start grace's
        ganesha("n")
        t_start = time.monotonic()
        lifted_at_start = wait_lifted(bus.address, 2 * tick + 1) - t_start
        assert (lifted_at_start < float("inf")) == stop_clears, lifted_at_start
        # N takes vol2 over: its copy restored, the take-over event, c2 reclaims
        assert store_n.restore(vol2) == 1
        t0 = time.monotonic()
        ok, msg = _ganesha_call(bus.address, "/org/ganesha/nfsd/admin", "org.ganesha.nfsd.admin", "grace",
                                f"5:{vol2_ip}")[:2]
        assert ok, msg
        f2b = c2.grace_aware(lambda: c2.reclaim(f2), deadline=t0 + 20)   # CLAIM_PREVIOUS
        c2.reclaim_complete()
        reclaimed = time.monotonic() - t0
        limit = reclaimed + tick + 0.5   # the reaper's first tick after RECLAIM_COMPLETE, 0.5 s late at most
        held, lifted = (t - t0 for t in grace_held(bus.address, limit + tick + 0.5))
        print(f"stop clears {stop_clears}: start grace lifted after {lifted_at_start:.2f} s; take-over: "
              f"reclaimed {reclaimed:.2f} s, held {held:.2f} s, lifted {lifted:.2f} s after the event "
              f"(Grace_Period {GRACE} s)")
        if stop_clears:
            assert lifted < float("inf") and held <= limit, f"grace held {held:.1f} s"
            assert c2.write(f2b, 0, b"AFTER!") == 6
        else:   # c1 never comes back to N: the grace holds past two more reaper ticks
            assert lifted == float("inf") and in_grace(bus.address)
    finally:
        nodes.close()
