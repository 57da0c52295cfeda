"""One change of a volume in progress and its commit: the draft registry, what the change asks
of the server, and how it is carried out (`Volume.transaction` makes one and calls `commit`;
export_edits.py and volume.py fill it): validate, save, apply in plan order, roll back.

Functions of an `Owner` (the Volume, seen through the few things a commit needs of it) rather
than Volume methods, so that volume.py stays the place of the operations and this module is
imported only by code that changes something (an agent monitor of a correct volume does not)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from .backends import Backend
from .context import VolumeContext
from .errors import ApplyError, GaneshaHAError, ServerUnavailableError
from .model import Export
from .record import replace
from .registry import RegistryState
from .servers import backend_info

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Protocol

    from .execute import ExportFailure
    from .nodestate import NodeState
    from .plan import Step
    from .registry import Registry

    class Owner(Protocol):
        """What a commit needs of the volume it changes (volume.Volume)."""
        mountpoint: Path
        registry: Registry
        node: NodeState

        def is_active(self) -> bool: ...

        def set_active(self, state: RegistryState) -> None: ...


class Transaction:
    """One change of a volume in progress (see `Volume.transaction`).

    `state` is the draft: the body replaces it with a changed RegistryState (whose own
    validation refuses duplicates at once). What the body may ask for besides:
    `reapply(exports)`: apply these even though the registry does not change them (their
    live state is not known to match: a start, a repair); `restore`: restore the
    client-recovery stores before applying; `activate`: a start of the volume (the backend's
    after-restore hook, then the node's active mark); `strays`: withdraw what the server
    serves from the volume that the registry does not list; `isolate`: carry out each export
    on its own (execute.py): one that fails is listed in `failed` after the commit and the
    others go live (a start, a repair). A body that also changes the registry is all or
    nothing, unless it only adds exports (`only_adds`: `import --skip-conflicts`): then each
    new export goes live on its own, and one that fails is left out of the registry again
    (`commit`).
    """

    def __init__(self, base: RegistryState, backend: Backend, ctx: VolumeContext, live: bool):
        self.base = base          # the registry as loaded (under the lock)
        self.state = base         # the draft; after the commit, the registry as saved
        self.backend = backend
        self.ctx = ctx
        self.live = live          # the change is carried out on the server now
        self.reapplied: set[str] = set()
        self.restore = False
        self.activate = False
        self.strays = False
        self.isolate = False
        self.failed: list[ExportFailure] = []   # after the commit, with `isolate`
        self.progress: Callable[[int, int], None] | None = None  # (steps done, steps) on the server
        self.records = 0          # after the commit: client records restored
        self.remounted: list[str] = []  # after the commit: unchanged exports withdrawn and applied again
        self.grace: str | None = None   # after the commit: what after_restore reported
        self.warnings: list[str] = []   # after the commit: what the server's read-back warned of
        self.launched: list[str] | None = None   # the notes of the volume's own server's start (launch)

    def reapply(self, exports: Iterable[Export]) -> None:
        self.reapplied.update(e.path for e in exports)

    def served_ids(self) -> set[int]:
        """Export_Ids the server serves now (an allocation must avoid them); empty when the
        change is not carried out live (the server's ids are not this node's business then)."""
        return self.backend.served_ids() if self.live else set()

    @property
    def changed(self) -> bool:
        return self.state != self.base

    @property
    def only_adds(self) -> bool:
        """The draft differs from the registry as loaded only by exports it adds (an import):
        what an isolated change can take out again without touching anything that was there."""
        return (replace(self.state, exports=self.base.exports) == self.base
                and set(self.base.exports) <= set(self.state.exports))


def commit(owner: Owner, tx: Transaction, note: str) -> None:
    """Carry out `tx` for `owner` (Volume.transaction, whose docstring says what a commit
    checks, writes and applies, and how it rolls back)."""
    base, new, backend, ctx = tx.base, tx.state, tx.backend, tx.ctx
    from .execute import Progress, check_ready, failures_error, run_steps
    from .plan import APPLY, plan_changes, plan_undo  # here: a monitor of a correct volume needs no plan

    submounts = backend_info(backend.name).pseudo_tree
    gone = absent(tx) if submounts else set()
    steps = plan_changes(base.exports, new.exports, tx.reapplied, gone, submounts)
    applying = [s.export for s in steps if s.action == APPLY]
    # each export on its own (a start, a repair, an import's new exports: `adding`), unless
    # the registry changes otherwise: then all or nothing, and `progress` tells the way back
    # where the run stopped
    adding = tx.isolate and tx.live and tx.changed and tx.only_adds
    isolate = tx.isolate and (not tx.changed or adding)
    if not isolate:  # refused before anything is written; isolated, each is checked when run
        for exp in applying:
            if tx.live:
                check_ready(backend, ctx, exp)
            else:
                backend.check_export(exp, owner.mountpoint)
    refused: list[ExportFailure] = []
    if tx.live and applying:
        refused = collisions(owner, backend, ctx, applying, submounts, isolate)
        if refused and adding:   # a new export that meets another's is not written either
            tx.state = new = left_out(new, base, refused)
            steps = plan_changes(base.exports, new.exports, tx.reapplied, gone, submounts)
        elif refused:   # left out, named (a start, a repair): the others go live
            out = {f.export.path for f in refused}
            steps = [s for s in steps if not (s.action == APPLY and s.export.path in out)]
    tx.remounted = remounted(steps, base.exports, new.exports)
    changed = tx.changed
    if changed:  # the ids and fsids of exports that go are never handed out again
        tx.state = owner.registry.save(new.retiring(base))
    if not tx.live:
        return
    progress = Progress()
    try:
        if tx.restore:
            tx.records = restore_recovery(backend, ctx)
            owner.node.set_restored()
        tx.failed = refused + run_steps(backend, ctx, steps, progress, isolate=isolate, warnings=tx.warnings,
                                        report=tx.progress)
        if adding and tx.failed:   # the new exports the server refused: not registered
            drop_failed(owner, tx)
        elif tx.failed:   # a start, a repair: a module missing here moves the volume or leaves the export out
            from .placement import place

            tx.failed = place(backend, new.exports, tx.failed)
        if tx.activate and new.exports and {f.export.path for f in tx.failed} >= {e.path for e in new.exports}:
            raise failures_error(tx.failed, f"none of the {len(new.exports)} exports of "
                                            f"{owner.mountpoint} could go live")
        if tx.strays:
            backend.withdraw_stray(ctx, new.exports)
        if tx.activate:
            tx.grace = backend.after_restore(ctx, tx.records)
    except GaneshaHAError as exc:
        if not changed:
            raise
        owner.registry.save(base)
        # an isolated run counts no steps (a failed export's are carried out or not): all are
        # taken as done, and each is undone on its own, best effort
        done, unsure = (len(steps), 0) if adding else (progress.done, None)
        undo = plan_undo(base.exports, new.exports, tx.reapplied, gone, submounts, done, unsure)
        for step in undo:  # each on its own: one that fails again must not keep the others back
            best_effort(lambda: run_steps(backend, ctx, [step]))
        raise rolled_back(exc, f"{note} (registry rolled back)") from None
    if tx.activate or (steps and owner.is_active()):  # what a stop must withdraw, even unmounted
        owner.set_active(tx.state)


def drop_failed(owner: Owner, tx: Transaction) -> None:
    """After an isolated change that only adds: save the registry without the new exports
    that failed and are not live (read back: one call). One that is live all the same (a
    take-back that failed, or the node's own config serving it) stays registered: the
    registry never loses what is served; its failure is still in `tx.failed`."""
    new = [f.export for f in tx.failed if tx.base.get(f.export.path) is None]
    if not new:
        return
    live = tx.backend.live_paths(tx.ctx, new)
    kept = left_out(tx.state, tx.base, [f for f in tx.failed if not live.get(f.export.path)])
    if kept != tx.state:
        tx.state = owner.registry.save(kept)


def left_out(state: RegistryState, base: RegistryState, failures: Sequence[ExportFailure]) -> RegistryState:
    """`state` without the exports of `failures` that `base` does not have: an isolated change
    that only adds (`Transaction.only_adds`) takes out again what did not go live. An export
    `base` has stays, as in a start: registered, named in the failures, applied by a monitor.

    Left out rather than kept (as a start keeps one that cannot go live): the command says
    "not imported", and its source (ganesha.conf, /etc/exports, the CIB) still holds the
    export, so the next run of the import, once the cause is mended, takes it; a registered
    export that never served would instead be served by the next start elsewhere, after the
    administrator was told it was not imported and removed nothing from the source."""
    out = {f.export.path for f in failures if base.get(f.export.path) is None}
    return replace(state, exports=tuple(e for e in state.exports if e.path not in out)) if out else state


def collisions(owner: Owner, backend: Backend, ctx: VolumeContext, applying: Sequence[Export], submounts: bool,
               isolate: bool) -> list[ExportFailure]:
    """The exports about to be applied whose identity (Export_Id, knfsd fsid) or pseudo
    path meets what this node's server serves for others. A change of the registry is
    refused with the first (IdCollisionError, PseudoCollisionError: exit 5, nothing
    written); a start or a repair (`isolate`) gets them back, each with its error, to leave
    them out: one export that meets another volume's is not served, the rest of the volume
    is, and the other volume's export serves on (README, "Exports that meet another
    volume's on one node")."""
    from .errors import IdCollisionError
    from .execute import ExportFailure

    out: list[ExportFailure] = []
    try:
        backend.check_collisions(ctx, applying)
    except IdCollisionError:
        if not isolate:
            raise
        for exp in applying:   # which? each on its own (a collision is rare; none costs one call)
            try:
                backend.check_collisions(ctx, [exp])
            except IdCollisionError as exc:
                out.append(ExportFailure(exp, "apply", exc, backend.name))
    if submounts and not backend.own_server:   # a server of its own serves no other volume
        from .neighbours import pseudo_collisions

        seen = {f.export.path for f in out}
        hits = pseudo_collisions(owner.node, backend.served_ids, [e for e in applying if e.path not in seen],
                                 None if isolate else owner.registry.abspath)   # an ExportFailure names it
        if hits and not isolate:
            raise hits[0][1]
        out += [ExportFailure(exp, "apply", exc, backend.name) for exp, exc in hits]
    return out


def absent(tx: Transaction) -> set[str]:
    """The re-applied exports the server does not serve now: where a parent comes back
    under live children (a repair), they are remounted (plan.py). One call to the server,
    only for a start or a repair."""
    if not (tx.live and tx.reapplied):
        return set()
    known = tx.backend.live_paths(tx.ctx, [e for e in tx.base.exports if e.path in tx.reapplied])
    return {path for path, is_live in known.items() if not is_live}


def remounted(steps: Sequence[Step], before: Sequence[Export], after: Sequence[Export]) -> list[str]:
    """Paths of the exports a plan withdraws and applies again unchanged: the children of a
    parent that goes or comes in the pseudo tree (plan.py), for the change's note."""
    from .plan import WITHDRAW

    withdrawn = [s.export for s in steps if s.action == WITHDRAW]
    if not withdrawn:   # a start: nothing to hash (2 x 1000 exports cost ~6-12 ms)
        return []
    same = set(before) & set(after)
    return sorted(exp.path for exp in withdrawn if exp in same)


def restore_recovery(backend: Backend, ctx: VolumeContext) -> int:
    """Restore every recovery store; the number of client records they hold together."""
    return sum(store.restore(ctx) for store in backend.recovery_stores(ctx))


def rolled_back(exc: GaneshaHAError, note: str) -> GaneshaHAError:
    """The error for a live change that failed after the registry was written (and rolled back).

    A refusal is an ApplyError (exit 7). A server that did not answer in time keeps its own
    class (exit 6, OCF generic): nothing was refused, and the server may still carry the
    change out when it answers, so the note cannot promise that nothing changed there.
    """
    if isinstance(exc, ServerUnavailableError):
        return ServerUnavailableError(f"{exc}; registry rolled back, but the server may still apply "
                                      "the change when it answers")
    return ApplyError(f"{exc}; {note}")


def best_effort(action: Callable[[], object]) -> None:
    """Used only while undoing a failed change: the original error is what gets reported."""
    try:
        action()
    except Exception:  # the rollback must never replace the real error with a traceback
        pass
