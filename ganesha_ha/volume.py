"""The one place that combines registry and backend: every operation on a volume.

Every change is a transaction (`Volume.transaction`, as pcs wraps its CIB push): lock the
volume, load the registry, let the caller change a draft of it, validate, write the new
registry atomically, then carry the change out on the live server when the volume is active
on this node (steps from plan.py). If the live step fails, the old registry is written back
and the server is put back as it was, so registry and server never disagree silently.
`export add/update/remove`, `volume start`, the monitor's repairs and the agent's classic
mode all go through it.

"Active on this node" and "restored on this node" are node-local marks (nodestate.py). A
change to a volume that is not active here is recorded only, and applied by the next start.
Client-recovery state is saved to the volume only by a node that has restored it.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .backends import Backend, Drift
from .backends.load import get_backend
from .context import VolumeContext
from .errors import ApplyError, GaneshaHAError, ServerUnavailableError, ValidationError
from .export_edits import ExportEdits
from .fsutil import require_mountpoint
from .model import Export
from .nodestate import NodeState
from .record import Factory, Record, replace
from .registry import SCHEMA_VERSION, Registry, RegistryState, export_from_dict
from .servers import INSTANCE, SHARED
from .settings import Settings

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from .execute import ExportFailure
    from .transaction import Transaction

# execute.py and transaction.py are imported by the methods that change something: a monitor
# that finds the exports as registered (volume mode, and the classic mode's) runs neither


class StartResult(Record):
    applied: int                # exports live now
    recovery_records: int
    grace: str | None = None
    notes: list[str] = Factory(list)
    failed: list[ExportFailure] = Factory(list)   # exports that could not go live (the rest are)
    warnings: list[str] = Factory(list)   # e.g. handles that would go stale on another node


class MonitorResult(Record):
    running: bool
    drift: Drift
    repaired: int = 0
    recovery_saved: bool = False
    recovery_error: str = ""  # the save failed (the volume is full...): a warning, not a failure
    exports: int = 0          # exports in the registry
    failed: list[ExportFailure] = Factory(list)   # still not live as registered after the repair

    @property
    def served(self) -> int:
        """Exports live as registered after this pass."""
        return self.exports - len({f.export.path for f in self.failed})


class ExportStatus(Record):
    export: Export
    live: bool | None             # served now; None: the server cannot be asked
    as_registered: bool | None    # served exactly as the registry says; None when not live


class VolumeStatus(Record):
    state: RegistryState
    exports: list[ExportStatus]
    reasons: list[str] = Factory(list)    # how the exports not as registered differ (field, live, registry)
    not_live: list[str] = Factory(list)   # which exports are left out and why (identity served for another
                                          # path; or, on a volume active here, not served now)
    stray: list[int] = Factory(list)      # Export_Ids served from inside the volume that the registry lacks
    warnings: list[str] = Factory(list)   # e.g. a client name that does not resolve here
    unavailable: str = ""                 # why the server could not be asked (live state unknown)


class Volume(ExportEdits):
    """One shared volume, identified by its mount point.

    `backend` replaces the server the registry names (tests: a fake); `require_mounted`
    replaces the check that the mount point is a mounted file system (fsutil's, by default);
    `server`: the server the caller was configured for (the agent's server=): a registry
    initialised for another is a ValidationError at every load, so nothing is ever served by
    a server the resource does not name.
    """

    def __init__(self, mountpoint: str | Path, settings: Settings, *, ip: str | None = None,
                 backend: Backend | None = None,
                 require_mounted: Callable[[Path], None] = require_mountpoint,
                 server: str | None = None):
        self.mountpoint = Path(os.path.normpath(str(mountpoint)))
        self.settings = settings
        self.ip = ip
        self.server = server
        self.registry = Registry(self.mountpoint, lock_timeout=settings.registry["lock_timeout"],
                                 require_mounted=require_mounted)
        self.node = NodeState(Path(settings.node["runtime_dir"]), self.mountpoint)
        self._backend = backend

    # ---- helpers ----------------------------------------------------------------------
    def backend(self, state: RegistryState) -> Backend:
        """The backend of the server that serves the volume: the node's (shared), or, for a
        volume in instance mode, the one of its own server, bound to the volume."""
        own = state.ganesha_mode == INSTANCE
        if self._backend is None or self._backend.name != state.server or self._backend.own_server != own:
            self._backend = get_backend(state.server, self.settings, self.ctx(state))
        return self._backend

    def ctx(self, state: RegistryState) -> VolumeContext:
        return VolumeContext(mountpoint=self.mountpoint, state_dir=self.registry.state_dir,
                             volume_uuid=state.volume_uuid, ip=self.ip, id_range=state.id_range,
                             ganesha_mode=state.ganesha_mode, instance=state.instance_settings())

    def is_active(self) -> bool:
        return self.node.is_active()

    def set_active(self, state: RegistryState) -> None:
        # redacted: an FSAL secret is kept in the volume's registry only (a stop needs none)
        self.node.set_active({"mountpoint": str(self.mountpoint), "server": state.server, "ip": self.ip,
                              "reach": self.backend(state).reach(),
                              "volume_uuid": state.volume_uuid, "version": SCHEMA_VERSION,
                              "id_range": list(state.id_range), "ganesha_mode": state.ganesha_mode,
                              "exports": [e.to_dict(redact=True) for e in state.exports]})

    def load(self) -> RegistryState:
        state = self.registry.load()
        self.check_server(state)
        return state

    def check_server(self, state: RegistryState) -> None:
        """ValidationError (field "server") when the volume is not for the expected server."""
        if self.server is not None and state.server != self.server:
            raise ValidationError("server", f"the resource says server={self.server} but the volume "
                                            f"{self.mountpoint} was initialised for {state.server}")

    # ---- the transaction ----------------------------------------------------------------
    @contextmanager
    def transaction(self, *, live: bool | None = None, note: str = "nothing was changed",
                    launch: bool = False) -> Iterator[Transaction]:
        """Lock, load, yield the draft; on a normal exit of the body: validate, save, apply.

        `live`: None carries the change out on the server when the volume is active here
        (the server must then answer: ServerUnavailableError before anything is written);
        True always (a start); False never (--record-only). `note` ends the message of a
        change that failed live and was rolled back ("...; registry rolled back").
        `launch` (a start): a server of the volume's own is started first, serving the
        registry's exports (`tx.launched` then holds its notes), under the lock.

        Validation: the draft's own (unique directories, pseudo paths, ids, fsids), the
        server's limits for every export about to be applied, and, live, collisions with what
        the server serves for others. A failed live step restores the old registry, undoes
        the steps (best effort) and raises ApplyError (exit 7), or ServerUnavailableError
        (exit 6) when the server did not answer: it may still carry the change out. With
        `tx.isolate` each export is applied on its own instead and one that fails is listed in
        `tx.failed` (a start, a repair; a change that only adds exports, whose refused new
        exports are left out of the registry again: transaction.left_out).
        """
        from .transaction import Transaction, commit

        with self.registry.locked():
            base = self.load()
            backend = self.backend(base)
            if live is None:
                live = self.is_active()
            ctx = self.ctx(base)
            launched = backend.launch(ctx, base.exports) if live and launch and backend.own_server else None
            if live:
                backend.require_running()
            tx = Transaction(base, backend, ctx, live)
            tx.launched = launched
            with backend.action():
                yield tx
                commit(self, tx, note)

    # ---- volume lifecycle ---------------------------------------------------------------
    def init(self, server: str, id_range: tuple[int, int] | None = None,
             ganesha_mode: str = SHARED, instance: dict[str, int] | None = None) -> RegistryState:
        """Create the volume's registry (volume_setup.init: the range rules, errors)."""
        from .volume_setup import init

        return init(self, server, id_range, ganesha_mode, instance)

    def set_range(self, id_range: tuple[int, int]) -> tuple[RegistryState, RegistryState]:
        """Move or widen the volume's Export_Id range (volume_setup.set_range); returns the
        registry before and after."""
        from .volume_setup import set_range

        return set_range(self, id_range)

    def set_times(self, times: dict[str, int]) -> tuple[RegistryState, RegistryState]:
        """Set the Grace_Period/Lease_Lifetime the volume gives its own instance ({"grace_period":
        S, "lease_lifetime": S}, each optional); returns the registry before and after.
        ValidationError in shared mode or out of Ganesha's ranges (RegistryState). A registry
        change only: Ganesha reads both at its start, so the running instance keeps its own
        until its next start (a restart or a move), which every node then makes alike."""
        with self.transaction(live=False) as tx:
            tx.state = replace(tx.state, **times)
        return tx.base, tx.state

    def server_backend(self, server: str) -> Backend:
        """The backend of `server` on this node (the volume's own when it is that server's)."""
        return self._backend if self._backend is not None and self._backend.name == server \
            else get_backend(server, self.settings)

    # ---- queries ----------------------------------------------------------------------------
    def exports_with_status(self) -> tuple[RegistryState, list[tuple[Export, bool | None]]]:
        """Each export with live=True/False, or None when the server cannot be asked."""
        status = self.status()
        return status.state, [(row.export, row.live) for row in status.exports]

    def status(self) -> VolumeStatus:
        """What the server serves of the volume now, read back as the monitor reads it (what it
        grants, not only whether it is present: Backend.drift), and nothing changed or repaired.
        An export that is live but not as registered (a client's access or squash changed behind
        ganesha-ha's back, a client missing) has `as_registered` False and the volume's
        `reasons` say how; the server not answering leaves `live` None for every export."""
        state = self.load()
        backend = self.backend(state)
        # the node's own config serving the volume outside ganesha-ha (read from files)
        node_warnings = backend.node_config_warnings(str(self.mountpoint), state.exports)
        try:
            backend.require_running()
            drift = backend.drift(self.ctx(state), state.exports)
        except GaneshaHAError as exc:
            return VolumeStatus(state=state, exports=[ExportStatus(e, None, None) for e in state.exports],
                                unavailable=str(exc), warnings=node_warnings)
        not_live = {e.path for e in drift.missing + drift.elsewhere}
        changed = {e.path for e in drift.changed}
        rows = [ExportStatus(e, e.path not in not_live, None if e.path in not_live else e.path not in changed)
                for e in state.exports]
        why = list(drift.foreign)
        if drift.missing and self.is_active():
            # a volume active here with an export left out (the server refused it, no client
            # resolves): the count alone ("3 live" of 4) did not say which at 3 a.m.
            from .placement import missing_here
            from .servers import backend_info

            by_id = backend_info(backend.name).handle_id == "Export_Id"
            lacking = {f.export.path: str(f) for f in missing_here(backend, state.exports, drift.missing)}
            why += [lacking.get(e.path) or f"{e.path or '/'}{f' (Export_Id {e.export_id})' if by_id else ''}: not "
                    "served on this node now; 'ganesha-ha volume monitor' applies it again and names the server's "
                    "reason" for e in drift.missing]
        return VolumeStatus(state=state, exports=rows, reasons=list(drift.reasons), not_live=why,
                            stray=list(drift.stray), warnings=list(drift.warnings) + node_warnings)

    # ---- agent actions ----------------------------------------------------------------------
    def start(self) -> StartResult:
        """Make every export of the volume live on this node and let its clients reclaim:
        restore the client-recovery stores, apply each export on its own (in plan order),
        then the backend's after-restore hook (Ganesha: the take-over grace, when there are
        records).

        An export that cannot go live here is listed in `failed` with its reason and the
        others are live. When none can (and the volume has exports), raises NotInstalledError
        if a cause is node-local, else ApplyError, and the volume is not marked active.

        A volume with a server of its own (instance mode) has it started first, with the
        exports in its config: then only those it does not serve as registered are applied
        (the read-back finds them), and a start that fails ends the server again.
        """
        launched: tuple[Backend, VolumeContext] | None = None
        try:
            with self.transaction(live=True, launch=True) as tx:
                tx.backend.check_installed()
                if tx.launched is None:
                    tx.reapply(tx.state.exports)
                else:
                    launched = tx.backend, tx.ctx
                    drift = tx.backend.drift(tx.ctx, tx.state.exports)
                    tx.reapply(drift.missing + drift.changed)
                tx.restore = tx.activate = tx.isolate = True
                risks = (tx.backend.handle_risks(tx.state.exports)
                         + tx.backend.node_config_warnings(str(tx.ctx.mountpoint), tx.state.exports))
        except GaneshaHAError:
            if launched is not None and not self.is_active():
                backend, ctx = launched
                from .transaction import best_effort

                best_effort(lambda: backend.stop_server(ctx))
            raise
        return StartResult(applied=len(tx.state.exports) - len({f.export.path for f in tx.failed}),
                           recovery_records=tx.records, grace=tx.grace, failed=tx.failed,
                           warnings=risks + tx.warnings, notes=list(tx.launched or []))

    def stop(self, *, unlock: bool = True, lease_wait: float = 0.0,
             notes: list[str] | None = None) -> int:
        """Withdraw the volume's exports from this node (returns how many were live); keep
        their identity on the volume.

        Must succeed whenever possible (a failed stop gets the node fenced): with the volume
        already unmounted, the exports to withdraw come from the node-local active record;
        each export is withdrawn on its own, so one the server refuses to withdraw does not
        keep the others live (the stop then fails with ApplyError naming it). Then the
        backend's after-stop hook: with `unlock`, release what the server holds for the
        volume (knfsd: NLM locks on its file system while mounted, and of the floating IP);
        `lease_wait` > 0 waits out NFSv4 leases for at most that long. What the hook did is
        appended to `notes`. A server of the volume's own (instance mode) is ended instead,
        its exports with it (ServerUnavailableError if it does not go away).
        """
        record = self.node.active_record()
        try:
            state = self.registry.load()
        except GaneshaHAError:
            if record is None:
                return 0  # never started here and nothing readable: already stopped
            memo: dict = {}
            state = RegistryState(volume_uuid=record["volume_uuid"], server=record["server"],
                                  id_range=tuple(record.get("id_range", (1, 65535))),
                                  exports=tuple(export_from_dict(e, record.get("version", 1), memo)
                                                for e in record["exports"]),
                                  ganesha_mode=record.get("ganesha_mode", SHARED))
            mounted = False
        else:
            mounted = True
        backend = self.backend(state)
        recorded = (record or {}).get("reach")
        if recorded:   # reached otherwise at start: what it made live is withdrawn that way
            moved = backend.fall_back(recorded)
            if moved and notes is not None:
                notes.append(moved)
        with backend.action():
            return self._stop(backend, self.ctx(state), state, mounted, unlock, lease_wait, notes)

    def _stop(self, backend: Backend, ctx: VolumeContext, state: RegistryState, mounted: bool, unlock: bool,
              lease_wait: float, notes: list[str] | None) -> int:
        withdrawn = 0
        if backend.own_server:   # its exports go with it, mounted or not
            withdrawn = backend.stop_server(ctx)
        elif backend.is_running():
            if mounted:
                from .transaction import best_effort

                best_effort(lambda: self.save_recovery(backend, ctx))
            live = backend.live_paths(ctx, state.exports)
            from .execute import run_steps, summary
            from .plan import plan_changes

            # children before parents, each on its own
            failed = run_steps(backend, ctx, plan_changes(state.exports, ()), isolate=True)
            withdrawn = sum(1 for is_live in live.values() if is_live) - len(failed)
            withdrawn += backend.withdraw_stray(ctx, state.exports)
            if failed:
                raise ApplyError(f"{len(failed)} export(s) could not be withdrawn, the others were: "
                                 f"{summary(failed)}")
        else:
            require_nothing_live(backend, ctx, state.exports)
        done = backend.after_stop(ctx, unlock_fs=unlock and mounted, unlock_ip=unlock, lease_wait=lease_wait)
        if notes is not None:
            notes.extend(done)
        clear_recovery(backend, ctx)
        self.node.clear_restored()
        self.node.clear_active()
        return withdrawn

    def monitor(self, repair: bool = True, save: bool = True, probe: bool = False) -> MonitorResult:
        """One cheap pass over the whole volume: compare, repair drift (`repair`, each export
        on its own: those that still fail are in `failed`), save the client-recovery state
        (`save`, and only when this node has restored it).

        `probe` (Pacemaker's probe: is the volume served here at all?): when none of the
        volume's exports is live, the answer is "not running", with nothing repaired or saved.
        """
        if not self.is_active():
            return MonitorResult(running=False, drift=Drift())
        state = self.load()
        backend = self.backend(state)
        with backend.action():
            return self._monitor(backend, state, repair, save, probe)

    def _monitor(self, backend: Backend, state: RegistryState, repair: bool, save: bool, probe: bool) -> MonitorResult:
        backend.require_running()
        ctx = self.ctx(state)
        drift = backend.drift(ctx, state.exports)
        result = MonitorResult(running=True, drift=drift, exports=len(state.exports))
        if probe and state.exports and len(drift.missing) == len(state.exports):
            return MonitorResult(running=False, drift=drift, exports=len(state.exports))
        if repair and (drift.missing or drift.changed or drift.stray):
            # against the registry as it is now, under the lock: an export added since the
            # drift was taken is not a stray, one removed since is not re-applied
            with self.transaction(live=True) as tx:
                tx.reapply(drift.missing + drift.changed)
                tx.strays = bool(drift.stray)
                tx.isolate = True
            result.failed = tx.failed
            result.exports = len(tx.state.exports)
            result.repaired = len(drift.missing) + len(drift.changed) + len(drift.stray) - len(tx.failed)
        elif drift.missing or drift.changed:
            from .execute import ExportFailure

            result.failed = [ExportFailure(e, "apply", ApplyError("not live as the registry says"), backend.name)
                             for e in drift.missing + drift.changed]
        if drift.foreign:
            self._foreign(drift, result, repair, backend.name)
        if save:
            from .errors import InsecureStateError, RegistryError

            try:
                result.recovery_saved = self.save_recovery(backend, ctx)
            except InsecureStateError:
                raise
            except RegistryError as exc:  # users fill their volumes: the exports still serve
                result.recovery_error = str(exc)
        return result

    @staticmethod
    def _foreign(drift: Drift, result: MonitorResult, repair: bool, server: str) -> None:
        """Identities of ours served for something else: an export whose Export_Id Ganesha
        serves for another path (`drift.elsewhere`, its reason in `drift.foreign`) is not live,
        named in `result.failed` (not ours to withdraw, nor to repair: the volume is degraded,
        the other export serves on); a knfsd fsid exported for another directory was left out
        by the repair, which names it. One that neither explains (both live: exported by hand)
        is an IdCollisionError (exit 5, OCF_ERR_PERM), as a start would refuse it."""
        from .errors import IdCollisionError
        from .execute import ExportFailure

        result.failed += [ExportFailure(e, "apply", IdCollisionError(f"{why}; give the volumes disjoint id "
                                                                      "ranges (ganesha-ha volume set-range)"), server)
                          for e, why in zip(drift.elsewhere, drift.foreign)]
        named = sum(1 for f in result.failed if isinstance(f.error, IdCollisionError))
        if repair and len(drift.foreign) > named:
            raise IdCollisionError("; ".join(drift.foreign[len(drift.elsewhere):]))

    def save_recovery(self, backend: Backend, ctx: VolumeContext) -> bool:
        """Save every recovery store of the backend, if this node has restored the volume's
        copy (otherwise False: a save now would replace the copy with an empty view). One
        failing store does not stop the others; the first error is raised after them all."""
        if not self.node.restored():
            return False
        changed, errors = False, []
        for store in backend.recovery_stores(ctx):
            try:
                changed = store.save(ctx) or changed
            except GaneshaHAError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return changed


def clear_recovery(backend: Backend, ctx: VolumeContext) -> None:
    for store in backend.recovery_stores(ctx):
        store.clear(ctx)


def require_nothing_live(backend: Backend, ctx: VolumeContext, exports: Sequence[Export]) -> None:
    """For a stop when the server cannot be driven: fine if none of `exports` is live, an
    error if some still are (knfsd's etab can be read without a working exportfs), because a
    stop that said "stopped" would let the volume move while this node still serves it. A
    server that is there but did not answer in time (NoAnswerError: hung, and maybe serving
    still) is that error too: its silence proves nothing gone."""
    from .errors import NoAnswerError

    try:
        live = backend.live_paths(ctx, exports)
    except NoAnswerError:
        raise
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
