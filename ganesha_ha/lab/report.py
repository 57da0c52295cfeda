"""The lab reports as text: what `ganesha-ha lab` prints without --json.

One renderer per report shape: the direct lab with Ganesha (`render_text`), with knfsd
(`render_knfsd_text`, identity and rmtab only) and the cluster lab (`render_cluster_text`).
Pure: a report dict in, lines out; the labs never import this module, the CLI does.
"""
from __future__ import annotations

from typing import Any

from ..textfmt import table


def _yn(v: Any) -> str:
    return {True: "yes", False: "NO", None: "-"}.get(v, str(v))


def _clients_line(r: dict[str, Any]) -> list[str]:
    """What the clients spoke and what the servers presented to NFSv4.1 (owner, scope)."""
    if "nfs_version" not in r:
        return []
    lines = [f"clients: NFSv{r['nfs_version']}" + (" and NFSv3 with an NLM lock, notified by ocf:ganesha-ha:notify "
                                                   "(NLM on: grace runs its whole period)" if r.get("nlm")
                                                   else ", NLM off")
             + f"; Lease_Lifetime {r.get('lease_lifetime_s', '-')} s; Server_Scope set: "
             + (r.get("server_scope_set") or "none (each node its own default)")]
    ids = r.get("server_identity") or {}
    if ids and all("@" in k for k in ids):   # a Ganesha instance per volume: one scope per volume
        per: dict[str, set[str]] = {}
        for k, i in ids.items():
            per.setdefault(k.split("@")[0], set()).add(i["scope"])
        lines.append("servers as NFSv4.1 saw them: " + "; ".join(
            f"{k.replace('@', ' on ')} owner {i['owner']!r} scope {i['scope']!r}" for k, i in sorted(ids.items()))
            + (" (each volume one scope on every node)" if all(len(x) == 1 for x in per.values()) else
               " (DIFFERENT scopes for " + ", ".join(v for v, x in per.items() if len(x) > 1)
               + ": no reclaim across nodes)"))
    elif ids:
        scopes = {i["scope"] for i in ids.values()}
        lines.append("servers as NFSv4.1 saw them: " + "; ".join(
            f"{n} owner {i['owner']!r} scope {i['scope']!r}" for n, i in sorted(ids.items()))
            + (" (one scope)" if len(scopes) == 1 else " (DIFFERENT scopes: no reclaim across nodes)"))
    return lines


def _after(s: float | None) -> str:
    """Seconds after the lab saw the volume served again; the cluster lab sees that by polling
    Pacemaker, so an event may come before it (the IP is up before the poll says so)."""
    if s is None:
        return "-"
    return f"{s} s after the IP was up" if s >= 0 else f"{-s} s before the lab's poll saw the group up"


def _nlm_line(e: dict[str, Any]) -> str:
    """One failover's NLM evidence in a line."""
    x = e["nlm"]
    notified = (f"notified from {', '.join(x['notified_by'])} {_after(x['notified_after_up_s'])}"
                if x["notified"] else "NOT notified (" + (", ".join(x["notified_by"]) or "no SM_NOTIFY") + ")")
    reclaim = (f"lock reclaimed {_after(x['reclaim_after_up_s'])}" if x["reclaimed"] else
               f"lock NOT reclaimed ({', '.join(x['reclaim']) or 'never tried'})")
    other = ", ".join(f"{k} x{v}" for k, v in x["contender"].items())
    return (f"NLM: {notified}; {reclaim}; the other host's lock: {other or '-'}"
            + ("; LOCK LOST: the other host got it" if x["contender_granted"] else "")
            + f"; data and handle intact {_yn(x.get('data_intact'))}")


def _expiry_line(node: str, w: dict[str, Any]) -> str:
    """The wait before a failback for the node to expire the clients' old client ids."""
    return (f"waited {w['waited_s']} s before the move for {node} to expire the clients' old client ids "
            "(Ganesha refuses the reclaims of a client id it still holds: NFS4ERR_NO_GRACE)"
            + (f"; still held: {', '.join(w['still_remembered'])}" if w.get("still_remembered") else ""))


def _opens(e: dict[str, Any] | None) -> str:
    """New opens: blocked seconds as the clients saw them (and from the IP up, if moved)."""
    x = (e or {}).get("new_opens")
    if not x:
        return "-"
    out = _num(x.get("outage_s"))
    return out + (f" ({_num(x['after_up_s'])})" if "after_up_s" in x else "")


def render_text(r: dict[str, Any]) -> str:
    if r.get("server") == "knfsd":
        return render_knfsd_text(r)
    lines = [f"ganesha-ha lab {r['run_id']}: server {r['server']}, failover by {r['mode']}, "
             f"grace period {r['grace_period_s']} s", *_clients_line(r)]
    if r.get("break"):
        lines.append(f"broken on purpose: {', '.join(r['break'])}")
    lines += _scope_line(r, "validate-all")
    if r.get("exports"):
        lines.append("exports: " + ", ".join(f"{e['pseudo']} (Export_Id {e['export_id']})"
                                             for e in r["exports"]))
    fos = r.get("failovers", [])
    if fos:
        header = ["#", "move", "outage s", "grace s", "new opens s", "ids equal", "handle kept",
                  "reclaimed", "rc", "data ok", "writes lost", "records", "grace events", "result"]
        rows = [[str(f["n"]), f"{f['from']} -> {f['to']}", _num(f.get("outage_s")),
                 _num(f.get("grace_measured_s")), _opens(f), _yn(f.get("export_ids_equal")),
                 _yn(f.get("handles_preserved")), _yn(f.get("reclaimed")), _yn(f.get("reclaim_complete")),
                 _yn(f.get("data_verified")),
                 "-" if f.get("acked_writes_lost") is None else str(f["acked_writes_lost"]),
                 str(f.get("recovery_records_moved", "-")), str(f.get("grace_events_sent", "-")),
                 "ok" if f["ok"] else "FAILED"] for f in fos]
        lines.append("")
        lines += table(rows, header).splitlines()
        lines.append(LEGEND)
        for f in fos:
            if f.get("waited_for_expiry"):
                lines.append(f"  failover {f['n']}: {_expiry_line(f['to'], f['waited_for_expiry'])}")
            if f.get("nlm"):
                lines.append(f"  failover {f['n']}: {_nlm_line(f)}")
            for prob in f.get("problems", []):
                lines.append(f"  failover {f['n']}: {prob}")
    if r.get("fsal"):
        x = r["fsal"]
        lines.append(f"FSAL export {x['pseudo']} -> {x['spec']} at {x['path']}"
                     + ("" if x["keeps_data"] else " (data in Ganesha's memory: not expected to move)"))
        for f in fos:
            e = f.get("fsal")
            if e:
                lines.append(f"  failover {f['n']}: Export_Id {e['export_id']} kept {_yn(e['export_id_kept'])}, "
                             f"old handle {e['old_handle']} (kept {_yn(e['handle_preserved'])}), "
                             f"new file written and read {_yn(e['fresh_io'])}")
    w = r.get("client_writes")
    if w:
        lines.append(f"client wrote throughout: {w['records_acked']} records acknowledged, "
                     f"{'-' if w['acked_records_lost'] is None else w['acked_records_lost']} of them "
                     f"missing afterwards; {w['stale_replies']} NFS4ERR_STALE replies")
    for prob in r.get("problems", []):
        lines.append(f"problem: {prob}")
    lines.append("")
    if r.get("kept"):
        k = r["kept"]
        lines.append(f"lab kept up (state {k['state_file']}); floating IP {k['floating_ip']}, volume "
                     f"{k['volume']['mountpoint']} on {k['volume']['loop_device']} mounted on node "
                     f"{k['volume']['mounted_on']}")
        for name, n in k["nodes"].items():
            lines.append(f"  node {name} ({n['address']}): {n['enter']}    "
                         f"ganesha-ha --config {n['config']} volume status {k['volume']['mountpoint']}")
        lines.append(f"  client ({k['client']['address']}): {k['client']['enter']}")
        lines.append(f"  tear down: {k['down']}")
    else:
        left = r.get("left_behind") or []
        lines.append("cleaned up: nothing left behind" if not left else
                     "LEFT BEHIND: " + ", ".join(left))
    timing = f"setup {r.get('setup_s', '-')} s, total {r.get('total_s', '-')} s"
    lines.append(("OK: every failover held" if r["ok"] else "FAILED: see above") + f" ({timing})")
    return "\n".join(lines)


LEGEND = ("  new opens s: how long new files could not be opened (first refused OPEN to the first "
          "good one), in brackets from the moment the volume was served again; rc: NFSv4.1 "
          "RECLAIM_COMPLETE accepted")


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def render_knfsd_text(r: dict[str, Any]) -> str:
    lines = [f"ganesha-ha lab {r['run_id']}: server knfsd, failover by {r['mode']}"]
    lines.append("NOTE: " + r.get("note", ""))
    if r.get("break"):
        lines.append(f"broken on purpose: {', '.join(r['break'])}")
    if r.get("exports"):
        lines.append("exports: " + ", ".join(f"{e['directory']} (fsid {e['fsid']})" for e in r["exports"]))
    fos = r.get("failovers", [])
    if fos:
        yn = {True: "yes", False: "NO"}
        header = ["#", "move", "etab identical", "fsids equal", "rmtab moved", "result"]
        rows = [[str(f["n"]), f"{f['from']} -> {f['to']}", yn[f["etab_identical"]], yn[f["fsids_equal"]],
                 f"{f['rmtab_lines_moved']} ({yn[f['rmtab_migrated']]})", "ok" if f["ok"] else "FAILED"]
                for f in fos]
        lines.append("")
        lines += table(rows, header).splitlines()
        for f in fos:
            for prob in f.get("problems", []):
                lines.append(f"  failover {f['n']}: {prob}")
        last = fos[-1]
        lines.append(f"etab on node {last['to']} after the last move:")
        lines += [f"  {l}" for l in last.get("etab_after", [])]
    for prob in r.get("problems", []):
        lines.append(f"problem: {prob}")
    lines.append("")
    if r.get("kept"):
        k = r["kept"]
        for name, n in k["nodes"].items():
            lines.append(f"  node {name} ({n['address']}): {n['enter']}")
        lines.append(f"  tear down: {k['down']}")
    else:
        left = r.get("left_behind") or []
        lines.append("cleaned up: nothing left behind" if not left else "LEFT BEHIND: " + ", ".join(left))
    lines.append(("OK: identity and rmtab held on every move" if r["ok"] else "FAILED: see above")
                 + f" (setup {r.get('setup_s', '-')} s, total {r.get('total_s', '-')} s)")
    return "\n".join(lines)


def _cluster_shape(r: dict[str, Any]) -> list[str]:
    """Export_Id ranges and each node's memory, when the report has them."""
    out = []
    if r.get("export_id_ranges"):
        out.append("Export_Id ranges: " + ", ".join(f"{v} {lo}-{hi}" for v, (lo, hi) in r["export_id_ranges"].items()))
    if r.get("memory_kib"):
        out.append("memory per node after setup (PSS of its processes): " + ", ".join(
            f"{n} {m['pss_kib'] / 1024:.0f} MiB" for n, m in r["memory_kib"].items()))
    return out


def _spread(f: dict[str, Any]) -> list[str]:
    """Where a failed node's volumes landed, and what the cluster said of its capacity."""
    if "spread" not in f:
        return []
    proof = f.get("placement_proof", {})
    out = [f"      landed on {'different survivors' if f['spread'] else 'the SAME survivor'}: "
           + ", ".join(f"{v} on {n}" for v, n in f["landed"].items())
           + f" (placement-strategy={proof.get('placement_strategy', '?')})"]
    out += [f"      crm_simulate: {ln}" for ln in proof.get("utilization", []) if ln.startswith("Remaining")]
    return out


def _scope_line(r: dict[str, Any], action: str) -> list[str]:
    """--break server-scope: what the agent's `action` said on each node (rc 6: refused)."""
    if not r.get("scope_check"):
        return []
    return [f"agent {action} with different scopes: " + "; ".join(
        f"{n} rc {c['rc']}" + (f" ({c['reason']})" if c["reason"] else "") for n, c in r["scope_check"].items())
        + ("" if any(c["rc"] == 6 for c in r["scope_check"].values()) else ": not refused")]


def grace_of_unmoved(r: dict[str, Any]) -> dict[str, float | None]:
    """Failover kind -> the longest a volume that did not move, served by a node that took
    one over, had its new opens refused with NFS4ERR_GRACE (None: a grace that never ended
    in the window). Kinds without such a volume are left out."""
    out: dict[str, float | None] = {}
    for f in r.get("failovers", []):
        for e in (f.get("not_moved") or {}).values():
            if not e.get("on_receiving_node"):
                continue
            g = (e.get("new_opens") or {}).get("grace_s")
            k = f["kind"]
            out[k] = None if g is None or (k in out and out[k] is None) else max(out.get(k) or 0.0, g)
    return out


def _not_moved(r: dict[str, Any]) -> list[str]:
    """The volumes that did not move: their clients' new opens during each failover."""
    rows = [[str(f["n"]), f["kind"], name, str(e.get("on")), _yn(e.get("on_receiving_node")),
             _num((e.get("new_opens") or {}).get("grace_s")), _num((e.get("new_opens") or {}).get("outage_s")),
             f"{(e.get('new_opens') or {}).get('failed', '-')}/{(e.get('new_opens') or {}).get('attempts', '-')}",
             ", ".join(f"{k} x{n}" for k, n in ((e.get("new_opens") or {}).get("errors") or {}).items()) or "-"]
            for f in r.get("failovers", []) for name, e in (f.get("not_moved") or {}).items()]
    if not rows:
        return []
    return ["", "volumes that did not move: their client's new opens (open-write-close of a fresh file every "
                "200 ms) during each failover",
            *table(rows, ["#", "failover", "volume", "served by", "took one over", "NFS4ERR_GRACE s",
                          "any failure s", "failed/attempts", "errors"]).splitlines()]


def render_cluster_text(r: dict[str, Any]) -> str:
    mode = {"shared": " (the node's shared Ganesha)", "instance": " (a Ganesha instance per volume)"}
    lines = [f"ganesha-ha lab {r['run_id']}: {len(r['nodes'])}-node Pacemaker cluster ({', '.join(r['nodes'])}), "
             f"server {r['server']}{mode.get(r.get('ganesha_mode'), '')}, grace period {r['grace_period_s']} s",
             *_clients_line(r)]
    if r.get("break"):
        lines.append(f"broken on purpose: {', '.join(r['break'])}")
    lines += _scope_line(r, "start")
    if r.get("placement"):
        lines.append("started by the cluster: " + ", ".join(f"{v} on {n}" for v, n in r["placement"].items())
                     + (" (each on its preferred node)" if r.get("started_on_preferred") else ""))
    lines += _cluster_shape(r)
    rows = []
    if r["server"] == "knfsd":
        for f in r.get("failovers", []):
            for name, e in f["volumes"].items():
                rows.append([str(f["n"]), f["kind"], name, f"{e['from']} -> {e['to']}",
                             _num(e.get("service_gap_s")), _yn(e.get("etab_identical")),
                             _yn(e.get("fsids_equal")), f"{e.get('rmtab_lines_moved', 0)}",
                             "ok" if not any(p.startswith(name) for p in f["problems"]) else "FAILED"])
        lines += ["", *table(rows, ["#", "failover", "volume", "move", "cluster s", "etab identical",
                                    "fsids equal", "rmtab moved", "result"]).splitlines()] if rows else []
        lines.append(r.get("note", ""))
        rows = []
    for f in r.get("failovers", []):
        if r["server"] == "knfsd":
            break
        for name, e in f["volumes"].items():
            rows.append([str(f["n"]), f["kind"], name, f"{e['from']} -> {e['to']}", _num(e.get("outage_s")),
                         _num(e.get("service_gap_s")), _opens(e), _yn(e.get("export_ids_equal")),
                         _yn(e.get("handles_preserved")), _yn(e.get("reclaimed")), _yn(e.get("reclaim_complete")),
                         _yn(e.get("data_verified")),
                         "-" if e.get("acked_writes_lost") is None else str(e["acked_writes_lost"]),
                         _yn(e["nlm"]["reclaimed"]) if e.get("nlm") else "-",
                         "ok" if not any(p.startswith(name) for p in f["problems"]) else "FAILED"])
        for name, e in (f.get("not_moved") or {}).items():
            rows.append([str(f["n"]), f["kind"], name, f"stays on {e.get('on')}", "-", "-", _opens(e),
                         *["-"] * 7, "ok" if not any(p.startswith(name) for p in f["problems"]) else "FAILED"])
    if rows:
        lines.append("")
        lines += table(rows, ["#", "failover", "volume", "move", "outage s", "cluster s", "new opens s",
                              "ids equal", "handle kept", "reclaimed", "rc", "data ok", "writes lost",
                              "NLM lock", "result"]).splitlines()
        lines.append(LEGEND + "; NLM lock: the NFSv3 client's lock reclaimed")
    lines += _not_moved(r)
    for f in r.get("failovers", []):
        first = f.get("spread_before")
        if first:
            lines.append(f"  {f['n']} first: {', '.join(first['volumes']) or 'vol2'} moved {first['from']} -> "
                         f"{first['to']} (a planned move, outage {_num(first.get('outage_s'))} s: "
                         f"{'ok' if first['ok'] else 'FAILED'}), so that a volume stays on the node taking vol1 over")
        worst = "" if f.get("outage_s") is None else f" (worst outage {f['outage_s']:.2f} s)"
        lines.append(f"  {f['n']} {f['kind']}: {f['what']}{worst}"
                     + (f" (grace over {f['grace_over_after_s']} s after the IP was up)"
                        if f.get("grace_over_after_s") is not None else ""))
        lines += _spread(f)
        for name, w in (f.get("waited_for_expiry") or {}).items():
            lines.append(f"      {name}: {_expiry_line(w.get('node') or f['to'], w)}")
        for name, e in f.get("volumes", {}).items():
            if e.get("nlm"):
                lines.append(f"      {name}: {_nlm_line(e)}")
        for ln in f.get("pacemaker", [])[:8]:
            lines.append(f"      pacemaker: {ln}")
        for prob in f.get("problems", []):
            lines.append(f"      problem: {prob}")
    for name, w in (r.get("client_writes") or {}).items():
        lines.append(f"client of {name} wrote throughout: {w['records_acked']} records acknowledged, "
                     f"{'-' if w.get('acked_records_lost') is None else w['acked_records_lost']} missing "
                     f"afterwards; {w['stale_replies']} NFS4ERR_STALE replies")
    worst: dict[str, float] = {}
    for f in r.get("failovers", []):
        if f.get("outage_s") is not None:
            worst[f["kind"]] = max(worst.get(f["kind"], 0.0), f["outage_s"])
    if worst:
        lines.append("worst outage per failover kind: " + ", ".join(f"{k} {v:.2f} s" for k, v in worst.items()))
    graces = grace_of_unmoved(r)
    if graces:
        lines.append("volumes that did not move, on a node taking one over: NFS4ERR_GRACE per failover kind, worst "
                     + ", ".join(f"{k} {_num(v)} s" for k, v in graces.items()))
    if r.get("plot"):
        lines.append(f"timeline of each failover drawn to {r['plot']}")
    if any(f["kind"] == "loss" for f in r.get("failovers", [])):
        lines.append(f"fencing: {r['fencing']}")
    for prob in r.get("problems", []):
        lines.append(f"problem: {prob}")
    if r.get("kept"):
        k = r["kept"]
        lines.append(f"lab kept up (state {k['state_file']}):")
        for name, n in k["nodes"].items():
            lines.append(f"  {name} ({n['address']}): {n['enter']}    then: {n['then']}")
        lines.append(f"  client ({k['client']['address']}): {k['client']['enter']}")
        lines += [f"  {name}: {v['mountpoint']} on {v['device']}, IP {v['ip']}, running on {v['on']}"
                  for name, v in k["volumes"].items()]
        lines.append(f"  tear down: {k['down']}")
    else:
        left = r.get("left_behind") or []
        lines.append("cleaned up: nothing left behind" if not left else "LEFT BEHIND: " + ", ".join(left))
    timing = f"setup {r.get('setup_s', '-')} s, total {r.get('total_s', '-')} s"
    lines.append(("OK: every failover held" if r["ok"] else "FAILED: see above") + f" ({timing})")
    return "\n".join(lines)
