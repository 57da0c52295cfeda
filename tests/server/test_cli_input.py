"""Hostile input through the command line (`export add`, in-process `ganesha_ha.cli.main`):
every example ends in exit 0 (recorded, and it reads back the same), 2 (refused input) or 5
(a conflict), with one line on stderr and the registry unchanged on refusal; never a
traceback. Default: a few hundred examples; `--long`: 10 000.
"""
from __future__ import annotations

import io
import os
import re
from contextlib import redirect_stderr, redirect_stdout

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from conftest import IS_ROOT
from strategies import CLASSIC_FIELDS, directories, good_name, good_options, hostile, knfsd_host


def run_cli_inprocess(argv: list[str]) -> tuple[int, str, str]:
    from ganesha_ha import cli

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
    return int(code or 0), out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def cli_volumes(tmp_path_factory):
    """One knfsd and one ganesha volume, neither active here: changes are recorded only, and
    what the model accepts must also pass the server's own limits (check_renderable)."""
    from ganesha_ha import linux

    if not IS_ROOT:
        pytest.skip("needs root")
    work = tmp_path_factory.mktemp("cli-input")
    config = work / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {work / 'run'}\n")
    vols = {}
    for server, id_range in (("knfsd", "100-30000"), ("ganesha", "30001-60000")):  # apart: both mounted here
        mp = work / server
        mp.mkdir()
        linux.mount(f"gha-cli-{server}", str(mp), "tmpfs", 0, "size=16m,mode=0755")
        code, _, err = run_cli_inprocess(["--config", str(config), "volume", "init", str(mp), "--server", server,
                                          "--id-range", id_range])
        assert code == 0, err
        vols[server] = mp
    try:
        yield config, vols
    finally:
        for mp in vols.values():
            linux.umount(str(mp), lazy=True)


def _cli_example(cli_volumes, data) -> None:
    import json

    config, vols = cli_volumes
    server = data.draw(st.sampled_from(sorted(vols)), label="server")
    vol = vols[server]
    bad = data.draw(st.just(set()) | st.sets(st.sampled_from(["directory", "client", "pseudo", "fsid"]), min_size=1),
                    label="hostile fields")
    directory, make_it = data.draw(directories(vol, "directory" not in bad), label="directory")
    if make_it:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError:
            pass
    argv = ["--config", str(config), "export", "add", str(vol), directory]
    for _ in range(data.draw(st.integers(1, 3), label="clients")):
        host = data.draw(hostile if "client" in bad else knfsd_host, label="host")
        opts = data.draw(st.one_of(st.just(""), good_options, hostile) if "client" in bad else good_options,
                         label="options")
        argv += ["--client", f"{host}({opts})" if opts else host]
    if data.draw(st.booleans(), label="set pseudo"):
        argv += ["--pseudo", data.draw(hostile.map(lambda s: "/" + s) if "pseudo" in bad else
                                       good_name.map(lambda s: "/p/" + s), label="pseudo")]
    if server == "knfsd" and data.draw(st.booleans(), label="set fsid"):
        argv += ["--fsid", data.draw(CLASSIC_FIELDS["fsid"][1 if "fsid" in bad else 0], label="fsid")]
    registry = vol / ".ganesha-ha" / "registry.json"
    before = registry.read_bytes()
    code, out, err = run_cli_inprocess(argv)
    event(f"export add exit {code}")
    assert code in (0, 2, 5), (code, err)  # added, refused input, conflict with an earlier example
    assert "internal error" not in err and "Traceback" not in err, err
    if code != 0:
        assert err.count("\n") == 1 and re.match(r"ganesha-ha( [a-z-]+)*: error: ", err), err
        assert registry.read_bytes() == before
        return
    # what was recorded reads back as the same export, by its directory and by its id
    code, out, err = run_cli_inprocess(["--config", str(config), "export", "list", str(vol), "--json"])
    assert code == 0, err
    old_ids = {x["export_id"] for x in json.loads(before)["exports"]}
    (added,) = [e for e in json.loads(out) if e["export_id"] not in old_ids]
    code, out, err = run_cli_inprocess(["--config", str(config), "export", "show", str(vol), str(added["export_id"]),
                                        "--json"])
    assert code == 0 and json.loads(out) == added, err
    code, out, err = run_cli_inprocess(["--config", str(config), "export", "remove", str(vol),
                                        str(added["export_id"])])
    assert code == 0, err


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_cli_input(cli_volumes, data):
    _cli_example(cli_volumes, data)


@pytest.mark.long
@pytest.mark.skipif(not IS_ROOT, reason="needs root")
@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_cli_input_long(cli_volumes, data):
    _cli_example(cli_volumes, data)
