"""ganesha_ha.lab.report: the lab's reports as text, from report dicts of the shape the labs
write (the end-to-end runs in test_direct_lab.py and test_cluster_lab.py produce real ones).
Pure and fast: no root needed."""
from __future__ import annotations

from ganesha_ha.lab.report import render_cluster_text, render_knfsd_text, render_text


def direct(ok: bool = True, **extra) -> dict:
    fo = {"n": 1, "from": "a", "to": "b", "ok": ok, "outage_s": 0.41, "grace_measured_s": 5.2,
          "export_ids_equal": ok, "handles_preserved": ok, "reclaimed": True, "data_verified": ok,
          "acked_writes_lost": 0, "recovery_records_moved": 1, "grace_events_sent": 1,
          "problems": [] if ok else ["check failed: handles_preserved"]}
    return {"run_id": "l1234", "server": "ganesha", "mode": "clean stop", "grace_period_s": 5,
            "ok": ok, "failovers": [fo], "problems": [], "left_behind": [],
            "exports": [{"pseudo": "/lab/data", "export_id": 17, "directory": "/v/data", "fsid": 3}],
            "client_writes": {"records_acked": 40, "acked_records_lost": 0, "stale_replies": 0},
            "setup_s": 3.1, "total_s": 12.0, **extra}


def test_direct_report_says_each_failover_and_the_verdict():
    text = render_text(direct())
    assert text.splitlines()[0] == "ganesha-ha lab l1234: server ganesha, failover by clean stop, grace period 5 s"
    assert "/lab/data (Export_Id 17)" in text
    row = next(line for line in text.splitlines() if line.startswith("1 "))
    assert row.split()[:5] == ["1", "a", "->", "b", "0.41"] and row.split()[-1] == "ok"
    assert "40 records acknowledged, 0 of them missing afterwards" in text
    assert text.endswith("OK: every failover held (setup 3.1 s, total 12.0 s)")


def test_direct_report_shows_a_failure_and_what_was_left():
    text = render_text(direct(ok=False, left_behind=["netns gha-l1234-a"]))
    assert "  failover 1: check failed: handles_preserved" in text
    assert "LEFT BEHIND: netns gha-l1234-a" in text
    assert text.splitlines()[-1].startswith("FAILED: see above")


def test_a_kept_direct_lab_says_how_to_enter_and_tear_down():
    kept = {"state_file": "/run/ganesha-ha-lab/l1234.json", "floating_ip": "10.213.9.100",
            "volume": {"mountpoint": "/v", "loop_device": "/dev/loop7", "mounted_on": "b"},
            "nodes": {"a": {"address": "10.213.9.1", "enter": "nsenter -t 11 -m -n -u bash",
                            "config": "/c/a.conf"}},
            "client": {"address": "10.213.9.10", "enter": "nsenter --net=/run/netns/gha-l1234-c bash"},
            "down": "ganesha-ha lab down"}
    text = render_text(direct(kept=kept))
    assert "node a (10.213.9.1): nsenter -t 11 -m -n -u bash" in text
    assert "  tear down: ganesha-ha lab down" in text and "cleaned up" not in text


def test_knfsd_reports_go_to_their_own_renderer():
    fo = {"n": 1, "from": "a", "to": "b", "ok": True, "etab_identical": True, "fsids_equal": True,
          "rmtab_lines_moved": 2, "rmtab_migrated": True, "etab_after": ["/v/data\t10.0.0.0/24(rw,fsid=7)"]}
    r = {"run_id": "l9", "server": "knfsd", "mode": "clean stop", "ok": True, "failovers": [fo],
         "note": "no nfsd here", "left_behind": []}
    assert render_text(r) == render_knfsd_text(r)
    text = render_knfsd_text(r)
    assert "NOTE: no nfsd here" in text and "  /v/data\t10.0.0.0/24(rw,fsid=7)" in text
    assert text.splitlines()[-1].startswith("OK: identity and rmtab held on every move")


def test_cluster_report_has_one_row_per_moved_volume():
    ev = {"from": "node-a", "to": "node-b", "outage_s": 1.5, "service_gap_s": 3.25,
          "export_ids_equal": True, "handles_preserved": True, "reclaimed": True,
          "data_verified": True, "acked_writes_lost": 0}
    r = {"run_id": "k1", "server": "ganesha", "nodes": ["node-a", "node-b"], "grace_period_s": 5,
         "ok": False, "fencing": "stonith is off", "left_behind": [], "problems": ["vol2: lost"],
         "failovers": [{"n": 1, "kind": "loss", "what": "node loss", "ok": False,
                        "volumes": {"vol1": ev, "vol2": dict(ev, acked_writes_lost=2)},
                        "problems": ["vol2: check failed: no_acknowledged_write_lost"],
                        "pacemaker": ["node-a: Node node-b state is now lost"]}]}
    lines = render_cluster_text(r).splitlines()
    rows = [ln.split() for ln in lines if ln.startswith("1 ")]
    assert [(row[2], row[-3], row[-1]) for row in rows] == [("vol1", "0", "ok"), ("vol2", "2", "FAILED")]
    assert "      pacemaker: node-a: Node node-b state is now lost" in lines
    assert "fencing: stonith is off" in lines and "problem: vol2: lost" in lines
    assert lines[-1].startswith("FAILED: see above")


def test_direct_report_says_what_the_clients_saw():
    nlm = {"notified": True, "notified_by": ["10.0.0.100 (volume.gha.lab)"], "notified_after_up_s": 0.2,
           "reclaimed": True, "reclaim": ["NLM4_GRANTED"], "reclaim_after_up_s": 0.3,
           "contender": {"NLM4_DENIED_GRACE_PERIOD": 20, "NLM4_DENIED": 2}, "contender_granted": False,
           "data_intact": True}
    r = direct(nfs_version="4.1", nlm=True, lease_lifetime_s=5, server_scope_set=None,
               server_identity={"a": {"owner": "n-a", "scope": "n-a_NFS-Ganesha"},
                                "b": {"owner": "n-b", "scope": "n-b_NFS-Ganesha"}},
               scope_check={"a": {"rc": 0, "reason": ""}, "b": {"rc": 0, "reason": ""}})
    r["failovers"][0].update(nlm=nlm, reclaim_complete=True, new_opens={"outage_s": 5.5, "after_up_s": 5.1},
                             waited_for_expiry={"waited_s": 3.2, "still_remembered": []})
    lines = render_text(r).splitlines()
    assert lines[1].startswith("clients: NFSv4.1 and NFSv3 with an NLM lock, notified by ocf:ganesha-ha:notify")
    assert any("(DIFFERENT scopes: no reclaim across nodes)" in ln for ln in lines)
    assert any(ln.startswith("agent validate-all with different scopes: a rc 0; b rc 0: not refused") for ln in lines)
    row = next(ln for ln in lines if ln.startswith("1 ")).split()
    assert row[5:8] == ["5.20", "5.50", "(5.10)"]   # grace s, then new opens s
    assert any("waited 3.2 s before the move for b" in ln for ln in lines)
    nl = next(ln for ln in lines if "NLM:" in ln)
    assert "notified from 10.0.0.100 (volume.gha.lab) 0.2 s after the IP was up" in nl
    assert "lock reclaimed 0.3 s after the IP was up" in nl and "LOCK LOST" not in nl
    nlm.update(contender_granted=True, notified_after_up_s=-1.5)
    nl = next(ln for ln in render_text(r).splitlines() if "NLM:" in ln)
    assert "LOCK LOST" in nl and "1.5 s before the lab's poll saw the group up" in nl
