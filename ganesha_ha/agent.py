"""The OCF resource agent `ocf:ganesha-ha:exports`: start/stop/monitor over volume.py.

Two modes:
- volume mode (`volume=`): one primitive per shared volume, managing every export in the
  volume's registry: one start, one stop and one cheap monitor pass for all of them;
- classic mode (`directory=`, `clientspec=`, `options=`, `fsid=`): a drop-in for
  ocf:heartbeat:exportfs, one export per primitive; the fsid (given, or generated once) is
  stored in the registry of the file system containing the directory, as the 2010 agent
  stored it on the DRBD device.

Return codes are chosen on purpose (errors.py): a missing program → OCF_ERR_INSTALLED (the
resource moves), bad parameters → OCF_ERR_CONFIGURED (stopped everywhere), an id collision
or unsafe state on this node → OCF_ERR_PERM (banned from this node only), a server or bus
that is down or a volume not mounted yet → OCF_ERR_GENERIC (local recovery).
"""
from __future__ import annotations

import os
import sys

from . import __version__, ocf
from .servers import BACKENDS, SERVERS


def _fail_configured(log: ocf.Logger, message: str) -> int:
    log.error(message)
    return ocf.OCF_ERR_CONFIGURED


def validate_params(log: ocf.Logger) -> int:
    """Cheap checks of the parameters alone (no volume, no server)."""
    server = ocf.param("server")
    if server not in SERVERS:
        return _fail_configured(log, f"server must be {' or '.join(repr(s) for s in SERVERS)}, got {server!r}")
    volume, directory = ocf.param("volume"), ocf.param("directory")
    if not volume and not directory:
        return _fail_configured(log, "set volume (the shared volume's mount point) or, in classic mode, directory")
    for name, value in (("volume", volume), ("directory", directory)):
        if value and not value.startswith("/"):
            return _fail_configured(log, f"{name} must be an absolute path, got {value!r}")
        raw = os.environ.get(f"OCF_RESKEY_{name}", "")
        if raw != raw.strip():  # stripped, "/vol/data " would export /vol/data, and "/vol/ " all of /vol
            return _fail_configured(log, f"{name} begins or ends with white space: {raw!r}")
    if directory and not ocf.param("clientspec"):
        return _fail_configured(log, "classic mode (directory=) needs clientspec")
    ip = ocf.param("ip")
    if ip:
        import ipaddress

        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return _fail_configured(log, f"ip is not an IP address: {ip!r}")
    return ocf.OCF_SUCCESS


def _settings():
    from .settings import load_settings

    settings = load_settings(ocf.param("config") or None)
    bus = ocf.param("bus_address")
    if bus:
        settings.ganesha["bus_address"] = bus
    # One hung call (exportfs, D-Bus) must end while the action can still answer with a code
    # and a reason: if Pacemaker's own timeout fires first it kills the agent, and a stop that
    # times out gets the node fenced with nothing in the log to say why.
    try:
        budget = 0.4 * int(os.environ.get("OCF_RESKEY_CRM_meta_timeout", "") or 0) / 1000.0
    except ValueError:
        budget = 0.0
    if budget > 0:
        for section, key in (b.call_timeout for b in BACKENDS):
            sec = getattr(settings, section)
            sec[key] = min(float(sec[key]), max(budget, 0.5))
    return settings


def _containing_mount(path: str) -> str:
    """The mount point of the file system that holds `path` (classic mode's volume).

    Walks up the path as given, not its resolved form: a symbolic link inside the volume
    then still belongs to the volume, where the start refuses it as `export add` does."""
    p = os.path.normpath(path)
    while not os.path.ismount(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


class Agent:
    def __init__(self, log: ocf.Logger):
        self.log = log
        self.server = ocf.param("server")
        self.settings = _settings()
        if self.settings.log.get("syslog") and log.syslog is None:
            self.log = ocf.Logger(use_syslog=True)
        self.classic = bool(ocf.param("directory"))
        from .backends.load import get_backend
        from .volume import Volume

        mp = ocf.param("volume") or _containing_mount(ocf.param("directory"))
        self.backend = get_backend(self.server, self.settings)
        self.volume = Volume(mp, self.settings, ip=ocf.param("ip") or None, backend=self.backend)

    # ---- volume mode ------------------------------------------------------------------
    def start(self) -> int:
        if self.classic:
            return self.classic_start()
        if self.volume.is_active():
            # a check only: no repair, and never a save of client-recovery state, which on a
            # node that has not restored the volume's copy would wipe it (the start restores)
            mon = self.volume.monitor(repair=False, save=False)
            if mon.running and mon.drift.clean:
                self.log.info(f"{self.volume.mountpoint}: already started here")
                return ocf.OCF_SUCCESS
        state = self.volume.load()
        self._check_server_matches(state)
        self._wait_for_server(state)
        res = self.volume.start()
        self.log.info(f"{self.volume.mountpoint}: {res.applied} exports live on {self.server}, "
                      f"{res.recovery_records} client records restored"
                      + (f", grace started ({res.grace})" if res.grace else ", no grace needed"))
        return ocf.OCF_SUCCESS

    def stop(self) -> int:
        if self.classic:
            return self.classic_stop()
        n = self.volume.stop()
        self.log.info(f"{self.volume.mountpoint}: stopped, {n} live exports withdrawn")
        return ocf.OCF_SUCCESS

    def monitor(self) -> int:
        if self.classic:
            return self.classic_monitor()
        res = self.volume.monitor()
        if not res.running:
            return ocf.OCF_NOT_RUNNING
        stray = res.drift.stray if res.repaired else []
        if res.repaired - len(stray):
            self.log.warning(f"{self.volume.mountpoint}: {res.repaired - len(stray)} exports were not "
                             "live as the registry says; re-applied")
        if stray:
            self.log.warning(f"{self.volume.mountpoint}: withdrew Export_Id(s) {', '.join(map(str, stray))}: "
                             "live for paths in the volume that the registry does not list")
        if res.recovery_saved:
            self.log.info(f"{self.volume.mountpoint}: client-recovery state saved to the volume")
        if res.recovery_error:
            self.log.warning(f"{self.volume.mountpoint}: client-recovery state not saved: {res.recovery_error}")
        return ocf.OCF_SUCCESS

    def _wait_for_server(self, state) -> None:
        """Give a server that is restarting (e.g. systemd's Restart=) part of the start timeout
        to come back, instead of failing the start at once: a failed start is fatal on the node."""
        import time

        from .errors import ServerUnavailableError

        backend = self.volume.backend(state)
        timeout_ms = int(os.environ.get("OCF_RESKEY_CRM_meta_timeout", "20000") or 20000)
        deadline = time.monotonic() + min(timeout_ms / 1000.0 / 2, 30.0)
        while True:
            try:
                backend.require_running()
                return
            except ServerUnavailableError as exc:
                if time.monotonic() >= deadline:
                    raise
                self.log.info(f"waiting for the server: {exc}")
                time.sleep(0.5)

    def _check_server_matches(self, state) -> None:
        from .errors import ValidationError

        if state.server != self.server:
            raise ValidationError("server", f"the resource says server={self.server} but the volume "
                                            f"{self.volume.mountpoint} was initialised for {state.server}")

    # ---- classic mode -----------------------------------------------------------------
    def _classic_export(self, state=None):
        """The export the classic parameters describe (fsid kept from the registry if not given)."""
        from .model import Export, GaneshaOptions, KnfsdOptions

        options = [o.strip() for o in ocf.param("options").split(",") if o.strip()]
        fsid = ocf.param("fsid")
        kept = []
        for opt in options:
            if opt.startswith("fsid="):
                fsid = fsid or opt[5:]
            else:
                kept.append(opt)
        opt_text = f"({','.join(kept)})" if kept else ""
        clients = tuple(f"{c}{opt_text}" for c in ocf.param("clientspec").split())
        rel = self.volume.registry.relpath(ocf.param("directory"))
        existing = state.get(rel) if state is not None else None
        if not fsid:
            fsid = existing.knfsd.fsid if existing else (state.allocate_fsid() if state else "1")
        export_id = existing.export_id if existing else (state.allocate_export_id() if state else 1)
        pseudo = existing.pseudo if existing else ocf.param("directory").rstrip("/") or "/"
        return Export(path=rel, export_id=export_id, knfsd=KnfsdOptions(fsid), pseudo=pseudo, clients=clients,
                      access="RW", squash="root_squash",
                      ganesha=existing.ganesha if existing else GaneshaOptions())

    def _classic_state(self):
        from .errors import NotInitialisedError

        reg = self.volume.registry
        try:
            return reg.load()
        except NotInitialisedError:
            return reg.init(self.server, None, self.settings.registry["id_block"])

    def _classic_check_directory(self) -> None:
        """Before anything is written: the directory is valid, exists, lies on a mounted file
        system other than the root one (a volume that is not mounted yet leaves its mount
        point on the root file system), and is reached without symbolic links."""
        from .errors import NotMountedError

        directory = ocf.param("directory")
        rel = self.volume.registry.relpath(directory)
        if not os.path.isdir(self.volume.registry.abspath(rel)):
            raise NotMountedError(f"{directory} does not exist or is not a directory "
                                  "(is its file system mounted on this node?)")
        self.volume.require_directory(rel)
        if os.path.realpath(self.volume.mountpoint) == "/":
            raise NotMountedError(f"{directory} is on the root file system, not on a shared volume "
                                  "(is its file system mounted on this node?); nothing written")

    def classic_start(self) -> int:
        """Store the export's identity on the volume (kept if already there), restore the
        volume's client-recovery state, export: one transaction."""
        self._classic_check_directory()
        self._check_server_matches(self._classic_state())   # the volume's server, not a silent switch
        with self.volume.transaction(live=True) as tx:
            exp = self._classic_export(tx.state)
            if tx.state.get(exp.path) != exp:
                tx.state = tx.state.with_export(exp)
            tx.reapply([exp])
            tx.restore = True
        if tx.changed:
            self.log.info(f"{ocf.param('directory')}: identity stored on the volume (fsid {exp.knfsd.fsid})")
        self.log.info(f"exported {ocf.param('directory')} to {ocf.param('clientspec')} (fsid {exp.knfsd.fsid})")
        return ocf.OCF_SUCCESS

    def classic_stop(self) -> int:
        from .errors import GaneshaHAError, ValidationError

        try:
            state = self.volume.registry.load()
        except GaneshaHAError:
            state = None
        if state is None:
            from .registry import RegistryState

            state = RegistryState(volume_uuid="unknown", server=self.server, id_range=(1, 65535))
        try:  # what the start stored is what is live; only the directory (and id) matter here
            exp = state.get(self.volume.registry.relpath(ocf.param("directory"))) or self._classic_export(state)
        except ValidationError as exc:  # a failed stop gets the node fenced: never for a typo
            self.log.info(f"nothing to withdraw: no export can have been started with these parameters ({exc})")
            return ocf.OCF_SUCCESS
        backend = self.volume.backend(state)
        ctx = self.volume.ctx(state)
        if not backend.is_running():
            return ocf.OCF_SUCCESS
        if state.volume_uuid != "unknown":
            try:
                self.volume.save_recovery(backend, ctx)
            except GaneshaHAError as exc:
                self.log.warning(f"could not save client list before stop: {exc}")
        backend.withdraw(ctx, [exp])
        self.volume.node.clear_restored()
        self.log.info(f"unexported {ocf.param('directory')}")
        return ocf.OCF_SUCCESS

    def classic_monitor(self) -> int:
        from .errors import GaneshaHAError

        try:
            state = self.volume.registry.load()
        except GaneshaHAError:
            return ocf.OCF_NOT_RUNNING  # no identity stored: never started
        exp = self._classic_export(state)
        backend = self.volume.backend(state)
        if not backend.is_running():
            return ocf.OCF_NOT_RUNNING
        ctx = self.volume.ctx(state)
        drift = backend.drift(ctx, [exp])
        if drift.missing or drift.changed:
            return ocf.OCF_NOT_RUNNING
        try:
            self.volume.save_recovery(backend, ctx)
        except GaneshaHAError as exc:
            self.log.warning(f"could not save client list: {exc}")
        return ocf.OCF_SUCCESS


def run(action: str) -> int:
    if action == "meta-data":
        sys.stdout.write(ocf.meta_data())
        return ocf.OCF_SUCCESS
    if action in ("usage", "help"):
        sys.stdout.write(ocf.usage())
        return ocf.OCF_SUCCESS
    log = ocf.Logger()
    # with HA_debug=1: which install answers (a stale install-agent file is a classic puzzle)
    log.debug(f"{action}: ganesha_ha {__version__} from {os.path.dirname(os.path.abspath(__file__))}, "
              f"{sys.executable}")
    if action not in ("start", "stop", "monitor", "status", "validate-all", "reload-agent", "reload"):
        sys.stderr.write(ocf.usage())
        return ocf.OCF_ERR_UNIMPLEMENTED
    rc = validate_params(log)
    if rc != ocf.OCF_SUCCESS:
        # a probe or stop of a misconfigured resource must not escalate: nothing can be running
        if action == "stop":
            return ocf.OCF_SUCCESS
        if action in ("monitor", "status") and ocf.is_probe():
            return ocf.OCF_NOT_RUNNING
        return rc
    from .errors import GaneshaHAError

    try:
        agent = Agent(log)
        if action != "stop":  # a stop must work whenever it can: nothing to serve needs no program
            # the programs the settings name (knfsd.exportfs), not whichever is on PATH
            agent.backend.check_installed()
        if action == "validate-all":
            return ocf.OCF_SUCCESS
        if action in ("reload-agent", "reload"):
            log.info("reloaded parameters (config, bus_address); nothing to restart")
            return ocf.OCF_SUCCESS
        if action == "start":
            return agent.start()
        if action == "stop":
            return agent.stop()
        return agent.monitor()
    except GaneshaHAError as exc:
        rc = exc.ocf_rc
        if action == "stop":
            log.error(f"stop failed: {exc}")
            return ocf.OCF_ERR_GENERIC
        if action in ("monitor", "status") and ocf.is_probe() and rc != ocf.OCF_ERR_PERM:
            from .errors import NotMountedError

            if isinstance(exc, NotMountedError):
                return ocf.OCF_NOT_RUNNING
        log.error(f"{action} failed: {exc}")
        sys.stderr.write(f"ocf-exit-reason:{' '.join(str(exc).split())[:500]}\n")
        return rc
    except Exception as exc:  # never a traceback in the cluster log, always a code
        log.error(f"{action} failed unexpectedly: {type(exc).__name__}: {exc}")
        return ocf.OCF_ERR_GENERIC


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write(ocf.usage())
        return ocf.OCF_ERR_ARGS
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
