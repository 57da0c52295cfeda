"""bench/RESULTS.md's section 6 and its target row: the cluster lab in both Ganesha modes
side by side (labs.bench_modes) and what one instance costs (instance_cost.bench)."""
from __future__ import annotations

from fmt import fmt_s, met
from labs import mode_rows


def modes_targets(w, modes: dict) -> None:
    """The instance mode's promise, from the two mode runs: no volume that did not move ever
    got NFS4ERR_GRACE; the shared daemon's stall beside it."""
    rows = mode_rows(modes)
    inst = [row["instance"]["grace"] for row in rows if "instance" in row]
    shared = [row["shared"]["grace"] for row in rows if "shared" in row and row["shared"]["grace"] is not None]
    if not inst:
        w("| a take-over stalls no volume that did not move (instance mode): its new opens never get "
          "NFS4ERR_GRACE | not measured | n/a |")
        return
    worst = None if None in inst else max(inst)
    span = f"{fmt_s(min(shared))} to {fmt_s(max(shared))}" if shared else "n/a"
    w(f"| a take-over stalls no volume that did not move (instance mode): its new opens never get "
      f"NFS4ERR_GRACE | instance: {fmt_s(worst)} worst of {len(inst)} failovers; shared daemon: {span} | "
      f"{met(worst is not None and worst == 0.0)} |")


def modes_section(w, modes: dict, cost: dict) -> None:
    """The two Ganesha modes under Pacemaker side by side, and what one instance costs."""
    w("## 6. One Ganesha per node or one per volume (issue 17)")
    w("")
    w("### Failovers side by side (`ganesha-ha lab --json --no-nlm --ganesha-mode shared|instance`)")
    w("")
    rows = mode_rows(modes)
    if not rows:
        w("Not measured: " + "; ".join(f"{m}: {(modes.get(m) or {}).get('why', 'not run')}"
                                       for m in ("shared", "instance")))
    else:
        grace = next((x["sample"].get("grace_period_s") for x in modes.values() if x.get("sample")), None)
        w("The same four failovers in each mode, with the same clients (NFSv4.1, NLM off: an instance "
          "serves NFSv4 only). Each moves vol1 onto the node that serves vol2 (vol2 is moved away first "
          "when they share a node) while a client of vol2 opens, writes and closes a fresh file every "
          "200 ms. Outage: vol1's client, first failed I/O to the first good one. vol2 in NFS4ERR_GRACE: "
          "from its first new OPEN refused with NFS4ERR_GRACE to the first that succeeded after the last "
          f"one (0: none was refused). Grace_Period {fmt_s(grace, 0)} in both modes.")
        for m in ("shared", "instance"):
            if (modes.get(m) or {}).get("status") != "measured":
                w(f"{m} mode not measured: {(modes.get(m) or {}).get('why', 'not run')}")
        w("")
        w("| failover | outage, shared | outage, instance | vol2 (not moved) in NFS4ERR_GRACE, shared | "
          "vol2 in NFS4ERR_GRACE, instance | lab checks (shared / instance) |")
        w("|---|---:|---:|---:|---:|---|")
        def verdict(m: dict) -> str:
            return "-" if not m else ("passed" if m.get("ok") else "FAILED")
        for row in rows:
            sh, inst = row.get("shared", {}), row.get("instance", {})
            w(f"| {row['kind']} | {fmt_s(sh.get('outage'))} | {fmt_s(inst.get('outage'))} | "
              f"{fmt_s(sh.get('grace'))} | {fmt_s(inst.get('grace'))} | {verdict(sh)} / {verdict(inst)} |")
    w("")
    w("### What one instance costs (`bench/instance_cost.py`: VFS exports, idle, the agent as Pacemaker runs it)")
    w("")
    if cost.get("status") != "measured":
        w(f"Not measured: {cost.get('why', 'not run')}")
        w("")
        return
    w("Agent start: from the spawn until the instance owns its D-Bus name, listens on the floating IP "
      "and serves every export (the time to serve N exports).")
    w("")
    for line in cost["one"]:
        w(line)
    w("")
    for line in cost["many"]:
        w(line)
    w("")
