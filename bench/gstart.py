"""Ganesha start of N exports over D-Bus vs a ganesha.nfsd restart with the same N blocks,
interleaved, with an optional profile of the agent's start: the re-runnable harness of
issue 19's "start ≤ restart" point. Section 2 of bench/run measures the same (ganesha_dbus.py);
this runs that section's machinery alone, at the N given, and takes the start apart.

    nice -n 10 .venv/bin/python bench/gstart.py [--n 1000] [--reps 5] [--floor] [--compare ROOT]
        [--profile FILE] [--perf FILE] [--batch-sizes B,B,...] [--json FILE]     (as root)

Per repetition, one after the other (so that load from others on the machine weighs on all
alike): the agent's `start` (timed from outside, as Pacemaker runs it) and `stop`; then
ganesha.nfsd launched with the same N EXPORT blocks until ShowExports lists them all, and its
stop; with --floor, the raw D-Bus floor (N AddExports from this running process). Prints each
repetition and the medians, with the ratio restart / ours (the target: ≥ 1), and the CPU time
ganesha.nfsd spent in each start (ours: during the agent's start; the restart's: from its launch
until it served all N), and for ours the agent's and the dbus-daemon's: on a loaded machine the
wall time follows the CPU time of all of them.

--compare ROOT: each repetition also the start and stop of the agent of another checkout (say
main's, unpacked with `git archive main`), run with this venv's Python; the two take turns at
going first.

--perf FILE: after the repetitions, one more start with `perf record` on ganesha.nfsd (where
Ganesha's time goes: `perf report -i FILE --no-children`).

--batch-sizes 1000,256,100,50: after the repetitions, Ganesha's CPU time to load the N blocks
sent B to an AddExport file (what the batch size costs Ganesha).

--profile FILE: after the repetitions, one more start under cProfile (written to FILE, a
pstats file) and the top of its cumulative table, and a start whose D-Bus calls and file
writes are timed one by one (`phases`), printed as totals per kind of call.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from env import GANESHA_CLIENT, PY, ROOT, Bench, children_cpu, cpu_seconds, log, med
from ganesha_dbus import RestartBaseline, raw_floor, start_ganesha

AGENT_MAIN = ("import sys\nsys.path.insert(0, sys.argv.pop(1))\n"
              "from ganesha_ha.agent import main\nsys.exit(main())")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--floor", action="store_true", help="also the raw D-Bus floor, each repetition")
    ap.add_argument("--compare", default=None, metavar="ROOT",
                    help="also the start/stop of the agent of another checkout (e.g. `git archive main` "
                         "unpacked), run with this venv's Python, each repetition")
    ap.add_argument("--profile", default=None, help="pstats file of one more start under cProfile")
    ap.add_argument("--perf", default=None, help="perf.data of ganesha.nfsd during one more start "
                                                 "(perf record -e cpu-clock -g)")
    ap.add_argument("--batch-sizes", default=None, metavar="B,B,...",
                    help="also, after the repetitions: the N exports' blocks sent B to an AddExport file "
                         "from this process (nothing else), ganesha.nfsd's CPU time per size")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("must run as root", file=sys.stderr)
        return 2
    b = Bench(argparse.Namespace(quick=False, reps=args.reps, keep=args.keep, skip_restart=False))
    from ganesha_ha.lab.ganesha_daemon import PrivateBus

    rows: list[dict] = []
    try:
        b.setup()
        start_ganesha(b)
        mp, exps = b.make_volume(f"gvol{args.n}", "ganesha", args.n, GANESHA_CLIENT)
        floor = b.make_volume(f"gfloor{args.n}", "ganesha", args.n, GANESHA_CLIENT) if args.floor else None
        env = b.agent_env("ganesha", mp)
        want = {e.export_id for e in exps}
        bus2 = PrivateBus(b.work / "bus2").start()
        restart = RestartBaseline(b, mp, exps, bus2)
        try:
            other = [str(PY), "-IS", "-c", AGENT_MAIN, args.compare] if args.compare else None
            for rep in range(args.reps):
                row: dict = {}
                agents = [("", [str(b.agent)])] + ([("other", other)] if other else [])
                if rep % 2:   # with --compare, the two agents take turns at going first
                    agents.reverse()
                for name, argv in agents:
                    row.update(one_start(b, env, want, argv, name))
                row["restart"], row["restart_stop"] = restart.once()
                row["restart_cpu"] = restart.cpu
                if floor is not None:
                    f = raw_floor(b, *floor)
                    row["floor"], row["floor_remove"] = f["add"], f["remove"]
                rows.append(row)
                log(f"rep {rep + 1}: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in row.items()
                                                   if v is not None))
            if args.profile:
                profile(b, env, Path(args.profile))
                phases(b, env)
            if args.perf:
                perf(b, env, Path(args.perf))
            if args.batch_sizes:
                batch_sizes(b, mp, exps, [int(x) for x in args.batch_sizes.split(",")])
        finally:
            restart.close()
            bus2.stop()
    finally:
        b.cleanup()
    out = {k: med([r.get(k) for r in rows]) for k in sorted(rows[0], key=lambda k: (k.startswith("other"), k))}
    print(f"N={args.n}, {len(rows)} interleaved repetitions, medians; load {os.getloadavg()[0]:.2f}")
    for k, v in out.items():
        print(f"  {k:13} {v * 1000:8.0f} ms")
    ratios = [r["restart"] / r["start"] for r in rows if r["restart"]]
    print(f"  restart / ours: {out['restart'] / out['start']:.2f}x (median of ratios "
          f"{med(ratios):.2f}x, per rep {', '.join(f'{x:.2f}' for x in ratios)})")
    if "other" in out:
        others = [r["other"] / r["start"] for r in rows]
        print(f"  --compare {args.compare} / ours: {out['other'] / out['start']:.2f}x (median of ratios "
              f"{med(others):.2f}x); restart / it: {out['restart'] / out['other']:.2f}x")
    if "floor" in out:
        print(f"  ours / floor: {out['start'] / out['floor']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": args.n, "rows": rows, "medians": out}, indent=1))
    return 0


def one_start(b: Bench, env: dict, want: set[int], argv: list[str], name: str) -> dict:
    """One start (timed, with the CPU time of the agent, ganesha.nfsd and the bus daemon meanwhile)
    and stop of the agent `argv`, checked with ShowExports; figures named `name`_..."""
    pre = f"{name}_" if name else ""
    cpu, bus_cpu, agent_cpu = cpu_seconds(b.gdaemon.proc.pid), cpu_seconds(b.bus.proc.pid), children_cpu()
    row = {f"{name or 'start'}": b.run(argv + ["start"], env),
           f"{pre}agent_cpu": children_cpu() - agent_cpu,
           f"{pre}ganesha_cpu": cpu_seconds(b.gdaemon.proc.pid) - cpu,
           f"{pre}bus_cpu": cpu_seconds(b.bus.proc.pid) - bus_cpu}
    if not want <= (b.live_ids() or set()):
        raise RuntimeError(f"{' '.join(argv)} start: not every export is live")
    row[f"{pre}stop"] = b.run(argv + ["stop"], env)
    if want & (b.live_ids() or set()):
        raise RuntimeError(f"{' '.join(argv)} stop left exports live")
    return row


def _agent_argv(wrapper: str, action: str = "start") -> list[str]:
    """The agent's `action` as the installed wrapper runs it, with `wrapper` (Python code) around main."""
    return [str(PY), "-IS", "-c", wrapper, str(ROOT), action]


def profile(b: Bench, env: dict, out: Path) -> None:
    """One start under cProfile (then a stop, unprofiled); prints the top cumulative entries."""
    code = ("import sys, cProfile\nsys.path.insert(0, sys.argv.pop(1))\n"
            "from ganesha_ha.agent import main\n"
            f"p = cProfile.Profile(); p.enable()\ntry:\n    rc = main()\nfinally:\n"
            f"    p.disable(); p.dump_stats({str(out)!r})\nsys.exit(rc)")
    t = b.run(_agent_argv(code), env)
    b.run([b.agent, "stop"], env)
    import pstats

    log(f"profiled start: {t * 1000:.0f} ms (cProfile's own cost included)")
    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(45)


PHASES = r"""
import sys, time, atexit, collections, importlib
t00 = time.perf_counter()
sys.path.insert(0, sys.argv.pop(1))
t0 = time.perf_counter()
tot = collections.defaultdict(float); cpu = collections.defaultdict(float); cnt = collections.Counter()
# (module, function or Class.method, label: str.format'ed with the call's arguments, self first)
HOOKS = [
    ("ganesha_ha.backends.ganesha_bus", "GaneshaBus.call", "call {3}"),
    ("ganesha_ha.backends.ganesha_bus", "GaneshaBus.call_each", "call_each {3}"),
    ("ganesha_ha.backends.ganesha_bus", "GaneshaBus.connect", "connect"),
    ("ganesha_ha.backends.ganesha_bus", "GaneshaBus.send", "send {3}"),
    ("ganesha_ha.backends.ganesha_bus", "Sent.wait", "wait for answers to {0.method}"),
    ("ganesha_ha.backends.ganesha_changes", "write_runtime", "write_runtime (batch)"),
    ("ganesha_ha.backends.ganesha", "write_runtime", "write_runtime (alone)"),
    ("ganesha_ha.backends.ganesha_changes", "render_batch", "render_batch"),
    ("ganesha_ha.backends.ganesha_changes", "LiveChanges.apply", "apply (all)"),
    ("ganesha_ha.backends.ganesha_changes", "LiveChanges._verdict", "_verdict"),
    ("ganesha_ha.backends.ganesha_changes", "LiveChanges._judge_readback", "_judge_readback (parse + verdicts)"),
    ("ganesha_ha.backends.ganesha_changes", "LiveChanges._prepare", "_prepare (check, render, write)"),
    ("ganesha_ha.backends.ganesha", "GaneshaBackend.check_collisions", "check_collisions"),
    ("ganesha_ha.backends.ganesha", "GaneshaBackend._live", "_live (DisplayExports + parse)"),
    ("ganesha_ha.registry", "Registry.load", "Registry.load"),
    ("ganesha_ha.volume", "Volume.set_active", "set_active"),
    ("ganesha_ha.volume", "Volume.start", "Volume.start"),
    ("ganesha_ha.transaction", "commit", "commit"),
    ("ganesha_ha.volume", "Volume._stop", "Volume._stop"),
    ("ganesha_ha.volume", "Volume.save_recovery", "Volume.save_recovery"),
    ("ganesha_ha.volume", "clear_recovery", "clear_recovery"),
    ("ganesha_ha.backends.ganesha_changes", "LiveChanges.withdraw", "withdraw"),
    ("ganesha_ha.backends.ganesha", "GaneshaBackend.live_paths", "live_paths"),
    ("ganesha_ha.backends.ganesha", "GaneshaBackend.withdraw_stray", "withdraw_stray"),
    ("ganesha_ha.backends.ganesha", "GaneshaBackend.show_exports", "show_exports"),
    ("ganesha_ha.transaction", "remounted", "remounted"),
    ("ganesha_ha.transaction", "restore_recovery", "restore_recovery"),
    ("ganesha_ha.execute", "run_steps", "run_steps"),
    ("ganesha_ha.agent", "Agent.validate", "Agent.validate"),
    ("ganesha_ha.agent", "Agent._check_node", "Agent._check_node"),
    ("ganesha_ha.plan", "plan_changes", "plan_changes"),
    ("ganesha_ha.execute", "check_ready", "check_ready"),
]
def timed(owner, name, label):
    f = getattr(owner, name)
    def w(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        try:
            return f(*a, **k)
        finally:
            kk = label.format(*a); tot[kk] += time.perf_counter() - t; cpu[kk] += time.process_time() - c
            cnt[kk] += 1
    setattr(owner, name, w)
for module, where, label in HOOKS:
    owner = importlib.import_module(module)
    *classes, name = where.split(".")
    for cls in classes:
        owner = getattr(owner, cls)
    timed(owner, name, label)
def report():
    total = time.perf_counter() - t0
    sys.stderr.write(f"PHASES {(time.perf_counter() - t00)*1000:.0f} ms since the interpreter's first line, "
                     f"{total*1000:.0f} ms in main(); CPU {time.process_time()*1000:.0f} ms in all, "
                     f"{(time.process_time() - c0)*1000:.0f} ms in main()\n")
    for kk in sorted(tot, key=tot.get, reverse=True):
        sys.stderr.write(f"PHASES {kk:34} {cnt[kk]:5} x {tot[kk]*1000:8.1f} ms, CPU {cpu[kk]*1000:6.1f} ms\n")
atexit.register(report)
from ganesha_ha.agent import main
t0, c0 = time.perf_counter(), time.process_time()
sys.exit(main())
"""


def phases(b: Bench, env: dict) -> None:
    """One start, then one stop, with their D-Bus calls, file writes and steps timed (wall
    clock and CPU time, no profiler)."""
    for action in ("start", "stop"):
        t0 = time.perf_counter()
        p = subprocess.run(_agent_argv(PHASES, action), env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        t = time.perf_counter() - t0
        log(f"{action} with phases timed: {t * 1000:.0f} ms, exit {p.returncode}")
        for line in p.stderr.splitlines():
            if line.startswith("PHASES"):
                print(line)


def batch_sizes(b: Bench, mp: Path, exps, sizes: list[int]) -> None:
    """The exports' blocks B to a file, one AddExport per file, from this process; then all
    removed. Prints the wall and ganesha.nfsd's CPU time of the AddExports per B."""
    import dbus
    from ganesha_ha.backends.ganesha import GaneshaBackend
    from ganesha_ha.backends.ganesha_batch import EVERY_EXPORT, render_batch
    from ganesha_ha.backends.ganesha_bus import EXPORT_MGR_IFACE, EXPORT_MGR_PATH
    from ganesha_ha.backends.ganesha_conf import RenderOptions

    be = GaneshaBackend(b.settings())
    pid = b.gdaemon.proc.pid
    try:
        for size in sizes:
            files = []
            for i in range(0, len(exps), size):
                f = b.work / f"batch-{size}-{i}.conf"
                f.write_text(render_batch(exps[i:i + size], mp, RenderOptions(protocols="4")).text)
                files.append(f)
            c0, t0 = cpu_seconds(pid), time.perf_counter()
            for f in files:
                be.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "AddExport", str(f), EVERY_EXPORT)
            wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - c0
            be.bus.call_each(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "RemoveExport",
                             [(dbus.UInt16(e.export_id),) for e in exps])
            print(f"  {len(exps)} exports, {size} to a file ({len(files)} AddExports): wall {wall * 1000:.0f} ms, "
                  f"ganesha.nfsd CPU {cpu * 1000:.0f} ms")
    finally:
        be.close()


def perf(b: Bench, env: dict, out: Path) -> None:
    """One start with `perf record` attached to our ganesha.nfsd (software clock: no PMU in a VM)."""
    rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "--call-graph", "dwarf,16384", "-o", str(out),
                            "-p", str(b.gdaemon.proc.pid)], stdin=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        t = b.run([b.agent, "start"], env)
    finally:
        rec.send_signal(2)
        rec.wait(30)
    b.run([b.agent, "stop"], env)
    log(f"start under perf: {t * 1000:.0f} ms; perf report -i {out} --no-children")


if __name__ == "__main__":
    sys.exit(main())
