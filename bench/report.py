"""bench/RESULTS.md from the figures of one run: targets first, then one section per
measurement, each ratio from figures of the same run."""
from __future__ import annotations

import os
import platform
import subprocess
import time

from env import ROOT, Bench
from fmt import fmt_ms, fmt_ratio, fmt_s, fmt_t, met
from labs import lab_rows, lab_summary
from report_floor import floor_section, floor_target_ratios
from report_modes import modes_section, modes_targets

from ganesha_ha.backends.ganesha_batch import BATCH_MAX  # noqa: E402 (env.py put the checkout on sys.path)

BATCH = f"up to {BATCH_MAX}"


def cluster_lab_section(w, clab: dict, nodes: int = 2) -> None:
    """One cluster lab run; `nodes`: its node count (the default lab has two)."""
    if nodes == 2:
        w("### Under Pacemaker (`ganesha-ha lab --json`, the default lab)")
    else:
        w(f"### Under Pacemaker, {nodes} nodes (`ganesha-ha lab --nodes {nodes} --json`)")
    w("")
    if clab.get("status") != "measured":
        w(f"Not measured: {clab.get('why', '')}")
        w("")
        return
    s = clab["sample"]
    g = s.get("grace_period_s")
    from ganesha_ha.lab.layout import volume_plan

    vols = len(volume_plan(nodes))
    w(f"{nodes} corosync/Pacemaker nodes in namespaces, {vols} volumes (active-active, "
      f"{'one' if vols == nodes else vols // nodes} preferring each node), the crmsh recipe "
      "of the README; the cluster decides each failover. Outage: the worst client of the volumes "
      "that moved. Cluster: from the fault (or the command) until the volume's IP ran on the new "
      "node, as crm_mon showed it. The lab's own limit adds the cluster's reaction time "
      "(a monitor interval for kill -9, membership for a node loss) to grace + 2 s.")
    w("")
    w("| failover | volumes | outage (client I/O) | cluster | grace configured | outage ≤ grace + 2 s | "
      "lab's limit | lab checks |")
    w("|---|---|---:|---:|---:|---|---:|---|")
    for f in s["failovers"]:
        gaps = [e.get("service_gap_s") for e in f["volumes"].values() if e.get("service_gap_s") is not None]
        o = f.get("outage_s")
        w(f"| {f['kind']} | {', '.join(f['volumes'])} | {fmt_s(o)} | {fmt_s(max(gaps) if gaps else None)} | "
          f"{fmt_s(g, 0)} | {met(None if o is None or g is None else o <= g + 2)} | "
          f"{fmt_s(f.get('outage_limit_s'), 0)} | {'passed' if f['ok'] else 'FAILED'} |")
    w("")


def _sum(a, b):
    return None if a is None or b is None else a + b


def ganesha_targets(w, ga: dict, ns) -> None:
    """Ganesha's start at the largest N against the restart and the raw D-Bus floor."""
    n = max(ns)
    g = ga.get(n, {})
    ours, rs, fl = g.get("start"), g.get("restart_start"), g.get("floor_add")
    w(f"| Ganesha start of {n} exports ≤ a ganesha.nfsd restart with the same {n} EXPORT blocks | "
      f"{fmt_t(ours)} vs {fmt_t(rs)}: restart / ours = {fmt_ratio(rs, ours)} | "
      f"{met(None if ours is None or rs is None else ours <= rs)} |")
    w(f"| stretch: Ganesha start of {n} within 2× the raw D-Bus floor ({n} AddExports, nothing else) | "
      f"{fmt_t(ours)} vs {fmt_t(fl)}: ours / floor = {fmt_ratio(ours, fl)} | "
      f"{met(None if ours is None or fl is None else ours <= 2 * fl)} |")


def monitor_per_export(r: dict, server: str, ns) -> dict[int, float]:
    """N → one monitor's time per export, for every N this run measured on one volume of `server`."""
    table = r.get("knfsd" if server == "knfsd" else "ganesha", {})
    out = {n: table[n]["monitor"] / n for n in ns if table.get(n, {}).get("monitor") is not None}
    sc = r.get("scale", {})
    if sc.get(server, {}).get("monitor") is not None:
        out[sc["n"]] = sc[server]["monitor"] / sc["n"]
    return out


def scale_targets(w, r: dict) -> None:
    sc = r.get("scale", {})
    if not sc:
        return
    n = sc["n"]
    for server in ("knfsd", "ganesha"):
        per = monitor_per_export(r, server, [k for k in (1000, 100) if k < n])
        below = max((k for k in per if k < n), default=None)
        if n not in per or below is None:
            continue
        ratio = per[n] / per[below]
        w(f"| {server}: one monitor of a {n}-export volume stays O(N): per export ≤ 1.5× its cost at {below} | "
          f"{per[n] * 1e6:.0f} µs vs {per[below] * 1e6:.0f} µs per export ({ratio:.2f}×) | {met(ratio <= 1.5)} |")


def scale_section(w, r: dict, ns) -> None:
    sc = r.get("scale", {})
    if not sc:
        return
    n = sc["n"]
    kn, ga = sc.get("knfsd", {}), sc.get("ganesha", {})
    w(f"## 5. One volume of {n} exports")
    w("")
    w(f"The volume's registry holds {n - 1} exports; then, as an administrator and Pacemaker would: "
      f"`ganesha-ha volume start`, `ganesha-ha export add` of the {n}th export (live), the agent's "
      "`monitor` of the whole volume (median of 3), `ganesha-ha export list`, `ganesha-ha volume stop`; "
      f"each a new process, as timed from outside. Ganesha restart: ganesha.nfsd launched with the same "
      f"{n} EXPORT blocks until ShowExports lists all of them, then SIGTERM until it exits.")
    w("")
    for server, got in (("knfsd", kn), ("NFS-Ganesha", ga)):
        if got.get("why"):
            w(f"{server}: not measured: {got['why']}")
            w("")
    rs = ga.get("restart_start")
    if rs is None and ga.get("restart_cap"):
        restart = f"> {ga['restart_cap']} s (not serving all {n} yet; stopped there)"
    else:
        restart = f"{fmt_t(rs)} (restart / ours {fmt_ratio(rs, ga.get('start'))})"
    w("| | knfsd | NFS-Ganesha (D-Bus) | ganesha.nfsd restart with the same blocks |")
    w("|---|---:|---:|---:|")
    w(f"| `volume start` | {fmt_t(kn.get('start'))} | {fmt_t(ga.get('start'))} | {restart} |")
    w(f"| `export add` of the {n}th export | {fmt_t(kn.get('add'))} | {fmt_t(ga.get('add'))} | "
      f"(the restart above) |")
    w(f"| one `monitor` of the volume | {fmt_t(kn.get('monitor'))} | {fmt_t(ga.get('monitor'))} | |")
    w(f"| `export list` | {fmt_t(kn.get('list'))} | {fmt_t(ga.get('list'))} | |")
    w(f"| `volume stop` | {fmt_t(kn.get('stop'))} | {fmt_t(ga.get('stop'))} | {fmt_t(ga.get('restart_stop'))} |")
    w(f"| registry on disk ({n} exports) | {_kib(kn.get('registry'))} | {_kib(ga.get('registry'))} | |")
    w("")
    rows = {server: monitor_per_export(r, server, ns) for server in ("knfsd", "ganesha")}
    sizes = sorted(set(rows["knfsd"]) | set(rows["ganesha"]))
    if sizes:
        w("One monitor's cost per export (this run's figures; O(N) keeps it flat as N grows):")
        w("")
        w("| N | " + " | ".join(str(k) for k in sizes) + " |")
        w("|---|" + "---:|" * len(sizes))
        for server in ("knfsd", "ganesha"):
            w(f"| {server} | " + " | ".join(f"{rows[server][k] * 1e6:.0f} µs" if k in rows[server] else "n/a"
                                           for k in sizes) + " |")
        w("")


def _kib(size) -> str:
    return "n/a" if size is None else f"{size / 1024:.0f} KiB ({size / 1024 / 1024:.1f} MiB)"


def render(b: Bench, elapsed: float) -> str:
    r = b.r
    up, kn, ga = r.get("upstream", {}), r.get("knfsd", {}), r.get("ganesha", {})
    L = []
    w = L.append

    def up_cell(n, key, unit="s"):
        d = up.get(n)
        if not d or d.get(key) is None:
            return "n/a"
        v = d[key]
        txt = fmt_t(v)
        if n == 1000 and d.get("extrapolated") and key != "mon_one_ms":
            txt = f"≈{txt} *(extrapolated from {d['n_done']} done)*"
        return txt

    w("# ganesha-ha benchmarks")
    w("")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    w(f"Produced by `bench/run` on {time.strftime('%Y-%m-%d %H:%M')} — {platform.node()}, "
      f"{os.cpu_count()} CPUs, {platform.platform()}; whole run {elapsed / 60:.1f} min; load "
      f"average {b.load_at_start} at the start, {load} at the end (the machine is shared, "
      "hence the side-by-side ratios). "
      f"Every figure is the median of {b.reps} runs unless marked otherwise; every ratio "
      "compares figures of this same run. Upstream = `ocf:heartbeat:exportfs` "
      f"(resource-agents {pkg_version('resource-agents')}), timed by "
      "`/work/shared/bench/ra_bench.sh` (one primitive per export, as upstream requires); "
      f"nfs-utils {pkg_version('nfs-kernel-server')}, nfs-ganesha {pkg_version('nfs-ganesha')}. "
      "Client spec `127.0.0.1`, options `rw,sync`, exports on a tmpfs volume. "
      f"Code: {code_version()}.")
    w("")

    # targets
    t_mon = t_start = t_g = t_floor = t_lab = None
    mon_ratio = start_ratio = None
    if 1000 in kn and 1000 in up:
        mon_ratio = up[1000]["mon_all_s"] / kn[1000]["monitor"]
        start_ratio = up[1000]["start_all_s"] / kn[1000]["start"]
        t_mon, t_start = mon_ratio >= 100, start_ratio >= 20
    g1000 = ga.get(1000, {}).get("start")
    if g1000 is not None:
        t_g = g1000 <= 10
    floor_ratios = floor_target_ratios(r)
    if floor_ratios:
        t_floor = max(floor_ratios) <= 1.5
    lab = r.get("lab", {})
    lab_outage = lab_grace = None
    if lab.get("status") == "measured":
        lab_outage, lab_grace = lab_summary(lab["samples"])
        if lab_outage is not None and lab_grace is not None:
            t_lab = lab_outage <= lab_grace + 2
    clab = r.get("cluster_labs", {}).get(2, {})
    cl_outage = None
    if clab.get("status") == "measured":
        outs = [f.get("outage_s") for f in clab["sample"]["failovers"]]
        cl_grace = clab["sample"].get("grace_period_s")
        cl_outage = None if not outs or None in outs else max(outs)
        t_cl = cl_outage is not None and cl_grace is not None and cl_outage <= cl_grace + 2
        t_lab = t_cl if t_lab is None else (t_lab and t_cl)

    ex = " (upstream extrapolated)" if up.get(1000, {}).get("extrapolated") else ""
    w("## Targets")
    w("")
    w("| target | measured | |")
    w("|---|---|---|")
    w(f"| knfsd monitor of a 1000-export volume ≥ 100× cheaper than upstream's 1000 monitors | "
      f"{fmt_ratio(up.get(1000, {}).get('mon_all_s'), kn.get(1000, {}).get('monitor'))}{ex} | {met(t_mon)} |")
    w(f"| knfsd start of 1000 exports ≥ 20× faster than upstream's 1000 starts | "
      f"{fmt_ratio(up.get(1000, {}).get('start_all_s'), kn.get(1000, {}).get('start'))}{ex} | {met(t_start)} |")
    w(f"| 1000 exports live on Ganesha via D-Bus ≤ 10 s | {fmt_t(g1000)} | {met(t_g)} |")
    ganesha_targets(w, ga, b.ns)
    scale_targets(w, r)
    fr = ", ".join(f"{x:.2f}×" for x in floor_ratios) or "n/a"
    w(f"| per-call overhead at N = 1 within 1.5× of the shell agent (meta-data, classic monitor) | "
      f"{fr} | {met(t_floor)} |")
    if t_lab is None:
        w("| lab failover outage ≤ grace + 2 s | not measured | n/a |")
    else:
        parts = []
        if lab.get("status") == "measured":
            parts.append(f"direct: {fmt_s(lab_outage)} worst of {len(lab_rows(lab['samples']))} "
                         f"failovers (grace {lab_grace:g} s)")
        if cl_outage is not None:
            parts.append(f"under Pacemaker: {fmt_s(cl_outage)} worst of "
                         f"{len(clab['sample']['failovers'])} (move, shutdown, kill -9, node loss)")
        w(f"| lab failover outage ≤ grace + 2 s | {'; '.join(parts)} | {met(t_lab)} |")
    modes_targets(w, r.get("ganesha_modes", {}))
    w("")

    w("## 1. Monitor cost per interval (knfsd, N exports on one volume)")
    w("")
    w("ganesha-ha: ONE `monitor` of the volume (`volume=`; registry vs etab, repair, rmtab saved). "
      "Upstream: N `monitor` calls, one per primitive, each at a table of N exports.")
    w("")
    w("| N | ganesha-ha: 1 monitor | upstream: N monitors | upstream: 1 monitor | ratio (upstream / ours) |")
    w("|---:|---:|---:|---:|---:|")
    for n in b.ns:
        ours = kn.get(n, {}).get("monitor")
        u = up.get(n, {})
        w(f"| {n} | {fmt_t(ours)} | {up_cell(n, 'mon_all_s')} | "
          f"{fmt_ms(u['mon_one_ms'] / 1000) if u else 'n/a'} | {fmt_ratio(u.get('mon_all_s'), ours)} |")
    w("")

    w("## 2. Start and stop of a volume with N exports")
    w("")
    w("### knfsd: ganesha-ha volume mode (one `start`/`stop`) vs upstream (N `start`s/`stop`s)")
    w("")
    w("| N | ganesha-ha start | upstream N starts | ratio | ganesha-ha stop | upstream N stops | ratio |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    for n in b.ns:
        k, u = kn.get(n, {}), up.get(n, {})
        w(f"| {n} | {fmt_t(k.get('start'))} | {up_cell(n, 'start_all_s')} | "
          f"{fmt_ratio(u.get('start_all_s'), k.get('start'))} | {fmt_t(k.get('stop'))} | "
          f"{up_cell(n, 'stop_all_s')} | {fmt_ratio(u.get('stop_all_s'), k.get('stop'))} |")
    w("")
    w("### NFS-Ganesha: live over D-Bus vs restarting ganesha.nfsd with N EXPORT blocks")
    w("")
    w("ganesha-ha: the agent's `start` (volume mode) against a running private ganesha.nfsd, "
      "which returns with all N exports live (checked with ShowExports); `stop` removes them. "
      "Restart: launch ganesha.nfsd with the same N EXPORT blocks in its config, timed until it "
      "owns `org.ganesha.nfsd` and ShowExports lists all N; stop = SIGTERM until it exits. "
      "Not included: a restart drops every client of that Ganesha and re-enters the NFSv4 grace "
      "period for all of them when any client has recovery records (none here, so Ganesha lifts "
      "grace at once); ganesha-ha's D-Bus start touches no other export.")
    w("")
    w("| N | ganesha-ha start (D-Bus) | ganesha.nfsd start with N blocks | ratio (restart / ours) | "
      "ganesha-ha stop | ganesha.nfsd stop | ganesha-ha stop + start / restart's | ganesha-ha monitor |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in b.ns:
        g = ga.get(n, {})
        rs = g.get("restart_start")
        rr = g.get("restart_reps")
        note = f" *({rr} runs)*" if rr and rr != b.reps else ""
        cycle = _sum(g.get("start"), g.get("stop"))
        w(f"| {n} | {fmt_t(g.get('start'))} | {fmt_t(rs)}{note} | {fmt_ratio(rs, g.get('start'))} | "
          f"{fmt_t(g.get('stop'))} | {fmt_t(g.get('restart_stop'))} | "
          f"{fmt_ratio(cycle, _sum(rs, g.get('restart_stop')))} | {fmt_t(g.get('monitor'))} |")
    w("")
    top = max(b.ns)
    g = ga.get(top, {})
    if g.get("ganesha_cpu") is not None and g.get("restart_cpu") is not None:
        bigger = (f" and one parse of all {top} blocks, which costs Ganesha more CPU per export than files "
                  f"of {BATCH_MAX}: bench/gstart.py --batch-sizes" if top > BATCH_MAX else "")
        w(f"CPU time at N = {top} (medians, same repetitions): ganesha.nfsd spent "
          f"{fmt_t(g['ganesha_cpu'])} during ganesha-ha's start (the AddExports, {BATCH} exports each, "
          f"two on the way at a time, and the DisplayExport of each export, judged while Ganesha loads "
          f"a later batch), the restarted ganesha.nfsd {fmt_t(g['restart_cpu'])} until it served all "
          f"{top} (its start-up{bigger}); ganesha-ha's agent process {fmt_t(g.get('agent_cpu'))}. "
          f"Most of Ganesha's time per export goes to src/FSAL/localfs.c `populate_posix_file_systems` "
          f"(bench/gstart.py --perf), which re-reads the mount table and asks libblkid about the file "
          f"systems around each export's path, in both cases. On a loaded machine the wall times follow "
          f"these CPU times.")
        w("")
    floor_n = next((n for n in reversed(b.ns) if ga.get(n, {}).get("floor_add")), None)
    if floor_n is not None:
        g = ga[floor_n]
        w(f"Raw D-Bus floor at N = {floor_n} (same repetitions, interleaved): {floor_n} AddExports one after "
          f"the other from one running Python process, each export its own file written beforehand, "
          f"nothing else (no process start, no registry, no read-back): {fmt_t(g['floor_add'])} "
          f"({g['floor_add'] / floor_n * 1000:.2f} ms per AddExport); {floor_n} RemoveExports: "
          f"{fmt_t(g['floor_remove'])}. ganesha-ha's whole start (a new process, the registry, the "
          f"exports sent {BATCH} to an AddExport, each read back with DisplayExport) is "
          f"{fmt_ratio(g.get('start'), g['floor_add'])} of that floor; its stop "
          f"{fmt_ratio(g.get('stop'), g['floor_remove'])} of the RemoveExports alone.")
        w("")

    floor_section(w, r, b.reps, t_floor)
    w("## 4. Failover outage (`ganesha-ha lab --direct --json --failovers 1`)")
    w("")
    if lab.get("status") == "measured":
        w("Two network namespaces as nodes, a loop device as the shared volume, ganesha.nfsd on "
          "each node, the agent (ra/exports) stops the volume on one node and starts it on the "
          "other; an NFSv4 client keeps reading through its saved file handle and writing a "
          "stream throughout. Outage: from the client's first failed I/O (read or write) to its "
          "first successful one after the move; writes alone also wait for the client's reclaim. "
          "Grace: the Grace_Period the lab configures, and the time until the new node left "
          "grace. Lab checks: handles kept, data verified, no acknowledged write lost, ids equal, "
          "recovery records moved, reclaim done.")
        w("")
        w("| run | outage (client I/O) | writes' outage | service gap | grace configured | "
          "grace measured | lab checks | outage ≤ grace + 2 s |")
        w("|---:|---:|---:|---:|---:|---:|---|---|")
        for row in lab_rows(lab["samples"]):
            o, g = row["outage"], row["grace"]
            w(f"| {row['run']} | {fmt_s(o)} | {fmt_s(row['write_outage'])} | {fmt_s(row['gap'])} | "
              f"{fmt_s(g, 0)} | {fmt_s(row['grace_measured'])} | "
              f"{'passed' if row['ok'] else 'FAILED'} | "
              f"{met(None if o is None or g is None else o <= g + 2)} |")
    else:
        w("| outage | grace period | |")
        w("|---|---|---|")
        w(f"| **not measured yet** | | {lab.get('why', '')} |")
    w("")
    for nodes, clab in sorted(r.get("cluster_labs", {}).items()):
        cluster_lab_section(w, clab, nodes)
    scale_section(w, r, b.ns)
    modes_section(w, r.get("ganesha_modes", {}), r.get("instance_cost", {}))
    if b.notes:
        w("## Notes")
        w("")
        for n in b.notes:
            w(f"- {n}")
        w("")
    return "\n".join(L) + "\n"


def code_version() -> str:
    """The commit benchmarked, and the files of ganesha_ha/ and ra/ with uncommitted changes (they count)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "ganesha_ha", "ra"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
    except OSError:
        return "?"
    files = sorted(line[3:] for line in dirty if line[3:].strip())
    return f"commit {head}" + (f" + uncommitted changes in {', '.join(files)}" if files else "")


def pkg_version(pkg: str) -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except OSError:
        return "?"
