"""`ganesha-ha lab` (the default, `--cluster`): the failover lab on a real Pacemaker cluster of
two nodes (or, with --nodes N, up to layout.MAX_NODES: see layout.py for the shape).

The direct lab (`--direct`, direct_lab.py) runs the agent by hand; here Pacemaker decides
every move.

1. Network (netns.py): nodes ``gha-<id>-node-a`` and ``-node-b``, the client ``-c``, a switch.
2. Cluster (sandbox/): corosync + pacemakerd on each node, in the node's own mount, UTS
   and network namespaces, with a fresh /run. On each node, as a real one would have:
   a system D-Bus at /run/dbus/system_bus_socket, ganesha.nfsd started before the volume
   resources, and its own /var/lib/nfs (etab, rmtab, Ganesha's recovery root). So the agent
   runs with *no* config file, with the defaults a packaged install has.
   ``ocf:ganesha-ha:exports`` is this checkout's agent (the file ``install-agent`` writes),
   shown to the nodes only, under their /usr/lib/ocf/resource.d.
3. Two volumes (loop devices standing in for DRBD), ``vol1`` preferring node-a and ``vol2``
   node-b: active-active, the seed's own scenario. The resources are loaded with crmsh
   from recipe.py, the same text the README shows users.
   From three nodes on: two volumes per node, each node's capacity 3 volumes, so a failed
   node's volumes land on different survivors, and a watched fail-back after each failover.
4. Failovers chosen by the cluster, each watched by an NFSv4 client per moved volume
   (evidence.py): ``move`` (crm_resource --move), ``shutdown`` (SIGTERM to pacemakerd, then
   the node goes down), ``kill`` (kill -9 of ganesha.nfsd: the monitor fails and, with
   migration-threshold=1, the group moves), ``loss`` (every process of the node killed at
   once). Fencing is off in the lab; the report says what it would add. Every failover
   has volumes that do not move on a node that takes one over (with two nodes, vol2 is
   first moved away from vol1's node when they share it): their clients' new opens say how
   long the take-over kept them in NFS4ERR_GRACE.
5. `--ganesha-mode instance` (issue 17): each volume is served by a ganesha.nfsd of its own
   that the agent starts after the IP (the recipe's group order for the mode: fs → IP →
   exports), instead of the node's shared one; the nodes run no Ganesha service and have an
   IPv6 address besides ::1 (README: Ganesha 4.3's Bind_Addr needs one). The same failovers;
   the kill is of vol1's own instance, the records stay on the volume, no take-over event is
   sent, and the lab fails if a volume that did not move got a single NFS4ERR_GRACE.
6. Teardown: the nodes, the daemons, the loop devices, the namespaces, the work directory.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..backends.ganesha_instance_conf import RECOV_DIR, RECOVERY_DIR
from ..recovery.ganesha_records import RECOVERY_FILE
from ..install import agent_text
from ..linux import proc_starttime
from .base import WORK_ROOT, LabOptions, LabRun, Progress
from .cluster_failover import KINDS, MONITOR_S, ClusterFailovers, Vol
from .knfsd_evidence import NFSD_NOTE
from .layout import capacity, id_range, node_names, volume_plan
from .volume_clients import VolumeClients
from .loopdev import detach_loops, make_volume_image
from .cluster_node import NodeServices
from .node import PY
from .procs import memory_kib, wait_until
from .recipe import Recipe, VolumeRecipe
from .refusals import check_scope_refusal
from .sandbox import ClusterError
from .sandbox.cluster import SandboxCluster
from .sandbox.ocf_root import ocf_overlay

VOLUMES = volume_plan(2)   # the two-node lab's; layout.volume_plan(n) for n nodes
IMAGE_SIZE = 128 * 1024 * 1024
BREAKS = {"lying-monitor": "the exports agent's recurring monitor always says OCF_SUCCESS "
                           "(it checks nothing; shows with the kill failover)"}
FENCING_NOTE = ("stonith is off in this lab, so Pacemaker took the lost node's resources as soon "
                "as membership said it was gone; the lab made that safe by killing every process "
                "of the node first. A real cluster must fence (power off) the node before that: "
                "with stonith-enabled=true the survivor waits for the fence, then recovers.")
CLI = str(Path(PY).with_name("ganesha-ha"))   # the console script beside this interpreter
INSTANCE_RECORDS = f"{RECOVERY_DIR}/{RECOV_DIR}"   # an instance's confirmed clients, in the volume's state dir
# each node's IPv6 address besides ::1 in instance mode: without one ganesha.nfsd 4.3 binds every
# address instead of its Bind_Addr, and the agent refuses to start an instance (README)
NODE_V6 = "fd00:6761::{}"


@dataclass
class ClusterLabOptions(LabOptions):
    kinds: tuple[str, ...] = tuple(KINDS)
    nodes: int = 2            # cluster nodes (layout.py: 2 to MAX_NODES)
    timeline: bool = False    # record each failover's timeline (timeline.py; --plot draws it)
    ganesha_mode: str = "shared"   # "instance": every volume a ganesha.nfsd of its own (issue 17)

    @property
    def instance(self) -> bool:
        return self.server == "ganesha" and self.ganesha_mode == "instance"


class ClusterLab(ClusterFailovers, LabRun):
    """One run of the cluster lab (layout.py: nodes "node-a", "node-b", ...; one volume per
    node with two nodes, two per node from three). See LabRun."""

    ID_PREFIX = "k"
    ROOT = WORK_ROOT

    def __init__(self, opts: ClusterLabOptions, progress: Progress | None = None) -> None:
        self.node_names = node_names(opts.nodes)
        self.plan = volume_plan(opts.nodes)
        # from three nodes on, every failover is followed by a watched fail-back, so that each
        # starts from every node holding its own two volumes (layout.py)
        self.schedule = list(opts.kinds) if opts.nodes == 2 else \
            [k for kind in opts.kinds for k in (kind, "failback")][:-1]
        super().__init__(opts, progress, nodes=self.node_names)
        self.services: dict[str, NodeServices] = {}
        self.cluster: SandboxCluster | None = None
        self.vols: dict[str, Vol] = {}
        self.recipe: Recipe | None = None
        self.report.update({"mode": "cluster", "nodes": list(self.node_names), "kinds_requested": list(opts.kinds),
                            "fencing": FENCING_NOTE})
        if opts.server == "ganesha":
            self.report["ganesha_mode"] = opts.ganesha_mode
        if opts.instance:   # the instance's, derived from the volume (ganesha_instance_conf.server_scope)
            self.report["server_scope_set"] = "ganesha-ha-<volume uuid>, each volume's own on every node"

    def planned(self) -> int:
        return len(self.schedule)

    def one_failover(self, i: int) -> dict[str, Any]:
        return self.failover(i, self.schedule[i - 1])

    def can_keep(self) -> bool:
        return self.cluster is not None

    def node_states(self) -> list[dict[str, Any]]:
        """Each node's cluster daemons (init, corosync, pacemakerd), then its services."""
        nodes = []
        for name in self.node_names:
            pids: list[list] = []
            cn = self.cluster.nodes[name] if self.cluster else None
            if cn is not None:
                pids += [[p, proc_starttime(p)] for p in (cn.init_pid, cn.corosync_pid, cn.pacemakerd_pid) if p]
            svc = self.services.get(name)
            if svc is not None:
                pids += svc.to_state()["pids"]
            nodes.append({"name": name, "pids": pids})
        return nodes

    # ---- setup ------------------------------------------------------------------------
    def setup(self) -> None:
        say = self.say
        self.workdir.mkdir(parents=True, mode=0o755)
        self.save_state()
        self.net.create()
        self.save_state()
        say(f"lab {self.run_id}: network namespaces {', '.join(self.net.ns(n) for n in self.node_names)} "
            f"(nodes), {self.net.client} (client), switch {self.net.switch}")
        binds: dict[str, list] = {}
        overlay = self.ocf_overlay()
        for slot, name in enumerate(self.node_names):
            svc = NodeServices(name, self.net.ns(name), self.workdir / name, self.net.addr(name),
                               grace_period=self.opts.grace_period,
                               run_ganesha=self.opts.server == "ganesha" and not self.opts.instance,
                               nlm=self.opts.nlm,
                               hosts={ip: f"{vol}.gha.lab" for vol, ip in self.volume_ips().items()},
                               server_scope=self.server_scope, lease_lifetime=self.opts.lease_lifetime,
                               epoch_slot=slot)
            svc.prepare()
            self.services[name] = svc
            binds[name] = [*overlay, *svc.node_binds()]
        self.cluster = SandboxCluster(
            self.workdir / "cluster", list(self.node_names), tag=self.run_id, binds=binds,
            netns={n: (self.net.ns(n), self.net.addr(n)) for n in self.node_names},
            crm_config={"cluster-name": f"gha-{self.run_id}", "cluster-recheck-interval": "10s"},
            die_with_parent=not self.opts.keep)   # kept: the nodes outlive this process
        t = time.monotonic()
        self.cluster.start(timeout=90 + 15 * len(self.node_names))
        self.save_state()
        self.report["nodes_online"] = sorted(self.cluster.online_nodes())
        self.report["cluster_online_s"] = round(time.monotonic() - t, 2)
        say(f"cluster: corosync + pacemakerd on {', '.join(self.node_names)}, all online after "
            f"{time.monotonic() - t:.1f} s")
        if self.opts.instance:
            self.add_node_ipv6()
        for name in self.node_names:
            self.boot_services(name)
        self.make_volumes()
        self.configure()
        self.connect_clients()
        self.measure_memory()

    def add_node_ipv6(self) -> None:
        """Give each node an IPv6 address besides ::1 (NODE_V6), as the README asks of a node
        serving instance volumes."""
        for k, name in enumerate(self.node_names, start=1):
            self.net.add_loopback_v6(name, NODE_V6.format(k))

    def ocf_overlay(self) -> list[tuple[Path, str]]:
        """/usr/lib/ocf/resource.d as the nodes see it (sandbox/ocf_root.py): the host's
        providers, plus this checkout's ocf:ganesha-ha:exports (as `install-agent` writes it)."""
        root = self.workdir / "ocf"
        text = agent_text()
        files = {"exports": text, "notify": agent_text(name="notify")}
        if "lying-monitor" in self.opts.breaks:
            real = root / "ganesha-ha" / "exports.real"
            files = {"exports.real": text,
                     "exports": ('#!/bin/sh\n# BREAK lying-monitor: says OCF_SUCCESS without checking anything\n'
                                 '[ "$1" = monitor ] && [ "${OCF_RESKEY_CRM_meta_interval:-0}" != 0 ] && exit 0\n'
                                 f'exec {real} "$@"\n'), "notify": files["notify"]}
        return ocf_overlay(root, files)

    def boot_services(self, name: str) -> None:
        """The node's system services, started as its init system would: bus, then Ganesha."""
        svc, cn = self.services[name], self.cluster.nodes[name]
        svc.attach(cn.init_pid)
        svc.start_daemons()
        self.save_state()
        what = (f", ganesha.nfsd pid {svc.ganesha.pid}" if svc.ganesha else
                ", no Ganesha service (each volume's own is started by the agent)" if self.opts.instance else "")
        self.say(f"node {name}: {svc.addr}, system D-Bus{what}")

    def volume_ips(self) -> dict[str, str]:
        """Each volume's floating IP."""
        return {name: f"{self.net.subnet}.{101 + k}" for k, (name, _) in enumerate(self.plan)}

    def make_volumes(self) -> None:
        subnet = self.net.subnet
        vols = []
        for k, (name, pref) in enumerate(self.plan):
            image = self.workdir / f"{name}.img"
            self.images.append(image)
            dev = make_volume_image(image, IMAGE_SIZE, f"gha-{name}")
            mp = self.workdir / name
            mp.mkdir(mode=0o755)
            rec = VolumeRecipe(name=name, device=dev, mountpoint=str(mp), ip=self.volume_ips()[name],
                               cidr_netmask=24, preferred_node=pref,
                               ganesha_mode="instance" if self.opts.instance else "shared")
            self.vols[name] = Vol(rec, image)
            self.save_state()
            # volume init and exports, on the preferred node, before the cluster manages it
            svc = self.services[pref]
            svc.mount(dev, mp)
            svc.run(["mkdir", "-p", f"{mp}/data", f"{mp}/home"], check=True)
            if self.opts.instance:   # no ranges to keep apart; the lab's grace and lease, as the nodes' daemons have
                init = ["--ganesha-mode", "instance", "--grace-period", str(self.opts.grace_period),
                        "--lease-lifetime", str(self.opts.lease_lifetime)]
            else:
                lo, hi = id_range(k + 1)   # disjoint: any volumes may meet on one node
                init = ["--id-range", f"{lo}-{hi}"]
            out = svc.cli("volume", "init", str(mp), "--server", self.opts.server, *init, "--json")
            self.vols[name].uuid = json.loads(out.stdout)["uuid"]
            for d in ("data", "home"):
                svc.cli("export", "add", str(mp), d, "--client", f"{subnet}.0/24(rw)",
                        "--squash", "no_root_squash", "--pseudo", f"/{name}/{d}")
            svc.umount(mp)
            vols.append(rec)
            if self.opts.instance:
                ids = "a ganesha.nfsd of its own"
            else:
                self.report.setdefault("export_id_ranges", {})[name] = [lo, hi]
                ids = f"Export_Ids {lo}-{hi}"
            self.say(f"volume {name}: {image.name} on {dev}, ext4; exports /{name}/data, /{name}/home; "
                     f"{ids}; IP {rec.ip}; prefers {pref}")
        self.recipe = Recipe(server=self.opts.server, volumes=tuple(vols), monitor_s=MONITOR_S,
                             fencing=False, capacity=capacity(self.opts.nodes), nodes=self.node_names)

    def configure(self) -> None:
        """Load the crmsh recipe into the cluster; wait for each group on its preferred node."""
        script = self.recipe.crmsh()
        path = self.workdir / "cluster.crm"
        path.write_text(script)
        home = self.workdir / "crm-home"
        home.mkdir(exist_ok=True)
        cp = self.cluster.run(["crm", "configure", "load", "update", str(path)], node=self.node_names[0],
                              timeout=120, env={"HOME": str(home), "TMPDIR": str(home)})
        if cp.returncode != 0:
            raise ClusterError(f"crm configure load failed ({cp.returncode}): {cp.stderr.strip()[:1500]}")
        self.report["crmsh"] = script
        t = time.monotonic()
        if "server-scope" in self.opts.breaks:   # the agent's scope check must refuse the starts
            check_scope_refusal(self)
        for v in self.vols.values():
            self.wait_group(v, v.recipe.preferred_node, timeout=90)
        self.report["cib"] = self.cluster.cib_query("configuration")
        placed = {v.recipe.name: self.where(v) for v in self.vols.values()}
        self.report["started_on_preferred"] = all(placed[n] == p for n, p in self.plan)
        self.report["placement"] = placed
        self.say(f"resources loaded with crmsh; started in {time.monotonic() - t:.1f} s: "
                 + ", ".join(f"{n} on {w}" for n, w in placed.items()))
        if not self.report["started_on_preferred"]:
            self.problem(f"volumes not on their preferred nodes: {placed}")

    def connect_clients(self) -> None:
        if self.opts.server == "knfsd":
            return self.write_mount_records()
        for k, (name, v) in enumerate(self.vols.items()):
            v.clients, info = VolumeClients.connect(
                self.net, k, self.opts, name=name, ip=v.recipe.ip, file=f"/{name}/data/client.txt",
                stream_file=f"/{name}/data/stream.log", new_open_dir=f"/{name}/home",
                v3_export_path=f"{v.recipe.mountpoint}/data",
                first_line=f"{name}: written before any failover\n".encode(), say=self.say)
            self.report.setdefault("clients", {})[name] = info
            self.seen_server(self.where(v), info.get("server_identity"), name if self.opts.instance else None)
            self.say(f"client {info['address']} (NFSv{info['nfs_version']}): {info['file']} open via "
                     f"{v.recipe.ip}, writing {info['write_stream']} every 100 ms; new files in /{name}/home"
                     + (f"; NFSv3 {info['nlm']['holder']} holds an NLM lock" if "nlm" in info else ""))
        self.wait_records_saved()

    def wait_records_saved(self) -> None:
        """Until the recurring monitor has saved each client's record to its volume.

        That is the window the design accepts: a client whose state is younger than one
        monitor interval when its node dies cannot reclaim (Ganesha keeps its records on the
        node; the agent copies them to the volume at every monitor and at stop). The lab
        found it by losing a node 0.4 s after the client opened its file (NFS4ERR_NO_GRACE);
        it waits here so that each failover shows the steady state, and reports the wait.
        With --break lying-monitor no monitor saves anything: nothing to wait for (the wait
        would only run out, 2 monitor intervals + 10 s per volume).
        """
        t = time.monotonic()
        if "lying-monitor" in self.opts.breaks:
            self.report["records_on_volume_after_s"] = None
            self.say("client records: not waited for (the lying monitor saves none)")
            return
        for name, v in self.vols.items():
            node = self.where(v)
            if self.opts.instance:   # written there by the instance itself, as the client confirms
                path, mark = f"{v.recipe.mountpoint}/.ganesha-ha/{INSTANCE_RECORDS}", v.clients.client.client_name
            elif self.opts.server == "ganesha":
                path, mark = f"{v.recipe.mountpoint}/.ganesha-ha/{RECOVERY_FILE}", v.clients.client.client_name
            else:
                path, mark = f"{v.recipe.mountpoint}/.ganesha-ha/rmtab", f":{v.recipe.mountpoint}/"

            def saved() -> bool:
                cp = self.services[node].run(["ls", path] if self.opts.instance else ["cat", path])
                return cp.returncode == 0 and mark in cp.stdout
            if not wait_until(saved, 2 * MONITOR_S + 10, 0.25):
                self.problem(f"{name}: the client's recovery record never reached the volume")
        self.report["records_on_volume_after_s"] = round(time.monotonic() - t, 2)
        self.say(f"client records saved to every volume by the recurring monitor "
                 f"({self.report['records_on_volume_after_s']} s)")

    def write_mount_records(self) -> None:
        """knfsd: no kernel nfsd here, so no client can mount; write the rmtab lines rpc.mountd
        writes on MNT, on the node serving each volume, and let the monitor carry them."""
        client = self.net.addr("c")
        for name, v in self.vols.items():
            svc = self.services[self.where(v)]
            lines = [f"{client}:{v.recipe.mountpoint}/{d}:0x00000001" for d in ("data", "home")]
            with open(svc.var_lib_nfs / "rmtab", "a", encoding="utf-8") as fh:
                fh.write("".join(ln + "\n" for ln in lines))
            self.report.setdefault("clients", {})[name] = {"rmtab_lines": lines}
            self.say(f"{name}: mount records of {client} written to {svc.name}'s rmtab, as rpc.mountd would")
        self.report["note"] = NFSD_NOTE
        self.wait_records_saved()

    # ---- cluster queries --------------------------------------------------------------
    def where(self, v: Vol) -> str | None:
        return self.cluster.resource_location(v.recipe.ids()[2])

    def wait_group(self, v: Vol, node: str, timeout: float) -> str:
        """Until every member of the volume's group runs on `node` (the IP, last, too)."""
        for rid in v.recipe.ids():
            self.cluster.wait_resource(rid, node=node, timeout=timeout)
        return node

    def wait_moved(self, v: Vol, away_from: str, timeout: float) -> str:
        """Until the volume's whole group runs on one node other than `away_from` (where
        Pacemaker chose); returns that node. ClusterError after `timeout` seconds."""
        seen: list = [None]

        def moved() -> bool:
            where = self.started_on(v.recipe.ids())
            nodes = set(where.values())
            seen[0] = where
            return set(where) == set(v.recipe.ids()) and len(nodes) == 1 and away_from not in nodes
        if not wait_until(moved, timeout, 0.2):
            raise ClusterError(f"{v.recipe.group} not running away from {away_from} after {timeout:.0f} s "
                               f"(last: {seen[0]})")
        return next(iter(seen[0].values()))

    def started_on(self, rids: Iterable[str]) -> dict[str, str]:
        """Resource id → the node it is Started on, for those of `rids` that are (one crm_mon)."""
        root = self.cluster.crm_mon_xml()
        want = set(rids)
        return {r.get("id"): r.find("node").get("name")
                for r in (root.iter("resource") if root is not None else ())
                if r.get("id") in want and r.get("role") == "Started" and r.find("node") is not None}

    def placement(self) -> dict[str, str | None]:
        """Volume → the node its exports run on (one crm_mon)."""
        on = self.started_on(v.recipe.ids()[1] for v in self.vols.values())
        return {n: on.get(v.recipe.ids()[1]) for n, v in self.vols.items()}

    def placement_proof(self) -> dict[str, Any]:
        """What the cluster itself says of the placement: each node's capacity and what is
        left of it (crm_simulate --live-check --show-utilization), and where each group runs
        (crm_mon), with the CIB's placement-strategy."""
        cp = self.cluster.run(["crm_simulate", "--live-check", "--show-utilization"], timeout=30)
        util = [ln.strip() for ln in cp.stdout.splitlines() if "capacity:" in ln]
        strategy = self.cluster.crm_attribute("--type", "crm_config", "--name", "placement-strategy",
                                              "--query", "--quiet", check=False).stdout.strip()
        return {"placement_strategy": strategy, "utilization": util, "crm_mon": self.placement()}

    def measure_memory(self) -> None:
        """Each node's processes (corosync, Pacemaker's daemons, the system bus, ganesha.nfsd,
        with its volumes' exports up): PSS and RSS, after setup."""
        mem = {}
        for name in self.node_names:
            pids = self.cluster.nodes[name].processes() | set(self.services[name].pids())
            mem[name] = memory_kib(pids)
        self.report["memory_kib"] = mem
        per = sorted(m["pss_kib"] for m in mem.values())
        self.say(f"memory per node (PSS): {per[0] / 1024:.0f}-{per[-1] / 1024:.0f} MiB "
                 f"({sum(per) / 1024:.0f} MiB for {len(per)} nodes)")

    def final_check(self) -> None:
        totals = {}
        for name, v in self.vols.items():
            if v.clients is None:
                continue
            stale = sum(e.get("stale_replies", 0) for f in self.report["failovers"]
                        for n, e in f["volumes"].items() if n == name)
            total, problem = v.clients.watch.final(stale)
            if problem and (total.get("acked_records_lost") is not None
                            or all(f["ok"] for f in self.report["failovers"])):
                self.problem(f"{name}: {problem}")
            totals[name] = total
            self.say(f"client of {name}: {total['records_acked']} records acknowledged, "
                     f"{total.get('acked_records_lost')} lost; {stale} NFS4ERR_STALE replies")
        self.report["client_writes"] = totals
        if self.cluster is not None:
            self.report["placement_at_end"] = {n: self.where(v) for n, v in self.vols.items()}

    # ---- keep / teardown --------------------------------------------------------------
    def keep_info(self) -> dict[str, Any]:
        """Leave everything up (--keep): what runs where, how to get in, how to tear down."""
        for v in self.vols.values():
            if v.clients is not None:
                v.clients.stop()
        info = {
            "state_file": str(self.state_path),
            "nodes": {name: {"address": svc.addr, "init_pid": svc.holder_pid,
                             "enter": f"nsenter -t {svc.holder_pid} -m -n -u bash",
                             "then": f"crm_mon -1; {CLI} export list",
                             "ganesha_log": str(svc.workdir / "log-ganesha") + "/ganesha-ha-<volume uuid>.log"
                             if self.opts.instance else str(svc.workdir / "ganesha" / "ganesha.log"),
                             "pacemaker_log": str(self.cluster.nodes[name].pacemaker_log)}
                      for name, svc in self.services.items()},
            "client": {"address": self.net.addr("c"), "enter": f"nsenter --net=/run/netns/{self.net.client} bash"},
            "volumes": {n: {"mountpoint": v.recipe.mountpoint, "device": v.recipe.device, "ip": v.recipe.ip,
                            "on": self.where(v)} for n, v in self.vols.items()},
            "down": f"ganesha-ha lab down {self.run_id}",
        }
        self.cluster.release()   # no stop at exit: the nodes are meant to outlive us
        self.save_state()
        return info

    def teardown(self) -> list[str]:
        self.say("cleaning up: clients, cluster nodes, daemons, loop devices, namespaces")
        for v in self.vols.values():
            if v.clients is not None:
                v.clients.stop()
        left: list[str] = []
        if self.cluster is not None:
            try:
                self.cluster.stop()   # SIGKILL of every process of each node: mounts go with them
            except ClusterError as exc:
                left.append(str(exc))
        for svc in self.services.values():
            svc.stop()
            left += [f"process {p}" for p in svc.pids()]
        if self.cluster is not None:
            lo = self.cluster.leftovers()
            left += [f"process {p}" for p in lo["processes"]] + [f"mount {m}" for m in lo["mounts"]]
        for v in self.vols.values():
            left += detach_loops(v.image)
        left += [f"netns {n}" for n in self.net.remove()]
        if not left:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.state_path.unlink(missing_ok=True)
            try:
                WORK_ROOT.rmdir()
            except OSError:
                pass
        return left
