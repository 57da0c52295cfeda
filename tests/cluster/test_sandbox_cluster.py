"""The sandboxed Pacemaker cluster (ganesha_ha.lab.sandbox) with ocf:heartbeat:Dummy.

Real corosync + pacemakerd in namespaces: needs root and the pacemaker packages.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ganesha_ha.lab.netns import NETNS_DIR
from ganesha_ha.lab.sandbox import available
from ganesha_ha.lab.sandbox.cluster import SandboxCluster
from ganesha_ha.linux import mount_points, pid_alive

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mounts)"),
    pytest.mark.skipif(not available(), reason="corosync/pacemaker not installed"),
]


def dummy(rsc: str) -> str:
    return (f'<primitive id="{rsc}" class="ocf" provider="heartbeat" type="Dummy">'
            f'<operations><op id="{rsc}-monitor-2s" name="monitor" interval="2s" timeout="10s"/>'
            "</operations></primitive>")


def assert_nothing_left(c: SandboxCluster, pids: set[int]) -> None:
    assert c.leftovers() == {"netns": [], "processes": [], "mounts": []}
    ours = f"gha-{c.tag}-"
    if NETNS_DIR.is_dir():
        assert [n for n in os.listdir(NETNS_DIR) if n.startswith(ours)] == []
    assert sorted(p for p in pids if pid_alive(p)) == []
    assert [m for m in mount_points() if str(c.workdir) in m or ours in m] == []


def test_single_node_runs_dummy(tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "hello").write_text("from the host\n")
    c = SandboxCluster(tmp_path / "cluster", ["n1"], env={"GHA_SANDBOX": "1"},
                       binds={"n1": [(extra, "/run/gha-extra")]})
    pids: set[int] = set()
    try:
        t0 = time.monotonic()
        c.start(timeout=60)
        print(f"single node online after {time.monotonic() - t0:.1f}s")
        node = c["n1"]
        assert c.online_nodes() == {"n1"}
        assert node.run(["hostname"]).stdout.strip() == "n1"
        assert node.run(["cat", "/run/gha-extra/hello"], check=True).stdout == "from the host\n"
        # pacemakerd (hence every agent) has a clean environment plus what we asked for
        environ = dict(kv.split("=", 1) for kv in
                       Path(f"/proc/{node.pacemakerd_pid}/environ").read_text().split("\0") if kv)
        assert environ["GHA_SANDBOX"] == "1"
        assert environ["PATH"] == "/usr/sbin:/usr/bin:/sbin:/bin"
        assert "PYTEST_CURRENT_TEST" not in environ

        c.cibadmin_create("resources", dummy("d1"))
        assert c.wait_resource("d1", timeout=20) == "n1"
        assert c.resource_location("d1") == "n1"
        assert "d1" in c.cib_query("resources")
        # Dummy keeps its state in the node's private /run, not the host's
        assert node.run(["test", "-e", "/run/resource-agents/Dummy-d1.state"]).returncode == 0
        assert not Path("/run/resource-agents/Dummy-d1.state").exists()

        pids = node.processes()
        assert {node.init_pid, node.corosync_pid, node.pacemakerd_pid} <= pids
    finally:
        c.stop()
    assert_nothing_left(c, pids)
    c.stop()    # idempotent


def test_two_nodes_move_and_failover(tmp_path):
    c = SandboxCluster(tmp_path / "cluster", ["n1", "n2"])
    pids: set[int] = set()
    try:
        t0 = time.monotonic()
        c.start(timeout=60)
        print(f"two nodes online after {time.monotonic() - t0:.1f}s")
        assert all((NETNS_DIR / n.netns).exists() for n in c.nodes.values())
        assert "10.213.0.2/24" in c["n2"].run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert c.online_nodes("n1") == c.online_nodes("n2") == {"n1", "n2"}

        c.cibadmin_create("resources", dummy("d2"))
        c.cibadmin_create("constraints", '<rsc_location id="d2-prefers-n1" rsc="d2" node="n1" score="100"/>')
        assert c.wait_resource("d2", timeout=20) == "n1"

        c.crm_resource("--move", "--resource", "d2", "--node", "n2")
        assert c.wait_resource("d2", "n2", timeout=20) == "n2"

        # node loss: SIGKILL everything of n2; d2 comes back on n1
        n2_pids = c["n2"].processes()
        pids |= n2_pids
        t0 = time.monotonic()
        c.kill_node("n2")
        assert sorted(p for p in n2_pids if pid_alive(p)) == []
        assert c.wait_resource("d2", "n1", timeout=30, via="n1") == "n1"
        print(f"failover after node loss took {time.monotonic() - t0:.1f}s")
        assert c.online_nodes("n1") == {"n1"}

        # n2 rejoins with its CIB; the move constraint (cli-prefer) draws d2 back
        t0 = time.monotonic()
        c.start_node("n2")
        print(f"n2 rejoined after {time.monotonic() - t0:.1f}s")
        assert c.wait_resource("d2", "n2", timeout=20) == "n2"

        # clean shutdown of n2: d2 is stopped there and started on n1
        c.stop_node("n2")
        assert c.wait_resource("d2", "n1", timeout=20, via="n1") == "n1"
        pids |= c["n1"].processes()
    finally:
        c.stop()
    assert_nothing_left(c, pids)
