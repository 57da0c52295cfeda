"""Volume.converge over a fake server (no root): `export apply` and `import` in one transaction.

What is checked: a description of the whole volume adds, updates and removes together (one
registry save, the live server changed with it, all of it rolled back when the server refuses
one); `check` changes nothing; identity changes are refused without force; one refused export
stops everything unless conflicts are skipped; an import never changes what exists; the
client-list edits of `export update`; the progress reports and what they cost the server.
"""
from __future__ import annotations

import json

import pytest

from fake_backend import FakeBackend
from ganesha_ha.converge import ADD, REMOVE, UPDATE, edited_clients
from ganesha_ha.description import Description, meaning
from ganesha_ha.errors import ApplyError, ServerUnavailableError, ValidationError
from ganesha_ha.clientspec import ClientSpec
from ganesha_ha.volume import Volume

from test_volume import settings  # noqa: F401  (fixture)


@pytest.fixture
def fake():
    return FakeBackend("knfsd")


@pytest.fixture
def vol(tmp_path, settings, fake) -> Volume:  # noqa: F811
    mp = tmp_path / "vol"
    for d in ("a", "b", "c", "d"):
        (mp / d).mkdir(parents=True)
    v = Volume(mp, settings, backend=fake, require_mounted=lambda p: None)
    v.init(fake.name, (100, 199))
    return v


def generation(vol: Volume) -> int:
    return json.loads(vol.registry.path.read_bytes())["generation"]


def registry_meaning(vol: Volume) -> dict:
    """The registry file's content without the generation (every save bumps it)."""
    doc = json.loads(vol.registry.path.read_bytes())
    doc.pop("generation")
    return doc


def desc(path: str, *clients: str, **kw) -> Description:
    return Description(path, clients=clients or None, **kw)


def test_a_whole_description_adds_updates_and_removes_in_one_save(vol, fake):
    vol.add("a", ["*(ro)"])
    vol.add("b", ["10.0.0.0/8(rw)"])
    vol.start()
    before = generation(vol)
    res = vol.converge([desc("b", "10.0.0.0/8(ro)"), desc("c", "192.0.2.1(rw)")], remove_missing=True)
    assert [(c.action, c.export.path) for c in res.outcome.changes] == [(REMOVE, "a"), (UPDATE, "b"), (ADD, "c")]
    assert res.changed and res.live and generation(vol) == before + 1
    live = fake.live_exports(vol.ctx(vol.load()))
    assert sorted(live) == ["b", "c"] and live["b"].clients == (ClientSpec("10.0.0.0/8", ("ro",)),)
    assert vol.load().id_retired(100)   # a's Export_Id is never handed out again


def test_a_refusal_of_the_server_rolls_the_whole_description_back(vol, fake):
    vol.add("a", ["*(ro)"])
    vol.start()
    registry = registry_meaning(vol)
    fake.refuse.add("c")
    with pytest.raises(ApplyError):
        vol.converge([desc("b", "*"), desc("c", "*")], remove_missing=True)
    assert registry_meaning(vol) == registry
    assert sorted(fake.live_exports(vol.ctx(vol.load()))) == ["a"]


def test_check_changes_nothing_and_says_what_would(vol, fake):
    vol.add("a", ["*(ro)"])
    registry = vol.registry.path.read_bytes()
    res = vol.converge([desc("a", "*(rw)"), desc("b", "*")], remove_missing=True, check=True)
    assert [c.action for c in res.outcome.changes] == [UPDATE, ADD]
    assert res.outcome.changes[0].differences() == [("clients", "*(ro)", "*(rw)")]
    assert not res.changed and vol.registry.path.read_bytes() == registry and not fake.calls


def test_what_a_description_leaves_out_is_kept(vol):
    vol.add("a", ["*(ro)"], pseudo="/alpha", fsid="77", access="RO", squash="all_squash")
    res = vol.converge([desc("a", "*(rw)")], remove_missing=True)
    exp = vol.load().find("a")
    assert (exp.pseudo, exp.knfsd.fsid, exp.access, exp.squash, exp.export_id) == ("/alpha", "77", "RO", "all_squash", 100)
    assert [d[0] for d in res.outcome.changes[0].differences()] == ["clients"]


def test_identity_changes_need_force(vol):
    vol.add("a", ["*"], fsid="5")
    res = vol.converge([desc("a", fsid="6")], remove_missing=True)
    assert not res.changed and "stale file handles" in str(res.outcome.conflicts[0])
    assert res.outcome.conflicts[0].error.exit_code == 2
    res = vol.converge([desc("a", export_id=150)], remove_missing=True, force=True)
    assert res.changed and vol.load().find("a").export_id == 150 and vol.load().id_retired(100)


def test_one_conflict_stops_all_unless_skipped(vol):
    vol.add("a", ["*"], fsid="5")
    descriptions = [desc("b", "*", fsid="5"), desc("c", "*"), desc("nowhere", "*")]
    res = vol.converge(descriptions, remove_missing=False)
    assert not res.changed and [e.path for e in vol.load().exports] == ["a"]
    assert [r.where for r in res.outcome.conflicts] == ["b", "nowhere"]
    assert res.outcome.conflicts[0].error.exit_code == 5            # fsid 5 is a's
    assert "does not exist" in str(res.outcome.conflicts[1])
    res = vol.converge(descriptions, remove_missing=False, skip_conflicts=True)
    assert res.changed and [e.path for e in vol.load().exports] == ["a", "c"]


def imports(vol: Volume, *paths: str, **kw):
    """An import (`import ... --apply`) of `paths`, each from its own line of a source."""
    return vol.converge([desc(p, "*", source=f"line {n}") for n, p in enumerate(paths, 1)],
                        remove_missing=False, update_existing=False, **kw)


def test_an_import_into_an_active_volume_leaves_out_only_what_the_server_refuses(vol, fake):
    """tryout5 M: with --skip-conflicts each new export goes live on its own; the one the
    live server refuses is a refusal (exit 7: the server's reason) and not in the registry,
    the others are registered and live, an export the volume had stays as it was."""
    vol.add("a", ["*"])
    vol.start()
    fake.refuse = {"c"}
    res = imports(vol, "b", "c", "d", skip_conflicts=True)
    assert res.changed and res.live
    assert [e.path for e in vol.load().exports] == ["a", "b", "d"]
    assert sorted(fake.live_exports(vol.ctx(vol.load()))) == ["a", "b", "d"]
    assert [(ch.action, ch.export.path) for ch in res.outcome.changes] == [(ADD, "b"), (ADD, "d")]
    [refusal] = res.outcome.conflicts
    assert refusal.live and refusal.where == "c (line 2)" and refusal.error.exit_code == 7
    assert str(refusal) == "c (line 2): not imported, the live server refused it: the fake server refused c"
    assert [f.export.path for f in res.failed] == ["c"] and not res.warnings
    # the node's active record (what a stop withdraws) is the registry as saved
    assert [e["path"] for e in vol.node.active_record()["exports"]] == ["a", "b", "d"]
    fake.refuse = set()             # the cause mended: the same import again takes it
    res = imports(vol, "b", "c", "d", skip_conflicts=True)
    assert [ch.export.path for ch in res.outcome.changes] == ["c"] and not res.outcome.conflicts
    assert sorted(fake.live_exports(vol.ctx(vol.load()))) == ["a", "b", "c", "d"]


def test_an_import_without_skip_conflicts_is_all_or_nothing_live(vol, fake):
    vol.start()
    fake.refuse = {"c"}
    before = registry_meaning(vol)
    with pytest.raises(ApplyError, match="registry rolled back"):
        imports(vol, "b", "c", "d")
    assert registry_meaning(vol) == before and fake.live_exports(vol.ctx(vol.load())) == {}


def test_an_import_whose_every_export_is_refused_live_changes_nothing(vol, fake):
    vol.start()
    fake.missing_fsals = {"VFS"}    # a module missing here: exit 6, each export named
    before = registry_meaning(vol)
    res = imports(vol, "b", "c", skip_conflicts=True)
    assert not res.changed and not res.live and not res.outcome.changes
    assert [(r.where, r.error.exit_code) for r in res.outcome.conflicts] == [("b (line 1)", 6), ("c (line 2)", 6)]
    assert registry_meaning(vol)["volume"] == before["volume"] and vol.load().exports == ()


def test_a_dry_run_into_an_active_volume_names_what_the_apply_will_find_refused_live(vol, fake):
    fake.missing_fsals = {"VFS"}
    res = imports(vol, "b", check=True)               # not active here: the start would meet it
    assert not res.changed and len(res.warnings) == 1 and "leaves this export out, or moves the volume" in res.warnings[0]
    fake.missing_fsals = set()
    vol.start()
    fake.missing_fsals = {"VFS"}
    res = imports(vol, "b", check=True)
    assert not res.changed and not res.outcome.conflicts and [ch.export.path for ch in res.outcome.changes] == ["b"]
    assert res.warnings == ["b: FSAL VFS is not installed on this node; an --apply here is refused live "
                            "(with --skip-conflicts: this export is not imported)"]


def test_an_import_keeps_what_is_live_all_the_same(vol, fake):
    """An export the server refused but serves (a take-back that failed, the node's own
    config serving that directory): the registry never loses what is live; it stays, said."""
    vol.start()
    fake.serve_foreign(150, str(vol.mountpoint / "c"))
    fake.refuse = {"c"}
    res = vol.converge([desc("b", "*"), desc("c", "*", export_id=150)], remove_missing=False,
                       update_existing=False, skip_conflicts=True)
    assert [e.path for e in vol.load().exports] == ["b", "c"] and not res.outcome.conflicts
    assert [f.export.path for f in res.failed] == ["c"]
    assert res.warnings == ["c: the fake server refused c: kept in the registry (it was there "
                            "before, or the server serves it all the same); 'ganesha-ha volume monitor' applies "
                            "it as registered"]


def test_an_import_the_server_stops_answering_is_rolled_back_whole(vol, fake):
    """Not one export's fault: the whole import is undone, each export withdrawn on its own."""
    vol.start()
    fake.hang = {"apply"}
    before = registry_meaning(vol)
    with pytest.raises(ServerUnavailableError, match="registry rolled back"):
        imports(vol, "b", "c", skip_conflicts=True)
    assert registry_meaning(vol) == before


def test_a_directory_described_twice_is_a_conflict(vol):
    res = vol.converge([desc("a", "*", source="line 1"), desc("a", "*(rw)", source="line 9")], remove_missing=True)
    assert [r.where for r in res.outcome.conflicts] == ["a (line 9)"]
    assert "first line 1" in str(res.outcome.conflicts[0])


def test_an_import_never_changes_what_the_volume_exports(vol):
    vol.add("a", ["*(ro)"])
    same = desc("a", "*(ro,root_squash,sync)", access="RW", by_meaning=True)
    other = desc("a", "*(rw)", by_meaning=True)
    res = vol.converge([same], remove_missing=False, update_existing=False)
    assert res.outcome.unchanged and not res.outcome.changes and not res.outcome.conflicts
    res = vol.converge([other], remove_missing=False, update_existing=False)
    assert "already exported differently" in str(res.outcome.conflicts[0])


def test_by_meaning_a_spelling_of_the_same_grants_is_no_change(vol):
    """An exports(5) line or an EXPORT block spells out every client's access and squash;
    the registry may say the same with the export's cap."""
    vol.add("a", ["10.0.0.0/8(rw)", "*"], access="RO", squash="all_squash")
    exp = vol.load().find("a")
    spelt = desc("a", *[f"{c.host}({'ro' if exp.client_access(c) == 'RO' else 'rw'},all_squash,no_subtree_check)"
                        for c in exp.clients], access="RW", squash="root_squash", by_meaning=True)
    assert not vol.converge([spelt], remove_missing=True).outcome.changes
    literal = Description("a", clients=spelt.clients, access="RW", squash="root_squash")
    assert vol.converge([literal], remove_missing=True, check=True).outcome.changes   # JSON is taken as written


def test_meaning_ignores_client_order_and_knfsd_defaults():
    from ganesha_ha.model import Export, KnfsdOptions

    a = Export(path="a", export_id=1, pseudo="/a", knfsd=KnfsdOptions("1"), clients=("x.example(rw)", "*(ro)"))
    b = a.with_changes(clients=("*(ro,sync,no_subtree_check)", "x.example(rw,root_squash)"))
    c = a.with_changes(clients=("*(ro)", "x.example(rw,insecure)"))
    assert meaning(a) == meaning(b) != meaning(c)


def test_a_knfsd_only_flag_survives_a_form_that_cannot_carry_it(vol):
    vol.add("a", ["10.0.0.0/8(rw,insecure,async)"])
    block = desc("a", "10.0.0.0/8(rw,root_squash)", access="RW", squash="root_squash", by_meaning=True,
                 keeps_knfsd_flags=True)
    assert not vol.converge([block], remove_missing=True).outcome.changes


def test_progress_is_reported_and_batches_split_only_for_it(vol, fake):
    vol.start()
    for i in range(40):
        (vol.mountpoint / f"e{i}").mkdir()
    seen: list[tuple[str, int, int]] = []
    vol.converge([desc(f"e{i}", "*") for i in range(40)], remove_missing=False,
                 progress=lambda *a: seen.append(a))
    assert [s for s in seen if s[0] == "checking"][-1] == ("checking", 40, 40)
    applying = [s for s in seen if s[0] == "applying"]
    assert applying[-1] == ("applying", 40, 40) and len(applying) == 20
    assert len([c for c in fake.calls if c[0] == "apply"]) == 20
    fake.calls.clear()
    vol.converge([desc(f"e{i}", "*(rw)") for i in range(40)], remove_missing=False)
    assert len([c for c in fake.calls if c[0] == "apply"]) == 1   # nobody watching: one call


def test_read_back_warnings_reach_the_result_however_the_batch_is_split(vol, fake):
    """What the server's read-back warns of (a client name that does not resolve here) is
    handed back by an apply, watched (in parts) or not (one call)."""
    vol.start()
    for i in range(40):
        (vol.mountpoint / f"e{i}").mkdir()
    fake.warn = {"e3", "e30"}
    res = vol.converge([desc(f"e{i}", "*(rw)") for i in range(40)], remove_missing=False,
                       progress=lambda *a: None)
    assert res.live and res.warnings == ["e3: a client does not resolve here", "e30: a client does not resolve here"]
    res = vol.converge([desc(f"e{i}", "*(ro)") for i in range(40)], remove_missing=False)
    assert res.live and len(res.warnings) == 2


# ---- export update's client edits ----------------------------------------------------------------

def test_edited_clients():
    old = (ClientSpec("a.example", ("rw",)), ClientSpec("10.0.0.0/8"))
    assert edited_clients(old, ["b.example(ro)"], []) == old + (ClientSpec("b.example", ("ro",)),)
    assert edited_clients(old, ["A.example(ro)"], []) == (ClientSpec("a.example", ("ro",)), old[1])
    assert edited_clients(old, [], ["10.0.0.0/8(rw)"]) == old[:1]
    with pytest.raises(ValidationError, match="not a client"):
        edited_clients(old, [], ["c.example"])
    with pytest.raises(ValidationError, match="both added and removed"):
        edited_clients(old, ["a.example"], ["a.example"])


def test_update_adds_and_removes_clients_under_the_lock(vol):
    vol.add("a", ["a.example(rw)", "10.0.0.0/8"])
    vol.update("a", add_clients=["b.example(ro)"], remove_clients=["10.0.0.0/8"])
    assert [str(c) for c in vol.load().find("a").clients] == ["a.example(rw)", "b.example(ro)"]
    with pytest.raises(ValidationError, match="at least one client"):
        vol.update("a", remove_clients=["a.example", "b.example"])


def test_cli_update_refuses_client_with_add_client(vol, settings, tmp_path, capsys, monkeypatch):
    from ganesha_ha import cli

    monkeypatch.setattr(cli, "_volume", lambda args, s: vol)
    config = tmp_path / "gha.conf"
    rc = cli.main(["--config", str(config), "export", "update", str(vol.mountpoint), "a", "--client", "*",
                   "--add-client", "b"])
    assert rc == 2 and "replaces the whole list" in capsys.readouterr().err


def test_import_ganesha_leaves_out_an_fsal_with_its_own_namespace(vol, tmp_path, capsys, monkeypatch):
    """A CEPH (or MEM, ...) export's path is in no volume: `import ganesha` counts it outside
    (`export apply` of EXPORT blocks takes it, by its path)."""
    import ganesha_ha.volume
    from ganesha_ha import cli

    monkeypatch.setattr(ganesha_ha.volume, "Volume", lambda *a, **kw: vol)
    conf = tmp_path / "ganesha.conf"
    conf.write_text(f"EXPORT {{ Export_Id = 101; Path = {vol.mountpoint}/a; Pseudo = /a; FSAL {{ Name = VFS; }}\n"
                    "  CLIENT { Clients = *; Access_Type = RW; } }\n"
                    "EXPORT { Export_Id = 102; Path = /a; Pseudo = /ceph; FSAL { Name = CEPH; User_Id = nfs; }\n"
                    "  CLIENT { Clients = *; Access_Type = RW; } }\n")
    rc = cli.main(["--config", str(tmp_path / "gha.conf"), "import", "ganesha", str(vol.mountpoint),
                   "--file", str(conf), "--apply"])
    out = capsys.readouterr().out
    assert rc == 0 and "1 to add" in out and "1 outside" in out, out
    assert [(e.path, e.ganesha.fsal.name) for e in vol.load().exports] == [("a", "VFS")]


def test_update_help_shows_no_defaults_of_add():
    from ganesha_ha.cli_args import build_parser

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["export"]._subparsers._group_actions[0].choices
    update, add = (" ".join(sub[name].format_help().split()) for name in ("update", "add"))
    assert "(default" not in update and "default RW" in add
    assert "replacing the whole list" in update and "--add-client" in update


def test_paths_and_progress_helpers(tmp_path):
    """textfmt.Progress writes only to a terminal."""
    import io

    from ganesha_ha.textfmt import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        p = Progress(stream, least=10, interval=0)
        for i in range(1, 101):
            p("applying", i, 100)
        p.close()
    assert "applying 100/100 exports" in tty.getvalue() and tty.getvalue().endswith("\r\x1b[K")
    assert pipe.getvalue() == ""
    small = Tty()
    Progress(small, least=10)("applying", 3, 3)
    assert small.getvalue() == ""
