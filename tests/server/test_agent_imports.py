"""What a classic-mode monitor loads, pinned (issue 19: the agent's per-call floor).

The agent is a new process for every call Pacemaker makes, and a classic (exportfs drop-in)
primitive is monitored every few seconds, one process per export. Most of that process's
time is imports (bench/run section 3 takes it apart), so the set of modules a monitor loads
is part of its behaviour: a module-level import added anywhere on its path (a `shutil` in a
store, a `subprocess`, a `typing`, a whole backend) would cost every call again, with nothing
failing. This test runs a real classic monitor (real exportfs, a tmpfs volume, a private
/var/lib/nfs) as Pacemaker runs the agent and compares what it imported with two lists:

- `CLASSIC_MONITOR_MODULES`: every ganesha_ha module it may load. A new one on the path
  fails the test: make its import lazy (or, if the monitor really needs it, add it here and
  say why in the commit);
- `NOT_ON_THE_PATH`: standard-library and third-party modules it must not load at all
  (subprocess: exportfs runs through posix_spawn, linux.py; shutil: bz2 and lzma; typing and
  dataclasses: TYPE_CHECKING and record.py; site and configobj: lazysite.py).

What it still loads and cannot shed without rewriting the model (named in bench/run's
report): re and json (registry.json, the client-spec and option rules), ipaddress (client
addresses), pathlib (the package's file model) and contextlib.
"""
from __future__ import annotations

import pytest

from agent_helpers import imported_modules, knfsd_sandbox
from conftest import needs_root

pytestmark = needs_root

CLASSIC_MONITOR_MODULES = frozenset({
    "ganesha_ha", "ganesha_ha.agent", "ganesha_ha.agent_params", "ganesha_ha.agent_classic", "ganesha_ha.ocf",
    "ganesha_ha.errors", "ganesha_ha.servers",
    # the classic parameters, parsed and checked at every call (classic.py, the model's rules)
    "ganesha_ha.classic", "ganesha_ha.model", "ganesha_ha.clientspec", "ganesha_ha.fsal", "ganesha_ha.fsal_schema", "ganesha_ha.record",
    "ganesha_ha.textcheck",
    "ganesha_ha.settings",
    # the volume: registry, node marks, what the backend is given
    "ganesha_ha.volume", "ganesha_ha.export_edits", "ganesha_ha.context", "ganesha_ha.registry", "ganesha_ha.idranges", "ganesha_ha.fsutil", "ganesha_ha.linux",
    "ganesha_ha.nodestate",
    # knfsd: exportfs, etab, and the rmtab lines saved to the volume
    "ganesha_ha.backends", "ganesha_ha.backends.load", "ganesha_ha.backends.knfsd",
    "ganesha_ha.backends.knfsd_table", "ganesha_ha.backends.node_server", "ganesha_ha.backends.resolve",
    "ganesha_ha.recovery", "ganesha_ha.recovery.nsm", "ganesha_ha.recovery.rmtab",
    "ganesha_ha.recovery.rmtab_lines", "ganesha_ha.nfspath",
})

NOT_ON_THE_PATH = frozenset({
    "subprocess", "selectors", "threading", "signal", "shutil", "bz2", "lzma", "struct", "tempfile",
    "typing", "dataclasses", "inspect", "ast", "dis", "tokenize", "uuid", "random", "hashlib", "datetime",
    "socket", "logging", "argparse", "textwrap", "string", "locale",
    "site", "configobj", "validate", "dbus", "pyroute2",
})


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    from knfsd_ns import skip_reason

    if skip_reason():
        pytest.skip(skip_reason())
    with knfsd_sandbox(tmp_path_factory.mktemp("agent-imports")) as box:
        yield box


def classic_env(sandbox, directory: str, fsid: str, **extra: str) -> dict[str, str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "gha_floor",
           "OCF_RESKEY_server": "knfsd", "OCF_RESKEY_config": str(sandbox.config),
           "OCF_RESKEY_directory": directory, "OCF_RESKEY_clientspec": "127.0.0.1",
           "OCF_RESKEY_options": "rw,sync", "OCF_RESKEY_fsid": fsid}
    env.update(extra)
    return env


@pytest.mark.parametrize("probe", [False, True], ids=["monitor", "probe"])
def test_a_classic_monitor_loads_only_its_own_path(sandbox, tmp_path, probe):
    directory = sandbox.volume / f"floor-{int(probe)}"
    directory.mkdir()
    env = classic_env(sandbox, str(directory), str(700 + int(probe)),
                      OCF_RESKEY_CRM_meta_interval="0" if probe else "10000")
    rc, _, err, _ = imported_modules("start", env, tmp_path)
    assert rc == 0, err
    try:
        assert sandbox.etab_for(str(directory)), "started: the directory is exported"
        rc, _, err, mods = imported_modules("monitor", env, tmp_path)
        assert rc == 0, err
        ours = {m for m in mods if m.split(".")[0] == "ganesha_ha"}
        assert "ganesha_ha.backends.knfsd" in ours, "the monitor ran the knfsd backend (it checked the export)"
        # what it cannot shed (the module docstring): seen, so the lists below meet real imports
        assert {"re", "json", "ipaddress", "pathlib", "contextlib"} <= mods, sorted(mods)
        assert ours <= CLASSIC_MONITOR_MODULES, f"new on the classic monitor's path: {sorted(ours - CLASSIC_MONITOR_MODULES)}"
        assert not mods & NOT_ON_THE_PATH, f"loaded by a classic monitor: {sorted(mods & NOT_ON_THE_PATH)}"
    finally:
        rc, _, err, _ = imported_modules("stop", env, tmp_path)
        assert rc == 0, err
    assert not sandbox.etab_for(str(directory)), "stopped: nothing left in etab"



@pytest.fixture
def ganesha_volume(ganesha, tmpfs_volume):
    (tmpfs_volume / "data").mkdir()
    ganesha.cli("volume", "init", str(tmpfs_volume), "--server", "ganesha", "--id-range", "640-649", check=True)
    ganesha.cli("export", "add", str(tmpfs_volume), "data", "--client", "127.0.0.1", check=True)
    return ganesha, tmpfs_volume


def test_a_ganesha_monitor_that_finds_every_export_live_loads_no_node_check(ganesha_volume, tmp_path):
    """The node's checks (FSAL modules, the config file's take-over problems, what nodes publish:
    backends/ganesha_node_checks.py) are for a start, a validate-all, a probe and a repair: a
    recurring monitor of a volume served as registered never loads them, nor what they read."""
    lab, vol = ganesha_volume
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "gha_g",
           "OCF_RESKEY_server": "ganesha", "OCF_RESKEY_volume": str(vol), "OCF_RESKEY_config": str(lab.config)}
    rc, _, err, mods = imported_modules("start", env, tmp_path)
    assert rc == 0, err
    assert "ganesha_ha.backends.ganesha_node_checks" in mods, "a start checks the node (the list meets real imports)"
    try:
        rc, _, err, mods = imported_modules("monitor", env | {"OCF_RESKEY_CRM_meta_interval": "10000"}, tmp_path)
        assert rc == 0, err
        assert "ganesha_ha.backends.ganesha" in mods, "the monitor ran the Ganesha backend"
        node_checks = {"ganesha_ha.backends.ganesha_node_checks", "ganesha_ha.backends.ganesha_node",
                       "ganesha_ha.backends.ganesha_plugins", "ganesha_ha.node_attrs", "ganesha_ha.pacemaker_nodes"}
        assert not mods & node_checks, f"loaded by a steady Ganesha monitor: {sorted(mods & node_checks)}"
    finally:
        rc, _, err, _ = imported_modules("stop", env, tmp_path)
        assert rc == 0, err
