"""Issue 13, item 5 against the real servers: identity cannot drift.

Ganesha: a client holds a file handle of an export; `export update --export-id` without
--force is refused and the handle keeps working; with --force the new id is live and the
old handle is stale on the server (what the refusal warns of). Removed exports' ids are
retired; ranges are checked against the volumes mounted here and what Ganesha serves.
knfsd: the same for the fsid, read back from etab.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GaneshaLab, tmpfs
from ganesha_ha import linux
from ganesha_ha.lab.nfs.client import Nfs4Client
from ganesha_ha.lab.nfs.nfs4 import NfsError

from knfsd_ns import etab_lines, mount_tmpfs, private_nfs_state, skip_reason


def registry(vol: Path) -> bytes:
    return (vol / ".ganesha-ha" / "registry.json").read_bytes()


def one_line(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


@pytest.fixture
def vol(ganesha, tmpfs_volume):
    for d in ("a", "b", "c"):
        (tmpfs_volume / d).mkdir()
        (tmpfs_volume / d / "f").write_text(f"{d}\n")
    ganesha.cli("volume", "init", str(tmpfs_volume), "--server", "ganesha", "--id-range", "6000-6009", check=True)
    ganesha.cli("volume", "start", str(tmpfs_volume), check=True)
    return tmpfs_volume


def status(lab: GaneshaLab, vol: Path) -> dict:
    return json.loads(lab.cli("volume", "status", str(vol), "--json", check=True).stdout)


def test_an_export_id_change_needs_force_and_then_old_handles_are_stale(ganesha, vol):
    ganesha.cli("export", "add", str(vol), "a", "--client", "127.0.0.1(rw)", "--pseudo", "/a", check=True)
    with Nfs4Client("127.0.0.1", ganesha.port, timeout=5.0) as c:
        c.connect()
        fh = c.lookup("/a/f")
        before = registry(vol)
        proc = ganesha.cli("export", "update", str(vol), "a", "--export-id", "6005")
        one_line(proc, 2, "changing the Export_Id", "from 6000 to 6005", "stale file handles (ESTALE)", "--force")
        assert registry(vol) == before and 6000 in ganesha.show_exports() and 6005 not in ganesha.show_exports()
        assert c.read(fh, 0, 10) == b"a\n", "the client's handle still works"
        out = ganesha.cli("export", "update", str(vol), "a", "--export-id", "6005", "--force", check=True)
        assert "Export_Id 6005" in out.stdout
        live = ganesha.show_exports()
        assert live[6005] == str(vol / "a") and 6000 not in live
        with pytest.raises(NfsError) as err:
            c.read(fh, 0, 10)
        assert err.value.name in ("NFS4ERR_STALE", "NFS4ERR_FHEXPIRED", "NFS4ERR_BADHANDLE"), err.value.name
    # the old id is retired: not handed out again, refused when asked for
    assert status(ganesha, vol)["retired"]["export_ids"] == [[6000, 6000]]
    added = json.loads(ganesha.cli("export", "add", str(vol), "b", "--client", "127.0.0.1", "--json",
                                   check=True).stdout)
    assert added["export_id"] == 6001


def test_a_knfsd_fsid_on_a_ganesha_volume_is_kept_said_and_stales_nothing(ganesha, vol):
    """Tryout finding B: Ganesha's file handles carry the Export_Id, not knfsd's fsid. `export
    add --fsid` warns that it is kept for a move only; the add/update lines name the Export_Id,
    pseudo path and FSAL (no fsid); `update --fsid` needs no --force, speaks of no ESTALE, and a
    client's handle taken before it still reads; `export show` marks the fsid unused."""
    added = ganesha.cli("export", "add", str(vol), "a", "--client", "127.0.0.1(rw)", "--pseudo", "/a",
                        "--fsid", "42", check=True)
    assert added.stdout == f"added {vol}/a (Export_Id 6000, pseudo /a, FSAL VFS): live\n", added.stdout
    assert added.stderr.count("\n") == 1 and "WARNING: fsid 42 of " in added.stderr
    assert "the fsid is knfsd's identity, which ganesha (this volume's server, chosen at volume init) does not " \
           "use: kept in the registry only, for a move of the exports to a knfsd volume" in added.stderr
    with Nfs4Client("127.0.0.1", ganesha.port, timeout=5.0) as c:
        c.connect()
        fh = c.lookup("/a/f")
        upd = ganesha.cli("export", "update", str(vol), "a", "--fsid", "43")
        assert upd.returncode == 0 and "ESTALE" not in upd.stderr and "changed from 42 to 43" in upd.stderr, upd.stderr
        assert upd.stdout == f"updated {vol}/a (Export_Id 6000, pseudo /a, FSAL VFS): live\n", upd.stdout
        assert c.read(fh, 0, 10) == b"a\n", "the client's handle still works: Ganesha's does not carry the fsid"
    shown = ganesha.cli("export", "show", str(vol), "a", check=True).stdout
    assert "fsid:        43 (not used by ganesha: kept for a move of the exports)" in shown, shown
    assert "export_id:   6000\n" in shown, shown
    assert json.loads(ganesha.cli("export", "show", str(vol), "a", "--json", check=True).stdout)["fsid"] == "43"


def test_ids_outside_the_range_and_retired_ids_are_refused(ganesha, vol):
    before = registry(vol)
    proc = ganesha.cli("export", "add", str(vol), "a", "--client", "127.0.0.1", "--export-id", "7000")
    one_line(proc, 2, "7000 is outside this volume's range 6000-6009", "volume set-range")
    assert registry(vol) == before and 7000 not in ganesha.show_exports()
    ganesha.cli("export", "add", str(vol), "a", "--client", "127.0.0.1", "--pseudo", "/a", check=True)   # 6000
    ganesha.cli("export", "remove", str(vol), "a", check=True)
    added = json.loads(ganesha.cli("export", "add", str(vol), "b", "--client", "127.0.0.1", "--json",
                                   check=True).stdout)
    assert added["export_id"] == 6001, "the removed export's 6000 is not handed out again"
    before = registry(vol)
    proc = ganesha.cli("export", "add", str(vol), "c", "--client", "127.0.0.1", "--export-id", "6000")
    one_line(proc, 5, "Export_Id 6000 belonged to a removed export", "--force")
    assert registry(vol) == before and 6000 not in ganesha.show_exports()
    # the directory coming back on purpose, with its old identity: its clients' handles work again
    ganesha.cli("export", "add", str(vol), "a", "--client", "127.0.0.1", "--pseudo", "/a", "--export-id", "6000",
                "--force", check=True)
    assert ganesha.show_exports()[6000] == str(vol / "a")
    with Nfs4Client("127.0.0.1", ganesha.port, timeout=5.0) as c:
        c.connect()
        assert c.read(c.lookup("/a/f"), 0, 10) == b"a\n"


def test_status_counts_the_ids_left_and_set_range_moves_the_range(ganesha, vol):
    for d in ("a", "b"):
        ganesha.cli("export", "add", str(vol), d, "--client", "127.0.0.1", check=True)     # 6000, 6001
    ganesha.cli("export", "remove", str(vol), "a", check=True)                             # 6000 retired
    assert status(ganesha, vol)["ids_left"] == 8
    text = ganesha.cli("volume", "status", str(vol), check=True).stdout
    assert "Export_Ids 6000-6009: 8 left (1 retired)" in text
    before = registry(vol)
    proc = ganesha.cli("volume", "set-range", str(vol), "6002-6100")
    one_line(proc, 5, "leaves out 1 export(s)", f"{vol / 'b'} (6001)")
    assert registry(vol) == before
    out = json.loads(ganesha.cli("volume", "set-range", str(vol), "6001-6100", "--json", check=True).stdout)
    assert out == {"mountpoint": str(vol), "export_id_range": [6001, 6100], "previous_range": [6000, 6009],
                   "ids_left": 99}
    doc = json.loads(registry(vol))
    assert doc["retired"]["export_ids"] == [[6000, 6000]], "retired ids stay retired outside the range too"
    assert ganesha.show_exports()[6001] == str(vol / "b"), "the live export untouched"
    # the volume's range must not take ids served for something else: a directory outside the volume, or
    # one the registry has under another id (one served for another directory of it is an import's: test_import_ganesha)
    block = vol.parent / "hand.conf"
    for where in (vol.parent, vol / "b"):
        block.write_text(f'EXPORT {{ Export_Id = 6200; Path = "{where}"; Pseudo = "/hand"; Protocols = 4; '
                         'FSAL { Name = VFS; } CLIENT { Clients = 127.0.0.1; Access_Type = RO; } }\n')
        ganesha.export_mgr("AddExport", str(block), "EXPORT(Export_Id=6200)")
        one_line(ganesha.cli("volume", "set-range", str(vol), "6001-6300"), 5,
                 "holds 6200, served now by this node's ganesha")
        ganesha.remove_export(6200)


def test_init_refuses_a_range_of_a_volume_mounted_here_or_served_here(ganesha, vol, tmp_path):
    with tmpfs(tmp_path / "second", source="gha-test-second") as second:
        proc = ganesha.cli("volume", "init", str(second), "--server", "ganesha", "--id-range", "6005-6500")
        one_line(proc, 5, "range 6005-6500 overlaps 6000-6009", f"the volume {vol} mounted on this node")
        assert not (second / ".ganesha-ha" / "registry.json").exists()
        (tmp_path / "x").mkdir()             # outside the volume: not an export an import would take over
        block = tmp_path / "hand.conf"
        block.write_text(f'EXPORT {{ Export_Id = 6600; Path = "{tmp_path / "x"}"; Pseudo = "/hand"; Protocols = 4; '
                         'FSAL { Name = VFS; } CLIENT { Clients = 127.0.0.1; Access_Type = RO; } }\n')
        ganesha.export_mgr("AddExport", str(block), "EXPORT(Export_Id=6600)")
        proc = ganesha.cli("volume", "init", str(second), "--server", "ganesha", "--id-range", "6500-6699")
        one_line(proc, 5, "holds 6600, served now by this node's ganesha")
        ganesha.remove_export(6600)
        ganesha.cli("volume", "init", str(second), "--server", "ganesha", "--id-range", "6010-6699", check=True)
        # a random range avoids the first volume's (a block of 1000 from 1000 on: never 6000-6009's)
        with tmpfs(tmp_path / "third", source="gha-test-third") as third:
            out = json.loads(ganesha.cli("volume", "init", str(third), "--server", "ganesha", "--json",
                                         check=True).stdout)
            lo, hi = out["export_id_range"]
            assert hi < 6000 or lo > 6699


# ---- knfsd: the fsid ----------------------------------------------------------------------------------

def gha(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60)


def fsids(state: Path, directory: Path) -> set[str]:
    return {o[5:] for line in etab_lines(state) if line.split("\t")[0] == str(directory)
            for o in line.split("(", 1)[1].rstrip(")").split(",") if o.startswith("fsid=")}


@pytest.fixture
def knfsd(tmp_path):
    """(ganesha-ha config, /var/lib/nfs as the private namespace sees it) for the CLI on knfsd."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    with private_nfs_state(tmp_path / "ns") as state:
        yield config, state


def test_knfsd_fsid_change_needs_force_and_a_removed_fsid_is_retired(knfsd, tmp_path):
    config, state = knfsd
    mp = tmp_path / "vol"
    mount_tmpfs(mp)
    for d in ("a", "b"):
        (mp / d).mkdir()
    assert gha(config, "volume", "init", str(mp), "--server", "knfsd").returncode == 0
    assert gha(config, "volume", "start", str(mp)).returncode == 0
    assert gha(config, "export", "add", str(mp), "a", "--client", "127.0.0.1(rw)", "--fsid", "31").returncode == 0
    assert fsids(state, mp / "a") == {"31"}
    before = registry(mp)
    one_line(gha(config, "export", "update", str(mp), "a", "--fsid", "32"), 2,
             "knfsd's file handles carry the fsid", "changing the fsid", "from 31 to 32", "(ESTALE)", "--force")
    assert registry(mp) == before and fsids(state, mp / "a") == {"31"}
    assert gha(config, "export", "update", str(mp), "a", "--fsid", "32", "--force").returncode == 0
    assert fsids(state, mp / "a") == {"32"}
    # Ganesha's identity on a knfsd volume (tryout finding B): no --force, no ESTALE, a warning;
    # the lines name the fsid only
    new_id = json.loads(gha(config, "export", "show", str(mp), "a", "--json").stdout)["export_id"] + 5
    upd = gha(config, "export", "update", str(mp), "a", "--export-id", str(new_id))
    assert upd.returncode == 0 and "ESTALE" not in upd.stderr, upd.stderr
    assert "the Export_Id is ganesha's identity, which knfsd (this volume's server" in upd.stderr, upd.stderr
    assert upd.stdout == f"updated {mp}/a (fsid 32): live\n" and fsids(state, mp / "a") == {"32"}, upd.stdout
    one_line(gha(config, "export", "add", str(mp), "b", "--client", "127.0.0.1", "--fsid", "31"), 5,
             "fsid 31 belonged to a removed export")
    assert fsids(state, mp / "b") == set()
    assert gha(config, "export", "remove", str(mp), "a").returncode == 0
    one_line(gha(config, "export", "add", str(mp), "b", "--client", "127.0.0.1", "--fsid", "32"), 5,
             "fsid 32 belonged to a removed export")
    assert gha(config, "export", "add", str(mp), "b", "--client", "127.0.0.1").returncode == 0
    assert fsids(state, mp / "b") and not fsids(state, mp / "b") & {"31", "32"}
    assert gha(config, "volume", "stop", str(mp)).returncode == 0
    linux.umount(str(mp), lazy=True)


def test_knfsd_has_no_pseudo_tree_nested_directories_and_shared_pseudo_paths_just_work(knfsd, tmp_path):
    """Items 3 and 4 on knfsd: it serves NFSv4 at the directories' own paths, so pseudo paths
    order nothing and collide with nothing. Two volumes with the same pseudo paths both start;
    removing a parent directory's export leaves its child's etab line as it was (no remount)."""
    config, state = knfsd
    vols = [tmp_path / "v1", tmp_path / "v2"]
    for n, mp in enumerate(vols):
        mount_tmpfs(mp)
        (mp / "top" / "sub").mkdir(parents=True)
        assert gha(config, "volume", "init", str(mp), "--server", "knfsd",
                   "--id-range", f"{7000 + 100 * n}-{7099 + 100 * n}").returncode == 0
        for d, pseudo in (("top/sub", "/top/sub"), ("top", "/top")):
            assert gha(config, "export", "add", str(mp), d, "--client", "127.0.0.1(rw)",
                       "--pseudo", pseudo).returncode == 0
        res = gha(config, "volume", "start", str(mp))
        assert res.returncode == 0, res.stderr
    lines = sorted(etab_lines(state))
    assert len(lines) == 4
    child = [l for l in lines if l.startswith(f"{vols[0]}/top/sub\t")]
    res = gha(config, "export", "remove", str(vols[0]), "top")
    assert res.returncode == 0 and "pseudo tree" not in res.stdout, res.stdout
    assert [l for l in etab_lines(state) if l.startswith(f"{vols[0]}/")] == child
    for mp in vols:
        assert gha(config, "volume", "stop", str(mp)).returncode == 0
        linux.umount(str(mp), lazy=True)
    assert etab_lines(state) == []
