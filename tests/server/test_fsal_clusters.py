"""GLUSTER and CEPH exports on real one-node clusters, failed over in the direct lab (--long).

`ganesha-ha lab --direct --fsal GLUSTER|CEPH` runs the cluster on a storage machine of the lab
(lab/storage.py: glusterd and a single-brick volume, about 3 s; or mon, mgr, memstore OSD and
MDS with CephFS, about 9 s), adds the export through the CLI (CEPH with its cephx key given by
file), starts it through the resource agent, and a client writes and reads through it. After
each move the export has its Export_Id, the handle taken before reads the same data, a new file
can be written and read, and (GlusterFS) what was written is on the brick. Everything, the
cluster's daemons included, is gone afterwards.

The servers' packages are installed here when missing (apt-get; glusterfs-server about 53 MB,
the Ceph daemons about 250 MB); where that cannot be done the test is skipped with the reason.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from lab_leftovers import leftovers

PACKAGES = {"GLUSTER": ["glusterfs-server", "nfs-ganesha-gluster"],
            "CEPH": ["ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds", "ceph-common", "nfs-ganesha-ceph"]}
PROGRAMS = {"GLUSTER": ["glusterd", "gluster"], "CEPH": ["ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds", "ceph"]}

pytestmark = [pytest.mark.long,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, loop devices, daemons)"),
              pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="nfs-ganesha is not installed")]


def ensure_installed(fsal: str) -> None:
    """Install the cluster's packages when a program is missing; skip with apt's reason if
    that fails (no network, no apt). Services are kept from starting (policy-rc.d)."""
    if all(shutil.which(p) for p in PROGRAMS[fsal]) and os.path.exists(
            f"/usr/lib/x86_64-linux-gnu/ganesha/libfsal{fsal.lower()}.so"):
        return
    if shutil.which("apt-get") is None:
        pytest.skip(f"{' '.join(PACKAGES[fsal])} not installed and no apt-get here")
    policy = "/usr/sbin/policy-rc.d"
    made = not os.path.exists(policy)
    if made:
        with open(policy, "w") as fh:
            fh.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cp = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES[fsal]],
                            capture_output=True, text=True, timeout=900, env=env)
    finally:
        if made:
            os.unlink(policy)
    if cp.returncode != 0:
        pytest.skip(f"could not install {' '.join(PACKAGES[fsal])}: {(cp.stderr or cp.stdout).strip()[-300:]}")


def cluster_pids() -> set[int]:
    names = ("glusterd", "glusterfsd", "glusterfs", "ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds")
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            comm, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
            if comm in names and state != "Z":
                out.add(int(d))
    return out


@pytest.mark.parametrize("fsal", ["GLUSTER", "CEPH"])
def test_an_export_on_a_one_node_cluster_fails_over_with_its_export_id_and_handles(fsal):
    ensure_installed(fsal)
    before = cluster_pids()
    proc = subprocess.run([sys.executable, "-m", "ganesha_ha", "lab", "--direct", "--json", "--quiet",
                           "--fsal", fsal, "--failovers", "2"], capture_output=True, text=True, timeout=600)
    try:
        r = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"no JSON from the lab (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    assert proc.returncode == 0 and r["ok"] is True, json.dumps(r, indent=1)
    assert r["storage"]["kind"] == fsal.lower() and r["fsal"]["keeps_data"] is True
    if fsal == "CEPH":
        assert "secret_access_key=<redacted>" in r["fsal"]["spec"], "the key given by file is never shown"
    ids = set()
    for fo in r["failovers"]:
        e = fo["fsal"]
        assert e["export_id_kept"] and e["handle_preserved"] and e["fresh_io"], e
        assert fo["export_ids_equal"] and fo["handles_preserved"] and fo["agent"]["stop"]["rc"] == 0
        if fsal == "GLUSTER":
            assert e["data_on_storage"] is True
        ids.add(e["export_id"])
    assert len(ids) == 1
    assert leftovers(r["run_id"]) == []
    assert cluster_pids() - before == set(), "a cluster daemon outlived the lab"
