"""Carrying out plan steps on the live server (plan.py decides the steps and their order).

Two ways, chosen by the caller (volume.py):
- together (`isolate=False`): a change of the registry (`export add/update/remove`): the
  first refusal stops the rest and is raised, and the transaction puts everything back;
- each export on its own (`isolate=True`): a start, a monitor's repair, a stop. An export
  that cannot go live (or be withdrawn) is reported by name with the server's reason and the
  others are still carried out: one bad export affects only itself.

Consecutive steps of one kind still go to the server in one call (what keeps 1000 knfsd
exports at one exportfs process, and Ganesha's at a few AddExports); when that call fails,
a backend that knows which of its exports failed says so (PartlyAppliedError: Ganesha
attributes each complaint to its export's block), otherwise its exports are tried one by
one, in plan order, to find which failed (an export already right costs knfsd nothing, and
Ganesha an UpdateExport). Before an export is applied its node-local needs are checked
(`Backend.check_installed_for`: Ganesha's FSAL modules), so a module missing here is a
NotInstalledError of that export, never a refusal from the server.

Errors that are not one export's fault stop everything and are raised: the server not
answering (ServerUnavailableError), one of the volume's ids served for something else
(IdCollisionError).
"""
from __future__ import annotations

from .errors import (ApplyError, GaneshaHAError, IdCollisionError, InstalledNowhereError, NotInstalledError,
                     PartlyAppliedError, PseudoCollisionError, ValidationError)
from .record import Record

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .backends import Backend
    from .context import VolumeContext
    from .model import Export
    from .plan import Step

# what one export can fail with on its own; anything else concerns the whole volume
PER_EXPORT_ERRORS = (ApplyError, ValidationError, NotInstalledError)


class Progress(Record):
    """How far `run_steps` got: `done` steps were carried out (a failed call's are not counted)."""

    done: int = 0


class ExportFailure(Record, frozen=True):
    """One export a step could not carry out, with the server's (or the node's) reason."""

    export: Export
    action: str                # plan.APPLY ("apply") or plan.WITHDRAW ("withdraw")
    error: GaneshaHAError
    server: str = ""           # the volume's server: its identity names the export ("": the Export_Id)

    @property
    def node_local(self) -> bool:
        """The cause is this node (a program or module missing here): another node may serve it."""
        return isinstance(self.error, NotInstalledError)

    def __str__(self) -> str:
        """`DIRECTORY (Export_Id N): reason` on Ganesha; on knfsd, whose file handles carry the
        fsid and never the Export_Id, `DIRECTORY: reason` (the directory is what knfsd exports;
        an fsid, often a UUID, would spend Pacemaker's 128 characters of an exit reason)."""
        from .servers import backend_info

        name = self.export.path or "/"
        if self.server and backend_info(self.server).handle_id != "Export_Id":
            return f"{name}: {self.error}"
        reason = str(self.error)
        # a server's reason that names the export the same way already ("Export_Id 12 (/g): no
        # client of it resolves ...") would name it twice, spending the exit reason's 128 characters
        said = f"Export_Id {self.export.export_id} ({self.export.pseudo}): "
        return f"{name} (Export_Id {self.export.export_id}): {reason[len(said):] if reason.startswith(said) else reason}"


def check_ready(backend: Backend, ctx: VolumeContext, exp: Export) -> None:
    """What must hold before `exp` is applied here: the server can represent it
    (ValidationError) and this node has what it needs (NotInstalledError)."""
    backend.check_export(exp, ctx.mountpoint)
    backend.check_installed_for(exp)


def _call(backend: Backend, ctx: VolumeContext, action: str, exports: Sequence[Export]) -> list[str]:
    """One call to the server; the warnings of an apply's read-back."""
    from .plan import APPLY

    if action == APPLY:
        return backend.apply(ctx, exports) or []
    backend.withdraw(ctx, exports)
    return []


def run_steps(backend: Backend, ctx: VolumeContext, steps: Sequence[Step], progress: Progress | None = None,
              *, isolate: bool = False, warnings: list[str] | None = None,
              report: Callable[[int, int], None] | None = None) -> list[ExportFailure]:
    """Carry out `steps` in order; returns the exports that failed (always [] unless `isolate`).

    Without `isolate` the first failure is raised (ApplyError, ValidationError,
    NotInstalledError), and `progress` counts the steps of the calls that returned (the way
    back, plan.plan_undo, starts from there). With it, those are collected per export and
    every other step is still carried out. ServerUnavailableError and IdCollisionError are
    raised either way. The applies' read-back warnings (a client name that does not resolve
    here) are added to `warnings` when given.

    With `report`, a batch goes to the server in about 20 parts and `report(done, total)` is
    called after each: a person watching hundreds of exports go live sees them go (for knfsd
    that is up to 20 exportfs processes instead of one, so only when someone watches).
    """
    said = warnings if warnings is not None else []
    from .plan import batches  # here: a monitor of a correct volume needs no plan

    failures: list[ExportFailure] = []
    total, done = len(steps), 0
    for action, batch in batches(steps):
        size = max(1, total // 20) if report is not None else max(1, len(batch))
        for at in range(0, len(batch), size):
            part = batch[at:at + size]
            _run_part(backend, ctx, action, part, progress, isolate, failures, said)
            done += len(part)
            if report is not None:
                report(done, total)
    return failures


def _run_part(backend: Backend, ctx: VolumeContext, action: str, exports: Sequence[Export],
              progress: Progress | None, isolate: bool, failures: list[ExportFailure], said: list[str]) -> None:
    """One call to the server for consecutive steps of one kind (see run_steps); the read-back
    warnings of an apply are added to `said`."""
    from .plan import APPLY

    if isolate and action == APPLY:
        ready = []
        for exp in exports:
            try:
                check_ready(backend, ctx, exp)
            except PER_EXPORT_ERRORS as exc:
                failures.append(ExportFailure(exp, action, exc, backend.name))
            else:
                ready.append(exp)
        exports = ready
    if not exports:
        return
    try:
        said.extend(_call(backend, ctx, action, exports))
        if progress is not None:
            progress.done += len(exports)
    except PartlyAppliedError as exc:   # a batch the server took in part: it says which failed
        if not isolate:
            raise
        said.extend(exc.warnings)
        failures.extend(ExportFailure(exp, action, error, backend.name) for exp, error in exc.failures)
    except PER_EXPORT_ERRORS as exc:
        if not isolate:
            raise
        if len(exports) == 1:
            failures.append(ExportFailure(exports[0], action, exc, backend.name))
            return
        for exp in exports:  # which one(s)? each on its own, in plan order
            try:
                said.extend(_call(backend, ctx, action, [exp]))
            except PER_EXPORT_ERRORS as one:
                failures.append(ExportFailure(exp, action, one, backend.name))


def summary(failures: Sequence[ExportFailure], limit: int = 3) -> str:
    """`a (Export_Id 1): reason; b (Export_Id 2): reason (and 4 more)`: for one log line."""
    text = "; ".join(str(f) for f in failures[:limit])
    return text + (f" (and {len(failures) - limit} more)" if len(failures) > limit else "")


def failures_error(failures: Sequence[ExportFailure], what: str) -> GaneshaHAError:
    """One error for failures that leave nothing served: NotInstalledError when a cause is
    node-local (the volume belongs on a node that has what is missing) or a module installed
    on no node (nothing else of the volume to keep serving here: placement.py); the collision's own
    class when every export meets what this node serves for another volume (IdCollisionError,
    PseudoCollisionError: OCF_ERR_PERM, the volume runs on a node without that volume); else
    ApplyError. `what` begins the message, e.g. "none of the 3 exports of /srv/vol1 could go live"."""
    cls: type[GaneshaHAError] = ApplyError
    if any(f.node_local or isinstance(f.error, InstalledNowhereError) for f in failures):
        cls = NotInstalledError
    elif failures and all(isinstance(f.error, (IdCollisionError, PseudoCollisionError)) for f in failures):
        cls = type(failures[0].error)
    return cls(f"{what}: {summary(failures)}")
