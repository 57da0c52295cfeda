"""One failover of the cluster lab: trigger it, let Pacemaker move the groups, gather the
evidence, and put the lab back together for the next one.

The kinds (`KINDS`): a planned move (crm_resource --move), a node shutdown (SIGTERM to
pacemakerd), kill -9 of ganesha.nfsd (the monitor fails, migration-threshold=1 moves the
group) and a node loss (every process of the node killed at once, its cable unplugged).
With Ganesha each moved volume's client proves the move (evidence.py: outage, handles,
reclaim, data, writes); with knfsd the etab identity and rmtab (knfsd_evidence.py). From
three nodes on a node that goes away may send its volumes to different survivors (Pacemaker
chooses; `spread_check` holds it to that), and a "failback" moves them home between
failovers. With --plot each failover also records its timeline (timeline.py).

Every failover is watched from a volume that does not move too, on a node that takes one
over: its clients' new opens say how long the take-over's grace stalled them (`not_moved`,
NFS4ERR_GRACE seconds). From three nodes on every node holds volumes of its own at each
failover (the fail-backs see to it); with two, when vol1 and vol2 share a node, vol2 is
first moved away (a planned move with its own evidence, `spread_before`). With a Ganesha
instance per volume (`--ganesha-mode instance`) the kill is of vol1's own instance (vol1
moves alone), nothing is copied and no take-over event is sent (the moved volume's instance
reads its clients' records on the volume itself, ganesha_instance.py), and a volume that did
not move must never get NFS4ERR_GRACE.

`ClusterFailovers` is a part of `ClusterLab` (cluster_lab.py), kept apart because the
failover is a job of its own; it uses the lab's `cluster`, `services`, `vols`, `net`,
`opts`, `say`, `where()` and `wait_group()`.
"""
from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sandbox import ClusterError
from .ganesha_daemon import GANESHA_BUS_NAME, in_grace
from .knfsd_evidence import etab_lines, knfsd_evidence, rmtab_lines
from .layout import loss_detect_s
from .procs import wait_until
from .recipe import VolumeRecipe
from .timeline import GraceSampler
from .timeline import build as build_timeline
from .volume_clients import VolumeClients


KINDS = {
    "move": "planned move: crm_resource --move of vol1's group to another node (the one with the fewest volumes)",
    "shutdown": "node shutdown: SIGTERM to pacemakerd on vol1's node, which then goes down",
    "kill": "kill -9 of ganesha.nfsd on vol1's node (with an instance per volume: vol1's own): the monitor "
            "fails, the group moves",
    "loss": "node loss: corosync, pacemakerd and everything else of vol1's node killed at once",
}
KNFSD_KINDS = ("move", "shutdown", "loss")  # no userspace daemon to kill -9 with knfsd
MONITOR_S = 5     # the exports agent's recurring monitor interval in the lab's recipe
NODES = ("node-a", "node-b")   # the two-node lab's (layout.node_names(2))
FAILBACK = ("fail-back (three nodes and more): every volume not on its preferred node moved home "
            "(crm_resource --move, then --clear), as an admin does once the failed node is back")


@dataclass
class Vol:
    """One volume of the lab and the clients watching it."""

    recipe: VolumeRecipe
    image: Path
    clients: VolumeClients | None = None
    uuid: str = ""      # the volume's (its own instance's D-Bus name and files)


class ClusterFailovers:
    """The failover procedure of `ClusterLab` (see the module doc)."""

    def log_since(self, marks: dict[str, int]) -> list[tuple[str, str]]:
        """[(node, line)] that each node's Pacemaker logged since `marks` (log_marks())."""
        out = []
        for name, pos in marks.items():
            log = self.cluster.nodes[name].pacemaker_log
            try:
                with open(log, "rb") as fh:
                    fh.seek(pos)
                    text = fh.read().decode(errors="replace")
            except OSError:
                continue
            out += [(name, line) for line in text.splitlines()]
        return out

    def pacemaker_lines(self, logged: list[tuple[str, str]]) -> list[str]:
        """What the cluster logged (log_since()): the scheduler's decisions and the results."""
        rx = re.compile(r"pacemaker-schedulerd.*\b(Move|Recover|Start|Stop)\s+vol|"
                        r"pacemaker-controld.*Result of (start|stop|monitor) operation for vol\S*-exports|"
                        r"pacemaker-controld.*Result of \S+ operation for vol\S+ on \S+: (?!ok|Cancelled)|"
                        r"pacemaker-execd.*log_op_output.*vol\S+_(start|stop|monitor)|"
                        r"pacemaker-controld.*(Node \S+ state is now lost|Our peer on the DC .* is dead)")
        out: list[tuple[str, str]] = []
        for name, line in logged:
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
    def routes(self, kind: str, src: str, subject: str = "vol1") -> dict[str, tuple[str, str | None]]:
        """The volumes this failover of `subject` moves: name -> (from, to), to None where
        Pacemaker chooses (a node going away takes every volume on it; the kill of a
        volume's own instance takes that volume only)."""
        placed = self.placement()
        if kind == "failback":
            return {n: (placed[n], v.recipe.preferred_node) for n, v in self.vols.items()
                    if placed[n] not in (None, v.recipe.preferred_node)}
        if kind == "move":   # to the node with the fewest volumes (the first of equals)
            load = {n: sum(w == n for w in placed.values()) for n in self.node_names if n != src}
            return {subject: (src, min(load, key=lambda n: (load[n], self.node_names.index(n))))}
        if kind == "kill" and self.opts.instance:
            return {subject: (src, None)}
        return {n: (src, None) for n, w in placed.items() if w == src}

    def failover(self, i: int, kind: str) -> dict[str, Any]:
        """Failover `i` of `kind` with its evidence; first, when every volume runs on vol1's
        node (two nodes), vol2 is moved away so that one stays on the node taking vol1 over."""
        placed = self.placement()
        spread = None
        if (self.opts.server == "ganesha" and kind != "failback" and "vol2" in self.vols
                and len(set(placed.values())) == 1):
            self.say(f"failover {i}: every volume on {placed['vol1']}: vol2 moves away first, so that one "
                     "stays on the node taking vol1 over")
            spread = self.move_one(i, "move", "vol2", first=True)
            if not spread["ok"]:
                spread["problems"].insert(0, "moving vol2 away first failed")
                return spread
        fo = self.move_one(i, kind, "vol1")
        if spread is not None:
            fo["spread_before"] = spread
        return fo

    def move_one(self, i: int, kind: str, subject: str, first: bool = False) -> dict[str, Any]:
        """`kind` applied to volume `subject` (a move: its group; otherwise what runs on its
        node, see routes()), with the evidence; `first`: the move before failover `i`."""
        say = self.say
        v1 = self.vols[subject]
        src = self.where(v1)
        routes = self.routes(kind, src, subject)
        moving = [self.vols[n] for n in routes]
        what = KINDS.get(kind, FAILBACK)
        if first:
            what = f"before failover {i}: crm_resource --move of {subject}'s group away from vol1's node"
        fo: dict[str, Any] = {"n": i, "kind": kind, "what": what,
                              "from": ", ".join(sorted({a for a, _ in routes.values()})), "to": None,
                              "volumes": {}, "problems": []}
        bad = fo["problems"].append
        label = f"failover {i}, first ({kind})" if first else f"failover {i} ({kind})"
        say(f"{label}: " + ", ".join(f"{n} {a} -> {b or '?'}" for n, (a, b) in routes.items()))
        ganesha = self.opts.server == "ganesha"
        before = {n: self.snapshot(a, self.vols[n]) for n, (a, _) in routes.items()}
        running = [n.name for n in self.cluster.running_nodes()]
        graces0 = {n: {d: self.services[d].grace_events(self.vols[n].recipe.ip)
                       for d in ([b] if b else [x for x in running if x != a])}
                   for n, (a, b) in routes.items()}
        marks = self.log_marks()
        staying = [v for v in self.vols.values() if v not in moving and v.clients is not None]
        if ganesha:
            self.wait_forgotten(fo, routes, running)
            for v in self.vols.values():
                v.clients.begin(moving=v in moving)
        sampler = self.grace_sampler(running) if ganesha and self.opts.timeline else None
        t_fail, wall0 = time.monotonic(), time.time()
        self.trigger(kind, src, routes, v1)
        # Pacemaker decides. Each moved volume's client is on its own, as real clients are: one
        # thread per volume waits for its group on the new node (IP, last, included), then
        # gathers its evidence (reclaiming in that node's grace) without waiting for the others.
        # measured here: at most ~4 s with two nodes; more for a loss in a bigger cluster
        limit = 30 + {"kill": MONITOR_S, "loss": loss_detect_s(len(self.node_names))}.get(kind, 0)
        t_up: dict[str, float] = {}
        landed: dict[str, str] = {}

        def one(v: Vol) -> None:
            name = v.recipe.name
            a, b = routes[name]
            left = max(1.0, t_fail + limit - time.monotonic())
            try:
                landed[name] = self.wait_group(v, b, timeout=left) if b else self.wait_moved(v, a, timeout=left)
            except ClusterError as exc:
                bad(f"the cluster did not move {name} away from {a} within {limit} s: "
                    f"{' '.join(str(exc).split())[:400]}")
                if ganesha:
                    v.clients.client.stop_probing()
                return
            t_up[name] = time.monotonic()
            fo["volumes"][name] = self.volume_evidence(i, v, routes[name][0], landed[name], t_fail, t_up[name],
                                                       before[name], graces0[name], bad)
        with ThreadPoolExecutor(max_workers=max(1, len(moving)), thread_name_prefix="gha-lab-vol") as pool:
            for _ in pool.map(one, moving):
                pass
        fo["volumes"] = {v.recipe.name: fo["volumes"][v.recipe.name] for v in moving if v.recipe.name in fo["volumes"]}
        landed = {v.recipe.name: landed[v.recipe.name] for v in moving if v.recipe.name in landed}
        fo["to"] = ", ".join(sorted(set(landed.values()))) or None
        fo["landed"] = landed
        logged = self.log_since(marks)
        fo["pacemaker"] = self.pacemaker_lines(logged)
        self.spread_check(fo, kind, landed)
        grace_over_at: dict[str, float | None] = {}
        if ganesha:
            for dst in sorted(set(landed.values())):
                grace_over_at[dst] = self.wait_grace_over(
                    fo, dst, min(t_up[n] for n, d in landed.items() if d == dst),
                    [self.bus_name(self.vols[n]) for n, d in landed.items() if d == dst])
            self.new_opens(fo, staying, grace_over_at, set(landed.values()))
        for v in moving:
            ev = fo["volumes"].get(v.recipe.name)
            if ev is None:
                continue
            if ganesha:
                name = v.recipe.name
                ev.update(v.clients.after_grace(t_up[name], grace_over_at.get(landed[name])))
                ev.update(v.clients.watch.fresh_open(f"/{name}/data/after-failover-{i}.txt"))
                ev["writes"] = v.clients.watch.write_summary()
                # Pacemaker's reaction time comes on top of the lab's grace + 2 s.
                ev["checks"] = {**v.clients.watch.checks(ev, outage_limit=self.outage_limit(kind)),
                                **v.clients.checks(ev, new_open_limit=self.opts.new_open_limit())}
                if self.opts.instance:   # nothing copied, no take-over event: the records are on the volume
                    for check in ("recovery_records_moved", "grace_events_sent"):
                        ev["checks"].pop(check)
                    ev["checks"]["no_takeover_event"] = ev.get("grace_events_sent") == 0
                    ev["checks"]["records_on_volume"] = ev.get("recovery_records_on_volume", 0) > 0
            else:
                ev["checks"] = {k: ev[k] for k in ("etab_identical", "fsids_equal", "rmtab_migrated")}
            for check, passed in ev["checks"].items():
                if not passed:
                    bad(f"{v.recipe.name}: check failed: {check}")
        if sampler is not None:
            fo["timeline"] = self.timeline(t_fail, wall0, routes, landed, self.log_since(marks), sampler.stop())
        self.after(kind, src, routes)
        vols = list(fo["volumes"].values())
        complete = bool(vols) and len(vols) == len(moving)
        if ganesha:
            fo["handles_preserved"] = complete and all(e["handles_preserved"] for e in vols)
            fo["data_verified"] = complete and all(e["data_verified"] for e in vols)
            outages = [e.get("outage_s") for e in vols]
            fo["outage_s"] = max(outages) if outages and None not in outages else None
            fo["outage_limit_s"] = self.outage_limit(kind)
            fo["new_open_limit_s"] = self.opts.new_open_limit()
            summary = (f"outage {fo['outage_s']} s, handles_preserved {fo['handles_preserved']}, "
                       f"data_verified {fo['data_verified']}, new opens blocked "
                       + ", ".join(f"{n} {e.get('new_opens', {}).get('outage_s')} s"
                                   for n, e in {**fo["volumes"], **fo.get("not_moved", {})}.items())
                       + "".join(f"; {n}, not moved, on {e['on']}: new opens in NFS4ERR_GRACE "
                                 f"{e['new_opens'].get('grace_s')} s"
                                 for n, e in fo.get("not_moved", {}).items() if e.get("on_receiving_node")))
        else:
            fo["identity_kept"] = complete and all(e["etab_identical"] and e["fsids_equal"] for e in vols)
            summary = f"etab byte-identical and fsids equal: {fo['identity_kept']}"
        fo["ok"] = complete and not fo["problems"]
        say(f"  {label}: {'OK' if fo['ok'] else 'FAILED'}: {summary}")
        return fo

    def volume_evidence(self, i: int, v: Vol, src: str, dst: str, t_fail: float, t_up: float,
                        before: dict[str, Any], graces0: dict[str, int], bad) -> dict[str, Any]:
        """What volume `v`, moved from `src` and served on `dst` since `t_up`, shows: its
        identity there and (Ganesha) its client's evidence and the grace event sent."""
        ev: dict[str, Any] = {"from": src, "to": dst, "service_gap_s": round(t_up - t_fail, 2)}
        after = self.snapshot(dst, v)
        if self.opts.server != "ganesha":
            return {**ev, **knfsd_evidence(before, after)}
        ev.update(self.client_evidence(i, v, dst, t_up, bad))
        ev["export_ids"] = {"before": sorted(before["live"]), "after": sorted(after["live"])}
        ev["export_ids_equal"] = before == after and set(after["live"]) == set(after["registry"].values())
        g0 = graces0.get(dst, 0)
        if not self.opts.instance:   # an instance gets no take-over event: nothing to wait for
            wait_until(lambda: self.services[dst].grace_events(v.recipe.ip) > g0, 1.0)
        ev["grace_events_sent"] = self.services[dst].grace_events(v.recipe.ip) - g0
        return ev

    def new_opens(self, fo: dict[str, Any], staying: list[Vol], grace_over_at: dict[str, float | None],
                  receiving: set[str]) -> None:
        """The volumes that did not move: how long their clients could not open new files
        while the others moved, and how long of it was NFS4ERR_GRACE (grace is server-wide: a
        take-over by the shared Ganesha serving them blocks their new opens too; measured,
        not assumed). With an instance per volume they must get none at all. `grace_over_at`:
        when each node that took a volume left grace (time.monotonic(); None: never);
        `receiving`: the nodes that took one."""
        out = {}
        for v in staying:
            on = self.where(v)
            ev = v.clients.after_grace(None, grace_over_at.get(on))
            ev["on"] = on
            ev["on_receiving_node"] = on in receiving
            ev["checks"] = v.clients.checks(ev, new_open_limit=None)
            if self.opts.instance:
                ev["checks"]["new_opens_never_in_grace"] = ev["new_opens"].get("grace_s") == 0.0
            for check, passed in ev["checks"].items():
                if not passed:
                    fo["problems"].append(f"{v.recipe.name} (did not move): check failed: {check}")
            out[v.recipe.name] = ev
        if out:
            fo["not_moved"] = out

    def wait_forgotten(self, fo: dict[str, Any], routes: dict[str, tuple[str, str | None]],
                       running: list[str]) -> None:
        """Until every node a moving volume may land on (its route's target; where Pacemaker
        chooses, every running node but its own) expired the volume's client ids it may hold
        from an earlier stay (VolumeClients.wait_forgotten says why: a failback within
        Lease_Lifetime is refused its reclaims)."""
        lease = self.opts.lease_lifetime
        for name, (a, b) in routes.items():
            v = self.vols[name]
            for dst in ([b] if b else [x for x in running if x != a]):
                out = v.clients.wait_forgotten(self.services[dst].remembered_clients, timeout=3 * lease + 5)
                if out["waited_s"] >= 0.2 or out["still_remembered"]:
                    fo.setdefault("waited_for_expiry", {})[name] = {**out, "node": dst}
                    self.say(f"  waited {out['waited_s']} s for {dst} to expire the old client ids of "
                             f"{name}'s clients (a failback within Lease_Lifetime is refused its reclaims)")
                if out["still_remembered"]:
                    fo["problems"].append(f"{name}: {dst} still holds the client ids of "
                                          f"{', '.join(out['still_remembered'])}")

    def snapshot(self, node: str, v: Vol) -> dict[str, Any]:
        """The volume's identity as `node` serves it: registry, and the live table."""
        svc, mp = self.services[node], v.recipe.mountpoint
        if self.opts.server == "ganesha":
            return {"registry": self.registry(node, v), "live": svc.live_ids(mp, bus_name=self.bus_name(v))}
        return {"registry": self.registry(node, v, key="fsid"),
                "etab": etab_lines(svc.var_lib_nfs / "etab", mp),
                "rmtab": rmtab_lines(svc.var_lib_nfs / "rmtab", mp)}

    def client_evidence(self, i: int, v: Vol, dst: str, t_up: float, bad) -> dict[str, Any]:
        """What the NFSv4 client of `v` saw and could do after the move (evidence.py)."""
        ev = v.clients.watch.settle(t_up, label=f"client of {v.recipe.name}")
        ev["recovery_records_moved"] = self.services[dst].takeover_records(v.recipe.ip)
        if self.opts.instance:
            ev["recovery_records_on_volume"] = self.instance_records(dst, v)
        result = v.clients.watch.recover(i, dst, t_up, lambda: self.volume_file(dst, v))
        self.seen_server(dst, result.get("server_identity"), v.recipe.name if self.opts.instance else None)
        ev.update({k: val for k, val in result.items() if k != "error"})
        if result.get("error"):
            bad(f"{v.recipe.name}: {result['error']}")
        return ev

    def outage_limit(self, kind: str) -> float:
        """grace + 2 s (the direct lab's bound) plus what the cluster needs to notice and act:
        a monitor interval for a crash, corosync's token and consensus (growing with the
        number of nodes, layout.loss_detect_s) plus a DC election for a lost node, and the
        sequential stop/start of the group's three resources."""
        detect = {"move": 0, "failback": 0, "shutdown": 0, "kill": MONITOR_S,
                  "loss": max(5.0, loss_detect_s(len(self.node_names)))}[kind]
        return self.opts.grace_period + 2 + detect + 5

    def trigger(self, kind: str, src: str, routes: dict[str, tuple[str, str | None]], subject: Vol) -> None:
        say = self.say
        if kind in ("move", "failback"):
            for name, (_, dst) in routes.items():
                group = self.vols[name].recipe.group
                self.cluster.crm_resource("--move", "--resource", group, "--node", dst)
                say(f"  crm_resource --move --resource {group} --node {dst}")
        elif kind == "shutdown":
            say(f"  SIGTERM to pacemakerd on {src} (node shutdown)")
            self.cluster.stop_node(src, timeout=90)
            self.services[src].stop()   # then the node goes down: its services stop too
        elif kind == "kill" and self.opts.instance:
            pid = self.services[src].kill_instance(subject.uuid)
            say(f"  kill -9 of {subject.recipe.name}'s own ganesha.nfsd on {src} (pid {pid})")
        elif kind == "kill":
            pid = self.services[src].kill_ganesha()
            say(f"  kill -9 ganesha.nfsd on {src} (pid {pid})")
        elif kind == "loss":
            say(f"  node loss: SIGKILL to every process of {src}, its cable unplugged")
            self.net.set_link(src, False)   # a dead machine answers nothing, not even ARP
            self.cluster.kill_node(src)
            self.services[src].stop()   # reap what we started; it died with the node

    def after(self, kind: str, src: str, routes: dict[str, tuple[str, str | None]]) -> None:
        """Put the lab back together for the next failover, as an admin would."""
        if kind in ("move", "failback"):
            for name in routes:
                self.cluster.crm_resource("--clear", "--resource", self.vols[name].recipe.group)
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
            if not self.opts.instance:   # an instance is started again by the agent, where its volume goes
                self.services[src].restart_ganesha()
            for v in self.vols.values():
                self.cluster.crm_resource("--cleanup", "--resource", v.recipe.group, check=False)
            self.say(("  " if self.opts.instance else f"  ganesha.nfsd on {src} restarted by its service manager; ")
                     + "crm_resource --cleanup cleared the fail counts")

    def spread_check(self, fo: dict[str, Any], kind: str, landed: dict[str, str]) -> None:
        """From three nodes on (a capacity set, layout.py): the volumes of a node that went
        away must land on different survivors; the CIB's utilization is the proof."""
        if kind not in ("shutdown", "kill", "loss") or self.recipe.capacity is None or len(landed) < 2:
            return
        fo["spread"] = len(set(landed.values())) == len(landed)
        fo["placement_proof"] = self.placement_proof()
        if not fo["spread"]:
            fo["problems"].append(f"the volumes of {fo['from']} did not land on different survivors: {landed}")

    def grace_sampler(self, nodes: list[str]) -> GraceSampler:
        def probe(node: str) -> bool | None:
            svc = self.services[node]
            if self.opts.instance:   # the instances of the volumes on the node: any in grace
                seen = []
                for v in self.vols.values():
                    try:
                        seen.append(in_grace(svc.bus_address, self.bus_name(v)))
                    except Exception:   # noqa: BLE001 - no such instance on this node
                        pass
                return any(seen) if seen else None
            if svc.ganesha is None or svc.ganesha.proc is None or svc.ganesha.proc.poll() is not None:
                return None
            return in_grace(svc.bus_address)
        return GraceSampler(nodes, probe).start()

    def timeline(self, t0: float, wall0: float, routes: dict[str, tuple[str, str | None]],
                 landed: dict[str, str], logged: list[tuple[str, str]],
                 grace: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
        """This failover on one clock (timeline.py), every volume's client, moved or not."""
        vols = {}
        for name, v in self.vols.items():
            if v.clients is None:
                continue
            moved = name in routes
            vols[name] = {"moved": moved, "from": routes[name][0] if moved else self.where(v),
                          "to": landed.get(name) if moved else self.where(v),
                          "reads": v.clients.watch.window.probes if moved and v.clients.watch.window else [],
                          "writes": list(v.clients.client.all_writes.probes)}
        return build_timeline(t0=t0, wall0=wall0, t_end=time.monotonic(), volumes=vols,
                              log_lines=logged, grace=grace)

    def wait_grace_over(self, fo: dict[str, Any], dst: str, t_up: float, bus_names: list[str]) -> float | None:
        """Until `dst`'s Ganesha (each of `bus_names`: the node's shared one, or the moved
        volumes' own instances) is out of grace: when that was seen (time.monotonic()), None
        if never."""
        svc = self.services[dst]

        def over() -> bool:
            try:
                return not any(in_grace(svc.bus_address, name) for name in set(bus_names))
            except Exception:
                return False
        if wait_until(over, self.opts.grace_period + 20, interval=0.2):
            fo["grace_over_after_s"] = round(time.monotonic() - t_up, 2)
            return time.monotonic()
        fo["problems"].append(f"{dst} never left grace")
        return None

    # ---- helpers ----------------------------------------------------------------------
    def bus_name(self, v: Vol) -> str:
        """The D-Bus name of the Ganesha serving `v`: its own instance's, or the node's."""
        if not self.opts.instance:
            return GANESHA_BUS_NAME
        from ..backends.ganesha_instance_conf import bus_name, dbus_prefix

        return bus_name(dbus_prefix(v.uuid))

    def instance_records(self, node: str, v: Vol) -> int:
        """NFSv4 client records in `v`'s instance's RecoveryRoot on the volume, read on `node`:
        those still to reclaim (v4old) and those confirmed since (v4recov)."""
        from ..backends.ganesha_instance_conf import OLD_DIR, RECOV_DIR, RECOVERY_DIR

        root = f"{v.recipe.mountpoint}/.ganesha-ha/{RECOVERY_DIR}"
        cp = self.services[node].run(["ls", "-1", f"{root}/{OLD_DIR}", f"{root}/{RECOV_DIR}"])
        return sum(1 for line in cp.stdout.splitlines() if "-(" in line)

    def registry(self, node: str, v: Vol, key: str = "export_id") -> dict[str, int]:
        """directory → Export_Id (or fsid) as the registry on the volume says, read on `node`."""
        cp = self.services[node].cli("export", "list", v.recipe.mountpoint, "--json", check=False)
        if cp.returncode != 0:
            return {}
        return {e["directory"]: e[key] for e in json.loads(cp.stdout)}

    def volume_file(self, node: str, v: Vol) -> bytes | None:
        cp = self.services[node].run(["cat", f"{v.recipe.mountpoint}/data/client.txt"])
        return cp.stdout.encode() if cp.returncode == 0 else None
