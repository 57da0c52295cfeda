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
from ..errors import (InstanceConflictError, InsecureStateError, NotInstalledError, RegistryError,
                      ServerUnavailableError, ValidationError)
from ..fsutil import atomic_write, ensure_secure_dir, read_secure
from ..model import Export
from ..recovery.ganesha_records import InstanceRecords
from . import ganesha_instance_conf as conf
from .ganesha import GaneshaBackend
from .ganesha_bus import BusUnreachable, GaneshaBus
from .ganesha_conf import RenderOptions

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from ..recovery import RecoveryStore

POLL = 0.02   # seconds between two looks at a starting instance


class GaneshaInstanceBackend(GaneshaBackend):
    """The Ganesha backend of one volume with a ganesha.nfsd of its own (see the module)."""

    own_server = True

    def __init__(self, settings: Any, ctx: VolumeContext):
        super().__init__(settings)
        g, inst = settings.ganesha, settings.instance
        self.ctx = ctx
        self.prefix = conf.dbus_prefix(ctx.volume_uuid)
        self.bus = GaneshaBus(g["bus_address"], self.prefix, float(g["dbus_timeout"]))
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
        if pid is None:
            raise ServerUnavailableError(f"the volume's ganesha.nfsd instance is not running (it exited or was "
                                         f"killed): no process holds its pid file {self.pid_path}; its log is "
                                         f"{self.log_path}")
        owner = self.bus.owner_pid()
        if owner == pid:
            return
        if owner is None:
            raise ServerUnavailableError(f"the volume's ganesha.nfsd instance (pid {pid}) runs without its D-Bus name "
                                         f"{self.bus.bus_name} on {self.bus.where()}: it cannot be controlled")
        raise self._name_taken(owner)

    def _name_taken(self, owner: int) -> InstanceConflictError:
        return InstanceConflictError(f"D-Bus name {self.bus.bus_name} is owned by pid {owner} ({_describe(owner)}), not "
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
        running = self.pid()
        if running is not None:
            owner = self.bus.owner_pid()
            if owner == running:
                return [f"ganesha.nfsd instance already running (pid {running})"]
            self._end(running)   # serving without control: no use to anyone, start it again
            if owner is not None:
                raise self._name_taken(owner)
            notes.append(f"ended instance pid {running}, which ran without its D-Bus name")
        self._check_address(ip)
        self._check_port(ip)
        owner = self.bus.owner_pid()
        if owner is not None:
            raise self._name_taken(owner)
        notes += self._check_recovery_root()
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
        epoch = self._next_epoch(ctx, notes)
        pid = self._spawn_and_wait(ip, epoch)
        notes.append(f"started ganesha.nfsd instance pid {pid} on {ip} port {self.port} "
                     f"({len(served)} of {len(exports)} exports in its config, bus name {self.bus.bus_name})")
        return notes

    def stop_server(self, ctx: VolumeContext) -> int:
        """End the volume's instance: SIGTERM, up to stop_timeout, then SIGKILL. Returns how
        many exports it served (0 when it was not running). ServerUnavailableError when it
        does not go away even after SIGKILL (the stop must then fail: the node is fenced)."""
        pid = self.pid()
        if pid is None:
            return 0
        try:   # Export_Id 0 is Ganesha's pseudo root, not one of the volume's
            served = len(set(self.show_exports()) - {0}) if self.bus.owner_pid() == pid else 0
        except ServerUnavailableError:
            served = 0
        self._end(pid)
        return served

    def _end(self, pid: int) -> None:
        starttime = linux.proc_starttime(pid)
        gone, _ = linux.terminate(pid, starttime, self.stop_timeout)
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
        who = "; ".join(f"{a} by " + (f"pid {owners[i]} ({_describe(owners[i])})" if i in owners else "a process")
                        for a, i in holders)
        raise InstanceConflictError(f"port {self.port} on {ip} is already taken ({who}); the volume's ganesha.nfsd "
                                    "instance needs it (a node's shared Ganesha must bind its own addresses, not "
                                    "0.0.0.0)")

    def _check_recovery_root(self) -> list[str]:
        """The instance's RecoveryRoot on the volume is a directory of ours this node can
        read and write: Ganesha would start without one and keep no records (its clients
        could not reclaim after a move), with only an EVENT line in its log. A full volume
        is a note, not a failure (the exports still serve)."""
        root = self.recovery_root
        ensure_secure_dir(root, 0o700)                      # InsecureStateError: a link, a file, foreign
        for sub in (conf.RECOV_DIR, conf.OLD_DIR):
            path = root / sub
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            except OSError as exc:
                return self._recovery_unusable(path, exc)
            if path.is_symlink() or not path.is_dir():
                raise InsecureStateError(f"{path} is not a directory (the volume's NFSv4 client records live there)")
        probe = root / conf.RECOV_DIR / f".ganesha-ha-probe-{os.getpid()}"
        try:
            os.listdir(root / conf.RECOV_DIR)
            os.mkdir(probe, 0o700)
            os.rmdir(probe)
        except OSError as exc:
            return self._recovery_unusable(root, exc)
        return []

    @staticmethod
    def _recovery_unusable(path: Path, exc: OSError) -> list[str]:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return [f"the volume is full: new NFSv4 clients get no record in {path} until there is room"]
        raise RegistryError(f"the volume's NFSv4 client records cannot be kept in {path} ({exc.strerror}): "
                            "the instance would start without them and its clients could not reclaim")

    @staticmethod
    def _next_epoch(ctx: VolumeContext, notes: list[str]) -> int:
        """The next instance's epoch (conf.next_epoch), kept on the volume so that it rises
        whichever node starts the instance; a volume that cannot take it (full) is a note."""
        path = ctx.state_dir / conf.EPOCH_FILE
        try:
            raw = read_secure(path)
            last = int(raw) if raw and raw.strip().isdigit() else None
        except OSError:
            last = None
        epoch = conf.next_epoch(last, time.time())
        try:
            atomic_write(path, f"{epoch}\n".encode(), 0o600)
        except RegistryError as exc:
            notes.append(f"epoch {epoch} not kept on the volume: {exc}")
        return epoch

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
    args = linux.cmdline(pid)
    return " ".join(args)[:80] if args else "gone"
