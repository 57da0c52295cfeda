"""An FSAL module missing on a node, decided with what the other nodes published (placement.py):
the volume moves (OCF_ERR_INSTALLED) only to a node that has every module it needs, and when no
node has the module it runs where it is, serving its other exports (start 0, monitor
OCF_DEGRADED naming the export, the module and its package), instead of being banned from
every node in turn.

A real two-node sandbox cluster (corosync + pacemakerd: real pacemaker-attrd on both nodes) and
a real ganesha.nfsd on a private bus; the agent runs inside each node as Pacemaker's executor
runs it (CRM_meta variables included), each node with its own ganesha-ha settings: its own
runtime directory and a `plugins_dir` holding links to some of Debian's libfsal*.so (a node
without the nfs-ganesha-mem package). The bus is a socket path, so the agent in either node
reaches the same Ganesha, which loads from Debian's directory: what it serves shows what the
agent chose to send.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, GaneshaLab
from ganesha_ha.backends.ganesha_node_checks import FSALS_ATTRIBUTE
from ganesha_ha.backends.ganesha_plugins import DEFAULT_PLUGINS_DIR
from ganesha_ha.lab.sandbox import available
from ganesha_ha.lab.sandbox.cluster import SandboxCluster

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mounts, daemons)"),
    pytest.mark.skipif(not available(), reason="corosync/pacemaker not installed"),
    pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="ganesha.nfsd not installed"),
    pytest.mark.skipif(not (DEFAULT_PLUGINS_DIR / "libfsalmem.so").exists(), reason="nfs-ganesha-mem not installed"),
]

AGENT = str(ROOT / "ra" / "exports")


def node_settings(tmp: Path, lab: GaneshaLab, node: str, modules: tuple[str, ...]) -> Path:
    """`node`'s ganesha-ha settings: the lab's bus, its own runtime directory (the volume's
    active mark is node-local), a Ganesha config with the cluster's Server_Scope (read only:
    the scope check), and a plugin directory with links to `modules` only."""
    d = tmp / node
    plugins = d / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    for link in plugins.iterdir():
        link.unlink()
    for m in modules:
        (plugins / f"libfsal{m}.so").symlink_to(DEFAULT_PLUGINS_DIR / f"libfsal{m}.so")
    (d / "ganesha.conf").write_text('NFS_CORE_PARAM { Enable_NLM = false; }\nNFSV4 { Server_Scope = "fsal-test"; }\n')
    text = lab.config.read_text()
    text = text.replace(f"ganesha_config = {lab.daemon.config_path}\n",
                        f"ganesha_config = {d / 'ganesha.conf'}\nplugins_dir = {plugins}\n")
    text = text.replace(f"runtime_dir = {lab.workdir / 'run'}\n", f"runtime_dir = {d / 'run'}\n")
    assert str(plugins) in text and str(d / "run") in text
    (d / "gha.conf").write_text(text)
    return d / "gha.conf"


def agent(c: SandboxCluster, node: str, action: str, settings: Path, volume: Path, interval_ms: int = 0):
    env = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "vol-fsal", "OCF_RESKEY_server": "ganesha",
           "OCF_RESKEY_volume": str(volume), "OCF_RESKEY_config": str(settings),
           "OCF_RESKEY_CRM_meta_interval": str(interval_ms), "OCF_RESKEY_CRM_meta_timeout": "30000",
           "OCF_RESKEY_CRM_meta_on_node": node, "OCF_RESKEY_CRM_meta_on_node_uuid": node[1:]}
    return c[node].run([AGENT, action], env=env)


def reason_of(cp) -> str:
    [line] = [ln for ln in cp.stderr.splitlines() if ln.startswith("ocf-exit-reason:")]
    return line[len("ocf-exit-reason:"):]


def published(c: SandboxCluster) -> dict[str, str]:
    from ganesha_ha.node_attrs import parse_query

    out = c["n1"].run(["attrd_updater", "-Q", "-A", "-n", FSALS_ATTRIBUTE], check=True).stdout
    return parse_query(out, FSALS_ATTRIBUTE)


def volume_with_mem(lab: GaneshaLab, vol: Path, id_range: str) -> dict[str, int]:
    """The volume at `vol` with a VFS export `a` and a MEM export `/m` (recorded: the volume is
    active nowhere yet); path -> Export_Id."""
    from ganesha_ha.registry import Registry

    (vol / "a").mkdir()
    lab.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", id_range, check=True)
    lab.cli("export", "add", str(vol), "a", "--client", "127.0.0.1", check=True)
    lab.cli("export", "add", str(vol), "/m", "--fsal", "MEM", "--client", "127.0.0.1", check=True)
    return {e.path: e.export_id for e in Registry(vol).load().exports}


def test_a_missing_fsal_moves_the_volume_only_to_a_node_with_every_module(tmp_path, tmpfs_volume):
    vol = tmpfs_volume
    lab = GaneshaLab(tmp_path / "glab").start()
    c: SandboxCluster | None = None
    try:
        ids = volume_with_mem(lab, vol, "600-699")
        a_id, m_id = ids["a"], ids["/m"]
        s1 = node_settings(tmp_path, lab, "n1", ("vfs", "mem"))
        s2 = node_settings(tmp_path, lab, "n2", ("vfs",))
        c = SandboxCluster(tmp_path / "cluster", ["n1", "n2"])
        c.start(timeout=90)

        # probes publish each node's modules (and say "not running")
        assert agent(c, "n1", "monitor", s1, vol).returncode == 7
        assert agent(c, "n2", "monitor", s2, vol).returncode == 7
        assert published(c) == {"n1": "MEM,VFS", "n2": "VFS"}

        # n2 lacks MEM and n1 has every module the volume needs: 5, the volume moves to n1
        val = agent(c, "n2", "validate-all", s2, vol)
        assert val.returncode == 0 and "n1 has every FSAL the volume needs" in val.stderr \
            and "OCF_ERR_INSTALLED" in val.stderr, val.stderr
        start = agent(c, "n2", "start", s2, vol)
        assert start.returncode == 5, start.stderr
        assert reason_of(start).startswith(f"cannot be served on this node: /m (Export_Id {m_id}): FSAL MEM is not "
                                           "installed here, n1 has every FSAL the volume needs (Debian package "
                                           "nfs-ganesha-mem)"), start.stderr
        assert m_id not in lab.show_exports(), "nothing was sent to Ganesha for it"
        assert agent(c, "n2", "stop", s2, vol).returncode == 0 and lab.show_exports().keys() <= {0}

        # n1 in standby keeps its published modules, but Pacemaker starts nothing there: a 5
        # on n2 would leave the volume nowhere to run, so n2 serves it without /m
        c.crm_attribute("--node", "n1", "--name", "standby", "--update", "on", "--lifetime", "forever")
        start = agent(c, "n2", "start", s2, vol)
        assert start.returncode == 0, start.stderr
        assert a_id in lab.show_exports() and m_id not in lab.show_exports()
        assert "FSAL MEM is missing here; n1 has every FSAL the volume needs, but Pacemaker may not start the " \
               "volume there (standby, offline or banned): left out" in start.stderr, start.stderr
        assert agent(c, "n2", "stop", s2, vol).returncode == 0 and lab.show_exports().keys() <= {0}
        c.crm_attribute("--node", "n1", "--name", "standby", "--update", "off", "--lifetime", "forever")
        assert agent(c, "n2", "start", s2, vol).returncode == 5, "n1 is back: the volume moves there again"
        assert agent(c, "n2", "stop", s2, vol).returncode == 0
        ok = agent(c, "n1", "start", s1, vol)
        assert ok.returncode == 0, ok.stderr
        assert {a_id, m_id} <= lab.show_exports().keys()
        assert agent(c, "n1", "monitor", s1, vol, 10000).returncode == 0
        assert agent(c, "n1", "stop", s1, vol).returncode == 0 and lab.show_exports().keys() <= {0}

        # the module gone from n1 too (its next probe publishes it): MEM is on no node, so n2
        # serves the volume without that export instead of being banned, as n1 would be
        s1 = node_settings(tmp_path, lab, "n1", ("vfs",))
        assert agent(c, "n1", "monitor", s1, vol).returncode == 7
        assert published(c) == {"n1": "VFS", "n2": "VFS"}
        start = agent(c, "n2", "start", s2, vol)
        assert start.returncode == 0, start.stderr
        assert a_id in lab.show_exports() and m_id not in lab.show_exports()
        assert "1 of 2 exports could not go live" in start.stderr and "FSAL MEM is installed on no node" in start.stderr
        mon = agent(c, "n2", "monitor", s2, vol, 10000)
        assert mon.returncode == 190, mon.stderr
        reason = reason_of(mon)
        assert reason.startswith(f"not live: /m (Export_Id {m_id}): FSAL MEM is installed on no node (n1 lacks it "
                                 "too; Debian package nfs-ganesha-mem): left out"), reason
        assert reason.endswith("(1 of 2 exports; the others are live)"), reason
        # `volume status` on n2 (outside Pacemaker: the node's host name) says it as the monitor does
        status = c["n2"].run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(s2), "volume", "status",
                              str(vol)], check=True).stdout
        assert f"\n  not live: /m (Export_Id {m_id}): FSAL MEM is installed on no node (n1 lacks it too; Debian " \
               "package nfs-ganesha-mem): left out" in status, status

        # the package installed on n2: its next monitor serves the export
        s2 = node_settings(tmp_path, lab, "n2", ("vfs", "mem"))
        assert agent(c, "n2", "monitor", s2, vol, 10000).returncode == 0
        assert {a_id, m_id} <= lab.show_exports().keys()
        assert agent(c, "n2", "stop", s2, vol).returncode == 0
    finally:
        if c is not None:
            c.stop()
        lab.stop()
    assert c.leftovers() == {"netns": [], "processes": [], "mounts": []}


RSC = "gha_fsal"


GROUP = "gha_fsal_grp"


def group(volume: Path, config: str) -> str:
    """The volume's group as a site has it (here a Dummy stands for the file system and the
    IP, placed before the exports resource), stopped until its constraint is in: a group
    member's scheduler scores are read otherwise than a lone primitive's (pacemaker_nodes.py)."""
    params = {"server": "ganesha", "volume": str(volume), "config": config}
    ia = "".join(f'<nvpair id="{RSC}-ia-{k}" name="{k}" value="{v}"/>' for k, v in params.items())
    return (f'<group id="{GROUP}">'
            f'<meta_attributes id="{GROUP}-meta"><nvpair id="{GROUP}-meta-tr" name="target-role" value="Stopped"/>'
            "</meta_attributes>"
            '<primitive id="gha_fsal_pre" class="ocf" provider="heartbeat" type="Dummy"/>'
            f'<primitive id="{RSC}" class="ocf" provider="ganesha-ha" type="exports">'
            f'<instance_attributes id="{RSC}-ia">{ia}</instance_attributes>'
            "<operations>"
            f'<op id="{RSC}-start" name="start" interval="0s" timeout="30s"/>'
            f'<op id="{RSC}-stop" name="stop" interval="0s" timeout="30s"/>'
            f'<op id="{RSC}-monitor-2s" name="monitor" interval="2s" timeout="20s"/>'
            "</operations></primitive></group>")


def failed_ops(c: SandboxCluster) -> list[dict[str, str]]:
    import xml.etree.ElementTree as ET

    cp = c.run(["crm_mon", "--one-shot", "--inactive", "--output-as=xml", "--include=failures"], timeout=20,
               check=True)
    return [dict(f.attrib) for f in ET.fromstring(cp.stdout).findall("./failures/failure")
            if f.get("op_key", "").startswith(f"{RSC}_")]


def test_under_pacemaker_the_volume_ends_where_every_module_is_else_runs_degraded(tmp_path, tmpfs_volume):
    """Pacemaker itself drives the agent (probes, starts, its bans after a 5): the volume,
    preferring n2 which lacks MEM, ends on n1 which has it; with MEM on no node it runs on n2
    with its other export live (the old answer banned it from both nodes: stopped)."""
    from ganesha_ha.lab.procs import wait_until
    from ganesha_ha.lab.sandbox.ocf_root import ocf_overlay

    vol = tmpfs_volume
    lab = GaneshaLab(tmp_path / "glab").start()
    c: SandboxCluster | None = None
    try:
        ids = volume_with_mem(lab, vol, "650-699")
        node_settings(tmp_path, lab, "n1", ("vfs", "mem"))
        node_settings(tmp_path, lab, "n2", ("vfs",))
        ocf = ocf_overlay(tmp_path / "ocf")
        # one `config` path for the primitive, each node's own settings behind it
        binds = {n: [*ocf, (tmp_path / n, "/run/gha-fsal")] for n in ("n1", "n2")}
        c = SandboxCluster(tmp_path / "cluster", ["n1", "n2"], binds=binds,
                           crm_config={"cluster-recheck-interval": "5s"})
        c.start(timeout=90)
        c.cibadmin_create("resources", group(vol, "/run/gha-fsal/gha.conf"))
        c.cibadmin_create("constraints", f'<rsc_location id="{GROUP}-prefers-n2" rsc="{GROUP}" node="n2" score="100"/>')
        c.crm_resource("--resource", GROUP, "--meta", "--set-parameter", "target-role", "--parameter-value", "Started")

        # n2 (preferred) answers 5 naming n1, Pacemaker bans it there: the volume runs whole on n1
        assert c.wait_resource(RSC, node="n1", timeout=60) == "n1"
        assert wait_until(lambda: set(ids.values()) <= lab.show_exports().keys(), 10, 0.2), lab.show_exports()
        [failed] = failed_ops(c)
        assert (failed["node"], failed["task"], failed["exitstatus"]) == ("n2", "start", "not installed"), failed
        # what Pacemaker keeps of the reason (128 characters) names the module and the node
        assert failed["exitreason"].startswith(f"cannot be served on this node: /m (Export_Id {ids['/m']}): FSAL MEM "
                                               "is not installed here, n1 has every FSAL the volume needs"), failed

        # MEM gone from n1 as well; a refresh forgets n2's failure and probes both nodes again
        # (each publishes its modules, n1's probe of the volume it runs too): the volume goes
        # back to n2, which serves it without /m
        node_settings(tmp_path, lab, "n1", ("vfs",))
        c.crm_resource("--refresh", "--resource", RSC)
        assert c.wait_resource(RSC, node="n2", timeout=60) == "n2"
        assert wait_until(lambda: ids["a"] in lab.show_exports() and ids["/m"] not in lab.show_exports(), 10, 0.2), \
            lab.show_exports()
        time.sleep(5)    # two monitors: still running on n2, nothing banned, nothing stopped
        assert c.resource_location(RSC) == "n2" and ids["a"] in lab.show_exports()
        # crm_mon shows it degraded, with the export, the module and its package
        [degraded] = failed_ops(c)
        assert (degraded["node"], degraded["task"], degraded["exitcode"]) == ("n2", "monitor", "190"), degraded
        assert degraded["exitreason"].startswith(f"not live: /m (Export_Id {ids['/m']}): FSAL MEM is installed on no "
                                                 "node (n1 lacks it too; Debian package nfs-ganesha-mem): left out")
    finally:
        if c is not None:
            c.stop()
        lab.stop()
    assert c.leftovers() == {"netns": [], "processes": [], "mounts": []}
