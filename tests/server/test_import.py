"""`import`, `export apply` and `export dump` through the CLI against the real exportfs.

Each test runs exportfs in a private mount namespace with /var/lib/nfs bound to a temp dir
(knfsd_ns.private_nfs_state); the volumes are tmpfs mounts. What is proved:

- a CIB with 20 ocf:heartbeat:exportfs primitives (tests/exportfs_cib.py: two volumes,
  several clientspecs per directory, hand-typed fsids, IPv6 clients) imports into two
  registries whose volumes, started, write etab lines byte-identical to those the upstream
  agent wrote for the 20 primitives; the import is a dry run first and idempotent after;
- an exports(5) file with continuation lines, comments, quotes, `\\040` escapes and default
  options imports into a volume whose etab equals what `exportfs -ra` makes of the file;
- a 500-export volume dumps (json, exports, ganesha) and applies back with no change; a
  one-line edit of the dump is exactly one change, and applying it changes etab by exactly
  that line.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import needs_root
from exportfs_cib import PRIMITIVES, agent_params, cib_xml, directories
from knfsd_ns import REAL_EXPORTFS, etab_lines, mount_tmpfs, private_nfs_state, skip_reason

pytestmark = [needs_root, pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))]
UPSTREAM_RA = Path("/usr/lib/ocf/resource.d/heartbeat/exportfs")


def gha(config: Path, *args: str, check: bool = True, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(config), *args], input=stdin,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "gha.conf"
    path.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    return path


def volume_lines(state: Path, mountpoint: Path) -> list[str]:
    return sorted(line for line in etab_lines(state) if line.startswith(f"{mountpoint}/") or
                  line.startswith(f"{mountpoint}\t"))


@pytest.mark.skipif(not UPSTREAM_RA.exists(), reason="resource-agents' exportfs agent is not installed")
def test_cib_import_serves_byte_identical_etab_lines(tmp_path, config):
    mps = {v: tmp_path / v for v in PRIMITIVES}
    cib = tmp_path / "cib.xml"
    cib.write_text(cib_xml(mps))
    with private_nfs_state(tmp_path / "ns") as state:
        for volume, mp in mps.items():
            mount_tmpfs(mp)
            for d in directories(volume):
                (mp / d).mkdir()
        # what the cluster serves today: the upstream agent started once per primitive
        rsctmp = tmp_path / "rsctmp"
        rsctmp.mkdir()
        for volume, mp in mps.items():
            for pid, params in agent_params(volume, mp):
                env = {"PATH": os.environ["PATH"], "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": pid,
                       "HA_RSCTMP": str(rsctmp), **{f"OCF_RESKEY_{k}": v for k, v in params.items()}}
                r = subprocess.run([str(UPSTREAM_RA), "start"], env=env, capture_output=True, text=True, timeout=60)
                assert r.returncode == 0, (pid, r.stderr)
        theirs = {v: volume_lines(state, mp) for v, mp in mps.items()}
        assert [len(theirs[v]) for v in mps] == [11, 11]   # 10 primitives each, one with two directories
        subprocess.run([REAL_EXPORTFS, "-ua"], check=True)
        assert etab_lines(state) == []

        for volume, mp in mps.items():
            gha(config, "volume", "init", str(mp), "--server", "knfsd",
                "--id-range", "1000-1999" if volume == "vol1" else "2000-2999")
        # vol1 from the file, vol2 as an administrator would: cibadmin --query (CIB_file points it at the file)
        dry = gha(config, "import", "cib", str(mps["vol1"]), "--file", str(cib), "--json")
        plan = json.loads(dry.stdout)
        assert plan["dry_run"] and not plan["changed"] and not plan["refused"]
        assert sorted(c["directory"] for c in plan["changes"]) == [str(mps["vol1"] / d) for d in directories("vol1")]
        assert plan["outside"] == 10 and json.loads(gha(config, "export", "list", str(mps["vol1"]), "--json").stdout) == []
        text = gha(config, "import", "cib", str(mps["vol1"]), "--file", str(cib), "--apply").stdout
        assert "7 to add, 0 to update, 0 to remove, 0 unchanged, 0 refused, 10 outside" in text
        assert "pcs resource create vol1-exports ocf:ganesha-ha:exports server=knfsd" in text
        gha(config, "import", "cib", str(mps["vol2"]), "--apply", env={"CIB_file": str(cib)})
        again = gha(config, "import", "cib", str(mps["vol1"]), "--file", str(cib), "--apply").stdout
        assert "0 to add, 0 to update, 0 to remove, 7 unchanged, 0 refused" in again

        for mp in mps.values():
            gha(config, "volume", "start", str(mp))
        ours = {v: volume_lines(state, mp) for v, mp in mps.items()}
        assert ours == theirs
        listed = json.loads(gha(config, "export", "list", str(mps["vol1"]), "--json").stdout)
        assert {e["path"]: e["knfsd"]["fsid"] for e in listed} == {
            "a": "1001", "b": "0b5b7f4e-1b2c-4d3e-8f9a-0123456789ab", "c": "1010", "d": "1011",
            "e": "4000000005", "f": "1020", "g": "1030"}
        for mp in mps.values():
            gha(config, "volume", "stop", str(mp))


EXPORTS = r'''# /etc/exports as people write it
{mp}/a   10.0.0.0/8(rw,no_root_squash,fsid=11) \
      fd00::/64(ro,fsid=11)   # both clients of a
"{mp}/my dir" -rw,sync,fsid=12 *.example.com 192.0.2.9(ro) (all_squash)
{mp}/b\040c *(ro,fsid={uuid})
{mp}/h#x @ng(rw,insecure,fsid=14)
{other} *(rw,fsid=16)
{mp}/q -ro,async,fsid=15 10.1.0.0/16(rw)
'''


def test_exports_file_import_serves_what_exportfs_makes_of_it(tmp_path, config):
    mp = tmp_path / "vol"
    with private_nfs_state(tmp_path / "ns") as state:
        mount_tmpfs(mp)
        for d in ("a", "my dir", "b c", "h#x", "q"):
            (mp / d).mkdir()
        other = tmp_path / "elsewhere"
        other.mkdir()
        text = EXPORTS.format(mp=mp, uuid="6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f", other=other)
        (tmp_path / "ns" / "etc-exports").write_text(text)   # what /etc/exports is in the namespace
        r = subprocess.run([REAL_EXPORTFS, "-ra"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        theirs = volume_lines(state, mp)
        assert len(theirs) == 8
        subprocess.run([REAL_EXPORTFS, "-ua"], check=True)

        gha(config, "volume", "init", str(mp), "--server", "knfsd")
        out = gha(config, "import", "exports", str(mp), "--apply").stdout   # /etc/exports itself
        assert "5 to add" in out and "1 outside" in out
        gha(config, "volume", "start", str(mp))
        assert volume_lines(state, mp) == theirs
        gha(config, "volume", "stop", str(mp))


def test_an_exports_line_without_fsid_is_imported_with_a_warning_and_a_refusal_costs_only_its_directory(tmp_path, config):
    mp = tmp_path / "vol"
    with private_nfs_state(tmp_path / "ns"):
        mount_tmpfs(mp)
        (mp / "a").mkdir()
        (mp / "b").mkdir()
        gha(config, "volume", "init", str(mp), "--server", "knfsd")
        source = f"{mp}/a *(rw)\n{mp}/b *(rw,refer=/x@h,fsid=3)\n{mp}/gone *(rw)\n"
        r = gha(config, "import", "exports", str(mp), "--file", "-", "--apply", stdin=source, check=False)
        assert r.returncode == 2 and "nothing was changed" in r.stderr
        # tryout5: the fsid of a line without one is drawn when applied: a printed one was never used
        assert re.search(rf"^\+ {re.escape(str(mp))}/a: Export_Id [0-9]+, fsid a new one \(drawn when applied\), "
                         "pseudo", r.stdout, re.M), r.stdout
        # both refusals name the directory in the volume, the reader's (b) as the registry's (gone)
        assert "! b (stdin line 2): client option: unknown option 'refer'" in r.stdout
        assert "! gone (stdin line 3): directory:" in r.stdout
        # the note is for what is taken: not for 'gone', refused (it was given both)
        assert [ln.split(": no fsid")[0] for ln in r.stdout.splitlines() if "no fsid: knfsd derives" in ln] == [
            "note: a (stdin line 1)"]
        r = gha(config, "import", "exports", str(mp), "--file", "-", "--apply", "--skip-conflicts", stdin=source,
                check=False)
        # the rest is taken, and the exit code still says that something was left out
        assert r.returncode == 2 and "the others were changed" in r.stderr
        # tryout5: the lines taken must leave the file, or the next 'exportfs -r' serves them again
        assert ("note: remove the imported lines from the exports file(s) on every node before the volume's "
                "first start (stdin line 1): ") in r.stdout, r.stdout
        assert [e["path"] for e in json.loads(gha(config, "export", "list", str(mp), "--json").stdout)] == ["a"]
        # run again: 'a' is unchanged, its fsid pinned by the first run: no "must mount it again" for it
        r = gha(config, "import", "exports", str(mp), "--file", "-", stdin=f"{mp}/a *(rw)\n")
        assert "1 unchanged" in r.stdout and "no fsid" not in r.stdout, r.stdout


def test_an_import_of_ganesha_blocks_names_the_included_file_each_block_is_in(tmp_path, config):
    """tryout5 E: the note said "remove the EXPORT blocks of Export_Id 11, 13 from ganesha.conf"
    for a block that an %include'd file holds; an include inside an include is taken from the
    top file's directory, as Ganesha 4.3 does (measured)."""
    mp = tmp_path / "vol"
    etc = tmp_path / "etc"
    (etc / "sub").mkdir(parents=True)
    with private_nfs_state(tmp_path / "ns"):
        mount_tmpfs(mp)
        for d in ("a", "b", "c"):
            (mp / d).mkdir()
        gha(config, "volume", "init", str(mp), "--server", "ganesha", "--id-range", "10-99")
        block = "EXPORT {{ Export_Id = {i}; Path = {mp}/{d}; Pseudo = /{d}; Access_Type = RW; FSAL {{ Name = VFS; }} }}\n"
        (etc / "ganesha.conf").write_text('%include "sub/exports.conf"\n' + block.format(i=11, mp=mp, d="a"))
        (etc / "sub" / "exports.conf").write_text('%include "more.conf"\n' + block.format(i=12, mp=mp, d="b"))
        (etc / "more.conf").write_text(block.format(i=13, mp=mp, d="c"))
        (etc / "sub" / "more.conf").write_text("this file is not what Ganesha reads\n")
        r = gha(config, "import", "ganesha", str(mp), "--file", str(etc / "ganesha.conf"))
        assert "3 to add" in r.stdout, r.stdout
        assert (f"note: remove the EXPORT blocks of Export_Id 11 from {etc}/ganesha.conf; Export_Id 12 from "
                f"{etc}/sub/exports.conf; Export_Id 13 from {etc}/more.conf on every node") in r.stdout, r.stdout


def test_500_exports_dump_and_apply_back_with_no_change_and_one_edit_is_one_change(tmp_path, config):
    mp = tmp_path / "vol"
    n = 500
    with private_nfs_state(tmp_path / "ns") as state:
        mount_tmpfs(mp, size="128m")
        for i in range(n):
            (mp / f"d{i:03}").mkdir()
        gha(config, "volume", "init", str(mp), "--server", "knfsd", "--id-range", "3000-3999")
        gha(config, "volume", "start", str(mp))
        description = [{"directory": f"{mp}/d{i:03}", "clients": [f"10.{i // 250}.{i % 250}.0/24(rw)", "*(ro)"]}
                       for i in range(n)]
        r = gha(config, "export", "apply", str(mp), "-i", "-", "--json", stdin=json.dumps(description))
        applied = json.loads(r.stdout)
        assert applied["live"] and len(applied["changes"]) == n and {c["action"] for c in applied["changes"]} == {"add"}
        before = volume_lines(state, mp)
        assert len(before) == 2 * n

        for fmt in ("json", "exports", "ganesha"):
            dump = gha(config, "export", "dump", str(mp), "--format", fmt).stdout
            check = gha(config, "export", "apply", str(mp), "-i", "-", "--check", stdin=dump).stdout
            assert check.splitlines() == [f"0 to add, 0 to update, 0 to remove, {n} unchanged, 0 refused; "
                                          "dry run: nothing was changed"], (fmt, check[:500])

        dump = gha(config, "export", "dump", str(mp), "--format", "exports").stdout
        edited = dump.replace(f"{mp}/d123 10.0.123.0/24(rw,", f"{mp}/d123 10.0.123.0/24(ro,", 1)
        assert edited != dump
        check = gha(config, "export", "apply", str(mp), "-i", "-", "--check", stdin=edited).stdout.splitlines()
        assert check == [f"~ {mp}/d123: clients: 10.0.123.0/24(rw) *(ro) -> 10.0.123.0/24(ro) *(ro)",
                         f"0 to add, 1 to update, 0 to remove, {n - 1} unchanged, 0 refused; dry run: nothing was changed"]
        assert volume_lines(state, mp) == before
        gha(config, "export", "apply", str(mp), "-i", "-", stdin=edited)
        after = volume_lines(state, mp)
        changed = sorted(set(before) ^ set(after))
        assert len(changed) == 2 and all(line.startswith(f"{mp}/d123\t10.0.123.0/24(") for line in changed)

        # the whole list is the whole volume: an entry left out is removed, identity is kept
        listed = json.loads(gha(config, "export", "list", str(mp), "--json").stdout)
        keep = [e for e in listed if e["path"] != "d007"]
        r = gha(config, "export", "apply", str(mp), "-i", "-", stdin=json.dumps(keep)).stdout
        assert f"- {mp}/d007: Export_Id 3007" in r and len(volume_lines(state, mp)) == 2 * n - 2
        # knfsd's identity is the fsid: changing it is refused (the Export_Id is Ganesha's, kept for a move)
        moved = [dict(e, fsid="77777", knfsd={"fsid": "77777"}) if e["path"] == "d010" else e for e in keep]
        r = gha(config, "export", "apply", str(mp), "-i", "-", stdin=json.dumps(moved), check=False)
        assert r.returncode == 2 and "knfsd's file handles carry the fsid" in r.stdout \
            and "stale file handles" in r.stdout and "nothing was changed" in r.stderr, (r.stdout, r.stderr)
        gha(config, "volume", "stop", str(mp))
