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
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import WORK_ROOT, LabOptions, LabRun, Progress
from .direct_fsal import FsalExport, storage_kind
from .ganesha_daemon import in_grace
from .loopdev import detach_loops, make_volume_image
from .node import PY, LabNode
from .procs import wait_until
from .volume_clients import VolumeClients

# The agent as Pacemaker runs it: the in-tree OCF entry (ra/exports, what install-agent
# copies to /usr/lib/ocf/resource.d/ganesha-ha/exports) when this is a source checkout.
_RA = Path(__file__).resolve().parent.parent.parent / "ra" / "exports"
AGENT_ARGV = [str(_RA)] if os.access(_RA, os.X_OK) else [PY, "-m", "ganesha_ha.agent"]
_RA_NOTIFY = _RA.with_name("notify")   # ocf:ganesha-ha:notify, last in the volume's group
NOTIFY_ARGV = [str(_RA_NOTIFY)] if os.access(_RA_NOTIFY, os.X_OK) else [PY, "-m", "ganesha_ha.notify_agent"]
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


@dataclass
class AgentCall:
    action: str
    rc: int
    seconds: float
    log: str

    def to_dict(self) -> dict[str, Any]:
        return {"rc": self.rc, "seconds": round(self.seconds, 3), "log": self.log}


OCF_NAMES = {0: "OCF_SUCCESS", 1: "OCF_ERR_GENERIC", 2: "OCF_ERR_ARGS", 3: "OCF_ERR_UNIMPLEMENTED",
             4: "OCF_ERR_PERM", 5: "OCF_ERR_INSTALLED", 6: "OCF_ERR_CONFIGURED", 7: "OCF_NOT_RUNNING"}


class DirectLab(FsalExport, LabRun):
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

    # ---- helpers ----------------------------------------------------------------------
    def agent(self, node: LabNode, action: str, *, recurring: bool = False,
              argv: list[str] | None = None) -> AgentCall:
        """The resource agent (`argv`, default the exports agent), exactly as Pacemaker runs
        it (environment and return code)."""
        env = {
            "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "lab-volume",
            "OCF_RESKEY_server": self.opts.server, "OCF_RESKEY_volume": str(self.mountpoint),
            "OCF_RESKEY_ip": self.net.floating_ip, "OCF_RESKEY_config": str(node.config),
            "OCF_RESKEY_bus_address": node.bus_address,
        }
        if action == "monitor" and recurring:
            env["OCF_RESKEY_CRM_meta_interval"] = "10000"
        t = time.monotonic()
        cp = node.run([*(argv or AGENT_ARGV), action], env=env, timeout=120, clean_env=True)
        return AgentCall(action, cp.returncode, time.monotonic() - t,
                         " | ".join(l.split(": ", 1)[-1] for l in (cp.stderr or "").splitlines()
                                    if l.strip())[:600])

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

    # ---- steps of a failover (the knfsd lab's too) --------------------------------------
    def begin_failover(self, i: int, src: str, dst: str) -> dict[str, Any]:
        """Failover `i`'s evidence, begun with what Pacemaker's recurring monitor does on the
        active node first: check the volume and save its client records to it."""
        fo: dict[str, Any] = {"n": i, "from": src, "to": dst, "mode": self.report["mode"],
                              "problems": [], "agent": {}}
        self.say(f"failover {i}: {src} -> {dst} ({fo['mode']})")
        self.agent_step(fo, src, "monitor", key="monitor_before", recurring=True)
        return fo

    def agent_step(self, fo: dict[str, Any], node: str, action: str, *, key: str | None = None,
                   recurring: bool = False) -> AgentCall:
        """The agent's `action` on `node`, kept in fo["agent"]; a failure is a problem."""
        call = self.agent(self.nodes[node], action, recurring=recurring)
        fo["agent"][key or action] = call.to_dict()
        if call.rc != 0:
            fo["problems"].append(f"agent {action} on {node} returned {call.rc}: {call.log}")
        return call

    def stop_and_unmount(self, fo: dict[str, Any], src: str) -> str:
        """A clean stop on `src` (its IP already down), then unmount: 'clean' or 'lazy'."""
        stop = self.agent_step(fo, src, "stop")
        how = self.nodes[src].umount(self.mountpoint)
        self.say(f"  IP down on {src}; agent stop rc {stop.rc} ({stop.seconds:.2f} s); {how} unmount")
        return how

    def mount_on(self, fo: dict[str, Any], dst: str, src: str, how: str) -> None:
        """Mount the volume on `dst`, never while `src` still has it (a double mount)."""
        fo["unmount"] = how
        if self.nodes[src].is_mounted(self.mountpoint):
            raise RuntimeError(f"the volume is still mounted on {src}: refusing to mount it twice")
        self.nodes[dst].mount(self.loopdev, self.mountpoint)

    def start_on(self, fo: dict[str, Any], dst: str) -> AgentCall:
        """The agent's start on `dst`, then the floating IP up there (last, as in the group)."""
        start = self.agent_step(fo, dst, "start")
        self.net.add_ip(dst)
        return start

    # ---- one failover -----------------------------------------------------------------
    def failover(self, i: int, src: str, dst: str) -> dict[str, Any]:
        say = self.say
        S, D = self.nodes[src], self.nodes[dst]
        fo = self.begin_failover(i, src, dst)
        bad = fo["problems"].append
        reg_before = {e["directory"]: e["export_id"] for e in self.registry(src)}
        live_before = self.live_ids(src)
        clients = self.clients
        watch = clients.watch
        self.wait_forgotten(fo, clients, D)
        clients.begin(moving=True)

        breaks = self.opts.breaks if i == 1 else ()
        t_fail = time.monotonic()
        if self.opts.kill:
            pid = S.kill_ganesha()
            say(f"  kill -9 ganesha.nfsd on {src} (pid {pid})")
            m2 = self.agent(S, "monitor", recurring=True)
            fo["agent"]["monitor_after_kill"] = m2.to_dict()
            say(f"  agent monitor on {src}: rc {m2.rc} ({OCF_NAMES.get(m2.rc, m2.rc)})")
            if m2.rc == 0:
                bad(f"the monitor on {src} said OCF_SUCCESS with ganesha.nfsd dead")
            self.net.del_ip(src)
            stop = self.agent(S, "stop")
            fo["agent"]["stop"] = stop.to_dict()
            how = S.umount(self.mountpoint, lazy=True)
            fence = ("stop succeeded" if stop.rc == 0 else
                     f"stop failed (rc {stop.rc}): Pacemaker would fence node {src}")
            say(f"  IP down on {src}; agent stop: {fence}; volume fenced ({how} unmount)")
        else:
            self.notify_step(fo, src, "stop")   # the group stops it first, before the IP
            self.net.del_ip(src)
            how = self.stop_and_unmount(fo, src)
        self.mount_on(fo, dst, src, how)
        if "export-id" in breaks:
            data = next(e for e in self.registry(dst) if e["pseudo"] == "/lab/data")
            new_id = data["export_id"] + 7
            D.cli("export", "update", str(self.mountpoint), "data", "--export-id", str(new_id),
                  "--record-only", "--force")  # the very drift that --force exists to allow
            say(f"  BREAK export-id: /lab/data now Export_Id {new_id} in the registry "
                f"(was {data['export_id']})")
        if "recovery" in breaks:   # every store's copy: NFSv4 records, and statd's (NLM clients)
            from ..recovery.ganesha_records import RECOVERY_FILE
            from ..recovery.nsm import SAVED_RECORDS

            D.run(["rm", "-f", *(str(self.mountpoint / ".ganesha-ha" / f) for f in (RECOVERY_FILE, SAVED_RECORDS))],
                  check=True)
            say("  BREAK recovery: client-recovery records (NFSv4 and NSM) removed from the volume")
        graces0 = self.grace_events(dst)
        t_start = time.monotonic()
        start = self.start_on(fo, dst)
        t_ip = time.monotonic()
        self.notify_step(fo, dst, "start")
        fo["service_gap_s"] = round(t_ip - t_fail, 2)  # server side: failure begun -> IP up on dst
        # Evidence from the new node, read after the IP is up so it costs the client nothing.
        fo["recovery_records_moved"] = self.takeover_records(dst)
        try:
            grace_now = in_grace(D.bus_address)
        except Exception:
            grace_now = None
        if grace_now:
            wait_until(lambda: self.grace_events(dst) > graces0, 1.0)  # the log line may lag
        fo["grace_events_sent"] = self.grace_events(dst) - graces0
        say(f"  mounted on {dst}; agent start rc {start.rc} ({start.seconds:.2f} s): "
            f"{fo['recovery_records_moved']} client record(s) restored, grace "
            f"{'on' if grace_now else 'off'}; IP up on {dst}")

        # Wait for the client: a good read of the saved handle that started after the IP came
        # up on dst (so dst answered it), or a STALE from dst.
        fo.update(watch.settle(t_ip))
        if self.opts.kill:
            S.restart_ganesha()  # the node's service manager restarts the crashed daemon
            say(f"  ganesha.nfsd on {src} restarted (pid {S.ganesha.pid}), as its service manager would")

        # Reclaim the open, verify the data through the saved handle, write more.
        result = watch.recover(i, dst, t_ip, lambda: self.volume_file(dst))
        fo.update({k: v for k, v in result.items() if k != "error"})
        self.seen_server(dst, result.get("server_identity"))
        if result.get("error"):
            bad(result["error"])

        # Identity: what the registry says and what the new Ganesha serves.
        reg_after = {e["directory"]: e["export_id"] for e in self.registry(dst)}
        live_after = self.live_ids(dst)
        fo["export_ids"] = {"before": sorted(live_before), "after": sorted(live_after)}
        fo["export_ids_equal"] = (reg_before == reg_after and live_before == live_after
                                  and set(live_after) == set(reg_after.values()))

        # Grace: how long the new node stayed in it (an NFSv4.0 client, which has no
        # RECLAIM_COMPLETE, or NLM on keeps it for the whole Grace_Period).
        tick = say.ticker(f"  waiting for grace to end on {dst}")

        def grace_over() -> bool:
            tick(f"{time.monotonic() - t_start:.1f} s")
            try:
                return not in_grace(D.bus_address)
            except Exception:
                return False
        grace_over_at: float | None = time.monotonic()
        if grace_now is False:
            fo["grace_measured_s"] = 0.0  # the start sent no grace event: nobody may reclaim
        elif wait_until(grace_over, self.opts.grace_period + 20, interval=0.2):
            grace_over_at = time.monotonic()
            fo["grace_measured_s"] = round(grace_over_at - t_start, 2)
        else:
            grace_over_at = None
            fo["grace_measured_s"] = None
            bad(f"{dst} never left grace")
        # New opens as the volume's clients saw them, the NFSv3 lock; after grace a
        # brand-new OPEN works, and the recurring monitor saves this node's client records
        # to the volume for the next move.
        fo.update(clients.after_grace(t_ip, grace_over_at))
        fo.update(watch.fresh_open(f"/lab/data/after-failover-{i}.txt"))
        if self.opts.fsal:
            fo["fsal"] = self.fsal_check(i, dst, live_before)
            if not fo["fsal"]["ok"]:
                bad(f"the {self.fsal.base.name} export: {fo['fsal']}")
        fo["monitor_after_rc"] = self.agent(D, "monitor", recurring=True).rc
        fo["writes"] = watch.write_summary()

        # Verdict: the outage must stay within grace + 2 s; an FSAL whose RemoveExport blocks Ganesha (GLUSTER's glfs_fini) lengthens every stop,
        # and so the outage, by up to its known wait: allowed, and reported
        allowance = self.fsal.base.schema.remove_wait if self.fsal is not None else 0.0
        fo["outage_limit_s"] = self.opts.grace_period + 2 + allowance
        fo["new_open_limit_s"] = self.opts.new_open_limit()
        checks = {**watch.checks(fo, outage_limit=fo["outage_limit_s"]),
                  **clients.checks(fo, new_open_limit=fo["new_open_limit_s"])}
        for name, passed in checks.items():
            if not passed:
                bad(f"check failed: {name}")
        fo["checks"] = checks
        fo["ok"] = not fo["problems"]
        say(f"  failover {i}: {'OK' if fo['ok'] else 'FAILED'}: outage {fo['outage_s']} s, grace "
            f"{fo['grace_measured_s']} s, new opens blocked {fo['new_opens'].get('after_up_s')} s after "
            f"the IP was up, handles_preserved {fo['handles_preserved']}, data_verified "
            f"{fo.get('data_verified')}, export_ids_equal {fo['export_ids_equal']}"
            + (f", NLM lock reclaimed {fo['nlm']['reclaimed']}" if "nlm" in fo else ""))
        return fo

    def notify_step(self, fo: dict[str, Any], node: str, action: str) -> None:
        """With NLM on, the notify agent (ocf:ganesha-ha:notify: SM_NOTIFY from the floating
        IP to the volume's NLM clients) where the group has it: after the IP at start, before
        it at stop."""
        if not self.opts.nlm:
            return
        call = self.agent(self.nodes[node], action, argv=NOTIFY_ARGV)
        fo["agent"][f"notify_{action}"] = call.to_dict()
        fo["notify"] = {"rc": call.rc, "seconds": round(call.seconds, 2), "log": call.log}
        if call.rc != 0:
            fo["problems"].append(f"notify agent {action} on {node} returned {call.rc}: {call.log}")

    def wait_forgotten(self, fo: dict[str, Any], clients: VolumeClients, node: LabNode) -> None:
        """The volume returns to `node`: first until that node expired its clients' ids
        (VolumeClients.wait_forgotten says why; Lease_Lifetime plus a reaper tick at most)."""
        lease = self.opts.lease_lifetime
        out = clients.wait_forgotten(node.remembered_clients, timeout=3 * lease + 5)
        if out["waited_s"] >= 0.2 or out["still_remembered"]:
            fo["waited_for_expiry"] = out
            self.say(f"  waited {out['waited_s']} s for {node.name} to expire the clients' old client ids "
                     "(a failback within Lease_Lifetime is refused its reclaims: NFS4ERR_NO_GRACE)")
        if out["still_remembered"]:
            fo["problems"].append(f"{node.name} still holds the client ids of {', '.join(out['still_remembered'])}")

    def volume_file(self, node: str) -> bytes | None:
        """The client's file as it is on the volume, read on `node`."""
        cp = self.nodes[node].run(["cat", str(self.mountpoint / "data" / "client.txt")])
        return cp.stdout.encode() if cp.returncode == 0 else None

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
