"""bench/: the pure parts of the benchmark (report, extrapolation, lab rows), from figures
of the shape a run collects. The measurements themselves run in bench/run, not here."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import agents  # noqa: E402
import labs  # noqa: E402
import report  # noqa: E402


def lab_sample(outage: float | None, ok: bool = True) -> dict:
    return {"grace_period_s": 5, "failovers": [{"outage_s": outage, "service_gap_s": 0.9, "ok": ok,
                                                "grace_measured_s": 5.1, "writes": {"outage_s": 0.5}}]}


def figures() -> SimpleNamespace:
    r = {"knfsd": {1: {"start": 0.04, "monitor": 0.03, "stop": 0.03},
                   1000: {"start": 0.5, "monitor": 0.1, "stop": 0.4}},
         "upstream": {1: {"start_all_s": 0.02, "mon_one_ms": 20.0, "mon_all_s": 0.02, "stop_all_s": 0.02,
                          "extrapolated": False},
                      1000: {"start_all_s": 60.0, "mon_one_ms": 30.0, "mon_all_s": 30.0, "stop_all_s": 50.0,
                             "extrapolated": True, "n_done": 400}},
         "ganesha": {1000: {"start": 3.5, "stop": 1.0, "monitor": 0.2}},
         "floor": {"meta_ours": 0.009, "meta_up": 0.007, "meta_ra_exports": 0.01, "python_bare": 0.007,
                   "python_site": 0.02, "sh_bare": 0.001, "exportfs": 0.001},
         "lab": {"status": "measured", "samples": [lab_sample(0.4), lab_sample(0.6)]},
         "cluster_labs": {2: {"status": "not measured yet", "why": "not run (bench/run --no-lab)"}}}
    return SimpleNamespace(r=r, ns=[1, 1000], reps=5, notes=["a note"], load_at_start="0.50")


def test_report_states_each_target_from_the_figures():
    text = report.render(figures(), 300.0)
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert "| 300×" in rows["| knfsd monitor of a 1000-export volume ≥ 100× cheaper than upstream's 1000 monitors"]
    assert rows["| knfsd monitor of a 1000-export volume ≥ 100× cheaper than upstream's 1000 monitors"].endswith("**met** |")
    assert "(upstream extrapolated)" in rows["| knfsd start of 1000 exports ≥ 20× faster than upstream's 1000 starts"]
    assert rows["| 1000 exports live on Ganesha via D-Bus ≤ 10 s"].endswith("| 3.50 s | **met** |")
    assert rows["| per-call overhead at N = 1 within 1.5× of the shell agent (meta-data, classic monitor)"].endswith(
        "| 1.29× | **met** |")
    assert "direct: 0.60 s worst of 2 failovers" in rows["| lab failover outage ≤ grace + 2 s"]
    assert "≈50.00 s *(extrapolated from 400 done)*" in text
    for section in ("## 1. Monitor cost", "## 2. Start and stop", "## 3. Per-call floor", "## 4. Failover outage",
                    "### Under Pacemaker", "Not measured: not run (bench/run --no-lab)", "- a note"):
        assert section in text


def test_an_outage_over_grace_plus_2_is_not_met():
    f = figures()
    f.r["lab"]["samples"].append(lab_sample(7.5, ok=False))
    text = report.render(f, 60.0)
    row = next(line for line in text.splitlines() if line.startswith("| lab failover outage"))
    assert "7.50 s worst of 3" in row and row.endswith("**not met** |")
    assert labs.lab_summary(f.r["lab"]["samples"]) == (7.5, 5)
    assert labs.lab_summary([lab_sample(None)]) == (None, 5)


def test_extrapolation_through_the_full_and_the_capped_run():
    """Linear per-call cost in the table size: a run capped at n=400 of a cost a + b*k
    gives the N=1000 total that a full run would have had."""
    a, b = 0.02, 0.0001
    start = lambda n: a * n + b * n * (n - 1) / 2  # noqa: E731  k-th start sees k-1 exports
    mon = lambda n: n * (a + b * n)                # noqa: E731
    stop = lambda n: a * n + b * n * (n + 1) / 2   # noqa: E731
    r100 = {"start_all_s": start(100), "mon_all_s": mon(100), "stop_all_s": stop(100)}
    row = {"start_all_s": start(400), "mon_all_s": mon(400), "stop_all_s": stop(400)}
    got = agents.extrapolate(r100, row, 400, 1000)
    assert got == pytest.approx({"start_all_s": start(1000), "mon_all_s": mon(1000), "stop_all_s": stop(1000)})


def test_ganesha_against_restart_and_floor_and_the_scale_rows():
    f = figures()
    f.r["knfsd"][100] = {"start": 0.1, "monitor": 0.05, "stop": 0.1}
    f.r["ganesha"][1000].update(restart_start=4.0, restart_stop=0.2, floor_add=1.5, floor_remove=0.3)
    f.r["scale"] = {"n": 10000,
                    "knfsd": {"start": 2.0, "add": 0.5, "monitor": 1.2, "list": 0.4, "stop": 1.0,
                              "registry": 5 * 1024 * 1024},
                    "ganesha": {"start": 12.0, "add": 0.9, "monitor": 2.5, "list": 0.4, "stop": 3.0,
                                "registry": 5 * 1024 * 1024, "restart_start": 14.0, "restart_stop": 0.3}}
    text = report.render(f, 60.0)
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    row = rows["| Ganesha start of 1000 exports ≤ a ganesha.nfsd restart with the same 1000 EXPORT blocks"]
    assert "restart / ours = 1.1×" in row and row.endswith("**met** |")
    row = rows["| stretch: Ganesha start of 1000 within 2× the raw D-Bus floor (1000 AddExports, nothing else)"]
    assert "ours / floor = 2.3×" in row and row.endswith("**not met** |")
    # knfsd: 1.2 s / 10 000 = 120 µs per export against 0.1 s / 1000 = 100 µs
    row = rows["| knfsd: one monitor of a 10000-export volume stays O(N): per export ≤ 1.5× its cost at 1000"]
    assert "120 µs vs 100 µs per export (1.20×)" in row and row.endswith("**met** |")
    row = rows["| ganesha: one monitor of a 10000-export volume stays O(N): per export ≤ 1.5× its cost at 1000"]
    assert "(1.25×)" in row
    assert "## 5. One volume of 10000 exports" in text
    assert "| `volume start` | 2.00 s | 12.00 s | 14.00 s (restart / ours 1.2×) |" in text
    assert "| registry on disk (10000 exports) | 5120 KiB (5.0 MiB) | 5120 KiB (5.0 MiB) | |" in text
    assert "| knfsd | 30000 µs | 100 µs | 120 µs |" in text and "| ganesha | n/a | 200 µs | 250 µs |" in text
    assert "1.50 ms per AddExport" in text
    f.r["scale"]["ganesha"].update(restart_start=None, restart_cap=240)
    f.r["scale"]["knfsd"] = {"why": "exportfs failed"}
    text = report.render(f, 60.0)
    assert "| `volume start` | n/a | 12.00 s | > 240 s (not serving all 10000 yet; stopped there) |" in text
    assert "knfsd: not measured: exportfs failed" in text


def test_the_floor_target_reads_the_interleaved_monitor_and_names_each_step():
    """The per-call target takes the classic monitor timed call by call beside the shell
    agent's (not the ra_bench.sh runs, which alternate whole runs), and the report takes the
    monitor apart step by step, wall and CPU time, whether the target is met or not."""
    f = figures()
    f.r["classic"] = {"mon_one_ms": 40.0, "start_all_s": 0.04, "stop_all_s": 0.03}
    f.r["classic_up"] = {"mon_one_ms": 20.0, "start_all_s": 0.04, "stop_all_s": 0.03}
    f.r["floor"].update(mon_ours=0.027, mon_up=0.020)
    f.r["floor_cpu"] = {"meta_ours": 0.008, "meta_up": 0.008, "mon_ours": 0.026, "mon_up": 0.018}
    f.r["floor_reps"] = 20
    f.r["monitor_steps"] = [("`python -IS -c pass`", 0.007, 0.007), ("+ re and json: why", 0.013, 0.0125),
                            ("the monitor: + the sh wrapper", 0.027, 0.026)]
    text = report.render(f, 60.0)
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert rows["| per-call overhead at N = 1 within 1.5× of the shell agent (meta-data, classic monitor)"].endswith(
        "| 1.29×, 1.35× | **met** |")
    assert "(median of 20) | 27.0 ms | 20.0 ms | 1.35× |" in text
    assert rows["| CPU time of classic-mode `monitor` (user + system, children included; mean of the same calls)"].endswith(
        "| 26.0 ms | 18.0 ms | 1.44× |")
    assert "| + re and json: why | 13.0 ms | +6.0 ms | 12.5 ms | +5.5 ms |" in text
    assert "### Where the per-call time goes" in text and "### What stands in the way" not in text
    f.r["floor"].update(mon_ours=0.031)
    assert "### What stands in the way of 1.5×" in report.render(f, 60.0)


def test_the_two_ganesha_modes_side_by_side():
    """Section 6 and its target: per failover kind, each mode's outage and how long a volume
    that did not move (on a node that took one over) got NFS4ERR_GRACE, from the two runs."""
    def sample(graces: dict) -> dict:
        return {"grace_period_s": 5, "failovers": [
            {"kind": k, "outage_s": 2.0, "ok": True, "volumes": {"vol1": {}},
             "not_moved": {"vol2": {"on_receiving_node": True, "new_opens": {"grace_s": g}},
                           "vol3": {"on_receiving_node": False, "new_opens": {"grace_s": 0.0}}}}
            for k, g in graces.items()]}
    f = figures()
    f.r["ganesha_modes"] = {"shared": {"status": "measured", "sample": sample({"move": 6.1, "kill": 5.2})},
                            "instance": {"status": "measured", "sample": sample({"move": 0.0, "kill": 0.0})}}
    f.r["instance_cost"] = {"status": "measured", "one": ["| exports | ... |", "|---|", "| 1 | ... |"],
                            "many": ["| instances | ... |"]}
    assert labs.mode_rows(f.r["ganesha_modes"])[0] == {
        "kind": "move", "shared": {"outage": 2.0, "ok": True, "grace": 6.1},
        "instance": {"outage": 2.0, "ok": True, "grace": 0.0}}
    text = report.render(f, 60.0)
    target = next(line for line in text.splitlines() if line.startswith("| a take-over stalls no volume"))
    assert "instance: 0.00 s worst of 2 failovers; shared daemon: 5.20 s to 6.10 s" in target
    assert target.endswith("**met** |")
    assert "| move | 2.00 s | 2.00 s | 6.10 s | 0.00 s | passed / passed |" in text
    assert "## 6. One Ganesha per node or one per volume" in text and "| 1 | ... |" in text
    f.r["ganesha_modes"]["instance"]["sample"] = sample({"move": 0.0, "kill": 0.4})
    target = next(line for line in report.render(f, 60.0).splitlines() if line.startswith("| a take-over stalls"))
    assert target.endswith("**not met** |")
    f.r["ganesha_modes"]["instance"] = {"status": "not measured yet", "why": "not run (bench/run --no-lab)"}
    text = report.render(f, 60.0)
    assert "instance mode not measured: not run (bench/run --no-lab)" in text
    assert next(line for line in text.splitlines() if line.startswith("| a take-over stalls")).endswith("| n/a |")


def test_the_import_profile_names_the_costly_imports_and_the_packages_modules():
    """Section 3's import table (report_floor.import_table): the interpreter's own start-up
    modules are not listed as costs, what site or a ganesha_ha module imports is, with its importer."""
    f = figures()
    f.r["imports"] = {"monitor": ({
        "io": {"cum": 900, "parent": None, "depth": 0},                      # the interpreter's own
        "json": {"cum": 1200, "parent": None, "depth": 0},                   # imported at run time
        "re": {"cum": 2500, "parent": "ganesha_ha.textcheck", "depth": 1},
        "ganesha_ha": {"cum": 8000, "parent": None, "depth": 0},
        "ganesha_ha.ocf": {"cum": 5000, "parent": "ganesha_ha", "depth": 1}}, 15000)}
    row = next(line for line in report.render(f, 60.0).splitlines() if line.startswith("| monitor |"))
    assert row == ("| monitor | 15.0 ms | ganesha_ha 8.0, re 2.5 (ganesha_ha.textcheck), json 1.2 (at run time) "
                   "| ocf |")
