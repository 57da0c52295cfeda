"""The failover outage from the two labs: `ganesha-ha lab --direct --json --failovers 1`
(several runs), the default cluster lab (`ganesha-ha lab --json`, one run), and the cluster
lab in each Ganesha mode side by side (`--ganesha-mode shared|instance --no-nlm`, one run
each: the moved volume's outage and how long the volume that did not move got NFS4ERR_GRACE)."""
from __future__ import annotations

import json
import subprocess

from env import ROOT, Bench, log


CLI = ROOT / ".venv" / "bin" / "ganesha-ha"


def run_lab(args: list[str], timeout: float) -> tuple[dict | None, str]:
    """One `ganesha-ha lab ARGS --json` run: (its report, "") or (None, why not).

    Exit 1 with a JSON report is a measured run whose checks failed: reported as such."""
    cmd = f"`ganesha-ha lab {' '.join(args)}`"
    try:
        p = subprocess.run([CLI, "lab", *args, "--json", "--quiet"], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"{cmd} timed out ({timeout:g} s)"
    try:
        sample = json.loads(p.stdout) if p.returncode in (0, 1) else None
    except ValueError:
        sample = None
    if not isinstance(sample, dict) or not sample.get("failovers"):
        said = "; ".join(sample.get("problems", [])) if isinstance(sample, dict) else ""
        return None, f"{cmd} failed (exit {p.returncode}): " + " ".join((said or p.stderr).split())[-300:]
    return sample, ""


def bench_lab(b: Bench):
    """The direct lab, `--lab-runs` times: the agent moves one volume, no cluster."""
    res = b.r["lab"] = {"status": "not measured yet"}
    if b.args.no_lab:
        res["why"] = "not run (bench/run --no-lab)"
        return
    samples = []
    for k in range(1 if b.args.quick else b.args.lab_runs):
        log(f"failover lab, run {k + 1}")
        sample, res["why"] = run_lab(["--direct", "--failovers", "1"], b.args.lab_timeout)
        if sample is None:
            return
        samples.append(sample)
    res.pop("why")
    res.update(status="measured", samples=samples)


def bench_cluster_lab(b: Bench, nodes: int = 2):
    """The cluster lab with `nodes` Pacemaker nodes (the default lab: two; `bench/run
    --lab-nodes 2,3` asks for more, given to `ganesha-ha lab --nodes N`): Pacemaker decides
    each failover (move, shutdown, kill -9, loss). Stored under b.r["cluster_labs"][nodes];
    report.py renders one section per node count."""
    res = b.r.setdefault("cluster_labs", {})[nodes] = {"status": "not measured yet"}
    res["why"] = cluster_lab_skipped(b)
    if res["why"]:
        return
    log(f"cluster lab ({nodes} Pacemaker nodes, four failover kinds)")
    sample, why = run_lab([] if nodes == 2 else ["--nodes", str(nodes)], max(b.args.lab_timeout, 400 * nodes // 2))
    if sample is None:
        res["why"] = why
        return
    res.update(status="measured", sample=sample)


MODES = ("shared", "instance")


def cluster_lab_skipped(b: Bench) -> str:
    """Why a cluster lab is not run ("" when it is): --no-lab, or --quick, which keeps to a
    smoke run of about a minute (each cluster lab takes one to three minutes; the direct lab,
    run once, stands for the failover section; the default suite runs the cluster labs)."""
    if b.args.no_lab:
        return "not run (bench/run --no-lab)"
    if b.args.quick:
        return "not run (bench/run --quick: a cluster lab takes minutes; the full run has it)"
    return ""


def bench_modes(b: Bench):
    """The two-node cluster lab once per Ganesha mode, with the same clients (NFSv4.1, NLM off:
    an instance serves NFSv4 only). Stored under b.r["ganesha_modes"][mode]."""
    out = b.r["ganesha_modes"] = {}
    for mode in MODES:
        res = out[mode] = {"status": "not measured yet"}
        res["why"] = cluster_lab_skipped(b)
        if res["why"]:
            continue
        log(f"cluster lab, Ganesha mode {mode} (four failover kinds, NLM off)")
        sample, why = run_lab(["--ganesha-mode", mode, "--no-nlm"], max(b.args.lab_timeout, 400))
        if sample is None:
            res["why"] = why
        else:
            res.update(status="measured", sample=sample)


def mode_rows(modes: dict) -> list[dict]:
    """Per failover kind, in the order run, each mode's {"outage", "grace", "ok"}: the moved
    volume's worst client outage, and the longest a volume that did not move, on a node that
    took one over, had its new opens refused with NFS4ERR_GRACE (None: not measured, or a grace
    that never ended)."""
    rows: dict[str, dict] = {}
    for mode in MODES:
        sample = (modes.get(mode) or {}).get("sample") or {}
        for fo in sample.get("failovers", []):
            graces = [(e.get("new_opens") or {}).get("grace_s") for e in (fo.get("not_moved") or {}).values()
                      if e.get("on_receiving_node")]
            row = rows.setdefault(fo["kind"], {"kind": fo["kind"]})
            row[mode] = {"outage": fo.get("outage_s"), "ok": fo.get("ok"),
                         "grace": None if not graces or None in graces else max(graces)}
    return list(rows.values())


def lab_rows(samples: list[dict]) -> list[dict]:
    """One row per failover of `ganesha-ha lab --json` reports (the keys the lab documents)."""
    rows = []
    for run, sample in enumerate(samples, 1):
        for fo in sample.get("failovers", []):
            rows.append({"run": run, "outage": fo.get("outage_s"),
                         "write_outage": (fo.get("writes") or {}).get("outage_s"),
                         "gap": fo.get("service_gap_s"), "grace": sample.get("grace_period_s"),
                         "grace_measured": fo.get("grace_measured_s"), "ok": fo.get("ok")})
    return rows


def lab_summary(samples: list[dict]) -> tuple[float | None, float | None]:
    """The worst outage over all failovers of all runs, and the configured grace period."""
    rows = lab_rows(samples)
    outages = [r["outage"] for r in rows]
    graces = [r["grace"] for r in rows if r["grace"] is not None]
    worst = None if not outages or None in outages else max(outages)
    return worst, (max(graces) if graces else None)
