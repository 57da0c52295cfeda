"""The lab's pure parts that decide what a failover can prove: the Ganesha epochs of its
nodes, which NFSv4 client ids a node still holds, the nodes' /etc/hosts, the options. No root, no daemons."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ganesha_ha.lab.base import LabOptions
from ganesha_ha.lab.nlm_services import hosts_text
from ganesha_ha.lab.node import EPOCH_SLOTS, LabNode, server_epoch


@given(st.integers(0, EPOCH_SLOTS - 1), st.integers(0, EPOCH_SLOTS - 1),
       st.floats(1.7e9, 2.0e9), st.floats(0, 0.999))
def test_two_nodes_started_in_the_same_second_get_different_epochs(a, b, now, frac):
    # the collision this exists for: same start second, same client-id counter
    if a != b:
        assert server_epoch(a, None, now) != server_epoch(b, None, now + frac)
    e = server_epoch(a, None, now)
    assert 0 < e < 2 ** 32 and e % EPOCH_SLOTS == a


def test_a_restart_in_the_same_second_gets_a_higher_epoch_in_its_slot():
    first = server_epoch(1, None, 1.8e9)
    again = server_epoch(1, first, 1.8e9)
    assert again > first and again % EPOCH_SLOTS == 1
    assert server_epoch(1, again, 1.8e9 + 10) > again
    with pytest.raises(ValueError):
        server_epoch(EPOCH_SLOTS, None)


def test_a_node_remembers_a_client_while_its_own_record_is_there(tmp_path: Path):
    node = LabNode("a", "gha-x-a", tmp_path, "10.0.0.1")
    own = node.recovery_root / "v4recov" / "node0"
    own.mkdir(parents=True)
    (own / "::ffff:10.0.0.10-(14:gha-lab-volume)").mkdir()
    # a take-over copy is not the node's own client id
    takeover = node.recovery_root / "10.0.0.100" / "v4recov"
    takeover.mkdir(parents=True)
    (takeover / "::ffff:10.0.0.10-(18:gha-lab-volume-new)").mkdir()
    names = ("gha-lab-volume", "gha-lab-volume-new")
    assert node.remembered_clients(names) == ["gha-lab-volume"]
    (own / "::ffff:10.0.0.10-(14:gha-lab-volume)").rmdir()   # Ganesha expired it
    assert node.remembered_clients(names) == []


def test_hosts_file_names_each_floating_ip_fully_and_short():
    text = hosts_text({"10.1.2.100": "volume.gha.lab", "10.1.2.1": "gha-l1-a"})
    assert "10.1.2.100 volume.gha.lab volume\n" in text and "10.1.2.1 gha-l1-a\n" in text
    assert text.startswith("127.0.0.1 localhost\n")
    for bad in ({"10.1.2.300": "x.lab"}, {"10.1.2.3": "bad name"}, {"10.1.2.3": "x\nevil"}):
        with pytest.raises(ValueError):
            hosts_text(bad)


def test_lab_options_grace_lift_and_lease():
    assert LabOptions().nfs_version == "4.1" and LabOptions().minorversion == 1
    assert LabOptions(grace_period=90).lease_lifetime == LabOptions(grace_period=5).lease_lifetime == 5
    # early lift is only possible with NLM off and 4.1 clients
    assert LabOptions(grace_period=90).early_lift_expected()
    assert not LabOptions(grace_period=90, nlm=True).early_lift_expected()
    assert not LabOptions(grace_period=90, nfs_version="4.0").early_lift_expected()


def test_every_volume_of_the_biggest_cluster_lab_has_client_hosts_of_its_own():
    from ganesha_ha.lab.layout import MAX_NODES, volume_plan
    from ganesha_ha.lab.netns import LabNet
    from ganesha_ha.lab.volume_clients import MAX_VOLUMES, client_addresses

    net = LabNet("t0000", nodes=("a", "b"))
    n = len(volume_plan(MAX_NODES))
    assert n <= MAX_VOLUMES and MAX_NODES <= EPOCH_SLOTS
    hosts = [a for k in range(n) for a in client_addresses(net, k).values()]
    assert len(set(hosts)) == len(hosts)
    last = [int(a.rsplit(".", 1)[1]) for a in hosts]
    # above the nodes (.1-.9), below the floating IPs (.100 and up)
    assert min(last) >= 10 and max(last) < 100
    with pytest.raises(ValueError):
        client_addresses(net, MAX_VOLUMES)


def test_the_agents_refusals_are_read_from_crm_mons_failures():
    # the shape of crm_mon --output-as=xml's <failures> (Pacemaker 2.1.5 lib/pengine/pe_output.c)
    import xml.etree.ElementTree as ET

    from ganesha_ha.lab.refusals import failures

    root = ET.fromstring(
        '<pacemaker-result><failures>'
        '<failure op_key="vol1-exports_start_0" node="node-a" exitstatus="not configured" '
        'exitreason="Server_Scope: this node (node-a) presents &amp;apos;a&amp;apos; ..." exitcode="6" '
        'call="12" status="complete"/>'
        '<failure op_key="vol2-ip_monitor_10000" node="node-b" exitstatus="error" exitreason="" exitcode="1"/>'
        '<failure id="vol2-exports_last_failure_0" node="node-b" exitstatus="not running" exitcode="7"/>'
        '</failures></pacemaker-result>')
    got = failures(root, {"vol1-exports", "vol2-exports"})
    assert got == [{"op_key": "vol1-exports_start_0", "node": "node-a", "rc": 6,
                    "reason": "Server_Scope: this node (node-a) presents 'a' ..."},
                   {"op_key": "vol2-exports_last_failure_0", "node": "node-b", "rc": 7, "reason": "not running"}]
    assert failures(None, {"vol1-exports"}) == []
