"""The OCF resource agent `ocf:ganesha-ha:notify`: SM_NOTIFY from a volume's floating IP to
the NFSv3 clients that held NLM locks through it, after the IP is up.

Why a second agent, placed last in the volume's group (fs -> exports -> ip -> notify), as
resource-agents' `nfsnotify` is for knfsd: the notification must leave *from* the floating
IP (a client's statd matches the rebooted server by sender address or name: nfs-utils
utils/statd/callback.c) and a client that reclaims at once must reach the new node through
that IP, so it can only go out once IPaddr2 has added the address. The exports agent's start
runs before the IP (the IP comes up last so that no client sees a half-started volume), so
it cannot notify; a group member after the IP starts exactly when the address is up, and
stops first, before it goes.

What it does:
- start: the exports agent's start has restored the volume's NSM records into the volume's
  notify directory on this node (recovery/nsm.py); this sends them SM_NOTIFY with Debian's
  sm-notify from the IP (recovery/notify.py: raises and saves the volume's NSM state number
  first, waits up to `[nsm] notify_wait` seconds for answers, leaves sm-notify retrying the
  others). No record: nothing is sent and the start succeeds. With Ganesha the exports'
  start has begun the take-over grace just before, so the reclaims arrive inside it.
- stop: ends a notifier still retrying (what it had not delivered stays in the notify
  directory, which the exports agent's stop saves to the volume: it travels on).
- monitor: started here or not (a node-local mark); nothing else to watch.

Answers: OCF_ERR_CONFIGURED for bad parameters (ip and volume are required) and for the IP
not on this node at start, nothing sent (the reason says to place the agent after the IP: a
group in the wrong order is wrong on every node, as the exports agent of an instance volume
answers it; sm-notify itself refuses an address that is not local); sm-notify exiting without
notifying anyone is OCF_ERR_GENERIC with its log's last line; sm-notify missing, or the IP
without a host name here while there are clients to notify (sm-notify refuses an address it
cannot name), OCF_ERR_INSTALLED: the group moves to a node that has them. validate-all checks the program and the name always,
and warns of what would leave it nobody to notify (the CIB's exports resource of the volume:
missing, without this ip=, or a Ganesha with NLM off here: the node's, or the volume's own
instance), never failing for it.
Imports stay lazy: the monitor runs every few seconds.
"""
from __future__ import annotations

import os
import sys

from . import ocf

AGENT_NAME = ocf.NOTIFY_AGENT_NAME

PARAMS: tuple[ocf.Param, ...] = (
    ocf.Param("ip", "Floating IP the clients use",
              "The volume's floating IP: SM_NOTIFY is sent from it (sm-notify -v), to the clients whose NLM "
              "locks were taken through it. It must have a host name on every node (/etc/hosts or DNS): "
              "sm-notify sends that name. Place this resource after the IPaddr2 resource of this address in "
              "the volume's group.", required=True, unique_group="ip"),
    ocf.Param("volume", "Mount point of the shared volume",
              "The mount point of the volume (as the exports resource's volume=): its NSM state number is "
              "kept in <volume>/.ganesha-ha/nsm-state, so that it keeps rising whichever node notifies.",
              required=True),
    ocf.Param("config", "ganesha-ha settings file",
              "Path of ganesha-ha's own settings file (default /etc/ganesha-ha/ganesha-ha.conf): its [nsm] "
              "section names sm-notify, its retry time and the start's wait.", reloadable=True,
              default="/etc/ganesha-ha/ganesha-ha.conf"),
)

ACTIONS = ocf.NOTIFY_ACTIONS

LONGDESC = ("Sends SM_NOTIFY from a volume's floating IP to the NFSv3 clients that held NLM locks through it, "
            "so that they reclaim them on the node that took the volume over (during its grace period). "
            "The clients are the statd records the exports resource (ocf:ganesha-ha:exports) saved on the "
            "volume and restored on this node. Place it last in the volume's group, after the IP, as "
            "ocf:heartbeat:nfsnotify. validate-all checks what a start with clients to notify needs "
            "(sm-notify installed, a host name for the IP: OCF_ERR_INSTALLED otherwise), also when no client "
            "is recorded now, where a start succeeds without them; and it warns when nothing would give it a "
            "client to notify: no ocf:ganesha-ha:exports resource of the volume in the CIB, one without this "
            "ip= (it saves no NLM client of it), or a Ganesha with Enable_NLM = false on this node.")
SHORTDESC = "SM_NOTIFY to a volume's NLM clients from its floating IP"


def meta_data() -> str:
    return ocf.meta_data(AGENT_NAME, LONGDESC, SHORTDESC, PARAMS, ACTIONS)


def _params() -> tuple[str, str]:
    """(ip, volume), checked; ValidationError naming the first bad one."""
    from .errors import ValidationError

    ip, volume = ocf.param("ip"), ocf.param("volume")
    if not ip:
        raise ValidationError("ip", "is required: the floating IP the notification is sent from")
    import ipaddress

    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        raise ValidationError("ip", f"is not an IP address: {ip!r}") from None
    if not volume or not volume.startswith("/"):
        raise ValidationError("volume", f"must be the volume's mount point (an absolute path), got {volume!r}")
    return ip, volume


class NotifyAgent:
    def __init__(self, log: ocf.Logger):
        from pathlib import Path

        from .settings import load_settings

        self.log = log
        self.ip, self.volume = _params()
        self.settings = load_settings(ocf.param("config") or None)
        self.mark = Path(self.settings.node["runtime_dir"]) / "notify" / self.ip.replace(":", "_")

    # the store and the volume's context: for start and stop only (the monitor reads the mark)
    @property
    def store(self):
        from .recovery.nsm import nsm_store

        return nsm_store(self.settings)

    @property
    def ctx(self):
        from pathlib import Path

        from .context import VolumeContext

        mp = Path(self.volume)
        return VolumeContext(mountpoint=mp, state_dir=mp / ".ganesha-ha", volume_uuid="", ip=self.ip)

    @property
    def sm_notify(self) -> str:
        return str(self.settings.nsm["sm_notify"])

    def validate(self) -> None:
        """sm-notify installed and the IP named here (what a start with clients needs), then
        warnings for what would leave this resource nobody to notify (`_nobody_warnings`)."""
        from .errors import NotInstalledError
        from .recovery.notify import host_name

        if not os.access(self.sm_notify, os.X_OK):
            raise NotInstalledError(f"{self.sm_notify} is missing (Debian package nfs-common)")
        host_name(self.ip)
        for warning in self._nobody_warnings():
            self.log.warning(warning)

    def _nobody_warnings(self) -> list[str]:
        """Why this resource would never have an NLM client to notify, as far as validate-all
        can tell wherever it runs (pcs runs it on one node, at create and update, where the
        volume need not be active): the exports resource active here saves another IP's
        clients (`_unsaved_ip`); in the CIB (`cibadmin --query`), no ocf:ganesha-ha:exports
        resource of this volume, or one without this `ip` (it saves no client of it:
        recovery/nsm.py), or one of a Ganesha whose config here sets Enable_NLM = false (no
        NFSv3 lock client at all). Warnings, never errors: the resources may be created in
        any order, and a start without clients succeeds. Nothing is said of the CIB when it
        cannot be read (no cluster here)."""
        unsaved = self._unsaved_ip()
        out = [unsaved] if unsaved else []
        resources = self._exports_resources()
        if resources is None:
            return out
        if not resources:
            out.append(f"no ocf:ganesha-ha:exports resource has volume={self.volume} in the CIB: nothing saves the "
                       f"NLM clients of {self.ip} for this notify resource (create it in the volume's group, "
                       "before the IP, with ip= this address)")
        for rid, params in resources:
            problem = _ip_problem(params.get("ip", ""), self.ip, f"{rid} (the exports resource of volume "
                                                                 f"{self.volume})")
            if problem and unsaved is None:
                out.append(problem)
            if params.get("server") == "ganesha":
                out += self._nlm_off(params.get("config") or None)
        return out

    def _own_instance(self) -> bool:
        """True when the volume, mounted here, is served by a Ganesha instance of its own
        (servers.py `instance` mode), which runs with NLM off (ganesha_instance_conf.py)."""
        from .errors import GaneshaHAError
        from .registry import Registry
        from .servers import SHARED

        try:
            return Registry(self.volume).load().ganesha_mode != SHARED
        except GaneshaHAError:
            return False

    def _exports_resources(self) -> list[tuple[str, dict[str, str]]] | None:
        """(id, parameters) of the ocf:ganesha-ha:exports primitives of this volume in the
        CIB; None when the CIB cannot be read here."""
        from .errors import GaneshaHAError
        from .formats.cib import parse
        from .transfer import query_cib

        try:
            cib = parse(query_cib())
        except GaneshaHAError:
            return None
        mine = os.path.normpath(self.volume)
        return [(rid, params) for rid, params in cib.ours.items()
                if params.get("volume") and os.path.normpath(params["volume"]) == mine]

    def _nlm_off(self, config: str | None) -> list[str]:
        """A warning when the volume's Ganesha has NLM off: its own instance (when the volume
        is mounted here and says so), or this node's (the exports resource's settings)."""
        from .backends.ganesha_node import load_node_config
        from .errors import GaneshaHAError
        from .settings import load_settings

        if self._own_instance():
            return [f"volume {self.volume} is served by a Ganesha instance of its own, which runs NFSv4 only with "
                    "NLM off: it has no NFSv3 lock (NLM) client, so this notify resource has nobody to notify"]
        try:
            path = str(load_settings(config).ganesha["ganesha_config"])
        except GaneshaHAError:
            return []
        conf, _ = load_node_config(path) if path else (None, None)
        if conf is None or conf.enable_nlm:
            return []
        return [f"{path} sets NFS_CORE_PARAM Enable_NLM = false: this node's Ganesha serves no NFSv3 lock "
                "(NLM) client, so this notify resource has nobody to notify here"]

    def start(self) -> int:
        from .recovery.notify import notify

        self._require_volume()
        unsaved = self._unsaved_ip()
        if unsaved:
            self.log.warning(unsaved)
        res = notify(self.store, self.ctx, self.sm_notify, retry_minutes=int(self.settings.nsm["retry_minutes"]),
                     wait=float(self.settings.nsm["notify_wait"]))
        self._set_mark(res.summary())
        (self.log.info if not res.pending else self.log.warning)(f"{self.ip}: {res.summary()}")
        return ocf.OCF_SUCCESS

    def _unsaved_ip(self) -> str | None:
        """Why the volume's exports resource, active on this node, saves no NLM client of this
        IP (its start's node-local mark, nodestate.py, holds its `ip`): without `ip=` it saves
        none (recovery/nsm.py), with another IP those of that one. Then this resource never
        has anyone to notify, silently, and NFSv3 clients lose their locks at every move (a
        warning, not an error: the start itself cannot fail for it). None when it is this IP,
        or when the volume is not active here (nothing to compare with)."""
        from pathlib import Path

        from .nodestate import NodeState

        record = NodeState(Path(self.settings.node["runtime_dir"]), Path(self.volume)).active_record()
        if record is None:
            return None
        return _ip_problem(str(record.get("ip") or ""), self.ip, f"the exports resource of volume {self.volume}")

    def _require_volume(self) -> None:
        """NotInitialisedError (OCF_ERR_CONFIGURED) unless `volume` holds ganesha-ha's state
        directory: the volume's NSM state number is kept there. Checked at every start, so a
        wrong volume= fails when the resource is created, not at the first move that has NLM
        clients to notify (then the start failed with "cannot write .../nsm-state")."""
        from .errors import NotInitialisedError
        from .registry import STATE_DIR

        if not os.path.isdir(os.path.join(self.volume, STATE_DIR)):
            raise NotInitialisedError(f"volume={self.volume} is not a ganesha-ha volume (no {STATE_DIR} in it): "
                                      "give the mount point of the exports resource's volume=")

    def stop(self) -> int:
        from .recovery.nsm import end_notifier

        directory = self.store.notify_dir(self.ctx)
        ended = end_notifier(directory) if directory is not None else False
        try:
            self.mark.unlink()
        except FileNotFoundError:
            pass
        self.log.info(f"{self.ip}: stopped" + ("; sm-notify ended, the clients it had not reached "
                                                   "stay in the volume's records" if ended else ""))
        return ocf.OCF_SUCCESS

    def monitor(self) -> int:
        return ocf.OCF_SUCCESS if self.mark.exists() else ocf.OCF_NOT_RUNNING

    def _set_mark(self, text: str) -> None:
        from .fsutil import atomic_write, ensure_secure_dir

        self.mark.parent.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        ensure_secure_dir(self.mark.parent)
        atomic_write(self.mark, (text + "\n").encode())


def _ip_problem(theirs: str, ip: str, who: str) -> str | None:
    """Why an exports resource (`who`) whose `ip` parameter is `theirs` saves no NLM client of
    the notify resource's `ip` (recovery/nsm.py keys them by the exports resource's ip=);
    None when it is the same address."""
    import ipaddress

    try:
        if theirs and str(ipaddress.ip_address(theirs)) == ip:
            return None
    except ValueError:
        pass
    now = f"has ip={theirs}, so it saves the NLM clients of {theirs}" if theirs else \
        "has no ip=, so it saves no NLM client"
    return (f"set ip={ip} on {who}: it {now}, and this notify resource never notifies anyone: NFSv3 clients "
            f"of {ip} lose their locks at every move")


def run(action: str) -> int:
    if action == "meta-data":
        sys.stdout.write(meta_data())
        return ocf.OCF_SUCCESS
    if action in ("usage", "help"):
        sys.stdout.write(ocf.usage(AGENT_NAME))
        return ocf.OCF_SUCCESS
    if action not in ocf.RUN_ACTIONS:
        sys.stderr.write(ocf.usage(AGENT_NAME))
        return ocf.OCF_ERR_UNIMPLEMENTED
    log = ocf.Logger()
    from .errors import GaneshaHAError

    try:
        agent = NotifyAgent(log)
    except GaneshaHAError as exc:
        return ocf.unconfigured(log, action, exc)
    return ocf.perform(log, action, lambda: ocf.dispatch(agent, action))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write(ocf.usage(AGENT_NAME))
        return ocf.OCF_ERR_ARGS
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
