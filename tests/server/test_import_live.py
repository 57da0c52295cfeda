"""`import ... --apply --skip-conflicts` into a volume already active on this node, against the
real servers (tryout5 M): each imported export goes live on its own, as a start applies them;
one the live server refuses is not imported (not in the registry, not served), named on one
line with the server's reason, and the others are imported and live; the exit code is the
first refusal's. Without --skip-conflicts the import stays one transaction: the same refusal
rolls all of it back.

Ganesha: ganesha.nfsd on a private bus (conftest.GaneshaLab), its plugin directory without
libfsalnull.so; refused live: an export whose only client does not resolve here (Ganesha would
grant it to nobody: the read-back refuses it, exit 7) and one stacked on FSAL NULL (its module
missing on this node: exit 6). The dry run refuses neither: neither is a fault of the source.

knfsd: the real exportfs in a private mount namespace (knfsd_ns), which refuses a client it
cannot resolve (no DNS here); etab read back.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import IS_ROOT, GaneshaLab

pytestmark = [pytest.mark.skipif(not IS_ROOT or shutil.which("ganesha.nfsd") is None,
                                 reason="needs root and ganesha.nfsd")]

PLUGINS = "/usr/lib/x86_64-linux-gnu/ganesha"

CONF = """
EXPORT {{
    Export_Id = 11; Path = "{vol}/a"; Pseudo = /imp/a;
    FSAL {{ Name = VFS; }}
    CLIENT {{ Clients = 127.0.0.1; Access_Type = RW; }}
}}
EXPORT {{
    Export_Id = 12; Path = "{vol}/b"; Pseudo = /imp/b;
    FSAL {{ Name = VFS; }}
    CLIENT {{ Clients = nosuch-host.invalid; Access_Type = RW; }}
}}
EXPORT {{
    Export_Id = 13; Path = "{vol}/c"; Pseudo = /imp/c;
    FSAL {{ Name = NULL; FSAL {{ Name = VFS; }} }}
    CLIENT {{ Clients = 127.0.0.1; Access_Type = RW; }}
}}
EXPORT {{
    Export_Id = 14; Path = "{vol}/d"; Pseudo = /imp/d;
    FSAL {{ Name = VFS; }}
    CLIENT {{ Clients = 127.0.0.1; Access_Type = RO; }}
}}
"""


def registered(vol) -> list[str]:
    doc = json.loads((vol / ".ganesha-ha" / "registry.json").read_text())
    return sorted(e["path"] for e in doc["exports"])


@pytest.fixture
def lab(tmp_path):
    if not os.path.exists(f"{PLUGINS}/libfsalvfs.so"):
        pytest.skip("FSAL VFS is not installed")
    lab = GaneshaLab(tmp_path / "glab")
    plugins = tmp_path / "plugins"     # this node's Ganesha has no FSAL NULL
    plugins.mkdir()
    (plugins / "libfsalvfs.so").symlink_to(f"{PLUGINS}/libfsalvfs.so")
    lab.config.write_text(lab.config.read_text().replace("[ganesha]\n", f"[ganesha]\nplugins_dir = {plugins}\n"))
    lab.start()
    yield lab
    lab.stop()


def test_an_import_into_an_active_volume_leaves_out_only_what_the_live_server_refuses(lab, tmp_path,
                                                                                        tmpfs_volume):
    vol = tmpfs_volume
    for name in "abcd":
        (vol / name).mkdir()
    conf = tmp_path / "imp.conf"
    conf.write_text(CONF.format(vol=vol))
    lab.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "10-19", check=True)
    lab.cli("volume", "start", str(vol), check=True)          # active here, no exports yet

    dry = lab.cli("import", "ganesha", str(vol), "--file", str(conf))
    assert dry.returncode == 0 and "4 to add, 0 to update, 0 to remove, 0 unchanged, 0 refused" in dry.stdout, \
        dry.stdout + dry.stderr
    # ...but it says which an --apply here will find refused live
    assert [line.split(": ")[2] for line in dry.stderr.splitlines()] == ["b (Export_Id 12)", "c (Export_Id 13)"], \
        dry.stderr
    assert ("b (Export_Id 12): no client of it resolves on this node (nosuch-host.invalid): the server would grant "
            "it to nobody here; an --apply here is refused live (with --skip-conflicts: this export is not "
            "imported)") in dry.stderr
    assert "c (Export_Id 13): FSAL NULL is not installed here" in dry.stderr

    # one transaction without --skip-conflicts: the first refusal (the module missing, found
    # before anything is written) keeps the whole import out
    whole = lab.cli("import", "ganesha", str(vol), "--file", str(conf), "--apply")
    assert whole.returncode == 6 and "FSAL NULL is not installed here" in whole.stderr, whole.stderr
    assert registered(vol) == [] and not {11, 12, 13, 14} & set(lab.show_exports())

    got = lab.cli("import", "ganesha", str(vol), "--file", str(conf), "--apply", "--skip-conflicts")
    assert got.returncode == 7, got.stdout + got.stderr        # the first refusal's: Export_Id 12's
    refused = [line for line in got.stdout.splitlines() if line.startswith("! ")]
    assert refused == [
        "! b (EXPORT Export_Id=12): not imported, the live server refused it: Export_Id 12 (/imp/b): no client of "
        "it resolves on this node (nosuch-host.invalid): Ganesha would grant it to nobody here",
        "! c (EXPORT Export_Id=13): not imported, the live server refused it: FSAL NULL is not installed here "
        f"(Debian package nfs-ganesha-nullfs): {tmp_path}/plugins/libfsalnull.so is missing",
    ], got.stdout
    assert [line.split(":")[0] for line in got.stdout.splitlines() if line[:2] in ("+ ", "~ ", "- ")] == \
        [f"+ {vol}/a", f"+ {vol}/d"]
    assert "2 to add, 0 to update, 0 to remove, 0 unchanged, 2 refused; applied live" in got.stdout, got.stdout
    assert (f"note: remove the EXPORT blocks of Export_Id 11, 14 from {conf} on every node (or RemoveExport them) "
            "now (the volume is active on this node):") in got.stdout, got.stdout   # not "before its first start"
    assert "ganesha-ha: error: 2 export(s) refused; the others were changed" in got.stderr, got.stderr
    # the registry holds what went live, and Ganesha serves it: read back over D-Bus
    assert registered(vol) == ["a", "d"]
    served = lab.show_exports()
    assert {i: served.get(i) for i in (11, 12, 13, 14)} == {11: f"{vol}/a", 12: None, 13: None, 14: f"{vol}/d"}
    shown = {e["export_id"]: e for e in json.loads(lab.cli("export", "list", str(vol), "--json",
                                                                   check=True).stdout)}
    assert sorted(shown) == [11, 14] and all(e["live"] for e in shown.values())
    status = lab.cli("volume", "status", str(vol))
    assert status.returncode == 0 and "not served" not in status.stdout + status.stderr, status.stdout + status.stderr

    # JSON says which refusals were the live server's
    again = lab.cli("import", "ganesha", str(vol), "--file", str(conf), "--apply", "--skip-conflicts", "--json")
    doc = json.loads(again.stdout)
    assert again.returncode == 7 and doc["unchanged"] == 2 and not doc["changes"]
    assert [(r["where"].split()[0], r["exit_code"], r["live"]) for r in doc["refused"]] == [("b", 7, True),
                                                                                             ("c", 6, True)]
    lab.cli("volume", "stop", str(vol), check=True)
    assert not {11, 14} & set(lab.show_exports())


def test_knfsd_an_import_into_an_active_volume_leaves_out_the_line_exportfs_refuses(tmp_path):
    from knfsd_ns import etab_lines, mount_tmpfs, private_nfs_state, skip_reason

    if not IS_ROOT or skip_reason() is not None:
        pytest.skip(str(skip_reason() or "needs root"))
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")

    def gha(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(config), *args], input=stdin,
                              capture_output=True, text=True, timeout=120)

    mp = tmp_path / "vol"
    with private_nfs_state(tmp_path / "ns") as state:
        mount_tmpfs(mp)
        for d in "abc":
            (mp / d).mkdir()
        assert gha("volume", "init", str(mp), "--server", "knfsd").returncode == 0
        assert gha("volume", "start", str(mp)).returncode == 0
        source = (f"{mp}/a 127.0.0.1(rw,fsid=101)\n{mp}/b nohost.invalid(rw,fsid=102)\n"
                  f"{mp}/c 127.0.0.1(ro,fsid=103)\n")
        dry = gha("import", "exports", str(mp), "--file", "-", stdin=source)
        assert dry.returncode == 0 and "3 to add" in dry.stdout and "0 refused" in dry.stdout, dry.stdout
        assert dry.stderr == ("ganesha-ha: WARNING: b: no client of it resolves on this node (nohost.invalid): the "
                              "server would grant it to nobody here; an --apply here is refused live (with "
                              "--skip-conflicts: this export is not imported)\n"), dry.stderr
        whole = gha("import", "exports", str(mp), "--file", "-", "--apply", stdin=source)
        assert whole.returncode == 7 and "registry rolled back" in whole.stderr, whole.stderr
        assert gha("export", "list", str(mp), "--json").stdout.strip() == "[]"
        assert not [line for line in etab_lines(state) if line.startswith(f"{mp}/")]

        got = gha("import", "exports", str(mp), "--file", "-", "--apply", "--skip-conflicts", stdin=source)
        assert got.returncode == 7, got.stdout + got.stderr
        [refused] = [line for line in got.stdout.splitlines() if line.startswith("! ")]
        assert refused.startswith("! b (stdin line 2): not imported, the live server refused it: exportfs"), refused
        assert "nohost.invalid" in refused and "3 to add" not in got.stdout
        assert "2 to add, 0 to update, 0 to remove, 0 unchanged, 1 refused; applied live" in got.stdout, got.stdout
        assert "(stdin lines 1, 3)" in got.stdout, got.stdout      # only the lines taken must leave the file
        listed = json.loads(gha("export", "list", str(mp), "--json").stdout)
        assert [(e["path"], e["fsid"], e["live"]) for e in listed] == [("a", "101", True), ("c", "103", True)]
        lines = sorted(line.split("\t")[0].split("(")[0] for line in etab_lines(state) if line.startswith(f"{mp}/"))
        assert lines == [f"{mp}/a", f"{mp}/c"], etab_lines(state)
        assert gha("volume", "stop", str(mp)).returncode == 0
        assert not [line for line in etab_lines(state) if line.startswith(f"{mp}/")]
