"""Issue 13, item 3 against the real ganesha.nfsd: nested pseudo paths.

Exports `top` at /top and `child` at /top/sub of one volume. The parent's own directory has a
`sub` directory too (Ganesha reaches the child through it), holding a marker that says
"parent"; the child export holds a marker that says "child". What a client reads at
/top/sub/marker (the project's NFSv4 client: LOOKUP + READ, which work during a grace period
too) tells which of the two Ganesha mounted there. On the code before the pseudo tree ordered
changes, the child at the lower Export_Id was mounted first and then hidden by its parent
("parent" read at /top/sub), and with the parent at the lower id the stop failed with
"Cannot remove export with submounts".
"""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import ROOT, GaneshaLab
from ganesha_ha.lab.nfs.client import Nfs4Client
from ganesha_ha.lab.nfs.nfs4 import NfsError

AGENT = str(ROOT / "ra" / "exports")


def read(lab: GaneshaLab, path: str) -> str:
    """The file at pseudo path `path`, through an NFSv4 client of `lab`'s Ganesha."""
    with Nfs4Client("127.0.0.1", lab.port, timeout=5.0) as c:
        c.connect()
        return c.read(c.lookup(path), 0, 200).decode()


def lookup_fails(lab: GaneshaLab, path: str) -> bool:
    with Nfs4Client("127.0.0.1", lab.port, timeout=5.0) as c:
        c.connect()
        try:
            c.lookup(path)
        except NfsError:
            return True
        return False


def agent(action: str, lab: GaneshaLab, vol) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "nested",
           "OCF_RESKEY_server": "ganesha", "OCF_RESKEY_volume": str(vol), "OCF_RESKEY_config": str(lab.config)}
    return subprocess.run([AGENT, action], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def tree(ganesha, tmpfs_volume):
    vol = tmpfs_volume
    (vol / "top" / "sub").mkdir(parents=True)
    (vol / "top" / "sub" / "marker").write_text("parent\n")
    (vol / "top" / "own").write_text("top's own file\n")
    (vol / "child").mkdir()
    (vol / "child" / "marker").write_text("child\n")
    ganesha.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "5000-5099", check=True)
    return ganesha, vol


def add(lab, vol, directory, pseudo, export_id=None):
    extra = ["--export-id", str(export_id)] if export_id is not None else []
    out = lab.cli("export", "add", str(vol), directory, "--client", "127.0.0.1(rw)", "--pseudo", pseudo,
                  *extra, "--json", check=True).stdout
    return json.loads(out)


@pytest.mark.parametrize("ids", [(5001, 5000), (5000, 5001)], ids=["child-lower-id", "parent-lower-id"])
def test_nested_volume_starts_stops_and_fails_over_in_any_id_order(tree, tmp_path, ids):
    lab, vol = tree
    add(lab, vol, "top", "/top", ids[0])
    add(lab, vol, "child", "/top/sub", ids[1])
    assert agent("start", lab, vol).returncode == 0
    assert read(lab, "/top/sub/marker") == "child\n", "the child export, not the parent's sub directory"
    assert read(lab, "/top/own") == "top's own file\n"
    assert agent("monitor", lab, vol).returncode == 0
    stop = agent("stop", lab, vol)
    assert stop.returncode == 0, stop.stderr
    assert not set(lab.show_exports()) & set(ids)
    # fail over: another node (its own Ganesha, bus and runtime directory) starts the volume
    other = GaneshaLab(tmp_path / "node2").start()
    try:
        assert agent("start", other, vol).returncode == 0
        assert set(ids) <= set(other.show_exports())
        assert read(other, "/top/sub/marker") == "child\n" and read(other, "/top/own") == "top's own file\n"
        stop = agent("stop", other, vol)
        assert stop.returncode == 0, stop.stderr
        assert not set(other.show_exports()) & set(ids)
    finally:
        other.stop()


def test_removing_the_parent_keeps_the_child_served(tree):
    """Ganesha refuses to remove an export with submounts: the child is withdrawn, the parent
    removed, the child applied again with the same Export_Id, in Ganesha's pseudo directories."""
    lab, vol = tree
    lab.cli("volume", "start", str(vol), check=True)
    add(lab, vol, "top", "/top")
    child = add(lab, vol, "child", "/top/sub")
    out = lab.cli("export", "remove", str(vol), "top", check=True).stdout
    assert "1 export(s) below it in the pseudo tree withdrawn and applied again" in out and str(vol / "child") in out
    assert lab.show_exports()[child["export_id"]] == str(vol / "child")
    assert read(lab, "/top/sub/marker") == "child\n"
    assert lookup_fails(lab, "/top/own"), "the parent is gone"


def test_a_parent_added_after_its_child_does_not_hide_it(tree):
    lab, vol = tree
    lab.cli("volume", "start", str(vol), check=True)
    add(lab, vol, "child", "/top/sub")
    assert read(lab, "/top/sub/marker") == "child\n"
    add(lab, vol, "top", "/top")
    assert read(lab, "/top/sub/marker") == "child\n" and read(lab, "/top/own") == "top's own file\n"
    # moved out from under the parent, and back
    lab.cli("export", "update", str(vol), "child", "--pseudo", "/elsewhere", check=True)
    assert read(lab, "/elsewhere/marker") == "child\n" and read(lab, "/top/sub/marker") == "parent\n"
    lab.cli("export", "update", str(vol), "child", "--pseudo", "/top/sub", check=True)
    assert read(lab, "/top/sub/marker") == "child\n"
    # the parent moves away: the child stays at its pseudo path
    lab.cli("export", "update", str(vol), "top", "--pseudo", "/moved", check=True)
    assert read(lab, "/top/sub/marker") == "child\n" and read(lab, "/moved/own") == "top's own file\n"
    lab.cli("volume", "stop", str(vol), check=True)
    assert not {e for e in lab.show_exports() if 5000 <= e <= 5099}


def test_a_child_without_its_directory_in_the_parent_is_refused_before_ganesha(tree):
    """Ganesha would refuse it ("1 validation errors in block EXPORT"; its log: "LOOKUP sub
    failed ... can't create directory on non-PSEUDO FSAL"); ganesha-ha says why, exit 2."""
    lab, vol = tree
    lab.cli("volume", "start", str(vol), check=True)
    add(lab, vol, "top", "/top")
    registry = (vol / ".ganesha-ha" / "registry.json").read_bytes()
    proc = lab.cli("export", "add", str(vol), "child", "--client", "127.0.0.1", "--pseudo", "/top/nothere")
    assert proc.returncode == 2 and f"{vol / 'top' / 'nothere'}, which is not a directory" in proc.stderr, proc.stderr
    assert (vol / ".ganesha-ha" / "registry.json").read_bytes() == registry
    (vol / "top" / "nothere").mkdir()
    add(lab, vol, "child", "/top/nothere")
    assert read(lab, "/top/nothere/marker") == "child\n"


def test_a_repair_brings_a_lost_parent_back_above_its_live_child(tree):
    """The parent withdrawn behind our back (only possible once its child is gone: Ganesha
    refuses otherwise), the child added back standalone: the monitor's repair remounts the
    child under the parent, so clients see the child again, not the parent's directory."""
    lab, vol = tree
    lab.cli("volume", "start", str(vol), check=True)
    top = add(lab, vol, "top", "/top")
    child = add(lab, vol, "child", "/top/sub")
    lab.remove_export(child["export_id"])
    lab.remove_export(top["export_id"])
    lab.cli("volume", "monitor", str(vol), check=True)     # both missing: applied parent first
    assert read(lab, "/top/sub/marker") == "child\n"
    lab.remove_export(child["export_id"])
    lab.remove_export(top["export_id"])
    block = next((lab.workdir / "run" / "ganesha").glob(f"*/export-{child['export_id']}.conf"))
    lab.export_mgr("AddExport", str(block), f"EXPORT(Export_Id={child['export_id']})")  # the child alone
    assert read(lab, "/top/sub/marker") == "child\n"
    out = json.loads(lab.cli("volume", "monitor", str(vol), "--json", check=True).stdout)
    assert out["repaired"] == 1
    assert read(lab, "/top/sub/marker") == "child\n", "the parent came back above the child, not over it"
    assert read(lab, "/top/own") == "top's own file\n"


# ---- issue 13, item 4: pseudo paths across volumes ---------------------------------------------------

@pytest.fixture
def two_volumes(ganesha, tmp_path):
    from conftest import tmpfs

    with tmpfs(tmp_path / "v1", source="gha-test-v1") as v1, tmpfs(tmp_path / "v2", source="gha-test-v2") as v2:
        for vol, rng in ((v1, "5100-5199"), (v2, "5200-5299")):
            for d in ("d", "e"):
                (vol / d).mkdir()
                (vol / d / "marker").write_text(f"{vol.name}/{d}\n")
            ganesha.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", rng, check=True)
        yield ganesha, v1, v2


@pytest.mark.parametrize("theirs, ours, how", [
    ("/shared", "/shared", "is already served by this node for the volume"),
    ("/shared", "/shared/d", "lies below /shared"),
    ("/shared/d", "/shared", "lies above /shared/d")])
def test_a_pseudo_path_of_another_volume_is_refused_before_ganesha(two_volumes, theirs, ours, how):
    lab, v1, v2 = two_volumes
    add(lab, v1, "d", theirs)
    add(lab, v2, "d", ours)
    assert agent("start", lab, v1).returncode == 0
    registry = (v2 / ".ganesha-ha" / "registry.json").read_bytes()
    res = agent("start", lab, v2)
    assert res.returncode == 4, res.stderr   # OCF_ERR_PERM: nothing of it can be served here, banned from this node
    reason = [l for l in res.stderr.splitlines() if l.startswith("ocf-exit-reason:")]
    assert len(reason) == 1 and f"d (Export_Id 5200): pseudo path {ours} {how}" in reason[0] and str(v1) in reason[0]
    assert (v2 / ".ganesha-ha" / "registry.json").read_bytes() == registry
    assert not {i for i in lab.show_exports() if 5200 <= i <= 5299}, "nothing of the second volume went live"
    assert read(lab, f"{theirs}/marker") == "v1/d\n", "the first volume serves on"
    # the CLI's start says the same, exit 5
    cli = lab.cli("volume", "start", str(v2))
    assert cli.returncode == 5 and ours in cli.stderr and str(v1) in cli.stderr
    # the first volume active: adding or moving one of its own exports onto the second's path is
    # refused too; apart, it goes live
    assert agent("stop", lab, v1).returncode == 0
    assert agent("start", lab, v2).returncode == 0
    assert agent("start", lab, v1).returncode == 4
    lab.cli("export", "update", str(v1), "d", "--pseudo", "/apart", "--record-only", check=True)
    assert agent("start", lab, v1).returncode == 0
    upd = lab.cli("export", "update", str(v1), "d", "--pseudo", ours)
    assert upd.returncode == 5 and str(v2) in upd.stderr
    added = lab.cli("export", "add", str(v1), "e", "--client", "127.0.0.1", "--pseudo", ours)
    assert added.returncode == 5 and str(v2) in added.stderr
    assert read(lab, "/apart/marker") == "v1/d\n" and read(lab, f"{ours}/marker") == "v2/d\n"
    for vol in (v1, v2):
        assert agent("stop", lab, vol).returncode == 0


def test_one_export_meeting_another_volume_s_pseudo_path_is_left_out_the_others_serve(two_volumes):
    """Blast radius (tryout finding A): the second volume's `d` lies below the first volume's
    /shared. Recorded while the volume is not active here: a warning says what a start here
    will do. The start serves `e`, names `d` (agent 0 with a warning, the CLI's exit 5 for the
    export it could not serve), the monitor answers OCF_DEGRADED naming `d` once, the first
    volume's /shared serves on; once the first volume stops, the monitor serves `d` too."""
    lab, v1, v2 = two_volumes
    add(lab, v1, "d", "/shared")
    assert agent("start", lab, v1).returncode == 0
    res = lab.cli("export", "add", str(v2), "d", "--client", "127.0.0.1(rw)", "--pseudo", "/shared/inner")
    assert res.returncode == 0 and "recorded" in res.stdout, res.stderr
    assert "WARNING: d (Export_Id 5200): pseudo path /shared/inner lies below /shared, served by this node for " \
           f"the volume {v1}" in res.stderr and f"a start of {v2} on this node would leave this export out" in res.stderr
    res = lab.cli("export", "add", str(v2), "e", "--client", "127.0.0.1(rw)", "--pseudo", "/other")
    assert res.returncode == 0 and "WARNING" not in res.stderr, res.stderr
    started = agent("start", lab, v2)
    assert started.returncode == 0, started.stderr
    assert "1 of 2 exports could not go live" in started.stderr and "/shared/inner" in started.stderr
    assert read(lab, "/other/marker") == "v2/e\n" and read(lab, "/shared/marker") == "v1/d\n"
    assert not lookup_fails(lab, "/shared") and lookup_fails(lab, "/shared/inner")
    mon = agent("monitor", lab, v2)
    assert mon.returncode == 190, mon.stderr    # OCF_DEGRADED: shown, nothing recovered
    [reason] = [l for l in mon.stderr.splitlines() if l.startswith("ocf-exit-reason:")]
    assert "not live: d (Export_Id 5200): pseudo path /shared/inner lies below /shared" in reason, reason
    assert f"{v2}/d" not in reason, "the export is named once (Pacemaker keeps 128 characters)"
    assert agent("monitor", lab, v1).returncode == 0
    # the CLI's start of an active volume: the same, exit 5 for the one export
    cli = lab.cli("volume", "start", str(v2))
    assert cli.returncode == 5 and "not live: d (Export_Id" in cli.stderr and "/shared/inner" in cli.stderr
    # the first volume goes: the next monitor serves the export it had kept out
    assert agent("stop", lab, v1).returncode == 0
    assert agent("monitor", lab, v2).returncode == 0
    assert read(lab, "/shared/inner/marker") == "v2/d\n" and read(lab, "/other/marker") == "v2/e\n"
    assert agent("stop", lab, v2).returncode == 0
