"""Driver of bench/run (read bench/run's header for what is measured and how to run it).

Runs as root with the project's venv Python. Benchmarks, not tests: nothing here asserts a
timing; targets are reported. The work is split by job:

    env.py           the private environment (namespace, binds, volumes, agent calls), `Bench`
    agents.py        our agent vs ocf:heartbeat:exportfs: volume mode, upstream, classic, floor, imports
    ganesha_dbus.py  Ganesha exports live over D-Bus vs a ganesha.nfsd restart with N blocks
    scale.py         one volume of 10 000 exports, knfsd and Ganesha
    labs.py          the failover outage of the direct and the cluster lab (both Ganesha modes)
    instance_cost.py what one Ganesha instance per volume costs
    report.py        RESULTS.md from the figures (report_floor.py: section 3; report_modes.py: section 6;
                     fmt.py: how a figure is written)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import agents
import ganesha_dbus
import instance_cost
import labs
import report
import scale
from env import ROOT, Bench, log


def main() -> int:
    ap = argparse.ArgumentParser(description="ganesha-ha benchmarks (see bench/run)")
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--cap", type=int, default=120)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-lab", action="store_true")
    ap.add_argument("--lab-runs", type=int, default=2)
    ap.add_argument("--lab-timeout", type=int, default=180)
    ap.add_argument("--lab-nodes", type=lambda t: [int(x) for x in t.split(",")], default=[2],
                    help="node counts of the cluster lab, e.g. 2,3 (default 2)")
    ap.add_argument("--skip-restart", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", default=None, help="also write the raw figures to this file")
    ap.add_argument("--only", default="", help="comma list of sections (debugging): "
                                               "knfsd,ganesha,scale,upstream,classic,floor,imports,instance,lab")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("must run as root", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    b = Bench(args)
    only = set(filter(None, args.only.split(",")))
    want = lambda s: not only or s in only  # noqa: E731
    try:
        b.setup()
        if want("ganesha"):
            ganesha_dbus.bench_ganesha(b)
        if want("knfsd"):
            agents.bench_knfsd(b)
        if want("scale"):
            scale.bench_scale(b)
        if want("floor"):
            agents.bench_floor(b)
        if want("imports"):
            agents.bench_imports(b)
        if b.ganesha_up():
            b.gdaemon.stop()
        if want("classic"):
            agents.bench_classic(b)
        if want("upstream"):
            agents.bench_upstream(b)
        if want("instance"):
            log("a Ganesha instance per volume: start, monitor, stop, memory")
            instance_cost.bench(b)
        if want("lab"):
            b.unmount_volumes()
            labs.bench_lab(b)
            for nodes in args.lab_nodes:
                labs.bench_cluster_lab(b, nodes)
            labs.bench_modes(b)
        text = report.render(b, time.monotonic() - t0)
    finally:
        b.cleanup()
    print(text)
    if args.json:
        import json
        Path(args.json).write_text(json.dumps(b.r, indent=1, default=str))
    out = Path(args.out) if args.out else (None if (args.quick or only) else ROOT / "bench" / "RESULTS.md")
    if out is not None:
        out.write_text(text)
        log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
