"""ocf:ganesha-ha:exports under a real single-node Pacemaker cluster, with server=ganesha.

The cluster is the sandbox of ganesha_ha.lab.cluster (corosync + pacemakerd in private
namespaces). Ganesha, its private D-Bus and the tmpfs volume are made first: the node's
mount namespace is a copy of ours taken when it starts, and the bus is a socket path in
the file system, so the agent run by pacemaker-execd inside the node reaches the same
Ganesha as the test.

Every step is asserted on what the cluster recorded (the controller's "Result of ..."
lines and the agent's stderr lines that pacemaker-execd logs in the node's pacemaker.log,
fail counts, crm_mon), not only on the end state in Ganesha.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ROOT, GaneshaLab
from ganesha_ha.lab.sandbox import available
from ganesha_ha.lab.sandbox.cluster import SandboxCluster
from ganesha_ha.lab.sandbox.ocf_root import ocf_overlay
from ganesha_ha.lab.procs import wait_until

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mounts, daemons)"),
    pytest.mark.skipif(not available(), reason="corosync/pacemaker not installed"),
    pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="ganesha.nfsd not installed"),
    pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="dbus-daemon not installed"),
]

RSC = "gha_vol"
AGENT = "ocf:ganesha-ha:exports"
MONITOR_S = 2


def primitive(volume: Path, config: Path) -> str:
    params = {"server": "ganesha", "volume": str(volume), "config": str(config)}
    ia = "".join(f'<nvpair id="{RSC}-ia-{k}" name="{k}" value="{v}"/>' for k, v in params.items())
    return (
        f'<primitive id="{RSC}" class="ocf" provider="ganesha-ha" type="exports">'
        f'<instance_attributes id="{RSC}-ia">{ia}</instance_attributes>'
        f'<meta_attributes id="{RSC}-meta">'
        f'<nvpair id="{RSC}-meta-mt" name="migration-threshold" value="10"/>'
        "</meta_attributes>"
        "<operations>"
        f'<op id="{RSC}-start" name="start" interval="0s" timeout="30s"/>'
        f'<op id="{RSC}-stop" name="stop" interval="0s" timeout="30s"/>'
        f'<op id="{RSC}-monitor-{MONITOR_S}s" name="monitor" interval="{MONITOR_S}s" timeout="20s"/>'
        "</operations></primitive>")


def show_exports(lab: GaneshaLab) -> dict[int, str]:
    return lab.show_exports()


def remove_export(lab: GaneshaLab, export_id: int) -> None:
    lab.remove_export(export_id)


class LogCursor:
    """Reads what a log file gained since the last mark."""

    def __init__(self, path: Path):
        self.path = path
        self.pos = 0

    def mark(self) -> None:
        self.pos = self.path.stat().st_size if self.path.exists() else 0

    def new(self) -> str:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def grep(self, *patterns: str) -> list[str]:
        """New lines matching any of `patterns`, in order."""
        rx = [re.compile(p) for p in patterns]
        return [ln for ln in self.new().splitlines() if any(r.search(ln) for r in rx)]

    def wait_for(self, *patterns: str, timeout: float = 10) -> list[str]:
        """Wait until every pattern has matched a new line; return the matching lines
        (all that matched before the timeout, so a failed wait shows what was seen)."""
        rx = [re.compile(p) for p in patterns]
        found: list[str] = []

        def ok() -> bool:
            found[:] = self.grep(*patterns)
            return all(any(r.search(ln) for ln in found) for r in rx)

        wait_until(ok, timeout, 0.1)
        return found

    @staticmethod
    def saw(lines: list[str], *patterns: str) -> bool:
        return all(any(re.search(p, ln) for ln in lines) for p in patterns)


def history(c: SandboxCluster) -> tuple[dict[str, str], list[dict[str, str]]]:
    """(RSC's resource_history attributes on n1, [failed operations of RSC]), from crm_mon."""
    cp = c.run(["crm_mon", "--one-shot", "--inactive", "--output-as=xml",
                "--include=failcounts,operations,failures"], timeout=20, check=True)
    root = ET.fromstring(cp.stdout)
    rh = root.find(f"./node_history/node[@name='n1']/resource_history[@id='{RSC}']")
    failures = [dict(f.attrib) for f in root.findall("./failures/failure")
                if f.get("op_key", "").startswith(f"{RSC}_")]
    return (dict(rh.attrib) if rh is not None else {}), failures


def kill_ganesha(lab: GaneshaLab) -> None:
    """kill -9 the lab's Ganesha by its PID; wait until its bus name is released."""
    pid = lab.daemon.pid
    os.kill(pid, signal.SIGKILL)
    lab.daemon.proc.wait(5)
    lab.daemon.proc = None
    assert wait_until(lambda: not lab.bus.name_has_owner(), 5, 0.05)


def show(title: str, lines: list[str]) -> None:
    print(f"--- {title}")
    for ln in lines:
        print("   ", ln[:260])


def fail_count(c: SandboxCluster) -> int:
    cp = c.run(["crm_failcount", "--query", "--resource", RSC, "--node", "n1"], check=True)
    m = re.search(r"value=(\S+)", cp.stdout)
    assert m, cp.stdout
    return 10**6 if m.group(1) == "INFINITY" else int(m.group(1))


def result(op: str, outcome: str) -> str:
    """Pattern of the controller's log line for an operation's result."""
    return rf"Result of {op} operation for {RSC} on n1: {outcome}"


def agent_said(op: str, text: str) -> str:
    """Pattern of the line the agent logs for `op` in the node's pacemaker.log: pacemaker-execd
    gives agents HA_LOGFILE (its detail log) and the agent appends there itself, as ha_log does
    (the line does not name the action; each action's texts differ)."""
    return rf"  ganesha-ha\({RSC}\)\[\d+\]:    [A-Z]+: .*{text}"


def exports_live(lab: GaneshaLab, registry: dict[int, str]) -> bool:
    live = show_exports(lab)
    return all(live.get(i) == path for i, path in registry.items())


def started_cluster(tmp_path: Path, vol: Path, lab: GaneshaLab) -> tuple[SandboxCluster, LogCursor]:
    """A one-node cluster (n1) running this checkout's agent, with the volume's primitive
    created and started there; the log cursor marked before the primitive was created. The
    cluster is stopped if any of that fails (the caller stops it otherwise)."""
    cluster = SandboxCluster(tmp_path / "cluster", ["n1"], binds={"n1": ocf_overlay(tmp_path / "ocf")},
                             crm_config={"cluster-recheck-interval": "5s"})
    try:
        cluster.start(timeout=60)
        log = LogCursor(cluster["n1"].pacemaker_log)
        log.mark()
        cluster.cibadmin_create("resources", primitive(vol, lab.config))
        assert cluster.wait_resource(RSC, timeout=30) == "n1"
    except BaseException:
        cluster.stop()
        raise
    return cluster, log


def test_agent_under_pacemaker_with_ganesha(tmp_path, tmpfs_volume):
    from ganesha_ha.registry import Registry
    from ganesha_ha.volume import Volume

    t_start = time.monotonic()
    vol = tmpfs_volume
    for d in ("alpha", "beta"):
        (vol / d).mkdir()
        (vol / d / "f.txt").write_text(f"{d}\n")

    # 1. bus + Ganesha + a volume with two exports, all before the node exists
    lab = GaneshaLab(tmp_path / "glab").start()
    cluster: SandboxCluster | None = None
    try:
        lab.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "700-799", check=True)
        for d in ("alpha", "beta"):
            lab.cli("export", "add", str(vol), d, "--client", "127.0.0.1", check=True)
        registry = {e.export_id: str(vol / e.path) for e in Registry(vol).load().exports}
        assert len(registry) == 2 and all(700 <= i <= 799 for i in registry)
        assert not set(registry) & set(show_exports(lab)), "nothing is live before the cluster starts it"
        marker = Volume(vol, lab.settings()).node.active_path

        # Pacemaker looks for OCF agents under /usr/lib/ocf only: the node sees this
        # checkout's agent there (a private resource.d bound over it inside the node), so
        # the host's /usr/lib/ocf, which other checkouts use at the same time, is not written
        # crmsh logs to /var/log/crmsh and caches under $HOME: private ones inside the node
        crm_home = tmp_path / "crm-home"
        crm_home.mkdir()
        binds: list = ocf_overlay(tmp_path / "ocf")
        if Path("/var/log/crmsh").is_dir():
            crm_log = tmp_path / "crmsh-log"
            crm_log.mkdir()
            binds.append((crm_log, "/var/log/crmsh"))
        cluster = SandboxCluster(tmp_path / "cluster", ["n1"], binds={"n1": binds},
                                 crm_config={"cluster-recheck-interval": "5s"})
        t0 = time.monotonic()
        cluster.start(timeout=60)
        print(f"\nnode online after {time.monotonic() - t0:.1f}s")
        node = cluster["n1"]
        log = LogCursor(node.pacemaker_log)
        seen = node.run(["cat", "/usr/lib/ocf/resource.d/ganesha-ha/exports"], check=True).stdout
        assert f"\npy={shlex.quote(sys.executable)}\n" in seen and f"\nroot={shlex.quote(str(ROOT))}\n" in seen

        # 5. the meta-data as the cluster's tools render it
        md = node.run(["crm_resource", "--show-metadata", AGENT], check=True).stdout
        assert '<resource-agent name="exports"' in md and '<parameter name="server" required="1">' in md
        assert '<action name="reload-agent"' in md
        if shutil.which("crm"):
            info = node.run(["crm", "ra", "info", AGENT], check=True, timeout=60,
                            env={"HOME": str(crm_home), "TMPDIR": str(crm_home)}).stdout
            assert info.startswith("Highly available NFS exports of a shared volume") and f"({AGENT})" in info
            assert "server* (select): NFS server: knfsd or ganesha" in info
            assert "volume (string): Mount point of the shared volume" in info
            assert re.search(r"monitor\s+timeout=30s interval=5s", info), info
            assert re.search(r"reload-agent\s+timeout=20s", info), info

        # 2. the primitive: the probe says "not running", then start; the exports are live
        #    with the registry's Export_Ids
        log.mark()
        t0 = time.monotonic()
        cluster.cibadmin_create("resources", primitive(vol, lab.config))
        assert cluster.wait_resource(RSC, timeout=30) == "n1"
        print(f"started after {time.monotonic() - t0:.1f}s")
        assert cluster.resource_location(RSC) == "n1"
        assert exports_live(lab, registry)
        assert marker.exists()
        step = log.wait_for(result("probe", "not running"), agent_said("start", "2 exports live on ganesha"),
                            result("start", "ok"), result("monitor", "ok"))
        show("create the primitive", step)
        assert log.saw(step, result("probe", "not running"), agent_said("start", "2 exports live"),
                       result("start", "ok"), result("monitor", "ok")), log.new()
        # one line per event: the agent's own line, no second copy through the executor's
        # record of its stderr ("error output [ ... ]") or anywhere else in the log
        said = [ln for ln in log.new().splitlines() if "2 exports live on ganesha" in ln]
        assert len(said) == 1 and re.search(agent_said("start", ""), said[0]) and ":    INFO: " in said[0], said
        assert not log.grep(rf"{RSC}_\w+\[\d+\] error output"), log.grep("error output")
        assert fail_count(cluster) == 0

        # 3a. an export withdrawn behind the cluster's back: a monitor re-applies it
        log.mark()
        victim = min(registry)
        remove_export(lab, victim)
        assert victim not in show_exports(lab)
        t0 = time.monotonic()
        assert wait_until(lambda: victim in show_exports(lab), 3 * MONITOR_S + 5, 0.1), log.new()
        print(f"export {victim} live again after {time.monotonic() - t0:.1f}s")
        assert exports_live(lab, registry)
        step = log.wait_for(agent_said("monitor", "1 exports were not live as the registry says; re-applied"),
                            timeout=5)
        show("RemoveExport behind the cluster's back", step)
        assert step, log.new()
        assert fail_count(cluster) == 0, "a repaired drift is not a failure"
        assert not log.grep(result("monitor", "error"))

        # 3b. Ganesha killed -9 and restarted at once on the same bus (systemd's Restart=).
        #     Usually the next monitor finds the new Ganesha without the volume's exports and
        #     re-applies them; if a monitor falls into the gap it fails (generic error) and
        #     Pacemaker recovers the resource locally (stop, start). Either way it is seen.
        log.mark()
        kill_ganesha(lab)
        lab.daemon.start()
        t0 = time.monotonic()
        assert wait_until(lambda: exports_live(lab, registry), 4 * MONITOR_S + 10, 0.1), log.new()
        print(f"exports live in the new Ganesha after {time.monotonic() - t0:.1f}s")
        assert cluster.wait_resource(RSC, "n1", timeout=20) == "n1"
        if log.grep(result("monitor", "error")):
            step = log.wait_for(agent_said("monitor", "NFS-Ganesha is not running"),
                                result("monitor", "error"), result("stop", "ok"), result("start", "ok"))
            show("Ganesha killed and restarted at once: failed monitor, recovered here", step)
            assert log.saw(step, result("stop", "ok"), result("start", "ok")), log.new()
            assert fail_count(cluster) == 1
        else:
            step = log.wait_for(agent_said("monitor", "2 exports were not live as the registry says; re-applied"),
                                timeout=5)
            show("Ganesha killed and restarted at once: the monitor re-applied", step)
            assert step, log.new()
            assert fail_count(cluster) == 0
        failures_before = fail_count(cluster)

        # 3c. Ganesha stays down for longer than a monitor interval. The test holds the
        #     volume's lock (as a concurrent `ganesha-ha export add` would), which holds the
        #     recovery start back until Ganesha is up again: the monitor fails for certain,
        #     Pacemaker counts the failure and recovers the resource on this node.
        log.mark()
        with Registry(vol).locked():
            kill_ganesha(lab)
            assert wait_until(lambda: fail_count(cluster) == failures_before + 1, 3 * MONITOR_S + 10, 0.2), \
                log.new()
            assert log.wait_for(rf"Initiating start operation {RSC}_start_0"), log.new()
            time.sleep(0.5)
            assert not lab.bus.name_has_owner()
            lab.daemon.start()
        t0 = time.monotonic()
        assert wait_until(lambda: exports_live(lab, registry), 20, 0.1), log.new()
        print(f"exports live again {time.monotonic() - t0:.1f}s after Ganesha came back")
        assert cluster.wait_resource(RSC, "n1", timeout=20) == "n1"
        step = log.wait_for(agent_said("monitor", "NFS-Ganesha is not running"),
                            result("monitor", "error"), result("stop", "ok"), agent_said("stop", "exports withdrawn"),
                            agent_said("start", "2 exports live on ganesha"), result("start", "ok"),
                            result("monitor", "ok"))
        show("Ganesha down for a monitor interval", step)
        assert log.saw(step, result("monitor", "error"), result("stop", "ok"), result("start", "ok"),
                       result("monitor", "ok")), log.new()
        assert fail_count(cluster) == failures_before + 1
        attrs, failures = history(cluster)
        assert attrs.get("fail-count") == str(failures_before + 1), attrs
        assert any(f["op_key"] == f"{RSC}_monitor_{MONITOR_S}000" and f["exitstatus"] == "error"
                   for f in failures), failures
        crm_mon = cluster.crm_mon()
        show("crm_mon", crm_mon.splitlines()[-6:])
        assert re.search(rf"{RSC}\s.*Started n1", crm_mon)
        assert re.search(rf"{RSC} {MONITOR_S}s-interval monitor on n1 returned 'error'", crm_mon), crm_mon

        # a clean-up forgets the failure and re-probes: the probe of the running resource
        # answers "ok" (running), so nothing is restarted
        log.mark()
        cluster.crm_resource("--cleanup", "--resource", RSC)
        assert wait_until(lambda: fail_count(cluster) == 0, 10, 0.2)
        step = log.wait_for(result("probe", "ok"))
        show("crm_resource --cleanup", step)
        assert step, log.new()
        assert not log.grep(rf"Initiating (start|stop) operation {RSC}_")
        assert history(cluster)[1] == []
        assert exports_live(lab, registry)

        # 4. stop: every export withdrawn, the node-local active marker gone
        log.mark()
        cluster.crm_resource("--resource", RSC, "--meta", "--set-parameter", "target-role",
                             "--parameter-value", "Stopped")
        cluster.wait_resource(RSC, state="Stopped", timeout=30)
        assert not set(registry) & set(show_exports(lab))
        assert not marker.exists()
        step = log.wait_for(agent_said("stop", "2 live exports withdrawn"), result("stop", "ok"))
        show("target-role=Stopped", step)
        assert log.saw(step, agent_said("stop", "2 live exports withdrawn"), result("stop", "ok")), log.new()
        assert fail_count(cluster) == 0
    finally:
        if cluster is not None:
            cluster.stop()
        lab.stop()
    # 6. nothing left behind
    assert cluster.leftovers() == {"netns": [], "processes": [], "mounts": []}
    assert lab.daemon.proc is None and lab.bus.proc is None and not lab.bus.socket.exists()
    print(f"total {time.monotonic() - t_start:.1f}s")


def test_one_bad_export_is_degraded_a_fsal_missing_everywhere_too(tmp_path, tmpfs_volume):
    """Issue 14, item 1, as Pacemaker sees it. One export Ganesha refuses (its directory is
    gone): the monitor answers OCF_DEGRADED, crm_mon shows it with the reason, the resource
    stays Started here with no failure counted and nothing restarted. Then an export whose
    FSAL module this node lacks (added --record-only), on a cluster whose only node is this
    one: no node has the module, so that export is left out the same way (it used to answer
    OCF_ERR_INSTALLED, and Pacemaker stopped the whole volume for good: nowhere else to go);
    a node that has it moving the volume there is tests/cluster/test_fsal_nodes.py."""
    vol = tmpfs_volume
    for d in ("a", "b", "c", "m"):
        (vol / d).mkdir()
    lab = GaneshaLab(tmp_path / "glab").start()
    cluster: SandboxCluster | None = None
    try:
        lab.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "720-729", check=True)
        for d in ("a", "b", "c"):
            lab.cli("export", "add", str(vol), d, "--client", "127.0.0.1", check=True)
        (vol / "b").rmdir()
        cluster, log = started_cluster(tmp_path, vol, lab)
        step = log.wait_for(agent_said("start", "1 of 3 exports could not go live"), result("start", "ok"),
                            result("monitor", "OCF_DEGRADED"), timeout=15)
        show("one export refused", step)
        assert log.saw(step, agent_said("start", "1 of 3 exports could not go live"), result("start", "ok"),
                       result("monitor", "OCF_DEGRADED")), log.new()
        assert sorted(p for i, p in show_exports(lab).items() if i) == [f"{vol}/a", f"{vol}/c"]
        log.mark()
        time.sleep(3 * MONITOR_S)   # several degraded monitors: nothing is recovered
        assert cluster.resource_location(RSC) == "n1" and fail_count(cluster) == 0
        assert not log.grep(rf"Initiating (stop|start) operation {RSC}_")
        crm_mon = cluster.crm_mon()
        show("crm_mon", crm_mon.splitlines()[-4:])
        assert re.search(rf"{RSC}\s.*Started n1", crm_mon), crm_mon
        assert re.search(rf"{RSC} {MONITOR_S}s-interval monitor on n1 returned 'OCF_DEGRADED' \(not live: "
                         rf"b \(Export_Id 721\): no directory {re.escape(str(vol / 'b'))}", crm_mon), crm_mon
        attrs, failures = history(cluster)
        assert [(f["exitstatus"], f["exitcode"]) for f in failures] == [("OCF_DEGRADED", "190")], failures

        # an FSAL this node does not have, and no other node either: left out, the others serve on
        plugins = tmp_path / "plugins"
        plugins.mkdir()
        os.symlink("/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so", plugins / "libfsalvfs.so")
        (vol / "b").mkdir()            # b is served again: the one export not live is /m
        assert wait_until(lambda: f"{vol}/b" in show_exports(lab).values(), 15, 0.2)
        log.mark()
        lab.config.write_text(lab.config.read_text().replace("[ganesha]\n", f"[ganesha]\nplugins_dir = {plugins}\n"))
        lab.cli("export", "add", str(vol), "/m", "--client", "127.0.0.1", "--fsal", "MEM", "--record-only",
                check=True)   # MEM's path is in its own namespace
        reason = (r"not live: /m \(Export_Id 723\): FSAL MEM is missing here and no other node published its FSALs "
                  r"\(Debian package nfs-ganesha-mem\)")
        step = log.wait_for(result("monitor", "OCF_DEGRADED"), timeout=15)
        show("FSAL MEM missing on every node", step)
        time.sleep(3 * MONITOR_S)
        assert cluster.resource_location(RSC) == "n1" and fail_count(cluster) == 0, "still served, nothing counted"
        assert not log.grep(rf"Initiating (stop|start) operation {RSC}_")
        assert sorted(p for i, p in show_exports(lab).items() if i) == [f"{vol}/a", f"{vol}/b", f"{vol}/c"]
        crm_mon = cluster.crm_mon()
        show("crm_mon", crm_mon.splitlines()[-4:])
        assert re.search(rf"{RSC} {MONITOR_S}s-interval monitor on n1 returned 'OCF_DEGRADED' \({reason}", crm_mon), \
            crm_mon
    finally:
        if cluster is not None:
            cluster.stop()
        lab.stop()
    assert cluster.leftovers() == {"netns": [], "processes": [], "mounts": []}


def test_a_ganesha_hung_while_running_is_a_failure_with_its_reason_under_pacemaker(tmp_path, tmpfs_volume):
    """Ganesha's D-Bus thread hangs while it runs (tests/hung_dbus.py: a deadlock). What the
    administrator finds in the morning: the recurring monitor failed with the agent's own
    reason (Ganesha's PID, what it did not answer), not "Timed Out"; Pacemaker's recovery
    stopped the resource, and that stop failed in time with the reason too (the exports cannot
    be withdrawn from a hung shared daemon: with fencing, the node is fenced; in this sandbox,
    stonith-enabled=false, the resource is left failed and blocked). The daemon, the node's
    service, was never signalled; once it answers again, a clean-up finds the volume served."""
    from hung_dbus import hung_dbus_thread

    from ganesha_ha.registry import Registry

    vol = tmpfs_volume
    (vol / "alpha").mkdir()
    lab = GaneshaLab(tmp_path / "glab").start()
    cluster: SandboxCluster | None = None
    try:
        lab.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "700-799", check=True)
        lab.cli("export", "add", str(vol), "alpha", "--client", "127.0.0.1", check=True)
        registry = {e.export_id: str(vol / e.path) for e in Registry(vol).load().exports}
        cluster, log = started_cluster(tmp_path, vol, lab)
        assert exports_live(lab, registry)
        assert log.wait_for(result("monitor", "ok")), log.new()

        pid = lab.daemon.pid
        reason = rf"ganesha.nfsd \(pid {pid}\) did not answer D-Bus ShowExports within 5 s: hung\? restart nfs-ganesha"
        log.mark()
        with hung_dbus_thread(pid):
            step = log.wait_for(rf"{result('monitor', 'error')} \({reason}", rf"{result('stop', 'error')} \(stop failed: "
                                f"{reason}", timeout=3 * MONITOR_S + 40)
            show("Ganesha hung while running", step)
            assert log.saw(step, result("monitor", "error"), result("stop", "error")), log.new()
            assert not log.grep("Timed Out", "timed out"), log.grep("Timed Out", "timed out")
            _, failures = history(cluster)   # crm_mon keeps the last failure of the resource: its stop's
            assert [(f["op_key"], f["exitstatus"]) for f in failures] == [(f"{RSC}_stop_0", "error")], failures
            assert re.match(f"stop failed: {reason}", failures[0]["exitreason"]), failures
            crm_mon = cluster.crm_mon()
            show("crm_mon", crm_mon.splitlines()[-8:])
            assert re.search(rf"{RSC}\s.*FAILED n1.*blocked", crm_mon), crm_mon
        assert lab.daemon.pid == pid and lab.daemon.proc.poll() is None, "the shared daemon was signalled"
        log.mark()
        cluster.crm_resource("--cleanup", "--resource", RSC)
        assert cluster.wait_resource(RSC, "n1", timeout=30) == "n1"
        assert wait_until(lambda: exports_live(lab, registry), 20, 0.2)
        assert log.wait_for(result("monitor", "ok"), timeout=20), log.new()
    finally:
        if cluster is not None:
            cluster.stop()
        lab.stop()
    assert cluster.leftovers() == {"netns": [], "processes": [], "mounts": []}
