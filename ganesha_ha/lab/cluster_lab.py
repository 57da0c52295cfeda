"""`ganesha-ha lab` (the default, `--cluster`): the failover lab on a real two-node Pacemaker
cluster.

The direct lab (`--direct`, scenario.py) runs the agent by hand; here Pacemaker decides
every move.

1. Network (netns.py): nodes ``gha-<id>-node-a`` and ``-node-b``, the client ``-c``, a switch.
2. Cluster (cluster.py): corosync + pacemakerd on each node, in the node's own mount, UTS
   and network namespaces, with a fresh /run. On each node, as a real one would have:
   a system D-Bus at /run/dbus/system_bus_socket, ganesha.nfsd started before the volume
   resources, and its own /var/lib/nfs (etab, rmtab, Ganesha's recovery root). So the agent
   runs with *no* config file, with the defaults a packaged install has.
   ``ocf:ganesha-ha:exports`` is this checkout's agent (the file ``install-agent`` writes),
   shown to the nodes only, under their /usr/lib/ocf/resource.d.
3. Two volumes (loop devices standing in for DRBD), ``vol1`` preferring node-a and ``vol2``
   node-b: active-active, the seed's own scenario. The resources are loaded with crmsh
   from recipe.py, the same text the README shows users.
4. Failovers chosen by the cluster, each watched by an NFSv4 client per moved volume
   (evidence.py): ``move`` (crm_resource --move), ``shutdown`` (SIGTERM to pacemakerd, then
   the node goes down), ``kill`` (kill -9 of ganesha.nfsd: the monitor fails and, with
   migration-threshold=1, the group moves), ``loss`` (every process of the node killed at
   once). Fencing is off in the lab; the report says what it would add.
5. Teardown: the nodes, the daemons, the loop devices, the namespaces, the work directory.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import linux
from ..backends.ganesha import RECOVERY_FILE
from ..install import agent_text
from ..linux import proc_starttime
from .cluster import ClusterError, SandboxCluster
from .evidence import ClientWatch
from .knfsd_lab import NFSD_NOTE, etab_lines, knfsd_evidence, rmtab_lines
from .ganesha_daemon import GaneshaDaemon, PrivateBus, in_grace
from .labclient import LabClient
from .netns import NETNS_DIR, LabNet, undo_netns_dir_mount
from .node import PY, LabNode
from .procs import wait_until
from .recipe import Recipe, VolumeRecipe
from .scenario import (CLUSTER_LAB_ROOT, RUN_ROOT, Interrupted, Progress, detach_loops,
                       interruptible, shielded)

NODES = ("node-a", "node-b")
VOLUMES = (("vol1", "node-a"), ("vol2", "node-b"))
IMAGE_SIZE = 128 * 1024 * 1024
KINDS = {
    "move": "planned move: crm_resource --move of vol1's group to the other node",
    "shutdown": "node shutdown: SIGTERM to pacemakerd on vol1's node, which then goes down",
    "kill": "kill -9 of ganesha.nfsd on vol1's node: the monitor fails, the group moves",
    "loss": "node loss: corosync, pacemakerd and everything else of vol1's node killed at once",
}
KNFSD_KINDS = ("move", "shutdown", "loss")  # no userspace daemon to kill -9 with knfsd
BREAKS = {"lying-monitor": "the exports agent's recurring monitor always says OCF_SUCCESS "
                           "(it checks nothing; shows with the kill failover)"}
FENCING_NOTE = ("stonith is off in this lab, so Pacemaker took the lost node's resources as soon "
                "as membership said it was gone; the lab made that safe by killing every process "
                "of the node first. A real cluster must fence (power off) the node before that: "
                "with stonith-enabled=true the survivor waits for the fence, then recovers.")
OCF_DIR = Path("/usr/lib/ocf/resource.d")
CLI = str(Path(PY).with_name("ganesha-ha"))   # the console script beside this interpreter
MONITOR_S = 5


@dataclass
class ClusterLabOptions:
    server: str = "ganesha"
    kinds: tuple[str, ...] = tuple(KINDS)
    breaks: tuple[str, ...] = ()
    grace_period: int = 5
    keep: bool = False


@dataclass
class NodeServices(LabNode):
    """What runs on a cluster node besides the cluster: the system bus and ganesha.nfsd.

    The node's namespaces belong to its cluster init (cluster.py); `attach()` points this
    at them. The bus directory is bind-mounted over the node's /run/dbus and its
    /var/lib/nfs is the node's own, so paths are the packaged defaults inside the node.
    """

    @property
    def recovery_root(self) -> Path:
        return self.var_lib_nfs / "ganesha"

    @property
    def bus_address(self) -> str:
        return f"unix:path={self.workdir / 'bus' / 'system_bus_socket'}"

    def prepare(self) -> None:
        for d in (self.workdir, self.var_lib_nfs, self.recovery_root, self.workdir / "bus"):
            d.mkdir(parents=True, exist_ok=True, mode=0o755)
        for f in ("etab", "rmtab", "xtab"):
            (self.var_lib_nfs / f).touch()
        self.etc_exports.write_text(f"# /etc/exports of lab node {self.name}: empty\n")

    def attach(self, init_pid: int) -> None:
        self.holder_pid = init_pid

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`ganesha-ha ARGS` inside the node, with no config file: the packaged defaults."""
        return self.run([PY, "-m", "ganesha_ha.cli", *args], check=check, clean_env=True)

    def start_daemons(self) -> None:
        prefix = ["setsid", *self.nsenter()]
        self.bus = PrivateBus(self.workdir / "bus", prefix_argv=prefix, socket_name="system_bus_socket")
        self.bus.start()
        self._started[self.bus.proc.pid] = proc_starttime(self.bus.proc.pid)
        if self.run_ganesha:
            self.ganesha = GaneshaDaemon(self.workdir / "ganesha", self.bus, port=2049,
                                         bind_addr="0.0.0.0", grace_period=self.grace_period,
                                         recovery_root=self.recovery_root,
                                         recovery_root_inside="/var/lib/nfs/ganesha",
                                         prefix_argv=prefix)
            self.start_ganesha()

    def node_binds(self) -> list[tuple[Path, str]]:
        """Bind mounts that make the node's own state appear at the packaged paths."""
        out = [(self.var_lib_nfs, "/var/lib/nfs"), (self.workdir / "bus", "/run/dbus")]
        if Path("/etc/exports").is_file():
            out.append((self.etc_exports, "/etc/exports"))
        if Path("/etc/ganesha-ha").is_dir():  # the host's settings are not this node's
            (self.workdir / "etc-ganesha-ha").mkdir(exist_ok=True)
            out.append((self.workdir / "etc-ganesha-ha", "/etc/ganesha-ha"))
        if Path("/var/log/crmsh").is_dir():
            (self.workdir / "crmsh-log").mkdir(exist_ok=True)
            out.append((self.workdir / "crmsh-log", "/var/log/crmsh"))
        return out


@dataclass
class Vol:
    """One volume of the lab and the client watching it."""

    recipe: VolumeRecipe
    image: Path
    watch: ClientWatch | None = None
    client: LabClient | None = None


class ClusterLab:
    """One run. `run()` returns the report and always tears down."""

    def __init__(self, opts: ClusterLabOptions, progress: Progress | None = None) -> None:
        self.opts = opts
        self.say = progress or Progress(enabled=False)
        self.run_id = "k" + secrets.token_hex(2)
        self.workdir = CLUSTER_LAB_ROOT / self.run_id
        self.state_path = RUN_ROOT / f"{self.run_id}.json"
        self.net = LabNet(self.run_id, subnet=f"10.213.{secrets.randbelow(200) + 20}", nodes=NODES)
        self.services: dict[str, NodeServices] = {}
        self.cluster: SandboxCluster | None = None
        self.vols: dict[str, Vol] = {}
        self.recipe: Recipe | None = None
        self.netns_dir_was_mount = linux.is_mountpoint(NETNS_DIR)
        self.report: dict[str, Any] = {
            "ok": False, "mode": "cluster", "server": opts.server, "run_id": self.run_id,
            "nodes": list(NODES), "kinds_requested": list(opts.kinds), "break": list(opts.breaks),
            "grace_period_s": opts.grace_period, "failovers": [], "problems": [],
            "fencing": FENCING_NOTE,
        }

    # ---- bookkeeping ------------------------------------------------------------------
    def problem(self, text: str) -> None:
        self.report["problems"].append(text)

    def save_state(self) -> None:
        """What 'ganesha-ha lab down' needs if this process dies before its teardown."""
        RUN_ROOT.mkdir(parents=True, exist_ok=True, mode=0o700)
        nodes = []
        for name in NODES:
            pids: list[list] = []
            cn = self.cluster.nodes[name] if self.cluster else None
            if cn is not None:
                pids += [[p, proc_starttime(p)] for p in (cn.init_pid, cn.corosync_pid, cn.pacemakerd_pid) if p]
            svc = self.services.get(name)
            if svc is not None:
                pids += svc.to_state()["pids"]
            nodes.append({"name": name, "pids": pids})
        state = {"run_id": self.run_id, "lab_pid": os.getpid(), "workdir": str(self.workdir),
                 "images": [str(v.image) for v in self.vols.values()], "netns": self.net.created,
                 "netns_dir_was_mount": self.netns_dir_was_mount, "nodes": nodes}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.state_path)

    # ---- the run ----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        t0 = time.monotonic()
        stack = contextlib.ExitStack()
        stack.enter_context(interruptible())
        try:
            self.setup()
            self.report["setup_s"] = round(time.monotonic() - t0, 2)
            for i, kind in enumerate(self.opts.kinds, start=1):
                fo = self.failover(i, kind)
                self.report["failovers"].append(fo)
                if not fo["ok"]:
                    break
            self.final_check()
        except (KeyboardInterrupt, Interrupted) as exc:
            self.report["interrupted"] = True
            self.problem(f"interrupted ({exc or type(exc).__name__})")
        except Exception as exc:
            self.problem(f"lab failed: {type(exc).__name__}: {' '.join(str(exc).split())[:3000]}")
            self.say(f"error: {' '.join(str(exc).split())[:300]}")
        finally:
            with stack, shielded():
                if self.opts.keep and not self.report.get("interrupted") and self.cluster is not None:
                    self.report["kept"] = self.keep_info()
                else:
                    t_down = time.monotonic()
                    self.report["left_behind"] = self.teardown()
                    self.report["teardown_s"] = round(time.monotonic() - t_down, 2)
        self.report["total_s"] = round(time.monotonic() - t0, 2)
        fos = self.report["failovers"]
        self.report["ok"] = (not self.report["problems"] and len(fos) == len(self.opts.kinds)
                             and all(f["ok"] for f in fos) and not self.report.get("left_behind"))
        return self.report

    # ---- setup ------------------------------------------------------------------------
    def setup(self) -> None:
        say = self.say
        self.workdir.mkdir(parents=True, mode=0o755)
        self.save_state()
        self.net.create()
        self.save_state()
        say(f"lab {self.run_id}: network namespaces {', '.join(self.net.ns(n) for n in NODES)} "
            f"(nodes), {self.net.client} (client), switch {self.net.switch}")
        binds: dict[str, list] = {}
        overlay = self.ocf_overlay()
        for name in NODES:
            svc = NodeServices(name, self.net.ns(name), self.workdir / name, self.net.addr(name),
                               grace_period=self.opts.grace_period,
                               run_ganesha=self.opts.server == "ganesha")
            svc.prepare()
            self.services[name] = svc
            binds[name] = [*overlay, *svc.node_binds()]
        self.cluster = SandboxCluster(
            self.workdir / "cluster", list(NODES), tag=self.run_id, binds=binds,
            netns={n: (self.net.ns(n), self.net.addr(n)) for n in NODES},
            crm_config={"cluster-name": f"gha-{self.run_id}", "cluster-recheck-interval": "10s"},
            die_with_parent=not self.opts.keep)   # kept: the nodes outlive this process
        t = time.monotonic()
        self.cluster.start(timeout=90)
        self.save_state()
        self.report["nodes_online"] = sorted(self.cluster.online_nodes())
        say(f"cluster: corosync + pacemakerd on {' and '.join(NODES)}, both online after "
            f"{time.monotonic() - t:.1f} s")
        for name in NODES:
            self.boot_services(name)
        self.make_volumes()
        self.configure()
        self.connect_clients()

    def ocf_overlay(self) -> list[tuple[Path, str]]:
        """/usr/lib/ocf/resource.d as the nodes see it: the host's providers, plus this
        checkout's ocf:ganesha-ha:exports (as `install-agent` writes it)."""
        root = self.workdir / "ocf"
        out: list[tuple[Path, str]] = []
        for provider in sorted(p for p in OCF_DIR.iterdir() if p.is_dir() and p.name != "ganesha-ha"):
            (root / provider.name).mkdir(parents=True, exist_ok=True)
            out.append((provider, str(root / provider.name)))
        mine = root / "ganesha-ha"
        mine.mkdir(parents=True, exist_ok=True)
        text = agent_text()
        if "lying-monitor" in self.opts.breaks:
            (mine / "exports.real").write_text(text)
            (mine / "exports.real").chmod(0o755)
            text = ('#!/bin/sh\n# BREAK lying-monitor: says OCF_SUCCESS without checking anything\n'
                    '[ "$1" = monitor ] && [ "${OCF_RESKEY_CRM_meta_interval:-0}" != 0 ] && exit 0\n'
                    f'exec {mine / "exports.real"} "$@"\n')
        (mine / "exports").write_text(text)
        (mine / "exports").chmod(0o755)
        return [*out, (root, str(OCF_DIR))]

    def boot_services(self, name: str) -> None:
        """The node's system services, started as its init system would: bus, then Ganesha."""
        svc, cn = self.services[name], self.cluster.nodes[name]
        svc.attach(cn.init_pid)
        svc.start_daemons()
        self.save_state()
        what = f", ganesha.nfsd pid {svc.ganesha.pid}" if svc.ganesha else ""
        self.say(f"node {name}: {svc.addr}, system D-Bus{what}")

    def make_volumes(self) -> None:
        subnet = self.net.subnet
        vols = []
        for k, (name, pref) in enumerate(VOLUMES):
            image = self.workdir / f"{name}.img"
            with open(image, "wb") as fh:
                fh.truncate(IMAGE_SIZE)
            subprocess.run(["mkfs.ext4", "-F", "-q", "-L", f"gha-{name}", str(image)], check=True,
                           capture_output=True, timeout=60)
            dev = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                                 capture_output=True, text=True, timeout=30).stdout.strip()
            mp = self.workdir / name
            mp.mkdir(mode=0o755)
            rec = VolumeRecipe(name=name, device=dev, mountpoint=str(mp), ip=f"{subnet}.{101 + k}",
                               cidr_netmask=24, preferred_node=pref)
            self.vols[name] = Vol(rec, image)
            self.save_state()
            # volume init and exports, on the preferred node, before the cluster manages it
            svc = self.services[pref]
            svc.mount(dev, mp)
            svc.run(["mkdir", "-p", f"{mp}/data", f"{mp}/home"], check=True)
            svc.cli("volume", "init", str(mp), "--server", self.opts.server)
            for d in ("data", "home"):
                svc.cli("export", "add", str(mp), d, "--client", f"{subnet}.0/24",
                        "--squash", "no_root_squash", "--pseudo", f"/{name}/{d}")
            svc.umount(mp)
            vols.append(rec)
            self.say(f"volume {name}: {image.name} on {dev}, ext4; exports /{name}/data, /{name}/home; "
                     f"IP {rec.ip}; prefers {pref}")
        self.recipe = Recipe(server=self.opts.server, volumes=tuple(vols), monitor_s=MONITOR_S,
                             fencing=False)

    def configure(self) -> None:
        """Load the crmsh recipe into the cluster; wait for each group on its preferred node."""
        script = self.recipe.crmsh()
        path = self.workdir / "cluster.crm"
        path.write_text(script)
        home = self.workdir / "crm-home"
        home.mkdir(exist_ok=True)
        cp = self.cluster.run(["crm", "configure", "load", "update", str(path)], node=NODES[0],
                              timeout=120, env={"HOME": str(home), "TMPDIR": str(home)})
        if cp.returncode != 0:
            raise ClusterError(f"crm configure load failed ({cp.returncode}): {cp.stderr.strip()[:1500]}")
        self.report["crmsh"] = script
        t = time.monotonic()
        for v in self.vols.values():
            self.wait_group(v, v.recipe.preferred_node, timeout=90)
        self.report["cib"] = self.cluster.cib_query("configuration")
        placed = {v.recipe.name: self.where(v) for v in self.vols.values()}
        self.report["started_on_preferred"] = all(placed[n] == p for n, p in VOLUMES)
        self.report["placement"] = placed
        self.say(f"resources loaded with crmsh; started in {time.monotonic() - t:.1f} s: "
                 + ", ".join(f"{n} on {w}" for n, w in placed.items()))
        if not self.report["started_on_preferred"]:
            self.problem(f"volumes not on their preferred nodes: {placed}")

    def connect_clients(self) -> None:
        if self.opts.server == "knfsd":
            return self.write_mount_records()
        for name, v in self.vols.items():
            v.client = LabClient(self.net.client, v.recipe.ip, client_name=f"gha-lab-{name}").start()
            v.watch = ClientWatch(v.client, file=f"/{name}/data/client.txt",
                                  stream_file=f"/{name}/data/stream.log",
                                  grace_period=self.opts.grace_period, say=self.say)
            info = v.watch.open(f"{name}: written before any failover\n".encode())
            self.report.setdefault("clients", {})[name] = info
            self.say(f"client {self.net.addr('c')}: {info['file']} open via {v.recipe.ip}, "
                     f"writing {info['write_stream']} every 100 ms")
        self.wait_records_saved()

    def wait_records_saved(self) -> None:
        """Until the recurring monitor has saved each client's record to its volume.

        That is the window the design accepts: a client whose state is younger than one
        monitor interval when its node dies cannot reclaim (Ganesha keeps its records on the
        node; the agent copies them to the volume at every monitor and at stop). The lab
        found it by losing a node 0.4 s after the client opened its file (NFS4ERR_NO_GRACE);
        it waits here so that each failover shows the steady state, and reports the wait.
        """
        t = time.monotonic()
        for name, v in self.vols.items():
            node = self.where(v)
            if self.opts.server == "ganesha":
                path, mark = f"{v.recipe.mountpoint}/.ganesha-ha/{RECOVERY_FILE}", v.client.client_name
            else:
                path, mark = f"{v.recipe.mountpoint}/.ganesha-ha/rmtab", f":{v.recipe.mountpoint}/"

            def saved() -> bool:
                cp = self.services[node].run(["cat", path])
                return cp.returncode == 0 and mark in cp.stdout
            if not wait_until(saved, 2 * MONITOR_S + 10, 0.25):
                self.problem(f"{name}: the client's recovery record never reached the volume")
        self.report["records_on_volume_after_s"] = round(time.monotonic() - t, 2)
        self.say(f"client records saved to both volumes by the recurring monitor "
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

    def wait_group(self, v: Vol, node: str, timeout: float) -> None:
        """Until every member of the volume's group runs on `node` (the IP, last, too)."""
        for rid in v.recipe.ids():
            self.cluster.wait_resource(rid, node=node, timeout=timeout)

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

    def final_check(self) -> None:
        totals = {}
        for name, v in self.vols.items():
            if v.watch is None:
                continue
            stale = sum(e.get("stale_replies", 0) for f in self.report["failovers"]
                        for n, e in f["volumes"].items() if n == name)
            total, problem = v.watch.final(stale)
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
            if v.client is not None:
                v.client.stop()
        info = {
            "state_file": str(self.state_path),
            "nodes": {name: {"address": svc.addr, "init_pid": svc.holder_pid,
                             "enter": f"nsenter -t {svc.holder_pid} -m -n -u bash",
                             "then": f"crm_mon -1; {CLI} export list",
                             "ganesha_log": str(svc.workdir / "ganesha" / "ganesha.log"),
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
            if v.client is not None:
                try:
                    v.client.stop()
                except Exception:
                    pass
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
            undo_netns_dir_mount(self.netns_dir_was_mount)
            try:
                CLUSTER_LAB_ROOT.rmdir()
            except OSError:
                pass
        return left
