"""Volume over a fake server (tests/fake_backend.py): the transaction's rules, without root.

A plain temp directory stands for the mounted volume (the mount-point check is injected),
the node's runtime directory is another temp directory. What is checked: a change reaches
the registry and the live server together or neither (rolled back, exit codes kept),
record-only and not-active changes stay in the registry, Export_Id collisions and server
limits are refused before anything is written, updates that change an export's identity
withdraw it first, the monitor repairs drift, and client-recovery state is never saved
before this node restored it.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from fake_backend import FakeBackend
from ganesha_ha.backends import Backend
from ganesha_ha.backends.load import get_backend
from ganesha_ha.context import VolumeContext
from ganesha_ha.errors import (ApplyError, ConflictError, IdCollisionError, NotMountedError,
                               ServerUnavailableError, ValidationError)
from ganesha_ha.record import replace
from ganesha_ha.settings import load_settings
from ganesha_ha.volume import Volume


def _not_checked(path: Path) -> None:
    """The mount-point check, replaced: the temp directory stands for a mounted volume."""


@pytest.fixture
def settings(tmp_path):
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n[registry]\nlock_timeout = 2\n")
    return load_settings(config)


@pytest.fixture
def fake():
    return FakeBackend()


@pytest.fixture
def vol(tmp_path, settings, fake) -> Volume:
    mp = tmp_path / "vol"
    for d in ("a", "b", "c"):
        (mp / d).mkdir(parents=True)
    v = Volume(mp, settings, backend=fake, require_mounted=_not_checked)
    v.init(fake.name, (100, 199))
    return v


@pytest.fixture
def active(vol) -> Volume:
    vol.start()
    return vol


def meaning(vol: Volume) -> dict:
    """The registry file's content, without the generation (every save bumps it)."""
    doc = json.loads(vol.registry.path.read_bytes())
    doc.pop("generation")
    return doc


def live(vol: Volume, fake: FakeBackend) -> dict:
    return fake.live_exports(vol.ctx(vol.load()))


def _export(vol: Volume, path: str, export_id: int):
    from ganesha_ha.model import Export, KnfsdOptions

    return Export(path=path, export_id=export_id, knfsd=KnfsdOptions(str(export_id)), pseudo=f"/{path}", clients=("*",))


# ---- the interface ---------------------------------------------------------------------------

def _methods(cls) -> dict[str, inspect.Signature]:
    """Public methods a class defines itself or inherits from the package's backends."""
    out = {}
    for klass in reversed(cls.__mro__):
        if klass is not cls and not klass.__module__.startswith("ganesha_ha.backends."):
            continue
        out.update({name: inspect.signature(member) for name, member in vars(klass).items()
                    if callable(member) and not name.startswith("_")})
    return out


@pytest.mark.parametrize("server", ["fake", "knfsd", "ganesha", "ganesha-instance"])
def test_backends_implement_the_whole_protocol(server, settings):
    """Every Backend method, with the same parameters, in the fake and in the real backends
    (the node's knfsd and Ganesha, and a volume's own Ganesha instance)."""
    wanted = _methods(Backend)
    assert {"served_ids", "check_export", "recovery_stores", "after_restore", "launch"} <= set(wanted)
    if server == "ganesha-instance":
        ctx = VolumeContext(mountpoint=Path("/srv/v"), state_dir=Path("/srv/v/.ganesha-ha"),
                            volume_uuid="1b4e28ba-2fa1-11d2-883f-0016d3cca427", ip="192.0.2.1",
                            ganesha_mode="instance")
        backend = get_backend("ganesha", settings, ctx)
        assert backend.own_server and backend.bus.bus_name == \
            "gha_1b4e28ba2fa111d2883f0016d3cca427.org.ganesha.nfsd"
        cls = type(backend)
    else:
        cls = FakeBackend if server == "fake" else type(get_backend(server, settings))
        assert not cls.own_server
    have = _methods(cls)
    for name, sig in wanted.items():
        assert name in have, f"{cls.__name__} lacks {name}"
        assert list(have[name].parameters) == list(sig.parameters), (cls.__name__, name)


# ---- changes --------------------------------------------------------------------------------

def test_add_on_an_active_volume_is_live(active, fake):
    res = active.add("a", ["127.0.0.1"])
    assert res.live and res.export.export_id == 100
    assert live(active, fake) == {"a": res.export}
    assert [e.path for e in active.load().exports] == ["a"]


def test_read_back_warnings_reach_the_caller(vol, fake):
    """What the server's read-back warns of (a client name that does not resolve here) fails
    nothing and is handed back: by the change, by the start (and each export still goes live)."""
    fake.warn = {"a"}
    assert vol.add("a", ["127.0.0.1"]).warnings == []            # not active: nothing applied
    res = vol.start()
    assert res.applied == 1 and res.warnings == ["a: a client does not resolve here"]
    assert vol.update("a", clients=["127.0.0.2"]).warnings == ["a: a client does not resolve here"]
    assert vol.add("b", ["127.0.0.1"]).warnings == []


def test_not_active_records_only_and_start_applies(vol, fake):
    res = vol.add("a", ["127.0.0.1"])
    assert not res.live and "not active on this node" in res.note
    assert fake.calls == [] and live(vol, fake) == {}
    assert vol.start().applied == 1
    assert live(vol, fake) == {"a": res.export}


def test_record_only_touches_no_server(active, fake):
    fake.running = False  # not even asked
    res = active.add("a", ["127.0.0.1"], record_only=True)
    assert not res.live and "--record-only" in res.note and fake.calls == []
    fake.running = True
    assert live(active, fake) == {}
    assert active.monitor().repaired == 1 and "a" in live(active, fake)


def test_refused_apply_rolls_back_registry_and_server(active, fake):
    active.add("a", ["127.0.0.1"])
    before, served = meaning(active), dict(fake.live)
    fake.refuse = {"b"}
    with pytest.raises(ApplyError, match="refused b; nothing was changed .registry rolled back.") as err:
        active.add("b", ["127.0.0.1"])
    assert err.value.exit_code == 7
    assert meaning(active) == before and fake.live == served
    assert not list(active.registry.state_dir.glob(".*tmp-*"))


def test_server_that_does_not_answer_keeps_its_error_class(active, fake):
    """Nothing was refused: exit 6, and the server may still carry the change out."""
    before = meaning(active)
    fake.hang = {"apply"}
    with pytest.raises(ServerUnavailableError, match="registry rolled back, but the server may still") as err:
        active.add("a", ["127.0.0.1"])
    assert err.value.exit_code == 6 and meaning(active) == before
    assert fake.calls[-1] == ("withdraw", ["a"]), "the undo was tried"


def test_server_down_refuses_before_writing(active, fake):
    before = meaning(active)
    fake.running = False
    with pytest.raises(ServerUnavailableError):
        active.add("a", ["127.0.0.1"])
    assert meaning(active) == before and fake.calls == []


def test_export_id_collision_is_refused_before_anything_is_written(active, fake, tmp_path):
    fake.serve_foreign(150, str(tmp_path / "elsewhere"))
    before = meaning(active)
    with pytest.raises(IdCollisionError, match="Export_Id 150 is already served") as err:
        active.add("a", ["127.0.0.1"], export_id=150)
    assert err.value.exit_code == 5 and meaning(active) == before and fake.calls == []
    # an allocated id avoids what the server already serves
    fake.serve_foreign(100, str(tmp_path / "elsewhere2"))
    assert active.add("a", ["127.0.0.1"]).export.export_id == 101


def test_duplicate_and_limits_are_refused_before_anything_is_written(active, fake):
    active.add("a", ["127.0.0.1"], export_id=120)
    before = meaning(active)
    with pytest.raises(ConflictError, match="Export_Id"):
        active.add("b", ["127.0.0.1"], export_id=120)
    with pytest.raises(ConflictError, match="already exported"):
        active.add("a", ["127.0.0.2"])
    with pytest.raises(ValidationError, match="backslash"):
        active.add("b", ["127.0.0.1"], pseudo="/x\\y")
    with pytest.raises(ValidationError, match="does not exist"):
        active.add("missing", ["127.0.0.1"])
    assert meaning(active) == before and [c for c in fake.calls if c[1] != ["a"]] == []


def test_a_conflict_names_the_export_being_changed_first(active, fake):
    """Whatever the Export_Ids' order: the export the command changes or adds is the subject,
    the one already holding the value is the other."""
    active.add("a", ["127.0.0.1"], pseudo="/pa")
    active.add("b", ["127.0.0.1"], pseudo="/pb", export_id=150)
    with pytest.raises(ConflictError, match="pseudo path '/pb' of export 'a' is already used by export 'b'"):
        active.update("a", pseudo="/pb")
    with pytest.raises(ConflictError, match="pseudo path '/pa' of export 'c' is already used by export 'a'"):
        active.add("c", ["127.0.0.1"], pseudo="/pa", export_id=120)
    with pytest.raises(ConflictError, match="fsid '77' of export 'a' is already used by export 'b'"):
        active.update("b", fsid="77", force=True)
        active.update("a", fsid="77", force=True)


def test_not_mounted_writes_nothing(tmp_path, settings, fake):
    def not_mounted(path: Path) -> None:
        raise NotMountedError(f"{path} is not a mounted file system on this node")

    mp = tmp_path / "bare"
    (mp / "a").mkdir(parents=True)
    v = Volume(mp, settings, backend=fake, require_mounted=not_mounted)
    with pytest.raises(NotMountedError):
        v.init("ganesha")
    with pytest.raises(NotMountedError):
        v.add("a", ["*"])
    with pytest.raises(NotMountedError):
        v.start()
    assert sorted(p.name for p in mp.iterdir()) == ["a"] and fake.calls == []


def test_update_in_place_and_changing_identity(active, fake):
    first = active.add("a", ["127.0.0.1"]).export
    fake.calls.clear()
    active.update("a", clients=["127.0.0.2"])
    assert fake.calls == [("apply", ["a"])], "same identity: updated in place"
    fake.calls.clear()
    moved = active.update("a", export_id=160, force=True).export
    assert fake.calls == [("withdraw", ["a"]), ("apply", ["a"])], "a new Export_Id: withdrawn first"
    assert set(fake.live) == {160} and live(active, fake)["a"] == moved
    # refused: the old identity is live again, the registry says so, the new id is not served
    before, fake.refuse = meaning(active), {"a"}
    with pytest.raises(ApplyError, match="the export was left as it was"):
        active.update("a", export_id=170, pseudo="/new", force=True)
    fake.refuse = set()
    assert meaning(active) == before
    assert set(fake.live) == {160} and first.export_id not in fake.live


def test_update_rollback_puts_the_old_export_back(active, fake):
    old = active.add("a", ["127.0.0.1"]).export
    fake.refuse = {"a"}  # the withdraw of the old form is refused: nothing changes live
    with pytest.raises(ApplyError):
        active.update("a", pseudo="/other")
    assert live(active, fake) == {"a": old} and active.load().exports == (old,)


def test_remove_and_its_rollback(active, fake):
    exp = active.add("a", ["127.0.0.1"]).export
    before = meaning(active)
    fake.refuse = {"a"}
    with pytest.raises(ApplyError, match="the export is still in the registry"):
        active.remove("a")
    assert meaning(active) == before and live(active, fake) == {"a": exp}
    fake.refuse = set()
    assert active.remove("100").live and live(active, fake) == {} and active.load().exports == ()


def test_the_active_record_lists_what_went_live(active, fake):
    """A stop of an unmounted volume withdraws what the node-local record lists."""
    def recorded():
        return [e["path"] for e in active.node.active_record()["exports"]]

    active.add("a", ["127.0.0.1"])
    active.add("b", ["127.0.0.1"], record_only=True)
    assert recorded() == ["a"]
    active.monitor()
    assert recorded() == ["a", "b"]


# ---- start, monitor, stop ---------------------------------------------------------------------

def test_start_applies_everything_restores_and_graces(vol, fake):
    for d in ("a", "b"):
        vol.add(d, ["127.0.0.1"])
    (vol.registry.state_dir / "fake-clients").write_text("client-1\nclient-2\n")
    res = vol.start()
    assert (res.applied, res.recovery_records, res.grace) == (2, 2, "grace for 2 clients")
    assert set(live(vol, fake)) == {"a", "b"} and fake.store.clients == ["client-1", "client-2"]
    assert vol.is_active() and vol.node.restored()


def test_start_failure_leaves_registry_and_no_active_mark(vol, fake):
    vol.add("a", ["127.0.0.1"])
    before = meaning(vol)
    fake.refuse = {"a"}
    with pytest.raises(ApplyError, match="refused a$"):
        vol.start()
    assert meaning(vol) == before and not vol.is_active()


def test_monitor_repairs_missing_changed_and_stray(active, fake, tmp_path):
    a = active.add("a", ["127.0.0.1"]).export
    active.add("b", ["127.0.0.1"])
    ctx = active.ctx(active.load())
    del fake.live[a.export_id]                                         # withdrawn behind our back
    fake.live[101] = (fake.live[101][0], _export(active, "b", 101))     # changed behind our back
    fake.live[190] = (str(ctx.mountpoint / "c"), _export(active, "c", 190))  # a stray in the volume
    res = active.monitor()
    assert (len(res.drift.missing), len(res.drift.changed), res.drift.stray, res.repaired) == (1, 1, [190], 3)
    assert active.monitor().drift.clean
    assert live(active, fake) == {e.path: e for e in active.load().exports}


def test_status_reads_back_what_is_served_and_changes_nothing(active, fake, tmp_path):
    """Live and as registered, live but granting otherwise, missing, served for another path
    (not this export being live), the server down: each told apart, nothing repaired."""
    for d in ("a", "b", "c"):
        active.add(d, ["127.0.0.1"])
    a, b, c = active.load().exports
    fake.live[b.export_id] = (fake.live[b.export_id][0], _export(active, "b", b.export_id))   # changed
    fake.live[c.export_id] = (str(tmp_path / "other"), c)                                     # foreign
    fake.calls.clear()
    status = active.status()
    assert [(r.export.path, r.live, r.as_registered) for r in status.exports] == [
        ("a", True, True), ("b", True, False), ("c", False, None)]
    # the reason c is not live, apart from how live exports differ (b's)
    assert status.not_live == [f"Export_Id {c.export_id} is live for {tmp_path / 'other'}"]
    assert not any("other" in r for r in status.reasons)
    assert fake.calls == [] and fake.live[b.export_id][1] != b   # nothing applied or repaired
    del fake.live[a.export_id]
    gone = active.status()
    assert gone.exports[0].live is False
    # tryout5: a volume active here with an export left out said only "2 live" (of 3), nothing named it
    assert gone.not_live[1:] == [f"a (Export_Id {a.export_id}): not served on this node now; 'ganesha-ha volume monitor' "
                                 "applies it again and names the server's reason"]
    active.node.clear_active()
    assert [r.export.path for r in active.status().exports if not r.live] == ["a", "c"]
    assert active.status().not_live == status.not_live, "not active here: not served is no news"
    fake.running = False
    down = active.status()
    assert [(r.live, r.as_registered) for r in down.exports] == [(None, None)] * 3
    assert down.unavailable, "why the live state is unknown"


def test_monitor_names_an_export_whose_id_is_served_for_something_else(active, fake, tmp_path):
    """Blast radius: the export whose Export_Id is served for another path is not live and
    named (the volume degraded); the server's export is left alone, the others are repaired."""
    exp = active.add("a", ["127.0.0.1"]).export
    b = active.add("b", ["127.0.0.1"]).export
    fake.live[exp.export_id] = (str(tmp_path / "other"), exp)
    del fake.live[b.export_id]
    res = active.monitor()
    assert [(f.export.path, type(f.error)) for f in res.failed] == [("a", IdCollisionError)]
    assert f"Export_Id {exp.export_id} is live for {tmp_path / 'other'}" in str(res.failed[0].error)
    assert res.served == 1 and res.repaired == 1 and b.export_id in fake.live
    assert fake.live[exp.export_id][0] == str(tmp_path / "other"), "the other path serves on"


def test_monitor_not_active_is_not_running(vol, fake):
    assert not vol.monitor().running and fake.calls == []


def test_stop_withdraws_and_forgets_the_node_marks(active, fake):
    active.add("a", ["127.0.0.1"])
    assert active.stop() == 1
    assert live(active, fake) == {} and not active.is_active() and not active.node.restored()


# ---- restore before save -------------------------------------------------------------------------

def test_recovery_is_saved_only_after_this_node_restored(active, fake):
    """The monitor saves what this node knows of the clients, but only after a start restored
    the volume's copy here; a check without save (the agent's idempotent start) never saves."""
    copy = active.registry.state_dir / "fake-clients"
    fake.store.clients = ["client-1"]
    assert active.monitor().recovery_saved and copy.read_text() == "client-1\n"
    # a node that has not restored (a fresh node; an active mark left from before):
    fake.store.clients = []
    active.node.clear_restored()
    assert not active.monitor().recovery_saved and copy.read_text() == "client-1\n"
    assert active.stop() == 0 and copy.read_text() == "client-1\n", "a stop before a restore saves nothing"
    # the start restores, then the monitor saves again
    assert active.start().recovery_records == 1 and fake.store.clients == ["client-1"]
    fake.store.clients.append("client-2")
    assert not active.monitor(save=False).recovery_saved and copy.read_text() == "client-1\n"
    assert active.monitor().recovery_saved and copy.read_text() == "client-1\nclient-2\n"


def test_an_active_mark_from_before_restore_marks_counts_as_restored(active, fake):
    """A node upgraded while the volume is active keeps saving: the start that wrote the old
    mark (no "version" in it) restored first, as every start did."""
    record = active.node.active_record()
    del record["version"]
    active.node.set_active(record)
    active.node.clear_restored()
    fake.store.clients = ["client-1"]
    assert active.monitor().recovery_saved


# ---- the pseudo tree orders every change (issue 13, item 3) ----------------------------------------

@pytest.fixture
def nested(vol, fake):
    """`b` at /top and `c` at /top/sub, the child at the lower Export_Id (what broke the stop)."""
    (vol.mountpoint / "b" / "sub").mkdir()
    vol.add("c", ["127.0.0.1"], pseudo="/top/sub", export_id=100)
    vol.add("b", ["127.0.0.1"], pseudo="/top", export_id=101)
    return vol


def test_nested_exports_start_and_stop_in_tree_order_whatever_their_ids(nested, fake):
    nested.start()
    assert fake.calls == [("apply", ["b", "c"])] and fake.hidden() == []
    assert nested.stop() == 2 and fake.live == {}
    assert fake.calls[-1] == ("withdraw", ["c", "b"])


def test_removing_a_parent_remounts_its_child_with_the_same_identity(nested, fake):
    nested.start()
    child = nested.load().find("c")
    fake.calls.clear()
    res = nested.remove("b")
    assert res.live and "1 export(s) below it in the pseudo tree withdrawn and applied again" in res.note
    assert fake.calls == [("withdraw", ["c", "b"]), ("apply", ["c"])]
    assert live(nested, fake) == {"c": child} and fake.hidden() == []


def test_a_parent_added_over_a_live_child_remounts_it(vol, fake):
    (vol.mountpoint / "b" / "sub").mkdir()
    vol.start()
    vol.add("c", ["127.0.0.1"], pseudo="/top/sub")
    fake.calls.clear()
    res = vol.add("b", ["127.0.0.1"], pseudo="/top")
    assert fake.calls == [("withdraw", ["c"]), ("apply", ["b", "c"])] and fake.hidden() == []
    assert "below it in the pseudo tree" in res.note
    # moved out from under its parent: one withdraw, one apply, nothing else touched
    fake.calls.clear()
    assert not vol.update("c", pseudo="/sub").note
    assert fake.calls == [("withdraw", ["c"]), ("apply", ["c"])] and fake.hidden() == []
    # ...and back under it
    vol.update("c", pseudo="/top/sub")
    assert fake.hidden() == [] and {e.pseudo for _, e in fake.live.values()} == {"/top", "/top/sub"}


def test_an_isolated_change_that_only_adds_leaves_out_what_the_server_refuses(vol, fake):
    """`tx.isolate` on a change that only adds (import --skip-conflicts): each new export goes
    live on its own, as in a start; a refused one is named in `failed` and taken out of the
    registry again, and the live child a refused new parent was to be mounted over is
    mounted back, unhidden. A change that touches an export the volume has stays all or
    nothing, `isolate` or not."""
    (vol.mountpoint / "b" / "sub").mkdir()
    vol.add("c", ["127.0.0.1"], pseudo="/top/sub")
    vol.add("a", ["127.0.0.1"])
    vol.start()
    (vol.mountpoint / "d").mkdir()
    fake.refuse = {"b"}
    with vol.transaction() as tx:
        tx.state = tx.state.with_export(_export(vol, "b", 150)).with_export(_export(vol, "d", 151))
        tx.state = tx.state.with_export(replace(tx.state.find("b"), pseudo="/top"))
        tx.isolate = True
    assert [(f.export.path, f.action, str(f.error)) for f in tx.failed] == [("b", "apply", "the fake server refused b")]
    assert sorted(e.path for e in vol.load().exports) == ["a", "c", "d"] and tx.state == vol.load()
    assert set(live(vol, fake)) == {"a", "c", "d"} and fake.hidden() == []
    assert sorted(e["path"] for e in vol.node.active_record()["exports"]) == ["a", "c", "d"]

    before = meaning(vol)
    fake.refuse = {"a"}
    with pytest.raises(ApplyError, match="registry rolled back"):
        with vol.transaction() as tx:
            tx.state = tx.state.with_export(replace(tx.state.find("a"), clients=("10.0.0.1",)))
            tx.state = tx.state.with_export(_export(vol, "b", 152))
            tx.isolate = True
    assert meaning(vol) == before and set(live(vol, fake)) == {"a", "c", "d"}


def test_a_failed_parent_removal_puts_the_child_back(nested, fake):
    nested.start()
    before = meaning(nested)
    fake.refuse = {"b"}
    with pytest.raises(ApplyError, match="refused to remove b"):
        nested.remove("b")
    assert meaning(nested) == before and set(live(nested, fake)) == {"b", "c"} and fake.hidden() == []


def test_a_repair_of_a_missing_parent_remounts_the_live_child(nested, fake):
    nested.start()
    top = nested.load().find("b")
    del fake.live[top.export_id]          # the parent lost (a Ganesha that refused it at a start)
    fake.mounted_under[100] = None         # the child live without it
    res = nested.monitor()
    assert res.repaired == 1 and fake.hidden() == [] and set(live(nested, fake)) == {"b", "c"}


# ---- pseudo paths across volumes (issue 13, item 4) ------------------------------------------------

@pytest.fixture
def other(tmp_path, settings, fake) -> Volume:
    """A second volume on the same node (same runtime directory, same server), started, with
    `x` at /shared and `y` at /deep/er."""
    mp = tmp_path / "vol2"
    for d in ("x", "y"):
        (mp / d).mkdir(parents=True)
    v = Volume(mp, settings, backend=fake, require_mounted=_not_checked)
    v.init(fake.name, (200, 299))
    v.start()
    v.add("x", ["127.0.0.1"], pseudo="/shared")
    v.add("y", ["127.0.0.1"], pseudo="/deep/er")
    return v


@pytest.mark.parametrize("pseudo, how", [("/shared", "is already served by this node for the volume"),
                                         ("/shared/in", "lies below /shared"),
                                         ("/deep", "lies above /deep/er")])
def test_a_pseudo_path_of_another_volume_is_left_out_at_start(vol, other, fake, pseudo, how):
    """Blast radius: the one export is not served, named; the volume's others are, and the
    other volume's export serves on. Alone, the export makes a start that serves nothing."""
    from ganesha_ha.errors import OCF_ERR_PERM, PseudoCollisionError

    vol.add("a", ["127.0.0.1"], pseudo=pseudo)
    before, served = meaning(vol), dict(fake.live)
    with pytest.raises(PseudoCollisionError, match=f"none of the 1 exports.*: a \\(Export_Id 100\\): pseudo path "
                                                   f"{pseudo} {how}") as whole:
        vol.start()   # nothing of it can be served here: banned from this node (OCF_ERR_PERM), as before
    assert (whole.value.exit_code, whole.value.ocf_rc) == (5, OCF_ERR_PERM)
    assert meaning(vol) == before and fake.live == served and not vol.is_active()
    vol.add("b", ["127.0.0.1"], pseudo="/apart")
    res = vol.start()
    assert [f.export.path for f in res.failed] == ["a"] and res.applied == 1 and vol.is_active()
    err = res.failed[0].error
    assert isinstance(err, PseudoCollisionError) and str(other.mountpoint) in str(err) and err.exit_code == 5
    assert set(live(vol, fake)) == {"b"} and all(fake.live[i] == served[i] for i in served)
    # the monitor names it at every pass (degraded), and serves it once the other volume is gone
    mon = vol.monitor()
    assert [f.export.path for f in mon.failed] == ["a"] and mon.served == 1
    other.stop()
    mon = vol.monitor()
    assert mon.failed == [] and set(live(vol, fake)) == {"a", "b"}


def test_a_pseudo_path_of_another_volume_is_refused_at_add_and_update(active, other, fake):
    from ganesha_ha.errors import PseudoCollisionError

    active.add("a", ["127.0.0.1"], pseudo="/mine")
    before, served = meaning(active), dict(fake.live)
    with pytest.raises(PseudoCollisionError, match="/shared"):
        active.add("b", ["127.0.0.1"], pseudo="/shared")
    with pytest.raises(PseudoCollisionError, match="lies below /deep/er"):
        active.update("a", pseudo="/deep/er/x")
    assert meaning(active) == before and fake.live == served
    # recorded only (not live here, or --record-only): where it will run is not known yet
    assert not active.add("b", ["127.0.0.1"], pseudo="/shared", record_only=True).live


def test_a_change_recorded_for_a_volume_not_active_here_warns_of_what_its_start_would_meet(vol, other, fake,
                                                                                            tmp_path):
    """Not active here: recorded (where it will run is not known), with a warning naming what
    this node serves for the other volume; apart from it, no warning."""
    res = vol.add("a", ["127.0.0.1"], pseudo="/shared/in")
    assert not res.live and len(res.warnings) == 1
    assert "lies below /shared" in res.warnings[0] and str(other.mountpoint) in res.warnings[0]
    assert f"a start of {vol.mountpoint} on this node would leave this export out" in res.warnings[0]
    assert vol.update("a", pseudo="/apart").warnings == []
    assert "lies above /deep/er" in vol.update("a", pseudo="/deep").warnings[0]
    fake.serve_foreign(150, str(tmp_path / "elsewhere"))
    assert "Export_Id 150 is already served" in vol.add("b", ["127.0.0.1"], export_id=150).warnings[0]
    fake.running = False    # nothing served here to meet
    assert vol.update("a", pseudo="/shared").warnings == []


def test_a_stale_mark_of_another_volume_blocks_nothing(vol, other, fake):
    """The other volume's mark lists /shared, but its ids are not served here any more."""
    for export_id in [i for i in fake.live if 200 <= i <= 299]:
        del fake.live[export_id]
    vol.add("a", ["127.0.0.1"], pseudo="/shared")
    vol.start()
    assert live(vol, fake)["a"].pseudo == "/shared"


def test_pseudo_paths_do_not_matter_on_a_server_without_a_pseudo_tree(tmp_path, settings):
    knfsd = FakeBackend("knfsd")
    vols = []
    for name in ("k1", "k2"):
        (tmp_path / name / "d").mkdir(parents=True)
        v = Volume(tmp_path / name, settings, backend=knfsd, require_mounted=_not_checked)
        v.init("knfsd", (300, 399) if name == "k1" else (400, 499))
        v.add("d", ["127.0.0.1"], pseudo="/same")
        v.start()
        vols.append(v)
    assert {e.pseudo for _, e in knfsd.live.values()} == {"/same"} and len(knfsd.live) == 2


# ---- identity does not drift (issue 13, item 5) -----------------------------------------------------

@pytest.fixture(params=["ganesha", "knfsd"])
def served_by(request, tmp_path, settings):
    """An active volume of each server, with its fake."""
    fake = FakeBackend(request.param)
    (tmp_path / "sv" / "a").mkdir(parents=True)
    v = Volume(tmp_path / "sv", settings, backend=fake, require_mounted=_not_checked)
    v.init(fake.name, (100, 199))
    v.start()
    return v, fake


def test_changing_an_identity_needs_force_and_retires_the_old_one(served_by):
    """The identity the volume's server puts in its file handles (Ganesha: the Export_Id;
    knfsd: the fsid): refused without --force, naming the server; then retired."""
    active, fake = served_by
    change = {"export_id": 150} if fake.name == "ganesha" else {"fsid": "77"}
    exp = active.add("a", ["127.0.0.1"], fsid="42" if fake.name == "knfsd" else None).export
    before, fake.calls = meaning(active), []
    with pytest.raises(ValidationError, match=f"{fake.name}'s file handles carry the .*gives every client that has "
                                              r"it mounted stale file handles \(ESTALE\); give --force") as err:
        active.update("a", **change)
    assert err.value.exit_code == 2 and meaning(active) == before and fake.calls == []
    assert active.update("a", export_id=exp.export_id, fsid="42", access="RO").live, "the same values: no change"
    res = active.update("a", force=True, **change)
    new, state = res.export, active.load()
    label, was, now = ("Export_Id", exp.export_id, 150) if "export_id" in change else ("fsid", "42", "77")
    assert res.warnings == [f"the {label} of {active.mountpoint / 'a'} changed from {was} to {now} (--force): "
                            "clients that have it mounted get stale file handles (ESTALE) until they "
                            "mount it again"]
    if "export_id" in change:
        assert new.export_id == 150 and state.id_retired(exp.export_id) and set(fake.live) == {150}
    else:
        assert new.knfsd.fsid == "77" and state.fsid_retired("42") and not state.id_retired(exp.export_id)


def test_the_other_server_s_identity_is_kept_and_said_never_refused_as_stale(served_by):
    """Tryout finding B: `--fsid` on a Ganesha volume, `--export-id` on a knfsd one: their
    clients' file handles do not carry it, so no --force and no ESTALE; it is kept for a move
    of the exports to the other server (export dump), and the warning says so."""
    active, fake = served_by
    other, given, value = (("knfsd", "fsid", "42") if fake.name == "ganesha" else ("ganesha", "export_id", 150))
    label = {"fsid": "fsid", "export_id": "Export_Id"}[given]
    added = active.add("a", ["127.0.0.1"], **{given: value})
    [warning] = added.warnings
    assert warning.startswith(f"{label} {value} of {active.mountpoint / 'a'}: the {label} is {other}'s identity, "
                              f"which {fake.name} (this volume's server, chosen at volume init) does not use")
    assert "for a move of the exports to a" in warning and "ESTALE" not in warning
    changed = active.update("a", **{given: "43" if given == "fsid" else 151})
    assert changed.live and "ESTALE" not in " ".join(changed.warnings)
    assert changed.warnings == [f"{label} of {active.mountpoint / 'a'} changed from {value} to "
                                f"{'43' if given == 'fsid' else 151}: the {label} is {other}'s identity, which "
                                f"{fake.name} (this volume's server, chosen at volume init) does not use: kept in "
                                f"the registry only, for a move of the exports to a {other} volume (export dump)"]


def test_explicit_ids_outside_the_range_are_refused_even_with_force(active, fake):
    with pytest.raises(ValidationError, match="5000 is outside this volume's range 100-199.*volume set-range") as err:
        active.add("a", ["127.0.0.1"], export_id=5000, force=True)
    assert err.value.exit_code == 2
    active.add("a", ["127.0.0.1"], export_id=199)
    with pytest.raises(ValidationError, match="outside this volume's range"):
        active.update("a", export_id=99, force=True)
    assert active.load().find("a").export_id == 199


def test_a_removed_exports_id_and_fsid_are_never_handed_out_again(active, fake):
    first = active.add("a", ["127.0.0.1"], fsid="42").export
    assert first.export_id == 100
    active.remove("a")
    state = active.load()
    assert state.retired_ids == ((100, 100),) and state.retired_fsids == ((42, 42),)
    assert active.add("b", ["127.0.0.1"]).export.export_id == 101, "the freed id is not handed out again"
    before = meaning(active)
    for kwargs, what in (({"export_id": 100}, "Export_Id 100"), ({"fsid": "42"}, "fsid 42")):
        with pytest.raises(ConflictError, match=f"{what} belonged to a removed export.*--force") as err:
            active.add("a", ["127.0.0.1"], **kwargs)
        assert err.value.exit_code == 5 and meaning(active) == before
    # the directory coming back with its old identity, on purpose: its clients' handles work again
    back = active.add("a", ["127.0.0.1"], export_id=100, fsid="42", force=True).export
    assert (back.export_id, back.knfsd.fsid) == (100, "42") and live(active, fake)["a"] == back
    # a removal recorded only retires too; one rolled back does not
    active.remove("b", record_only=True)
    assert active.load().id_retired(101)
    fake.refuse = {"a"}
    with pytest.raises(ApplyError):
        active.remove("a")
    assert active.load().find("a") == back


def test_set_range_moves_or_widens_and_keeps_every_export_and_retired_id(active, fake):
    active.add("a", ["127.0.0.1"])                      # 100
    active.add("b", ["127.0.0.1"], export_id=120)
    active.remove("a")                                  # 100 retired
    before, after = active.set_range((110, 130))
    assert (before.id_range, after.id_range) == ((100, 199), (110, 130))
    assert after.retired_ids == ((100, 100),) and after.ids_left() == 20
    assert active.set_range((90, 500))[1].ids_left() == 411 - 2, "the retired 100 is still not handed out"
    saved, calls = meaning(active), list(fake.calls)
    with pytest.raises(ConflictError, match=r"leaves out 1 export\(s\).*b \(120\)") as err:
        active.set_range((121, 600))
    assert err.value.exit_code == 5 and meaning(active) == saved
    fake.serve_foreign(600, "/elsewhere")                # served here for another volume
    with pytest.raises(ConflictError, match="holds 600, served now by this node's ganesha"):
        active.set_range((100, 700))
    assert meaning(active) == saved and fake.calls == calls, "a registry change only: the server untouched"


def test_init_refuses_a_range_holding_ids_the_server_serves(tmp_path, settings, fake):
    fake.serve_foreign(150, "/elsewhere")
    mp = tmp_path / "new"
    mp.mkdir()
    v = Volume(mp, settings, backend=fake, require_mounted=_not_checked)
    with pytest.raises(ConflictError, match="range 100-199 holds 150, served now"):
        v.init("ganesha", (100, 199))
    assert not (mp / ".ganesha-ha" / "registry.json").exists()
    assert v.init("ganesha", (151, 199)).id_range == (151, 199)


@pytest.mark.parametrize("id_range,words", [((0, 10), "0 is the NFSv4 pseudo root"), ((10, 5), "runs backwards"),
                                             ((65000, 70000), "within 1-65535")])
def test_a_range_that_cannot_be_is_named_as_such(tmp_path, settings, fake, active, id_range, words):
    """At init and set-range: not reported as ids "served now for something else" (the pseudo
    root's 0) or as another volume's overlap, and nothing is written."""
    mp = tmp_path / "vol2"
    mp.mkdir()
    v = Volume(mp, settings, backend=fake, require_mounted=_not_checked)
    fake.live[0] = ("/", None)   # Ganesha's pseudo root, always served
    with pytest.raises(ValidationError, match=words) as err:
        v.init(fake.name, id_range)
    assert err.value.exit_code == 2 and not v.registry.path.exists()
    before = meaning(active)
    with pytest.raises(ValidationError, match=words):
        active.set_range(id_range)
    assert meaning(active) == before


def test_a_range_overlapping_another_volume_mounted_here_is_refused():
    from ganesha_ha.registry import check_range_free

    others = [("/srv/a", (1000, 1999)), ("/srv/b", (3000, 3999))]
    for rng in ((1999, 2500), (500, 1000), (2000, 5000)):
        with pytest.raises(ConflictError, match="overlaps .* the range of the volume /srv/[ab] mounted on this node"):
            check_range_free(rng, others)
    check_range_free((2000, 2999), others, served={3000, 1999})


def test_a_child_needs_its_directory_in_the_parent_export(vol, fake):
    """Ganesha reaches /top/sub through the directory `sub` of the export at /top."""
    vol.start()
    vol.add("b", ["127.0.0.1"], pseudo="/top")
    before, calls = meaning(vol), list(fake.calls)
    with pytest.raises(ValidationError, match=r"/top/sub lies below the export /top, and Ganesha reaches it "
                                              r"through .*/b/sub, which is not a directory") as err:
        vol.add("c", ["127.0.0.1"], pseudo="/top/sub")
    assert err.value.exit_code == 2 and meaning(vol) == before and fake.calls == calls
    vol.add("c", ["127.0.0.1"], pseudo="/elsewhere/sub")
    with pytest.raises(ValidationError, match="which is not a directory"):
        vol.update("b", pseudo="/elsewhere")       # b would become the parent of /elsewhere/sub
    with pytest.raises(ValidationError, match="which is not a directory"):
        vol.update("c", pseudo="/top/sub")
    (vol.mountpoint / "b" / "sub").mkdir()
    vol.update("c", pseudo="/top/sub")
    assert fake.hidden() == [] and {e.pseudo for _, e in fake.live.values()} == {"/top", "/top/sub"}
    assert fake.calls[:len(calls)] == calls
    # an FSAL that is not the host's directory (MEM) is not looked into; knfsd has no pseudo tree.
    # (Its path is in MEM's own namespace, so a VFS export does not become one: a new export.)
    vol.remove("b")
    vol.add("/b", ["127.0.0.1"], pseudo="/top", fsal="MEM")
    (vol.mountpoint / "b" / "sub").rmdir()
    vol.update("c", pseudo="/top/sub2")


# ---- one bad export affects only itself (issue 14, item 1) ------------------------------------------

def test_start_serves_every_export_it_can_and_names_the_others(vol, fake):
    """One refused export: the others go live (the batch is retried one by one, in plan
    order), the volume is active, and the failure names the export and the server's reason."""
    for d in ("a", "b", "c"):
        vol.add(d, ["127.0.0.1"])
    fake.refuse = {"b"}
    res = vol.start()
    assert set(live(vol, fake)) == {"a", "c"} and vol.is_active()
    assert res.applied == 2 and [(f.export.path, f.node_local) for f in res.failed] == [("b", False)]
    assert "refused b" in str(res.failed[0]) and "Export_Id 101" in str(res.failed[0])
    assert fake.calls[0] == ("apply", ["a", "b", "c"]) and fake.calls[1:] == [
        ("apply", ["a"]), ("apply", ["b"]), ("apply", ["c"])]


def test_a_module_missing_here_is_node_local_and_nothing_is_sent_for_it(vol, fake):
    """Another node published every module the volume needs: node-local (the agent answers
    OCF_ERR_INSTALLED and the volume moves there), the reason names that node."""
    vol.add("a", ["127.0.0.1"])
    vol.add("/b", ["127.0.0.1"], fsal="MEM", record_only=True)   # MEM: a path in its own namespace
    fake.missing_fsals = {"MEM"}
    fake.others = {"n2": frozenset({"MEM", "VFS"})}
    res = vol.start()
    assert set(live(vol, fake)) == {"a"} and [f.node_local for f in res.failed] == [True]
    assert "n2 has every FSAL the volume needs" in str(res.failed[0])
    assert all("/b" not in paths for _, paths in fake.calls), "the server never saw the export it cannot load"


def test_a_module_missing_on_every_node_leaves_the_export_out(vol, fake):
    """No node that published has the module (or none published at all): the export is left
    out, not node-local (start succeeds with it named, the monitor answers OCF_DEGRADED), and
    the volume's others serve here."""
    from ganesha_ha.errors import InstalledNowhereError

    vol.add("a", ["127.0.0.1"])
    vol.add("/b", ["127.0.0.1"], fsal="MEM", record_only=True)
    fake.missing_fsals = {"MEM"}
    for others, why in ((None, "FSAL MEM is missing here and no other node published its FSALs"),
                        ({"n2": frozenset({"VFS"}), "n3": None},
                         "FSAL MEM is installed on no node (n2, n3 lack it too")):
        fake.others = others
        res = vol.start()
        assert set(live(vol, fake)) == {"a"} and vol.is_active()
        [f] = res.failed
        assert not f.node_local and isinstance(f.error, InstalledNowhereError)
        assert str(f).startswith(f"/b (Export_Id 101): {why}") and "left out" in str(f), str(f)
        mon = vol.monitor()
        assert [(g.export.path, g.node_local) for g in mon.failed] == [("/b", False)] and mon.served == 1
        status = vol.status()   # `volume status` gives the reason the monitor gives
        assert status.not_live == [str(f)] and [r.live for r in status.exports] == [True, False]
        vol.stop()


def test_the_other_nodes_are_asked_only_when_a_module_is_missing_here(vol, fake):
    """The agent's per-call cost: a start and monitors of a volume whose modules are all here
    (an export the server refuses included) never read what the other nodes published."""
    vol.add("a", ["127.0.0.1"])
    vol.add("/m", ["127.0.0.1"], fsal="MEM", record_only=True)
    vol.add("c", ["127.0.0.1"])
    fake.refuse = {"c"}
    vol.start()
    vol.monitor()
    fake.refuse = set()
    vol.monitor()
    vol.monitor()
    assert fake.others_asked == 0 and len(fake.live) == 3
    fake.missing_fsals = {"MEM"}
    fake.live.clear()
    vol.monitor()
    assert fake.others_asked == 1


def test_start_with_nothing_servable_raises_the_node_local_cause_first(vol, fake):
    from ganesha_ha.errors import NotInstalledError

    vol.add("/a", ["127.0.0.1"], fsal="MEM", record_only=True)
    vol.add("b", ["127.0.0.1"])
    fake.missing_fsals, fake.refuse = {"MEM"}, {"b"}
    with pytest.raises(NotInstalledError, match=r"none of the 2 exports .* could go live: /a .*MEM.*; b .*refused b"):
        vol.start()
    assert not vol.is_active() and fake.graces == []


def test_a_change_with_a_module_missing_here_is_refused_before_anything_is_written(active, fake):
    from ganesha_ha.errors import NotInstalledError

    before = meaning(active)
    fake.missing_fsals = {"MEM"}
    with pytest.raises(NotInstalledError, match="MEM"):
        active.add("/a", ["127.0.0.1"], fsal="MEM")
    assert meaning(active) == before and fake.calls == []


def test_monitor_repairs_what_it_can_and_reports_the_rest(active, fake):
    for d in ("a", "b", "c"):
        active.add(d, ["127.0.0.1"])
    fake.live.clear()                       # the server lost them all (a restart)
    fake.refuse = {"c"}
    res = active.monitor()
    assert set(live(active, fake)) == {"a", "b"} and res.repaired == 2
    assert (res.exports, res.served, [f.export.path for f in res.failed]) == (3, 2, ["c"])
    fake.refuse = set()
    res = active.monitor()
    assert res.failed == [] and res.served == 3 and set(live(active, fake)) == {"a", "b", "c"}


def test_a_probe_with_nothing_live_is_not_running_and_repairs_nothing(active, fake):
    for d in ("a", "b"):
        active.add(d, ["127.0.0.1"])
    fake.live.clear()
    fake.calls.clear()
    res = active.monitor(probe=True)
    assert not res.running and fake.calls == [] and live(active, fake) == {}
    assert active.monitor(probe=False).running and set(live(active, fake)) == {"a", "b"}
    assert active.monitor(probe=True).running


def test_stop_withdraws_every_export_it_can_then_fails_naming_the_rest(active, fake):
    for d in ("a", "b", "c"):
        active.add(d, ["127.0.0.1"])
    fake.refuse = {"a"}
    with pytest.raises(ApplyError, match=r"1 export\(s\) could not be withdrawn, the others were: a "):
        active.stop()
    assert set(live(active, fake)) == {"a"} and active.is_active(), "the node keeps what it must withdraw"
    fake.refuse = set()
    notes: list[str] = []
    assert active.stop(unlock=True, lease_wait=3.0, notes=notes) == 1
    assert fake.stops[-1] == (True, True, 3.0) and notes == ["fake locks released"]
    assert live(active, fake) == {} and not active.is_active()


def test_a_volume_for_another_server_is_refused_at_every_load(vol, fake, settings):
    v = Volume(vol.mountpoint, settings, backend=fake, require_mounted=_not_checked, server="knfsd")
    with pytest.raises(ValidationError, match="server=knfsd but the volume .* was initialised for ganesha"):
        v.start()
    vol.start()
    with pytest.raises(ValidationError, match="initialised for ganesha"):
        v.monitor()
    assert v.stop() == 0, "a stop still withdraws what the registry's server serves"
