"""`import ganesha` against the real ganesha.nfsd: the imported exports grant what the EXPORT
blocks granted, with the same Export_Ids and pseudo paths.

An administrator's ganesha.conf (EXPORT_DEFAULTS, CLIENT blocks that inherit from the EXPORT
block and from EXPORT_DEFAULTS, an EXPORT-level Access_Type that grants every other host,
All_Squash with anonymous ids) is served by one ganesha.nfsd; a client writes as root through
each export and the outcome is recorded (written or refused, and the owner the file got).
Then a fresh ganesha.nfsd without those blocks serves the volume that `import ganesha`
filled: the same writes must have the same outcomes, at the same Export_Id and pseudo path.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import IS_ROOT, GaneshaLab
from ganesha_ha.lab.nfs.client import Nfs4Client
from ganesha_ha.lab.nfs.nfs4 import NfsError

pytestmark = [pytest.mark.skipif(not IS_ROOT or shutil.which("ganesha.nfsd") is None,
                                 reason="needs root and ganesha.nfsd")]

CONF = """
EXPORT_DEFAULTS {{ Squash = No_Root_Squash; }}
EXPORT {{
    Export_Id = 11; Path = "{vol}/a"; Pseudo = /imp/a;
    FSAL {{ Name = VFS; }}
    CLIENT {{ Clients = 127.0.0.1; Access_Type = RW; }}              # squash from EXPORT_DEFAULTS
}}
EXPORT {{
    Export_Id = 12; Path = "{vol}/b"; Pseudo = /imp/b; Squash = Root_Squash;
    FSAL {{ Name = VFS; }}
    CLIENT {{ Clients = 127.0.0.0/8; Access_Type = RO; }}
}}
EXPORT {{
    Export_Id = 13; Path = "{vol}/c"; Pseudo = /imp/c;
    Access_Type = RW; Squash = All_Squash; Anonymous_Uid = 1234; Anonymous_Gid = 1235;
    FSAL {{ Name = VFS; }}
    CLIENT {{ Clients = 10.0.0.0/8; Access_Type = RO; }}            # 127.0.0.1: the EXPORT's own grant
}}
"""


def block_lines(config) -> dict[int, str]:
    """Export_Id -> "FILE line N" of the `EXPORT {` line of each block of CONF in `config`."""
    lines = config.read_text().split("\n")
    return {i: f"{config} line {n}" for n, text in enumerate(lines, 1) if text.strip() == "EXPORT {"
            for i in (11, 12, 13) if n < len(lines) and f"Export_Id = {i};" in lines[n]}


def probe(lab: GaneshaLab, vol) -> dict[str, tuple[str, int | None]]:
    """Per export: a root write's outcome and the owner of the file it made."""
    out = {}
    with Nfs4Client("127.0.0.1", lab.port, uid=0, gid=0) as c:
        c.connect()
        c.establish()
        for name in ("a", "b", "c"):
            try:
                f = c.open(f"/imp/{name}/probe", create=True, write=True)
                c.write(f, 0, b"x")
                c.close_file(f)
                result = "written"
            except NfsError as exc:
                result = exc.name
            path = vol / name / "probe"
            out[name] = (result, os.stat(path).st_uid if path.exists() else None)
            if path.exists():
                path.unlink()
    return out


def blocks(tmp_path, vol):
    """The volume's directories a, b, c (writable by everyone) and the ganesha.conf of CONF for them."""
    for name in ("a", "b", "c"):
        (vol / name).mkdir(mode=0o777)
        os.chmod(vol / name, 0o777)
    conf = tmp_path / "ganesha.conf"
    conf.write_text(CONF.format(vol=vol))
    return conf


def serving(workdir, config: str) -> GaneshaLab:
    """A started GaneshaLab whose ganesha.conf has `config` appended (the node's own EXPORT blocks)."""
    lab = GaneshaLab(workdir)
    lab.daemon.extra_config = config
    return lab.start()


def test_imported_ganesha_exports_grant_what_the_blocks_granted(tmp_path, tmpfs_volume):
    vol = tmpfs_volume
    conf = blocks(tmp_path, vol)

    before = serving(tmp_path / "before", conf.read_text())
    try:
        served = before.show_exports()
        assert {k: served.get(k) for k in (11, 12, 13)} == {11: f"{vol}/a", 12: f"{vol}/b", 13: f"{vol}/c"}
        theirs = probe(before, vol)
    finally:
        before.stop()
    assert theirs == {"a": ("written", 0), "b": ("NFS4ERR_ROFS", None), "c": ("written", 1234)}, theirs

    after = GaneshaLab(tmp_path / "after").start()
    try:
        after.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "1-99", check=True)
        dry = after.cli("import", "ganesha", str(vol), "--file", str(conf), check=True).stdout
        assert "3 to add" in dry and "dry run" in dry
        # without --file: the node's Ganesha config ([ganesha] ganesha_config, as the agent reads it), and
        # a note of what to remove from it before the first start
        node_conf = tmp_path / "node.conf"
        node_conf.write_text(after.config.read_text().replace(str(after.daemon.config_path), str(conf)))
        here = subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(node_conf), "import",
                               "ganesha", str(vol)], capture_output=True, text=True, timeout=120)
        assert here.returncode == 0 and "3 to add" in here.stdout, here.stdout + here.stderr
        assert (f"note: remove the EXPORT blocks of Export_Id 11, 12, 13 from {conf} on every node"
                in here.stdout), here.stdout
        after.cli("import", "ganesha", str(vol), "--file", str(conf), "--apply", check=True)
        after.cli("volume", "start", str(vol), check=True)
        served = after.show_exports()
        assert {k: served.get(k) for k in (11, 12, 13)} == {11: f"{vol}/a", 12: f"{vol}/b", 13: f"{vol}/c"}
        assert probe(after, vol) == theirs
        again = after.cli("import", "ganesha", str(vol), "--file", str(conf), "--apply", check=True).stdout
        assert "0 to add, 0 to update, 0 to remove, 3 unchanged, 0 refused" in again
        assert f"Export_Id 11, 12, 13 from {conf} on every node" in again
        after.cli("volume", "stop", str(vol), check=True)
    finally:
        after.stop()


def test_the_import_works_on_the_node_whose_ganesha_serves_the_blocks(tmp_path, tmpfs_volume):
    """README's procedure where it is natural: `volume init --id-range` and `set-range` on the
    node whose Ganesha still serves the EXPORT blocks being imported. Ids served for the
    volume's own directories are what the import takes over, not a collision; an id served for
    a directory outside the volume still is. The blocks removed, the volume's start serves them."""
    vol = tmpfs_volume
    conf = blocks(tmp_path, vol)
    other = tmp_path / "other"
    other.mkdir()
    foreign = f'EXPORT {{ Export_Id = 20; Path = "{other}"; Pseudo = /other; FSAL {{ Name = VFS; }} }}\n'

    lab = serving(tmp_path / "node", conf.read_text() + foreign)
    try:
        assert {11, 12, 13, 20} <= set(lab.show_exports())
        refused = lab.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "1-99")
        assert refused.returncode == 5 and "holds 20, served now" in refused.stderr, refused.stderr
        lab.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "10-19", check=True)
        refused = lab.cli("volume", "set-range", str(vol), "10-29")
        assert refused.returncode == 5 and "holds 20, served now" in refused.stderr, refused.stderr
        lab.cli("volume", "set-range", str(vol), "1-19", check=True)
        lab.cli("import", "ganesha", str(vol), "--file", str(conf), "--apply", check=True)

        lab.daemon.extra_config = foreign          # the imported blocks removed from ganesha.conf
        lab.restart()
        assert not {11, 12, 13} & set(lab.show_exports())
        lab.cli("volume", "start", str(vol), check=True)
        served = lab.show_exports()
        assert {k: served.get(k) for k in (11, 12, 13, 20)} == {11: f"{vol}/a", 12: f"{vol}/b", 13: f"{vol}/c",
                                                                  20: str(other)}
        lab.cli("volume", "stop", str(vol), check=True)
    finally:
        lab.stop()


def test_a_start_names_the_blocks_the_nodes_ganesha_config_still_serves(tmp_path, tmpfs_volume):
    """The volume's start adopts the exports the node's own ganesha.conf still serves (same
    Export_Id, same path: nothing to change), but says which EXPORT blocks to remove from which
    file: left there, this node's Ganesha serves them again at its next start, also after the
    volume moved away. Once they are removed, the start says nothing of them."""
    vol = tmpfs_volume
    conf = blocks(tmp_path, vol)
    lab = serving(tmp_path / "node", conf.read_text())
    try:
        lab.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "10-19", check=True)
        lab.cli("import", "ganesha", str(vol), "--file", str(conf), "--apply", check=True)
        started = lab.cli("volume", "start", str(vol), check=True)
        where = block_lines(lab.daemon.config_path)
        assert (f"WARNING: remove the EXPORT block(s) of Export_Id 11 ({vol}/a) at {where[11]}, "
                f"Export_Id 12 ({vol}/b) at {where[12]}, Export_Id 13 ({vol}/c) at {where[13]} from the Ganesha "
                "config of every node") in started.stderr, started.stderr
        status = lab.cli("volume", "status", str(vol), check=True)   # said by `volume status` too
        assert f"Export_Id 11 ({vol}/a) at {where[11]}" in status.stderr, status.stderr
        served = lab.show_exports()
        assert {k: served.get(k) for k in (11, 12, 13)} == {11: f"{vol}/a", 12: f"{vol}/b", 13: f"{vol}/c"}
        lab.cli("volume", "stop", str(vol), check=True)

        lab.daemon.extra_config = ""
        lab.restart()
        started = lab.cli("volume", "start", str(vol), check=True)
        assert "EXPORT block" not in started.stderr, started.stderr
        lab.cli("volume", "stop", str(vol), check=True)
    finally:
        lab.stop()
