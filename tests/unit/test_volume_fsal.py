"""Volume over a fake server: the FSAL rules of a change (issue 15), without root.

An FSAL whose data is in its own namespace gets an absolute path there and no directory on the
volume; a change Ganesha cannot make in place withdraws and re-adds the export and says so; an
FSAL module missing on the node refuses a live change and warns a recorded one; handles that
would depend on the node's device number are refused unless forced; a secret never reaches
the node-local record.
"""
from __future__ import annotations


import pytest

from fake_backend import FakeBackend
from ganesha_ha.errors import ConflictError, NotInstalledError, ValidationError
from ganesha_ha.fsal import parse_spec
from ganesha_ha.record import replace
from ganesha_ha.volume import Volume

from test_volume import _not_checked, settings  # noqa: F401  (fixtures: pytest finds them by name)


@pytest.fixture
def fake():
    return FakeBackend()


@pytest.fixture
def active(tmp_path, settings, fake) -> Volume:  # noqa: F811
    mp = tmp_path / "vol"
    (mp / "a").mkdir(parents=True)
    v = Volume(mp, settings, backend=fake, require_mounted=_not_checked)
    v.init(fake.name, (100, 199))
    v.start()
    return v


def test_a_remote_fsal_export_lives_in_its_own_namespace(active, fake):
    res = active.add("/scratch/", ["127.0.0.1"], fsal=parse_spec("MEM(Inode_Size=4096)"))
    assert res.live and res.export.path == "/scratch" and res.export.pseudo == "/scratch"
    assert not (active.mountpoint / "scratch").exists()
    assert fake.live[res.export.export_id][0] == "/scratch"
    # found by that path, by an absolute path inside the volume's mount point too, and by id
    assert active.update("/scratch", access="RO").export.access == "RO"
    inside = active.add(str(active.mountpoint / "a"), ["*"], fsal=parse_spec("PROXY_V4(Srv_Addr=192.0.2.1)"))
    assert inside.export.path == str(active.mountpoint / "a")
    assert active.update(str(active.mountpoint / "a"), squash="all_squash").export.path == inside.export.path
    with pytest.raises(ValidationError, match="absolute"):
        active.add("relative", ["*"], fsal=parse_spec("MEM"))
    mem = parse_spec("MEM(Inode_Size=4096)")
    with pytest.raises(ValidationError, match="--pseudo"):
        active.add("/", ["*"], fsal=mem)
    assert active.add("/", ["*"], fsal=mem, pseudo="/mem-root").export.path == "/"
    with pytest.raises(ValidationError, match="path would change meaning"):
        active.update("/scratch", fsal="VFS")
    active.add("a", ["*"], pseudo="/local-a")
    with pytest.raises(ValidationError, match="path would change meaning"):
        active.update("a", fsal=mem)


def test_a_remote_export_is_found_as_export_list_shows_it(active, fake):
    """`export list` shows a remote export as `MEM:/scratch`: show/update/remove take that too."""
    exp = active.add("/scratch", ["127.0.0.1"], fsal=parse_spec("MEM")).export
    assert active.key("MEM:/scratch") == active.key("/scratch") == "/scratch"
    assert active.key("mem:/scratch/") == "/scratch"
    assert active.update("MEM:/scratch", access="RO").export.export_id == exp.export_id
    assert active.key("notanfsal:/x") == "notanfsal:/x"   # a directory of the volume of that name


def test_fsal_changes_readd_unless_ganesha_does_them_in_place(active, fake):
    exp = active.add("/m", ["*"], fsal=parse_spec("MEM(Inode_Size=4096)")).export
    fake.calls.clear()
    res = active.update("/m", fsal=parse_spec("MEM(Inode_Size=4096,Async_Delay=3)"))
    assert fake.calls == [("apply", ["/m"])] and "withdrawn" not in res.note and not res.warnings
    fake.calls.clear()
    # a module option takes effect at Ganesha's next load of the module whatever is done now:
    # not withdrawn (MEM's files would go with it), a warning says when it applies
    res = active.update("/m", fsal=parse_spec("MEM(Inode_Size=8192)"))
    assert fake.calls == [("apply", ["/m"])] and "withdrawn" not in res.note
    assert any("Inode_Size take effect only when ganesha.nfsd next loads" in w for w in res.warnings)
    fake.calls.clear()
    res = active.update("/m", fsal=parse_spec("NULL(MEM(Inode_Size=8192))"))
    assert fake.calls == [("withdraw", ["/m"]), ("apply", ["/m"])]
    assert "withdrawn and added again" in res.note and "short outage" in res.note
    recorded = active.update("/m", fsal=parse_spec("MEM(Inode_Size=8192)"), record_only=True)
    assert "will be withdrawn and added again" in recorded.note
    assert exp.export_id == recorded.export.export_id


def test_module_options_of_one_fsal_must_agree(active):
    active.add("/m1", ["*"], fsal=parse_spec("MEM(Inode_Size=4096)"))
    with pytest.raises(ConflictError, match="Inode_Size=1024.*Inode_Size=4096"):
        active.add("/m2", ["*"], fsal=parse_spec("MEM(Inode_Size=1024)"))
    active.add("/m2", ["*"], fsal=parse_spec("NULL(MEM(Inode_Size=4096,Async_Delay=1))"))


def test_a_missing_fsal_module_refuses_live_and_warns_recorded(active, fake):
    fake.missing_fsals = {"MEM"}
    before = active.registry.path.read_bytes()
    with pytest.raises(NotInstalledError, match="MEM"):
        active.add("/m", ["*"], fsal=parse_spec("MEM"))
    assert active.registry.path.read_bytes() == before and fake.calls[-1:] != [("apply", ["/m"])]
    res = active.add("/m", ["*"], fsal=parse_spec("MEM"), record_only=True)
    assert not res.live and any("MEM" in w and "leaves this export out, or moves the volume" in w for w in res.warnings)
    mon = active.monitor()   # no other node published MEM: left out (the agent answers OCF_DEGRADED)
    assert [(f.export.path, f.node_local) for f in mon.failed] == [("/m", False)]
    fake.others = {"n2": frozenset({"MEM"})}
    mon = active.monitor()   # n2 has it: node-local (the agent answers OCF_ERR_INSTALLED, the volume moves)
    assert [(f.export.path, f.node_local) for f in mon.failed] == [("/m", True)]
    with pytest.raises(NotInstalledError):
        active.start()       # nothing of the volume can be served here


def test_device_numbered_handles_are_refused_unless_forced(active, fake):
    with pytest.raises(ValidationError, match="fsid_type=Device.*--force"):
        active.add("a", ["*"], fsal=parse_spec("VFS(fsid_type=Device)"))
    res = active.add("a", ["*"], fsal=parse_spec("VFS(fsid_type=Device)"), force=True)
    assert res.live and any("NFS4ERR_STALE" in w for w in res.warnings)
    fake.device_fsid = True
    with pytest.raises(ValidationError, match="device-numbered"):
        active.update("a", fsal=parse_spec("VFS(fsid_type=uuid)"))
    assert active.update("a", fsal=parse_spec("VFS(fsid_type=uuid)"), force=True).warnings
    assert active.start().warnings, "the start says so too"
    # a remote FSAL's handles do not come from a local device
    assert not active.add("/m", ["*"], fsal=parse_spec("MEM")).warnings


def test_a_secret_stays_in_the_registry(active):
    secret = "AQD1c2VjcmV0LWtleQ=="
    active.add("/c", ["*"], fsal=parse_spec(f"CEPH(user_id=nfs,secret_access_key={secret})"))
    assert secret in active.registry.path.read_text()
    assert oct(active.registry.path.stat().st_mode & 0o777) == "0o600"
    record = active.node.active_path.read_text()
    assert secret not in record and "<redacted>" in record
    assert active.stop() == 1, "the stop withdraws it from the redacted record"


def test_knfsd_cannot_serve_a_remote_fsal(tmp_path, settings):  # noqa: F811
    from ganesha_ha.backends.load import get_backend

    knfsd = get_backend("knfsd", settings)
    from ganesha_ha.model import Export, GaneshaOptions, KnfsdOptions

    exp = Export(path="/m", export_id=1, knfsd=KnfsdOptions("1"), pseudo="/m", clients=("*",),
                 ganesha=GaneshaOptions(parse_spec("MEM")))
    with pytest.raises(ValidationError, match="only server=ganesha"):
        knfsd.check_export(exp, tmp_path)
    assert knfsd.handle_risks([exp]) == [] and knfsd.check_installed_for(exp) is None


def test_dump_and_apply_keep_remote_exports_and_secrets(active, fake):
    """`export apply` of any dump: a remote FSAL's export is no directory of the volume (not
    looked for there), its redacted secret keeps the registry's value, and an FSAL module
    missing here is a warning of a recorded apply, a refusal of a live one."""
    from ganesha_ha.backends.ganesha_conf import RenderOptions
    from ganesha_ha.formats import exports5, ganesha_blocks, jsonform

    secret = "AQD1c2VjcmV0LWtleQ=="
    active.add("/c", ["*"], fsal=parse_spec(f"CEPH(user_id=nfs,secret_access_key={secret})"))
    active.add("/m", ["*"], fsal=parse_spec("MEM(Inode_Size=4096)"))
    active.add("a", ["*"])
    state = active.registry.load()
    mp, node = str(active.mountpoint), RenderOptions("3, 4", "TCP")
    rel = exports5.relpath_in(mp)
    readings = {"json": jsonform.read(jsonform.render(state.exports, mp), rel)[0],
                "exports": exports5.read(exports5.render(state.exports, mp), rel),
                "ganesha": ganesha_blocks.read(ganesha_blocks.render(state.exports, mp, node), rel, node)}
    for fmt, reading in readings.items():
        assert not reading.refusals, fmt
        res = active.converge(reading.descriptions, remove_missing=True, check=True)
        assert not res.outcome.changes and not res.outcome.conflicts, (fmt, res.outcome)
    # an edit of the user beside the redacted key: the key keeps its value
    edited = [replace(d, fsal=parse_spec("CEPH(user_id=other,secret_access_key=<redacted>)"))
              if d.path == "/c" else d for d in readings["json"].descriptions]
    res = active.converge(edited, remove_missing=True)
    assert res.changed and res.live and [c.action for c in res.outcome.changes] == ["update"]
    assert dict(active.registry.load().get("/c").ganesha.fsal.options)["secret_access_key"] == secret
    # a module option changed through a description: said as `export update` says it
    bigger = [replace(d, fsal=parse_spec("MEM(Inode_Size=8192)")) if d.path == "/m" else d for d in edited]
    res = active.converge(bigger, remove_missing=True)
    assert any("Inode_Size take effect only when ganesha.nfsd next loads" in w for w in res.warnings)
    fake.missing_fsals = {"CEPH"}
    again = [replace(d, fsal=parse_spec("CEPH(user_id=nfs,secret_access_key=<redacted>)"))
             if d.path == "/c" else d for d in bigger]
    with pytest.raises(NotInstalledError, match="CEPH"):
        active.converge(again, remove_missing=True)
    res = active.converge(again, remove_missing=True, record_only=True)
    assert res.changed and not res.live and any("leaves this export out, or moves the volume" in w for w in res.warnings)
