"""Issue 13 (what the server grants) against the real ganesha.nfsd 4.3 on a private bus.

Each numbered case of the issue that concerns grants, with the outcome asserted through
DisplayExport and, for access, through a real NFS client (libnfs nfs-cp / nfs-cat, the
project's NFSv4 client) writing from 127.0.0.1:
1. a client spec Ganesha cannot lex is refused before anything is written; a partial success
   ("Errors found") fails the change in Ganesha's words; the read-back refuses what Ganesha
   holds otherwise and the monitor repairs drift of grants (or reports what it cannot repair);
2. exports(5) precedence on Ganesha (single host before network before `*`);
6. live state from DisplayExport's full path, with mount_path_pseudo false and true;
7. a spec without rw/ro is read-only.
The property test over random client lists is test_ganesha_property.py.
"""
from __future__ import annotations

import json
import re
import subprocess

import dbus
import pytest

from client_specs import ACCEPTED, REFUSED
from conftest import GaneshaLab
from ganesha_servers import NEEDS_GANESHA, TunedGanesha
from ganesha_ha.backends.ganesha import GaneshaBackend
from ganesha_ha.backends.grants import ganesha_names, parse_display
from ganesha_ha.errors import ApplyError
from ganesha_ha.clientspec import ClientSpec
from ganesha_ha.volume import Volume

pytestmark = NEEDS_GANESHA


@pytest.fixture
def vol(ganesha, tmpfs_volume):
    for d in ("data", "other"):
        (tmpfs_volume / d).mkdir()
        (tmpfs_volume / d).chmod(0o777)   # root is squashed: the write comes as the anonymous user
    (tmpfs_volume / "data" / "f.txt").write_text("hello\n")
    ganesha.cli("volume", "init", str(tmpfs_volume), "--server", "ganesha", "--id-range", "3000-3099", check=True)
    ganesha.cli("volume", "start", str(tmpfs_volume), check=True)
    return tmpfs_volume


def registry_bytes(vol):
    return (vol / ".ganesha-ha" / "registry.json").read_bytes()


def registry_content(vol):
    """The registry without its generation (a rollback writes the old content as a new generation)."""
    doc = json.loads(registry_bytes(vol))
    doc.pop("generation")
    return doc


def runtime_confs(lab):
    return sorted(p.name for p in (lab.workdir / "run" / "ganesha").rglob("export-*.conf"))


def display(lab, export_id):
    return parse_display(lab.export_mgr("DisplayExport", dbus.UInt16(export_id)))


def can_write(lab, pseudo, name):
    """nfs-cp from 127.0.0.1 (libnfs, NFSv4): True when the server took the write."""
    src = lab.workdir / "src.txt"
    src.write_text("written through NFS\n")
    proc = subprocess.run(["nfs-cp", str(src), f"{lab.nfs_url(f'{pseudo}/{name}')}"],
                          capture_output=True, text=True, timeout=30)
    return proc.returncode == 0


def can_read(lab, pseudo_file):
    proc = subprocess.run(["nfs-cat", lab.nfs_url(pseudo_file)], capture_output=True, text=True, timeout=30)
    return proc.returncode == 0 and proc.stdout == "hello\n"


# ---- the lexer rules, each against the real ganesha.nfsd ---------------------------------------
def _add_raw(lab, tmp_path, export_id, spec):
    """AddExport of a hand-written EXPORT block (past ganesha-ha's checks): (ok, reply, names)."""
    conf = tmp_path / f"raw-{export_id}.conf"
    conf.write_text(f'EXPORT {{ Export_Id = {export_id}; Path = "{tmp_path}"; Pseudo = "/raw{export_id}"; '
                    "Access_Type = None; Protocols = 4; FSAL { Name = VFS; } "
                    f"CLIENT {{ Clients = {spec}; Access_Type = RW; }} }}\n")
    try:
        reply = str(lab.export_mgr("AddExport", str(conf), f"EXPORT(Export_Id={export_id})"))
    except dbus.DBusException as exc:
        return False, exc.get_dbus_message(), None
    names = [c.name for c in display(lab, export_id).clients]
    lab.remove_export(export_id)
    return True, reply, names


def test_each_refused_spelling_is_misread_by_ganesha_and_each_offered_one_is_not(ganesha, tmp_path):
    """The rule table of check_client (tests/client_specs.py), row by row against ganesha.nfsd:
    every spec it refuses, Ganesha drops, refuses or turns into another client; every spelling it
    offers instead, and every spec it lets through, Ganesha takes as written (DisplayExport shows
    the entries ganesha_names predicts, with no error but an unresolved host name's)."""
    backend = GaneshaBackend(ganesha.settings())
    export_id = 100
    for spec, (_, instead) in REFUSED.items():
        host = ClientSpec.parse(spec).host
        export_id += 1
        ok, reply, names = _add_raw(ganesha, tmp_path, export_id, host)
        misread = (not ok) or "Errors found" in reply or names != list(ganesha_names(host, backend.resolve))
        if host.startswith("::ffff:"):   # lexed and shown as written: matches nobody (next test)
            misread = True
        assert misread, (spec, reply, names)
        for alternative in instead:
            alt = ClientSpec.parse(alternative).host
            export_id += 1
            ok, reply, names = _add_raw(ganesha, tmp_path, export_id, alt)
            assert ok and "Errors found" not in reply, (alternative, reply)
            assert names == list(ganesha_names(alt, backend.resolve)), (alternative, names)
    for spec in ACCEPTED:
        host = ClientSpec.parse(spec).host
        export_id += 1
        ok, reply, names = _add_raw(ganesha, tmp_path, export_id, host)
        assert ok, (spec, reply)
        errors = reply.partition("Errors found:")[2].strip().splitlines()
        assert all(f"Client ({host}) not found" in e for e in errors), (spec, reply)
        assert names == list(ganesha_names(host, backend.resolve)), (spec, names)


def test_an_ipv4_mapped_spec_matches_no_ipv4_client(ganesha, tmp_path):
    """Why `::ffff:127.0.0.1` is refused: Ganesha shows it as written, but 127.0.0.1 is refused."""
    (tmp_path / "hello.txt").write_text("hello\n")
    for export_id, spec, readable in ((201, "::ffff:127.0.0.1", False), (202, "127.0.0.1", True)):
        conf = tmp_path / f"m{export_id}.conf"
        conf.write_text(f'EXPORT {{ Export_Id = {export_id}; Path = "{tmp_path}"; Pseudo = "/m{export_id}"; '
                        "Access_Type = None; Squash = No_Root_Squash; Protocols = 4; FSAL { Name = VFS; } "
                        f"CLIENT {{ Clients = {spec}; Access_Type = RW; }} }}\n")
        assert "Errors" not in str(ganesha.export_mgr("AddExport", str(conf), f"EXPORT(Export_Id={export_id})"))
        assert can_read(ganesha, f"/m{export_id}/hello.txt") is readable


# ---- issue 13, item 1 ------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,words", [("2001:db8::/122(rw)", "2001:db8::/99"), ("::/0(rw)", "::/1 and 8000::/1"),
                                        ("3com.example(rw)", "[3]com.example")])
def test_item1_unreadable_spec_refused_before_anything_is_written(ganesha, vol, spec, words):
    before, live, confs = registry_bytes(vol), ganesha.show_exports(), runtime_confs(ganesha)
    proc = ganesha.cli("export", "add", str(vol), "data", "--client", spec, "--client", "127.0.0.1(rw)")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "NFS-Ganesha 4.3" in proc.stderr and words in proc.stderr
    assert registry_bytes(vol) == before and ganesha.show_exports() == live and runtime_confs(ganesha) == confs
    # --record-only too: a registry never holds what its server cannot read
    assert ganesha.cli("export", "add", str(vol), "data", "--client", spec, "--record-only").returncode == 2
    assert registry_bytes(vol) == before


def test_item1_errors_found_fails_the_change_in_ganeshas_words(ganesha, vol, monkeypatch):
    """Past the check (switched off here), Ganesha's partial success is still a failed change:
    exit 7 in Ganesha's words on one line, registry rolled back, nothing live, no EXPORT file."""
    import ganesha_ha.backends.ganesha_conf as conf

    monkeypatch.setattr(conf, "check_client", lambda host: None)
    volume = Volume(vol, ganesha.settings())
    before, live = registry_content(vol), ganesha.show_exports()
    with pytest.raises(ApplyError) as err:
        volume.add("data", ["2001:db8::/122(rw)", "127.0.0.1(ro)"])
    message = str(err.value)
    assert err.value.exit_code == 7 and "\n" not in message
    assert "AddExport of Export_Id 3000" in message and "Errors found: line" in message
    assert "Syntax error in statement" in message and "registry rolled back" in message
    assert registry_content(vol) == before and ganesha.show_exports() == live
    assert runtime_confs(ganesha) == []


def test_item1_read_back_refuses_what_ganesha_holds_otherwise(ganesha, vol, monkeypatch):
    """A renderer that wrote the CLIENT blocks in the written order (the bug of item 2): Ganesha
    reads it without complaint, the read-back names the difference and the change is undone."""
    import ganesha_ha.backends.ganesha_conf as conf

    monkeypatch.setattr(conf, "precedence_order", tuple)
    volume = Volume(vol, ganesha.settings())
    before = registry_content(vol)
    with pytest.raises(ApplyError, match=r"Export_Id 3000 \(.*\) after AddExport: .*not in exports\(5\) order: "
                                         r"Ganesha holds 127.0.0.0/8, 127.0.0.1/32"):
        volume.add("data", ["127.0.0.0/8(rw)", "127.0.0.1(ro)"])
    assert registry_content(vol) == before and 3000 not in ganesha.show_exports()
    assert runtime_confs(ganesha) == []


def _update_behind_our_back(lab, vol, export_id, clients_block):
    conf = lab.workdir / f"behind-{export_id}.conf"
    conf.write_text(f'EXPORT {{ Export_Id = {export_id}; Path = "{vol}/data"; Pseudo = "/data"; '
                    f"Access_Type = None; Protocols = 4; FSAL {{ Name = VFS; }} {clients_block} }}\n")
    assert "1 exports updated" == str(lab.export_mgr("UpdateExport", str(conf), f"EXPORT(Export_Id={export_id})"))


def test_item1_monitor_repairs_drift_of_grants_and_names_it(ganesha, vol):
    ganesha.cli("export", "add", str(vol), "data", "--client", "127.0.0.1(ro)", "--pseudo", "/data", check=True)
    assert not can_write(ganesha, "/data", "w1")
    # someone grants 127.0.0.1 write access behind ganesha-ha's back: present, but not correct
    _update_behind_our_back(ganesha, vol, 3000, "CLIENT { Clients = 127.0.0.1; Access_Type = RW; Squash = Root_Squash; }")
    assert can_write(ganesha, "/data", "w2")
    out = ganesha.cli("volume", "monitor", str(vol), "--json", check=True)
    res = json.loads(out.stdout)
    assert res["repaired"] == 1 and res["changed"] == ["data"]
    assert res["reasons"] == ["Export_Id 3000 (/data): client 127.0.0.1: access is RW, the registry says RO"]
    assert [(c.name, c.grant.access) for c in display(ganesha, 3000).clients] == [("127.0.0.1/32", "RO")]
    assert not can_write(ganesha, "/data", "w3")
    # a dropped CLIENT block (what item 1 looked like): missing client, repaired
    _update_behind_our_back(ganesha, vol, 3000, "")
    res = json.loads(ganesha.cli("volume", "monitor", str(vol), "--json", check=True).stdout)
    assert res["reasons"] == ["Export_Id 3000 (/data): client 127.0.0.1 is missing"]
    assert json.loads(ganesha.cli("volume", "monitor", str(vol), "--json", check=True).stdout)["repaired"] == 0


def test_status_show_and_list_report_grants_that_differ_and_repair_nothing(ganesha, vol):
    """`volume status`, `export show` and `export list` read back what the server grants (as the
    monitor does): an export present but granting otherwise is not reported as plainly live."""
    ganesha.cli("export", "add", str(vol), "data", "--client", "127.0.0.1(ro)", "--pseudo", "/data", check=True)
    _update_behind_our_back(ganesha, vol, 3000, "CLIENT { Clients = 127.0.0.1; Access_Type = RW; Squash = Root_Squash; }")
    reason = "Export_Id 3000 (/data): client 127.0.0.1: access is RW, the registry says RO"
    status = json.loads(ganesha.cli("volume", "status", str(vol), "--json", check=True).stdout)
    assert status["reasons"] == [reason]
    assert [(e["path"], e["live"], e["as_registered"]) for e in status["exports"]] == [("data", True, False)]
    text = ganesha.cli("volume", "status", str(vol), check=True).stdout
    assert "1 live (1 not as registered" in text and f"not as registered: {reason}" in text
    shown = ganesha.cli("export", "show", str(vol), "data", check=True).stdout
    assert "state:       live, not as registered" in shown and reason in shown
    assert "live, not as registered" in ganesha.cli("export", "list", str(vol), check=True).stdout
    assert can_write(ganesha, "/data", "w1")   # status repairs nothing
    ganesha.cli("volume", "monitor", str(vol), check=True)
    status = json.loads(ganesha.cli("volume", "status", str(vol), "--json", check=True).stdout)
    assert status["reasons"] == [] and status["exports"][0]["as_registered"] is True
    assert "state:       live\n" in ganesha.cli("export", "show", str(vol), "data", check=True).stdout + "\n"


def test_item1_monitor_reports_what_repair_cannot_make_right(ganesha, vol, monkeypatch):
    import ganesha_ha.backends.ganesha_conf as conf

    volume = Volume(vol, ganesha.settings())
    volume.add("data", ["127.0.0.0/8(rw)", "127.0.0.1(ro)"], pseudo="/data")
    _update_behind_our_back(ganesha, vol, 3000, "CLIENT { Clients = 127.0.0.1; Access_Type = RW; Squash = Root_Squash; } "
                                                "CLIENT { Clients = 127.0.0.0/8; Access_Type = RW; Squash = Root_Squash; }")
    monkeypatch.setattr(conf, "precedence_order", tuple)   # a repair that writes the old order
    res = Volume(vol, ganesha.settings()).monitor()
    assert res.repaired == 0 and [f.export.export_id for f in res.failed] == [3000]
    assert re.search(r"after UpdateExport: .*not in exports\(5\) order", str(res.failed[0].error))
    assert res.drift.reasons == ["Export_Id 3000 (/data): client 127.0.0.1: access is RW, the registry says RO"]


def test_host_names_unresolved_here_warn_unless_nobody_is_left(ganesha, vol):
    """A client name this node cannot resolve: a warning while the export serves another client
    (exit 0, Ganesha holds `<unknown>` for it); an export that would serve nobody here is not
    live (exit 7, nothing left behind)."""
    proc = ganesha.cli("export", "add", str(vol), "data", "--pseudo", "/data",
                       "--client", "nosuch.invalid(rw)", "--client", "127.0.0.1(ro)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ("ganesha-ha: WARNING: Export_Id 3000 (/data): client nosuch.invalid does not resolve "
                           "on this node; Ganesha grants it nothing here\n")
    assert [c.name for c in display(ganesha, 3000).clients] == ["<unknown>", "127.0.0.1/32"]   # both single hosts
    mon = json.loads(ganesha.cli("volume", "monitor", str(vol), "--json", check=True).stdout)
    assert mon["repaired"] == 0 and len(mon["warnings"]) == 1
    proc = ganesha.cli("export", "add", str(vol), "other", "--client", "nosuch.invalid(rw)")
    assert proc.returncode == 7 and "no client of it resolves on this node (nosuch.invalid)" in proc.stderr
    assert 3001 not in ganesha.show_exports() and runtime_confs(ganesha) == ["export-3000.conf"]


# ---- issue 13, item 2: one access rule --------------------------------------------------------------
def test_item2_exports5_precedence_on_ganesha_with_a_real_client(ganesha, vol):
    """127.0.0.0/8(rw) + 127.0.0.1(ro): the single host wins, 127.0.0.1 cannot write (Ganesha's
    first match took the network before); *(ro) + 127.0.0.1(rw): it can (before: `*` first, read-only)."""
    ganesha.cli("export", "add", str(vol), "data", "--pseudo", "/data",
                "--client", "127.0.0.0/8(rw)", "--client", "127.0.0.1(ro)", check=True)
    assert [c.name for c in display(ganesha, 3000).clients] == ["127.0.0.1/32", "127.0.0.0/8"]
    assert not can_write(ganesha, "/data", "by-net") and can_read(ganesha, "/data/f.txt")
    assert not (vol / "data" / "by-net").exists()
    ganesha.cli("export", "update", str(vol), "data", "--client", "*(ro)", "--client", "127.0.0.1(rw)", check=True)
    assert [(c.name, c.grant.access) for c in display(ganesha, 3000).clients] == [("127.0.0.1/32", "RW"), ("*", "RO")]
    assert can_write(ganesha, "/data", "by-host")
    assert (vol / "data" / "by-host").read_text() == "written through NFS\n"


# ---- issue 13, item 7: a bare spec is read-only -----------------------------------------------------
def test_item7_a_spec_without_rw_or_ro_is_read_only_on_ganesha(ganesha, vol):
    ganesha.cli("export", "add", str(vol), "data", "--pseudo", "/data", "--client", "127.0.0.1", check=True)
    assert [(c.name, c.grant.access) for c in display(ganesha, 3000).clients] == [("127.0.0.1/32", "RO")]
    assert can_read(ganesha, "/data/f.txt") and not can_write(ganesha, "/data", "bare")
    help_text = ganesha.cli("export", "add", "--help", check=True).stdout
    assert "without rw or ro a client is read-only" in " ".join(help_text.split()).replace("- ", "-")


# ---- issue 13, item 6: mount_path_pseudo ------------------------------------------------------------
@pytest.mark.parametrize("mount_path_pseudo", [False, True], ids=["mount_path_pseudo=false", "mount_path_pseudo=true"])
def test_item6_live_state_from_the_full_path(tmp_path, tmpfs_volume, mount_path_pseudo):
    """With mount_path_pseudo = true ShowExports gives pseudo paths; every live-state decision
    (status, monitor, update in place, strays, stop) takes DisplayExport's full path instead."""
    import shutil

    from conftest import IS_ROOT

    if not IS_ROOT or shutil.which("ganesha.nfsd") is None:
        pytest.skip("needs root and ganesha.nfsd")
    lab = GaneshaLab(tmp_path / "glab")
    lab.daemon = TunedGanesha(lab.workdir / "ganesha", lab.bus, port=lab.port, recovery_root=lab.recovery_root,
                              core=(f"mount_path_pseudo = {str(mount_path_pseudo).lower()}",))
    lab.start()
    try:
        vol = tmpfs_volume
        for d in ("data", "other"):
            (vol / d).mkdir()
            (vol / d).chmod(0o777)
        (vol / "data" / "f.txt").write_text("hello\n")
        lab.cli("volume", "init", str(vol), "--server", "ganesha", "--id-range", "3000-3099", check=True)
        lab.cli("volume", "start", str(vol), check=True)
        for d in ("data", "other"):
            lab.cli("export", "add", str(vol), d, "--pseudo", f"/p/{d}", "--client", "127.0.0.1(rw)", check=True)
        shown = lab.show_exports()
        assert shown[3000] == ("/p/data" if mount_path_pseudo else f"{vol}/data")   # the fact itself
        assert display(lab, 3000).path == f"{vol}/data"
        status = json.loads(lab.cli("volume", "status", str(vol), "--json", check=True).stdout)
        assert [e["live"] for e in status["exports"]] == [True, True]
        mon = json.loads(lab.cli("volume", "monitor", str(vol), "--json", check=True).stdout)
        assert mon["repaired"] == 0 and mon["reasons"] == []
        # an update in place (UpdateExport, not a second AddExport of a live id)
        lab.cli("export", "update", str(vol), "data", "--client", "127.0.0.1(ro)", check=True)
        assert [(c.name, c.grant.access) for c in display(lab, 3000).clients] == [("127.0.0.1/32", "RO")]
        assert can_read(lab, "/p/data/f.txt")
        # a stray (in the registry no more, still live) is found by its full path and withdrawn
        lab.cli("export", "remove", str(vol), "other", "--record-only", check=True)
        mon = json.loads(lab.cli("volume", "monitor", str(vol), "--json", check=True).stdout)
        assert mon["repaired"] == 1 and 3001 not in lab.show_exports()
        # stop withdraws what is live
        out = lab.cli("volume", "stop", str(vol), check=True).stdout
        assert "1 exports withdrawn" in out and not set(lab.show_exports()) & {3000, 3001}
    finally:
        lab.stop()


def test_item6_a_refused_add_leaves_no_export_file(ganesha, vol, monkeypatch):
    """Ganesha refuses the EXPORT block outright (InvalidFileContent; the check that would have
    refused `0.0.0.0/0` first is switched off): exit 7 in Ganesha's words, no EXPORT file left."""
    import ganesha_ha.backends.ganesha_conf as conf

    monkeypatch.setattr(conf, "check_client", lambda host: None)
    before = registry_content(vol)
    with pytest.raises(ApplyError) as err:
        Volume(vol, ganesha.settings()).add("data", ["0.0.0.0/0(rw)"])
    message = str(err.value)
    assert "0 export entries in export-3000.conf added because" in message and "\n" not in message
    assert "Expected a client, got a file path name for (0.0.0.0/0)" in message
    assert registry_content(vol) == before and 3000 not in ganesha.show_exports()
    assert runtime_confs(ganesha) == []


def test_read_back_of_more_exports_than_the_bus_lets_wait_at_once(ganesha, tmpfs_volume):
    """The monitor's DisplayExports go out several at a time; the system bus refuses more than
    128 pending replies per connection (found with 1000 exports): 300 read back clean, one
    changed behind our back among them is named."""
    from ganesha_ha.model import Export, KnfsdOptions
    from ganesha_ha.record import replace
    from ganesha_ha.registry import Registry

    reg = Registry(tmpfs_volume)
    state = reg.init("ganesha", (6000, 6999), 1000)
    exports = []
    for i in range(300):
        (tmpfs_volume / f"d{i}").mkdir()
        exports.append(Export(path=f"d{i}", export_id=6000 + i, knfsd=KnfsdOptions(str(i + 1)), pseudo=f"/d{i}",
                              clients=("127.0.0.1(rw)",)))
    with reg.locked():
        reg.save(replace(state, exports=tuple(exports)))
    volume = Volume(tmpfs_volume, ganesha.settings())
    assert volume.start().applied == 300
    drift = volume.monitor(repair=False).drift
    assert drift.clean and drift.reasons == []
    conf = ganesha.workdir / "behind.conf"
    conf.write_text(f'EXPORT {{ Export_Id = 6299; Path = "{tmpfs_volume}/d299"; Pseudo = "/d299"; '
                    "Access_Type = None; Protocols = 4; FSAL { Name = VFS; } "
                    "CLIENT { Clients = 127.0.0.1; Access_Type = RO; Squash = Root_Squash; } }\n")
    ganesha.export_mgr("UpdateExport", str(conf), "EXPORT(Export_Id=6299)")
    drift = volume.monitor(repair=False).drift
    assert [e.export_id for e in drift.changed] == [6299]
    assert drift.reasons == ["Export_Id 6299 (/d299): client 127.0.0.1: access is RO, the registry says RW"]
