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


# ---- a parameter given by several instance_attributes sets: the value Pacemaker gives the agent ----

def _sets(*sets: tuple[str | None, str], template: tuple[str | None, str] | None = None) -> str:
    """A CIB with one exportfs primitive (directory /srv/vol1/a, client *) whose `options` come
    from `sets`, each (score or None, value), in document order; `template`: one set of its
    template, likewise."""
    def ia(sid: str, score: str | None, body: str) -> str:
        return f'<instance_attributes id="{sid}"{f" score={score!r}" if score else ""}>{body}</instance_attributes>'

    own = [ia("p-base", None, '<nvpair id="p-d" name="directory" value="/srv/vol1/a"/>'
                              '<nvpair id="p-c" name="clientspec" value="*"/><nvpair id="p-f" name="fsid" value="7"/>')]
    own += [ia(f"p-s{i}", score, f'<nvpair id="p-o{i}" name="options" value="{value}"/>')
            for i, (score, value) in enumerate(sets)]
    tpl = ""
    if template:
        tpl = ('<template id="t" class="ocf" provider="heartbeat" type="exportfs">'
               + ia("t-s", template[0], f'<nvpair id="t-o" name="options" value="{template[1]}"/>') + "</template>")
    kind = 'template="t"' if template else 'class="ocf" provider="heartbeat" type="exportfs"'
    return (f'<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0"><configuration>'
            f'<crm_config/><nodes/><resources>{tpl}<primitive id="p" {kind}>{"".join(own)}</primitive>'
            f'</resources><constraints/></configuration><status/></cib>')


@pytest.mark.skipif(shutil.which("crm_resource") is None, reason="Pacemaker's crm_resource not installed")
@pytest.mark.parametrize("cib,pacemaker", [
    (_sets((None, "ro"), ("10", "rw")), "rw"),
    (_sets(("10", "ro"), (None, "rw")), "ro"),          # the higher score wins, wherever it stands
    (_sets((None, "ro"), ("-5", "rw")), "ro"),
    (_sets(("INFINITY", "ro"), ("500", "rw")), "ro"),
    (_sets((None, "ro"), (None, "rw")), "rw"),          # equal scores: the later set
    (_sets((None, "ro"), template=(None, "rw,no_root_squash")), "ro"),     # the primitive's over its template's
    (_sets((None, "ro"), template=("5", "rw,no_root_squash")), "rw,no_root_squash"),
])
def test_an_option_given_by_several_sets_is_imported_as_pacemaker_gives_it(tmp_path, cib, pacemaker):
    """An import that read the sets in document order (the later wins) took `rw` for the
    second case, where the cluster exports read-only: write access the clients never had."""
    from ganesha_ha.formats import cib as cibform
    from ganesha_ha.formats import exports5

    path = tmp_path / "cib.xml"
    path.write_text(cib)
    asked = subprocess.run(["crm_resource", "--resource", "p", "--get-parameter", "options"],
                           env={**os.environ, "CIB_file": str(path)}, capture_output=True, text=True, timeout=60)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip().splitlines()[-1] == pacemaker
    imp = cibform.read(cibform.parse(cib), exports5.relpath_in("/srv/vol1"))
    [d] = imp.reading.descriptions
    assert [str(c) for c in d.clients] == [f"*({pacemaker})"]
