"""The node's own files exporting a volume outside ganesha-ha, said by the real agent's
validate-all and start and by `volume status` (backends/node_exports.py; tryout3 M).

knfsd: exports(5) files (the settings' `[knfsd] exports_file` and `exports_dir`, here in a
temp dir) with a line for a directory of the volume, written as administrators write them
(quoted with a space, continued, commented neighbours), and a line elsewhere with one of the
volume's fsids: `exportfs -ra` would export them on a node where the volume is not active.
Ganesha: the node's config (`[ganesha] ganesha_config`) with an EXPORT block of the volume in
an `%include`d file. Each is a warning naming the file and line, never a refusal: pcs runs
validate-all at create/update on one node, and the volume is served as registered.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent_helpers import check_well_formed, knfsd_sandbox, run_subprocess
from conftest import IS_ROOT, needs_root
from knfsd_ns import skip_reason

RECURRING = {"CRM_meta_interval": "10000"}


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def knfsd(tmp_path):
    if not IS_ROOT or skip_reason():
        pytest.skip(skip_reason() or "needs root")
    etc = tmp_path / "etc"
    (etc / "exports.d").mkdir(parents=True)
    extra = f"exports_file = {etc / 'exports'}\nexports_dir = {etc / 'exports.d'}\n"
    with knfsd_sandbox(tmp_path, extra) as box:
        box.etc = etc
        yield box


def test_knfsd_lines_exporting_the_volume_are_warned_by_validate_all_start_and_status(knfsd, tmp_path):
    vol = knfsd.volume
    (vol / "my dir").mkdir()
    cli(knfsd.config, "volume", "init", str(vol), "--server", "knfsd")
    cli(knfsd.config, "export", "add", str(vol), "my dir", "--client", "127.0.0.1", "--fsid", "4242")
    main = knfsd.etc / "exports"
    main.write_text("# /srv/old *(rw)\n"
                    "/srv/other 10.0.0.0/8(rw,fsid=4242)\n"                # another directory, the volume's fsid
                    f'"{vol}//my dir/" \\\n    127.0.0.1(rw,sync) \\\n    10.0.0.1(ro)\n')
    (knfsd.etc / "exports.d" / "left.exports").write_text(f"{vol} *(ro)\n")
    (knfsd.etc / "exports.d" / "ignored.conf").write_text(f"{vol}/ignored *(ro)\n")   # exportfs skips it
    params = {"server": "knfsd", "volume": str(vol), "config": str(knfsd.config)}

    rc, out, err = run_subprocess("validate-all", params)
    assert rc == 0, err                                                     # a warning, not OCF_ERR_CONFIGURED
    [warning] = [ln for ln in err.splitlines() if "remove the line(s)" in ln]
    assert (f"remove the line(s) exporting /srv/other (to 10.0.0.0/8, fsid=4242) at {main} line 2, "
            f"{vol}//my dir/ (to 127.0.0.1 10.0.0.1) at {main} line 3, {vol} (to *) at "
            f"{knfsd.etc}/exports.d/left.exports line 1 from the exports(5) files of every node") in warning
    assert "ignored" not in err
    check_well_formed(rc, out, err, {0})

    rc, out, err = run_subprocess("start", params)
    assert rc == 0 and f"{vol}//my dir/ (to 127.0.0.1 10.0.0.1) at {main} line 3" in err, err
    status = cli(knfsd.config, "volume", "status", str(vol))
    assert f"at {knfsd.etc}/exports.d/left.exports line 1" in status.stderr, status.stderr
    check_well_formed(*run_subprocess("monitor", params | RECURRING), {0})
    rc, out, err = run_subprocess("monitor", params | RECURRING)
    assert "remove the line" not in err, "the monitor reads no exports(5) file"
    check_well_formed(*run_subprocess("stop", params), {0})

    # where the volume is not mounted (pcs may validate on any node): its directories alone
    bare = tmp_path / "unmounted"
    bare.mkdir()
    main.write_text(f"{bare}/a *(rw)\n/srv/other 10.0.0.0/8(rw,fsid=4242)\n")
    rc, out, err = run_subprocess("validate-all", params | {"volume": str(bare)})
    assert rc == 0 and f"{bare}/a (to *) at {main} line 1" in err and "/srv/other" not in err, err

    main.write_text("/srv/other 10.0.0.0/8(rw,fsid=1)\n")                   # removed: nothing said
    (knfsd.etc / "exports.d" / "left.exports").unlink()
    rc, out, err = run_subprocess("validate-all", params)
    assert rc == 0 and "exports(5)" not in err, err


def test_knfsd_a_classic_directory_in_the_nodes_exports_is_warned(knfsd):
    directory = knfsd.volume / "data"
    directory.mkdir()
    (knfsd.etc / "exports").write_text(f"{directory}/ 127.0.0.1(rw)\n")
    params = {"server": "knfsd", "directory": str(directory), "clientspec": "127.0.0.1", "options": "rw",
              "fsid": "77", "config": str(knfsd.config)}
    rc, out, err = run_subprocess("validate-all", params)
    assert rc == 0 and f"exporting {directory}/ (to 127.0.0.1) at {knfsd.etc}/exports line 1" in err, err
    rc, out, err = run_subprocess("start", params)
    assert rc == 0 and f"at {knfsd.etc}/exports line 1" in err, err
    check_well_formed(*run_subprocess("stop", params), {0})


def test_knfsd_an_exports_file_exportfs_cannot_read_is_said(knfsd):
    cli(knfsd.config, "volume", "init", str(knfsd.volume), "--server", "knfsd")
    (knfsd.etc / "exports").write_text(f"{knfsd.volume}/a *(rw,)\n")
    params = {"server": "knfsd", "volume": str(knfsd.volume), "config": str(knfsd.config)}
    rc, out, err = run_subprocess("validate-all", params)
    assert rc == 0, err
    assert (f"cannot compare this node's exports(5) files with the volume {knfsd.volume}: {knfsd.etc}/exports "
            "line 1: empty option in 'rw,'") in err, err
    assert "remove the line" not in err, err


@needs_root
def test_ganesha_blocks_of_the_volume_in_an_included_file_are_warned_by_validate_all(ganesha, tmpfs_volume,
                                                                                   tmp_path):
    vol = tmpfs_volume
    (vol / "data").mkdir()
    ganesha.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "600-699", check=True)
    ganesha.cli("export", "add", str(vol), "data", "--client", "127.0.0.1", check=True)
    included = tmp_path / "old-exports.conf"
    included.write_text("# imported into ganesha-ha, not removed yet\n"
                        f'EXPORT {{\n    Export_Id = 77;\n    Path = "{vol}/data/";\n    Pseudo = /old;\n'
                        "    FSAL { Name = VFS; }\n}\n"
                        "EXPORT { Export_Id = 600; Path = /elsewhere; Pseudo = /e; FSAL { Name = VFS; } }\n")
    conf = tmp_path / "node-ganesha.conf"
    conf.write_text(ganesha.daemon.config_path.read_text() + f'\n%include "{included}"\n')
    settings = tmp_path / "gha.conf"
    settings.write_text(ganesha.config.read_text().replace(str(ganesha.daemon.config_path), str(conf)))
    params = {"server": "ganesha", "volume": str(vol), "config": str(settings)}
    rc, out, err = run_subprocess("validate-all", params)
    assert rc == 0, err
    assert (f"remove the EXPORT block(s) of Export_Id 77 ({vol}/data/) at {included} line 2, Export_Id 600 "
            f"(/elsewhere) at {included} line 8 from the Ganesha config of every node") in err, err
    check_well_formed(rc, out, err, {0})
    conf.write_text(ganesha.daemon.config_path.read_text())
    rc, out, err = run_subprocess("validate-all", params)
    assert rc == 0 and "EXPORT block" not in err, err
