"""The forms of formats/ read and written (pure): exports(5), EXPORT blocks, exportfs primitives, JSON.

The readers' rules are pinned here line by line (what each source says, what is refused and
why); tests/server/test_import.py checks the same files against exportfs and the upstream
agent. The property at the end: whatever the registry holds, each dump reads back as no
change (`export dump | export apply --check`).
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganesha_ha.backends.ganesha_conf import RenderOptions
from ganesha_ha.converge import converge
from ganesha_ha.description import Description, from_json
from ganesha_ha.errors import ValidationError
from ganesha_ha.formats import cib, detect, exports5, ganesha_blocks, jsonform
from ganesha_ha.formats.cib import Primitive
from ganesha_ha.fsal import parse_spec
from ganesha_ha.clientspec import ClientSpec
from ganesha_ha.model import ACCESS_TYPES, SQUASH_TYPES, Export, GaneshaOptions, KnfsdOptions
from ganesha_ha.registry import RegistryState

from strategies import OPTION_FAMILIES, good_name, knfsd_host, name_text

MP = "/srv/vol1"
REL = exports5.relpath_in(MP)
NODE = RenderOptions("3, 4", "TCP")


def clients(d: Description) -> list[str]:
    return [str(c) for c in d.clients or ()]


# ---- exports(5) ---------------------------------------------------------------------------------

TRICKY = rb'''# a comment line
/srv/vol1/a   10.0.0.0/8(rw,no_root_squash,fsid=11) \
      fd00::/64(ro,fsid=11)   # a comment after the clients
"/srv/vol1/my dir" -rw,sync *.example.com host1(ro) (all_squash)
/srv/vol1/b\040c
/srv/vol1/h#x @ng(rw)
/srv/other *(rw)
/srv/vol1/d -ro
/srv/vol1/q 10.1.0.0/16(rw) -ro,async
/srv/vol1/"quoted part"/x 192.0.2.7(rw,fsid=4000000000)
'''


def test_exports_lines_are_read_as_exportfs_reads_them():
    entries = [(e.path, e.host, e.options) for e in exports5.parse(TRICKY)]
    assert entries == [
        ("/srv/vol1/a", "10.0.0.0/8", ("rw", "no_root_squash", "fsid=11")),
        ("/srv/vol1/a", "fd00::/64", ("ro", "fsid=11")),              # continued line, comment after
        ("/srv/vol1/my dir", "*.example.com", ("rw", "sync")),        # quoted, defaults
        ("/srv/vol1/my dir", "host1", ("sync", "ro")),                # the client's ro over -rw
        ("/srv/vol1/my dir", "*", ("rw", "sync", "all_squash")),      # (options) with no host
        ("/srv/vol1/b c", "*", ()),                                   # \040, no client at all
        ("/srv/vol1/h#x", "@ng", ("rw",)),                            # '#' inside a word
        ("/srv/other", "*", ("rw",)),
        ("/srv/vol1/d", "*", ("ro",)),                                # defaults alone: every host
        ("/srv/vol1/q", "10.1.0.0/16", ("rw",)),
        ("/srv/vol1/q", "*", ("ro", "async")),                        # defaults ending a line
        ("/srv/vol1/quoted part/x", "192.0.2.7", ("rw", "fsid=4000000000")),
    ]


def test_exports_become_one_description_per_directory_with_access_spelt_out():
    reading = exports5.read(TRICKY, REL)
    by_path = {d.path: d for d in reading.descriptions}
    assert reading.outside == 1 and not reading.refusals
    assert clients(by_path["a"]) == ["10.0.0.0/8(rw,no_root_squash)", "fd00::/64(ro)"] and by_path["a"].fsid == "11"
    assert clients(by_path["b c"]) == ["*(ro)"] and by_path["b c"].fsid is None   # exportfs's default: read-only
    assert clients(by_path["my dir"])[1] == "host1(sync,ro)"
    assert by_path["quoted part/x"].fsid == "4000000000"
    assert all(d.by_meaning and d.access == "RW" for d in reading.descriptions)


@pytest.mark.parametrize("text,reason", [
    (b"/srv/vol1/a x(rw,fsid=1) y(rw,fsid=2)\n", "different fsids"),
    (b"/srv/vol1/a x(rw,fsid=1) y(rw)\n", "different fsids"),
    (b"/srv/vol1/a *(rw,fsid=0)\n", "pseudo root"),
    (b"/srv/vol1/a *(rw,refer=/x@host)\n", "unknown option"),
    (b"/srv/vol1/a *(rw,ro)\n", None),                              # the later wins: ro
    (b"/srv/vol1/a 0.0.0.0(rw)\n", "unspecified address"),
    (b"/srv/vol1/a x(rw) x(ro)\n", "more than once"),
])
def test_what_an_exports_file_says_that_cannot_be_represented_is_refused_for_its_directory(text, reason):
    reading = exports5.read(text + b"/srv/vol1/b *(rw)\n", REL)
    assert [d.path for d in reading.descriptions] == (["b"] if reason else ["a", "b"])
    if reason:
        assert len(reading.refusals) == 1 and reason in str(reading.refusals[0])
        assert reading.refusals[0].where.startswith("a (line 1)")
        # the README's exit codes: 2, what cannot be represented (5 is a conflict with the registry)
        assert reading.refusals[0].error.exit_code == 2


@pytest.mark.parametrize("text,line", [(b"/a *(rw\n", 1), (b"/a *(rw)\n/b *(rw,,sync)\n", 2),
                                       (b"/a \\\n  *(rw)x\n", 1)])
def test_a_line_exportfs_stops_at_is_an_error_with_its_number(text, line):
    with pytest.raises(exports5.ExportsSyntaxError) as info:
        exports5.parse(text)
    assert info.value.line == line and info.value.exit_code == 2


def test_several_exports_files_are_read_together():
    reading = exports5.read([("/etc/exports", b"/srv/vol1/a x(rw,fsid=3)\n"),
                             ("/etc/exports.d/b.exports", b"\n/srv/vol1/a y(ro,fsid=3)\n/srv/vol1/a y(ro,fsid=3)\n")],
                            REL)
    assert [r.where for r in reading.refusals] == ["a (/etc/exports line 1)"]
    assert "more than once" in str(reading.refusals[0])


def test_exports_dump_is_an_exports_file():
    exp = Export(path="my dir", export_id=1, pseudo="/p", knfsd=KnfsdOptions("9"),
                 clients=("10.0.0.0/8(rw,insecure)", "fd00::1", "*(all_squash,anonuid=5)"), access="RO")
    shut = exp.with_changes(path="shut", access="None", knfsd=KnfsdOptions("10"))
    text = exports5.render([exp, shut], MP, "dump of /srv/vol1")
    assert text.splitlines() == [
        "# dump of /srv/vol1",
        "/srv/vol1/my\\040dir 10.0.0.0/8(ro,root_squash,no_all_squash,sync,no_subtree_check,insecure,fsid=9) \\",
        "    fd00::1(ro,root_squash,no_all_squash,sync,no_subtree_check,fsid=9) \\",
        "    *(ro,all_squash,sync,no_subtree_check,anonuid=5,fsid=9)",
        "# ganesha-ha: access None: /srv/vol1/shut",
    ]
    back = {d.path: d for d in exports5.read(text, REL).descriptions}
    assert back["shut"].access == "None" and back["shut"].clients is None


# ---- Ganesha EXPORT blocks --------------------------------------------------------------------------

GANESHA = '''
EXPORT_DEFAULTS { Squash = No_Root_Squash; }
EXPORT {
  Export_Id = 12; Path = "/srv/vol1/a"; Pseudo = /a; Access_Type = RO; Protocols = 4, 3;
  FSAL { Name = VFS; }
  CLIENT { Clients = 10.0.0.5, 192.168.0.0/16; Access_Type = RW; Squash = All_Squash; Anonymous_Uid = -2; }
  CLIENT { Clients = *.example.com; SecType = sys, krb5; }
}
EXPORT { Export_Id = 14; Path = /srv/other; Pseudo = /o; FSAL { Name = VFS; } }
EXPORT { Export_Id = 15; Path = /srv/vol1/n; Pseudo = /n; FSAL { Name = NULL; FSAL { Name = VFS; } }
         CLIENT { Clients = @ng; Access_Type = RW; } }
'''


def test_a_block_of_an_fsal_with_its_own_namespace_is_named_when_an_import_leaves_it_out():
    """Counted in `outside` alone, a MEM/CEPH block left out of `import ganesha` was never
    named (tryout6 G): its note names the block, the FSAL, the path and what takes it."""
    text = GANESHA + 'EXPORT { Export_Id = 16; Path = /mm; Pseudo = /mm; FSAL { Name = MEM; } }\n'
    reading = ganesha_blocks.read(text, REL, NODE, remote=False)
    assert reading.outside == 2 and not reading.refusals
    assert reading.notes == ["EXPORT Export_Id=16 (FSAL MEM, Path /mm): an FSAL with its own namespace lies in no "
                             "volume, not imported ('export apply' of EXPORT blocks takes it, by its path)"]
    assert ganesha_blocks.read(text, REL, NODE).notes == []   # read for `export apply`: taken, no note


def test_ganesha_blocks_keep_ids_pseudo_clients_and_fsal():
    reading = ganesha_blocks.read(GANESHA, REL, NODE)
    a, n = reading.descriptions
    assert reading.outside == 1 and not reading.refusals
    assert (a.path, a.export_id, a.pseudo, a.fsal.name) == ("a", 12, "/a", "VFS")
    # client settings fall back to the EXPORT block, then EXPORT_DEFAULTS; the export's own
    # access becomes a last client `*`
    assert clients(a) == ["10.0.0.5(rw,all_squash,anonuid=4294967294)", "192.168.0.0/16(rw,all_squash,anonuid=4294967294)",
                          "*.example.com(ro,no_root_squash,sec=sys:krb5)", "*(ro,no_root_squash)"]
    assert a.by_meaning and a.keeps_knfsd_flags and a.fsid is None
    assert str(n.fsal) == "NULL(VFS)" and clients(n) == ["@ng(rw,no_root_squash)"]   # no export-level access: no `*`


@pytest.mark.parametrize("inside,reason", [
    ("Tag = t;", "Tag has no place"),
    ("Filesystem_id = 1.1;", "Filesystem_id has no place"),
    ("Access_Type = MDONLY;", "only RW, RO and None"),
    ("Squash = Root_Id_Squash;", "Root_Squash, No_Root_Squash and All_Squash"),
    ("Protocols = 3;", "[ganesha] protocols"),
    ("Transports = UDP, TCP;", "[ganesha] transports"),
    ("CLIENT { Clients = *; Access_Type = RW; } CLIENT { Clients = 10.0.0.1; Access_Type = RO; }",
     "first CLIENT block that matches"),
    ("CLIENT { Clients = 10.0.0.1; Access_Type = None; } CLIENT { Clients = *; Access_Type = RW; }",
     "cannot deny one host"),
    ("CLIENT { Clients = 10.0.0.1; Delegations = RW; }", "Delegations has no place"),
    ("FSAL { Name = VFS; } FSAL { Name = VFS; }", "more than one FSAL"),
    ("DEFAULT { }", "has no place"),
])
def test_what_ganesha_says_that_cannot_be_represented_is_refused_for_that_export(inside, reason):
    text = f'EXPORT {{ Export_Id = 1; Path = /srv/vol1/a; Pseudo = /a; {inside} }}\n' \
           'EXPORT { Export_Id = 2; Path = /srv/vol1/b; Pseudo = /b; CLIENT { Clients = *; Access_Type = RW; } }\n'
    reading = ganesha_blocks.read(text, REL, NODE)
    assert [d.path for d in reading.descriptions] == ["b"]
    assert len(reading.refusals) == 1 and reason in str(reading.refusals[0]), reading.refusals
    assert reading.refusals[0].where == "a (EXPORT Export_Id=1)"


def test_ganesha_includes_are_expanded_and_urls_refused():
    files = {"/etc/ganesha/a.conf": '%include "b.conf"\nEXPORT { Export_Id = 3; Path = /srv/vol1/a; Pseudo = /a;'
                                    ' CLIENT { Clients = *; Access_Type = RO; } }\n',
             "b.conf": "EXPORT_DEFAULTS { Squash = All_Squash; }\n"}
    text = ganesha_blocks.expand_includes("%include /etc/ganesha/a.conf\n", files.__getitem__)
    assert clients(ganesha_blocks.read(text, REL, NODE).descriptions[0]) == ["*(ro,all_squash)"]
    with pytest.raises(ValidationError, match="%url"):
        ganesha_blocks.expand_includes('%url "rados://pool/obj"\n', files.__getitem__)
    with pytest.raises(ValidationError, match="nested"):
        ganesha_blocks.expand_includes("%include self\n", lambda p: "%include self\n")
    with pytest.raises(ValidationError, match="ganesha config"):
        ganesha_blocks.read("EXPORT { Path = /x; ", REL, NODE)


# ---- exportfs primitives ---------------------------------------------------------------------------

def primitive(pid: str, **params: str) -> str:
    nv = "".join(f'<nvpair id="{pid}-{k}" name="{k}" value="{v}"/>' for k, v in params.items())
    return (f'<primitive id="{pid}" class="ocf" provider="heartbeat" type="exportfs">'
            f'<instance_attributes id="{pid}-ia">{nv}</instance_attributes></primitive>')


def cib_xml(resources: str, constraints: str = "") -> str:
    return (f'<cib><configuration><crm_config/><nodes/><resources>{resources}</resources>'
            f'<constraints>{constraints}</constraints></configuration><status/></cib>')


CIB = cib_xml(
    '<group id="vol1-group"><primitive id="vol1-fs" class="ocf" provider="heartbeat" type="Filesystem"/>'
    + primitive("e-a4", directory="/srv/vol1/a", clientspec="10.0.0.0/8", options="rw,no_root_squash,fsid=99",
                fsid="101")
    + primitive("e-a6", directory="/srv/vol1/a/", clientspec="[fd00::]/64", options="", fsid="101")
    + primitive("e-bc", directory="/srv/vol1/b /srv/vol1/c", clientspec="*.example.com", options="rw",
                fsid="200", unlock_on_stop="0")
    + '<primitive id="vol1-ip" class="ocf" provider="heartbeat" type="IPaddr2"><instance_attributes id="ip-ia">'
      '<nvpair id="ip-ip" name="ip" value="192.0.2.101"/></instance_attributes></primitive></group>'
    + primitive("other", directory="/srv/vol2/x", clientspec="*", options="rw", fsid="5")
    + '<template id="tpl" class="ocf" provider="heartbeat" type="exportfs"><instance_attributes id="tpl-ia">'
      '<nvpair id="tpl-o" name="options" value="rw,sync"/></instance_attributes></template>'
      '<primitive id="e-t" template="tpl"><instance_attributes id="e-t-ia">'
      '<nvpair id="e-t-d" name="directory" value="/srv/vol1/t"/><nvpair id="e-t-c" name="clientspec" value="@ng"/>'
      '<nvpair id="e-t-f" name="fsid" value="0b5b7f4e-1b2c-4d3e-8f9a-0123456789ab"/></instance_attributes></primitive>',
    '<rsc_location id="loc-e-t" rsc="e-t" node="n1" score="10"/>')


def test_exportfs_primitives_of_the_volume_become_exports_keeping_fsid_clients_options():
    parsed = cib.parse(CIB)
    imp = cib.read(parsed, REL)
    by_path = {d.path: d for d in imp.reading.descriptions}
    assert [p.id for p in imp.primitives] == ["e-a4", "e-a6", "e-bc", "e-t"] and imp.reading.outside == 1
    assert clients(by_path["a"]) == ["10.0.0.0/8(rw,no_root_squash)", "fd00::/64(ro)"]   # agent's fsid wins
    assert by_path["a"].fsid == "101" and by_path["a"].source == "primitive e-a4, e-a6"
    assert (by_path["b"].fsid, by_path["c"].fsid) == ("200", "201")                         # fsid, fsid + 1
    assert clients(by_path["t"]) == ["@ng(rw,sync)"]                                        # from the template
    assert imp.reading.notes == []
    assert parsed.ips == {"vol1-group": ["192.0.2.101"]} and parsed.constraints["e-t"] == ["loc-e-t"]


@pytest.mark.parametrize("resources,reason", [
    (primitive("p", directory="/srv/vol1/a", clientspec="*", fsid="1")
     + primitive("q", directory="/srv/vol1/a", clientspec="x.example", fsid="2"), "different fsids"),
    (primitive("p", directory="/srv/vol1/a /srv/vol1/b", clientspec="*", fsid="abc"), "whole number"),
    (primitive("p", directory="/srv/vol1/a /srv/other", clientspec="*", fsid="1"), "inside and outside"),
    (primitive("p", directory="/srv/vol1/a", clientspec="*", fsid="root"), "NFSv4 root"),
    (primitive("p", directory="/srv/vol1/a", clientspec="*", fsid="1", options="rw,mountpoint=/x"),
     "mountpoint is taken without a value"),
    (primitive("p", directory="/srv/vol1/a", clientspec="a b", fsid="1"), "one client"),
    ('<clone id="cl">' + primitive("p", directory="/srv/vol1/a", clientspec="*", fsid="1") + "</clone>", "clone"),
    (primitive("p", directory="/srv/vol1/a", clientspec="*", fsid="1").replace(
        "</primitive>", '<meta_attributes id="m"><nvpair id="m1" name="target-role" value="Stopped"/>'
                        "</meta_attributes></primitive>"), "disabled"),
    (primitive("p", directory="/srv/vol1/a", clientspec="*", fsid="1").replace(
        '<instance_attributes id="p-ia">', '<instance_attributes id="p-ia"><rule id="r" score="0"/>'), "rule"),
])
def test_a_primitive_that_cannot_be_taken_is_refused_with_its_directory(resources, reason):
    imp = cib.read(cib.parse(cib_xml(resources + primitive("z", directory="/srv/vol1/z", clientspec="*", fsid="9"))),
                   REL)
    assert [d.path for d in imp.reading.descriptions] == ["z"]
    assert reason in " ".join(str(r) for r in imp.reading.refusals), imp.reading.refusals
    assert {r.error.exit_code for r in imp.reading.refusals} == {2}


def test_replacement_commands_take_the_first_primitives_place_in_its_group():
    parsed = cib.parse(CIB)
    prims = [p for p in cib.read(parsed, REL).primitives if p.group == "vol1-group"]
    r = cib.replacement(parsed, prims, volume=MP, server="knfsd")
    assert (r.resource_id, r.group, r.notify_id) == ("vol1-exports", "vol1-group", "vol1-notify")
    pcs = [str(c) for c in r.pcs]
    assert pcs[0] == "pcs property set maintenance-mode=true" and pcs[-1] == "pcs property set maintenance-mode=false"
    assert pcs[1] == ("pcs resource create vol1-exports ocf:ganesha-ha:exports server=knfsd volume=/srv/vol1 "
                      "ip=192.0.2.101 op monitor interval=5s timeout=30s start interval=0s timeout=60s "
                      "stop interval=0s timeout=60s --group vol1-group --before e-a4 --no-default-ops")
    # the README's recipe: the group's notify resource last, after its IP (SM_NOTIFY leaves from it)
    assert pcs[2] == ("pcs resource create vol1-notify ocf:ganesha-ha:notify ip=192.0.2.101 volume=/srv/vol1 "
                      "op monitor interval=10s timeout=20s start interval=0s timeout=30s "
                      "stop interval=0s timeout=20s --group vol1-group --no-default-ops")
    assert pcs[3:6] == [f"pcs resource delete {p} --force" for p in ("e-a4", "e-a6", "e-bc")]
    assert [c.kind for c in r.pcs[6:9]] == ["status"] * 3
    # e-bc alone does not release the locks at stop: the resource does (the safer), and says so
    assert "unlock_on_stop" not in pcs[1] and r.notes == ["the primitives differ in unlock_on_stop; the exports "
                                                          "resource takes 1"]
    stop_params = (("unlock_on_stop", "no"), ("wait_for_leasetime_on_stop", "yes"))
    quiet = [Primitive(p.id, p.directory, p.clientspec, p.options, p.fsid, p.group, stop_params) for p in prims]
    assert "unlock_on_stop=0 wait_for_leasetime_on_stop=1" in str(
        cib.replacement(parsed, quiet, volume=MP, server="knfsd").pcs[1])
    crm = [str(c) for c in r.crmsh]
    assert "crm configure modgroup vol1-group add vol1-exports before e-a4" in crm
    assert ("crm configure primitive vol1-notify ocf:ganesha-ha:notify params ip=192.0.2.101 volume=/srv/vol1 "
            "op monitor interval=10s timeout=20s op start interval=0s timeout=30s op stop interval=0s timeout=20s"
            in crm and "crm configure modgroup vol1-group add vol1-notify" in crm)
    assert "crm configure delete --force e-a4 e-a6 e-bc" in crm
    with pytest.raises(ValidationError, match="different groups"):
        cib.replacement(parsed, cib.read(parsed, REL).primitives, volume=MP, server="knfsd")
    with pytest.raises(ValidationError, match="one plain word"):
        cib.replacement(parsed, prims, volume="/srv/vol 1", server="knfsd")
    with pytest.raises(Exception, match="already has an element"):
        cib.replacement(parsed, prims, volume=MP, server="knfsd", resource_id="vol1-fs")


def test_no_live_replacement_of_knfsd_primitives_by_a_ganesha_resource():
    """The cut-over keeps knfsd's etab lines for the new resource to adopt; Ganesha cannot adopt
    them: they would stay exported by nobody's resource, knfsd would keep port 2049 (an instance
    on the IP is refused, OCF_ERR_PERM), and for an instance the exports would come before the IP."""
    parsed = cib.parse(CIB)
    prims = [p for p in cib.read(parsed, REL).primitives if p.group == "vol1-group"]
    with pytest.raises(ValidationError, match="cannot keep its exports live.*stop the exportfs primitives"):
        cib.replacement(parsed, prims, volume=MP, server="ganesha")


def test_a_primitive_outside_any_group_keeps_its_constraints_in_the_notes():
    parsed = cib.parse(CIB)
    t = [p for p in cib.read(parsed, REL).primitives if p.id == "e-t"]
    r = cib.replacement(parsed, t, volume=MP, server="knfsd")
    assert r.resource_id == "vol1-exports" and "--group" not in str(r.pcs[1])
    assert r.notes == ["constraint loc-e-t names e-t and goes with it; make one for vol1-exports if it is still wanted",
                       "no ocf:ganesha-ha:notify resource: it needs the volume's floating IP in its group; without it "
                       "NFSv3 clients are not told to reclaim their NLM locks after a move"]


def test_a_group_with_a_notify_resource_keeps_it_and_nfsnotify_is_named():
    def with_members(extra: str) -> cib.Cib:
        return cib.parse(CIB.replace("</instance_attributes></primitive></group>",
                                     "</instance_attributes></primitive>" + extra + "</group>", 1))

    mine = '<primitive id="n" class="ocf" provider="ganesha-ha" type="notify"/>'
    parsed = with_members(mine)
    prims = [p for p in cib.read(parsed, REL).primitives if p.group == "vol1-group"]
    r = cib.replacement(parsed, prims, volume=MP, server="knfsd")
    assert "notify" not in " ".join(str(c) for c in r.pcs + r.crmsh) and not any("notify" in n for n in r.notes)
    parsed = with_members('<primitive id="nn" class="ocf" provider="heartbeat" type="nfsnotify"/>')
    r = cib.replacement(parsed, prims, volume=MP, server="knfsd")
    assert any(str(c).startswith("pcs resource create vol1-notify") for c in r.pcs)
    assert any(n.startswith("nn (ocf:heartbeat:nfsnotify) notifies from this node's statd records") for n in r.notes)
    # a group starting its IP before the exportfs primitives: the notify still goes last, and a note
    ip_first = cib.parse(CIB.replace('<primitive id="vol1-fs" class="ocf" provider="heartbeat" type="Filesystem"/>',
                                     '<primitive id="vol1-fs" class="ocf" provider="heartbeat" type="Filesystem"/>'
                                     '<primitive id="ip0" class="ocf" provider="heartbeat" type="IPaddr2">'
                                     '<instance_attributes id="ip0-ia"><nvpair id="ip0-ip" name="ip" '
                                     'value="192.0.2.9"/></instance_attributes></primitive>', 1)
                         .replace('<primitive id="vol1-ip" class="ocf" provider="heartbeat" type="IPaddr2">'
                                  '<instance_attributes id="ip-ia"><nvpair id="ip-ip" name="ip" value="192.0.2.101"/>'
                                  '</instance_attributes></primitive>', "", 1))
    r = cib.replacement(ip_first, prims, volume=MP, server="knfsd")
    assert "ip=192.0.2.9" in str(r.pcs[2]) and str(r.pcs[2]).endswith("--group vol1-group --no-default-ops")
    assert "the group starts ip0 before the exports: clients reach the node before its exports are live" in r.notes[-1]


# ---- JSON -----------------------------------------------------------------------------------------

def test_json_takes_what_export_list_prints():
    listed = {"path": "a", "directory": "/srv/vol1/a", "export_id": 3, "pseudo": "/a", "clients": ["*(rw)"],
              "access": "RW", "squash": "root_squash", "knfsd": {"fsid": "7"}, "ganesha": {"fsal": {"name": "VFS"}},
              "fsid": "7", "fsal": "VFS", "live": True, "server": "knfsd"}
    d = from_json(listed, REL)
    assert (d.path, d.export_id, d.fsid, d.fsal.name, clients(d)) == ("a", 3, "7", "VFS", ["*(rw)"])
    assert from_json({"directory": "/srv/vol1/b", "clients": [{"host": "*", "options": ["ro"]}]}, REL).clients == \
        (ClientSpec("*", ("ro",)),)
    for bad, reason in (({"path": "a", "fsid": "7", "knfsd": {"fsid": "8"}}, "differ"),
                        ({"path": "a", "directory": "/srv/vol1/b"}, "different directories"),
                        ({"path": "a", "exportid": 3}, "unknown key"), ({"live": True}, "names no directory")):
        with pytest.raises(ValidationError, match=reason):
            from_json(bad, REL)
    reading, whole = jsonform.read('[{"path": "a", "clients": ["*"]}, {"path": "b", "bogus": 1}]', REL)
    assert whole and [d.path for d in reading.descriptions] == ["a"] and reading.refusals[0].where == "b (entry 2)"
    assert jsonform.read('{"path": "a"}', REL)[1] is False
    with pytest.raises(ValidationError, match="not valid JSON"):
        jsonform.read("[", REL)


def test_the_form_is_recognised():
    assert [detect(t) for t in ('  [', '{"a": 1}', "export {\n", "# x\nEXPORT{", "/srv *(rw)\n")] == \
        ["json", "json", "ganesha", "ganesha", "exports"]


# ---- every dump reads back as no change ------------------------------------------------------------

def _option_lists():
    return st.tuples(*[st.none() | st.sampled_from(f) for f in OPTION_FAMILIES]).map(
        lambda picks: tuple(o for o in picks if o))


@st.composite
def registries(draw):
    n = draw(st.integers(1, 6))
    names = draw(st.lists(st.lists(good_name | name_text, min_size=1, max_size=2).map("/".join), min_size=n,
                          max_size=n, unique=True))
    fsids = draw(st.lists(st.integers(1, 2**32 - 1).map(str) | st.uuids().map(str), min_size=n, max_size=n,
                          unique=True))
    exports = []
    for i, (path, fsid) in enumerate(zip(names, fsids)):
        hosts = draw(st.lists(knfsd_host, min_size=1, max_size=3, unique_by=lambda h: ClientSpec(h).host))
        specs = tuple(ClientSpec(h, draw(_option_lists())) for h in hosts)
        try:
            exports.append(Export(path=path, export_id=100 + i, pseudo="/p" + str(i), knfsd=KnfsdOptions(fsid),
                                  clients=specs, access=draw(st.sampled_from(ACCESS_TYPES)),
                                  squash=draw(st.sampled_from(SQUASH_TYPES))))
        except ValidationError:
            continue
    if not exports:
        exports.append(Export(path="x", export_id=99, pseudo="/x", knfsd=KnfsdOptions("1"), clients=("*",)))
    return RegistryState(volume_uuid="u", server="knfsd", id_range=(1, 999), exports=tuple(exports))


def _dump_and_read(state: RegistryState, fmt: str):
    rel = lambda d: exports5.relpath_in(MP)(d) if exports5.relpath_in(MP)(d) is not None else _outside(d)  # noqa: E731
    if fmt == "json":
        return jsonform.read(jsonform.render(state.exports, MP), rel)[0]
    if fmt == "exports":
        return exports5.read(exports5.render(state.exports, MP, "header"), rel)
    return ganesha_blocks.read(ganesha_blocks.render(state.exports, MP, NODE, "header"), rel, NODE)


def _outside(directory: str) -> str:
    raise ValidationError("directory", f"{directory} is outside")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(registries(), st.sampled_from(["json", "exports", "ganesha"]))
def test_every_dump_reads_back_as_no_change(state, fmt):
    reading = _dump_and_read(state, fmt)
    assert not reading.refusals, reading.refusals
    out = converge(state, reading.descriptions, default_pseudo=lambda p: "/" + p, check=lambda e, s: None,
                   remove_missing=True)
    assert not out.conflicts and not out.changes, (out.changes[:1], out.conflicts[:1])
    assert out.state == state


@settings(max_examples=80, deadline=None)
@given(registries(), st.sampled_from(["json", "exports", "ganesha"]), st.data())
def test_one_changed_client_reads_back_as_exactly_that_change(state, fmt, data):
    """An edit of one client's squash in a dump: `apply --check` shows that client, nothing else."""
    exp = data.draw(st.sampled_from(state.exports))
    if exp.access == "None":
        return  # no client line to edit in an exports file
    i = data.draw(st.integers(0, len(exp.clients) - 1))
    client = exp.clients[i]
    squash = "all_squash" if client.squash(exp.squash) != "all_squash" else "no_root_squash"
    edited_client = ClientSpec(client.host, tuple(o for o in client.options if "squash" not in o) + (squash,))
    edited = state.with_export(exp.with_changes(clients=exp.clients[:i] + (edited_client,) + exp.clients[i + 1:]))
    out = converge(state, _dump_and_read(edited, fmt).descriptions, default_pseudo=lambda p: "/" + p,
                   check=lambda e, s: None, remove_missing=True)
    assert [(c.action, c.export.path) for c in out.changes] == [("update", exp.path)]
    (name, before, after), = out.changes[0].differences()
    assert name == "clients"
    new = out.state.find(exp.path)
    assert [c for c in new.clients if c.host != client.host] == [c for c in exp.clients if c.host != client.host]
    assert next(c for c in new.clients if c.host == client.host).squash(new.squash) == squash


def test_every_imported_client_says_rw_or_ro():
    """Registry schema 4 reads a bare spec as read-only (exports(5)); the readers never leave
    the access to that reading: every client they give says `rw` or `ro`, an export no client
    may reach included (its cap None denies them)."""
    denied = 'EXPORT { Export_Id = 3; Path = /srv/vol1/z; Pseudo = /z; CLIENT { Clients = 10.0.0.1; } }\n'
    readings = [exports5.read(TRICKY, REL), ganesha_blocks.read(GANESHA + denied, REL, NODE),
                cib.read(cib.parse(CIB), REL).reading]
    specs = [c for r in readings for d in r.descriptions for c in d.clients or ()]
    assert len(specs) > 10 and all(("rw" in c.options) != ("ro" in c.options) for c in specs), specs
    z = next(d for d in readings[1].descriptions if d.path == "z")
    assert z.access == "None" and clients(z) == ["10.0.0.1(ro,no_root_squash)"]


def test_fsals_module_options_namespaces_and_secrets_survive_every_dump():
    """MEM's module option (a MEM block beside the EXPORT block), NULL stacked on VFS, CEPH with
    a secret and its own namespace: each dump reads back as no change; no dump shows the
    secret, and `apply` keeps the registry's value for it."""
    def exp(path, i, fsal):
        return Export(path=path, export_id=200 + i, pseudo=f"/f{i}", knfsd=KnfsdOptions(str(50 + i)),
                      clients=("10.0.0.0/8(rw)",), ganesha=GaneshaOptions(parse_spec(fsal)))

    state = RegistryState(volume_uuid="u", server="ganesha", id_range=(1, 999), exports=(
        exp("/scratch", 0, "MEM(Inode_Size=65536)"), exp("b", 1, "NULL(VFS)"),
        exp("/cephfs/x", 2, "CEPH(user_id=nfs,secret_access_key=s3cr3t)")))
    for fmt in ("json", "exports", "ganesha"):
        text = {"json": lambda: jsonform.render(state.exports, MP),
                "exports": lambda: exports5.render(state.exports, MP),
                "ganesha": lambda: ganesha_blocks.render(state.exports, MP, NODE)}[fmt]()
        assert "s3cr3t" not in text and ("<redacted>" in text or fmt == "exports"), fmt
        reading = _dump_and_read(state, fmt)
        assert not reading.refusals, (fmt, reading.refusals)
        out = converge(state, reading.descriptions, default_pseudo=lambda p: "/" + p, check=lambda e, s: None,
                       remove_missing=True)
        assert not out.conflicts and not out.changes and out.state == state, (fmt, out.changes, out.conflicts)
    # a redacted secret for an export that has none: the value must be given
    new = from_json({"path": "/cephfs/y", "clients": ["*"], "ganesha": {"fsal": {"name": "CEPH", "options": [
        ["user_id", "nfs"], ["secret_access_key", "<redacted>"]]}}}, REL)
    out = converge(state, [new], default_pseudo=lambda p: p, check=lambda e, s: None, remove_missing=False)
    assert "registry has no value" in str(out.conflicts[0])
