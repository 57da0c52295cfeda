"""The failover outage from the two labs: `ganesha-ha lab --direct --json --failovers 1`
(several runs) and the default cluster lab (`ganesha-ha lab --json`, one run)."""
from __future__ import annotations

import json
import subprocess

from env import ROOT, Bench, log


def bench_lab(b: Bench):
    res = {"status": "not measured yet"}
    b.r["lab"] = res
    if b.args.no_lab:
        res["why"] = "not run (bench/run --no-lab)"
        return
    cli = ROOT / ".venv" / "bin" / "ganesha-ha"
    try:
        h = subprocess.run([cli, "lab", "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        res["why"] = f"`ganesha-ha lab --help` failed: {exc}"
        return
    if h.returncode != 0 or "--json" not in h.stdout:
        res["why"] = "`ganesha-ha lab --json` is not available yet"
        return
    samples = []
    for k in range(b.args.lab_runs):
        log(f"failover lab, run {k + 1}")
        try:
            p = subprocess.run([cli, "lab", "--direct", "--json", "--failovers", "1"], capture_output=True,
                               text=True, timeout=b.args.lab_timeout)
        except subprocess.TimeoutExpired:
            res["why"] = f"`ganesha-ha lab --direct --json --failovers 1` timed out ({b.args.lab_timeout} s)"
            return
        try:  # exit 1 with a JSON report is a measured run whose checks failed: reported as such
            sample = json.loads(p.stdout) if p.returncode in (0, 1) else None
        except ValueError:
            sample = None
        if not isinstance(sample, dict) or not sample.get("failovers"):
            res["why"] = (f"`ganesha-ha lab --direct --json --failovers 1` failed (exit {p.returncode}): "
                          + " ".join(p.stderr.split())[-300:])
            return
        samples.append(sample)
    res.update(status="measured", samples=samples)


def bench_cluster_lab(b: Bench):
    """The default lab: Pacemaker decides four failovers (move, shutdown, kill -9, loss)."""
    res = {"status": "not measured yet"}
    b.r["cluster_lab"] = res
    if b.args.no_lab:
        res["why"] = "not run (bench/run --no-lab)"
        return
    log("cluster lab (two Pacemaker nodes, four failover kinds)")
    cmd = "ganesha-ha lab --json"
    try:
        p = subprocess.run([ROOT / ".venv" / "bin" / "ganesha-ha", "lab", "--json", "--quiet"],
                           capture_output=True, text=True, timeout=max(b.args.lab_timeout, 400))
    except subprocess.TimeoutExpired:
        res["why"] = f"`{cmd}` timed out"
        return
    try:
        sample = json.loads(p.stdout) if p.returncode in (0, 1) else None
    except ValueError:
        sample = None
    if not isinstance(sample, dict) or not sample.get("failovers"):
        res["why"] = f"`{cmd}` failed (exit {p.returncode}): " + " ".join(p.stderr.split())[-300:]
        return
    res.update(status="measured", sample=sample)


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
