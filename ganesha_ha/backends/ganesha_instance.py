"""A volume's own ganesha.nfsd (a volume initialised with `--ganesha-mode instance`): the
agent's start launches it, its stop ends it, its monitor checks it; export changes go to it
over D-Bus as to the node's shared Ganesha (this backend is ganesha.py's, addressed to the
instance's own bus name).

Why one daemon per volume: Ganesha's grace period is server-wide (src/Protocols/NFS/
nfs4_op_open.c, nfs_get_grace_status). With one shared daemon per node, the take-over grace
that lets a moved volume's clients reclaim stalls the new OPENs and LOCKs of every other
volume on that node; an instance of its own stalls only the volume's own clients. Its
records, grace, Export_Ids and pseudo namespace are the volume's, so:
- no record copying and no take-over event: the instance's RecoveryRoot is on the volume
  (`<mount point>/.ganesha-ha/nfs4-recovery`), the records are written there by Ganesha
  itself as clients confirm, and the next start (on any node) reads them and begins its own
  grace for exactly those clients (recovery/ganesha_records.py InstanceRecords only counts them);
- no cross-volume Export_Id ranges and pseudo-path checks: nothing else is served by it.

The instance (ganesha_instance_conf.py renders its config) binds the floating IP
(Bind_Addr), so it starts after the IP is up (the recipe's group order: fs → IP → exports);
its exports are in its config, live before it accepts a client. Its files are under
`<runtime_dir>/ganesha/instances/<volume uuid>/` (config, Ganesha's pid file, stderr), its log
is `<log_dir>/ganesha-ha-<volume uuid>.log`.

Which process is the instance: the one holding the lock on its pid file (Ganesha takes it
with fcntl at start and keeps it while it lives; linux.lock_holder), checked to be a
ganesha.nfsd of this config. A pid file whose lock nobody holds is stale, whatever PID it
names: never signalled, removed before the next start. The instance is controllable only
when it owns its bus name: checked by the owner's PID, not only that the name has an owner
(an instance that finds its name taken keeps serving NFS without D-Bus control).
"""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from .. import linux
from ..context import VolumeContext
from ..errors import InstanceConflictError, NoAnswerError, NotInstalledError, ServerUnavailableError, ValidationError
from ..fsutil import atomic_write, ensure_secure_dir
from ..model import Export
from ..recovery.ganesha_records import InstanceRecords
from . import ganesha_instance_conf as conf
from . import ganesha_instance_volume as volume_state
from .ganesha import GaneshaBackend
from .ganesha_bus import EXPORT_MGR_IFACE, EXPORT_MGR_PATH, BusUnreachable, GaneshaBus, action_deadline, secs
from .ganesha_conf import RenderOptions

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from ..recovery import RecoveryStore

POLL = 0.02   # seconds between two looks at a starting instance
STOP_ASK = 2.0   # seconds a stop waits for the instance's ShowExports before it ends it (it answers in ms)
HUNG_TERM = 2.0  # seconds a stop gives a hung instance (running, not answering) to go on SIGTERM before SIGKILL
KILL_WAIT = 5.0  # seconds for a SIGKILLed instance to be gone (else the stop fails: stuck in the kernel) ...
KILL_KEEP = 0.5  # ... and at least this, whatever is left of the action (it is gone in ms)


class GaneshaInstanceBackend(GaneshaBackend):
    """The Ganesha backend of one volume with a ganesha.nfsd of its own (see the module)."""

    own_server = True

    def __init__(self, settings: Any, ctx: VolumeContext):
        super().__init__(settings)
        g, inst = settings.ganesha, settings.instance
        self.ctx = ctx
        self.prefix = conf.dbus_prefix(ctx.volume_uuid)
        self.bus = GaneshaBus(g["bus_address"], self.prefix, float(g["dbus_timeout"]), action_deadline(g))
        self.bus.hint = "hung? a stop ends it"
        self.render_opts = RenderOptions(protocols="4", transports=g["transports"])
        self.program = str(inst["ganesha_nfsd"])
        self.port = int(inst["nfs_port"])
        # the volume's own times when its registry sets them (the same on every node), else the node's
        self.grace_period = int(ctx.instance.get("grace_period", inst["grace_period"]))
        self.lease_lifetime = int(ctx.instance.get("lease_lifetime", inst["lease_lifetime"]))
        self.start_timeout, self.stop_timeout = float(inst["start_timeout"]), float(inst["stop_timeout"])
        self.dir = Path(settings.node["runtime_dir"]) / "ganesha" / "instances" / ctx.volume_uuid
        self.config_path = self.dir / "ganesha.conf"
        self.pid_path = self.dir / "ganesha.pid"
        self.stderr_path = self.dir / "stderr"
        self.log_path = Path(inst["log_dir"]) / f"ganesha-ha-{ctx.volume_uuid}.log"
        self.recovery_root = ctx.state_dir / conf.RECOVERY_DIR
        self.records = InstanceRecords(self.recovery_root)   # type: ignore[assignment]
        self.bus.who = self._who
        self._stop_notes: list[str] = []   # what the last stop_server had to do, for after_stop's log
        self._start_warnings: list[str] = []   # what the last launch found risky, for handle_risks

    def reach(self) -> str | None:
        return None   # its own bus, found from the volume (ctx) at every action: nothing to keep

    def _who(self) -> str:
        pid = linux.lock_holder(self.pid_path)
        return "the volume's ganesha.nfsd instance" + (f" (pid {pid})" if pid is not None else "")

    # ---- this node --------------------------------------------------------------------
    def check_installed(self) -> None:
        super().check_installed()
        if not os.access(self.program, os.X_OK):
            raise NotInstalledError(f"{self.program} is not an executable here (nfs-ganesha): a volume with its "
                                    "own Ganesha instance needs ganesha.nfsd on every node")

    def pid(self) -> int | None:
        """The instance's PID: the holder of its pid file's lock, when that is a ganesha.nfsd
        reading this instance's config; None when no such process runs."""
        holder = linux.lock_holder(self.pid_path)
        if holder is None or not linux.pid_alive(holder):   # a zombie or a dying task serves nothing
            return None
        args = linux.cmdline(holder)
        if not args or os.path.basename(args[0]) != os.path.basename(self.program) \
                or str(self.config_path) not in args:
            return None
        return holder

    def is_running(self) -> bool:
        try:
            pid = self.pid()
            return pid is not None and self.bus.owner_pid() == pid
        except BusUnreachable:
            return False

    def require_running(self) -> None:
        pid = self.pid()
        if pid is None:   # Pacemaker keeps 128 characters of a reason: the log to read first
            raise ServerUnavailableError(f"ganesha.nfsd instance not running (exited or killed); its log: "
                                         f"{self.log_path}; no process holds its pid file {self.pid_path}")
        if linux.is_stopped(pid):   # known at once, where its D-Bus calls would time out
            raise ServerUnavailableError(f"the volume's ganesha.nfsd instance (pid {pid}) is stopped (SIGSTOP or "
                                         "a tracer): it answers no client; a stop kills it")
        bound = self._wrong_ip()
        if bound:
            raise ServerUnavailableError(f"the volume's ganesha.nfsd instance (pid {pid}) listens on {bound}, the "
                                         f"resource's ip is {self.ctx.ip}")
        owner = self.bus.owner_pid()
        if owner == pid:
            return
        if owner is None:
            raise ServerUnavailableError(f"the volume's ganesha.nfsd instance (pid {pid}) runs without its D-Bus name "
                                         f"{self.bus.bus_name} on {self.bus.where()}: it cannot be controlled")
        raise self._name_taken(owner)

    def _wrong_ip(self) -> str | None:
        """The address the running instance listens on (the Bind_Addr of the config it was
        started with: launch writes it only when no instance runs) when it is not the
        resource's floating IP; None when it is, or when no IP is given (a command line
        without --ip). An instance left on an earlier address serves no client of the right
        one: it must not count as running."""
        if not self.ctx.ip:
            return None
        try:
            want = conf.check_ip(self.ctx.ip)
            bound = conf.bind_addr(self.config_path.read_text())
        except (ValidationError, OSError, UnicodeDecodeError):
            return None
        return None if bound is None or bound == want else bound

    def live_paths(self, ctx: VolumeContext, exports: Sequence[Export]) -> dict[str, bool]:
        """As the shared daemon's; but a stopped instance, which would let every D-Bus call
        time out, holds all of them still (its port, its exports: a probe must not call the
        volume stopped here while it does, a stop kills it)."""
        pid = self.pid()
        if pid is not None and linux.is_stopped(pid):
            return {e.path: True for e in exports}
        return super().live_paths(ctx, exports)

    def _name_taken(self, owner: int) -> InstanceConflictError:
        return InstanceConflictError(f"D-Bus name {self.bus.bus_name} is owned by {_describe(owner)}, not "
                                     "by this volume's ganesha.nfsd instance; end that process on this node")

    # ---- the volume's own server ----------------------------------------------------------
    def launch(self, ctx: VolumeContext, exports: Sequence[Export]) -> list[str]:
        """Start the volume's instance with `exports` in its config, unless it runs already
        (then nothing changes); wait until it owns its bus name and listens on the floating
        IP. Exports this node cannot serve (check_export, check_installed_for) are left out:
        the start's read-back finds them missing and reports each with its reason.

        Checked first, each with its error: the floating IP is an address here
        (ValidationError "ip": the group starts the IP first), the node has an IPv6 address
        besides ::1 for an IPv4 IP (NotInstalledError: Ganesha 4.3 would bind every address),
        nothing else listens on the port there or owns the bus name (InstanceConflictError),
        the RecoveryRoot on the volume is a directory this node can write (InsecureStateError,
        RegistryError). A daemon that dies at start is diagnosed from its log. Returns notes
        for the log."""
        ip = conf.check_ip(ctx.ip)
        notes: list[str] = []
        self._start_warnings = [w for w in (self._times_warning(),) if w]
        running = self.pid()
        if running is not None:
            wrong = self._wrong_ip()
            owner = self.bus.owner_pid()
            if owner == running and not wrong and not linux.is_stopped(running):
                return [f"ganesha.nfsd instance already running (pid {running})"]
            # serving without control, on another address or stopped: no use to anyone, start it again
            self._stop_notes = []
            stopped = linux.is_stopped(running)
            self._end(running, quick=stopped, why="as it was stopped (SIGSTOP or a tracer)" if stopped else "")
            if owner is not None and owner != running:
                raise self._name_taken(owner)
            notes += self._stop_notes
            notes.append(f"ended instance pid {running}: " + (
                f"it listened on {wrong}, not {ip}" if wrong else "it ran without its D-Bus name"
                if owner != running else "it was stopped"))
        self._check_address(ip)
        self._check_port(ip)
        owner = self.bus.owner_pid()
        if owner is not None:
            raise self._name_taken(owner)
        notes += volume_state.check_recovery_root(self.recovery_root)
        served = [e for e in exports if self._servable(e)]
        text = conf.render_config(conf.InstanceConfig(
            ip=ip, port=self.port, prefix=self.prefix, recovery_root=str(self.recovery_root),
            scope=conf.server_scope(ctx.volume_uuid), grace_period=self.grace_period,
            lease_lifetime=self.lease_lifetime, plugins_dir=self._plugins_setting[0]),
            served, ctx.mountpoint, self.render_opts.transports)
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        ensure_secure_dir(self.runtime_dir / "instances", 0o700)
        ensure_secure_dir(self.dir, 0o700)
        atomic_write(self.config_path, text.encode(), 0o600)
        if self.pid_path.exists() and linux.lock_holder(self.pid_path) is None:
            self.pid_path.unlink()     # stale: nobody holds it, whatever PID it names
            notes.append(f"removed stale pid file {self.pid_path}")
        epoch = volume_state.next_epoch(ctx, self._start_warnings)
        pid = self._spawn_and_wait(ip, epoch)
        notes.append(f"started ganesha.nfsd instance pid {pid} on {ip} port {self.port} "
                     f"({len(served)} of {len(exports)} exports in its config, bus name {self.bus.bus_name})")
        return notes

    def stop_server(self, ctx: VolumeContext) -> int:
        """End the volume's instance: SIGTERM, up to stop_timeout, then SIGKILL. Returns how
        many exports it served (0 when it was not running or did not say). Its exports go
        with it: nothing is withdrawn one by one. An instance that does not answer is ended
        without waiting out stop_timeout, and the stop succeeds (its exports die with it):
        a stopped one (SIGSTOP, a tracer) is killed at once (it would not even receive a
        SIGTERM); a hung one (running, its ShowExports unanswered within STOP_ASK s or by the
        action's deadline: a deadlock) gets HUNG_TERM s to go on SIGTERM (its shutdown may
        wait on the hung thread), then SIGKILL. Pacemaker's stop timeout (20 s by default)
        is kept for the rest of the stop. What was done is in after_stop's notes.
        ServerUnavailableError when it does not go away even after SIGKILL (the stop must
        then fail: the node is fenced)."""
        self._stop_notes = []
        pid = self.pid()
        if pid is None:
            return 0
        if linux.is_stopped(pid):
            self._end(pid, quick=True, why="as it was stopped (SIGSTOP or a tracer): it answers nothing")
            return 0
        try:   # Export_Id 0 is Ganesha's pseudo root, not one of the volume's
            if self.bus.owner_pid() != pid:
                self._end(pid)
                return 0
            _, shown = self.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "ShowExports", timeout=STOP_ASK)
        except NoAnswerError as exc:   # hung: what it did not answer, and how long it was given
            said = str(exc).removesuffix(f": {self.bus.hint}").removeprefix(f"{self._who()} ")   # the note names it
            self._end(pid, grace=HUNG_TERM, why=f"as it was hung ({said})")
            return 0
        except ServerUnavailableError as exc:
            self._end(pid, quick=True, why=f"after its ShowExports failed ({exc})")
            return 0
        self._end(pid)
        return len({int(e[0]) for e in shown} - {0})

    def after_stop(self, ctx: VolumeContext, unlock_fs: bool, unlock_ip: bool, lease_wait: float) -> list[str]:
        """What the stop had to do to the instance (a kill), for the stop's log line."""
        return self._stop_notes + super().after_stop(ctx, unlock_fs, unlock_ip, lease_wait)

    def _end(self, pid: int, quick: bool = False, why: str = "", grace: float | None = None) -> None:
        """End the instance `pid`: SIGTERM and up to `grace` s (default stop_timeout) for it
        to go, then SIGKILL and up to KILL_WAIT s; with `quick` (it answers nothing), SIGKILL
        at once. In the agent both waits end before the action's timeout (the deadline). A
        kill is noted in _stop_notes with `why`, and so is a SIGTERM given for a reason."""
        wait = self.stop_timeout if grace is None else grace
        deadline = self.bus.deadline
        if deadline is not None:   # the SIGTERM's grace leaves KILL_KEEP s for the SIGKILL
            wait = deadline.last_wait(wait, keep=KILL_KEEP)
        starttime = linux.proc_starttime(pid)
        gone, killed = linux.terminate(pid, starttime, 0.0 if quick else wait,
                                       KILL_WAIT if deadline is None else max(KILL_KEEP, deadline.last_wait(KILL_WAIT)))
        if killed:
            self._stop_notes.append(f"killed the volume's instance pid {pid} "
                                    + (f"{why}, after SIGTERM did not end it within {secs(wait)} s" if why and not quick
                                       else why or f"after it did not end on SIGTERM within {secs(wait)} s"))
        elif why and gone:
            self._stop_notes.append(f"ended the volume's instance pid {pid} by SIGTERM {why}")
        if not gone:
            raise ServerUnavailableError(f"the volume's ganesha.nfsd instance (pid {pid}) did not exit after SIGTERM "
                                         "and SIGKILL (a process stuck in the kernel?)")

    # ---- checks before a start --------------------------------------------------------------
    def _check_address(self, ip: str) -> None:
        from .. import linux_net   # the network state: only a start needs it

        err = linux_net.bind_error(ip)
        if err == errno.EADDRNOTAVAIL:
            raise ValidationError("ip", f"{ip} is not an address of this node, and the volume's ganesha.nfsd "
                                        "instance binds it: start the IP before the exports (group order: file "
                                        "system, IP, exports)")
        if err is not None:
            raise ValidationError("ip", f"{ip} cannot be bound here: {os.strerror(err)}")
        if ":" not in ip and linux_net.ipv6_sockets() and not any(
                a != "::1" for a in linux_net.ipv6_addresses()):
            raise NotInstalledError(f"this node has no IPv6 address but ::1, and then ganesha.nfsd 4.3 binds port "
                                    f"{self.port} on every address instead of {ip} (Bind_Addr bug): give it one "
                                    "(e.g. 'ip addr add fd00::1/128 dev lo') or turn IPv6 off (ipv6.disable=1)")

    def _check_port(self, ip: str) -> None:
        from .. import linux_net

        holders = [(a, inode) for a, inode in linux_net.tcp_listeners(self.port) if conf.covers(a, ip)]
        if not holders:
            return
        owners = linux_net.socket_owners(inode for _, inode in holders)
        who = "; ".join(f"{a} by " + (_describe(owners[i]) if i in owners else "a process") for a, i in holders)
        other = next(((o, owners[i]) for _, i in holders if i in owners and (o := _instance_of(owners[i]))), None)
        if other:   # Pacemaker keeps 128 characters: the volume that has the IP first
            raise InstanceConflictError(f"port {self.port} on {ip} is taken by the instance of volume {other[0]} "
                                        f"(pid {other[1]}): two volumes cannot share an IP")
        raise InstanceConflictError(f"port {self.port} on {ip} is already taken ({who}); the volume's ganesha.nfsd "
                                    "instance needs it (a node's shared Ganesha must bind its own addresses, not "
                                    "0.0.0.0)")

    def _times_warning(self) -> str | None:
        """Why the instance's grace would not cover its lease, None when it does. `volume init`
        refuses such times (cli.py), but a volume without its own takes the node's [instance]
        values at each start, and those may change later. A warning, not OCF_ERR_CONFIGURED: the
        latter stops the volume on every node for one node's tuning, while the risk is only a
        client that renews once a lease coming back after the grace (RFC 8881 8.4.2.1): it loses
        its opens and locks, as it would with no HA at all."""
        if self.grace_period >= self.lease_lifetime:
            return None

        def source(key: str) -> str:
            return "the volume's" if key in self.ctx.instance else "this node's [instance]"
        return (f"Grace_Period {self.grace_period} s ({source('grace_period')}) is shorter than Lease_Lifetime "
                f"{self.lease_lifetime} s ({source('lease_lifetime')}): after a move a client renewing once a lease "
                "may come back after the grace and lose its opens and locks; raise grace_period or lower "
                "lease_lifetime")

    def handle_risks(self, exports: Sequence[Export]) -> list[str]:
        """The shared daemon's file-handle risks are not the instance's (its config is its
        own); what the last launch found risky instead: grace shorter than the lease, an
        `instance-epoch` file it could not use."""
        return list(self._start_warnings)

    def _servable(self, exp: Export) -> bool:
        try:
            self.check_export(exp, self.ctx.mountpoint)
            self.check_installed_for(exp)
        except (ValidationError, NotInstalledError):
            return False
        return True

    # ---- the start itself ---------------------------------------------------------------------
    def _spawn_and_wait(self, ip: str, epoch: int) -> int:
        import subprocess

        from .. import linux_net

        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            log_start = self.log_path.stat().st_size
        except OSError:
            log_start = 0
        env = dict(os.environ)
        if self.bus.address:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        argv = [self.program, "-F", "-f", str(self.config_path), "-L", str(self.log_path),
                "-p", str(self.pid_path), "-N", "NIV_EVENT", "-E", str(epoch)]
        with open(self.stderr_path, "wb") as err:
            try:
                proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=err, start_new_session=True, close_fds=True)
            except OSError as exc:
                raise NotInstalledError(f"cannot run {self.program}: {exc.strerror}") from None
        deadline = time.monotonic() + self.start_timeout
        polls = 0
        while True:
            rc = proc.poll()
            if rc is not None:
                raise self._died(rc, log_start)
            polls += 1
            if polls % 10 == 0 and any(conf.BUS_FAILED.search(line) for line in self._log_since(log_start)):
                self._end(proc.pid)     # it would serve NFS with nobody able to control it
                raise self._died(None, log_start)
            owner = self.bus.owner_pid()
            if owner is not None and owner != proc.pid:
                self._end(proc.pid)
                raise self._name_taken(owner)
            mine = linux_net.socket_inodes(proc.pid)   # another's listener proves nothing of ours
            listening = [a for a, inode in linux_net.tcp_listeners(self.port) if inode in mine and conf.covers(a, ip)]
            if any(conf.is_wildcard(a) for a in listening):
                self._end(proc.pid)
                raise NotInstalledError(f"ganesha.nfsd bound port {self.port} on every address, not only {ip} "
                                        "(Ganesha 4.3's Bind_Addr bug on a node without an IPv6 address but ::1): "
                                        "stopped it; give the node an IPv6 address")
            if owner == proc.pid and listening:
                return proc.pid
            if time.monotonic() >= deadline:
                self._end(proc.pid)
                what = "its D-Bus name" if owner is None else f"port {self.port} on {ip}"
                tail = self._log_since(log_start)
                said = conf.diagnose(tail)[1] if tail else ""
                raise ServerUnavailableError(f"the volume's ganesha.nfsd instance did not take {what} within "
                                             f"{self.start_timeout:g} s; stopped it" + (f"; its log: {said}" if said else ""))
            time.sleep(POLL)

    def _log_since(self, offset: int) -> list[str]:
        lines: list[str] = []
        for path, start in ((self.log_path, offset), (self.stderr_path, 0)):
            try:
                with open(path, "rb") as fh:
                    fh.seek(start)
                    lines += fh.read(1 << 20).decode("utf-8", "replace").splitlines()
            except OSError:
                continue
        return lines

    def _died(self, rc: int | None, log_start: int) -> Exception:
        """The error for an instance that exited during its start (`rc`), or that was ended
        because it could not take its bus name (None), from what it logged."""
        cause, line = conf.diagnose(self._log_since(log_start))
        said = f" (ganesha.nfsd: {line})" if line else ""
        if cause == conf.BUS_DENIED:
            return NotInstalledError(f"the system bus does not let the volume's ganesha.nfsd own {self.bus.bus_name}: "
                                     "install ganesha-ha's D-Bus policy on this node "
                                     f"(/usr/share/dbus-1/system.d/ganesha-ha.conf){said}")
        if cause == conf.BUS_TAKEN:
            owner = self.bus.owner_pid()
            return self._name_taken(owner) if owner is not None else InstanceConflictError(
                f"another connection held {self.bus.bus_name} when the volume's ganesha.nfsd started{said}")
        if cause == conf.PORT_IN_USE:
            return InstanceConflictError(f"port {self.port} on {self.ctx.ip} is taken by another process: the "
                                         f"volume's ganesha.nfsd instance could not bind it{said}")
        if cause in (conf.NOT_LOCAL, conf.UNRESOLVED):
            return ValidationError("ip", f"ganesha.nfsd could not bind {self.ctx.ip}, which must be an address of "
                                         f"this node when the exports start (group order: file system, IP, exports){said}")
        if cause == conf.PIDFILE_LOCKED:
            return InstanceConflictError(f"another process holds the pid file {self.pid_path}{said}")
        how = f"exited at start with code {rc}" if rc is not None else "could not start"
        return ServerUnavailableError(f"the volume's ganesha.nfsd instance {how}{said}; its log is {self.log_path}")

    # ---- client recovery and grace --------------------------------------------------------------
    def recovery_stores(self, ctx: VolumeContext) -> list[RecoveryStore]:
        """The instance's records are on the volume already (InstanceRecords only counts them)."""
        return [self.records]

    def after_restore(self, ctx: VolumeContext, records: int) -> str | None:
        """No take-over event: the instance began its own grace at its start, for exactly the
        volume's clients with records (and with none, none: it lifts at once, NLM being off)."""
        return f"the instance's own start grace, for {records} client(s) of this volume" if records else None


def _describe(pid: int) -> str:
    """A process in a few words for an exit reason (Pacemaker keeps 128 characters): another
    volume's instance as such, else its name and PID, never its whole command line."""
    other = _instance_of(pid)
    if other:
        return f"the ganesha.nfsd instance of volume {other} (pid {pid})"
    return f"{linux.comm(pid) or 'a process now gone'} (pid {pid})"


def _instance_of(pid: int) -> str | None:
    """The volume UUID of the ganesha-ha instance `pid` is (its `-f` names
    <runtime_dir>/ganesha/instances/<uuid>/ganesha.conf), None for any other process."""
    args = linux.cmdline(pid) or []
    for arg in args[1:]:
        path = Path(arg)
        if path.name == "ganesha.conf" and path.parent.parent.name == "instances":
            return path.parent.name
    return None
