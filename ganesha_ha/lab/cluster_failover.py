"""One failover of the cluster lab: trigger it, let Pacemaker move the groups, gather the
evidence, and put the lab back together for the next one.

The kinds (`KINDS`): a planned move (crm_resource --move), a node shutdown (SIGTERM to
pacemakerd), kill -9 of ganesha.nfsd (the monitor fails, migration-threshold=1 moves the
group) and a node loss (every process of the node killed at once, its cable unplugged).
With Ganesha each moved volume's client proves the move (evidence.py: outage, handles,
reclaim, data, writes); with knfsd the etab identity and rmtab (knfsd_evidence.py).

`ClusterFailovers` is a part of `ClusterLab` (cluster_lab.py), kept apart because the
failover is a job of its own; it uses the lab's `cluster`, `services`, `vols`, `net`,
`opts`, `say`, `where()` and `wait_group()`.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sandbox import ClusterError
from .evidence import ClientWatch
from .ganesha_daemon import in_grace
from .knfsd_evidence import etab_lines, knfsd_evidence, rmtab_lines
from .labclient import LabClient
from .procs import wait_until
from .recipe import VolumeRecipe

KINDS = {
    "move": "planned move: crm_resource --move of vol1's group to the other node",
    "shutdown": "node shutdown: SIGTERM to pacemakerd on vol1's node, which then goes down",
    "kill": "kill -9 of ganesha.nfsd on vol1's node: the monitor fails, the group moves",
    "loss": "node loss: corosync, pacemakerd and everything else of vol1's node killed at once",
}
KNFSD_KINDS = ("move", "shutdown", "loss")  # no userspace daemon to kill -9 with knfsd
MONITOR_S = 5     # the exports agent's recurring monitor interval in the lab's recipe
NODES = ("node-a", "node-b")


@dataclass
class Vol:
    """One volume of the lab and the client watching it."""

    recipe: VolumeRecipe
    image: Path
    watch: ClientWatch | None = None
    client: LabClient | None = None


class ClusterFailovers:
    """The failover procedure of `ClusterLab` (see the module doc)."""

    def pacemaker_lines(self, marks: dict[str, int]) -> list[str]:
        """What the cluster logged since `marks`: the scheduler's decisions and the results."""
        rx = re.compile(r"pacemaker-schedulerd.*\b(Move|Recover|Start|Stop)\s+vol|"
                        r"pacemaker-controld.*Result of (start|stop|monitor) operation for vol\S*-exports|"
                        r"pacemaker-controld.*Result of \S+ operation for vol\S+ on \S+: (?!ok|Cancelled)|"
                        r"pacemaker-execd.*log_op_output.*vol\S+_(start|stop|monitor)|"
                        r"pacemaker-controld.*(Node \S+ state is now lost|Our peer on the DC .* is dead)")
        out: list[tuple[str, str]] = []
        for name, pos in marks.items():
            log = self.cluster.nodes[name].pacemaker_log
            try:
                with open(log, "rb") as fh:
                    fh.seek(pos)
                    text = fh.read().decode(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if rx.search(line) and "probe" not in line:
                    stamp = " ".join(line.split()[:3])   # "Nov 26 00:10:51.123": both nodes, one clock
                    out.append((stamp, f"{name}: " + " ".join(line.split()[4:])[:200]))
        return [text for _, text in sorted(out, key=lambda item: item[0])][:40]

    def log_marks(self) -> dict[str, int]:
        out = {}
        for name, cn in self.cluster.nodes.items():
            try:
                out[name] = cn.pacemaker_log.stat().st_size
            except OSError:
                out[name] = 0
        return out

    # ---- one failover -----------------------------------------------------------------
    def failover(self, i: int, kind: str) -> dict[str, Any]:
        say = self.say
        v1 = self.vols["vol1"]
        src = self.where(v1)
        dst = next(n for n in NODES if n != src)
        # a move takes vol1's group only; the other kinds take everything on vol1's node
        moving = [v1] if kind == "move" else [v for v in self.vols.values() if self.where(v) == src]
        fo: dict[str, Any] = {"n": i, "kind": kind, "what": KINDS[kind], "from": src, "to": dst,
                              "volumes": {}, "problems": []}
        bad = fo["problems"].append
        say(f"failover {i} ({kind}): {', '.join(v.recipe.name for v in moving)} {src} -> {dst}")
        ganesha = self.opts.server == "ganesha"
        before = {v.recipe.name: self.snapshot(src, v) for v in moving}
        graces0 = {v.recipe.name: self.services[dst].grace_events(v.recipe.ip) for v in moving}
        marks = self.log_marks()
        if ganesha:
            for v in moving:
                v.watch.begin()
        t_fail = time.monotonic()
        self.trigger(kind, src, dst, v1)
        # Pacemaker decides; we wait for each moved group to run on dst, IP (last) included.
        limit = 30 + (MONITOR_S if kind == "kill" else 0)   # measured here: at most ~4 s
        t_up: dict[str, float] = {}
        try:
            for v in moving:
                self.wait_group(v, dst, timeout=max(1.0, t_fail + limit - time.monotonic()))
                t_up[v.recipe.name] = time.monotonic()
        except ClusterError as exc:
            bad(f"the cluster did not move {', '.join(v.recipe.name for v in moving)} to {dst} "
                f"within {limit} s: {' '.join(str(exc).split())[:400]}")
        fo["pacemaker"] = self.pacemaker_lines(marks)
        for v in moving:
            name = v.recipe.name
            if name not in t_up:
                if ganesha:
                    v.client.stop_probing()
                continue
            ev: dict[str, Any] = {"from": src, "to": dst, "service_gap_s": round(t_up[name] - t_fail, 2)}
            after = self.snapshot(dst, v)
            if ganesha:
                ev.update(self.client_evidence(i, v, dst, t_up[name], bad))
                ev["export_ids"] = {"before": sorted(before[name]["live"]), "after": sorted(after["live"])}
                ev["export_ids_equal"] = (before[name] == after
                                          and set(after["live"]) == set(after["registry"].values()))
                wait_until(lambda v=v: self.services[dst].grace_events(v.recipe.ip) > graces0[name], 1.0)
                ev["grace_events_sent"] = self.services[dst].grace_events(v.recipe.ip) - graces0[name]
            else:
                ev.update(knfsd_evidence(before[name], after))
            fo["volumes"][name] = ev
        if ganesha and t_up:
            self.wait_grace_over(fo, dst, min(t_up.values()))
        for v in moving:
            ev = fo["volumes"].get(v.recipe.name)
            if ev is None:
                continue
            if ganesha:
                ev.update(v.watch.fresh_open(f"/{v.recipe.name}/data/after-failover-{i}.txt"))
                ev["writes"] = v.watch.write_summary()
                # Pacemaker's reaction time comes on top of the lab's grace + 2 s.
                ev["checks"] = v.watch.checks(ev, outage_limit=self.outage_limit(kind))
            else:
                ev["checks"] = {k: ev[k] for k in ("etab_identical", "fsids_equal", "rmtab_migrated")}
            for check, passed in ev["checks"].items():
                if not passed:
                    bad(f"{v.recipe.name}: check failed: {check}")
        self.after(kind, src)
        vols = list(fo["volumes"].values())
        complete = bool(vols) and len(vols) == len(moving)
        if ganesha:
            fo["handles_preserved"] = complete and all(e["handles_preserved"] for e in vols)
            fo["data_verified"] = complete and all(e["data_verified"] for e in vols)
            outages = [e.get("outage_s") for e in vols]
            fo["outage_s"] = max(outages) if outages and None not in outages else None
            fo["outage_limit_s"] = self.outage_limit(kind)
            summary = (f"outage {fo['outage_s']} s, handles_preserved {fo['handles_preserved']}, "
                       f"data_verified {fo['data_verified']}")
        else:
            fo["identity_kept"] = complete and all(e["etab_identical"] and e["fsids_equal"] for e in vols)
            summary = f"etab byte-identical and fsids equal: {fo['identity_kept']}"
        fo["ok"] = complete and not fo["problems"]
        say(f"  failover {i} ({kind}): {'OK' if fo['ok'] else 'FAILED'}: {summary}")
        return fo

    def snapshot(self, node: str, v: Vol) -> dict[str, Any]:
        """The volume's identity as `node` serves it: registry, and the live table."""
        svc, mp = self.services[node], v.recipe.mountpoint
        if self.opts.server == "ganesha":
            return {"registry": self.registry(node, v), "live": svc.live_ids(mp)}
        return {"registry": self.registry(node, v, key="fsid"),
                "etab": etab_lines(svc.var_lib_nfs / "etab", mp),
                "rmtab": rmtab_lines(svc.var_lib_nfs / "rmtab", mp)}

    def client_evidence(self, i: int, v: Vol, dst: str, t_up: float, bad) -> dict[str, Any]:
        """What the NFSv4 client of `v` saw and could do after the move (evidence.py)."""
        ev = v.watch.settle(t_up, label=f"client of {v.recipe.name}")
        ev["recovery_records_moved"] = self.services[dst].takeover_records(v.recipe.ip)
        result = v.watch.recover(i, dst, t_up, lambda: self.volume_file(dst, v))
        ev.update({k: val for k, val in result.items() if k != "error"})
        if result.get("error"):
            bad(f"{v.recipe.name}: {result['error']}")
        return ev

    def outage_limit(self, kind: str) -> float:
        """grace + 2 s (the direct lab's bound) plus what the cluster needs to notice and act:
        a monitor interval for a crash, corosync's token and consensus plus a DC election for
        a lost node, and the sequential stop/start of the group's three resources."""
        detect = {"move": 0, "shutdown": 0, "kill": MONITOR_S, "loss": 5}[kind]
        return self.opts.grace_period + 2 + detect + 5

    def trigger(self, kind: str, src: str, dst: str, v1: Vol) -> None:
        say = self.say
        if kind == "move":
            self.cluster.crm_resource("--move", "--resource", v1.recipe.group, "--node", dst)
            say(f"  crm_resource --move --resource {v1.recipe.group} --node {dst}")
        elif kind == "shutdown":
            say(f"  SIGTERM to pacemakerd on {src} (node shutdown)")
            self.cluster.stop_node(src, timeout=90)
            self.services[src].stop()   # then the node goes down: its services stop too
        elif kind == "kill":
            pid = self.services[src].kill_ganesha()
            say(f"  kill -9 ganesha.nfsd on {src} (pid {pid})")
        elif kind == "loss":
            say(f"  node loss: SIGKILL to every process of {src}, its cable unplugged")
            self.net.set_link(src, False)   # a dead machine answers nothing, not even ARP
            self.cluster.kill_node(src)
            self.services[src].stop()   # reap what we started; it died with the node

    def after(self, kind: str, src: str) -> None:
        """Put the lab back together for the next failover, as an admin would."""
        if kind == "move":
            v1 = self.vols["vol1"]
            self.cluster.crm_resource("--clear", "--resource", v1.recipe.group)
        elif kind in ("shutdown", "loss"):
            t = time.monotonic()
            self.net.flush_foreign(src)     # it boots without the floating IPs it had
            self.net.set_link(src, True)
            # and its nfs-server rebuilds etab from its own /etc/exports (empty) at boot
            (self.services[src].var_lib_nfs / "etab").write_text("")
            self.cluster.start_node(src, timeout=90)
            self.boot_services(src)
            self.say(f"  {src} back: cluster member again after {time.monotonic() - t:.1f} s")
        elif kind == "kill":
            self.services[src].restart_ganesha()
            for v in self.vols.values():
                self.cluster.crm_resource("--cleanup", "--resource", v.recipe.group, check=False)
            self.say(f"  ganesha.nfsd on {src} restarted by its service manager; "
                     "crm_resource --cleanup cleared the fail counts")

    def wait_grace_over(self, fo: dict[str, Any], dst: str, t_up: float) -> None:
        svc = self.services[dst]

        def over() -> bool:
            try:
                return not in_grace(svc.bus_address)
            except Exception:
                return False
        if wait_until(over, self.opts.grace_period + 20, interval=0.2):
            fo["grace_over_after_s"] = round(time.monotonic() - t_up, 2)
        else:
            fo["problems"].append(f"{dst} never left grace")

    # ---- helpers ----------------------------------------------------------------------
    def registry(self, node: str, v: Vol, key: str = "export_id") -> dict[str, int]:
        """directory → Export_Id (or fsid) as the registry on the volume says, read on `node`."""
        cp = self.services[node].cli("export", "list", v.recipe.mountpoint, "--json", check=False)
        if cp.returncode != 0:
            return {}
        return {e["directory"]: e[key] for e in json.loads(cp.stdout)}

    def volume_file(self, node: str, v: Vol) -> bytes | None:
        cp = self.services[node].run(["cat", f"{v.recipe.mountpoint}/data/client.txt"])
        return cp.stdout.encode() if cp.returncode == 0 else None
