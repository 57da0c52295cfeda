"""Identity that cannot drift (issue 13, item 5), in the pure parts: retired ids kept as
ranges (idranges.py), allocation that never hands a retired id out, the registry's schema 3
and the migration of a schema 2 registry that knows no retired ids."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from ganesha_ha import idranges
from ganesha_ha.errors import ConflictError, RegistryError
from ganesha_ha.model import Export, KnfsdOptions
from ganesha_ha.registry import SCHEMA_VERSION, RegistryState

DATA = Path(__file__).resolve().parents[1] / "data"


def exp(path: str, export_id: int, fsid: str | None = None) -> Export:
    return Export(path=path, export_id=export_id, knfsd=KnfsdOptions(fsid or str(export_id)), pseudo=f"/{path}",
                  clients=("*",))


@given(st.sets(st.integers(1, 300)), st.sets(st.integers(1, 300)), st.integers(1, 300), st.integers(0, 300))
def test_ranges_hold_exactly_their_members(first, second, lo, width):
    ranges = idranges.add(idranges.add((), first), second)
    members = first | second
    assert all(idranges.contains(ranges, n) == (n in members) for n in range(0, 302))
    assert all(idranges.next_outside(ranges, n) == min(m for m in range(n, 303) if m not in members)
               for n in range(0, 302))
    assert all(a <= b and b + 1 < c for (a, b), (c, _) in zip(ranges, ranges[1:])), "sorted, apart"
    assert idranges.count_within(ranges, lo, lo + width) == len([n for n in members if lo <= n <= lo + width])
    assert idranges.normalise([list(r) for r in ranges]) == ranges


def test_removed_ids_are_retired_and_never_handed_out_again():
    st0 = RegistryState("u", "ganesha", (10, 20), (exp("a", 10), exp("b", 11)))
    st1 = st0.without(st0.find("a")).retiring(st0)
    assert st1.retired_ids == ((10, 10),) and st1.retired_fsids == ((10, 10),)
    assert st1.allocate_export_id() == 12 and st1.ids_left() == 9
    assert st1.ids_left(taken={12, 99}) == 8, "an id served for something else is not left either"
    # a UUID fsid is not remembered (generated ones never repeat); nothing else changed: no copy
    st2 = RegistryState("u", "ganesha", (10, 20), (exp("c", 12, "0b5b7f4e-1b2c-4d3e-8f9a-0123456789ab"),))
    assert st2.without(st2.exports[0]).retiring(st2).retired_fsids == ()
    assert st1.retiring(st1) is st1


def test_ten_thousand_add_remove_cycles_keep_the_registry_small():
    state = RegistryState("u", "ganesha", (1000, 20999))
    for n in range(10_000):
        before = state.with_export(exp("d", state.allocate_export_id(), str(50_000 + n)))
        state = before.without(before.exports[0]).retiring(before)
    assert state.retired_ids == ((1000, 10999),) and state.retired_fsids == ((50_000, 59_999),)
    assert len(state.to_json()) < 400 and state.ids_left() == 10_000
    assert RegistryState.from_json(state.to_json()) == state


def test_a_full_range_says_what_holds_it():
    state = RegistryState("u", "ganesha", (10, 12), (exp("a", 10),), retired_ids=((11, 12),))
    with pytest.raises(ConflictError, match="10-12 has no id left .1 in use, 2 retired.*volume set-range"):
        state.allocate_export_id()
    assert state.ids_left() == 0


def test_schema_3_round_trips_retired_ranges_and_refuses_bad_ones():
    state = RegistryState("u", "ganesha", (10, 20), (exp("a", 10),), retired_ids=((12, 13), (15, 15)),
                          retired_fsids=((4_000_000_000, 4_000_000_001),))
    doc = json.loads(state.to_json())
    assert doc["version"] == SCHEMA_VERSION and doc["retired"] == {"export_ids": [[12, 13], [15, 15]],
                                                      "fsids": [[4_000_000_000, 4_000_000_001]]}
    assert RegistryState.from_json(state.to_json()) == state
    for bad in ({"export_ids": [[3, 2]], "fsids": []}, {"export_ids": [[0, 2]], "fsids": []},
                {"export_ids": [[1, 70000]], "fsids": []}, {"export_ids": [["1", 2]], "fsids": []},
                {"export_ids": [[1, 2, 3]], "fsids": []}, {"export_ids": []}, {"export_ids": [[True, 2]], "fsids": []}):
        with pytest.raises(RegistryError):
            RegistryState.from_json(json.dumps(dict(doc, retired=bad)).encode())
    del doc["retired"]
    with pytest.raises(RegistryError, match="retired"):
        RegistryState.from_json(json.dumps(doc).encode())


def test_a_version_2_registry_retires_the_ids_below_its_highest_one():
    """tests/data/registry-v2-removed-ids.json was written by the code of schema 2 (exports
    4000, 4001, 4003, 4005 of 4000-4999; 4002 and 4004 belonged to removed exports, and
    schema 2 would have handed them out again). Loaded, they are retired; nothing else
    changes meaning, and the next save writes the current schema."""
    raw = (DATA / "registry-v2-removed-ids.json").read_bytes()
    v2 = json.loads(raw)
    assert v2["version"] == 2 and "retired" not in v2
    state = RegistryState.from_json(raw)
    assert state.retired_ids == ((4002, 4002), (4004, 4004)) and state.retired_fsids == ()
    assert [e.to_dict() for e in state.exports] == v2["exports"]
    assert (state.volume_uuid, state.id_range, state.generation) == (
        v2["volume"]["uuid"], tuple(v2["volume"]["export_id_range"]), v2["generation"])
    assert state.allocate_export_id() == 4006 and state.ids_left() == 1000 - 4 - 2
    v3 = json.loads(state.to_json())
    assert v3["version"] == SCHEMA_VERSION and v3["retired"]["export_ids"] == [[4002, 4002], [4004, 4004]]


def test_one_migration_step_per_schema_version():
    """registry_migrations.py holds one step per older version, for the document and for each
    export (it cannot import registry.py's SCHEMA_VERSION: registry.py imports it lazily)."""
    from ganesha_ha import registry_migrations

    assert len(registry_migrations.EXPORT_STEPS) == len(registry_migrations.DOCUMENT_STEPS) == SCHEMA_VERSION - 1
