"""The cluster lab's two Ganesha modes (issue 17b), pure parts: how long a failover's new opens
got NFS4ERR_GRACE (labclient.ProbeWindow.span, NewOpenProbe.evidence), how the report shows the
volumes that did not move, and the lab CLI's refusals of --ganesha-mode. The real runs, both
modes through the four kinds, are in tests/cluster/test_cluster_lab.py."""
from __future__ import annotations

import pytest

from ganesha_ha.lab.cli import main
from ganesha_ha.lab.labclient import Probe, ProbeWindow
from ganesha_ha.lab.openprobe import NewOpenProbe
from ganesha_ha.lab.report import grace_of_unmoved, render_cluster_text

GRACE = ("NFS4ERR_GRACE", 10013)


def probes(marks: str, step: float = 0.2) -> list[Probe]:
    """'.' a success, 'g' NFS4ERR_GRACE, 'x' a refused connection, one every `step` s."""
    out = []
    for i, m in enumerate(marks):
        t = round(i * step, 2)
        out.append(Probe(t, True) if m == "." else Probe(t, False, *GRACE) if m == "g"
                   else Probe(t, False, "Connection refused"))
    return out


def evidence(marks: str, t_up: float | None = None) -> dict:
    probe = NewOpenProbe("gha-none", "192.0.2.1", "/d", client_name="c")   # never started
    probe.window = ProbeWindow(probes(marks))
    return probe.evidence(t_up)


def test_grace_runs_from_the_first_refusal_to_the_first_success_after_the_last():
    ev = evidence("..xxgg.gg...")
    assert ev["grace_s"] == 1.0        # 0.8 (first g) -> 1.8 (the first success after the g at 1.6)
    assert ev["outage_s"] == 0.8       # 0.4 (first x) -> 1.2 (the first success after it)
    assert (ev["attempts"], ev["failed"]) == (12, 6)
    assert ev["errors"] == {"Connection refused": 2, "NFS4ERR_GRACE": 4}


def test_no_grace_is_zero_and_a_grace_that_never_ended_is_unknown():
    assert evidence(".....")["grace_s"] == 0.0
    assert evidence("..xx..")["grace_s"] == 0.0, "refused connections are no grace"
    assert evidence("")["grace_s"] == 0.0 and evidence("")["attempts"] == 0
    assert evidence("..ggg")["grace_s"] is None
    assert ProbeWindow(probes("g.g")).span("NFS4ERR_GRACE") is None


def moved(outage: float) -> dict:
    return {"from": "node-a", "to": "node-b", "outage_s": outage, "service_gap_s": 1.5,
            "new_opens": {"outage_s": 3.0, "grace_s": 2.9, "after_up_s": 2.0, "attempts": 20, "failed": 15,
                          "errors": {"NFS4ERR_GRACE": 15}},
            "export_ids_equal": True, "handles_preserved": True, "reclaimed": True, "reclaim_complete": True,
            "data_verified": True, "acked_writes_lost": 0}


def stayed(on: str, receiving: bool, marks: str) -> dict:
    return {"on": on, "on_receiving_node": receiving, "new_opens": evidence(marks),
            "checks": {"new_opens_resumed": True}}


def cluster(mode: str, failovers: list[dict]) -> dict:
    return {"run_id": "k1", "nodes": ["node-a", "node-b"], "server": "ganesha", "ganesha_mode": mode,
            "grace_period_s": 5, "failovers": failovers, "problems": [], "left_behind": [], "ok": True,
            "fencing": "stonith is off"}


def failover(n: int, kind: str, not_moved: dict, **extra) -> dict:
    return {"n": n, "kind": kind, "what": kind, "from": "node-a", "to": "node-b", "ok": True, "problems": [],
            "volumes": {"vol1": moved(1.0 + n)}, "outage_s": 1.0 + n, "not_moved": not_moved, **extra}


def test_the_report_shows_each_unmoved_volumes_grace_and_the_worst_per_kind():
    first = {"kind": "move", "volumes": {"vol2": moved(1.5)}, "from": "node-b", "to": "node-a",
             "outage_s": 1.5, "ok": True, "problems": []}
    r = cluster("shared", [
        failover(1, "move", {"vol2": stayed("node-b", True, ".gggg.")}),
        failover(2, "kill", {"vol2": stayed("node-a", True, ".ggggggg."),
                             "vol3": stayed("node-c", False, "......")}, spread_before=first),
    ])
    text = render_cluster_text(r)
    lines = text.splitlines()
    assert lines[0].endswith("server ganesha (the node's shared Ganesha), grace period 5 s")
    row = next(ln for ln in lines if ln.split()[:3] == ["1", "move", "vol2"] and "yes" in ln.split())
    assert row.split() == ["1", "move", "vol2", "node-b", "yes", "0.80", "0.80", "4/6", "NFS4ERR_GRACE", "x4"]
    row = next(ln for ln in lines if ln.split()[:3] == ["2", "kill", "vol3"] and "NO" in ln.split())
    assert row.split()[3:7] == ["node-c", "NO", "0.00", "0.00"]
    assert "  2 first: vol2 moved node-b -> node-a (a planned move, outage 1.50 s: ok)" in text
    # only the volumes on a node that took one over count: vol3's zero does not hide vol2's 1.4 s
    assert grace_of_unmoved(r) == {"move": 0.8, "kill": 1.4}
    assert ("volumes that did not move, on a node taking one over: NFS4ERR_GRACE per failover kind, "
            "worst move 0.80 s, kill 1.40 s") in text


def test_a_grace_that_never_ended_is_the_worst_of_its_kind():
    r = cluster("instance", [failover(1, "loss", {"vol2": stayed("node-b", True, "..ggg")}),
                             failover(2, "loss", {"vol2": stayed("node-b", True, ".g.")})])
    assert grace_of_unmoved(r) == {"loss": None}
    assert "(a Ganesha instance per volume)" in render_cluster_text(r).splitlines()[0]


@pytest.mark.parametrize("argv, said", [
    (["--direct", "--ganesha-mode", "instance"], "are for the cluster lab"),
    (["--failovers", "2", "--ganesha-mode", "shared"], "are for the cluster lab"),
    (["--server", "knfsd", "--ganesha-mode", "instance"], "needs --server ganesha"),
    (["--ganesha-mode", "instance", "--nlm"], "NFSv4 only"),
    (["--ganesha-mode", "instance", "--break", "server-scope"], "an instance's scope is its volume's"),
    (["--ganesha-mode", "own"], "invalid choice"),
])
def test_the_ganesha_mode_is_a_cluster_lab_option_for_ganesha(capsys, argv, said):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and said in capsys.readouterr().err


def test_instance_mode_turns_nlm_off_by_default(monkeypatch):
    """An instance is NFSv4 only: the lab's NLM client is left out unless asked for (refused
    above); the shared mode keeps NLM on by default."""
    seen = {}

    class Stop(Exception):
        pass

    def fake_preflight(server, extra=()):
        seen["extra"] = extra
        raise Stop
    monkeypatch.setattr("ganesha_ha.lab.cli._preflight", fake_preflight)
    for argv, nlm in ((["--ganesha-mode", "instance"], False), ([], True), (["--ganesha-mode", "shared"], True)):
        with pytest.raises(Stop):
            main(argv)
        assert ("rpc.statd" in seen["extra"]) is nlm, argv


def test_with_an_instance_per_volume_the_scopes_are_compared_per_volume():
    r = cluster("instance", [])
    r.update(nfs_version="4.1", server_identity={
        "vol1@node-a": {"owner": "node-a", "scope": "ganesha-ha-1"}, "vol1@node-b": {"owner": "node-b", "scope": "ganesha-ha-1"},
        "vol2@node-b": {"owner": "node-b", "scope": "ganesha-ha-2"}})
    line = next(ln for ln in render_cluster_text(r).splitlines() if ln.startswith("servers as NFSv4.1 saw them"))
    assert "vol1 on node-a owner 'node-a' scope 'ganesha-ha-1'" in line
    assert line.endswith("(each volume one scope on every node)")
    r["server_identity"]["vol2@node-a"] = {"owner": "node-a", "scope": "node-a_NFS-Ganesha"}
    line = next(ln for ln in render_cluster_text(r).splitlines() if ln.startswith("servers as NFSv4.1 saw them"))
    assert line.endswith("(DIFFERENT scopes for vol2: no reclaim across nodes)")
