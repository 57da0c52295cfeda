"""The NFS-Ganesha backend: live export changes over D-Bus, read back; take-over grace.

Facts this code relies on, measured against Debian's nfs-ganesha 4.3 (docs/research/ganesha-facts.md):
- AddExport(conf, "EXPORT(Export_Id=N)") of an id that is already live fails with
  org.freedesktop.DBus.Error.InvalidFileContent ("... already active"); a block that fails
  validation fails with InvalidFileContent and details; a syntax error fails with only
  InvalidArgs (details are in Ganesha's log).
- A reply "1 exports added. Errors found: ..." (and "1 exports updated. Errors found: ...") is
  a partial success: the export is live without what Ganesha could not read, e.g. a whole
  CLIENT block (export_mgr.c `gsh_export_addexport`). It is a failure here, reported in
  Ganesha's words on one line; the one exception is "Client (NAME) not found because ..." for
  a host name of the registry, which is a warning (grants.py says why).
- AddExport(file, "EXPORT(Export_Id=*)") loads every EXPORT block of the file in file order,
  and stops at a block it cannot load (export_mgr.c `gsh_export_addexport`); each complaint
  names the file and line: new exports go live several per call (ganesha_batch.py,
  ganesha_changes.py).
- ShowExports costs Ganesha ~70 ms at 1000 exports: asked once per action (`action()`).
- RemoveExport of an unknown id fails with InvalidArgs.
- UpdateExport of an id that is not live silently *adds* it: never an existence test.
- ShowExports lists (id, path) of what is live, but its path is the pseudo path when Ganesha
  runs with `mount_path_pseudo = true` (include/export_mgr.h `tmp_export_path`). Only
  DisplayExport's second field is always the full path, so ShowExports gives the live ids and
  DisplayExport the paths and the clients; every change and every monitor reads each export
  of the volume back with it and compares (grants.py).
- RemoveExport of a PROXY_V4 export blocks Ganesha's (single) D-Bus thread for up to the
  export's RPC_Client_Timeout (proxyv4_close_thread closes the socket the receiver thread polls
  without waking it: src/FSAL/FSAL_PROXY_V4/handle.c), and up to 60 s more if its session
  renewer was mid-call. ganesha-ha writes RPC_Client_Timeout = 2 unless told otherwise
  (fsal_schema.py) and waits that long, plus the usual timeout, for such a RemoveExport.
  GLUSTER's RemoveExport blocks it too, in glfs_fini (8-9 s measured idle, more after I/O;
  glusterfs issue #2606): ganesha-ha waits up to 30 s more for it.
- AddExport of a PROXY_V4 export whose back-end refuses the connection (or does not answer)
  never returns: the receiver thread logs "Cannot connect to server" and retries while the D-Bus
  thread waits for the back-end's answer (measured: no reply after 4 min, every later D-Bus call
  of that Ganesha timing out, for every volume of the node). So the back-end's NFS port is tried
  with a TCP connect first (`_check_proxy_back_end`), and an export whose back-end does not
  answer is refused before Ganesha sees it.
- Take-over grace: admin `grace("5:<key>")` (EVENT_TAKE_IP) makes Ganesha read the client
  records under <RecoveryRoot>/<key>/<RecoveryDir> and enter grace so those clients can
  reclaim (src/SAL/recovery/recovery_fs.c, src/MainNFSD/nfs_admin_thread.c); the records
  get there through recovery/ganesha_records.py.
- The D-Bus transport (timeouts, bus errors) is ganesha_bus.py; this node's checks (FSAL
  modules, its config file's take-over problems and EXPORT blocks, what the nodes publish for
  each other) are ganesha_node_checks.py, imported at first use.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import ApplyError, IdCollisionError, ServerUnavailableError
from ..fsutil import ensure_secure_dir, write_runtime
from ..model import Export
from ..recovery.ganesha_records import GaneshaRecordStore, takeover_key
from ..recovery.nsm import nsm_store
from ..context import VolumeContext
from . import Drift
from .ganesha_bus import EXPORT_MGR_IFACE, EXPORT_MGR_PATH, BusUnreachable, GaneshaBus, action_deadline, import_dbus
from .ganesha_changes import LiveChanges
from .ganesha_replies import one_line, serves_nobody_reason
from .ganesha_conf import RenderOptions, check_renderable, export_path, render_export
from .grants import LiveExport, diff_export, parse_display, serves_nobody, unchecked, unresolved
from .node_server import NodeServer
from .resolve import Resolver

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

    from ..fsal import Fsal
    from ..recovery import RecoveryStore
    from .ganesha_node_checks import NodeChecks

ADMIN_PATH = "/org/ganesha/nfsd/admin"
ADMIN_IFACE = "org.ganesha.nfsd.admin"
EVENT_TAKE_IP = 5


class GaneshaBackend(LiveChanges, NodeServer):
    """Drives one ganesha.nfsd over D-Bus. Connects lazily: `meta-data` never touches the bus.
    Its live changes (apply, withdraw) are in ganesha_changes.py."""

    name = "ganesha"
    own_server = False   # the node's one server, shared by the volumes here

    def __init__(self, settings: Any, bus_address: str | None = None):
        g = settings.ganesha
        self.settings = g
        self.bus = GaneshaBus(bus_address or g["bus_address"], g.get("dbus_name_prefix") or "",
                              float(g["dbus_timeout"]), action_deadline(g))
        self.bus.hint = "hung? restart nfs-ganesha"   # the node's service: not ours to end; what every command needs (tryout6 B)
        self.runtime_dir = Path(settings.node["runtime_dir"]) / "ganesha"
        self.records = GaneshaRecordStore(Path(g["recovery_root"]), g["recovery_dir"],
                                          server_running=self.is_running)
        self.nsm = nsm_store(settings)
        self.render_opts = RenderOptions(protocols=g["protocols"], transports=g["transports"])
        self.resolve = Resolver(min(2.0, self.bus.timeout / 4))   # renewed by each drift and apply
        self._plugins_setting = (g.get("plugins_dir") or "", g.get("ganesha_config") or "")
        self._node: NodeChecks | None = None      # made at first use (`node`)
        self._actions = 0                         # depth of `action()` blocks
        self._view: dict[int, str] | None = None  # ShowExports within them, kept up to date
        self._seen: dict[int, LiveExport | None] = {}   # DisplayExports within them, until a change
        self._fsals_present: set[Fsal] = set()    # FSAL stacks check_installed_for found loadable within them

    def action(self) -> "_Action":
        """One action of a volume (a transaction, a stop, a monitor): within it, ShowExports is
        asked once (it costs Ganesha ~70 ms at 1000 exports) and the answer kept up to date
        with this backend's own Add/RemoveExports, and an export's DisplayExport is reused until
        this backend changes that export (a read-back after a change is always asked anew); a
        call that fails forgets both."""
        return _Action(self)

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

    def reach(self) -> str | None:
        return self.bus.address or None

    def fall_back(self, recorded: str) -> str | None:
        """Through the bus at `recorded` when the configured one is not there at all (no
        socket, refused): measured, a stop with `bus_address=unix:path=/nonexistent` said
        "stopped, 0 live exports withdrawn" and the node's Ganesha kept serving the volume. A
        configured bus that answers wins (it may be the right one now); one that is slow is
        left to fail the stop as before."""
        found = self.bus.fall_back(recorded, self.settings.get("dbus_name_prefix") or "")
        if found is None:
            return None
        self.bus.close()
        self.bus, unreachable = found
        return (f"{unreachable}; reached NFS-Ganesha at {recorded} instead, the bus address this volume "
                "was started with: set bus_address back to it")

    def require_running(self) -> None:
        if not self.bus.name_owned():
            raise self.bus.not_running()

    def check_export(self, exp: Export, mountpoint: Path) -> None:
        check_renderable(exp, mountpoint)

    @property
    def node(self) -> NodeChecks:
        """This node's Ganesha as placement and a take-over need it (ganesha_node_checks.py),
        made at first use: a monitor that finds every export live never imports it."""
        if self._node is None:
            from .ganesha_node_checks import NodeChecks

            self._node = NodeChecks(*self._plugins_setting)
        return self._node

    def check_installed_for(self, exp: Export) -> None:
        """NotInstalledError when the module of an FSAL of `exp` is not on this node (the
        message names the module, not the export: the caller names that, once)."""
        fsal = exp.ganesha.fsal
        if self._actions and fsal in self._fsals_present:   # within one action: once per FSAL stack, not
            return                                          # once per export (a stat(2) each, ~5 ms at 1000)
        self.node.require(fsal)
        if self._actions:
            self._fsals_present.add(fsal)

    # the node's checks and placement facts: NodeChecks (ganesha_node_checks.py)
    def needs(self, exp: Export) -> frozenset[str]:
        return self.node.needs(exp)

    def other_nodes_have(self) -> dict[str, frozenset[str] | None] | None:
        return self.node.other_nodes_have()

    def may_run(self, nodes: Sequence[str]) -> list[str]:
        return self.node.may_run(nodes)

    def handle_risks(self, exports: Sequence[Export]) -> list[str]:
        return self.node.handle_risks(exports)

    def check_node(self) -> list[str]:
        return self.node.check_node()

    def node_config_warnings(self, mountpoint: str, exports: Sequence[Export]) -> list[str]:
        return self.node.node_config_warnings(mountpoint, exports)

    # ---- live state -----------------------------------------------------------------
    def show_exports(self, fresh: bool = False) -> dict[int, str]:
        """Export_Id → path of every export Ganesha serves now (one D-Bus call; within an
        `action()`, the view taken at its first call unless `fresh`). The path is the pseudo
        path under `mount_path_pseudo = true`: use it for the ids only."""
        if self._view is not None and not fresh:
            return dict(self._view)
        _, exports = self.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "ShowExports")
        shown = {int(e[0]): str(e[1]) for e in exports}
        if self._actions:
            self._view = dict(shown)
        return shown

    def _forget(self) -> None:
        self._view = None
        self._seen = {}

    def _export_call(self, method: str, export_id: int, path: str | None, *args: Any,
                     timeout: float | None = None) -> Any:
        """One Add/Update/RemoveExport that changes `export_id`: after it, `path` is live under
        it (None: nothing is). Keeps the action's view up to date; a call that fails forgets
        the view (what Ganesha did is not known). Raises as GaneshaBus.call."""
        self._seen.pop(export_id, None)
        try:
            reply = self.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, method, *args, timeout=timeout)
        except BaseException:
            self._forget()
            raise
        if self._view is not None:
            if path is None:
                self._view.pop(export_id, None)
            else:
                self._view[export_id] = path
        return reply

    def served_ids(self) -> set[int]:
        return set(self.show_exports())

    def served_paths(self, ids: Iterable[int]) -> dict[int, str]:
        return {i: got.path for i, got in self._live(list(ids)).items()}

    def display(self, export_id: int) -> LiveExport | None:
        """One live export as Ganesha holds it (DisplayExport); None when the id is not live."""
        dbus = import_dbus()
        try:
            reply = self.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "DisplayExport", dbus.UInt16(export_id))
        except dbus.DBusException as exc:
            reply = exc
        return self._parse_display(export_id, reply, dbus)

    @staticmethod
    def _parse_display(export_id: int, reply: Any, dbus: Any) -> LiveExport | None:
        if isinstance(reply, dbus.DBusException):
            if (reply.get_dbus_name() or "").endswith("InvalidArgs"):  # "lookup_export failed"
                return None
            raise ApplyError(f"Ganesha DisplayExport of Export_Id {export_id} failed: "
                             f"{one_line(reply.get_dbus_message() or str(reply))}")
        try:
            return parse_display(reply)
        except (ValueError, TypeError) as exc:
            raise ServerUnavailableError(f"cannot read Ganesha's DisplayExport of Export_Id {export_id}: "
                                         f"{exc}") from None

    def _live(self, ids: Sequence[int] | set[int], shown: dict[int, str] | None = None) -> dict[int, LiveExport]:
        """The given ids that are live, as Ganesha holds them: one ShowExports (unless `shown`
        is given) and one DisplayExport per live id, sent together (GaneshaBus.call_each)."""
        dbus = import_dbus()

        shown = self.show_exports() if shown is None else shown
        wanted = [i for i in dict.fromkeys(ids) if i in shown]
        seen = self._seen if self._actions else {}
        asked = [i for i in wanted if i not in seen]
        replies = self.bus.call_each(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "DisplayExport",
                                     [(dbus.UInt16(i),) for i in asked])
        for export_id, reply in zip(asked, replies):
            seen[export_id] = self._parse_display(export_id, reply, dbus)
        return {i: seen[i] for i in wanted if seen[i] is not None}

    def live_paths(self, ctx: VolumeContext, exports: Sequence[Export]) -> dict[str, bool]:
        held = self._held(ctx, exports)
        return {e.path: held[e.export_id] for e in exports}

    def _held(self, ctx: VolumeContext, exports: Sequence[Export]) -> dict[int, bool]:
        """Export_Id → whether it is live for the export's full path: ShowExports says so when
        it lists that path (it lists the full path, or under mount_path_pseudo the pseudo path,
        include/export_mgr.h `tmp_export_path`); otherwise DisplayExport decides."""
        shown = self.show_exports()
        sure = {e.export_id for e in exports if shown.get(e.export_id) == self._abspath(ctx, e)}
        live = self._live([e.export_id for e in exports if e.export_id not in sure], shown)
        return {e.export_id: e.export_id in sure or (e.export_id in live and live[e.export_id].path ==
                                                     self._abspath(ctx, e)) for e in exports}

    def drift(self, ctx: VolumeContext, exports: Sequence[Export]) -> Drift:
        """One ShowExports and one DisplayExport per live export of the volume: missing,
        served for another path (foreign), not as the registry says (changed, with the reasons),
        strays, and warnings (client names that do not resolve here)."""
        self._new_call()
        shown = self.show_exports()
        live = self._live([e.export_id for e in exports], shown)
        drift = Drift(stray=self._stray(ctx, exports, shown))
        for exp in exports:
            got = live.get(exp.export_id)
            path = self._abspath(ctx, exp)
            if got is None:
                drift.missing.append(exp)
            elif got.path != path:
                drift.foreign.append(f"Export_Id {exp.export_id} is live for {got.path}, not {path}")
                drift.elsewhere.append(exp)
            elif serves_nobody(exp, self.resolve):
                drift.changed.append(exp)
                drift.reasons.append(serves_nobody_reason(exp))
            else:
                diffs = diff_export(exp, path, got, self.resolve)
                if diffs:
                    drift.changed.append(exp)
                    drift.reasons.append(f"Export_Id {exp.export_id} ({exp.pseudo}): {'; '.join(diffs)}")
                drift.warnings += self._unresolved_warnings(exp)
        return drift

    def _stray(self, ctx: VolumeContext, exports: Sequence[Export], shown: dict[int, str]) -> list[int]:
        """Export_Ids live for a path inside the volume that the registry does not list (not
        inside another file system mounted within it: a nested volume is not ours).

        Candidates are the ids whose ShowExports path lies in the volume (the full path, or a
        pseudo path there) and the ids of the volume's range; DisplayExport's full path decides.
        """
        ours = {exp.export_id for exp in exports}
        root = str(ctx.mountpoint).rstrip("/") or "/"
        lo, hi = ctx.id_range or (1, 0)
        candidates = [i for i, p in shown.items()
                      if i not in ours and (_inside(p, root) or lo <= i <= hi)]
        if not candidates:
            return []
        paths = {i: live.path for i, live in self._live(candidates, shown).items() if _inside(live.path, root)}
        if not paths:
            return []
        from ..fsutil import mounts_below

        nested = mounts_below(ctx.mountpoint)
        return sorted(i for i, p in paths.items() if not any(_inside(p, m) for m in nested))

    def withdraw_stray(self, ctx: VolumeContext, exports: Sequence[Export]) -> int:
        dbus = import_dbus()

        stray = self._stray(ctx, exports, self.show_exports())
        for export_id in stray:
            try:
                self._export_call("RemoveExport", export_id, None, dbus.UInt16(export_id))
            except dbus.DBusException as exc:
                raise ApplyError(f"RemoveExport of stray Export_Id {export_id} failed: "
                                 f"{exc.get_dbus_message() or exc}") from None
        return len(stray)

    def check_collisions(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        live = self._live([e.export_id for e in exports])
        for exp in exports:
            got = live.get(exp.export_id)
            if got is not None and got.path != self._abspath(ctx, exp):
                # named by its Export_Id: where it is left out, the caller names its directory first
                raise IdCollisionError(f"Export_Id {exp.export_id} is already served by this node's Ganesha "
                                       f"for {got.path}; give the volumes disjoint id ranges "
                                       "(ganesha-ha volume set-range)")

    def _unresolved_warnings(self, exp: Export) -> list[str]:
        where = f"Export_Id {exp.export_id} ({exp.pseudo})"
        return ([f"{where}: client {host} does not resolve on this node; Ganesha grants it nothing here"
                 for host in unresolved(exp, self.resolve)]
                + [f"{where}: client {host} was not resolved within {self.resolve.budget:g} s; its "
                   "entries were not checked" for host in unchecked(exp, self.resolve)])

    def _new_call(self) -> None:
        """A fresh resolver (cache and time budget) for one drift or apply: a host name is
        looked up again by the next call, as Ganesha looks it up again at the next AddExport."""
        self.resolve = Resolver(min(2.0, self.bus.timeout / 4))

    # ---- changes --------------------------------------------------------------------
    @staticmethod
    def _abspath(ctx: VolumeContext, exp: Export) -> str:
        return export_path(exp, ctx.mountpoint)

    def _conf_path(self, ctx: VolumeContext, exp: Export) -> Path:
        return self.runtime_dir / ctx.volume_uuid / f"export-{exp.export_id}.conf"

    def _volume_dir(self, ctx: VolumeContext) -> Path:
        """The volume's directory of AddExport files: 0700 in the node's runtime directory."""
        directory = self.runtime_dir / ctx.volume_uuid
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        ensure_secure_dir(directory, 0o700)
        return directory

    def _write_block(self, ctx: VolumeContext, exp: Export) -> Path:
        """The file handed to Add/UpdateExport: the module blocks the export's FSALs need, then
        its EXPORT block (ganesha_conf.py), 0600 in a 0700 directory."""
        self._volume_dir(ctx)
        check_renderable(exp, ctx.mountpoint)
        conf = self._conf_path(ctx, exp)
        write_runtime(conf, render_export(exp, ctx.mountpoint, self.render_opts).encode(), 0o600)
        return conf

    # ---- client recovery and grace ----------------------------------------------------
    def recovery_stores(self, ctx: VolumeContext) -> list[RecoveryStore]:
        """Ganesha's NFSv4 client records (its fs recovery backend's tree) and the statd
        records of its NLM clients move with the volume."""
        return [self.records, self.nsm]

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



def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")

class _Action:
    """GaneshaBackend.action(): the view of ShowExports lives as long as the outermost block."""

    def __init__(self, backend: GaneshaBackend):
        self.backend = backend

    def __enter__(self) -> None:
        self.backend._actions += 1

    def __exit__(self, *exc: object) -> None:
        self.backend._actions -= 1
        if not self.backend._actions:
            self.backend._forget()
            self.backend._fsals_present = set()
