"""The one place that combines registry and backend: every operation on a volume.

Each change is a transaction: lock the volume, load the registry, validate, write the new
registry atomically, then apply the change to the live server when the volume is active on
this node. If the live step fails, the old registry is written back and the server is put
back as it was, so registry and server never disagree silently.

"Active on this node" is a node-local marker written by `start` (the agent's start, or
`ganesha-ha volume start`) and removed by `stop`, under the node's runtime directory (a
tmpfs, so a reboot clears it). A change to a volume that is not active here is recorded
only, and applied by the next start.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .backends import Backend, Drift, VolumeContext, get_backend
from .errors import ApplyError, GaneshaHAError, ServerUnavailableError, ValidationError
from .fsutil import atomic_write, ensure_secure_dir, require_mountpoint
from .model import Export, parse_clients
from .record import Factory, Record
from .registry import Registry, RegistryState
from .settings import Settings

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any


class ChangeResult(Record):
    export: Export
    live: bool          # the change reached the live server
    note: str = ""      # e.g. "recorded; applied at the next start"


class StartResult(Record):
    applied: int
    recovery_records: int
    grace: str | None = None
    notes: list[str] = Factory(list)


class MonitorResult(Record):
    running: bool
    drift: Drift
    repaired: int = 0
    recovery_saved: bool = False
    recovery_error: str = ""  # the save failed (the volume is full...): a warning, not a failure


class Volume:
    """One shared volume, identified by its mount point."""

    def __init__(self, mountpoint: str | Path, settings: Settings, *, ip: str | None = None,
                 backend: Backend | None = None):
        self.mountpoint = Path(os.path.normpath(str(mountpoint)))
        self.settings = settings
        self.ip = ip
        self.registry = Registry(self.mountpoint, lock_timeout=settings.registry["lock_timeout"])
        self._backend = backend

    # ---- helpers ----------------------------------------------------------------------
    def backend(self, state: RegistryState) -> Backend:
        if self._backend is None or self._backend.name != state.server:
            self._backend = get_backend(state.server, self.settings)
        return self._backend

    def ctx(self, state: RegistryState) -> VolumeContext:
        return VolumeContext(mountpoint=self.mountpoint, state_dir=self.registry.state_dir,
                             volume_uuid=state.volume_uuid, ip=self.ip)

    def marker(self) -> Path:
        """Node-local file saying "this volume is active here", keyed by mount point so that a
        probe can answer without touching a volume that may not even be mounted."""
        name = str(self.mountpoint).strip("/").replace("_", "__").replace("/", "_") or "_root"
        if len(os.fsencode(name)) > 200:  # a file name has at most 255 bytes; mount points may be longer
            import hashlib

            digest = hashlib.sha256(os.fsencode(str(self.mountpoint))).hexdigest()[:32]
            name = os.fsdecode(os.fsencode(name)[:100]) + "." + digest
        return Path(self.settings.node["runtime_dir"]) / "active" / f"{name}.json"

    def is_active(self, state: RegistryState | None = None) -> bool:
        return self.marker().exists()

    def active_record(self) -> dict[str, Any] | None:
        """What the last start applied here (lets stop withdraw even if the volume is gone)."""
        try:
            return json.loads(self.marker().read_text())
        except (OSError, ValueError):
            return None

    def _set_active(self, state: RegistryState, active: bool) -> None:
        marker = self.marker()
        if active:
            marker.parent.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            ensure_secure_dir(marker.parent)
            atomic_write(marker, json.dumps({
                "mountpoint": str(self.mountpoint), "server": state.server, "ip": self.ip,
                "volume_uuid": state.volume_uuid, "exports": [e.to_dict() for e in state.exports],
            }).encode())
        else:
            try:
                marker.unlink()
            except FileNotFoundError:
                pass

    def load(self) -> RegistryState:
        return self.registry.load()

    def key(self, text: str) -> str | int:
        """DIRECTORY|EXPORT_ID from the command line → registry lookup key."""
        text = str(text)
        if text.isdigit():
            return int(text)
        return self.registry.relpath(text)

    # ---- volume lifecycle ---------------------------------------------------------------
    def init(self, server: str, id_range: tuple[int, int] | None = None) -> RegistryState:
        avoid: Iterable[int] = ()
        if id_range is None:
            try:  # avoid the ids this node's server already serves, when it is up
                avoid = get_backend(server, self.settings).served_ids()
            except GaneshaHAError:
                avoid = ()
        return self.registry.init(server, id_range, self.settings.registry["id_block"], avoid)

    # ---- export changes -------------------------------------------------------------------
    def add(self, directory: str, clients: Sequence[str], *, pseudo: str | None = None,
            export_id: int | None = None, fsid: str | None = None, access: str = "RW",
            squash: str = "root_squash", fsal: str = "VFS", record_only: bool = False) -> ChangeResult:
        rel = self.registry.relpath(directory)
        with self.registry.locked():
            state = self.load()
            if state.get(rel) is not None:
                from .errors import ConflictError
                raise ConflictError(f"{self.registry.abspath(rel)} is already exported (Export_Id "
                                    f"{state.find(rel).export_id}); use 'export update'")
            _require_directory(self.registry.abspath(rel), self.mountpoint)
            backend, live = self._live_backend(state, record_only)
            taken: set[int] = set()
            if live and export_id is None:
                taken = backend.served_ids()
            exp = Export(
                path=rel,
                export_id=export_id if export_id is not None else state.allocate_export_id(taken),
                fsid=fsid if fsid is not None else state.allocate_fsid(),
                pseudo=pseudo if pseudo is not None else str(self.registry.abspath(rel)),
                clients=parse_clients(clients), access=access, squash=squash, fsal=fsal,
            )
            self._check_server_limits(state, exp)
            new_state = state.with_export(exp)
            ctx = self.ctx(state)
            if live:
                backend.check_collisions(ctx, [exp])
            self.registry.save(new_state)
            if not live:
                return ChangeResult(exp, False, self._not_live_note(state, record_only))
            try:
                backend.apply(ctx, [exp])
            except GaneshaHAError as exc:
                self.registry.save(state)
                _best_effort(lambda: backend.withdraw(ctx, [exp]))
                raise _rolled_back(exc, "nothing was changed (registry rolled back)") from None
            _best_effort(lambda: save_recovery(backend, ctx))
            self._set_active(new_state, True)
            return ChangeResult(exp, True)

    def update(self, key: str, *, clients: Sequence[str] | None = None, pseudo: str | None = None,
               export_id: int | None = None, fsid: str | None = None, access: str | None = None,
               squash: str | None = None, fsal: str | None = None, record_only: bool = False) -> ChangeResult:
        with self.registry.locked():
            state = self.load()
            old = state.find(self.key(key))
            changes: dict[str, Any] = {}
            if clients is not None:
                changes["clients"] = parse_clients(clients)
            for name, value in (("pseudo", pseudo), ("export_id", export_id), ("fsid", fsid),
                                ("access", access), ("squash", squash), ("fsal", fsal)):
                if value is not None:
                    changes[name] = value
            new = old.with_changes(**changes)
            self._check_server_limits(state, new)
            new_state = state.with_export(new)
            backend, live = self._live_backend(state, record_only)
            ctx = self.ctx(state)
            if live and new.export_id != old.export_id:
                backend.check_collisions(ctx, [new])
            self.registry.save(new_state)
            if not live:
                return ChangeResult(new, False, self._not_live_note(state, record_only))
            try:
                if new.export_id != old.export_id or new.pseudo != old.pseudo or new.fsal != old.fsal:
                    backend.withdraw(ctx, [old])
                backend.apply(ctx, [new])
            except GaneshaHAError as exc:
                self.registry.save(state)
                _best_effort(lambda: backend.withdraw(ctx, [new]) if new.export_id != old.export_id else None)
                _best_effort(lambda: backend.apply(ctx, [old]))
                raise _rolled_back(exc, "the export was left as it was (registry rolled back)") from None
            self._set_active(new_state, True)
            return ChangeResult(new, True)

    def remove(self, key: str, *, record_only: bool = False) -> ChangeResult:
        with self.registry.locked():
            state = self.load()
            exp = state.find(self.key(key))
            backend, live = self._live_backend(state, record_only)
            ctx = self.ctx(state)
            self.registry.save(state.without(exp))
            if not live:
                return ChangeResult(exp, False, self._not_live_note(state, record_only))
            try:
                backend.withdraw(ctx, [exp])
            except GaneshaHAError as exc:
                self.registry.save(state)
                _best_effort(lambda: backend.apply(ctx, [exp]))
                raise _rolled_back(exc, "the export is still in the registry (rolled back)") from None
            self._set_active(state.without(exp), True)
            return ChangeResult(exp, True)

    def _check_server_limits(self, state: RegistryState, exp: Export) -> None:
        """What the volume's server cannot represent is refused before it is recorded."""
        self.backend(state).check_export(exp, self.mountpoint)

    def _live_backend(self, state: RegistryState, record_only: bool) -> tuple[Backend, bool]:
        """The backend, and whether this change must reach the live server now.

        Active here → the server must be reachable: failing loudly beats a registry that
        silently says something the server does not do.
        """
        backend = self.backend(state)
        if record_only or not self.is_active(state):
            return backend, False
        backend.require_running()
        return backend, True

    def _not_live_note(self, state: RegistryState, record_only: bool) -> str:
        if record_only:
            return "recorded only (--record-only); applied at the next start or monitor"
        return "recorded; the volume is not active on this node, applied at its next start"

    # ---- queries ----------------------------------------------------------------------------
    def exports_with_status(self) -> tuple[RegistryState, list[tuple[Export, bool | None]]]:
        """Each export with live=True/False, or None when the server cannot be asked."""
        state = self.load()
        backend = self.backend(state)
        try:
            backend.require_running()
            live = backend.live_paths(self.ctx(state), state.exports)
            return state, [(e, live.get(e.path, False)) for e in state.exports]
        except GaneshaHAError:
            return state, [(e, None) for e in state.exports]

    # ---- agent actions ----------------------------------------------------------------------
    def start(self) -> StartResult:
        """Make every export of the volume live on this node and let its clients reclaim."""
        require_mountpoint(self.mountpoint)
        with self.registry.locked():
            state = self.load()
            backend = self.backend(state)
            backend.check_installed()
            backend.require_running()
            ctx = self.ctx(state)
            backend.check_collisions(ctx, state.exports)
            records = restore_recovery(backend, ctx)
            backend.apply(ctx, [e for e in state.exports])
            result = StartResult(applied=len(state.exports), recovery_records=records)
            result.grace = backend.after_restore(ctx, records)
            self._set_active(state, True)
            return result

    def stop(self) -> int:
        """Withdraw the volume's exports from this node (returns how many were live); keep
        their identity on the volume.

        Must succeed whenever possible (a failed stop gets the node fenced): with the volume
        already unmounted, the exports to withdraw come from the node-local active record.
        """
        record = self.active_record()
        try:
            state = self.registry.load()
        except GaneshaHAError:
            if record is None:
                return 0  # never started here and nothing readable: already stopped
            state = RegistryState(volume_uuid=record["volume_uuid"], server=record["server"],
                                  id_range=(1, 65535),
                                  exports=tuple(Export.from_dict(e) for e in record["exports"]))
            mounted = False
        else:
            mounted = True
        backend = self.backend(state)
        ctx = self.ctx(state)
        withdrawn = 0
        if backend.is_running():
            if mounted:
                _best_effort(lambda: save_recovery(backend, ctx))
            live = backend.live_paths(ctx, state.exports)
            backend.withdraw(ctx, state.exports)
            withdrawn = sum(1 for is_live in live.values() if is_live)
            withdrawn += backend.withdraw_stray(ctx, state.exports)
        else:
            require_nothing_live(backend, ctx, state.exports)
        clear_recovery(backend, ctx)
        self._set_active(state, False)
        return withdrawn

    def monitor(self, repair: bool = True) -> MonitorResult:
        """One cheap pass over the whole volume: compare, repair drift, save recovery state."""
        if not self.is_active():
            return MonitorResult(running=False, drift=Drift())
        state = self.load()
        backend = self.backend(state)
        backend.require_running()
        ctx = self.ctx(state)
        drift = backend.drift(ctx, state.exports)
        result = MonitorResult(running=True, drift=drift)
        if drift.foreign:
            from .errors import IdCollisionError
            raise IdCollisionError("; ".join(drift.foreign))
        if repair and (drift.missing or drift.changed or drift.stray):
            with self.registry.locked():
                if drift.missing or drift.changed:
                    backend.apply(ctx, drift.missing + drift.changed)
                if drift.stray:  # against the registry as it is now, under the lock: an
                    # export added since the drift was taken is not a stray
                    backend.withdraw_stray(ctx, self.load().exports)
            result.repaired = len(drift.missing) + len(drift.changed) + len(drift.stray)
        from .errors import InsecureStateError, RegistryError

        try:
            result.recovery_saved = save_recovery(backend, ctx)
        except InsecureStateError:
            raise
        except RegistryError as exc:  # users fill their volumes: the exports still serve
            result.recovery_error = str(exc)
        return result


def _require_directory(path: Path, mountpoint: Path) -> None:
    """The exported directory must exist and resolve inside the volume (no symlink escape)."""
    if not path.is_dir():
        raise ValidationError("directory", f"{path} does not exist or is not a directory")
    real = Path(os.path.realpath(path))
    real_mp = Path(os.path.realpath(mountpoint))
    if real != real_mp and real_mp not in real.parents:
        raise ValidationError("directory", f"{path} resolves to {real}, outside the volume {mountpoint}")
    if real.relative_to(real_mp) != path.relative_to(mountpoint):
        raise ValidationError("directory", f"{path} goes through a symbolic link (it is {real}); "
                                           "export the real directory")


def save_recovery(backend: Backend, ctx: VolumeContext) -> bool:
    """Save every recovery store of the backend (one failing store does not stop the others);
    True if any copy changed. Raises the first store's error after trying them all."""
    changed, errors = False, []
    for store in backend.recovery_stores(ctx):
        try:
            changed = store.save(ctx) or changed
        except GaneshaHAError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    return changed


def restore_recovery(backend: Backend, ctx: VolumeContext) -> int:
    """Restore every recovery store; the number of client records they hold together."""
    return sum(store.restore(ctx) for store in backend.recovery_stores(ctx))


def clear_recovery(backend: Backend, ctx: VolumeContext) -> None:
    for store in backend.recovery_stores(ctx):
        store.clear(ctx)


def require_nothing_live(backend: Backend, ctx: VolumeContext, exports: Sequence[Export]) -> None:
    """For a stop when the server cannot be driven: fine if none of `exports` is live, an
    error if some still are (knfsd's etab can be read without a working exportfs), because a
    stop that said "stopped" would let the volume move while this node still serves it."""
    try:
        live = backend.live_paths(ctx, exports)
    except GaneshaHAError:
        return  # the server cannot even be asked: it is down, and its exports with it
    still = sorted(path or "/" for path, is_live in live.items() if is_live)
    if not still:
        return
    try:
        backend.require_running()
        reason = "the server stopped answering"
    except GaneshaHAError as exc:
        reason = str(exc)
    raise ServerUnavailableError(f"{len(still)} export(s) still live on this node ({', '.join(still[:3])}) "
                                 f"and they cannot be withdrawn: {reason}")


def _rolled_back(exc: GaneshaHAError, note: str) -> GaneshaHAError:
    """The error for a live change that failed after the registry was written (and rolled back).

    A refusal is an ApplyError (exit 7). A server that did not answer in time keeps its own
    class (exit 6, OCF generic): nothing was refused, and the server may still carry the
    change out when it answers, so the note cannot promise that nothing changed there.
    """
    if isinstance(exc, ServerUnavailableError):
        return ServerUnavailableError(f"{exc}; registry rolled back, but the server may still apply "
                                      "the change when it answers")
    return ApplyError(f"{exc}; {note}")


def _best_effort(action) -> None:
    """Used only while undoing a failed change: the original error is what gets reported."""
    try:
        action()
    except Exception:  # the rollback must never replace the real error with a traceback
        pass
