"""The NFS-Ganesha backend: live export changes over D-Bus, recovery records, grace.

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
- Take-over grace: admin `grace("5:<key>")` (EVENT_TAKE_IP) makes Ganesha read the client
  records under <RecoveryRoot>/<key>/<RecoveryDir> and enter grace so those clients can
  reclaim (src/SAL/recovery/recovery_fs.c, src/MainNFSD/nfs_admin_thread.c).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any, Sequence

from ..errors import ApplyError, IdCollisionError, RegistryError
from ..fsutil import atomic_write, ensure_secure_dir, read_secure
from ..model import Export
from . import Drift, VolumeContext
from .ganesha_bus import BusUnreachable, GaneshaBus, import_dbus
from .ganesha_conf import RenderOptions, check_renderable, render_export

EXPORT_MGR_PATH = "/org/ganesha/nfsd/ExportMgr"
EXPORT_MGR_IFACE = "org.ganesha.nfsd.exportmgr"
ADMIN_PATH = "/org/ganesha/nfsd/admin"
ADMIN_IFACE = "org.ganesha.nfsd.admin"
EVENT_TAKE_IP = 5
RECOVERY_FILE = "ganesha-recovery.json"


class GaneshaBackend:
    """Drives one ganesha.nfsd over D-Bus. Connects lazily: `meta-data` never touches the bus."""

    name = "ganesha"

    def __init__(self, settings: Any, bus_address: str | None = None):
        g = settings.ganesha
        self.bus = GaneshaBus(bus_address or g["bus_address"], g.get("dbus_name_prefix") or "",
                              float(g["dbus_timeout"]))
        self.runtime_dir = Path(settings.node["runtime_dir"]) / "ganesha"
        self.recovery_root = Path(g["recovery_root"])
        self.recovery_dir = g["recovery_dir"]
        self.render_opts = RenderOptions(protocols=g["protocols"], transports=g["transports"])

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

    # ---- live state -----------------------------------------------------------------
    def show_exports(self) -> dict[int, str]:
        """Export_Id → path of every export Ganesha serves now (one D-Bus call)."""
        _, exports = self.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "ShowExports")
        return {int(e[0]): str(e[1]) for e in exports}

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
        return str(ctx.mountpoint / exp.path) if exp.path else str(ctx.mountpoint)

    def _write_block(self, ctx: VolumeContext, exp: Export) -> Path:
        directory = self.runtime_dir / ctx.volume_uuid
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        ensure_secure_dir(directory, 0o700)
        check_renderable(exp, ctx.mountpoint)
        conf = directory / f"export-{exp.export_id}.conf"
        atomic_write(conf, render_export(exp, ctx.mountpoint, self.render_opts).encode(), 0o600)
        return conf

    def apply(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        """Add each export, or update it in place when its id is already live for its path."""
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
            try:
                message = str(self.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, method, str(conf),
                                         f"EXPORT(Export_Id={exp.export_id})"))
            except dbus.DBusException as exc:
                raise ApplyError(_explain(method, exp, exc)) from None
            if message.startswith("0 exports"):
                raise ApplyError(f"Ganesha {method} of {path} (Export_Id {exp.export_id}) did nothing: {message}")
            live[exp.export_id] = path

    def withdraw(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        dbus = import_dbus()

        live = self.show_exports()
        for exp in exports:
            if live.get(exp.export_id) != self._abspath(ctx, exp):
                continue  # not ours or not live: nothing to withdraw
            try:
                self.bus.call(EXPORT_MGR_PATH, EXPORT_MGR_IFACE, "RemoveExport", dbus.UInt16(exp.export_id))
            except dbus.DBusException as exc:
                raise ApplyError(_explain("RemoveExport", exp, exc)) from None
            try:
                (self.runtime_dir / ctx.volume_uuid / f"export-{exp.export_id}.conf").unlink()
            except FileNotFoundError:
                pass

    # ---- client-recovery state ------------------------------------------------------
    def takeover_key(self, ctx: VolumeContext) -> str:
        """Directory name under RecoveryRoot for this volume's take-over records."""
        return ctx.ip or f"vol-{ctx.volume_uuid}"

    def node_recovery_dirs(self) -> list[Path]:
        """Where this node's Ganesha records its own NFSv4 clients.

        Ganesha 4.3 runs "clustered" by default and records clients under
        <RecoveryRoot>/<RecoveryDir>/node<N>/; unclustered, directly in <RecoveryDir>. A
        take-over reads <RecoveryRoot>/<key>/<RecoveryDir>/ with no node level, so the
        records are saved relative to the node directory.
        """
        base = self.recovery_root / self.recovery_dir
        nodes = sorted(p for p in base.glob("node*") if p.name[4:].isdigit() and p.is_dir())
        return nodes or [base]

    def takeover_dir(self, ctx: VolumeContext) -> Path:
        return self.recovery_root / self.takeover_key(ctx) / self.recovery_dir

    def save_recovery(self, ctx: VolumeContext) -> bool:
        """Copy the node's NFSv4 client records onto the volume; write only when changed.

        Ganesha's fs recovery backend keeps one record tree per server, not per export, so
        a node serving several volumes gives each volume all of its records: a client with
        no state on the volume has nothing to reclaim, so the extra records are harmless.
        """
        merged: dict[str, dict[str, str]] = {}
        for directory in self.node_recovery_dirs():
            for rec in snapshot_tree(directory):
                merged.setdefault(rec["path"], rec)
        records = [merged[k] for k in sorted(merged)]
        path = ctx.state_dir / RECOVERY_FILE
        data = (json.dumps({"records": records}, indent=1, sort_keys=True) + "\n").encode()
        if read_secure(path) == data:
            return False
        atomic_write(path, data)
        return True

    def load_saved_records(self, ctx: VolumeContext) -> list[dict[str, str]]:
        raw = read_secure(ctx.state_dir / RECOVERY_FILE)
        if raw is None:
            return []
        try:
            return list(json.loads(raw)["records"])
        except (ValueError, KeyError, TypeError):
            raise RegistryError(f"{ctx.state_dir / RECOVERY_FILE} is corrupt") from None

    def restore_recovery(self, ctx: VolumeContext) -> int:
        """Put the volume's records where Ganesha's take-over reads them; return their count."""
        records = self.load_saved_records(ctx)
        target = self.takeover_dir(ctx)
        if target.exists():
            shutil.rmtree(target)
        old = os.umask(0o022)  # the parents mkdir creates and every record file: never writable by others
        try:
            target.mkdir(parents=True, mode=0o755)
            restore_tree(target, records)
        finally:
            os.umask(old)
        return sum(1 for r in records if r["type"] == "dir" and "/" not in r["path"])

    def start_grace(self, ctx: VolumeContext) -> str:
        """Ask Ganesha to enter grace and accept reclaims from the volume's clients."""
        key = self.takeover_key(ctx)
        reply = self.bus.call(ADMIN_PATH, ADMIN_IFACE, "grace", f"{EVENT_TAKE_IP}:{key}")
        ok, msg = bool(reply[0]), str(reply[1])
        if not ok:
            raise ApplyError(f"Ganesha refused to start grace for {key}: {msg}")
        return msg

    def in_grace(self) -> bool:
        """Ganesha 4.3 answers get_grace with (in_grace, success, message)."""
        reply = self.bus.call(ADMIN_PATH, ADMIN_IFACE, "get_grace")
        return bool(reply[0]) if isinstance(reply, (tuple, list)) else bool(reply)

    def clear_recovery(self, ctx: VolumeContext) -> None:
        shutil.rmtree(self.recovery_root / self.takeover_key(ctx), ignore_errors=True)


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


def snapshot_tree(root: Path) -> list[dict[str, str]]:
    """A recovery tree as a sorted list of {path, type[, data]} (files are small, base64)."""
    out: list[dict[str, str]] = []
    if not root.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for d in dirnames:
            out.append({"path": os.path.normpath(os.path.join(rel_dir, d)), "type": "dir"})
        for f in sorted(filenames):
            full = os.path.join(dirpath, f)
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode):
                continue
            with open(full, "rb") as fh:
                data = base64.b64encode(fh.read(65536)).decode()
            out.append({"path": os.path.normpath(os.path.join(rel_dir, f)), "type": "file", "data": data})
    return sorted(out, key=lambda r: r["path"])


def restore_tree(root: Path, records: list[dict[str, str]]) -> None:
    for rec in sorted(records, key=lambda r: r["path"]):
        rel = rec["path"]
        if rel.startswith("/") or ".." in rel.split("/"):
            raise RegistryError(f"recovery record {rel!r} escapes its directory")
        target = root / rel
        if rec["type"] == "dir":
            target.mkdir(parents=True, exist_ok=True, mode=0o755)
        else:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            target.write_bytes(base64.b64decode(rec.get("data", "")))
