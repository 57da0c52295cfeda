"""The node's NFSv4 record tree holds only records of volumes active here (issue 16 A;
recovery/ganesha_records.py): a volume's stop removes its clients' records from the node's
tree (v4recov and v4old), and `prune_inactive` (before ganesha.nfsd starts) those of every
volume that is no longer here, so that Ganesha's start grace, and a take-over inside it, do
not wait for clients that will never come back. The tree's shape is Ganesha 4.3's fs backend
(src/SAL/recovery/recovery_fs.c: v4recov/node<N>/<addr>-(<len>:<co_ownerid>), v4old/node<N>/);
connections come from a /proc/net/tcp text in a temp directory.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganesha_ha.context import VolumeContext
from ganesha_ha.recovery import peers
from ganesha_ha.recovery.ganesha_records import INDEX_DIR, RECOVERY_FILE, GaneshaRecordStore

V1_IP, V2_IP = "192.0.2.101", "192.0.2.102"


def rec(addr: str, name: str) -> str:
    return f"::ffff:{addr}-({len(name)}:{name})"


C1, C2, C3 = rec("192.0.2.11", "Linux NFSv4.1 c1"), rec("192.0.2.12", "Linux NFSv4.1 c2"), rec("192.0.2.13", "c3")


def hexaddr(ip: str) -> str:
    return "".join(f"{int(o):02X}" for o in reversed(ip.split(".")))


def tcp_text(conns: list[tuple[str, str]]) -> str:
    """/proc/net/tcp with ESTABLISHED (01) connections local ip:2049 <- remote ip:700+k."""
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    rows = [f"   {k}: {hexaddr(lip)}:0801 {hexaddr(rip)}:{700 + k:04X} 01 00000000:00000000 00:00000000 "
            f"00000000     0        0 {1000 + k} 1 0000000000000000 20 4 0 10 -1\n"
            for k, (lip, rip) in enumerate(conns)]
    return head + "".join(rows)


@pytest.fixture
def node(tmp_path: Path):
    """A node's RecoveryRoot (clustered: node0), a proc/net of its own, two volumes."""
    root = tmp_path / "recovery"
    for sub in ("v4recov/node0", "v4old/node0"):
        (root / sub).mkdir(parents=True)
    net = tmp_path / "net"
    net.mkdir()
    store = GaneshaRecordStore(root, "v4recov", proc_net=str(net))

    def vol(name: str, ip: str) -> VolumeContext:
        mp = tmp_path / name
        (mp / ".ganesha-ha").mkdir(parents=True, mode=0o700)
        return VolumeContext(mountpoint=mp, state_dir=mp / ".ganesha-ha", volume_uuid=f"uuid-{name}", ip=ip)

    def connect(*conns: tuple[str, str]) -> None:
        (net / "tcp").write_text(tcp_text(list(conns)))
        peers.forget()

    connect()
    return store, root, vol("v1", V1_IP), vol("v2", V2_IP), connect


def confirm(root: Path, *names: str, tree: str = "v4recov") -> None:
    """What Ganesha does at a client's confirm: one directory per client."""
    for n in names:
        (root / tree / "node0" / n).mkdir()


def served(node, records: tuple[str, ...], conns: tuple[tuple[str, str], ...], *vols: VolumeContext) -> None:
    """Ganesha holds `records`, clients are connected as `conns`, each of `vols` was saved."""
    store, root, _, _, connect = node
    confirm(root, *records)
    connect(*conns)
    for v in vols:
        store.save(v)


def on_node(root: Path, tree: str = "v4recov") -> set[str]:
    return {p.name for p in (root / tree / "node0").iterdir()}


def test_a_stop_removes_the_volumes_clients_from_the_node_tree_and_keeps_the_others(node):
    store, root, v1, v2, connect = node
    confirm(root, C1, C2, C3)
    connect((V1_IP, "192.0.2.11"), (V2_IP, "192.0.2.12"))
    assert store.save(v1) and store.save(v2)
    saved = json.loads((v1.state_dir / RECOVERY_FILE).read_text())["records"]
    assert [r["path"] for r in saved] == [C1]
    # v1 moves away: its client's record goes, v2's stays, and so does c3 (nobody's known client)
    store.clear(v1)
    assert on_node(root) == {C2, C3}
    assert not store.index_path(v1.volume_uuid).exists() and store.index_path(v2.volume_uuid).exists()
    assert [r["path"] for r in json.loads((v1.state_dir / RECOVERY_FILE).read_text())["records"]] == [C1], \
        "the volume's copy (what a take-over restores) is never touched"


def test_a_running_ganesha_keeps_its_tree_until_the_leases_end_and_the_prune_covers_its_crash(node):
    # a planned move: Ganesha still holds the client and drops its record when the lease
    # ends there; should it die first, the index tells the prune before its restart
    store, root, v1, v2, connect = node
    served(node, (C1, C2), ((V1_IP, "192.0.2.11"), (V2_IP, "192.0.2.12")), v1, v2)
    store.server_running = lambda: True
    store.clear(v1)
    assert on_node(root) == {C1, C2} and store.index_path(v1.volume_uuid).exists()
    assert store.prune_inactive({v2.volume_uuid}) == [C1]
    assert on_node(root) == {C2}


def test_a_ganesha_that_cannot_be_asked_is_left_alone(node):
    from ganesha_ha.errors import ServerUnavailableError

    store, root, v1, v2, connect = node
    served(node, (C1,), ((V1_IP, "192.0.2.11"),), v1)

    def no_answer() -> bool:
        raise ServerUnavailableError("the bus did not answer")
    store.server_running = no_answer
    store.clear(v1)
    assert on_node(root) == {C1}


def test_a_client_of_two_volumes_stays_while_one_of_them_is_here(node):
    store, root, v1, v2, connect = node
    served(node, (C1,), ((V1_IP, "192.0.2.11"), (V2_IP, "192.0.2.11")), v1, v2)
    store.clear(v1)
    assert on_node(root) == {C1}
    # not yet in v2's index (younger than its last save), but connected to v2's IP now: kept
    store.index_path(v2.volume_uuid).unlink()
    store.save(v1)
    store.clear(v1)
    assert on_node(root) == {C1}


def test_a_stop_with_ganesha_dead_and_the_volume_unmounted_works_from_the_index(node):
    store, root, v1, v2, connect = node
    served(node, (C1,), ((V1_IP, "192.0.2.11"),), v1)
    connect()                                          # kill -9: every connection gone
    (v1.state_dir / RECOVERY_FILE).unlink()            # and the volume no longer readable here
    store.clear(v1)
    assert on_node(root) == set()


def test_restored_records_are_the_volumes_until_they_reclaim(node):
    store, root, v1, v2, connect = node
    (v1.state_dir / RECOVERY_FILE).write_text(json.dumps({"records": [{"path": C1, "type": "dir"}]}))
    assert store.restore(v1) == 1
    assert (root / V1_IP / "v4recov" / C1).is_dir()
    confirm(root, C1, tree="v4old")                    # Ganesha's take-over copies it to v4old
    store.save(v1)                                     # the client has not reclaimed yet
    assert json.loads(store.index_path(v1.volume_uuid).read_text())["names"] == [C1]
    store.clear(v1)
    assert on_node(root, "v4old") == set() and not (root / V1_IP).exists()


def test_before_ganesha_starts_records_of_volumes_not_here_are_pruned(node):
    store, root, v1, v2, connect = node
    confirm(root, C1, C2, C3)
    confirm(root, C1, tree="v4old")
    connect((V1_IP, "192.0.2.11"), (V2_IP, "192.0.2.12"))
    store.save(v1)
    store.save(v2)
    (root / V1_IP / "v4recov").mkdir(parents=True)     # a take-over copy left by a lost node
    # a kill -9 and restart while both volumes are active here: nothing goes
    assert store.prune_inactive({v1.volume_uuid, v2.volume_uuid}) == []
    assert on_node(root) == {C1, C2, C3}
    # after a node loss and reboot, only v2 came back here (the other node holds v1)
    assert store.prune_inactive({v2.volume_uuid}) == [C1]
    assert on_node(root) == {C2, C3} and on_node(root, "v4old") == set()
    assert not (root / V1_IP).exists()
    assert sorted(p.name for p in (root / INDEX_DIR).iterdir()) == [f"{v2.volume_uuid}.json"]
    # nothing active at boot: every indexed volume's records go; an unknown record stays
    assert store.prune_inactive(set()) == [C2]
    assert on_node(root) == {C3}


def test_a_tampered_index_cannot_reach_outside_the_tree(node, tmp_path):
    store, root, v1, v2, connect = node
    victim = tmp_path / "victim"
    victim.mkdir()
    (root / INDEX_DIR).mkdir(mode=0o700)
    for k, key in enumerate(("../../victim", "v4recov", "v4old", INDEX_DIR)):
        store.index_path(f"evil{k}").write_text(json.dumps({"volume_uuid": "evil", "key": key,
                                                           "names": ["../../../victim", "..", "/etc", ".x"]}))
    confirm(root, C1)
    assert store.prune_inactive(set()) == []
    assert victim.is_dir() and on_node(root) == {C1}
