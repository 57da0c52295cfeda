"""The cluster recipe (ganesha_ha/lab/recipe.py): one description, crmsh and pcs renderings.

The lab loads `Recipe.crmsh()` into its cluster; the README shows the same rendering of
the documented example with DRBD and fencing. These tests pin the order of the group, the
values that reach a shell line, and that the README cannot drift from the renderer.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import this_agent_in_ocf_root
from ganesha_ha.lab.recipe import Recipe, VolumeRecipe

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> Recipe:
    """The configuration the README documents (keep in step with its section)."""
    vols = (VolumeRecipe(name="vol1", device="/dev/drbd1", mountpoint="/srv/nfs/vol1",
                         ip="192.0.2.101", cidr_netmask=24, preferred_node="node1",
                         drbd_resource="vol1"),
            VolumeRecipe(name="vol2", device="/dev/drbd2", mountpoint="/srv/nfs/vol2",
                         ip="192.0.2.102", cidr_netmask=24, preferred_node="node2",
                         drbd_resource="vol2"))
    return Recipe(server="ganesha", volumes=vols, monitor_s=5, fencing=True)


def readme_instance_example() -> Recipe:
    """The README's example of a volume served by its own Ganesha instance."""
    vol = VolumeRecipe(name="vol3", device="/dev/drbd3", mountpoint="/srv/nfs/vol3", ip="192.0.2.103",
                       cidr_netmask=24, preferred_node="node1", drbd_resource="vol3", ganesha_mode="instance")
    return Recipe(server="ganesha", volumes=(vol,), monitor_s=5, fencing=True)


def lab_like(**kw) -> Recipe:
    v = VolumeRecipe(name="vol1", device="/dev/loop3", mountpoint="/var/tmp/lab/vol1",
                     ip="10.213.40.101", cidr_netmask=24, nic="eth0", preferred_node="node-a")
    return Recipe(server=kw.pop("server", "ganesha"), volumes=(v,), fencing=False, **kw)


def test_group_order_is_volume_then_exports_then_ip_then_notify():
    crm = lab_like().crmsh()
    assert "group vol1-group vol1-fs vol1-exports vol1-ip vol1-notify\n" in crm
    pcs = lab_like().pcs().splitlines()
    order = [ln.split()[3] for ln in pcs if ln.startswith("pcs resource create") and "--group vol1-group" in ln]
    assert order == ["vol1-fs", "vol1-exports", "vol1-ip", "vol1-notify"]


def test_notify_primitive_sends_from_the_volumes_ip_with_its_advised_timeouts():
    """ocf:ganesha-ha:notify comes after the IP, with the IP and the volume, and the
    operations its meta-data advises."""
    import xml.etree.ElementTree as ET

    from ganesha_ha import notify_agent

    crm = lab_like().crmsh()
    line = next(ln for ln in crm.splitlines() if ln.startswith("primitive vol1-notify"))
    assert 'ocf:ganesha-ha:notify params ip="10.213.40.101" volume="/var/tmp/lab/vol1"' in line
    acts = {a.get("name"): a.attrib for a in ET.fromstring(notify_agent.meta_data()).find("actions")}
    assert f"op monitor interval={acts['monitor']['interval']} timeout={acts['monitor']['timeout']}" in line
    for op in ("start", "stop"):
        assert f"op {op} interval=0s timeout={acts[op]['timeout']}" in line


def test_an_instance_of_its_own_starts_after_the_ip_it_binds():
    v = VolumeRecipe(name="vol1", device="/dev/loop3", mountpoint="/var/tmp/lab/vol1", ip="10.213.40.101",
                     cidr_netmask=24, nic="eth0", preferred_node="node-a", ganesha_mode="instance")
    r = Recipe(server="ganesha", volumes=(v,), fencing=False)
    assert "group vol1-group vol1-fs vol1-ip vol1-exports\n" in r.crmsh()
    prims = [ln.split()[1] for ln in r.crmsh().splitlines() if ln.startswith("primitive")]
    assert prims == ["vol1-fs", "vol1-ip", "vol1-exports"]
    order = [ln.split()[3] for ln in r.pcs().splitlines() if ln.startswith("pcs resource create")]
    assert order == ["vol1-fs", "vol1-ip", "vol1-exports"]
    with pytest.raises(ValueError, match="only server=ganesha"):
        Recipe(server="knfsd", volumes=(v,))
    with pytest.raises(ValueError, match="ganesha_mode"):
        VolumeRecipe(name="vol1", device="/dev/loop3", mountpoint="/v", ip="10.0.0.1", cidr_netmask=24,
                     preferred_node="a", ganesha_mode="own")


def test_exports_primitive_carries_server_volume_and_takeover_ip():
    crm = lab_like(server="knfsd").crmsh()
    line = next(ln for ln in crm.splitlines() if ln.startswith("primitive vol1-exports"))
    assert 'ocf:ganesha-ha:exports params server="knfsd" volume="/var/tmp/lab/vol1" ip="10.213.40.101"' in line
    assert "op monitor interval=10s timeout=30s" in line


def test_defaults_and_fencing_are_explicit():
    crm = lab_like(stickiness=200, migration_threshold=2).crmsh()
    assert "rsc_defaults rsc-options: resource-stickiness=200 migration-threshold=2\n" in crm
    assert crm.endswith("property cib-bootstrap-options: stonith-enabled=false\n")
    assert "pcs property set stonith-enabled=true" in readme_example().pcs()


def test_drbd_variant_adds_promotable_clone_colocation_and_order():
    crm = readme_example().crmsh()
    assert "clone vol1-drbd-clone vol1-drbd meta promotable=true" in crm
    assert "colocation vol1-group-on-drbd inf: vol1-group vol1-drbd-clone:Promoted" in crm
    assert "order vol1-group-after-drbd Mandatory: vol1-drbd-clone:promote vol1-group:start" in crm
    pcs = readme_example().pcs()
    assert "pcs constraint order promote vol1-drbd-clone then start vol1-group" in pcs


def test_readme_shows_exactly_the_rendered_recipe():
    text = README.read_text()
    for r in (readme_example(), readme_instance_example()):
        assert r.crmsh().strip() in text, "README crmsh block differs from Recipe.crmsh()"
        assert r.pcs().strip() in text, "README pcs block differs from Recipe.pcs()"


@pytest.mark.parametrize("field,value", [
    ("mountpoint", "/srv/nfs/vol1 op stop timeout=1s"), ("mountpoint", "/srv/$(reboot)"),
    ("mountpoint", "relative/path"), ("mountpoint", "/srv/../etc"), ("device", "/dev/drbd1\nproperty x=y"),
    ("name", "Vol1"), ("name", "vol;1"), ("preferred_node", "node1 inf"), ("nic", "eth0 x"),
    ("ip", "192.0.2.300"), ("cidr_netmask", 33), ("fstype", "ext4;rm"),
])
def test_unsafe_values_are_refused(field, value):
    kw = dict(name="vol1", device="/dev/drbd1", mountpoint="/srv/nfs/vol1", ip="192.0.2.101",
              cidr_netmask=24, preferred_node="node1", nic="eth0")
    kw[field] = value
    with pytest.raises(ValueError):
        VolumeRecipe(**kw)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_every_accepted_mountpoint_is_one_shell_word(path):
    """Whatever is accepted renders as one token in both crmsh and pcs lines."""
    try:
        v = VolumeRecipe(name="vol1", device="/dev/drbd1", mountpoint=path, ip="192.0.2.101",
                         cidr_netmask=24, preferred_node="node1")
    except ValueError:
        return
    r = Recipe(server="ganesha", volumes=(v,))
    for line in r.pcs().splitlines():
        assert shlex.split(line) == line.split()
    for line in r.crmsh().splitlines():
        assert not re.search(r"[\n;|&`$<>]", line)
        assert f'directory="{path}"' in r.crmsh() and '"' not in path


def test_readme_example_uses_the_labs_intervals_and_defaults():
    from ganesha_ha.lab import cluster_lab

    lab = Recipe(server="ganesha", volumes=readme_example().volumes, monitor_s=cluster_lab.MONITOR_S,
                 fencing=True)
    assert lab == readme_example()


# ---- both renderings through the real tools, into CIB files --------------------------------

def _cib_file(path: Path) -> Path:
    from ganesha_ha.lab.sandbox.conf import cib_xml

    path.write_text(cib_xml({"stonith-enabled": "false"}))
    return path


def _normalized(cib: Path) -> dict:
    """What a CIB configures, without the ids each tool invents for nvpairs and ops."""
    import xml.etree.ElementTree as ET

    conf = ET.parse(cib).getroot().find("configuration")

    def nv(el, tag):
        return {p.get("name"): p.get("value") for s in el.findall(tag) for p in s.findall("nvpair")}

    def role(r):
        return {"Master": "Promoted", "Slave": "Unpromoted"}.get(r, r)

    prims = {}
    for p in conf.iter("primitive"):
        ops = sorted((o.get("name"), o.get("interval"), o.get("timeout"), role(o.get("role")))
                     for o in p.findall("operations/op"))
        prims[p.get("id")] = (p.get("class"), p.get("provider"), p.get("type"),
                              nv(p, "instance_attributes"), ops, nv(p, "meta_attributes"))
    groups = {g.get("id"): [p.get("id") for p in g.findall("primitive")] for g in conf.iter("group")}
    clones = {c.get("id"): (c.find("primitive").get("id"), nv(c, "meta_attributes"))
              for c in conf.iter("clone")}
    cons = conf.find("constraints")
    return {
        "primitives": prims, "groups": groups, "clones": clones,
        "locations": sorted((c.get("rsc"), c.get("node"), c.get("score")) for c in cons.iter("rsc_location")),
        "colocations": sorted((c.get("rsc"), c.get("with-rsc"), role(c.get("with-rsc-role")), c.get("score"))
                              for c in cons.iter("rsc_colocation")),
        "orders": sorted((c.get("first"), c.get("first-action"), c.get("then"), c.get("then-action"),
                          c.get("kind", "Mandatory")) for c in cons.iter("rsc_order")),
        "rsc_defaults": nv(conf.find("rsc_defaults"), "meta_attributes"),
        "stonith-enabled": nv(conf.find("crm_config"), "cluster_property_set").get("stonith-enabled"),
    }


def _pcs(cib: Path, recipe: Recipe, force_agents: tuple[str, ...] = ()) -> None:
    import subprocess

    for line in recipe.pcs().splitlines():
        argv = shlex.split(line)
        argv[1:1] = ["-f", str(cib)]
        if any(a in line for a in force_agents):
            argv.append("--force")   # the agent is not installed on this machine
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, f"{line}\n{cp.stderr}"


def _two_lab_volumes(fencing: bool = False) -> Recipe:
    """vol1 served by the node's Ganesha, vol2 by its own instance (both group orders)."""
    vols = tuple(VolumeRecipe(name=f"vol{i}", device=f"/dev/loop{i}", mountpoint=f"/var/tmp/lab/vol{i}",
                              ip=f"10.213.40.{100 + i}", cidr_netmask=24, preferred_node=n, ganesha_mode=mode)
                 for i, n, mode in ((1, "node-a", "shared"), (2, "node-b", "instance")))
    return Recipe(server="ganesha", volumes=vols, monitor_s=5, fencing=fencing)


needs_pcs_crm = pytest.mark.skipif(not (shutil.which("pcs") and shutil.which("crm")),
                                   reason="pcs or crmsh not installed")


@needs_pcs_crm
@pytest.mark.skipif(os.geteuid() != 0, reason="shows the agent under /usr/lib/ocf (a bind mount) as root")
def test_pcs_and_crmsh_recipes_configure_the_same_cib(tmp_path):
    """The lab loads the crmsh form; the pcs form must configure exactly the same thing."""
    with this_agent_in_ocf_root(tmp_path / "ocf"):   # both tools check the agent's meta-data
        _pcs_and_crmsh_recipes_configure_the_same_cib(tmp_path)


def _pcs_and_crmsh_recipes_configure_the_same_cib(tmp_path):
    import subprocess

    recipe = _two_lab_volumes()
    crm_cib, pcs_cib = _cib_file(tmp_path / "crm.xml"), _cib_file(tmp_path / "pcs.xml")
    script = tmp_path / "recipe.crm"
    script.write_text(recipe.crmsh())
    home = tmp_path / "home"
    home.mkdir()
    cp = subprocess.run(["crm", "configure", "load", "update", str(script)], capture_output=True,
                        text=True, timeout=120, env={**os.environ, "CIB_file": str(crm_cib),
                                                     "HOME": str(home), "TMPDIR": str(home)})
    assert cp.returncode == 0, cp.stderr
    # offline, crmsh warns of quorum and unknown nodes; never of timeouts or agents
    assert not re.search(r"advised|meta-data|no such resource agent", cp.stderr), cp.stderr
    _pcs(pcs_cib, recipe)
    a, b = _normalized(crm_cib), _normalized(pcs_cib)
    assert a == b
    assert a["groups"] == {"vol1-group": ["vol1-fs", "vol1-exports", "vol1-ip", "vol1-notify"],
                           "vol2-group": ["vol2-fs", "vol2-ip", "vol2-exports"]}
    assert a["locations"] == [("vol1-group", "node-a", "50"), ("vol2-group", "node-b", "50")]


@needs_pcs_crm
def test_pcs_accepts_the_readme_recipe_with_drbd_and_fencing(tmp_path):
    cib = _cib_file(tmp_path / "cib.xml")
    _pcs(cib, readme_example(), force_agents=("ocf:linbit:drbd", "ocf:ganesha-ha:exports", "ocf:ganesha-ha:notify"))
    n = _normalized(cib)
    assert n["stonith-enabled"] == "true"
    assert n["clones"]["vol1-drbd-clone"][1]["promotable"] == "true"
    assert ("vol1-group", "vol1-drbd-clone", "Promoted", "INFINITY") in n["colocations"]
    assert ("vol1-drbd-clone", "promote", "vol1-group", "start", "Mandatory") in n["orders"]
    assert n["groups"]["vol2-group"] == ["vol2-fs", "vol2-exports", "vol2-ip", "vol2-notify"]
