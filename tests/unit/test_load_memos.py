"""The memos a start at 1000 exports leans on (issue 19): each must give exactly what the
uncached path gives, and must not outlive what it was made for."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ganesha_ha.backends.load import get_backend
from ganesha_ha.errors import NotInstalledError, RegistryError, ValidationError
from ganesha_ha.model import Export, KnfsdOptions
from ganesha_ha.registry import RegistryState
from ganesha_ha.settings import load_settings
from ganesha_ha.textcheck import check_text


def _state(exports) -> RegistryState:
    return RegistryState(volume_uuid="u", server="ganesha", id_range=(1, 100), exports=tuple(exports))


def _export(i: int, clients=("192.0.2.0/24(rw)",), **kw) -> Export:
    return Export(path=f"d{i}", export_id=i, pseudo=f"/d{i}", clients=clients, knfsd=KnfsdOptions(str(i)), **kw)


# ---- textcheck: the ASCII fast path ------------------------------------------------------------
@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_ascii_text_is_refused_exactly_when_it_holds_a_control_character(text):
    bad = [ch for ch in text if ord(ch) < 0x20 or ord(ch) == 0x7F]
    if bad:
        with pytest.raises(ValidationError, match=f"U\\+{ord(bad[0]):04X}"):
            check_text("f", text)
    else:
        check_text("f", text)


# ---- the registry's per-document memo of client lists and FSALs --------------------------------
def test_exports_sharing_clients_read_back_equal_and_unshared_ones_stay_apart():
    a, b = ("192.0.2.0/24(rw)",), ("192.0.2.0/24(ro)", "host.example(rw)")
    exports = [_export(1, a), _export(2, b), _export(3, a), _export(4, b, comment="x")]
    back = RegistryState.from_json(_state(exports).to_json())
    assert back.exports == tuple(exports)
    assert [e.clients for e in back.exports] == [a_.clients for a_ in exports]
    assert back.exports[0].clients[0] is back.exports[2].clients[0]   # normalised once, shared (immutable)
    assert back.exports[1].clients[0] is not back.exports[0].clients[0]


def test_equal_json_of_another_type_is_not_taken_from_the_memo():
    """The memo keys on the stored value's repr: `"1"` and `1` never meet."""
    doc = json.loads(_state([_export(1), _export(2)]).to_json())
    doc["exports"][1]["clients"][0]["options"] = ["rw", "anonuid=7"]
    back = RegistryState.from_json(json.dumps(doc).encode())
    assert back.exports[0].clients[0].options == ("rw",)
    assert back.exports[1].clients[0].options == ("rw", "anonuid=7")


def test_a_bad_client_list_is_refused_for_every_export_that_has_it_not_only_the_first():
    """Only what passed validation is kept: a second export with the same bad list is not let
    through by the first one's attempt."""
    doc = json.loads(_state([_export(1), _export(2)]).to_json())
    for e in doc["exports"]:
        e["clients"] = [{"host": "0.0.0.0", "options": ["rw"]}]
    with pytest.raises(RegistryError, match="unspecified address"):
        RegistryState.from_json(json.dumps(doc).encode())
    doc["exports"][0]["clients"] = [{"host": "*", "options": ["rw"]}]   # the first good, the second bad
    with pytest.raises(RegistryError, match="unspecified address"):
        RegistryState.from_json(json.dumps(doc).encode())


def test_the_memo_lives_for_one_document():
    """A second document with the same client list but other options gets its own records."""
    one = RegistryState.from_json(_state([_export(1)]).to_json())
    doc = json.loads(_state([_export(1)]).to_json())
    doc["exports"][0]["clients"][0]["options"] = ["ro"]
    two = RegistryState.from_json(json.dumps(doc).encode())
    assert one.exports[0].clients[0].options == ("rw",) and two.exports[0].clients[0].options == ("ro",)


def test_fsal_records_are_shared_alike_and_a_problem_stays_with_its_record():
    doc = json.loads(_state([_export(1), _export(2), _export(3)]).to_json())
    doc["exports"][1]["ganesha"] = {"fsal": {"name": "VFS", "options": [["no_such_option", "1"]]}}
    back = RegistryState.from_json(json.dumps(doc).encode())
    fsals = [e.ganesha.fsal for e in back.exports]
    assert fsals[0] is fsals[2] and not fsals[0].problem
    assert fsals[1].problem and fsals[1].options == (("no_such_option", "1"),)


# ---- GaneshaBackend.check_installed_for: once per FSAL stack within an action ----------------
@pytest.fixture
def ganesha(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n[ganesha]\nplugins_dir = {plugins}\n")
    backend = get_backend("ganesha", load_settings(config))
    yield backend, plugins
    backend.close()


def test_a_module_found_within_an_action_is_looked_for_again_in_the_next(ganesha):
    from ganesha_ha.fsal import parse_spec
    from ganesha_ha.model import GaneshaOptions

    backend, plugins = ganesha
    exp = _export(1, ganesha=GaneshaOptions(parse_spec("NULL(VFS)")))
    (plugins / "libfsalvfs.so").write_bytes(b"")
    (plugins / "libfsalnull.so").write_bytes(b"")
    with backend.action():
        backend.check_installed_for(exp)
        (plugins / "libfsalnull.so").unlink()
        backend.check_installed_for(_export(2, ganesha=exp.ganesha))   # the same stack: found before, in this action
    with backend.action():
        with pytest.raises(NotInstalledError, match="FSAL NULL is not installed"):
            backend.check_installed_for(_export(2, ganesha=exp.ganesha))
    with pytest.raises(NotInstalledError, match="FSAL NULL"):   # outside an action: never kept
        backend.check_installed_for(exp)


def test_a_missing_module_is_not_remembered_as_missing_nor_as_found(ganesha):
    from ganesha_ha.fsal import parse_spec
    from ganesha_ha.model import GaneshaOptions

    backend, plugins = ganesha
    exp = _export(1, ganesha=GaneshaOptions(parse_spec("NULL(VFS)")))
    (plugins / "libfsalvfs.so").write_bytes(b"")
    with backend.action():
        for i in (1, 2):   # each export that needs it is refused (the caller names the export)
            with pytest.raises(NotInstalledError, match="FSAL NULL is not installed"):
                backend.check_installed_for(_export(i, ganesha=exp.ganesha))
        (plugins / "libfsalnull.so").write_bytes(b"")
        backend.check_installed_for(exp)
