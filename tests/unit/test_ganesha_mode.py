"""The registry's `ganesha_mode` (schema 5): how a volume is served, the node's shared server
or a Ganesha instance of its own; older registries were all shared."""
from __future__ import annotations

import json

import pytest

from ganesha_ha.errors import RegistryError, ValidationError
from ganesha_ha.registry import SCHEMA_VERSION, RegistryState

U = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def test_schema_4_volumes_were_all_shared_and_instance_round_trips():
    state = RegistryState(U, "ganesha", (10, 20), ganesha_mode="instance")
    doc = json.loads(state.to_json())
    assert doc["version"] == SCHEMA_VERSION == 5 and doc["volume"]["ganesha_mode"] == "instance"
    assert RegistryState.from_json(state.to_json()) == state
    v4 = dict(doc, version=4, volume={k: v for k, v in doc["volume"].items() if k != "ganesha_mode"})
    assert RegistryState.from_json(json.dumps(v4).encode()).ganesha_mode == "shared"
    v5_without = dict(v4, version=5)
    with pytest.raises(RegistryError, match="ganesha_mode"):
        RegistryState.from_json(json.dumps(v5_without).encode())


def test_modes_a_server_cannot_run_are_refused():
    with pytest.raises(ValidationError, match="knfsd has no per-volume instance mode"):
        RegistryState(U, "knfsd", (10, 20), ganesha_mode="instance")
    with pytest.raises(ValidationError, match="ganesha_mode: must be 'shared' or 'instance'"):
        RegistryState(U, "ganesha", (10, 20), ganesha_mode="per-volume")
    doc = json.loads(RegistryState(U, "knfsd", (10, 20)).to_json())
    doc["volume"]["ganesha_mode"] = "instance"
    with pytest.raises(RegistryError, match="knfsd has no per-volume instance mode"):
        RegistryState.from_json(json.dumps(doc).encode())


def test_an_instance_s_grace_and_lease_are_the_volume_s():
    """An instance volume may set its Grace_Period and Lease_Lifetime (every node then starts
    it alike); unset, the node's [instance] settings apply. A shared volume has none."""
    state = RegistryState(U, "ganesha", (10, 20), ganesha_mode="instance", grace_period=15, lease_lifetime=7)
    doc = json.loads(state.to_json())
    assert doc["volume"]["instance"] == {"grace_period": 15, "lease_lifetime": 7}
    assert RegistryState.from_json(state.to_json()) == state
    bare = RegistryState(U, "ganesha", (10, 20), ganesha_mode="instance")
    assert json.loads(bare.to_json())["volume"]["instance"] == {} and bare.instance_settings() == {}
    assert "instance" not in json.loads(RegistryState(U, "ganesha", (10, 20)).to_json())["volume"]
    with pytest.raises(ValidationError, match="grace_period: is a setting of a volume with its own"):
        RegistryState(U, "ganesha", (10, 20), grace_period=15)
    for bad in ({"grace_period": 271}, {"lease_lifetime": 0}, {"grace_period": True}, {"lease_lifetime": 1.5}):
        with pytest.raises(ValidationError, match="must be whole seconds"):
            RegistryState(U, "ganesha", (10, 20), ganesha_mode="instance", **bad)
    doc["volume"]["instance"] = {"grace_period": 15, "Grace_Period": 9}
    with pytest.raises(RegistryError, match="instance settings"):
        RegistryState.from_json(json.dumps(doc).encode())
