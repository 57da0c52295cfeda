"""One NFSv4 server scope across the cluster (issue 16): the exports agent reads this node's
Ganesha Server_Scope / Server_Owner from its config, publishes the scope it presents as a
private attrd node attribute, and refuses (OCF_ERR_CONFIGURED, with the reason) when another
node published a different one: NFSv4.1+ clients reclaim only where the scope is the same
(RFC 8881 2.10.4; Linux nfs41_same_server_scope), and Ganesha's default scope is
`<host name>_NFS-Ganesha`, different on every node.

A real two-node sandbox cluster (corosync + pacemakerd, so real pacemaker-attrd on both
nodes); the agent runs in each node as ra/exports, with a Ganesha config of that node's
(only read: no Ganesha needs to run for validate-all and probes).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import ROOT
from ganesha_ha.backends.ganesha_node_checks import SCOPE_ATTRIBUTE
from ganesha_ha.lab.sandbox import available
from ganesha_ha.lab.sandbox.cluster import SandboxCluster

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mounts, daemons)"),
    pytest.mark.skipif(not available(), reason="corosync/pacemaker not installed"),
]

AGENT = str(ROOT / "ra" / "exports")


def node_files(tmp: Path, node: str, nfsv4: str) -> Path:
    """This node's Ganesha config (its NFSV4 block is `nfsv4`) and ganesha-ha settings."""
    d = tmp / node
    d.mkdir(exist_ok=True)
    (d / "ganesha.conf").write_text(f"NFS_CORE_PARAM {{ Enable_NLM = false; }}\nNFSV4 {{ {nfsv4} }}\n")
    (d / "gha.conf").write_text(f"[ganesha]\nganesha_config = {d / 'ganesha.conf'}\n[node]\nruntime_dir = {d / 'run'}\n")
    return d / "gha.conf"


def agent(c: SandboxCluster, node: str, action: str, settings: Path):
    """The agent as Pacemaker's executor runs it, CRM_meta variables included: with
    `OCF_RESKEY_CRM_meta_on_node` set, Pacemaker 2.1.5's `attrd_updater -Q -A` answers for
    this node only (node_attrs.py), which hid the other nodes' scopes from the check."""
    env = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "vol1-exports", "OCF_RESKEY_server": "ganesha",
           "OCF_RESKEY_volume": "/srv/gha-scope-test-not-mounted", "OCF_RESKEY_config": str(settings),
           "OCF_RESKEY_CRM_meta_interval": "0", "OCF_RESKEY_CRM_meta_on_node": node,
           "OCF_RESKEY_CRM_meta_on_node_uuid": "1" if node == "n1" else "2"}
    return c[node].run([AGENT, action], env=env)


def test_nodes_with_different_scopes_are_refused_with_the_reason(tmp_path):
    c = SandboxCluster(tmp_path / "cluster", ["n1", "n2"])
    try:
        c.start(timeout=90)
        same = 'Server_Scope = "cluster-a";'
        s1 = node_files(tmp_path, "n1", same)
        first = agent(c, "n1", "validate-all", s1)
        assert first.returncode == 0, first.stderr
        assert "no other node has published its NFSv4 server scope yet" in first.stderr

        # n2 without a Server_Scope presents its host name's scope: refused, both named
        s2 = node_files(tmp_path, "n2", "Grace_Period = 90;")
        for action in ("validate-all", "start"):
            bad = agent(c, "n2", action, s2)
            assert bad.returncode == 6, (action, bad.stderr)
            # both scopes within the 128 characters of an exit reason Pacemaker keeps
            reason = ("ocf-exit-reason:Server_Scope: this node (n2) presents NFSv4 server scope 'n2_NFS-Ganesha' "
                      "but n1 presents 'cluster-a'")
            assert reason in bad.stderr and len(reason) - len("ocf-exit-reason:") <= 128
            assert "(no Server_Scope: its host name" in bad.stderr and "RFC 8881" in bad.stderr
        # a probe never fails for it (it only says "not running"), but publishes the scope
        assert agent(c, "n2", "monitor", s2).returncode == 7
        seen = c["n1"].run(["attrd_updater", "-Q", "-A", "-n", SCOPE_ATTRIBUTE], check=True).stdout
        assert 'host="n1" value="cluster-a"' in seen and 'host="n2" value="n2_NFS-Ganesha"' in seen
        back = agent(c, "n1", "validate-all", s1)
        assert back.returncode == 6 and "n2 presents 'n2_NFS-Ganesha'" in back.stderr

        # the same Server_Scope on n2 (its own Server_Owner does not matter): accepted on both
        s2 = node_files(tmp_path, "n2", 'Server_Scope = "cluster-a"; Server_Owner = n2;')
        ok2 = agent(c, "n2", "validate-all", s2)
        assert ok2.returncode == 0 and "server scope" not in ok2.stderr, ok2.stderr
        ok1 = agent(c, "n1", "validate-all", s1)
        assert ok1.returncode == 0 and "server scope" not in ok1.stderr, ok1.stderr
    finally:
        c.stop()
    assert c.leftovers() == {"netns": [], "processes": [], "mounts": []}
