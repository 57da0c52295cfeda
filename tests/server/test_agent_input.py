"""Hostile input through the agent's parameters, and the classic mode's directory checks
(issue 7, points 4 and 5).

What Pacemaker hands the agent is whatever an administrator typed into the CIB: any
parameter may hold quotes, braces, `;`, `#`, newlines, `..`, very long or undecodable
values. Every one must end in a deliberate OCF code with one clear line (a bad value is
OCF_ERR_CONFIGURED), or be exported exactly as the model says (the monitor's comparison of
etab with the registry is clean and the stop takes it away), and never in a traceback.

The property tests run the agent in-process (`ganesha_ha.agent.run`, what ra/exports runs)
against the real exportfs in a private /var/lib/nfs; a handful of cases go through the real
ra/exports too. Default: a few hundred examples; `--long`: over 10 000. The command line's half is test_cli_input.py.
"""
from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from agent_helpers import Sandbox, check_well_formed, knfsd_sandbox, run_inprocess, run_subprocess
from conftest import IS_ROOT
from ganesha_ha.model import normalize_fsid
from strategies import CLASSIC_FIELDS, directories, hostile, ipv4, ipv6

def _long_run(request) -> bool:
    return bool(request.config.getoption("--long"))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    from knfsd_ns import skip_reason

    if skip_reason():
        pytest.skip(skip_reason())
    with knfsd_sandbox(tmp_path_factory.mktemp("agent-input")) as box:
        yield box


# ---- the property tests -----------------------------------------------------------------------

def _resolves(host: str) -> bool:
    """A client exportfs can write to etab: anything but a host name this node cannot resolve."""
    import socket

    from ganesha_ha.backends.knfsd_table import client_kind

    if client_kind(host) != "fqdn" or ":" in host or host.replace(".", "").isdigit():
        return True
    try:
        return bool(socket.getaddrinfo(host, None))
    except OSError:
        return False


def _classic_example(sandbox: Sandbox, data) -> None:
    bad = data.draw(st.just(set()) | st.sets(st.sampled_from(["directory", *CLASSIC_FIELDS]), min_size=1),
                    label="hostile fields")
    directory, make_it = data.draw(directories(sandbox.volume, "directory" not in bad, spaces=False),
                                   label="directory")
    params = {"server": "knfsd", "directory": directory, "config": str(sandbox.config)}
    for name, (good, hostile_values) in CLASSIC_FIELDS.items():
        params[name] = data.draw(hostile_values if name in bad else good, label=name)
    if make_it:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError:
            make_it = False  # the file system refuses the name (too long...): a missing directory
    exists = os.path.isdir(directory)
    before = sandbox.registry_exports()
    try:
        rc, out, err = run_inprocess("start", params)
        # a directory that is not there (volume not mounted yet?) is local: generic, never fatal;
        # a host name this node cannot resolve (it has no DNS) is a warning and gets no etab line
        # while the export serves another client; when no client of it resolves here, the export
        # would serve nobody: generic too, and the identity, stored before exportfs ran, is kept
        nobody = rc == 1 and "Failed to resolve" in err
        warned = "does not resolve on this node" in err
        event(f"start rc {rc}" + (" (no client resolves)" if nobody else " (a name unresolved: warned)" if warned else ""))
        allowed = {0, 6} if exists else {1, 6}
        check_well_formed(rc, out, err, allowed | ({1} if nobody else set()))
        if rc == 0:
            from ganesha_ha.backends import knfsd_table

            (exp,) = [e for e in sandbox.registry_exports() if e not in before]
            if params["fsid"].strip():  # the administrator's fsid is the one used
                assert exp["knfsd"]["fsid"] == normalize_fsid(params["fsid"].strip())
            # exported exactly as the registry says: one etab line per client that resolves here,
            # with the registry's fsid; and the monitor's comparison of etab with the registry is clean
            lines = sandbox.etab_for(directory)
            assert sorted(e.client for e in lines) == sorted(
                knfsd_table.normalize_client(c["host"]) for c in exp["clients"] if _resolves(c["host"])), (lines, exp)
            assert {knfsd_table.normalize_fsid(e.fsid) for e in lines} <= {knfsd_table.normalize_fsid(exp["knfsd"]["fsid"])}
            rc, out, err = run_inprocess("monitor", params | {"CRM_meta_interval": "10000"})
            check_well_formed(rc, out, err, {0})
        elif not nobody:
            assert sandbox.registry_exports() == before, "a refused start changed the registry"
        rc, out, err = run_inprocess("stop", params)
        check_well_formed(rc, out, err, {0})
        assert sandbox.etab_for(directory) == []
        assert sandbox.stray_state() == []
    finally:
        sandbox.reset()


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_classic_parameters(sandbox, data):
    _classic_example(sandbox, data)


@pytest.mark.long
@pytest.mark.skipif(not IS_ROOT, reason="needs root")
@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_classic_parameters_long(sandbox, data):
    _classic_example(sandbox, data)


def _other_params_example(sandbox: Sandbox, data) -> None:
    """server, volume, ip, bus_address and config: validate-all, probe, monitor, stop, start."""
    params = {"server": data.draw(st.one_of(st.sampled_from(["knfsd", "ganesha", "", "KNFSD", "nfsd"]),
                                            hostile), label="server"),
              "volume": data.draw(st.one_of(st.just(str(sandbox.volume)), st.just("/"),
                                            st.just(str(sandbox.work)), hostile,
                                            hostile.map(lambda s: "/" + s)), label="volume"),
              "config": data.draw(st.one_of(st.just(str(sandbox.config)), hostile), label="config")}
    for name, strategy in (("ip", st.one_of(ipv4, ipv6, hostile)), ("bus_address", hostile)):
        if data.draw(st.booleans(), label=f"set {name}"):
            params[name] = data.draw(strategy, label=name)
    before = sandbox.registry_exports()
    # validate-all: 0 or "bad configuration"; probes and stops never escalate a bad configuration
    check_well_formed(*run_inprocess("validate-all", params), {0, 5, 6})
    check_well_formed(*run_inprocess("monitor", params), {0, 1, 5, 6, 7})
    check_well_formed(*run_inprocess("monitor", params | {"CRM_meta_interval": "10000"}), {0, 1, 5, 6, 7})
    check_well_formed(*run_inprocess("start", params | {"CRM_meta_timeout": "2000"}), {0, 1, 5, 6})
    check_well_formed(*run_inprocess("stop", params), {0, 1})
    assert sandbox.stray_state() == []
    assert sandbox.registry_exports() == before
    sandbox.reset()


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_volume_mode_parameters(sandbox, data):
    _other_params_example(sandbox, data)


@pytest.mark.long
@pytest.mark.skipif(not IS_ROOT, reason="needs root")
@settings(max_examples=2_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_volume_mode_parameters_long(sandbox, data):
    _other_params_example(sandbox, data)


# ---- classic mode: the directory, as `export add` checks it (point 5) --------------------------

def classic(sandbox: Sandbox, directory, **extra) -> dict[str, str]:
    return {"server": "knfsd", "directory": str(directory), "clientspec": "127.0.0.1 192.0.2.0/24",
            "options": "rw,no_root_squash", "config": str(sandbox.config), **extra}


def registry_bytes(sandbox: Sandbox) -> bytes | None:
    path = sandbox.volume / ".ganesha-ha" / "registry.json"
    return path.read_bytes() if path.exists() else None


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
@pytest.mark.parametrize("case", ["symlink-out", "symlink-in", "dotdot", "missing", "unmounted", "white-space"])
def test_classic_mode_refuses_directories_export_add_refuses(sandbox, case):
    """Outside the volume, through a symbolic link, not there, or on the root file system
    because the volume is not mounted: refused before anything is written or exported."""
    vol = sandbox.volume
    if not (vol / ".ganesha-ha" / "registry.json").exists():
        from ganesha_ha.registry import Registry

        Registry(vol).init("knfsd", None, 1000)
    (vol / "real").mkdir(exist_ok=True)
    for name, target in (("out", "/etc"), ("in", str(vol / "real"))):
        if not (vol / name).is_symlink():
            if (vol / name).is_dir():   # the volume-mode property test may have made one by that name
                shutil.rmtree(vol / name)
            os.symlink(target, vol / name)
    bare = sandbox.work / "not-mounted-yet" / "data"  # a mount point whose volume is elsewhere
    bare.mkdir(parents=True, exist_ok=True)
    directory, code, fragment = {
        "symlink-out": (vol / "out", 6, "outside the volume"),
        "symlink-in": (vol / "in", 6, "goes through a symbolic link"),
        "dotdot": (f"{vol}/real/../../etc", 6, "'..'"),
        # the volume (it holds a registry) is mounted: a directory missing from it is a
        # configuration error, as ocf:heartbeat:exportfs says (OCF_ERR_CONFIGURED)
        "missing": (vol / "nothere", 6, "does not exist in"),
        "unmounted": (bare, 1, "on the root file system"),
        # found by the long run: parameters were stripped, so "<vol>/ " exported the whole volume
        "white-space": (f"{vol}/ ", 6, "white space"),
    }[case]
    before = registry_bytes(sandbox)
    rc, out, err = run_inprocess("start", classic(sandbox, directory))
    (error,) = check_well_formed(rc, out, err, {code})
    assert fragment in error, err
    assert registry_bytes(sandbox) == before
    assert sandbox.stray_state() == []
    assert (sandbox.state / "etab").read_text() == ""
    rc, out, err = run_inprocess("stop", classic(sandbox, directory))
    check_well_formed(rc, out, err, {0})


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_classic_stop_with_bad_parameters_succeeds(sandbox):
    """A failed stop gets the node fenced: a typo in clientspec or options must not."""
    (sandbox.volume / "s").mkdir(exist_ok=True)
    for bad in ({"clientspec": "0"}, {"options": "rw,frobnicate"}, {"fsid": "0"}, {"clientspec": "a;b"}):
        params = classic(sandbox, sandbox.volume / "s", **bad)
        rc, out, err = run_inprocess("start", params)
        check_well_formed(rc, out, err, {6})
        rc, out, err = run_inprocess("stop", params)
        check_well_formed(rc, out, err, {0})
    # started with good parameters, then a typo: the stop still withdraws what was started
    good = classic(sandbox, sandbox.volume / "s")
    check_well_formed(*run_inprocess("start", good), {0})
    assert len(sandbox.etab_for(good["directory"])) == 2
    check_well_formed(*run_inprocess("stop", good | {"clientspec": "a;b"}), {0})
    assert sandbox.etab_for(good["directory"]) == []
    sandbox.reset()


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_classic_directory_spelt_with_digits_keeps_its_identity(sandbox):
    """A directory named like an Export_Id ("1000", "2024") is a directory: its fsid,
    generated at the first start, is the one every later start (every node) uses."""
    from ganesha_ha.registry import Registry

    sandbox.reset()
    check_well_formed(*run_inprocess("start", classic(sandbox, sandbox.volume / "real")), {0})
    first = Registry(sandbox.volume).load().exports[0]
    name = str(first.export_id)  # a directory spelt like the id of another export
    (sandbox.volume / name).mkdir(exist_ok=True)
    params = classic(sandbox, sandbox.volume / name)
    fsids = []
    for _ in range(3):
        check_well_formed(*run_inprocess("start", params), {0})
        fsids.append(next(e.knfsd.fsid for e in Registry(sandbox.volume).load().exports if e.path == name))
        check_well_formed(*run_inprocess("stop", params), {0})
    assert len(set(fsids)) == 1, fsids
    assert next(e for e in Registry(sandbox.volume).load().exports if e.path == "real") == first
    check_well_formed(*run_inprocess("stop", classic(sandbox, sandbox.volume / "real")), {0})
    sandbox.reset()


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_classic_options_without_rw_keep_what_an_older_registry_granted(sandbox):
    """Options without rw/ro are read-only, as exportfs (and ocf:heartbeat:exportfs) makes them
    (issue 13, item 7); a resource started before registry schema 4 was exported read-write with
    the same options, and keeps that: the 3 -> 4 migration wrote its `rw` out (no upgrade changes
    a grant)."""
    import json

    from ganesha_ha.registry import Registry

    sandbox.reset()
    vol = sandbox.volume
    for d in ("old", "new"):
        (vol / d).mkdir(exist_ok=True)
    params = {d: classic(sandbox, vol / d, clientspec="192.0.2.0/24", options="sync") for d in ("old", "new")}
    check_well_formed(*run_inprocess("start", params["old"]), {0})
    check_well_formed(*run_inprocess("stop", params["old"]), {0})
    reg = Registry(vol)
    doc = json.loads(reg.path.read_bytes())   # as ganesha-ha at schema 3 stored "old": no rw, read-write
    (old,) = doc["exports"]
    assert old["clients"] == [{"host": "192.0.2.0/24", "options": ["sync"]}]
    reg.path.write_text(json.dumps(dict(doc, version=3)))
    for d in ("old", "new"):
        check_well_formed(*run_inprocess("start", params[d]), {0})
    etab = {line.split("\t")[0]: line.split("(")[1].split(",")[0]
            for line in (sandbox.state / "etab").read_text().splitlines()}
    assert etab == {f"{vol}/new": "ro", f"{vol}/old": "rw"}
    for d in ("old", "new"):
        check_well_formed(*run_inprocess("monitor", params[d]), {0})
        check_well_formed(*run_inprocess("stop", params[d]), {0})
    sandbox.reset()


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_long_paths_are_answers_not_crashes(sandbox):
    """Found by the property test: a volume or config path with a component over 255 bytes
    raised OSError (ENAMETOOLONG) out of the agent; and a mount point longer than 255 bytes,
    legal and real, made the node-local marker's file name too long for every action."""
    from ganesha_ha import linux

    base = {"server": "knfsd", "volume": str(sandbox.volume), "config": str(sandbox.config)}
    for params, action, code in (({"volume": "/" + "0" * 256}, "start", 1), ({"volume": "/" + "0" * 256}, "monitor", 7),
                                 ({"config": "0" * 256}, "validate-all", 6), ({"config": "0" * 256}, "start", 6)):
        rc, out, err = run_inprocess(action, base | params)
        check_well_formed(rc, out, err, {code})
    mp = sandbox.work.joinpath(*["m" * 60] * 5)  # a 300-byte mount point
    mp.mkdir(parents=True, exist_ok=True)
    linux.mount("gha-long-mp", str(mp), "tmpfs", 0, "size=1m")
    try:
        (mp / "d").mkdir()
        params = {"server": "knfsd", "volume": str(mp), "config": str(sandbox.config)}
        from ganesha_ha.settings import load_settings
        from ganesha_ha.volume import Volume

        volume = Volume(mp, load_settings(sandbox.config))
        volume.init("knfsd")
        volume.add(str(mp / "d"), ["127.0.0.1"])
        check_well_formed(*run_inprocess("start", params), {0})
        check_well_formed(*run_inprocess("monitor", params | {"CRM_meta_interval": "10000"}), {0})
        assert len(sandbox.etab_for(str(mp / "d"))) == 1
        check_well_formed(*run_inprocess("stop", params), {0})
        assert sandbox.etab_for(str(mp / "d")) == []
        check_well_formed(*run_inprocess("monitor", params), {7})
    finally:
        linux.umount(str(mp), lazy=True)


# ---- the same through the real ra/exports, as Pacemaker runs it --------------------------------

RA_CASES = {
    # name: (directory under the volume, clientspec, options, fsid, expected start code)
    # no space: in directory= a space separates directories (as ocf:heartbeat:exportfs reads it)
    "config-hostile name": ('q"u{o}t#e;$(x)`y`\\\\ü', "127.0.0.1 192.0.2.0/24", "rw,sync", "", 0),
    "space in a name": ("d1 two", "127.0.0.1", "rw", "", 6),
    "quote in clientspec": ("d1", 'a"b;c', "rw", "", 6),
    "fsid 0 in options": ("d1", "127.0.0.1", "rw,fsid=0", "", 6),
    "newline in directory": ("d\nx", "127.0.0.1", "rw", "", 6),
    "dotdot": ("../../etc", "127.0.0.1", "rw", "", 6),
    "undecodable clientspec": ("d1", os.fsdecode(b"\xff\xfe(rw)"), "", "", 6),
    "10 kB clientspec": ("d1", "1" * 10_000, "", "", 6),
    "option injection": ("d1", "127.0.0.1", "rw) *(rw,no_root_squash", "", 6),
    "symlink to /etc": ("out", "127.0.0.1", "rw", "", 6),
}


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
@pytest.mark.parametrize("case", list(RA_CASES))
def test_hostile_parameters_through_ra_exports(sandbox, case):
    name, clientspec, options, fsid, code = RA_CASES[case]
    vol = sandbox.volume
    (vol / "d1").mkdir(exist_ok=True)
    if not (vol / "out").is_symlink():
        os.symlink("/etc", vol / "out")
    if code == 0:
        (vol / name).mkdir(exist_ok=True)
    directory = f"{vol}/{name}"
    params = {"server": "knfsd", "directory": directory, "clientspec": clientspec, "options": options,
              "fsid": fsid, "config": str(sandbox.config)}
    before = sandbox.registry_exports()
    try:
        check_well_formed(*run_subprocess("start", params), {code})
        if code == 0:
            assert len(sandbox.etab_for(directory)) == 2
            check_well_formed(*run_subprocess("monitor", params | {"CRM_meta_interval": "10000"}), {0})
        else:
            assert sandbox.registry_exports() == before
            assert (sandbox.state / "etab").read_text() == ""
        check_well_formed(*run_subprocess("stop", params), {0})
        assert (sandbox.state / "etab").read_text() == ""
        assert sandbox.stray_state() == []
    finally:
        sandbox.reset()


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_classic_start_refuses_a_server_other_than_the_volumes(sandbox):
    """The sandbox volume is a knfsd volume: server=ganesha on it is a configuration error
    (volume mode checks the same), not a knfsd export made silently."""
    (sandbox.volume / "srv").mkdir(exist_ok=True)
    check_well_formed(*run_inprocess("start", classic(sandbox, sandbox.volume / "srv")), {0})
    check_well_formed(*run_inprocess("stop", classic(sandbox, sandbox.volume / "srv")), {0})
    before = registry_bytes(sandbox)
    rc, out, err = run_inprocess("start", classic(sandbox, sandbox.volume / "srv", server="ganesha"))
    (error,) = check_well_formed(rc, out, err, {6})
    assert "was initialised for knfsd" in error, err
    assert registry_bytes(sandbox) == before and sandbox.etab_for(str(sandbox.volume / "srv")) == []


# ---- validate-all answers what start answers (issue 14, item 3) -------------------------------

# (name, parameters over `classic(sandbox, <vol>/<directory>)`, directory, the code both give);
# the bad inputs of issue 14, of RA_CASES, of the classic stop test and of the directory checks
PARITY_CLASSIC = [
    ("issue: fsid=abc", {"fsid": "abc"}, "p", 6),
    ("issue: fsid=-5", {"fsid": "-5"}, "p", 6),
    ("issue: options=rw,bogus_opt", {"options": "rw,bogus_opt"}, "p", 6),
    ("issue: bracketed IPv6 (accepted now)", {"clientspec": "[2001:db8::10] [2001:db8::]/64"}, "p", 0),
    ("issue: directories with a UUID fsid", {"fsid": "4f838db14f838db14f838db14f838db1"}, "p q", 6),
    ("unlock_on_stop not a boolean", {"unlock_on_stop": "maybe"}, "p", 6),
    ("wait_for_leasetime_on_stop not a boolean", {"wait_for_leasetime_on_stop": "2"}, "p", 6),
    ("quote in clientspec", {"clientspec": 'a"b;c'}, "p", 6),
    ("fsid 0 in options", {"options": "rw,fsid=0"}, "p", 6),
    ("undecodable clientspec", {"clientspec": os.fsdecode(b"\xff\xfe(rw)")}, "p", 6),
    ("10 kB clientspec", {"clientspec": "1" * 10_000}, "p", 6),
    ("option injection", {"options": "rw) *(rw,no_root_squash"}, "p", 6),
    ("clientspec 0", {"clientspec": "0"}, "p", 6),
    ("options frobnicate", {"options": "rw,frobnicate"}, "p", 6),
    ("fsid 0", {"fsid": "0"}, "p", 6),
    ("clientspec a;b", {"clientspec": "a;b"}, "p", 6),
    ("a client twice", {"clientspec": "127.0.0.1 127.0.0.1"}, "p", 6),
    ("server nfsd", {"server": "nfsd"}, "p", 6),
    ("server of another volume", {"server": "ganesha"}, "p", 6),
    ("ip not an address", {"ip": "not-an-ip"}, "p", 6),
    ("config unreadable", {"config": "0" * 256}, "p", 6),
    ("volume and directory", {"volume": "/srv"}, "p", 6),
    ("newline in directory", {}, "d\nx", 6),
    ("space in a name", {}, "d1 two", 6),
    ("dotdot", {}, "../../etc", 6),
    ("symlink to /etc", {}, "out", 6),
    ("symlink inside", {}, "in", 6),
    ("missing from the mounted volume", {}, "nothere", 6),
    ("white space", {}, "p ", 6),
    ("the same directory twice", {}, "p p/", 6),
]


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_validate_all_runs_the_checks_start_runs(sandbox):
    """pcs runs validate-all at `resource create`: it must say what start will say (one
    function, Agent.validate, called by both), for every bad input known, in both modes, and
    each failing answer carries one exit reason. The only difference is a volume that is not
    mounted here: not a configuration error (validate-all 0), a local one at start (1)."""
    vol = sandbox.volume
    sandbox.reset()
    if not (vol / ".ganesha-ha" / "registry.json").exists():
        from ganesha_ha.registry import Registry

        Registry(vol).init("knfsd", None, 1000)
    for d in ("p", "q", "d1", "real"):
        (vol / d).mkdir(exist_ok=True)
    for name, target in (("out", "/etc"), ("in", str(vol / "real"))):
        if not (vol / name).is_symlink():
            if (vol / name).is_dir():   # the volume-mode property test may have made one by that name
                shutil.rmtree(vol / name)
            os.symlink(target, vol / name)
    seen = {}
    for name, extra, directory, code in PARITY_CLASSIC:
        params = classic(sandbox, f"{vol}/{directory}") | extra
        answers = {action: run_inprocess(action, params) for action in ("validate-all", "start")}
        reasons = {action: check_well_formed(rc, out, err, {code}) for action, (rc, out, err) in answers.items()}
        if code:   # the same reason (the warnings logged on the way carry their own time)
            assert reasons["validate-all"] == reasons["start"], name
        seen[name] = answers["start"][0]
        # a settings file that cannot be read fails the stop too (left as it was: the node's
        # paths are unknown without it)
        check_well_formed(*run_inprocess("stop", params), {0, 1} if "config" in extra else {0})
        assert (sandbox.state / "etab").read_text() == "", name
    assert len(seen) == len(PARITY_CLASSIC)

    # volume mode, on the same knfsd volume
    base = {"server": "knfsd", "volume": str(vol), "config": str(sandbox.config), "CRM_meta_timeout": "2000"}
    for name, extra, code in [("server nfsd", {"server": "nfsd"}, 6), ("relative volume", {"volume": "vol"}, 6),
                              ("no volume", {"volume": ""}, 6), ("bad ip", {"ip": "1.2.3.4.5"}, 6),
                              ("server of another volume", {"server": "ganesha"}, 6),
                              ("not initialised", {"volume": str(sandbox.work / "bare-mount")}, 6),
                              ("unlock_on_stop not a boolean", {"unlock_on_stop": "yess"}, 6)]:
        if name == "not initialised":
            from ganesha_ha import linux

            (sandbox.work / "bare-mount").mkdir(exist_ok=True)
            if not linux.is_mountpoint(sandbox.work / "bare-mount"):
                linux.mount("gha-bare", str(sandbox.work / "bare-mount"), "tmpfs", 0, "size=1m")
        params = base | extra
        answers = [run_inprocess(action, params) for action in ("validate-all", "start")]
        reasons = [check_well_formed(rc, out, err, {code}) for rc, out, err in answers]
        assert reasons[0] == reasons[1], name
        check_well_formed(*run_inprocess("stop", params), {0})

    # the one difference: the classic directory's file system is not mounted here
    bare = sandbox.work / "not-mounted-yet" / "data"
    bare.mkdir(parents=True, exist_ok=True)
    check_well_formed(*run_inprocess("validate-all", classic(sandbox, bare)), {0})
    (reason,) = check_well_formed(*run_inprocess("start", classic(sandbox, bare)), {1})
    assert "is its file system mounted on this node?" in reason
    sandbox.reset()
