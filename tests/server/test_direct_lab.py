"""`ganesha-ha lab` end to end: the failover proof runs in CI, can fail, and leaves nothing.

Each test runs the real command (network namespaces, loop device, two ganesha.nfsd, the
resource agent, the NFSv4 client) and then checks that no namespace, loop device, process,
state file or directory of that run is left behind.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from lab_leftovers import leftovers

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, loop devices, daemons)"),
    pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="nfs-ganesha is not installed"),
]



def lab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    argv = list(args) if args[:1] == ("down",) else ["--direct", *args]
    return subprocess.run([sys.executable, "-m", "ganesha_ha", "lab", *argv],
                          capture_output=True, text=True, timeout=timeout)


def run_json(*args: str) -> tuple[subprocess.CompletedProcess, dict]:
    proc = lab("--json", "--quiet", *args)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"no JSON from the lab (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc, report


def test_one_clean_failover_keeps_the_clients_handle_then_kept_and_down():
    """The clean-stop failover, kept (--keep) after it, so the same run shows a kept lab
    explorable and `lab down` removing it (the in-process teardown, left_behind, is checked by
    the kill-9 run and the others below)."""
    proc, r = run_json("--keep", "--failovers", "1")
    run_id = r["run_id"]
    try:
        failover_kept_the_handle(proc, r, kill=False)
        kept = r["kept"]
        assert set(kept["nodes"]) == {"a", "b"} and kept["volume"]["mounted_on"] == "b"
        assert leftovers(run_id), "--keep left nothing up"
        enter = kept["nodes"]["b"]["enter"].split()[:-1]  # nsenter -t PID -m -n -u
        mounted = subprocess.run([*enter, "findmnt", "-n", "-o", "SOURCE", kept["volume"]["mountpoint"]],
                                 capture_output=True, text=True, timeout=30)
        assert mounted.stdout.strip().startswith("/dev/loop"), mounted
    finally:
        down = lab("down", run_id)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(run_id) == []


def test_one_kill_9_failover_keeps_the_clients_handle():
    proc, r = run_json("--failovers", "1", "--kill")
    failover_kept_the_handle(proc, r, kill=True)
    assert r["left_behind"] == []
    assert leftovers(r["run_id"]) == []


def failover_kept_the_handle(proc: subprocess.CompletedProcess, r: dict, *, kill: bool) -> None:
    """One failover's evidence, NFSv4.1 and NLM (the lab's default): the client's handle, data
    and writes survived it, its state was reclaimed, the NFSv3 client's lock too."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert r["ok"] is True and proc.returncode == 0, json.dumps(r, indent=1)
    (fo,) = r["failovers"]
    assert fo["handles_preserved"] is True
    assert fo["data_verified"] is True and fo["data_on_volume"] is True
    assert fo["reclaimed"] is True and fo["export_ids_equal"] is True
    assert fo["stale_replies"] == 0
    assert fo["acked_writes_lost"] == 0 and fo["stream_reclaimed"] is True  # written throughout
    # the stream went on across the move (a count of records would measure the machine's speed)
    assert r["client_writes"]["acked_records_lost"] == 0 and r["client_writes"]["records_acked"] > 0
    assert fo["writes"]["attempts"] > fo["writes"]["failed"]
    assert fo["recovery_records_moved"] >= 1 and fo["grace_events_sent"] >= 1
    assert fo["outage_s"] is not None and fo["outage_s"] <= r["grace_period_s"] + 2
    # the NLM part the other lab tests here leave out (--no-nlm): the NFSv3 client's lock
    assert r["nlm"] is True and fo["nlm"]["reclaimed"] is True and fo["checks"]["nlm_lock_reclaimed_in_grace"]
    if kill:
        assert fo["agent"]["monitor_after_kill"]["rc"] != 0, "the monitor missed a dead ganesha.nfsd"


@pytest.mark.parametrize("what,failed_check", [("export-id", "handles_preserved"),
                                               ("recovery", "reclaimed")])
def test_broken_identity_or_recovery_fails_the_lab(what, failed_check):
    # NFSv4 identity and recovery: without the NFSv3/NLM client (its grace then ends once the
    # NFSv4.1 clients reclaimed, not after the whole Grace_Period); NLM is proven above
    proc, r = run_json("--break", what, "--no-nlm")
    assert proc.returncode == 1, json.dumps(r, indent=1)
    assert r["ok"] is False
    (fo,) = r["failovers"]
    assert fo["ok"] is False and fo["checks"][failed_check] is False
    if what == "export-id":
        assert fo["export_ids_equal"] is False and fo["stale_replies"] >= 1
    else:
        assert fo["recovery_records_moved"] == 0 and fo["grace_events_sent"] == 0
    assert leftovers(r["run_id"]) == []


def test_knfsd_identity_and_rmtab_move():
    """No nfsd module here: the knfsd lab proves etab identity and rmtab migration, and says so."""
    proc, r = run_json("--server", "knfsd", "--failovers", "2")
    assert proc.returncode == 0 and r["ok"] is True, json.dumps(r, indent=1)
    assert "no kernel NFS server" in r["note"] or r["nfsd_module"]
    for fo in r["failovers"]:
        assert fo["etab_identical"] and fo["fsids_equal"] and fo["rmtab_migrated"]
        assert fo["etab_after"] == fo["etab_before"] and len(fo["etab_after"]) == 3
    assert leftovers(r["run_id"]) == []
    proc, r = run_json("--server", "knfsd", "--break", "export-id")
    assert proc.returncode == 1 and r["failovers"][0]["etab_identical"] is False
    assert leftovers(r["run_id"]) == []


@pytest.mark.parametrize("spec,keeps_data", [("MEM(Inode_Size=65536)", False), ("NULL(VFS)", True)])
def test_an_fsal_export_moves_with_its_export_id(spec, keeps_data):
    """`--fsal`: one more export with that FSAL. After each move it has the same Export_Id, is
    served on the new node (a new file written and read there) and, for an FSAL whose data is
    on shared storage (NULL over VFS on the volume), the handle taken before reads the same
    data; MEM's data stays in the old Ganesha's memory, so its old handle is stale."""
    proc, r = run_json("--fsal", spec, "--failovers", "2", "--no-nlm")   # NLM: proven above
    assert proc.returncode == 0 and r["ok"] is True, json.dumps(r, indent=1)
    assert r["fsal"]["keeps_data"] is keeps_data
    ids = set()
    for fo in r["failovers"]:
        e = fo["fsal"]
        assert e["export_id_kept"] is True and e["fresh_io"] is True and fo["export_ids_equal"] is True
        assert e["handle_preserved"] is keeps_data and (keeps_data or e["old_handle"] == "NFS4ERR_STALE")
        ids.add(e["export_id"])
    assert len(ids) == 1
    assert leftovers(r["run_id"]) == []
