"""The replacement of exportfs primitives under a real (single-node) Pacemaker: no export is
ever withdrawn.

The sandbox node (ganesha_ha.lab.sandbox) runs a group as clusters have it today: a file
system (a Dummy stands in), three ocf:heartbeat:exportfs primitives of one tmpfs volume,
an IP (a Dummy). Its /var/lib/nfs is a private directory (exportfs there writes etab, which
the test reads from outside) and this checkout's agent is where Pacemaker looks, in the
node only (lab/sandbox/ocf_root.py). Then, as the
README says: `import cib --apply` from the live CIB, and the crmsh commands it prints, run in
the node against the live cluster. Meanwhile a watcher reads etab every few milliseconds.

Proved: the new ocf:ganesha-ha:exports resource ends up started in the group's place of the
primitives; no stop of an exportfs primitive ran (the controller logs none); etab never lost
one of the volume's lines (so no client saw the export withdrawn), and ends as it began.
(It found that `crm_resource --cleanup`, which clears failures only, leaves the deleted
primitives' history: leaving maintenance mode, Pacemaker stopped them as orphans and their
stops withdrew the exports until the new resource's monitor put them back. `--refresh`
clears it.)
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import IS_ROOT, tmpfs
from ganesha_ha.lab.sandbox import available
from ganesha_ha.lab.sandbox.cluster import SandboxCluster
from ganesha_ha.lab.sandbox.ocf_root import ocf_overlay

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not IS_ROOT, reason="needs root (namespaces, mounts, daemons)"),
    pytest.mark.skipif(not available(), reason="corosync/pacemaker not installed"),
    pytest.mark.skipif(shutil.which("crm") is None or shutil.which("exportfs") is None,
                       reason="crmsh or exportfs not installed"),
    pytest.mark.skipif(not Path("/usr/lib/ocf/resource.d/heartbeat/exportfs").exists(),
                       reason="resource-agents' exportfs agent is not installed"),
]

PRIMS = [("old-a-net", "a", "10.1.0.0/16", "rw,no_root_squash", "501"),
         ("old-a-v6", "a", "[fd00:7::]/64", "ro", "501"),
         ("old-b", "b", "*", "rw,sync", "502")]

WATCH = r"""
import sys, time, pathlib
etab, stop, want = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), set(sys.argv[3:])
reads = missing = 0
worst = ""
while not stop.exists():
    lines = set(etab.read_text().splitlines())
    reads += 1
    if not want <= lines:
        missing += 1
        worst = worst or repr(sorted(want - lines))
    time.sleep(0.003)
print(reads, missing, worst)
"""


def resources(volume: Path) -> str:
    def prim(pid: str, kind: str, provider: str, params: dict[str, str]) -> str:
        nv = "".join(f'<nvpair id="{pid}-{k}" name="{k}" value="{v}"/>' for k, v in params.items())
        return (f'<primitive id="{pid}" class="ocf" provider="{provider}" type="{kind}">'
                f'<instance_attributes id="{pid}-ia">{nv}</instance_attributes>'
                f'<operations><op id="{pid}-mon" name="monitor" interval="5s" timeout="20s"/></operations>'
                "</primitive>")

    members = [prim("vol-fs", "Dummy", "heartbeat", {})]
    members += [prim(pid, "exportfs", "heartbeat",
                     {"directory": f"{volume}/{d}", "clientspec": spec, "options": opts, "fsid": fsid,
                      "unlock_on_stop": "0"})
                for pid, d, spec, opts, fsid in PRIMS]
    members.append(prim("vol-ip", "Dummy", "heartbeat", {}))
    return f'<group id="vol-group">{"".join(members)}</group>'


def test_replacing_exportfs_primitives_never_withdraws_an_export(tmp_path):
    nfs = tmp_path / "var-lib-nfs"
    nfs.mkdir()
    for name in ("etab", "rmtab"):
        (nfs / name).write_text("")
    exports = tmp_path / "exports"
    exports.write_text("")
    crm_home = tmp_path / "crm-home"
    crm_home.mkdir()
    binds = [(nfs, "/var/lib/nfs"), (exports, "/etc/exports"), *ocf_overlay(tmp_path / "ocf")]
    if Path("/var/log/crmsh").is_dir():
        (tmp_path / "crmsh-log").mkdir()
        binds.append((tmp_path / "crmsh-log", "/var/log/crmsh"))
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    gha = [sys.executable, "-m", "ganesha_ha.cli", "--config", str(config)]
    crm_env = {"HOME": str(crm_home), "TMPDIR": str(crm_home)}

    with tmpfs(tmp_path / "vol") as vol:
        for d in ("a", "b"):
            (vol / d).mkdir()
        subprocess.run([*gha, "volume", "init", str(vol), "--server", "knfsd"], check=True, capture_output=True)
        cluster = SandboxCluster(tmp_path / "cluster", ["n1"], binds={"n1": binds},
                                 crm_config={"cluster-recheck-interval": "5s"})
        watcher = None
        try:
            cluster.start(timeout=60)
            node = cluster["n1"]
            cluster.cibadmin_create("resources", resources(vol))
            for pid, *_ in PRIMS:
                cluster.wait_resource(pid, timeout=60)
            before = sorted(line for line in (nfs / "etab").read_text().splitlines() if line.startswith(f"{vol}/"))
            assert len(before) == 3

            cib = tmp_path / "cib.xml"
            cib.write_text(cluster.cib_query())
            out = subprocess.run([*gha, "import", "cib", str(vol), "--file", str(cib), "--apply", "--json"],
                                 capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stdout + out.stderr
            plan = json.loads(out.stdout)
            assert plan["changed"] and len(plan["changes"]) == 2 and not plan["refused"]

            stop = tmp_path / "stop-watching"
            watcher = subprocess.Popen([sys.executable, "-c", WATCH, str(nfs / "etab"), str(stop), *before],
                                       stdout=subprocess.PIPE, text=True)
            mark = node.pacemaker_log.stat().st_size
            for c in plan["replacement"]["crmsh"]:
                cp = node.run(c["argv"], timeout=120, env=crm_env)
                assert cp.returncode == 0, f"{c['line']}\n{cp.stdout}{cp.stderr}"
            cluster.wait_resource("vol-exports", timeout=60)
            time.sleep(6)   # a recurring monitor of the new resource, and time for any stray stop
            stop.touch()
            reads, missing, worst = watcher.communicate(timeout=30)[0].split(" ", 2)
            watcher = None

            assert int(reads) > 100 and int(missing) == 0, f"etab lost lines {worst} in {missing} of {reads} reads"
            after = sorted(line for line in (nfs / "etab").read_text().splitlines() if line.startswith(f"{vol}/"))
            assert after == before
            log = node.pacemaker_log.read_text(errors="replace")[mark:]
            assert not [ln for ln in log.splitlines() if "stop operation for old-" in ln]
            assert "Result of start operation for vol-exports on n1: ok" in log
            root = cluster.crm_mon_xml()
            ids = [r.get("id") for r in root.iter("resource")]
            assert ids == ["vol-fs", "vol-exports", "vol-ip"], ids
            assert cluster.crm_attribute("--type", "crm_config", "--name", "maintenance-mode", "--query",
                                         check=False).stdout.strip().endswith("value=false")
        finally:
            if watcher is not None:
                watcher.kill()
                watcher.wait()
            cluster.stop()
