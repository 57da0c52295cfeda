"""The direct lab's failover, step by step as a Pacemaker group moves (volume → exports → IP,
the notify agent last): the old node's recurring monitor, IP down, agent stop, unmount (or,
with --kill, the daemon killed and the node fenced), mount on the new node, agent start, IP
up; then the evidence: the client's outage and reclaim, the Export_Ids, grace, new opens.

`DirectFailovers` is a part of `DirectLab` (direct_lab.py) and so of the knfsd lab
(knfsd_lab.py, which reuses its steps), kept apart because the failover is a job of its own;
it uses the lab's `nodes`, `net`, `opts`, `say`, `report`, `clients`, `mountpoint`,
`loopdev`, `fsal`, `fsal_check()`, `seen_server()`, `registry()` and `live_ids()`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ganesha_daemon import in_grace
from .node import PY, LabNode
from .procs import wait_until
from .volume_clients import VolumeClients

# The agent as Pacemaker runs it: the in-tree OCF entry (ra/exports, what install-agent
# copies to /usr/lib/ocf/resource.d/ganesha-ha/exports) when this is a source checkout.
_RA = Path(__file__).resolve().parent.parent.parent / "ra" / "exports"
AGENT_ARGV = [str(_RA)] if os.access(_RA, os.X_OK) else [PY, "-m", "ganesha_ha.agent"]
_RA_NOTIFY = _RA.with_name("notify")   # ocf:ganesha-ha:notify, last in the volume's group
NOTIFY_ARGV = [str(_RA_NOTIFY)] if os.access(_RA_NOTIFY, os.X_OK) else [PY, "-m", "ganesha_ha.notify_agent"]


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


class DirectFailovers:
    """Running the agents as Pacemaker does, and one failover of the volume between two nodes."""

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
