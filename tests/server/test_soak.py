"""Soak (issue 7, point 6): `ganesha-ha lab --direct --failovers 20 --kill` with the client
writing throughout. Twenty crashes of the active node's ganesha.nfsd (kill -9), each
followed by the agent's monitor, stop, the volume fenced and mounted on the other node and
the agent's start there: zero NFS4ERR_STALE (ESTALE) replies and zero acknowledged writes
lost, per failover and over the whole run. About 150 s: run with --long.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = [
    pytest.mark.long,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, loop devices, daemons)"),
    pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="nfs-ganesha is not installed"),
]

FAILOVERS = 20


def test_twenty_kill_failovers_lose_nothing():
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ganesha_ha", "lab", "--direct", "--failovers",
                           str(FAILOVERS), "--kill", "--json", "--quiet"],
                          capture_output=True, text=True, timeout=1200)
    took = time.monotonic() - t0
    try:
        r = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"no JSON from the lab (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    assert "Traceback" not in proc.stderr, proc.stderr
    fos = r["failovers"]
    summary = {
        "seconds": round(took, 1),
        "failovers": len(fos),
        "stale_replies": [f["stale_replies"] for f in fos],
        "acked_writes_lost": [f["acked_writes_lost"] for f in fos],
        "outage_s_max": max((f["outage_s"] or 0) for f in fos),
        "client_writes": r.get("client_writes"),
    }
    print(json.dumps(summary))
    assert len(fos) == FAILOVERS and all(f["mode"] == "kill -9" for f in fos)
    # every crash was seen by the monitor and handled by the agent, and nothing else went wrong
    assert all(f["agent"]["monitor_after_kill"]["rc"] != 0 for f in fos)
    assert [f["n"] for f in fos if not f["ok"]] == [], json.dumps([f["problems"] for f in fos], indent=1)
    # zero ESTALE: not one NFS4ERR_STALE on the saved handle or the write stream, in any failover
    assert all(f["stale_replies"] == 0 and f["handles_preserved"] for f in fos)
    # zero lost acknowledged writes: per failover (after each reclaim) and over the whole run
    assert all(f["acked_writes_lost"] == 0 and f["stream_reclaimed"] for f in fos)
    writes = r["client_writes"]
    assert writes["stale_replies"] == 0 and writes["acked_records_lost"] == 0
    assert writes["records_acked"] >= 10 * FAILOVERS, writes  # the client really wrote throughout
    assert all(f["writes"]["acked_total"] > 0 for f in fos)
    assert r["ok"] is True and proc.returncode == 0
    assert r["left_behind"] == []
    from test_direct_lab import leftovers

    assert leftovers(r["run_id"]) == []
