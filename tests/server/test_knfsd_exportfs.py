"""KnfsdBackend against the real exportfs (nfs-utils 2.6.2), in a private mount namespace.

Every test that runs exportfs does so inside `knfsd_ns.private_nfs_state`, where
/var/lib/nfs is a temp dir: the host's export table is never read or written. The kernel
has no nfsd module here; exportfs still maintains etab, which is what is checked.

What these tests pin down (and the report quotes):
* etab formats: `*` is written `*` (not `<world>`), IPv6 without brackets (`fe80::1`,
  `fd00::/64`), a space as `\\040`, a UUID fsid verbatim, 4000000000 as `fsid=-294967296`.
* A single address or host name is written under whatever name exportfs already knows for
  that address (127.0.0.1 may come back as `localhost`); drift matches such clients by address.
* 1000 exports: 1 exportfs process to apply, 1 to withdraw, 0 to check drift.
* ganesha-ha and the upstream ocf:heartbeat:exportfs agent produce identical etab lines.
"""
from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from ganesha_ha.context import VolumeContext
from ganesha_ha.backends.knfsd import KnfsdBackend
from ganesha_ha.backends.knfsd_table import chunk_args, desired_entries, export_dir
from ganesha_ha.errors import (ApplyError, IdCollisionError, NotInstalledError,
                               ServerUnavailableError)
from ganesha_ha.model import Export, KnfsdOptions

from knfsd_ns import (REAL_EXPORTFS, calls, counting_exportfs, etab_lines, make_settings,
                      mount_tmpfs, private_nfs_state, skip_reason, volume)

UPSTREAM_RA = Path("/usr/lib/ocf/resource.d/heartbeat/exportfs")
UUID = "0b5b7f4e-1b2c-4d3e-8f9a-0123456789ab"

root = pytest.mark.root  # the tests that run exportfs; the rmtab ones need neither root nor exportfs


def exp(path, clients, fsid, export_id=1, **kw) -> Export:
    return Export(path=path, export_id=export_id, knfsd=KnfsdOptions(fsid), pseudo=f"/e{export_id}", clients=clients, **kw)


@pytest.fixture
def ns(tmp_path):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with private_nfs_state(tmp_path / "ns") as state:
        yield state


@pytest.fixture
def vol(ns, tmp_path) -> VolumeContext:
    mp = tmp_path / "vol"
    mount_tmpfs(mp)
    return volume(mp)


@pytest.fixture
def counted(tmp_path):
    return counting_exportfs(tmp_path / "bin")


@pytest.fixture
def backend(counted, tmp_path) -> KnfsdBackend:
    return KnfsdBackend(make_settings(counted[0], runtime_dir=tmp_path / "run"))


def by_client(state: Path, directory: Path | str) -> dict[str, str]:
    """etab lines of one directory, raw, keyed by the client field."""
    prefix = str(directory)
    out = {}
    for line in etab_lines(state):
        path, _, rest = line.partition("\t")
        if path == prefix:
            out[rest.split("(")[0]] = line
    return out


def manual(*args: str) -> None:
    subprocess.run([REAL_EXPORTFS, *args], check=True, capture_output=True)


# ---- formats, drift, apply, withdraw -------------------------------------------------------------
WEIRD = ["a b", 'q"x#y\\z', "é", "c:d", "p(1)"]


def weird_exports():
    return [
        exp("a b", ("*", "fe80::1(ro)", "fd00::/64", "127.0.0.1(no_root_squash)"), "11", 1),
        exp('q"x#y\\z', ("*.example.com", "node?(rw,async)", "@ng(sec=krb5:sys,anonuid=4294967295)"), UUID, 2),
        exp("é", ("10.0.0.0/8(insecure,mp)",), "4000000000", 3),
        exp("c:d", ("localhost",), "14", 4),
        exp("p(1)", ("10.9.8.7(ro)",), "15", 5, access="RO", squash="all_squash"),
    ]


@root
@pytest.mark.parametrize("batch", [True, False], ids=["one-exportfs-a", "exportfs-o-per-options"])
def test_etab_formats_drift_and_withdraw(vol, ns, backend, counted, batch):
    for d in WEIRD:
        (vol.mountpoint / d).mkdir()
    backend.batch = batch
    exports = weird_exports()
    backend.apply(vol, exports)

    mp = vol.mountpoint
    a = by_client(ns, f"{mp}/a\\040b")
    assert set(a) >= {"*", "fe80::1", "fd00::/64"} and len(a) == 4
    assert "(ro,sync," in a["fe80::1"] and ",fsid=11," in a["*"]
    q = by_client(ns, f"{mp}/q\\042x\\043y\\134z")
    assert set(q) == {"*.example.com", "node?", "@ng"}
    assert f",fsid={UUID}," in q["@ng"] and ",anonuid=-1," in q["@ng"] and ",sec=krb5:sys," in q["@ng"]
    assert "(rw,async," in q["node?"]
    e = by_client(ns, f"{mp}/é")["10.0.0.0/8"]
    assert ",fsid=-294967296," in e and ",insecure," in e and ",mountpoint," in e
    assert len(by_client(ns, f"{mp}/c:d")) == 1                      # 'localhost', under some name
    p = by_client(ns, f"{mp}/p(1)")["10.9.8.7"]
    assert p.split("\t")[1].startswith("10.9.8.7(ro,sync,") and ",all_squash," in p

    entries = [d for x in exports for d in desired_entries(mp, x)]
    n_options = len({d.options for d in entries})
    assert calls(counted[1]) == (["-a"] if batch else ["-i"] * n_options)

    assert backend.drift(vol, exports).clean
    assert backend.live_paths(vol, exports) == {x.path: True for x in exports}
    backend.apply(vol, exports)                                      # nothing to do: no process
    assert len(calls(counted[1])) == (1 if batch else n_options)

    backend.withdraw(vol, exports)
    assert etab_lines(ns) == []
    assert calls(counted[1])[-1] == "-u"
    assert backend.live_paths(vol, exports) == {x.path: False for x in exports}
    assert backend.drift(vol, exports).missing == exports
    backend.withdraw(vol, exports)                                   # not live: fine, no process
    assert calls(counted[1])[-1] == "-u" and calls(counted[1]).count("-u") == 1


@root
def test_drift_sees_changed_missing_and_extra_entries(vol, ns, backend, counted):
    (vol.mountpoint / "d1").mkdir()
    (vol.mountpoint / "d2").mkdir()
    x = exp("d1", ("10.0.0.0/8(rw)", "*(ro)"), "101", 1)
    y = exp("d2", ("10.0.0.0/8(rw)",), "102", 2)
    backend.apply(vol, [x, y])
    d1, d2 = export_dir(vol.mountpoint, x), export_dir(vol.mountpoint, y)

    # an option ganesha-ha sets, changed behind its back: drift; one exportfs -o repairs it
    manual("-i", "-o", "rw,async,root_squash,no_subtree_check,fsid=101", f"10.0.0.0/8:{d1}")
    drift = backend.drift(vol, [x, y])
    assert drift.changed == [x] and not drift.missing
    before = len(calls(counted[1]))
    backend.apply(vol, [x, y])
    assert calls(counted[1])[before:] == ["-i"] and backend.drift(vol, [x, y]).clean
    assert "(rw,sync," in by_client(ns, d1)["10.0.0.0/8"]

    # an option ganesha-ha leaves at its default is not drift
    manual("-i", "-o", "rw,sync,root_squash,no_all_squash,no_subtree_check,no_wdelay,fsid=102", f"10.0.0.0/8:{d2}")
    assert backend.drift(vol, [x, y]).clean

    # a client that is not registered (left over, or added by hand): changed, and apply removes it
    manual("-i", "-o", "rw,fsid=101", f"@old:{d1}")
    assert backend.drift(vol, [x, y]).changed == [x]
    backend.apply(vol, [x, y])
    assert "@old" not in by_client(ns, d1) and backend.drift(vol, [x, y]).clean

    # one client gone: changed; every client gone: missing
    manual("-u", f"*:{d1}")
    assert backend.drift(vol, [x, y]).changed == [x]
    manual("-u", f"10.0.0.0/8:{d1}")
    assert backend.drift(vol, [x, y]).missing == [x]

    # access None keeps the identity but takes the export away from every client
    backend.apply(vol, [x, y])
    gone = y.with_changes(access="None")
    assert backend.drift(vol, [gone]).changed == [gone]
    backend.apply(vol, [gone])
    assert by_client(ns, d2) == {} and backend.drift(vol, [gone]).clean


@root
def test_fsid_collision_is_refused_before_anything_runs(vol, ns, backend, counted, tmp_path):
    other = tmp_path / "other-volume"
    other.mkdir()
    (vol.mountpoint / "d1").mkdir()
    manual("-i", "-o", "rw,fsid=4000000000", f"*:{other}")
    x = exp("d1", ("*",), "4000000000")
    with pytest.raises(IdCollisionError, match=f"^fsid 4000000000 is already exported .* for {other}"):
        backend.check_collisions(vol, [x])
    assert backend.drift(vol, [x]).foreign == [f"fsid 4000000000 of {vol.mountpoint}/d1 is exported for {other}"]
    with pytest.raises(IdCollisionError):
        backend.apply(vol, [x])
    assert calls(counted[1]) == []
    backend.check_collisions(vol, [exp("d1", ("*",), "4000000001")])


# ---- process counts ------------------------------------------------------------------------
@root
def test_1000_exports_cost_one_process_each_way(vol, ns, backend, counted):
    n = 1000
    exports = []
    for i in range(n):
        (vol.mountpoint / f"d{i:04d}").mkdir()
        exports.append(exp(f"d{i:04d}", ("10.0.0.0/8" if i % 2 else "10.0.0.0/8(ro,async)",), str(1000 + i), i + 1))
    t0 = time.monotonic()
    backend.apply(vol, exports)
    t_apply = time.monotonic() - t0
    assert calls(counted[1]) == ["-a"]
    assert len(etab_lines(ns)) == n

    t0 = time.monotonic()
    assert backend.drift(vol, exports).clean
    assert all(backend.live_paths(vol, exports).values())
    t_drift = time.monotonic() - t0
    backend.apply(vol, exports)
    assert calls(counted[1]) == ["-a"]                       # a monitor pass that finds nothing runs nothing

    t0 = time.monotonic()
    backend.withdraw(vol, exports)
    t_withdraw = time.monotonic() - t0
    args = [f"10.0.0.0/8:{export_dir(vol.mountpoint, x)}" for x in exports]
    assert calls(counted[1]) == ["-a"] + ["-u"] * len(chunk_args(args)) == ["-a", "-u"]
    assert etab_lines(ns) == [] and backend.exportfs_runs == 2
    print(f"\n1000 exports: apply {t_apply:.2f} s (1 process), drift+live {t_drift:.2f} s (0), "
          f"withdraw {t_withdraw:.2f} s (1)")
    assert t_apply + t_drift + t_withdraw < 30


@root
def test_clients_sharing_options_share_one_process_and_argv_is_chunked(vol, ns, backend, counted):
    (vol.mountpoint / "d1").mkdir()
    hosts = tuple(f"10.{i // 250}.{i % 250}.0/24" for i in range(600))
    x = exp("d1", hosts, "7")
    backend.batch = False
    backend.apply(vol, [x])
    assert calls(counted[1]) == ["-i"]                      # 600 clients, one option string: 1 process
    assert len(etab_lines(ns)) == 600
    backend.withdraw(vol, [x])
    assert calls(counted[1]) == ["-i", "-u"]

    backend.arg_limit = 4096
    backend.apply(vol, [x])
    args = [d.arg for d in desired_entries(vol.mountpoint, x)]
    n_chunks = len(chunk_args(args, 4096))
    assert n_chunks > 1 and calls(counted[1])[2:] == ["-i"] * n_chunks
    assert backend.drift(vol, [x]).clean


# ---- compatibility with ocf:heartbeat:exportfs -------------------------------------------------------
COMPAT = [
    # (clientspec, options, fsid) for the upstream agent, (client spec, access, squash) for ganesha-ha
    ("10.1.0.0/16", "rw,no_root_squash", "1001", "10.1.0.0/16(rw,no_root_squash)", "RW", "root_squash"),
    ("*", "ro,async", UUID, "*(async)", "RO", "root_squash"),
    ("[fd00::]/64", "rw,insecure,all_squash,anonuid=1000", "1003", "fd00::/64(rw,insecure,anonuid=1000)", "RW", "all_squash"),
    ("*.example.com", "rw", "1004", "*.example.com(rw)", "RW", "root_squash"),
    ("@ng", "rw,sync,sec=krb5:sys,crossmnt", "4000000005", "@ng(rw,crossmnt,sec=krb5:sys)", "RW", "root_squash"),
    # no rw/ro: read-only for exportfs (exports(5)) and for ganesha-ha alike (issue 13, item 7)
    ("10.2.0.0/16", "no_root_squash", "1006", "10.2.0.0/16(no_root_squash)", "RW", "root_squash"),
]


@root
@pytest.mark.skipif(not UPSTREAM_RA.exists(), reason="resource-agents' exportfs agent is not installed")
def test_same_etab_line_as_upstream_agent(vol, ns, backend, tmp_path):
    rsctmp = tmp_path / "rsctmp"
    rsctmp.mkdir()
    for i, (spec, options, fsid, ours, access, squash) in enumerate(COMPAT):
        name = f"c{i}"  # the agent cannot export a directory with a space (it word-splits it)
        directory = vol.mountpoint / name
        directory.mkdir()
        env = dict(os.environ, OCF_ROOT="/usr/lib/ocf", OCF_RESOURCE_INSTANCE=f"cmp{i}", HA_RSCTMP=str(rsctmp),
                   OCF_RESKEY_directory=str(directory), OCF_RESKEY_clientspec=spec,
                   OCF_RESKEY_options=options, OCF_RESKEY_fsid=fsid)
        r = subprocess.run([str(UPSTREAM_RA), "start"], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        theirs = etab_lines(ns)
        assert len(theirs) == 1
        x = exp(name, (ours,), fsid, i + 1, access=access, squash=squash)
        assert backend.drift(vol, [x]).clean, (theirs, desired_entries(vol.mountpoint, x))
        backend.withdraw(vol, [x])
        assert etab_lines(ns) == []
        backend.apply(vol, [x])
        assert etab_lines(ns) == theirs
        if i == 1:  # and the agent's stop takes away what ganesha-ha exported
            assert subprocess.run([str(UPSTREAM_RA), "stop"], env=env, capture_output=True).returncode == 0
            assert etab_lines(ns) == []
        else:
            backend.withdraw(vol, [x])


# ---- installed / running / failures ------------------------------------------------------------
def _failing_exportfs(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "exportfs-broken"
    script.write_text("#!/bin/sh\necho 'exportfs: first problem' >&2\necho '  second line' >&2\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@root
def test_check_installed_and_running(ns, tmp_path):
    ok = KnfsdBackend(make_settings(REAL_EXPORTFS, runtime_dir=tmp_path / "run"))
    ok.check_installed()
    assert ok.is_running()
    assert ok.nfsd_threads() is None or ok.nfsd_threads() >= 0

    missing = KnfsdBackend(make_settings(tmp_path / "no" / "exportfs"))
    with pytest.raises(NotInstalledError, match="not found"):
        missing.check_installed()
    assert not missing.is_running()

    broken = KnfsdBackend(make_settings(_failing_exportfs(tmp_path / "bin")))
    broken.check_installed()
    with pytest.raises(ServerUnavailableError) as info:
        broken.require_running()
    assert str(info.value) == "exportfs failed (exit 1): first problem; second line"

    nostate = KnfsdBackend(make_settings(REAL_EXPORTFS, state_dir=tmp_path / "nonexistent"))
    with pytest.raises(ServerUnavailableError, match="does not exist"):
        nostate.require_running()


@root
def test_apply_failure_is_one_line_apply_error(vol, ns, tmp_path):
    (vol.mountpoint / "d1").mkdir()
    broken = KnfsdBackend(make_settings(_failing_exportfs(tmp_path / "bin"), runtime_dir=tmp_path / "run"))
    with pytest.raises(ApplyError) as info:
        broken.apply(vol, [exp("d1", ("*",), "9")])
    msg = str(info.value)
    assert "\n" not in msg and msg.endswith("first problem; second line")
    assert "*:" in msg and "/d1 missing" in msg


@root
def test_unresolvable_host_is_a_warning_others_applied(vol, ns, backend):
    """exportfs says "Failed to resolve" (exit 0) and writes no line for a name this node cannot
    resolve. The name may resolve where its clients are (another node's DNS): the change and the
    monitor go on, with a warning that names the client (the same rule as for Ganesha)."""
    (vol.mountpoint / "d1").mkdir()
    x = exp("d1", ("10.0.0.0/8", "no-such-host.invalid(rw)"), "9")
    warnings = backend.apply(vol, [x])
    assert len(warnings) == 1 and "no-such-host.invalid does not resolve on this node" in warnings[0]
    assert set(by_client(ns, export_dir(vol.mountpoint, x))) == {"10.0.0.0/8"}
    drift = backend.drift(vol, [x])
    assert drift.clean and drift.warnings == warnings


@root
def test_flush_is_bounded_and_skipped_without_nfsd(vol, ns, backend, tmp_path):
    assert backend.flush_caches(["/x"]) is (Path("/proc/net/rpc/nfsd.export/flush").exists())
    fake = tmp_path / "proc-net-rpc"
    for cache in ("auth.unix.ip", "auth.unix.gid", "nfsd.fh", "nfsd.export"):
        (fake / cache).mkdir(parents=True)
        (fake / cache / "flush").write_text("")
    (vol.mountpoint / "d1").mkdir()
    x = exp("d1", ("*",), "9")
    d1 = export_dir(vol.mountpoint, x)
    # a cache entry that never goes away: withdraw re-flushes a bounded number of times
    (fake / "nfsd.export" / "content").write_text(f"#path domain(flags)\n{d1}\t*(rw,fsid=9)\n")
    backend.proc_rpc = fake
    backend.apply(vol, [x])
    t0 = time.monotonic()
    backend.withdraw(vol, [x])
    assert time.monotonic() - t0 < 0.2 * backend.flush_checks + 1.5
    for cache in ("auth.unix.ip", "auth.unix.gid", "nfsd.fh", "nfsd.export"):
        assert int((fake / cache / "flush").read_text()) >= int(time.time()) - 5


# ---- how the one-process batch finds its exports file, and its fallbacks ------------------------------
@root
def test_batch_hides_other_exports_files_and_falls_back(vol, ns, counted, tmp_path, monkeypatch):
    from ganesha_ha.backends import knfsd_batch
    from knfsd_ns import private_etc

    try:
        private_etc(tmp_path / "etc")
    except OSError as exc:
        pytest.skip(f"no overlayfs here: {exc}")
    # a node with /etc/exports.d and no /etc/exports; another tool's file there must stay out
    Path("/etc/exports").unlink(missing_ok=True)
    Path("/etc/exports.d").mkdir(exist_ok=True)
    stray = tmp_path / "stray"
    stray.mkdir()
    Path("/etc/exports.d/stray.exports").write_text(f"{stray} *(rw,fsid=77)\n")
    for d in ("d1", "d2"):
        (vol.mountpoint / d).mkdir()
    x, y = exp("d1", ("*",), "1", 1), exp("d2", ("*(ro)",), "2", 2)
    b = KnfsdBackend(make_settings(counted[0], runtime_dir=tmp_path / "run"))
    b.apply(vol, [x, y])
    assert calls(counted[1]) == ["-a"] and len(etab_lines(ns)) == 2
    assert not any(str(stray) in line for line in etab_lines(ns))
    assert list((tmp_path / "run" / "knfsd").iterdir()) == []        # temp exports file removed
    b.withdraw(vol, [x, y])

    # the namespace cannot be made (e.g. no CAP_SYS_ADMIN): one `exportfs -i -o` per option string
    def no_namespace(binds):
        def fail():
            raise OSError(1, "unshare(CLONE_NEWNS)")
        return fail
    monkeypatch.setattr(knfsd_batch, "_private_mounts", no_namespace)
    b2 = KnfsdBackend(make_settings(counted[0], runtime_dir=tmp_path / "run"))
    b2.apply(vol, [x, y])                       # the failed child never reached exec: no "-a" call
    assert calls(counted[1])[2:] == ["-i", "-i"] and b2.drift(vol, [x, y]).clean
    b2.withdraw(vol, [x, y])
    n = len(calls(counted[1]))
    b2.apply(vol, [x, y])                                              # not tried again
    assert calls(counted[1])[n:] == ["-i", "-i"] and b2.exportfs_runs == 3 + 1 + 2
    b2.withdraw(vol, [x, y])

    # neither /etc/exports nor /etc/exports.d: nothing to bind over, so -o from the start
    monkeypatch.undo()
    Path("/etc/exports.d/stray.exports").unlink()
    Path("/etc/exports.d").rmdir()
    b3 = KnfsdBackend(make_settings(counted[0], runtime_dir=tmp_path / "run"))
    n = len(calls(counted[1]))
    b3.apply(vol, [x, y])
    assert calls(counted[1])[n:] == ["-i", "-i"] and b3.drift(vol, [x, y]).clean


@root
def test_every_knfsd_flag_of_the_model_is_accepted_and_compares_clean(vol, ns, backend):
    from ganesha_ha.clientspec import KNFSD_ONLY_FLAGS

    sets = [("wdelay", "subtree_check", "secure", "hide", "crossmnt", "acl", "secure_locks", "pnfs",
             "security_label", "mp", "anonuid=1000", "anongid=1001", "sec=sys:krb5"),
            ("async", "no_wdelay", "no_subtree_check", "insecure", "nohide", "nocrossmnt", "no_acl",
             "insecure_locks", "no_pnfs", "mountpoint", "nordirplus", "sec=krb5p"),
            ("auth_nlm",), ("no_auth_nlm", "sync")]
    covered = {o for s in sets for o in s if "=" not in o}
    assert covered == set(KNFSD_ONLY_FLAGS)
    exports = []
    for i, opts in enumerate(sets):
        (vol.mountpoint / f"f{i}").mkdir()
        exports.append(exp(f"f{i}", (f"10.{i}.0.0/16({','.join(opts)})",), str(500 + i), i + 1))
    backend.apply(vol, exports)
    assert backend.drift(vol, exports).clean
    assert len(etab_lines(ns)) == len(sets)


# ---- issue 13: one access rule, bare specs, what knfsd accepts -------------------------------------
@root
def test_issue13_etab_holds_each_client_with_its_own_access(vol, ns, backend):
    """knfsd applies exports(5) precedence itself (mountd looks single hosts up before networks
    before wildcards, netgroups and `*`): etab must hold each client with its own rw/ro, which is
    what makes 127.0.0.1 read-only in the first example of item 2 and read-write in the second.
    A spec without rw/ro is `ro` (item 7), as exportfs makes it; the IPv6 prefixes and `/0`
    networks that Ganesha 4.3 cannot read are exported as given (knfsd keeps what exportfs accepts)."""
    mp = vol.mountpoint
    for d in ("d1", "d2"):
        (mp / d).mkdir()
    x = exp("d1", ("127.0.0.0/8(rw)", "127.0.0.1(ro)"), "21", 1)
    y = exp("d2", ("*(ro)", "127.0.0.1(rw)", "10.0.0.0/8", "2001:db8::/122(rw)", "::/0(rw)", "0.0.0.0/0"), "22", 2)
    assert backend.apply(vol, [x, y]) == []

    def access(directory):
        return {client: line.split("(")[1].split(",")[0] for client, line in by_client(ns, directory).items()}

    first = access(f"{mp}/d1")
    assert first.pop("127.0.0.0/8") == "rw" and list(first.values()) == ["ro"]   # 127.0.0.1, by any name
    second = access(f"{mp}/d2")
    assert {k: second.pop(k) for k in ("*", "10.0.0.0/8", "2001:db8::/122", "::/0", "0.0.0.0/0")} == {
        "*": "ro", "10.0.0.0/8": "ro", "2001:db8::/122": "rw", "::/0": "rw", "0.0.0.0/0": "ro"}
    assert list(second.values()) == ["rw"]
    assert backend.drift(vol, [x, y]).clean
