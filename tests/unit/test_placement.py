"""placement.py: where a volume goes when an FSAL module one of its exports needs is missing on
this node (another node that has every module, or here with that export left out), and the
published value each node's modules travel in (node_attrs.encode_names/decode_names).

The decision over node sets is property-tested, including Pacemaker's side of it: a node that
answers OCF_ERR_INSTALLED is banned, and Pacemaker then starts the volume on any node it still
may use. The old answer (5 whenever a module was missing here) stopped the volume everywhere
when every node lacked one; the property is that this never happens now and that the volume
ends on a node with every module whenever one published them.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fake_backend import FakeBackend
from ganesha_ha.errors import ApplyError, InstalledNowhereError, ModuleMissingError
from ganesha_ha.execute import ExportFailure
from ganesha_ha.model import Export, KnfsdOptions
from ganesha_ha.node_attrs import decode_names, encode_names, publishable
from ganesha_ha.placement import capable, place, recast

MODULES = ("VFS", "MEM", "CEPH", "GLUSTER", "NULL", "PROXY_V4", "GPFS", "RGW")
modules = st.frozensets(st.sampled_from(MODULES))
node_names = st.sampled_from(["n1", "n2", "n3", "n4", "n5", "node-a", "node-b"])


def export(i: int) -> Export:
    return Export(path=f"e{i}", export_id=100 + i, knfsd=KnfsdOptions(str(i + 1)), pseudo=f"/e{i}", clients=("*",))


def missing(i: int, module: str) -> ExportFailure:
    """Export e<i> failed because `module` is missing here, as ganesha_plugins.require_fsal says it."""
    package = f"Debian package nfs-ganesha-{module.lower()}"
    err = ModuleMissingError(module, f"FSAL {module} is not installed here ({package})",
                             f"/plugins/libfsal{module.lower()}.so is missing", package)
    return ExportFailure(export(i), "apply", err, "ganesha")


# ---- the published value ---------------------------------------------------------------------

@given(modules)
def test_a_published_set_of_modules_reads_back_the_same(names):
    value = encode_names(names)
    assert publishable(value) and decode_names(value) == names


def test_published_values_are_sorted_upper_case_and_garbage_is_unreadable():
    assert encode_names(["vfs", "MEM", "proxy_v4"]) == "MEM,PROXY_V4,VFS"
    assert encode_names([]) == "-" and decode_names("-") == frozenset()
    for bad in ("", "VFS,", "vfs", "VFS MEM", "VFS;MEM", "{\"VFS\"}"):
        assert decode_names(bad) is None, bad


# ---- the decision ------------------------------------------------------------------------------

@given(st.lists(modules, max_size=5), st.dictionaries(node_names, st.one_of(st.none(), modules), max_size=6))
def test_capable_nodes_are_exactly_those_with_every_module(needs, others):
    wanted = frozenset().union(*needs)
    got = capable(needs, others)
    assert got == sorted(got)
    assert set(got) == {n for n, have in others.items() if have is not None and wanted <= have}


@given(st.lists(modules, min_size=1, max_size=5),
       st.dictionaries(node_names, st.one_of(st.none(), modules), max_size=6), st.data())
def test_recast_moves_only_towards_a_node_with_everything_and_otherwise_leaves_the_export_out(needs, others, data):
    missing_here = data.draw(st.sampled_from(sorted(frozenset().union(*needs)) or ["MEM"]))
    failures = [missing(0, missing_here), ExportFailure(export(1), "apply", ApplyError("refused"), "ganesha")]
    out = recast(failures, needs, others)
    assert [f.export for f in out] == [f.export for f in failures]
    assert out[1] is failures[1], "a failure that is not a missing module is kept as it is"
    nodes = capable(needs, others)
    if nodes:
        assert out[0].node_local and isinstance(out[0].error, ModuleMissingError)
        assert out[0].error.module == missing_here and nodes[0] in str(out[0].error)
    else:
        assert not out[0].node_local and isinstance(out[0].error, InstalledNowhereError)
        assert f"FSAL {missing_here} " in str(out[0].error) and "left out" in str(out[0].error)
        assert "nfs-ganesha-" in str(out[0].error), "the package is named"


def test_unknown_nodes_never_take_the_volume():
    """A node that never published (absent), or whose value cannot be read (None), or no
    cluster at all (None): the export is left out, the volume stays (conservative)."""
    needs = [frozenset({"VFS"}), frozenset({"MEM"})]
    for others in (None, {}, {"n2": None}):
        [f] = recast([missing(1, "MEM")], needs, others)
        assert isinstance(f.error, InstalledNowhereError) and not f.node_local


def test_the_reasons_say_who_has_what():
    needs = [frozenset({"VFS"}), frozenset({"MEM"}), frozenset({"CEPH"})]
    [moved] = recast([missing(1, "MEM")], needs, {"n2": frozenset({"VFS", "MEM", "CEPH"}), "n3": frozenset({"VFS"})})
    assert str(moved.error) == ("FSAL MEM is not installed here, n2 has every FSAL the volume needs (Debian package "
                                "nfs-ganesha-mem): /plugins/libfsalmem.so is missing")
    [spread] = recast([missing(1, "MEM")], needs, {"n2": frozenset({"VFS", "MEM"}), "n3": frozenset({"VFS", "CEPH"})})
    assert str(spread.error) == ("FSAL MEM is missing here and n2, which has it, lacks another FSAL the volume needs "
                                 "(CEPH, MEM, VFS; Debian package nfs-ganesha-mem): left out; here "
                                 "/plugins/libfsalmem.so is missing")
    [nowhere] = recast([missing(1, "MEM")], needs, {"n2": frozenset({"VFS"}), "n3": frozenset({"VFS", "CEPH"})})
    assert str(nowhere.error).startswith("FSAL MEM is installed on no node (n2, n3 lack it too; Debian package "
                                         "nfs-ganesha-mem): left out")
    [alone] = recast([missing(1, "MEM")], needs, None)
    assert str(alone.error).startswith("FSAL MEM is missing here and no other node published its FSALs "
                                       "(Debian package nfs-ganesha-mem): left out")


# ---- the decision over a cluster, with Pacemaker's bans --------------------------------------------

@st.composite
def clusters(draw):
    """(every node's loadable modules, each export's needs, the nodes in standby: published,
    but Pacemaker starts nothing there; at least one node is not)."""
    names = draw(st.lists(node_names, min_size=1, max_size=5, unique=True))
    have = {n: draw(modules) for n in names}
    needs = draw(st.lists(modules, min_size=1, max_size=4))
    standby = set(draw(st.lists(st.sampled_from(names), max_size=len(names) - 1, unique=True)))
    return have, needs, standby


def verdict(node: str, have: dict[str, frozenset[str]], needs: list[frozenset[str]],
            published: set[str], usable: set[str] | None = None) -> str:
    """What the agent answers on `node`: 'ok' (every module here), 'move' (5), 'degraded'
    (served without the exports whose modules are missing here)."""
    absent = [i for i, n in enumerate(needs) if not n <= have[node]]
    if not absent:
        return "ok"
    failures = [missing(i, sorted(needs[i] - have[node])[0]) for i in absent]
    others = {n: have[n] for n in published if n != node}
    out = recast(failures, needs, others, usable)
    return "move" if any(f.node_local for f in out) else "degraded"


@settings(max_examples=300)
@given(clusters(), st.data())
def test_a_module_missing_somewhere_never_stops_the_volume_everywhere(cluster, data):
    """Pacemaker starts the volume on any node it may still use (not in standby, not banned);
    a 5 bans that node. Every node has published (each was probed; a node in standby keeps
    its value), and the agent asks the scheduler where the volume may start
    (pacemaker_nodes.py). The volume always ends running (served whole or degraded), and
    whole whenever a node it may use has every module."""
    have, needs, standby = cluster
    published = set(have)
    banned: set[str] = set()
    node = data.draw(st.sampled_from(sorted(set(have) - standby)))
    for _ in range(len(have) + 1):
        answer = verdict(node, have, needs, published, set(have) - standby - banned)
        if answer != "move":
            break
        banned.add(node)
        allowed = sorted(set(have) - banned - standby)
        assert allowed, f"stopped everywhere: {have} {needs} standby {standby}"
        node = data.draw(st.sampled_from(allowed))
    else:
        raise AssertionError("the volume kept moving")
    wanted = frozenset().union(*needs)
    whole = [n for n in set(have) - standby if wanted <= have[n]]
    assert (answer == "ok") == bool(whole) and (node in whole or not whole)


@given(clusters(), st.data())
def test_nodes_that_never_published_are_never_moved_to(cluster, data):
    have, needs, _ = cluster
    published = set(data.draw(st.lists(st.sampled_from(sorted(have)), unique=True)))
    for node in have:
        if verdict(node, have, needs, published) == "move":
            wanted = frozenset().union(*needs)
            assert any(wanted <= have[n] for n in published if n != node)


def test_a_node_pacemaker_may_not_use_is_no_place_to_move_to():
    """n2 has every module but is in standby (or banned, or offline): the export is left out
    here, saying so, instead of a 5 that would leave the volume nowhere to run."""
    needs = [frozenset({"VFS"}), frozenset({"MEM"})]
    others = {"n2": frozenset({"VFS", "MEM"})}
    [moved] = recast([missing(1, "MEM")], needs, others, {"n2", "n3"})
    assert moved.node_local
    [kept] = recast([missing(1, "MEM")], needs, others, set())
    assert not kept.node_local and str(kept.error).startswith(
        "FSAL MEM is missing here; n2 has every FSAL the volume needs, but Pacemaker may not start the volume "
        "there (standby, offline or banned): left out")
    fake = FakeBackend()
    fake.others, fake.barred = others, {"n2"}
    [out] = place(fake, [export(0), export(1)], [missing(1, "MEM")])
    assert isinstance(out.error, InstalledNowhereError)


# ---- where Pacemaker may start the volume (crm_simulate's XML, as Pacemaker 2.1.5 writes it) ----------

SIMULATE = """<pacemaker-result api-version="2.25" request="crm_simulate -L -s --output-as=xml">
  <cluster_status>
    <nodes>
      <node name="n1" id="1" online="true" standby="true" standby_onfail="false" maintenance="false" pending="false"
            unclean="false" health="green" shutdown="false" expected_up="true" is_dc="true" type="member"/>
      <node name="n2" id="2" online="true" standby="false" standby_onfail="false" maintenance="false" pending="false"
            unclean="false" health="green" shutdown="false" expected_up="true" is_dc="false" type="member"/>
      <node name="n3" id="3" online="true" standby="false" maintenance="false" pending="false" unclean="false"
            shutdown="false" type="member"/>
      <node name="n4" id="4" online="false" standby="false" maintenance="false" pending="false" unclean="false"
            shutdown="false" type="member"/>
      <node name="n5" id="5" online="true" standby="false" maintenance="true" pending="false" unclean="false"
            shutdown="false" type="member"/>
    </nodes>
  </cluster_status>
  <allocations>
    <node_weight function="pcmk__primitive_assign" node="n1" score="0" id="vol1"/>
    <node_weight function="pcmk__primitive_assign" node="n2" score="-INFINITY" id="vol1"/>
    <node_weight function="pcmk__primitive_assign" node="n3" score="100" id="vol1"/>
    <node_weight function="pcmk__primitive_assign" node="n3" score="-INFINITY" id="other"/>
  </allocations>
  <status code="0" message="OK"/>
</pacemaker-result>"""


# a group g (d1, then d2) placed on n1 whose member d2 is banned from n2 (`crm_resource --ban`), as
# Pacemaker 2.1.5 scored it: d2's own score is -INFINITY on n2 in any case (colocated with d1)
GROUP = """<pacemaker-result api-version="2.25" request="crm_simulate -L -s --output-as=xml">
  <cluster_status>
    <nodes>
      <node name="n1" id="1" online="true" standby="false" maintenance="false" pending="false" unclean="false"
            shutdown="false" type="member"/>
      <node name="n2" id="2" online="true" standby="false" maintenance="false" pending="false" unclean="false"
            shutdown="false" type="member"/>
    </nodes>
    <resources>
      <group id="g" number_resources="2" managed="true" disabled="false">
        <resource id="d1" resource_agent="ocf:heartbeat:Dummy" role="Started" active="true" nodes_running_on="1"/>
        <resource id="d2" resource_agent="ocf:heartbeat:Dummy" role="Started" active="true" nodes_running_on="1"/>
      </group>
    </resources>
  </cluster_status>
  <allocations>
    <node_weight function="pcmk__group_assign" node="n1" score="0" id="g"/>
    <node_weight function="pcmk__group_assign" node="n2" score="0" id="g"/>
    <node_weight function="pcmk__group_assign" node="n1" score="0" id="d1"/>
    <node_weight function="pcmk__group_assign" node="n2" score="0" id="d1"/>
    <node_weight function="pcmk__group_assign" node="n1" score="0" id="d2"/>
    <node_weight function="pcmk__group_assign" node="n2" score="{d2_n2}" id="d2"/>
    <node_weight function="pcmk__primitive_assign" node="n1" score="0" id="d1"/>
    <node_weight function="pcmk__primitive_assign" node="n2" score="-INFINITY" id="d1"/>
    <node_weight function="pcmk__primitive_assign" node="n1" score="0" id="d2"/>
    <node_weight function="pcmk__primitive_assign" node="n2" score="-INFINITY" id="d2"/>
  </allocations>
  <status code="0" message="OK"/>
</pacemaker-result>"""


def test_where_pacemaker_may_start_a_member_of_a_group():
    from ganesha_ha.pacemaker_nodes import parse_simulate

    assert parse_simulate(GROUP.replace("{d2_n2}", "0"), "d2") == {"n1", "n2"}, "free: both"
    assert parse_simulate(GROUP.replace("{d2_n2}", "-INFINITY"), "d2") == {"n1"}, "the member banned from n2"
    banned_group = GROUP.replace("{d2_n2}", "0").replace('node="n2" score="0" id="g"',
                                                         'node="n2" score="-INFINITY" id="g"')
    assert parse_simulate(banned_group, "d2") == {"n1"}, "the group banned from n2"


def test_where_pacemaker_may_start_a_resource():
    from ganesha_ha.pacemaker_nodes import parse_simulate

    # n1 standby, n2 banned (score -INFINITY), n4 offline, n5 in maintenance
    assert parse_simulate(SIMULATE, "vol1") == {"n3"}
    assert parse_simulate(SIMULATE, "other") == {"n2"}
    assert parse_simulate(SIMULATE, "unknown") == {"n2", "n3"}     # no score for it: by the nodes' state
    assert parse_simulate("not xml", "vol1") is None and parse_simulate("<pacemaker-result/>", "vol1") is None


# ---- the glue: who is asked, and when --------------------------------------------------------

def test_place_asks_the_other_nodes_only_when_a_module_is_missing_here():
    fake = FakeBackend()
    refused = [ExportFailure(export(1), "apply", ApplyError("refused"), "ganesha")]
    assert place(fake, [export(0), export(1)], refused) == refused and fake.others_asked == 0
    assert place(fake, [export(0)], []) == [] and fake.others_asked == 0
    [out] = place(fake, [export(0), export(1)], [missing(1, "MEM")])
    assert fake.others_asked == 1 and isinstance(out.error, InstalledNowhereError)
