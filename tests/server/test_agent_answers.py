"""The agent's answers (issue 14) against the real exportfs and ganesha.nfsd.

- One export that cannot go live never takes the volume down: start serves the others, the
  monitor answers OCF_DEGRADED (190) naming the export and the server's reason, an FSAL
  module missing on this node and on every other is one such export (item 1; placement.py).
- Drop-in parity with ocf:heartbeat:exportfs in classic mode: bracketed IPv6 clients, a list
  of directories with upstream's fsid rule, its other parameters, and upstream's own ocft
  cases (tools/ocft/exportfs, exportfs-multidir) run against ra/exports (item 4).
- Probes answer "not running" whenever this node cannot be serving the volume; a volume of
  another server is a configuration error in every action; every failure has one exit
  reason (item 5).
- A classic resource and a volume-mode resource never share a file system (item 6).
- A knfsd stop releases the NLM locks (unlock_filesystem, unlock_ip) and can wait out the
  NFSv4 lease, through a stand-in for /proc/fs/nfsd (item 8; this machine has no nfsd).
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from agent_helpers import check_well_formed, knfsd_sandbox, run_inprocess, run_subprocess
from conftest import IS_ROOT
from knfsd_ns import skip_reason

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="needs root (mounts, exportfs, ganesha.nfsd)")

GANESHA_PLUGINS = Path("/usr/lib/x86_64-linux-gnu/ganesha")
RECURRING = {"CRM_meta_interval": "10000"}


@pytest.fixture
def knfsd(tmp_path):
    """A tmpfs volume, a private /var/lib/nfs with the real exportfs, and a stand-in for
    /proc/fs/nfsd (regular files the stop writes to, as it would to the kernel's)."""
    if skip_reason():
        pytest.skip(skip_reason())
    proc = tmp_path / "proc-fs-nfsd"
    proc.mkdir()
    with knfsd_sandbox(tmp_path, f"proc_nfsd = {proc}\n") as box:
        box.proc = proc
        yield box


def etab(box) -> dict[str, list[str]]:
    """Directory -> the clients etab lists it for."""
    from ganesha_ha.backends.knfsd_table import parse_etab_entries

    out: dict[str, list[str]] = {}
    for e in parse_etab_entries((box.state / "etab").read_text()):
        out.setdefault(e.path, []).append(e.client)
    return out


def etab_fsids(box) -> dict[str, str]:
    from ganesha_ha.backends.knfsd_table import parse_etab_entries

    return {e.path: e.fsid for e in parse_etab_entries((box.state / "etab").read_text())}


def served(lab) -> dict[int, str]:
    """Export_Id -> path of what the lab's Ganesha serves, without its pseudo root (id 0)."""
    return {i: p for i, p in lab.show_exports().items() if i != 0}


def cli(config: Path, *args: str, check: bool = True):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ganesha_ha.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60)
    assert not check or proc.returncode == 0, proc.stderr
    return proc


# ---- item 1: one bad export --------------------------------------------------------------------

UNRESOLVABLE = "nohost.invalid"   # exportfs refuses a client it cannot resolve (no DNS here)


def test_knfsd_one_export_exportfs_refuses_never_takes_the_volume_down(knfsd):
    """Three exports, one for a client exportfs cannot resolve: exportfs refuses it, the start
    serves the other two, the monitor says degraded and why, the CLI's volume start names
    it; once it is corrected, the next monitor applies it and the answer is 0 again."""
    vol = knfsd.volume
    for d in ("a", "b", "c"):
        (vol / d).mkdir()
    cli(knfsd.config, "volume", "init", str(vol), "--server", "knfsd")
    for d in ("a", "b", "c"):
        cli(knfsd.config, "export", "add", str(vol), d, "--client", UNRESOLVABLE if d == "b" else "127.0.0.1")
    params = {"server": "knfsd", "volume": str(vol), "config": str(knfsd.config)}
    rc, out, err = run_subprocess("start", params)
    check_well_formed(rc, out, err, {0})
    assert sorted(etab(knfsd)) == [f"{vol}/a", f"{vol}/c"]
    assert re.search(r"WARNING: .*1 of 3 exports could not go live .*: b: exportfs ", err), err
    for extra in (RECURRING, {}):   # the recurring monitor and a probe
        (reason,) = check_well_formed(*run_subprocess("monitor", params | extra), {190})
        assert reason.startswith("not live: b: exportfs") and "Export_Id" not in reason, reason   # knfsd: no Export_Id
        assert reason.endswith("(1 of 3 exports; the others are live)"), reason
    assert sorted(etab(knfsd)) == [f"{vol}/a", f"{vol}/c"]
    status = cli(knfsd.config, "volume", "status", str(vol))
    assert "3 exports, 2 live, active on this node" in status.stdout, status.stdout
    # the command line: the others live, the bad one named on stderr, exit 7 (a refusal)
    run_subprocess("stop", params)
    proc = cli(knfsd.config, "volume", "start", str(vol), check=False)
    assert proc.returncode == 7 and "2 exports live" in proc.stdout, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("ganesha-ha: error: not live: b: exportfs") and proc.stderr.count("\n") == 1
    cli(knfsd.config, "volume", "stop", str(vol))
    check_well_formed(*run_subprocess("start", params), {0})
    cli(knfsd.config, "export", "update", str(vol), "b", "--client", "127.0.0.1", "--record-only")
    check_well_formed(*run_subprocess("monitor", params | RECURRING), {0})
    assert sorted(etab(knfsd)) == [f"{vol}/a", f"{vol}/b", f"{vol}/c"]
    check_well_formed(*run_subprocess("stop", params), {0})
    assert etab(knfsd) == {}


def test_knfsd_an_fsid_another_volume_exports_here_leaves_out_that_export_only(knfsd):
    """Blast radius, knfsd's equivalent of a pseudo path met across volumes: two volumes whose
    administrators both chose `--fsid 7` (knfsd finds an export's files by its fsid: two
    directories under one fsid give one's clients the other's files). Recorded while the second
    is not active here: a warning. Its start serves its other export and leaves that one out,
    named (agent 0 with a warning; the monitor OCF_DEGRADED, naming it once); the first volume's
    line stays; once the first volume stops, the monitor exports it."""
    from ganesha_ha import linux

    v1, v2 = knfsd.volume, knfsd.work / "vol2"
    v2.mkdir()
    linux.mount("gha-agent-input2", str(v2), "tmpfs", 0, "size=16m,mode=0755")
    try:
        (v1 / "a").mkdir()
        (v2 / "d").mkdir()
        (v2 / "e").mkdir()
        for vol, rng in ((v1, "100-199"), (v2, "200-299")):
            cli(knfsd.config, "volume", "init", str(vol), "--server", "knfsd", "--id-range", rng)
        cli(knfsd.config, "export", "add", str(v1), "a", "--client", "127.0.0.1", "--fsid", "7")
        p1 = {"server": "knfsd", "volume": str(v1), "config": str(knfsd.config)}
        p2 = p1 | {"volume": str(v2)}
        check_well_formed(*run_subprocess("start", p1), {0})
        added = cli(knfsd.config, "export", "add", str(v2), "d", "--client", "127.0.0.1", "--fsid", "7")
        # the export named once (its directory leads the line), the other volume's by its path
        assert f"WARNING: d: fsid 7 is already exported by this node's knfsd for " \
               f"{v1}/a" in added.stderr and f"{v2}/d" not in added.stderr and f"a start of {v2} on this node would leave this export out" in added.stderr
        assert "WARNING" not in cli(knfsd.config, "export", "add", str(v2), "e", "--client", "127.0.0.1").stderr
        rc, out, err = run_subprocess("start", p2)
        check_well_formed(rc, out, err, {0})
        assert "1 of 2 exports could not go live" in err and "fsid 7" in err, err
        assert sorted(etab(knfsd)) == [f"{v1}/a", f"{v2}/e"] and etab_fsids(knfsd)[f"{v1}/a"] == "7"
        (reason,) = check_well_formed(*run_subprocess("monitor", p2 | RECURRING), {190})
        assert reason.startswith("not live: d: fsid 7 ") and f"for {v1}/a" in reason, reason
        # volume status gives the reason too, as not live (not as a difference of a live export)
        status = cli(knfsd.config, "volume", "status", str(v2)).stdout
        assert "1 live" in status and f"\n  not live: fsid 7 of {v2}/d is exported for {v1}/a" in status, status
        assert "not as registered" not in status, status
        check_well_formed(*run_subprocess("monitor", p1 | RECURRING), {0})
        check_well_formed(*run_subprocess("stop", p1), {0})
        check_well_formed(*run_subprocess("monitor", p2 | RECURRING), {0})
        assert sorted(etab(knfsd)) == [f"{v2}/d", f"{v2}/e"] and etab_fsids(knfsd)[f"{v2}/d"] == "7"
        check_well_formed(*run_subprocess("stop", p2), {0})
    finally:
        linux.umount(str(v2), lazy=True)


def test_knfsd_nothing_servable_is_a_failure(knfsd):
    vol = knfsd.volume
    (vol / "a").mkdir()
    cli(knfsd.config, "volume", "init", str(vol), "--server", "knfsd")
    cli(knfsd.config, "export", "add", str(vol), "a", "--client", UNRESOLVABLE)
    params = {"server": "knfsd", "volume": str(vol), "config": str(knfsd.config)}
    (reason,) = check_well_formed(*run_subprocess("start", params), {1})
    assert reason.startswith("none of the 1 exports of ") and ": a: exportfs" in reason, reason
    check_well_formed(*run_subprocess("stop", params), {0})


def _plugins_config(lab, tmp_path: Path, modules: tuple[str, ...]) -> Path:
    """The lab's settings with a plugin directory that holds only `modules` (a node without
    the other FSAL packages); the lab's Ganesha itself still loads from Debian's."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    for m in modules:
        os.symlink(GANESHA_PLUGINS / m, plugins / m)
    config = tmp_path / "plugins.conf"
    config.write_text(lab.config.read_text().replace("[ganesha]\n", f"[ganesha]\nplugins_dir = {plugins}\n", 1))
    return config


@pytest.mark.skipif(not (GANESHA_PLUGINS / "libfsalmem.so").exists(), reason="nfs-ganesha-mem not installed")
def test_ganesha_a_refused_export_is_degraded_a_missing_fsal_known_nowhere_too(ganesha, tmpfs_volume, tmp_path):
    vol = tmpfs_volume
    for d in ("a", "b", "c", "m"):
        (vol / d).mkdir()
    ganesha.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "400-499", check=True)
    for d in ("a", "b", "c"):
        ganesha.cli("export", "add", str(vol), d, "--client", "127.0.0.1", check=True)
    (vol / "b").rmdir()   # a directory that is not there cannot be exported
    params = {"server": "ganesha", "volume": str(vol), "config": str(ganesha.config)}
    rc, out, err = run_subprocess("start", params)
    check_well_formed(rc, out, err, {0})
    assert sorted(served(ganesha).values()) == [f"{vol}/a", f"{vol}/c"]
    assert "1 of 3 exports could not go live" in err and f"b (Export_Id 401): no directory {vol}/b on this node" in err, err
    (reason,) = check_well_formed(*run_subprocess("monitor", params | RECURRING), {190})
    assert reason.startswith(f"not live: b (Export_Id 401): no directory {vol}/b on this node"), reason
    (vol / "b").mkdir()
    check_well_formed(*run_subprocess("monitor", params | RECURRING), {0})
    assert 401 in served(ganesha)

    # an export whose FSAL this node lacks (added --record-only, as the issue found it; MEM's
    # path is in its own namespace)
    ganesha.cli("export", "add", str(vol), "/m", "--client", "127.0.0.1", "--fsal", "MEM", "--record-only",
                check=True)
    lacking = _plugins_config(ganesha, tmp_path, ("libfsalvfs.so",))
    p2 = params | {"config": str(lacking)}
    # no other node published its FSALs (no cluster here): MEM is known on no node, so the
    # export is left out and the volume's others serve (placement.py); a node that has
    # every module moving the volume there is tests/cluster/test_fsal_nodes.py
    (reason,) = check_well_formed(*run_subprocess("monitor", p2 | RECURRING), {190})
    assert re.fullmatch(r"not live: /m \(Export_Id 403\): FSAL MEM is missing here and no other node published "
                        r"its FSALs \(Debian package nfs-ganesha-mem\): left out; here \S+/plugins/libfsalmem.so is "
                        r"missing \(1 of 4 exports; the others are live\)", reason), reason
    assert "(Debian package nfs-ganesha-mem)" in reason[:128]   # within what Pacemaker keeps
    assert 403 not in served(ganesha), "nothing was sent to Ganesha for it"
    check_well_formed(*run_subprocess("stop", p2), {0})
    assert served(ganesha) == {}
    rc, out, err = run_subprocess("start", p2)
    check_well_formed(rc, out, err, {0})
    assert sorted(served(ganesha).values()) == [f"{vol}/a", f"{vol}/b", f"{vol}/c"]
    assert "1 of 4 exports could not go live" in err and "FSAL MEM is missing here" in err, err
    # the module installed (Debian's directory): the next monitor serves the export
    check_well_formed(*run_subprocess("monitor", params | RECURRING), {0})
    assert served(ganesha).get(403) == "/m"
    check_well_formed(*run_subprocess("stop", params), {0})


def one_export_started(ganesha, vol: Path, low: int) -> dict[str, str]:
    """Volume `vol` initialised for Ganesha (Export_Ids low..low+9) with one export, `a` for
    127.0.0.1 at Export_Id `low`, started by the agent; the agent's parameters."""
    (vol / "a").mkdir()
    ganesha.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", f"{low}-{low + 9}", check=True)
    ganesha.cli("export", "add", str(vol), "a", "--client", "127.0.0.1", check=True)
    params = {"server": "ganesha", "volume": str(vol), "config": str(ganesha.config)}
    check_well_formed(*run_subprocess("start", params), {0})
    return params


def test_a_stop_through_a_bus_address_with_no_bus_withdraws_through_the_starts(ganesha, tmpfs_volume):
    """tryout5 K: bus_address is reloadable; changed to a socket path with no bus (a typo) on a
    started resource, the stop said "stopped, 0 live exports withdrawn" (0: Ganesha "not
    running") while the node's Ganesha kept serving the volume. The start's address is in the
    node-local active record: the stop withdraws through it and says so."""
    vol = tmpfs_volume
    params = one_export_started(ganesha, vol, 430)
    assert served(ganesha) == {430: f"{vol}/a"}
    typo = params | {"bus_address": "unix:path=/run/dbus/sytem_bus_socket"}
    (reason,) = check_well_formed(*run_subprocess("monitor", typo | RECURRING), {1})
    assert reason.startswith("cannot reach D-Bus at unix:path=/run/dbus/sytem_bus_socket"), reason
    rc, out, err = run_subprocess("stop", typo)
    check_well_formed(rc, out, err, {0})
    assert served(ganesha) == {}, "withdrawn through the bus of the start"
    assert "stopped, 1 live exports withdrawn" in err and "reached NFS-Ganesha at " in err, err
    assert "the bus address this volume was started with: set bus_address back to it" in err, err
    # nothing recorded (a stop after it) and a configured bus that answers: as before
    check_well_formed(*run_subprocess("stop", typo), {0})
    check_well_formed(*run_subprocess("start", params), {0})
    check_well_formed(*run_subprocess("stop", params), {0})
    assert served(ganesha) == {}


# ---- item 5: probes, the server, exit reasons -----------------------------------------------------

def test_ganesha_probe_is_not_running_when_this_node_cannot_serve(ganesha, tmpfs_volume):
    vol = tmpfs_volume
    params = one_export_started(ganesha, vol, 410)
    check_well_formed(*run_subprocess("monitor", params), {0})
    ganesha.daemon.stop()
    check_well_formed(*run_subprocess("monitor", params), {7})              # server not running
    (reason,) = check_well_formed(*run_subprocess("monitor", params | RECURRING), {1})
    assert "not running" in reason
    ganesha.daemon.start()
    check_well_formed(*run_subprocess("monitor", params), {7})              # nothing live
    assert served(ganesha) == {}, "a probe repairs nothing"
    check_well_formed(*run_subprocess("monitor", params | RECURRING), {0})  # the recurring one does
    assert served(ganesha) == {410: f"{vol}/a"}

    # the resource names another server: a configuration error in every action but stop
    wrong = params | {"server": "knfsd"}
    for action, extra in (("monitor", {}), ("monitor", RECURRING), ("start", {}), ("validate-all", {})):
        (reason,) = check_well_formed(*run_subprocess(action, wrong | extra), {6})
        assert "server=knfsd but the volume" in reason and "initialised for ganesha" in reason, (action, reason)
    assert served(ganesha) == {410: f"{vol}/a"}
    check_well_formed(*run_subprocess("stop", params), {0})
    (reason,) = check_well_formed(*run_subprocess("monitor", wrong), {6})   # a probe where it is mounted
    check_well_formed(*run_subprocess("stop", wrong), {0})


@pytest.mark.parametrize("params, fragment", [
    ({"server": "nfs", "volume": "/srv/v"}, "server: must be 'knfsd' or 'ganesha', got 'nfs'"),
    ({"server": "knfsd", "volume": "/srv/v", "ip": "10.0.0.300"}, "ip: is not an IP address"),
    ({"server": "knfsd"}, "volume: set volume"),
    ({"server": "knfsd", "volume": "/srv/v", "unlock_on_stop": "perhaps"}, "unlock_on_stop: must be a boolean"),
    # tryout5: libdbus refused it ("Address does not contain a colon") only when a start or monitor
    # connected: OCF_ERR_GENERIC on every node, validate-all 0
    ({"server": "ganesha", "volume": "/srv/v", "bus_address": "garbage"}, "bus_address: is not a D-Bus address"),
    # tryout5: classic parameters beside volume= were ignored in silence (the registry's clients served)
    ({"server": "knfsd", "volume": "/srv/v", "clientspec": "10.0.0.1"}, "clientspec: classic-mode parameters"),
    ({"server": "ganesha", "volume": "/srv/v", "options": "ro", "fsid": "7"}, "options, fsid: classic-mode"),
])
def test_parameter_errors_say_why_in_one_exit_reason(params, fragment):
    for action in ("start", "validate-all", "monitor"):
        extra = RECURRING if action == "monitor" else {}
        (reason,) = check_well_formed(*run_subprocess(action, params | extra), {6})
        assert reason.startswith(fragment), reason
    check_well_formed(*run_subprocess("monitor", params), {7})   # a probe: nothing can be running
    check_well_formed(*run_subprocess("stop", params), {0})      # a stop: nothing to withdraw


# ---- item 4: drop-in parity with ocf:heartbeat:exportfs --------------------------------------------

def classic(box, directory: str, **extra: str) -> dict[str, str]:
    return {"server": "knfsd", "directory": directory, "clientspec": "127.0.0.1", "options": "rw",
            "config": str(box.config), **extra}


def test_classic_bracketed_ipv6_clients_as_upstream_writes_them(knfsd):
    vol = knfsd.volume
    (vol / "six").mkdir()
    params = classic(knfsd, f"{vol}/six", clientspec="[2001:db8::10] [2001:db8::]/64")
    check_well_formed(*run_inprocess("start", params), {0})
    assert sorted(etab(knfsd)[f"{vol}/six"]) == ["2001:db8::/64", "2001:db8::10"]
    check_well_formed(*run_inprocess("monitor", params | RECURRING), {0})
    check_well_formed(*run_inprocess("stop", params), {0})
    assert etab(knfsd) == {}


def test_classic_directory_list_with_upstreams_fsid_rule(knfsd):
    """`directory="/a /b"`, fsid=105: two exports, fsids 105 and 106 (upstream's bump_fsid),
    stored once on the volume; without an fsid, each directory's generated fsid is kept."""
    from ganesha_ha.registry import Registry

    vol = knfsd.volume
    for d in ("usr", "var", "x", "y"):
        (vol / d).mkdir()
    params = classic(knfsd, f"{vol}/usr {vol}/var/", fsid="105", unlock_on_stop="no",
                     wait_for_leasetime_on_stop="false", rmtab_backup=".rmtab")
    check_well_formed(*run_inprocess("validate-all", params), {0})
    check_well_formed(*run_inprocess("start", params), {0})
    assert etab_fsids(knfsd) == {f"{vol}/usr": "105", f"{vol}/var": "106"}
    reg = {e.path: e.knfsd.fsid for e in Registry(vol).load().exports}
    assert reg == {"usr": "105", "var": "106"}
    check_well_formed(*run_inprocess("start", params), {0})       # idempotent
    check_well_formed(*run_inprocess("monitor", params | RECURRING), {0})
    # one directory unexported behind the resource's back: degraded, not stopped
    import subprocess

    subprocess.run(["exportfs", "-u", f"127.0.0.1:{vol}/var"], check=True)
    (reason,) = check_well_formed(*run_inprocess("monitor", params | RECURRING), {190})
    assert reason.startswith("not live: var: not exported as configured"), reason
    check_well_formed(*run_inprocess("stop", params), {0})
    assert etab(knfsd) == {}
    # no fsid: one is generated per directory, once, and every later start uses it
    gen = classic(knfsd, f"{vol}/x {vol}/y")
    check_well_formed(*run_inprocess("start", gen), {0})
    first = etab_fsids(knfsd)
    check_well_formed(*run_inprocess("stop", gen), {0})
    check_well_formed(*run_inprocess("start", gen), {0})
    assert etab_fsids(knfsd) == first and len(set(first.values())) == 2
    check_well_formed(*run_inprocess("stop", gen), {0})


# tools/ocft/exportfs and tools/ocft/exportfs-multidir of ClusterLabs/resource-agents: each
# CASE's parameters and expected codes, in the file's order; /usr, /var and /no_such are
# directories of the volume here (the classic mode exports shared file systems only).
# Every CASE begins with upstream's "prepare": set_testenv, then a stop.
OCFT_ENV = {"exportfs": {"directory": "usr", "fsid": "105", "clientspec": "*", "CRM_meta_timeout": "30000"},
            "exportfs-multidir": {"directory": "usr var", "fsid": "105", "clientspec": "*",
                                  "CRM_meta_timeout": "30000"}}
OCFT_CASES = {
    "exportfs": [
        ("check base env", {}, [("start", 0)]),
        ("check base env: invalid 'OCF_RESKEY_directory'", {"directory": "no_such"}, [("start", 6)]),
        ("check base env: non-decimal 'OCF_RESKEY_fsid'", {"fsid": "4f838db14f838db14f838db14f838db1"},
         [("start", 0)]),
        ("unimplemented command", {}, [("no_cmd", 3)]),
        ("normal start", {}, [("start", 0)]),
        ("normal stop", {}, [("start", None), ("stop", 0)]),
        ("double start", {}, [("start", None), ("start", 0)]),
        ("double stop", {}, [("stop", 0)]),
        ("stop with no env", {"directory": "no_such"}, [("stop", 0)]),
        ("started: monitor", {}, [("start", None), ("monitor", 0)]),
        ("not started: monitor", {}, [("monitor", 7)]),
    ],
    "exportfs-multidir": [
        ("check base env", {}, [("start", 0)]),
        ("check base env: invalid 'OCF_RESKEY_directory'", {"directory": "no_such"}, [("start", 6)]),
        ("check base env: invalid 'OCF_RESKEY_fsid'", {"fsid": "root"}, [("start", 6)]),
        ("unimplemented command", {}, [("no_cmd", 3)]),
        ("normal start", {}, [("start", 0)]),
        ("normal stop", {}, [("start", None), ("stop", 0)]),
        ("double start", {}, [("start", None), ("start", 0)]),
        ("double stop", {}, [("stop", 0)]),
        ("stop with no env", {"directory": "usr no_such"}, [("stop", 0)]),
        ("started: monitor", {}, [("start", None), ("monitor", 0)]),
        ("not started: monitor", {}, [("monitor", 7)]),
    ],
}


@pytest.mark.parametrize("suite", list(OCFT_CASES))
def test_upstream_ocft_cases_against_the_classic_mode(knfsd, suite):
    vol = knfsd.volume
    for d in ("usr", "var"):
        (vol / d).mkdir(exist_ok=True)

    def params(env: dict[str, str]) -> dict[str, str]:
        p = {"server": "knfsd", "config": str(knfsd.config)} | env
        p["directory"] = " ".join(f"{vol}/{d}" for d in p["directory"].split())
        return p

    results = []
    for name, env, steps in OCFT_CASES[suite]:
        p = params(OCFT_ENV[suite] | env)
        run_subprocess("stop", params(OCFT_ENV[suite]))     # the CASE's "prepare"
        for action, want in steps:
            rc, out, err = run_subprocess(action, p)
            results.append((name, action, rc, want))
            if want is not None and action != "no_cmd":
                check_well_formed(rc, out, err, {want})
    assert [(n, a, rc) for n, a, rc, want in results if want is not None and rc != want] == []
    run_subprocess("stop", params(OCFT_ENV[suite]))
    assert etab(knfsd) == {}


# ---- item 6: one file system, one mode ------------------------------------------------------------

def test_a_classic_and_a_volume_resource_never_share_a_file_system(knfsd):
    """The issue's fight: a classic stop left the export in the registry and the volume's next
    monitor put it back. Whichever starts second is refused (configuration error, with the
    reason); each mode's probe says so too; the one running is untouched."""
    vol = knfsd.volume
    for d in ("a", "b"):
        (vol / d).mkdir()
    cli(knfsd.config, "volume", "init", str(vol), "--server", "knfsd")
    cli(knfsd.config, "export", "add", str(vol), "a", "--client", "127.0.0.1")
    volume = {"server": "knfsd", "volume": str(vol), "config": str(knfsd.config)}
    b = classic(knfsd, f"{vol}/b")
    check_well_formed(*run_inprocess("start", volume), {0})
    for action, extra in (("start", {}), ("validate-all", {}), ("monitor", {}), ("monitor", RECURRING)):
        (reason,) = check_well_formed(*run_inprocess(action, b | extra), {6})
        assert "is managed on this node by a volume-mode resource" in reason, reason
    assert sorted(etab(knfsd)) == [f"{vol}/a"]
    check_well_formed(*run_inprocess("stop", b), {0})
    assert sorted(etab(knfsd)) == [f"{vol}/a"]
    check_well_formed(*run_inprocess("stop", volume), {0})

    check_well_formed(*run_inprocess("start", b), {0})
    for action, extra in (("start", {}), ("validate-all", {}), ("monitor", {}), ("monitor", RECURRING)):
        (reason,) = check_well_formed(*run_inprocess(action, volume | extra), {6})
        assert f"classic resources (directory=) export {vol}/b from {vol} on this node" in reason, reason
    assert sorted(etab(knfsd)) == [f"{vol}/b"]
    check_well_formed(*run_inprocess("stop", b), {0})
    assert etab(knfsd) == {}
    check_well_formed(*run_inprocess("monitor", volume | RECURRING), {7})
    assert etab(knfsd) == {}, "nothing puts the classic export back"


# ---- item 8: NLM locks released at a knfsd stop ---------------------------------------------------

def test_knfsd_stop_releases_nlm_locks_and_can_wait_out_the_lease(knfsd):
    vol = knfsd.volume
    (vol / "a").mkdir()
    cli(knfsd.config, "volume", "init", str(vol), "--server", "knfsd")
    cli(knfsd.config, "export", "add", str(vol), "a", "--client", "127.0.0.1")
    params = {"server": "knfsd", "volume": str(vol), "config": str(knfsd.config), "ip": "192.0.2.50"}
    unlock_fs, unlock_ip, lease = (knfsd.proc / n for n in ("unlock_filesystem", "unlock_ip", "nfsv4leasetime"))

    # the nfsd module is not loaded (no control files): the stop succeeds and says so
    check_well_formed(*run_inprocess("start", params), {0})
    rc, out, err = run_inprocess("stop", params)
    check_well_formed(rc, out, err, {0})
    assert "nfsd not loaded" in err and not unlock_fs.exists()

    # with them: the volume's file system, then the floating IP, as upstream's unlock_on_stop
    for f in (unlock_fs, unlock_ip):
        f.write_text("")
    lease.write_text("1\n")
    check_well_formed(*run_inprocess("start", params), {0})
    rc, out, err = run_inprocess("stop", params)
    check_well_formed(rc, out, err, {0})
    assert unlock_fs.read_text() == f"{vol}\n" and unlock_ip.read_text() == "192.0.2.50\n"
    assert f"NLM locks on {vol} released" in err and "NLM locks taken through 192.0.2.50 released" in err

    # unlock_on_stop=0: untouched; wait_for_leasetime_on_stop=1: lease + 2 s
    for f in (unlock_fs, unlock_ip):
        f.write_text("")
    check_well_formed(*run_inprocess("start", params), {0})
    t0 = time.monotonic()
    rc, out, err = run_inprocess("stop", params | {"unlock_on_stop": "0", "wait_for_leasetime_on_stop": "1"})
    waited = time.monotonic() - t0
    check_well_formed(rc, out, err, {0})
    assert unlock_fs.read_text() == "" and unlock_ip.read_text() == ""
    assert waited >= 3.0 and "waited 3 s for NFSv4 leases (1 s)" in err, (waited, err)

    # the classic mode: its stop releases the locks of its file system too
    cl = classic(knfsd, f"{vol}/a")
    check_well_formed(*run_inprocess("start", cl), {0})
    assert etab(knfsd) == {f"{vol}/a": ["127.0.0.1"]}
    check_well_formed(*run_inprocess("stop", cl), {0})
    assert unlock_fs.read_text() == f"{vol}\n" and etab(knfsd) == {}
