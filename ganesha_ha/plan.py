"""What to do on the live server for a change of the registry: an ordered list of steps (pure).

volume.py's transaction computes the steps from the registry before and after the change,
runs them, and on failure runs the steps of the way back. Each step is one export and one
action, so that:
- the order is decided here and only here: today withdrawals first, then applies, each in
  Export_Id order (the registry's order); the NFSv4 pseudo tree will order them instead
  (parents applied before children, children withdrawn before parents: Ganesha refuses to
  remove an export with submounts and resolves a child's pseudo path inside its parent);
- the executor may send consecutive steps of one kind to the server together (`batches`,
  what keeps 1000 knfsd exports at one exportfs process) or one by one, to report the one
  export that failed and carry on with the others.
"""
from __future__ import annotations

from .record import Record

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Sequence

    from .model import Export

APPLY = "apply"        # make the export live exactly as given (add, or update in place)
WITHDRAW = "withdraw"  # take the export away from the server


class Step(Record, frozen=True):
    action: str        # APPLY or WITHDRAW
    export: Export


def needs_readd(old: Export, new: Export) -> bool:
    """Whether a changed export must be withdrawn before it is applied again: Ganesha's
    UpdateExport cannot change an export's Export_Id, pseudo path or FSAL
    (src/support/export_mgr.c), and a different Export_Id is a different export anyway."""
    return (old.export_id != new.export_id or old.pseudo != new.pseudo
            or old.ganesha != new.ganesha)


def apply_order(exports: Iterable[Export]) -> list[Export]:
    """The order in which exports go live."""
    return sorted(exports, key=lambda e: e.export_id)


def withdraw_order(exports: Iterable[Export]) -> list[Export]:
    """The order in which exports are taken away."""
    return sorted(exports, key=lambda e: e.export_id)


def plan_changes(before: Sequence[Export], after: Sequence[Export], reapply: Collection[str] = ()) -> list[Step]:
    """The steps that take the server from serving `before` to serving `after`.

    Exports are matched by path (the directory is what an export is). An export only in
    `before`, or whose identity changes (`needs_readd`), is withdrawn; one only in `after`,
    changed, or whose path is in `reapply` (its live state is not known to match: a start,
    a repair) is applied. Unchanged exports cost nothing. Withdrawals come first, so that a
    re-added export's old form is gone before its new form is applied.
    """
    old = {e.path: e for e in before}
    new = {e.path: e for e in after}
    withdraw = [e for path, e in old.items() if path not in new or needs_readd(e, new[path])]
    apply = [e for path, e in new.items() if path not in old or old[path] != e or path in reapply]
    return ([Step(WITHDRAW, e) for e in withdraw_order(withdraw)]
            + [Step(APPLY, e) for e in apply_order(apply)])


def plan_undo(before: Sequence[Export], after: Sequence[Export], reapply: Collection[str] = ()) -> list[Step]:
    """The steps that put the server back after `plan_changes(before, after, reapply)` failed
    part-way: the plan from `after` back to `before`, leaving out the re-applied paths,
    whose state on the server before the change is not known (a start or a repair only
    brings the server closer to the registry; undoing it could only take more away)."""
    return plan_changes([e for e in after if e.path not in reapply],
                        [e for e in before if e.path not in reapply])


def batches(steps: Iterable[Step]) -> list[tuple[str, list[Export]]]:
    """Consecutive steps of one action, as (action, exports) in order: what can go to the
    server in one call without changing the order."""
    out: list[tuple[str, list[Export]]] = []
    for step in steps:
        if out and out[-1][0] == step.action:
            out[-1][1].append(step.export)
        else:
            out.append((step.action, [step.export]))
    return out
