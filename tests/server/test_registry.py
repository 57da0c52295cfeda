"""The on-volume registry: atomic, locked, versioned, refusing unmounted or unsafe state."""
import json
import os
import subprocess
import sys

import pytest

from ganesha_ha.errors import (ConflictError, InsecureStateError, NotInitialisedError, NotMountedError,
                               RegistryError)
from ganesha_ha.model import Export, KnfsdOptions
from ganesha_ha.registry import SCHEMA_VERSION, Registry, RegistryState, random_id_range

from conftest import needs_root


def exp(path, eid, fsid="1", pseudo=None):
    return Export(path=path, export_id=eid, knfsd=KnfsdOptions(fsid), pseudo=pseudo or f"/{path}", clients=("*",))


def test_unique_constraints():
    st = RegistryState("u", "ganesha", (10, 20), (exp("a", 10, "1"),))
    for bad in (exp("b", 10, "2"), exp("b", 11, "1"), exp("b", 11, "2", pseudo="/a")):
        with pytest.raises(ConflictError):
            RegistryState("u", "ganesha", (10, 20), (exp("a", 10, "1"), bad))
    assert st.allocate_export_id() == 11
    assert st.allocate_export_id(taken={11, 12}) == 13


def test_full_range_is_a_clear_error():
    st = RegistryState("u", "ganesha", (10, 10), (exp("a", 10),))
    with pytest.raises(ConflictError, match="range 10-10 has no id left .1 in use, 0 retired.; widen or move it "
                                            "with 'ganesha-ha volume set-range'"):
        st.allocate_export_id()


def test_random_range_avoids_live_ids_and_zero():
    for _ in range(50):
        lo, hi = random_id_range(1000, avoid=range(1000, 30000))
        assert lo >= 30000 and hi - lo == 999 and hi <= 65535


def test_json_round_trip_and_newer_schema_refused():
    st = RegistryState("u", "knfsd", (10, 20), (exp("a", 10),))
    assert RegistryState.from_json(st.to_json()) == st
    doc = json.loads(st.to_json())
    doc["version"] = 99
    with pytest.raises(RegistryError, match="newer"):
        RegistryState.from_json(json.dumps(doc).encode())
    with pytest.raises(RegistryError, match="not valid JSON"):
        RegistryState.from_json(b"{torn")


def test_refuses_unmounted_mount_point(tmp_path):
    d = tmp_path / "bare"
    d.mkdir()
    with pytest.raises(NotMountedError, match="not a mounted file system"):
        Registry(d).init("ganesha", None, 1000)
    assert not (d / ".ganesha-ha").exists(), "nothing may be written into the bare directory"


@needs_root
def test_init_load_save(tmpfs_volume):
    reg = Registry(tmpfs_volume)
    with pytest.raises(NotInitialisedError):
        reg.load()
    st = reg.init("ganesha", (100, 199), 1000)
    assert reg.load() == st
    with pytest.raises(ConflictError, match="already has"):
        reg.init("ganesha", None, 1000)
    mode = os.stat(reg.state_dir).st_mode & 0o777
    assert mode == 0o700 and os.stat(reg.path).st_mode & 0o777 == 0o600
    with reg.locked():
        new = reg.save(st.with_export(exp("a", 100)))
    assert reg.load() == new and new.generation == st.generation + 1


@needs_root
def test_symlinked_state_is_refused(tmpfs_volume, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    os.symlink(elsewhere, tmpfs_volume / ".ganesha-ha")
    with pytest.raises(InsecureStateError, match="symbolic link"):
        Registry(tmpfs_volume).load()


@needs_root
def test_world_writable_state_is_refused(tmpfs_volume):
    reg = Registry(tmpfs_volume)
    reg.init("knfsd", (1, 9), 1000)
    os.chmod(reg.path, 0o666)
    with pytest.raises(InsecureStateError, match="writable"):
        reg.load()


@needs_root
def test_lock_is_exclusive_across_processes(tmpfs_volume):
    reg = Registry(tmpfs_volume, lock_timeout=0.3)
    reg.init("knfsd", (1, 9), 1000)
    code = ("import sys,time; from ganesha_ha.registry import Registry\n"
            f"r=Registry({str(tmpfs_volume)!r})\n"
            "with r.locked():\n print('locked', flush=True); time.sleep(3)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        from ganesha_ha.errors import LockTimeout
        with pytest.raises(LockTimeout):
            with reg.locked():
                pass
    finally:
        holder.kill()
        holder.wait()
    with reg.locked():  # the lock dies with its holder
        pass


@needs_root
def test_stale_temp_files_are_cleaned_by_next_writer(tmpfs_volume):
    reg = Registry(tmpfs_volume)
    st = reg.init("knfsd", (1, 9), 1000)
    stale = reg.state_dir / ".registry.json.tmp-99999"
    stale.write_bytes(b"half")
    with reg.locked():
        reg.save(st)
    assert not stale.exists()


# ---- schema migrations: 1 -> 2 -> 3 -> 4 ---------------------------------------------------------
DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
V1_FIXTURE = os.path.join(DATA, "registry-v1.json")
V2_FIXTURE = os.path.join(DATA, "registry-v2.json")   # written by main at fe432a8 (schema 2)
V3_FIXTURE = os.path.join(DATA, "registry-v3.json")   # written by main at 128c4ed (schema 3)
# what the code that wrote them rendered for each client of the fixtures: the knfsd option string
# and the Ganesha CLIENT block's lines (the grants an upgrade must keep)
GRANTS_BEFORE = {"registry-v1.json": "registry-grants-fe432a8.json", "registry-v2.json": "registry-grants-fe432a8.json",
                 "registry-v3.json": "registry-grants-128c4ed.json"}


def _load_fixture(tmp_path, fixture):
    raw = open(fixture, "rb").read()
    mp = tmp_path / "vol"
    (mp / ".ganesha-ha").mkdir(parents=True, mode=0o700)
    (mp / ".ganesha-ha" / "registry.json").write_bytes(raw)
    reg = Registry(mp, require_mounted=lambda path: None)
    return json.loads(raw), reg, reg.load()


def _bare_gets_rw(options):
    return options if any(o in ("rw", "ro") for o in options) else ["rw", *options]


def test_a_version_1_registry_loads_unchanged_in_meaning_and_saves_as_the_current_version(tmp_path):
    """tests/data/registry-v1.json is what ganesha-ha wrote before schema 2 (made with that
    code): every field means the same after the migrations (a spec without rw/ro was read-write
    then: it gets `rw`), and the next save writes the current version. One change on purpose:
    the MEM export's path, written before FSAL namespaces, becomes that path in MEM's namespace
    (/mem), where a MEM export's Path lives (its id and pseudo path stay)."""
    from ganesha_ha.fsal import Fsal

    v1, reg, st = _load_fixture(tmp_path, V1_FIXTURE)
    assert v1["version"] == 1
    assert (st.volume_uuid, st.server, list(st.id_range), st.generation) == (
        v1["volume"]["uuid"], v1["volume"]["server"], v1["volume"]["export_id_range"], v1["generation"])
    assert len(st.exports) == len(v1["exports"]) == 4
    for old, new in zip(v1["exports"], st.exports):
        path = "/" + old["path"] if old["fsal"] == "MEM" else old["path"]
        assert (new.path, new.export_id, new.pseudo, new.access, new.squash, new.comment) == (
            path, old["export_id"], old["pseudo"], old["access"], old["squash"], old.get("comment", ""))
        assert [(c.host, list(c.options)) for c in new.clients] == \
            [(c["host"], _bare_gets_rw(c["options"])) for c in old["clients"]]
        assert new.knfsd.fsid == old["fsid"] and new.ganesha.fsal == Fsal(old["fsal"])
    with reg.locked():
        reg.save(st)
    now = json.loads(reg.path.read_bytes())
    assert now["version"] == SCHEMA_VERSION and now["generation"] == v1["generation"] + 1
    assert now["volume"]["ganesha_mode"] == "shared", "every volume before schema 5 was served by the node's server"
    assert now["retired"] == {"export_ids": [], "fsids": []}, "ids 3000-3003 all in use: none retired"
    assert now["exports"][3] == {
        "path": "/mem", "export_id": 3003, "pseudo": "/mem", "access": "RW", "squash": "root_squash",
        "clients": [{"host": "127.0.0.1", "options": ["rw"]}], "knfsd": {"fsid": "18"},
        "ganesha": {"fsal": {"name": "MEM"}}}
    assert reg.load().exports == st.exports


@pytest.mark.parametrize("fixture", [V2_FIXTURE, V3_FIXTURE], ids=["v2", "v3"])
def test_bare_specs_of_an_older_registry_are_made_explicit(tmp_path, fixture):
    """tests/data/registry-v2.json and -v3.json were written by main's code at fe432a8 and
    128c4ed: a client spec without rw/ro meant read-write there; after the 3 -> 4 step it says
    `rw`, every other field as it was; the next save writes the current version."""
    old_doc, reg, st = _load_fixture(tmp_path, fixture)
    for old, new in zip(old_doc["exports"], st.exports, strict=True):
        assert {k: v for k, v in new.to_dict().items() if k != "clients"} == \
            {k: v for k, v in old.items() if k != "clients"}
        assert [{"host": c.host, "options": list(c.options)} for c in new.clients] == \
            [{"host": c["host"], "options": _bare_gets_rw(c["options"])} for c in old["clients"]]
    with reg.locked():
        saved = reg.save(st)
    assert json.loads(reg.path.read_bytes())["version"] == SCHEMA_VERSION and reg.load() == saved


@pytest.mark.parametrize("fixture", ["registry-v1.json", "registry-v2.json", "registry-v3.json"])
def test_an_upgrade_never_changes_what_an_export_grants(tmp_path, fixture):
    """Loaded by this code, every client of an old registry gets exactly the knfsd options and the
    Ganesha access/squash lines that the code which wrote it rendered (only the order of Ganesha's
    CLIENT blocks may change: exports(5) precedence)."""
    from ganesha_ha.access import precedence_order
    from ganesha_ha.backends.ganesha_conf import render_client, render_export
    from ganesha_ha.backends.knfsd_table import render_options

    before = json.load(open(os.path.join(DATA, GRANTS_BEFORE[fixture])))[fixture]
    _, _, st = _load_fixture(tmp_path, os.path.join(DATA, fixture))
    assert sorted(before) == sorted(str(e.export_id) for e in st.exports)
    for exp in st.exports:
        now = [{"host": c.host, "knfsd": render_options(exp, c),
                "ganesha": [line.strip() for line in render_client(exp, c)[2:-1]]} for c in exp.clients]
        assert now == before[str(exp.export_id)]
        # and the CLIENT blocks of the EXPORT block are those, in exports(5) precedence
        blocks = [b.split("}")[0] for b in render_export(exp, "/mnt/v").split("CLIENT {")[1:]]
        assert [b.split("Clients = ")[1].split(";")[0] for b in blocks] == \
            [c.host for c in precedence_order(exp.clients)]


def test_version_2_round_trips_fsal_records():
    from ganesha_ha.fsal import Fsal
    from ganesha_ha.model import GaneshaOptions

    e = Export(path="n", export_id=5, knfsd=KnfsdOptions("9"), pseudo="/n", clients=("*",),
               ganesha=GaneshaOptions(Fsal("NULL", (), Fsal("VFS", (("FSID_TYPE", "UUID"), ("umask", "22"))))))
    st = RegistryState("u", "ganesha", (1, 9), (e,))
    doc = json.loads(st.to_json())
    assert doc["exports"][0]["ganesha"] == {"fsal": {"name": "NULL", "stacked": {
        "name": "VFS", "options": [["fsid_type", "uuid"], ["umask", "022"]]}}}
    assert RegistryState.from_json(st.to_json()) == st
    for bad in ({"knfsd": {"fsid": "1"}, "fsid": "1"}, {"knfsd": {"fsid": "1", "x": 1}},
                {"knfsd": {"fsid": "1"}, "ganesha": {"fsal": {"name": "V F S"}}}):
        d = dict(doc["exports"][0], **bad)
        with pytest.raises(RegistryError):
            RegistryState.from_json(json.dumps(dict(doc, exports=[d])).encode())
