"""volume.py with a server of the volume's own (instance mode), against FakeInstance: the start
launches it with the registry's exports and applies only what it does not serve; a start that
serves nothing ends it again; the stop ends it (also unmounted) instead of withdrawing each
export; and the cross-volume rules of the shared mode do not reach an instance volume, nor
instance volumes a shared one."""
from __future__ import annotations

from pathlib import Path

import pytest

from fake_backend import FakeBackend, FakeInstance
from ganesha_ha import neighbours
from ganesha_ha.errors import ApplyError, GaneshaHAError, PseudoCollisionError
from ganesha_ha.registry import Registry
from ganesha_ha.settings import load_settings
from ganesha_ha.volume import Volume


def _not_checked(path: Path) -> None:
    return None


@pytest.fixture
def settings(tmp_path):
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n[registry]\nlock_timeout = 2\n")
    return load_settings(config)


def make(tmp_path, settings, backend, name: str, mode: str, id_range=(100, 199)) -> Volume:
    mp = tmp_path / name
    for d in ("a", "b"):
        (mp / d).mkdir(parents=True)
    v = Volume(mp, settings, ip="192.0.2.1", backend=backend, require_mounted=_not_checked)
    v.init("ganesha", id_range, mode)
    for d in ("a", "b"):
        v.add(d, ["*"], pseudo=f"/{d}")
    return v


def test_start_launches_with_every_export_and_applies_only_what_it_lacks(tmp_path, settings):
    fake = FakeInstance()
    vol = make(tmp_path, settings, fake, "v", "instance")
    fake.skip_at_launch = {"b"}
    res = vol.start()
    assert fake.launches == [["a", "b"]] and res.notes == ["started"]
    assert fake.calls == [("apply", ["b"])], "only the export the launched server lacks is applied"
    assert res.applied == 2 and vol.is_active() and vol.node.active_record()["ganesha_mode"] == "instance"
    assert vol.monitor().failed == []
    # a second start finds it running and changes nothing
    fake.calls.clear()
    vol.start()
    assert fake.launches[-1] == ["a", "b"] and fake.calls == []


def test_a_start_that_serves_nothing_ends_the_server_it_launched(tmp_path, settings):
    fake = FakeInstance()
    vol = make(tmp_path, settings, fake, "v", "instance")
    fake.skip_at_launch = fake.refuse = {"a", "b"}
    with pytest.raises(ApplyError, match="none of the 2 exports"):
        vol.start()
    assert fake.server_stops == 1 and not fake.running and not vol.is_active()


def test_stop_ends_the_server_instead_of_withdrawing_each_export(tmp_path, settings):
    fake = FakeInstance()
    vol = make(tmp_path, settings, fake, "v", "instance")
    vol.start()
    fake.calls.clear()
    assert vol.stop() == 2
    assert fake.server_stops == 1 and fake.calls == [] and not vol.is_active()
    # unmounted (the registry unreadable): the node's active mark says how it was served
    vol.start()
    vol.registry.path.rename(vol.registry.path.with_suffix(".gone"))
    fresh = Volume(vol.mountpoint, settings, ip="192.0.2.1", backend=fake, require_mounted=_not_checked)
    assert fresh.stop() == 2 and fake.server_stops == 2 and not fake.running


def test_instance_volumes_keep_no_cross_volume_rules(tmp_path, settings, monkeypatch):
    """The same Export_Id range and pseudo paths as a volume active on the node's shared
    server: refused for a second shared volume, allowed for an instance volume; and the
    shared volume's own checks ignore the instance volume."""
    shared_fake = FakeBackend()
    shared = make(tmp_path, settings, shared_fake, "shared", "shared")
    shared.start()
    mounted = [shared.mountpoint]
    monkeypatch.setattr(neighbours, "mounted_registries", lambda: list(mounted))
    monkeypatch.setattr(neighbours, "Registry", lambda mp: Registry(mp, require_mounted=_not_checked))
    with pytest.raises(GaneshaHAError, match="overlaps 100-199"):
        make(tmp_path, settings, FakeBackend(), "other", "shared")
    inst = make(tmp_path, settings, FakeInstance(), "inst", "instance")   # same range, same /a and /b
    inst.start()
    mounted.append(inst.mountpoint)
    assert [e.export_id for e in inst.load().exports] == [100, 101]
    # the shared volume sees the instance volume neither in its ranges nor in its pseudo paths
    assert neighbours.ranges(shared.mountpoint) == []
    shared_fake.live.clear()
    shared.stop()
    shared.start()
    assert shared.monitor().failed == []
    # a second shared volume with the same pseudo paths is still refused, for the shared one's
    # sake (the instance volume's active mark lists them too, under ids the shared server serves)
    other = make(tmp_path, settings, shared_fake, "other2", "shared", (300, 399))
    with pytest.raises(PseudoCollisionError, match=f"served by this node for the volume {shared.mountpoint}"):
        other.start()
