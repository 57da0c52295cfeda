"""`ganesha-ha lab --direct`: two nodes on one machine, a volume that moves, a client that survives.

What one run does (every step is what a two-node Pacemaker cluster does, driven by hand;
the cluster lab, cluster_lab.py, lets Pacemaker decide instead):

1. Network (netns.py): nodes ``gha-<id>-a`` and ``-b``, client ``-c``, a switch ``-sw``.
2. Nodes (node.py): each in its own network, mount and UTS namespaces, with its own
   dbus-daemon, ganesha.nfsd (NFSv4, Bind_Addr 0.0.0.0, own RecoveryRoot, Grace_Period 5)
   and ganesha-ha config.
3. Volume: a sparse ext4 image on a loop device, mounted on exactly one node at a time
   (the role DRBD plays); `ganesha-ha volume init` and three `export add` on node A.
4. Start on A through the resource agent (``python -m ganesha_ha.agent start``, what
   Pacemaker runs), then bring the floating IP up on A.
5. The client opens a file through the floating IP, writes, reads, keeps its handle.
6. Each failover, in the order a Pacemaker group volume → exports → IP gives:
   monitor on the old node (the recurring monitor saves the client records to the volume);
   IP down on the old node first (so no client ever talks to a server whose export was just
   withdrawn: it would answer NFS4ERR_STALE); agent stop; unmount; mount on the new node;
   agent start (restores the records, sends the take-over grace event); IP up.
   With ``--kill`` the old node's ganesha.nfsd gets SIGKILL instead: the monitor must see
   it, the agent's stop runs as Pacemaker would, and the volume is fenced (lazy unmount).
   Meanwhile the client replays its saved handle every 100 ms: the outage is the time from
   its first failed I/O to its first successful one. Afterwards it reclaims its open with
   CLAIM_PREVIOUS in the new node's grace period, verifies its data and writes more.
7. Evidence per failover, an overall ``ok``, and a teardown that leaves nothing behind.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from typing import Any

from .base import WORK_ROOT, LabOptions, LabRun, Progress
from .direct_failover import AgentCall, DirectFailovers
from .direct_fsal import FsalExport, storage_kind
from .loopdev import detach_loops, make_volume_image
from .node import LabNode
from .volume_clients import VolumeClients

IMAGE_SIZE = 256 * 1024 * 1024
EXPORTS = (("data", "/lab/data"), ("home", "/lab/home"), ("scratch", "/lab/scratch"))
CLIENT_FILE = "/lab/data/client.txt"
STREAM_FILE = "/lab/data/stream.log"   # the client appends numbered records here throughout
NEW_OPEN_DIR = "/lab/home"             # where the new-open probe creates its fresh files
FIP_NAME = "volume.gha.lab"            # the floating IP's name on the nodes (sm-notify -v needs one)
BREAKS = {
    "export-id": "node B starts the volume with a different Export_Id for /lab/data "
                 "(registry rewritten before the start on B)",
    "recovery": "the client-recovery records are dropped from the volume before the start on B",
}


@dataclass
class DirectLabOptions(LabOptions):
    failovers: int = 1
    kill: bool = False
    fsal: str | None = None   # --fsal: one more export with this FSAL (the CLI's syntax)


class DirectLab(DirectFailovers, FsalExport, LabRun):
    """One run of the direct lab (one volume, nodes "a" and "b"). See LabRun for the run."""

    ID_PREFIX = "l"

    def __init__(self, opts: DirectLabOptions, progress: Progress | None = None) -> None:
        self.storage_kind = storage_kind(opts.fsal)
        super().__init__(opts, progress, nodes=("a", "b", "s") if self.storage_kind else ("a", "b"))
        self.storage_node: Any = None         # the shared-storage machine (--fsal GLUSTER|CEPH)
        self.storage: Any = None
        self.mountpoint = self.workdir / "volume"
        self.image = self.workdir / "volume.img"
        self.images = [self.image]
        self.loopdev: str | None = None
        self.nodes: dict[str, LabNode] = {}
        self.clients: VolumeClients | None = None
        self.fsal: Any = None                 # the --fsal export's Fsal record
        self.report.update({"mode": "kill -9" if opts.kill else "clean stop",
                            "failovers_requested": opts.failovers})

    def planned(self) -> int:
        return self.opts.failovers

    def one_failover(self, i: int) -> dict[str, Any]:
        """Odd failovers move the volume a -> b, even ones back b -> a."""
        return self.failover(i, *(("a", "b") if i % 2 else ("b", "a")))

    def node_states(self) -> list[dict[str, Any]]:
        nodes = list(self.nodes.values()) + ([self.storage_node] if self.storage_node else [])
        return [n.to_state() for n in nodes]

    # ---- setup ------------------------------------------------------------------------
    def setup(self) -> None:
        say = self.say
        self.workdir.mkdir(parents=True, exist_ok=False, mode=0o755)
        self.mountpoint.mkdir(mode=0o755)
        self.save_state()
        say(f"lab {self.run_id}: network namespaces {self.net.ns('a')}, {self.net.ns('b')} (nodes), "
            f"{self.net.client} (client), switch {self.net.switch}")
        try:
            self.net.create()
        finally:
            self.save_state()
        if self.storage_kind:
            self.start_storage()
        for slot, name in enumerate(("a", "b")):
            node = LabNode(name, self.net.ns(name), self.workdir / f"node-{name}", self.net.addr(name),
                           grace_period=self.opts.grace_period, run_ganesha=self.opts.server == "ganesha",
                           nlm=self.opts.nlm and self.opts.server == "ganesha",
                           hosts={self.net.floating_ip: FIP_NAME}, server_scope=self.server_scope,
                           lease_lifetime=self.opts.lease_lifetime, epoch_slot=slot)
            self.nodes[name] = node
            try:
                node.start_holder()
                node.start_daemons()
            finally:
                self.save_state()
            what = f"ganesha.nfsd pid {node.ganesha.pid}, " if node.ganesha else ""
            say(f"node {name}: {node.addr}, own mount namespace (holder pid {node.holder_pid}), "
                f"{what}private D-Bus")
        # the replicated-volume stand-in
        self.loopdev = make_volume_image(self.image, IMAGE_SIZE, "gha-lab")
        self.save_state()
        a = self.nodes["a"]
        a.mount(self.loopdev, self.mountpoint)
        say(f"volume: {self.image.name} on {self.loopdev}, ext4, mounted on node a at {self.mountpoint}")
        a.run(["mkdir", "-p", *[str(self.mountpoint / d) for d, _ in EXPORTS]], check=True)
        a.cli("volume", "init", str(self.mountpoint), "--server", self.opts.server)
        for d, pseudo in EXPORTS:
            a.cli("export", "add", str(self.mountpoint), d, "--client", f"{self.net.subnet}.0/24(rw)",
                  "--squash", "no_root_squash", "--pseudo", pseudo)
        if self.opts.fsal:
            self.add_fsal_export(a)
        reg = self.registry("a")
        self.report["exports"] = [{"directory": e["directory"], "pseudo": e["pseudo"],
                                   "export_id": e["export_id"], "fsid": e["fsid"]} for e in reg]
        say("registry: " + ", ".join(f"{e['pseudo']} Export_Id {e['export_id']} fsid {e['fsid']}"
                                     for e in reg))
        self.setup_clients()

    def start_on_first_node(self) -> "AgentCall":
        """Start the volume on node A through the agent, then bring the floating IP up there."""
        start = self.agent(self.nodes["a"], "start")
        if start.rc != 0:
            raise RuntimeError(f"agent start on node a returned {start.rc}: {start.log}")
        self.net.add_ip("a")
        self.notify_step({"problems": [], "agent": {}}, "a", "start")
        return start

    def setup_clients(self) -> None:
        """Start the volume on node A through the agent, bring the IP up, connect the client."""
        say = self.say
        start = self.start_on_first_node()
        say(f"agent start on a: rc {start.rc} ({start.seconds:.2f} s); floating IP "
            f"{self.net.floating_ip} up on a")
        if "server-scope" in self.opts.breaks:
            self.scope_check()
        # the clients
        line = b"written through node a before any failover\n"
        self.clients, info = VolumeClients.connect(
            self.net, 0, self.opts, name="volume", ip=self.net.floating_ip, file=CLIENT_FILE,
            stream_file=STREAM_FILE, new_open_dir=NEW_OPEN_DIR,
            v3_export_path=str(self.mountpoint / "data"), first_line=line, say=say)
        self.report["client"] = info
        self.seen_server("a", info.get("server_identity"))
        say(f"client {info['address']} (NFSv{info['nfs_version']}): opened {CLIENT_FILE} via "
            f"{self.net.floating_ip}, wrote {len(line)} bytes, read them back; keeps file handle "
            f"{info['file_handle'][:24]}...; a second client id opens new files in {NEW_OPEN_DIR}")
        if "nlm" in info:
            say(f"NFSv3 client {info['nlm']['holder']}: mounted {info['nlm']['export']}, holds an NLM "
                f"lock on {info['nlm']['file']}; {info['nlm']['contender']} is refused the same lock")
        if self.opts.fsal:
            self.fsal_probe_before()

    def scope_check(self) -> None:
        """--break server-scope: does the agent catch the mismatch? Its validate-all on
        each node (issue 16b's check refuses with OCF_ERR_CONFIGURED, 6); what it said is
        reported beside the failure the clients then meet."""
        out = {}
        for name, node in self.nodes.items():
            call = self.agent(node, "validate-all")
            out[name] = {"rc": call.rc, "reason": call.log[:300]}
        self.report["scope_check"] = out
        caught = [n for n, c in out.items() if c["rc"] == 6]
        self.say("agent validate-all with different scopes: " + (
            f"refused on {', '.join(caught)}" if caught else
            "not refused (rc " + ", ".join(str(c["rc"]) for c in out.values()) + ")"))

    @property
    def client(self) -> Any:
        """The volume's NFSv4 client (labclient.LabClient), once connected."""
        return self.clients.client if self.clients is not None else None

    def registry(self, node: str) -> list[dict[str, Any]]:
        cp = self.nodes[node].cli("export", "list", str(self.mountpoint), "--json")
        return json.loads(cp.stdout)

    def live_ids(self, node: str) -> dict[int, str]:
        """Export_Id → path that the node's Ganesha serves for this volume (ShowExports)."""
        also = (self.report["fsal"]["path"],) if self.fsal is not None and self.fsal.remote else ()
        # Export_Id 0 is Ganesha's pseudo root, at path "/" too
        return {i: p for i, p in self.nodes[node].live_ids(self.mountpoint, also).items() if i != 0}

    def takeover_records(self, node: str) -> int:
        return self.nodes[node].takeover_records(self.net.floating_ip)

    def grace_events(self, node: str) -> int:
        return self.nodes[node].grace_events(self.net.floating_ip)

    def final_check(self) -> None:
        """After the last move: every record the client got acknowledged, over the whole run,
        reads back byte for byte; and the run's total of NFS4ERR_STALE replies."""
        if self.clients is None:
            return
        total, problem = self.clients.watch.final(sum(f.get("stale_replies", 0) for f in self.report["failovers"]))
        if problem and (total.get("acked_records_lost") is not None
                        or all(f["ok"] for f in self.report["failovers"])):
            self.problem(problem)
        self.report["client_writes"] = total
        self.say(f"client: {total['records_acked']} records acknowledged over the run, "
                 f"{total.get('acked_records_lost')} lost; {total['stale_replies']} NFS4ERR_STALE replies")

    # ---- keep / teardown --------------------------------------------------------------
    def keep_info(self) -> dict[str, Any]:
        self.save_state()
        if self.clients is not None:
            self.clients.stop()
        active = next((n for n in self.nodes.values() if n.is_mounted(self.mountpoint)), None)
        return {
            "state_file": str(self.state_path),
            "nodes": {n.name: {"address": n.addr, "holder_pid": n.holder_pid,
                               "enter": f"nsenter -t {n.holder_pid} -m -n -u bash",
                               "config": str(n.config), "bus_address": n.bus_address,
                               "ganesha_log": str(n.workdir / "ganesha" / "ganesha.log")}
                      for n in self.nodes.values()},
            "client": {"address": self.net.addr("c"),
                       "enter": f"nsenter --net=/run/netns/{self.net.client} bash"},
            "floating_ip": self.net.floating_ip,
            "volume": {"mountpoint": str(self.mountpoint), "loop_device": self.loopdev,
                       "mounted_on": active.name if active else None},
            "down": "ganesha-ha lab down",
        }

    def teardown(self) -> list[str]:
        """Stop everything by PID, unmount, detach, remove namespaces; return what is left."""
        self.say("cleaning up: client, daemons, mounts, loop device, namespaces")
        if self.clients is not None:
            self.clients.stop()
        for node in self.nodes.values():
            try:
                if node.holder_pid and node.is_mounted(self.mountpoint):
                    if node.ganesha is not None and node.ganesha.proc is not None:
                        node.ganesha.stop()  # it may hold files on the volume open
                    node.umount(self.mountpoint)
            except Exception:
                pass
            node.stop()
        if self.storage_node is not None:
            self.storage_node.stop()
        left = []
        left += detach_loops(self.image)
        left += self.net.remove()
        if not left:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.state_path.unlink(missing_ok=True)
            try:
                WORK_ROOT.rmdir()   # only when no other lab is there
            except OSError:
                pass
        for node in [*self.nodes.values(), *([self.storage_node] if self.storage_node else [])]:
            left += [f"process {p}" for p in node.pids()]
        return left
