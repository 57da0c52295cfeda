"""The cluster lab's N-node layout (layout.py), its failover timelines (timeline.py) and their
picture (plot.py): pure steps, no lab, no root. The end-to-end run that records real
timelines is tests/cluster/test_cluster_lab.py (the three-node one behind --long)."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from ganesha_ha.lab import layout
from ganesha_ha.lab.labclient import Probe
from ganesha_ha.lab.recipe import Recipe, VolumeRecipe
from ganesha_ha.lab.timeline import GraceSampler, build, cluster_actions, grace_spans, log_time


# ---- layout -------------------------------------------------------------------------------

def test_two_nodes_keep_the_seed_scenario_and_three_get_two_volumes_each():
    assert layout.volume_plan(2) == (("vol1", "node-a"), ("vol2", "node-b"))
    plan = layout.volume_plan(3)
    assert [v for v, _ in plan] == [f"vol{i}" for i in range(1, 7)]
    assert {n: sum(p == n for _, p in plan) for n in layout.node_names(3)} == {"node-a": 2, "node-b": 2, "node-c": 2}
    assert layout.capacity(2) is None and layout.capacity(3) == 3
    # corosync.conf(5): token + (nodes - 2) * 650 ms from three nodes on, then consensus 1.2x
    assert [layout.loss_detect_s(n) for n in (2, 3, 9)] == [2.2, 3.63, 12.21]
    with pytest.raises(ValueError):
        layout.node_names(layout.MAX_NODES + 1)
    with pytest.raises(ValueError):
        layout.node_names(1)


def test_export_id_ranges_are_disjoint_and_16_bit_for_every_volume_the_lab_can_have():
    n = 2 * layout.MAX_NODES
    ranges = [layout.id_range(k) for k in range(1, n + 1)]
    for (lo, hi), (lo2, _) in zip(ranges, ranges[1:]):
        assert 1 <= lo <= hi < lo2
    assert ranges[-1][1] <= 65535
    with pytest.raises(ValueError):
        layout.id_range(66)


def test_capacity_renders_utilization_and_balanced_placement_in_both_recipes():
    vols = tuple(VolumeRecipe(name=v, device=f"/dev/loop{i}", mountpoint=f"/srv/{v}", ip=f"192.0.2.{10 + i}",
                              cidr_netmask=24, preferred_node=p) for i, (v, p) in enumerate(layout.volume_plan(3)))
    r = Recipe(server="ganesha", volumes=vols, capacity=3, nodes=layout.node_names(3), fencing=False)
    crm = r.crmsh()
    assert 'ip="192.0.2.10" utilization volumes=1 op monitor' in crm
    assert "node node-c utilization volumes=3\n" in crm
    assert crm.endswith("stonith-enabled=false placement-strategy=balanced\n")
    pcs = r.pcs()
    assert "pcs resource utilization vol6-exports volumes=1\n" in pcs
    assert "pcs node utilization node-a volumes=3\n" in pcs
    assert "placement-strategy" not in Recipe(server="ganesha", volumes=vols).crmsh() + \
        Recipe(server="ganesha", volumes=vols).pcs()


# ---- timeline -----------------------------------------------------------------------------

WALL0 = dt.datetime(2026, 11, 30, 6, 45, 0).timestamp()


def line(offset: float, text: str) -> str:
    stamp = dt.datetime.fromtimestamp(WALL0 + offset).strftime("%b %d %H:%M:%S.%f")[:-3]
    return f"{stamp} node-x pacemaker-controld  [42] (log_executor_event) notice: {text}"


def test_log_time_reads_pacemakers_stamp_without_a_year():
    assert log_time(line(1.25, "x"), 2026) == pytest.approx(WALL0 + 1.25, abs=1e-3)
    assert log_time("garbage", 2026) is None


def test_cluster_actions_are_the_volume_stops_starts_ips_and_lost_nodes_in_time_order():
    lines = [("node-b", line(2.0, "Result of start operation for vol1-exports on node-b: ok | CIB update 3")),
             ("node-a", line(1.0, "Result of stop operation for vol1-exports on node-a: ok | x")),
             ("node-b", line(2.5, "Result of start operation for vol1-ip on node-b: ok | x")),
             ("node-b", line(2.6, "Result of stop operation for vol1-ip on node-b: ok | x")),
             ("node-b", line(0.5, "Result of monitor operation for vol1-exports on node-a: error")),
             ("node-b", line(0.8, "Node node-a state is now lost | nodeid=1")),
             ("node-c", line(0.9, "Node node-a state is now lost | nodeid=1")),
             ("node-c", line(3.0, "Result of start operation for vol2-fs on node-c: ok"))]
    acts = cluster_actions(lines, WALL0)
    assert [(a["action"], a["volume"], a["node"]) for a in acts] == [
        ("node lost", None, "node-a"), ("stop", "vol1", "node-a"), ("start", "vol1", "node-b"),
        ("ip up", "vol1", "node-b")]
    assert [a["t"] for a in acts] == pytest.approx([0.8, 1.0, 2.0, 2.5], abs=1e-3)


def test_grace_spans_from_samples():
    assert grace_spans([(0, False), (1, True), (2, True), (3, False), (4, True)]) == [(1, 3), (4, 4)]
    assert grace_spans([(0, False)]) == []


def test_grace_sampler_samples_each_node_and_skips_silent_ones():
    from ganesha_ha.lab.procs import wait_until

    state = {"node-a": iter([True] * 2 + [False] * 100), "node-b": iter([None] * 100)}
    asked = {"node-a": 0, "node-b": 0}

    def probe(node: str) -> bool | None:
        asked[node] += 1
        return next(state[node])
    s = GraceSampler(["node-a", "node-b"], probe, interval=0.01).start()
    # until node-a was asked past its grace (a fixed 0.1 s was no sample at all when the
    # sampler's thread did not run that soon on a loaded machine)
    assert wait_until(lambda: asked["node-a"] >= 4, 10)
    spans = s.stop()
    assert list(spans) == ["node-a"] and len(spans["node-a"]) == 1


def test_build_puts_every_volume_and_the_cluster_on_the_triggers_clock():
    t0 = 1000.0
    reads = [Probe(t0 - 5, True), Probe(t0 + 0.1, True), Probe(t0 + 0.5, False, "TimeoutError"), Probe(t0 + 3, True)]
    writes = [Probe(t0 + 0.2, True), Probe(t0 + 0.6, False, "NFS4ERR_GRACE", 10013)]
    tl = build(t0=t0, wall0=WALL0, t_end=t0 + 10, before=1.0,
               volumes={"vol1": {"moved": True, "from": "node-a", "to": "node-b", "reads": reads, "writes": writes},
                        "vol3": {"moved": False, "from": "node-b", "to": "node-b", "reads": [], "writes": writes}},
               log_lines=[("node-b", line(2.0, "Result of start operation for vol1-exports on node-b: ok"))],
               grace={"node-b": [(t0 + 2.1, t0 + 7.0)], "node-c": [(t0 - 50, t0 - 40)]})
    assert tl["span"] == [-1.0, 10.0]
    assert tl["volumes"]["vol1"]["reads"] == [[0.1, True, ""], [0.5, False, "TimeoutError"], [3.0, True, ""]]
    assert tl["volumes"]["vol3"]["moved"] is False and len(tl["volumes"]["vol3"]["writes"]) == 2
    assert tl["actions"] == [{"t": 2.0, "action": "start", "volume": "vol1", "node": "node-b", "ok": True}]
    assert tl["grace"] == [{"node": "node-b", "start": 2.1, "end": 7.0}]


# ---- plot ---------------------------------------------------------------------------------

def report_with_timelines() -> dict:
    def fo(n, kind, volumes, actions, grace):
        return {"n": n, "kind": kind, "from": "node-a", "to": "node-b, node-c", "ok": True, "outage_s": 3.5,
                "timeline": {"span": [-1.0, 9.0], "volumes": volumes, "actions": actions, "grace": grace}}
    vols = {"vol1": {"moved": True, "from": "node-a", "to": "node-b",
                     "reads": [[0.1, True, ""], [0.6, False, "TimeoutError"], [3.1, True, ""]],
                     "writes": [[0.2, True, ""], [0.7, False, "TimeoutError"]]},
            "vol2": {"moved": True, "from": "node-a", "to": "node-c", "reads": [[0.3, True, ""]], "writes": []},
            "vol3": {"moved": False, "from": "node-b", "to": "node-b", "reads": [], "writes": [[0.4, True, ""]]}}
    acts = [{"t": 0.9, "action": "node lost", "volume": None, "node": "node-a", "ok": True},
            {"t": 1.5, "action": "start", "volume": "vol1", "node": "node-b", "ok": True},
            {"t": 1.8, "action": "ip up", "volume": "vol1", "node": "node-b", "ok": True},
            {"t": 1.6, "action": "stop", "volume": "vol2", "node": "node-a", "ok": False}]
    return {"run_id": "k1234", "server": "ganesha", "grace_period_s": 5, "nodes": ["node-a", "node-b", "node-c"],
            "failovers": [fo(1, "loss", vols, acts, [{"node": "node-b", "start": 1.6, "end": 6.6}]),
                          {"n": 2, "kind": "failback", "ok": True},    # recorded without --plot: no panel
                          fo(3, "kill", {"vol1": vols["vol1"]}, [], [])]}


def test_the_figure_has_a_panel_per_failover_and_every_event_as_an_artist():
    pytest.importorskip("matplotlib")
    from ganesha_ha.lab.plot import figure

    fig = figure(report_with_timelines())
    loss, kill = fig.axes[:2]
    assert len([a for a in fig.axes if a.get_title(loc="left")]) == 2
    assert loss.get_title(loc="left").startswith("1. loss: node-a") and "worst outage 3.50 s" in loss.get_title(loc="left")
    by_gid = {c.get_gid(): c for c in loss.collections}
    assert len(by_gid["reads-ok"].get_offsets()) == 3 and len(by_gid["reads-failed"].get_offsets()) == 1
    assert len(by_gid["writes-ok"].get_offsets()) == 2 and len(by_gid["writes-failed"].get_offsets()) == 1
    # the lanes: moved volumes first (vol1 on top), each labelled with where it went
    lanes = sorted(((y, t.get_text()) for y, t in zip(loss.get_yticks(), loss.get_yticklabels())), reverse=True)
    assert [text for _, text in lanes] == [
        "vol1: node-a \u2192 node-b", "vol2: node-a \u2192 node-c", "vol3: stays on node-b"]
    ys = {round(y, 2) for _, y in by_gid["writes-ok"].get_offsets()}
    assert ys == {2 - 0.15, 0 - 0.15}           # vol1's lane (top) and vol3's (bottom)
    assert {"action:start:vol1", "action:ip up:vol1", "action:stop:vol2"} <= set(by_gid)
    assert (by_gid["action:start:vol1"].get_segments()[0][:, 0] == 1.5).all()
    lines = {ln.get_gid(): ln for ln in loss.get_lines()}
    assert lines["action:node lost:node-a"].get_xdata()[0] == 0.9 and lines["trigger"].get_xdata()[0] == 0
    texts = [t.get_text() for t in loss.texts]
    assert {"start node-b", "IP up node-b", "stop FAILED", " node-a lost", " loss"} <= set(texts)
    (grace,) = [p for p in loss.patches if p.get_gid() == "grace:node-b"]
    xs = grace.get_xy()[:, 0]
    assert (min(xs), max(xs)) == (1.6, 6.6)
    assert not [p for p in kill.patches if (p.get_gid() or "").startswith("grace")]
    assert "ganesha-ha lab k1234: 3-node cluster" in fig._suptitle.get_text()


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from ganesha_ha.lab.plot import save_plot

    save_plot(report_with_timelines(), str(tmp_path / "t.png"))
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_report_without_timelines_is_refused():
    pytest.importorskip("matplotlib")
    from ganesha_ha.lab.plot import figure

    with pytest.raises(ValueError, match="no failover with a timeline"):
        figure({"failovers": [{"n": 1, "kind": "move"}]})


def run_py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_neither_the_cli_nor_the_lab_parser_imports_matplotlib():
    cp = run_py("import sys; from ganesha_ha.lab import cli, cluster_lab; cli.build_parser();"
                "import ganesha_ha.cli, ganesha_ha.agent; print('matplotlib' in sys.modules)")
    assert cp.stdout.strip() == "False", cp.stderr


def test_without_matplotlib_plot_says_how_to_install_it():
    cp = run_py("import sys; sys.modules['matplotlib'] = None\n"
                "from ganesha_ha.lab.cli import _plot_preflight; print(_plot_preflight('/tmp/x.png'))")
    assert cp.returncode == 0, cp.stderr
    assert "needs matplotlib" in cp.stdout and "python3-matplotlib" in cp.stdout and "ganesha-ha[plot]" in cp.stdout


@pytest.mark.parametrize("argv,message", [
    (["--nodes", "10"], "expected 2..9"), (["--nodes", "1"], "expected 2..9"), (["--nodes", "x"], "whole number"),
    (["--direct", "--nodes", "3"], "for the cluster lab"), (["--direct", "--plot", "p.png"], "for the cluster lab"),
    (["--server", "knfsd", "--plot", "p.png"], "needs --server ganesha"),
])
def test_lab_refuses_node_counts_and_plots_it_cannot_run(argv, message):
    """Exit code 2 and one line, before anything is built (no root needed to see it)."""
    cp = run_py(f"import sys; from ganesha_ha.lab.cli import main; sys.exit(main({argv!r}))")
    assert cp.returncode == 2 and message in cp.stderr, cp.stderr


def test_with_an_instance_per_volume_the_figure_says_whose_grace_it_is():
    pytest.importorskip("matplotlib")
    from ganesha_ha.lab.plot import figure

    report = {**report_with_timelines(), "ganesha_mode": "instance"}
    fig = figure(report)
    assert "(a Ganesha instance per volume)" in fig._suptitle.get_text()
    (grace,) = [p for p in fig.axes[0].patches if p.get_gid() == "grace:node-b"]
    assert grace.get_label() == "a volume's own instance in grace on node-b"
