"""The NFS-Ganesha backend: live export changes over D-Bus, take-over grace.

Facts this code relies on, measured against Debian's nfs-ganesha 4.3:
- AddExport(conf, "EXPORT(Export_Id=N)") of an id that is already live fails with
  org.freedesktop.DBus.Error.InvalidFileContent ("... already active"); a block that fails
  validation fails with InvalidFileContent and details; a syntax error fails with only
  InvalidArgs (details are in Ganesha's log). A partial success ("1 exports added. Errors
  found: ...", e.g. an unresolvable host name) is a success with warnings.
- RemoveExport of an unknown id fails with InvalidArgs.
- UpdateExport of an id that is not live silently *adds* it: never an existence test.
- ShowExports lists (id, path) of what is live; DisplayExport's pseudo field repeats the
  path in 4.3, so the pseudo path is checked through the NFS namespace, not D-Bus.
- A reply "N exports added/updated. Errors found: ..." is a partial success: an unknown
  FSAL option, an UpdateExport that Ganesha refused in part (a fsid_type change) answer so.
  ganesha-ha treats it as a failure (the FSAL schema keeps it from happening for what the
  schema knows) and takes back what such an AddExport added.
- RemoveExport of a PROXY_V4 export blocks Ganesha's (single) D-Bus thread for up to the
  export's RPC_Client_Timeout (proxyv4_close_thread closes the socket the receiver thread polls
  without waking it: src/FSAL/FSAL_PROXY_V4/handle.c), and up to 60 s more if its session
  renewer was mid-call. ganesha-ha writes RPC_Client_Timeout = 2 unless told otherwise
  (fsal_schema.py) and waits that long, plus the usual timeout, for such a RemoveExport.
  GLUSTER's RemoveExport blocks it too, in glfs_fini (8-9 s measured idle, more after I/O;
  glusterfs issue #2606): ganesha-ha waits up to 30 s more for it.
- Take-over grace: admin `grace("5:<key>")` (EVENT_TAKE_IP) makes Ganesha read the client
  records under <RecoveryRoot>/<key>/<RecoveryDir> and enter grace so those clients can
  reclaim (src/SAL/recovery/recovery_fs.c, src/MainNFSD/nfs_admin_thread.c); the records
  get there through recovery/ganesha_records.py.
- The D-Bus transport (timeouts, bus errors) is ganesha_bus.py.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import ApplyError, IdCollisionError, ServerUnavailableError
from ..fsutil import atomic_write, ensure_secure_dir
from ..fsal_schema import REDACTED
from ..model import Export
from ..recovery.ganesha_records import GaneshaRecordStore, takeover_key
from ..context import VolumeContext
from . import Drift
from .ganesha_bus import BusUnreachable, GaneshaBus, import_dbus
from .ganesha_conf import RenderOptions, check_renderable, export_path, render_export

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

    from ..recovery import RecoveryStore

EXPORT_MGR_PATH = "/org/ganesha/nfsd/ExportMgr"
EXPORT_MGR_IFACE = "org.ganesha.nfsd.exportmgr"
ADMIN_PATH = "/org/ganesha/nfsd/admin"
ADMIN_IFACE = "org.ganesha.nfsd.admin"
EVENT_TAKE_IP = 5


class GaneshaBackend:
    """Drives one ganesha.nfsd over D-Bus. Connects lazily: `meta-data` never touches the bus."""

    name = "ganesha"

    def __init__(self, settings: Any, bus_address: str | None = None):
        g = settings.ganesha
        self.settings = g
        self.bus = GaneshaBus(bus_address or g["bus_address"], g.get("dbus_name_prefix") or "",
                              float(g["dbus_timeout"]))
        self.runtime_dir = Path(settings.node["runtime_dir"]) / "ganesha"
        self.records = GaneshaRecordStore(Path(g["recovery_root"]), g["recovery_dir"])
        self.render_opts = RenderOptions(protocols=g["protocols"], transports=g["transports"])
        self._plugins_setting = (g.get("plugins_dir") or "", g.get("ganesha_config") or "")
        self._plugins_dir: Path | None = None

    def check_installed(self) -> None:
        import_dbus()

    def close(self) -> None:
        self.bus.close()

    def is_running(self) -> bool:
        """True when Ganesha owns its name on the bus; False when the bus says nobody does,
        or when there is no bus to connect to (Ganesha exits when its bus goes away, and one
        that never had the bus never got our exports: they only come over D-Bus).

        A bus that is there but does not answer in time raises ServerUnavailableError:
        Ganesha may be alive and serving, so "not running" would be a guess, and a stop that
        believed it would report success with the exports still live."""
        try:
            return self.bus.name_owned()
        except BusUnreachable:
            return False

    def require_running(self) -> None:
        if not self.bus.name_owned():
            raise self.bus.not_running()

    def check_export(self, exp: Export, mountpoint: Path) -> None:
        check_renderable(exp, mountpoint)

    @property
    def plugins_dir(self) -> Path:
        """Where this node's Ganesha loads FSAL modules (ganesha_plugins.plugins_dir), found once."""
        if self._plugins_dir is None:
            from .ganesha_plugins import plugins_dir

            self._plugins_dir = plugins_dir(*self._plugins_setting)
        return self._plugins_dir

    def check_installed_for(self, exp: Export) -> None:
        """NotInstalledError when the module of an FSAL of `exp` is not on this node."""
        from .ganesha_plugins import require_fsal

        require_fsal(exp.ganesha.fsal, self.plugins_dir, f"export {exp.pseudo} (Export_Id {exp.export_id})")

    def handle_risks(self, exports: Sequence[Export]) -> list[str]:
        """Why file handles of these exports would change when the volume moves to another
        node, as far as this node's Ganesha decides it: `fsid_device = true` in its
        NFS_CORE_PARAM makes every local FSAL's handle carry the device number."""
        local = [e for e in exports if not e.remote]
        if not local:
            return []
        from .ganesha_plugins import device_fsid

        config = self._plugins_setting[1]
        if config and device_fsid(Path(config)):
            return [f"{config} sets NFS_CORE_PARAM fsid_device = true: the file handles of "
                    f"{', '.join(e.pseudo for e in local)} carry this node's device number and go stale "
                    "(NFS4ERR_STALE) on a node where the volume's device has another minor number"]
        return []

    # ---- live state -----------------------------------------------------------------
    def show_exports(self) -> dict[int, str]:
        """Export_Id → path of every export Ganesha serves now (one D-Bus call)."""
        _, exports = self.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "ShowExports")
        return {int(e[0]): str(e[1]) for e in exports}

    def served_ids(self) -> set[int]:
        return set(self.show_exports())

    def display_export(self, export_id: int) -> dict[str, Any] | None:
        dbus = import_dbus()

        try:
            reply = self.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "DisplayExport", dbus.UInt16(export_id))
        except dbus.DBusException:
            return None
        return {"export_id": int(reply[0]), "path": str(reply[1]), "pseudo": str(reply[2]),
                "clients": [str(c[0]) for c in reply[4]]}

    def live_paths(self, ctx: VolumeContext, exports: Sequence[Export]) -> dict[str, bool]:
        live = self.show_exports()
        return {e.path: live.get(e.export_id) == self._abspath(ctx, e) for e in exports}

    def drift(self, ctx: VolumeContext, exports: Sequence[Export]) -> Drift:
        live = self.show_exports()
        drift = Drift(stray=self._stray(ctx, exports, live))
        for exp in exports:
            path = live.get(exp.export_id)
            if path is None:
                drift.missing.append(exp)
            elif path != self._abspath(ctx, exp):
                drift.foreign.append(f"Export_Id {exp.export_id} is live for {path}, "
                                     f"not {self._abspath(ctx, exp)}")
        return drift

    @staticmethod
    def _stray(ctx: VolumeContext, exports: Sequence[Export], live: dict[int, str]) -> list[int]:
        """Export_Ids live for a path inside the volume that the registry does not list
        (not inside another file system mounted within it: a nested volume is not ours)."""
        ours = {exp.export_id for exp in exports}
        root = str(ctx.mountpoint).rstrip("/")

        def inside(path: str, top: str) -> bool:
            return path == top or path.startswith(top + "/")

        candidates = {i: p for i, p in live.items() if i not in ours and inside(p, root)}
        if not candidates:
            return []
        from ..fsutil import mounts_below

        nested = mounts_below(ctx.mountpoint)
        return sorted(i for i, p in candidates.items() if not any(inside(p, m) for m in nested))

    def withdraw_stray(self, ctx: VolumeContext, exports: Sequence[Export]) -> int:
        dbus = import_dbus()

        stray = self._stray(ctx, exports, self.show_exports())
        for export_id in stray:
            try:
                self.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "RemoveExport", dbus.UInt16(export_id))
            except dbus.DBusException as exc:
                raise ApplyError(f"RemoveExport of stray Export_Id {export_id} failed: "
                                 f"{exc.get_dbus_message() or exc}") from None
        return len(stray)

    def check_collisions(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        live = self.show_exports()
        for exp in exports:
            path = live.get(exp.export_id)
            if path is not None and path != self._abspath(ctx, exp):
                raise IdCollisionError(f"Export_Id {exp.export_id} of {self._abspath(ctx, exp)} is already "
                                       f"served by this node's Ganesha for {path}; give the volumes "
                                       "disjoint id ranges (ganesha-ha volume set-range)")

    # ---- changes --------------------------------------------------------------------
    @staticmethod
    def _abspath(ctx: VolumeContext, exp: Export) -> str:
        return export_path(exp, ctx.mountpoint)

    def _write_block(self, ctx: VolumeContext, exp: Export) -> Path:
        """The file handed to Add/UpdateExport: the module blocks the export's FSALs need, then
        its EXPORT block (ganesha_conf.py), 0600 in a 0700 directory."""
        directory = self.runtime_dir / ctx.volume_uuid
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        ensure_secure_dir(directory, 0o700)
        check_renderable(exp, ctx.mountpoint)
        conf = directory / f"export-{exp.export_id}.conf"
        atomic_write(conf, render_export(exp, ctx.mountpoint, self.render_opts).encode(), 0o600)
        return conf

    def apply(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        """Add each export, or update it in place when its id is already live for its path;
        each checked by reading it back (DisplayExport). A reply with "Errors found" is a
        failure, and an export such an AddExport added is taken back."""
        dbus = import_dbus()

        live = self.show_exports()
        for exp in exports:
            path = self._abspath(ctx, exp)
            current = live.get(exp.export_id)
            if current is not None and current != path:
                raise IdCollisionError(f"Export_Id {exp.export_id} is already served by this node's "
                                       f"Ganesha for {current}")
            conf = self._write_block(ctx, exp)
            method = "UpdateExport" if current == path else "AddExport"
            secrets = exp.ganesha.fsal.secrets()
            try:
                message = str(self.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, method, str(conf),
                                            f"EXPORT(Export_Id={exp.export_id})"))
            except dbus.DBusException as exc:
                raise ApplyError(scrub(_explain(method, exp, exc), secrets)) from None
            finally:
                if secrets:   # Ganesha has read it: a secret stays only in the volume's registry
                    conf.unlink(missing_ok=True)
            if message.startswith("0 exports"):
                raise ApplyError(scrub(f"Ganesha {method} of {path} (Export_Id {exp.export_id}) did nothing: "
                                       f"{message}", secrets))
            if "Errors found" in message:
                if method == "AddExport":
                    self._remove(exp)
                raise ApplyError(scrub(f"Ganesha {method} of {path} (Export_Id {exp.export_id}) succeeded only "
                                       f"in part, a failure here{'; the export was taken back' if method == 'AddExport' else ''}: "
                                       f"{' '.join(message.split())}", secrets))
            live[exp.export_id] = path
            shown = self.display_export(exp.export_id)
            if shown is None or shown["path"] != path:
                raise ApplyError(f"Ganesha answered {method} of {path} (Export_Id {exp.export_id}) but does "
                                 f"not serve it: DisplayExport shows {shown['path'] if shown else 'nothing'}")

    def _remove_timeout(self, exp: Export) -> float:
        """How long a RemoveExport of `exp` may block Ganesha's D-Bus thread, plus the usual
        timeout: PROXY_V4's receiver wakes up only after its RPC_Client_Timeout, GLUSTER's
        glfs_fini waits for its bricks' disconnect (module docstring, fsal_schema.remove_wait)."""
        base = exp.ganesha.fsal.base
        if base.problem:
            return self.bus.timeout
        if base.name == "PROXY_V4":
            wait = self.bus.timeout + float(base.effective("RPC_Client_Timeout") or 60)
        else:
            wait = self.bus.timeout + base.schema.remove_wait
        budget = self.settings.get("action_budget")   # the agent's: 80 % of its action's timeout
        return max(self.bus.timeout, min(wait, float(budget))) if budget else wait

    def _remove(self, exp: Export) -> None:
        dbus = import_dbus()
        timeout = self._remove_timeout(exp)
        try:
            self.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "RemoveExport", dbus.UInt16(exp.export_id),
                          timeout=timeout)
        except dbus.DBusException as exc:
            raise ApplyError(_explain("RemoveExport", exp, exc)) from None
        except ServerUnavailableError as exc:
            if timeout == self.bus.timeout:
                raise
            why = ("a PROXY_V4 export's RemoveExport blocks Ganesha until its back-end connection's "
                   "receiver wakes (RPC_Client_Timeout), and up to 60 s more when its session renewer was "
                   "talking to the back-end (a back-end Lease_Lifetime of 5 s or less, or a back-end that "
                   "stopped answering)" if exp.ganesha.fsal.base.name == "PROXY_V4" else
                   f"a {exp.ganesha.fsal.base.name} export's RemoveExport blocks Ganesha while the FSAL "
                   "disconnects from its storage")
            raise ServerUnavailableError(f"{exc}: {why}; the removal completes in Ganesha meanwhile") from None

    def withdraw(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        live = self.show_exports()
        for exp in exports:
            if live.get(exp.export_id) != self._abspath(ctx, exp):
                continue  # not ours or not live: nothing to withdraw
            self._remove(exp)
            try:
                (self.runtime_dir / ctx.volume_uuid / f"export-{exp.export_id}.conf").unlink()
            except FileNotFoundError:
                pass

    # ---- client recovery and grace ----------------------------------------------------
    def recovery_stores(self, ctx: VolumeContext) -> list[RecoveryStore]:
        """Ganesha's NFSv4 client records (its fs recovery backend's tree) move with the volume."""
        return [self.records]

    def after_restore(self, ctx: VolumeContext, records: int) -> str | None:
        """With client records restored, start the take-over grace so those clients can
        reclaim; with none, a grace period would only block new opens on every export of
        this Ganesha for nothing. Returns Ganesha's answer, or None when not started."""
        return self.start_grace(ctx) if records else None

    def after_stop(self, ctx: VolumeContext, unlock_fs: bool, unlock_ip: bool, lease_wait: float) -> list[str]:
        """Nothing: Ganesha holds no lock on the volume once its exports are removed (their
        state goes with them), and its clients' leases are its own business."""
        return []

    def start_grace(self, ctx: VolumeContext) -> str:
        """Ask Ganesha to enter grace and accept reclaims from the volume's clients."""
        key = takeover_key(ctx)
        reply = self.bus.call(ADMIN_PATH, ADMIN_IFACE, "grace", f"{EVENT_TAKE_IP}:{key}")
        ok, msg = bool(reply[0]), str(reply[1])
        if not ok:
            raise ApplyError(f"Ganesha refused to start grace for {key}: {msg}")
        return msg

    def in_grace(self) -> bool:
        """Ganesha 4.3 answers get_grace with (in_grace, success, message)."""
        reply = self.bus.call(ADMIN_PATH, ADMIN_IFACE, "get_grace")
        return bool(reply[0]) if isinstance(reply, (tuple, list)) else bool(reply)


def scrub(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret value replaced: Ganesha's messages may quote a value."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _explain(method: str, exp: Export, exc: Any) -> str:
    name = exc.get_dbus_name() or ""
    msg = " ".join((exc.get_dbus_message() or "").split())
    where = f"Export_Id {exp.export_id} ({exp.pseudo})"
    if "already active" in msg:
        return f"Ganesha {method} of {where}: the id is already active"
    if name.endswith("InvalidArgs") and method == "AddExport":
        return (f"Ganesha rejected the EXPORT block of {where} (syntax error; see Ganesha's log): "
                f"{msg or name}")
    return f"Ganesha {method} of {where} failed: {msg or name}"
