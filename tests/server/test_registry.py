"""The on-volume registry: atomic, locked, versioned, refusing unmounted or unsafe state."""
import json
import os
import subprocess
import sys

import pytest

from ganesha_ha.errors import (ConflictError, InsecureStateError, NotInitialisedError, NotMountedError,
                               RegistryError)
from ganesha_ha.model import Export, KnfsdOptions
from ganesha_ha.registry import Registry, RegistryState, random_id_range

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


# ---- schema 1 -> 2 ---------------------------------------------------------------------------
V1_FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "registry-v1.json")


def test_a_version_1_registry_loads_unchanged_in_meaning_and_saves_as_the_current_version(tmp_path):
    """tests/data/registry-v1.json is what ganesha-ha wrote before schema 2 (made with that
    code): every field means the same after the migration, and the next save writes the
    current version. One change on purpose: the MEM export's path, written before FSAL
    namespaces, becomes that path in MEM's namespace (/mem), where a MEM export's Path lives
    (its id and pseudo path stay)."""
    from ganesha_ha.fsal import Fsal

    raw = open(V1_FIXTURE, "rb").read()
    v1 = json.loads(raw)
    assert v1["version"] == 1
    mp = tmp_path / "vol"
    (mp / ".ganesha-ha").mkdir(parents=True, mode=0o700)
    (mp / ".ganesha-ha" / "registry.json").write_bytes(raw)
    reg = Registry(mp, require_mounted=lambda path: None)
    st = reg.load()
    assert (st.volume_uuid, st.server, list(st.id_range), st.generation) == (
        v1["volume"]["uuid"], v1["volume"]["server"], v1["volume"]["export_id_range"], v1["generation"])
    assert len(st.exports) == len(v1["exports"]) == 4
    for old, new in zip(v1["exports"], st.exports):
        path = "/" + old["path"] if old["fsal"] == "MEM" else old["path"]
        assert (new.path, new.export_id, new.pseudo, new.access, new.squash, new.comment) == (
            path, old["export_id"], old["pseudo"], old["access"], old["squash"], old.get("comment", ""))
        assert [(c.host, list(c.options)) for c in new.clients] == [(c["host"], c["options"]) for c in old["clients"]]
        assert new.knfsd.fsid == old["fsid"] and new.ganesha.fsal == Fsal(old["fsal"])
    with reg.locked():
        reg.save(st)
    v2 = json.loads((mp / ".ganesha-ha" / "registry.json").read_bytes())
    assert v2["version"] == 3 and v2["generation"] == v1["generation"] + 1
    assert v2["retired"] == {"export_ids": [], "fsids": []}, "ids 3000-3003 all in use: none retired"
    assert v2["exports"][3] == {
        "path": "/mem", "export_id": 3003, "pseudo": "/mem", "access": "RW", "squash": "root_squash",
        "clients": [{"host": "127.0.0.1", "options": []}], "knfsd": {"fsid": "18"},
        "ganesha": {"fsal": {"name": "MEM"}}}
    assert reg.load().exports == st.exports


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
