"""The pcs and crmsh commands `ganesha-ha import cib` prints, run by the real tools into CIB files.

The CIB is tests/exportfs_cib.py's: two volumes, each a group of a file system, ten
ocf:heartbeat:exportfs primitives and an IP. The import (a dry run: the commands are the
same) prints for each volume the commands that replace its primitives by one
ocf:ganesha-ha:exports resource. Run with `pcs -f FILE` and with crmsh on `CIB_file=FILE`
(the commands that only clear the cluster's status history, `crm_resource --refresh`, have no
use on a file and are left out), both must configure the same thing: each group is file
system, exports resource, IP, notify resource (the README's recipe), no exportfs primitive is left, the resource has the
server, the volume and the group's IP, the cluster is out of maintenance mode again and the
group's location constraint is untouched. This checkout's agent is made the one both tools
read (conftest.this_agent_in_ocf_root: shown at /usr/lib/ocf/resource.d in the session's
private mount namespace only), so both check the resource against this meta-data (its `server` select).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from contextlib import ExitStack
from pathlib import Path

import pytest

from conftest import IS_ROOT, this_agent_in_ocf_root, tmpfs
from exportfs_cib import IPS, PRIMITIVES, cib_xml, directories

pytestmark = [
    pytest.mark.skipif(not IS_ROOT, reason="needs root (tmpfs volumes, a bind mount in the session's namespace)"),
    pytest.mark.skipif(not (shutil.which("pcs") and shutil.which("crm")), reason="pcs or crmsh not installed"),
]


def normalized(cib: Path) -> dict:
    """What a CIB configures, without the ids each tool invents for nvpairs and ops."""
    conf = ET.parse(cib).getroot().find("configuration")

    def nv(el: ET.Element, tag: str) -> dict:
        return {p.get("name"): p.get("value") for s in el.findall(tag) for p in s.findall("nvpair")}

    prims = {p.get("id"): (p.get("class"), p.get("provider"), p.get("type"), nv(p, "instance_attributes"),
                           sorted((o.get("name"), o.get("interval"), o.get("timeout"))
                                  for o in p.findall("operations/op")))
             for p in conf.iter("primitive")}
    return {"primitives": prims,
            "groups": {g.get("id"): [p.get("id") for p in g.findall("primitive")] for g in conf.iter("group")},
            "locations": sorted((c.get("id"), c.get("rsc"), c.get("node"), c.get("score"))
                                for c in conf.iter("rsc_location")),
            "properties": nv(conf.find("crm_config"), "cluster_property_set")}


@pytest.fixture
def our_agent(tmp_path):
    """This checkout's agent where pcs and crmsh look, in this session's mount namespace."""
    with this_agent_in_ocf_root(tmp_path / "ocf"):
        yield


def test_printed_commands_replace_the_primitives_with_pcs_and_crmsh(tmp_path, our_agent):
    config = tmp_path / "gha.conf"
    config.write_text(f"[node]\nruntime_dir = {tmp_path / 'run'}\n")
    with ExitStack() as stack:
        mps = {v: stack.enter_context(tmpfs(tmp_path / v)) for v in PRIMITIVES}
        for volume, mp in mps.items():
            for d in directories(volume):
                (mp / d).mkdir()
        base = tmp_path / "cib.xml"
        base.write_text(cib_xml(mps))
        commands = {}
        for volume, mp in mps.items():
            run = [sys.executable, "-m", "ganesha_ha.cli", "--config", str(config)]
            subprocess.run([*run, "volume", "init", str(mp), "--server", "knfsd"], check=True, capture_output=True)
            out = subprocess.run([*run, "import", "cib", str(mp), "--file", str(base), "--json"],
                                 capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            commands[volume] = json.loads(out.stdout)["replacement"]
        pcs_cib, crm_cib = tmp_path / "pcs.xml", tmp_path / "crm.xml"
        shutil.copy(base, pcs_cib)
        shutil.copy(base, crm_cib)
        home = tmp_path / "home"
        home.mkdir()
        crm_env = {**os.environ, "CIB_file": str(crm_cib), "HOME": str(home), "TMPDIR": str(home)}
        for volume in mps:
            for c in commands[volume]["pcs"]:
                assert c["argv"][0] in ("pcs", "crm_resource")
                if c["kind"] == "status":
                    assert c["argv"][:2] == ["crm_resource", "--refresh"]
                    continue
                argv = [c["argv"][0], "-f", str(pcs_cib), *c["argv"][1:]]
                cp = subprocess.run(argv, capture_output=True, text=True, timeout=120)
                assert cp.returncode == 0, f"{c['line']}\n{cp.stderr}"
            for c in commands[volume]["crmsh"]:
                if c["kind"] == "status":
                    continue
                cp = subprocess.run(c["argv"], capture_output=True, text=True, timeout=120, env=crm_env)
                assert cp.returncode == 0, f"{c['line']}\n{cp.stderr}"
                assert not re.search(r"no such resource agent|meta-data", cp.stderr), cp.stderr
        by_pcs, by_crm = normalized(pcs_cib), normalized(crm_cib)
        assert by_pcs == by_crm
        assert by_pcs["groups"] == {f"{v}-group": [f"{v}-fs", f"{v}-exports", f"{v}-ip", f"{v}-notify"] for v in mps}
        for volume, mp in mps.items():
            cls, provider, kind, params, ops = by_pcs["primitives"][f"{volume}-exports"]
            assert (cls, provider, kind) == ("ocf", "ganesha-ha", "exports")
            assert params == {"server": "knfsd", "volume": str(mp), "ip": IPS[volume]}
            assert ops == [("monitor", "5s", "30s"), ("start", "0s", "60s"), ("stop", "0s", "60s")]
            cls, provider, kind, params, ops = by_pcs["primitives"][f"{volume}-notify"]   # as the README's recipe
            assert (cls, provider, kind) == ("ocf", "ganesha-ha", "notify")
            assert params == {"ip": IPS[volume], "volume": str(mp)}
            assert ops == [("monitor", "10s", "20s"), ("start", "0s", "30s"), ("stop", "0s", "20s")]
        assert not [p for p in by_pcs["primitives"].values() if p[2] == "exportfs"]
        assert by_pcs["properties"]["maintenance-mode"] == "false"
        assert by_pcs["locations"] == normalized(base)["locations"] == [("vol1-group-prefers-n1", "vol1-group", "n1", "50")]
        # the meta-data's select, as crmsh reads it (pcs 0.11.5 parses its options but checks no value)
        info = subprocess.run(["crm", "ra", "info", "ocf:ganesha-ha:exports"], capture_output=True, text=True,
                              timeout=120, env=crm_env)
        assert "server* (select)" in info.stdout, info.stdout + info.stderr
