"""What to do on the live server for a change of the registry: an ordered list of steps (pure).

volume.py's transaction computes the steps from the registry before and after the change,
runs them, and on failure runs the steps of the way back. Each step is one export and one
action, so that:
- the order is decided here and only here, by the NFSv4 pseudo tree: every withdrawal comes
  before every apply; exports are withdrawn children first (deepest pseudo path first) and
  applied parents first (shallowest first), Export_Id breaking ties. Ganesha mounts each
  export it adds into its pseudo tree under the live export whose pseudo path is the longest
  prefix of its own, found by a LOOKUP inside that export (src/Protocols/NFS/nfs4_pseudo.c:
  pseudo_mount_export, make_pseudofs_node); it refuses to remove an export that still
  has exports mounted under it ("Cannot remove export with submounts",
  src/support/export_mgr.c: gsh_export_removeexport); and an export added over a live child
  hides that child (clients at the child's pseudo path see the parent's directory of that
  name), measured on 4.3 (see README, "Nested pseudo paths");
- on such a server (`submounts=True`) a change that withdraws an export, or mounts one anew,
  also withdraws the live exports below it in the pseudo tree and applies them again after
  it, so that a parent can go (its children stay, mounted again in Ganesha's own pseudo
  directories) and a new parent does not hide them. These remounts keep every identity:
  the children's clients see a pause of two D-Bus calls, never a new file handle;
- the executor may send consecutive steps of one kind to the server together (`batches`,
  what keeps 1000 knfsd exports at one exportfs process) or one by one, to report the one
  export that failed and carry on with the others: either way in this order.
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


def readd_reason(old: Export, new: Export) -> str | None:
    """Why a changed export must be withdrawn before it is applied again, or None: Ganesha's
    UpdateExport cannot change an export's Export_Id, pseudo path or FSAL stack
    (src/support/export_mgr.c), nor FSAL options other than the few an FSAL's update_export
    re-reads (Fsal.in_place_change), and a different Export_Id is a different export anyway."""
    if old.export_id != new.export_id:
        return "the Export_Id changed"
    if old.pseudo != new.pseudo:
        return "the pseudo path changed"
    if not old.ganesha.fsal.in_place_change(new.ganesha.fsal):
        return "Ganesha cannot change this FSAL setting in place"
    return None


def needs_readd(old: Export, new: Export) -> bool:
    return readd_reason(old, new) is not None


def pseudo_under(pseudo: str, parent: str) -> bool:
    """Whether the pseudo path `pseudo` lies strictly below `parent` ('/a/b' below '/a', not
    '/ab'). Both are normalised pseudo paths (model.normalize_pseudo: absolute, never '/')."""
    return pseudo.startswith(parent + "/")


def pseudo_clash(ours: str, theirs: str) -> str | None:
    """How pseudo path `ours` meets `theirs` in one pseudo tree: "is", "lies below", "lies
    above", or None when they are apart."""
    if ours == theirs:
        return "is"
    if pseudo_under(ours, theirs):
        return "lies below"
    if pseudo_under(theirs, ours):
        return "lies above"
    return None


def pseudo_parent(pseudo: str, exports: Iterable[Export]) -> Export | None:
    """The export whose pseudo path is the longest one strictly above `pseudo`: the export a
    server with a pseudo tree mounts one at `pseudo` under, when both are live."""
    above = [e for e in exports if pseudo_under(pseudo, e.pseudo)]
    return max(above, key=lambda e: len(e.pseudo)) if above else None


def pseudo_depth(pseudo: str) -> int:
    """The number of components of a normalised pseudo path ('/a/b' → 2)."""
    return pseudo.count("/")


def apply_order(exports: Iterable[Export]) -> list[Export]:
    """The order in which exports go live: parents before children (shallowest pseudo path
    first), then by Export_Id."""
    return sorted(exports, key=lambda e: (pseudo_depth(e.pseudo), e.export_id))


def withdraw_order(exports: Iterable[Export]) -> list[Export]:
    """The order in which exports are taken away: children before parents."""
    return sorted(exports, key=lambda e: (-pseudo_depth(e.pseudo), e.export_id))


def plan_changes(before: Sequence[Export], after: Sequence[Export], reapply: Collection[str] = (),
                 absent: Collection[str] = (), submounts: bool = True) -> list[Step]:
    """The steps that take the server from serving `before` to serving `after`.

    Exports are matched by path (the directory is what an export is). `before` is what the
    server serves, except the paths in `absent` (known not to be live: a repair, a start
    after a partial failure). An export only in `before`, or whose identity changes
    (`needs_readd`), is withdrawn; one only in `after`, changed, or whose path is in
    `reapply` (its live state is not known to match: a start, a repair) is applied.
    Unchanged exports cost nothing, except, with `submounts` (the server keeps a pseudo tree
    of mounted exports: Ganesha), the live exports below one that is withdrawn or mounted
    anew, which are withdrawn before it and applied again after it (module docstring).
    """
    live = {e.path: e for e in before if e.path not in absent}
    new = {e.path: e for e in after}
    leaving = [e for path, e in live.items() if path not in new or needs_readd(e, new[path])]
    arriving = [e for path, e in new.items() if path not in live or needs_readd(live[path], e)]
    gone = {e.path for e in leaving}
    staying = [e for path, e in live.items() if path not in gone]
    remount: list[Export] = []
    if submounts:
        moved = [e.pseudo for e in leaving + arriving]
        remount = [e for e in staying if any(pseudo_under(e.pseudo, m) for m in moved)]
    again = {e.path for e in remount}
    updating = [new[e.path] for e in staying
                if e.path in again or new[e.path] != e or e.path in reapply]
    return ([Step(WITHDRAW, e) for e in withdraw_order(leaving + remount)]
            + [Step(APPLY, e) for e in apply_order(arriving + updating)])


def plan_undo(before: Sequence[Export], after: Sequence[Export], reapply: Collection[str] = (),
              absent: Collection[str] = (), submounts: bool = True, done: int = 0,
              unsure: int | None = None) -> list[Step]:
    """The steps that put the server back after `plan_changes(before, after, reapply, absent,
    submounts)` failed part-way: `done` of its steps were carried out, the `unsure` steps
    after them may or may not have been (default: the rest of the batch that failed, see
    `batches`), the others were not.

    The server's state is known from that (one form of each export at most is live at any
    time: a form is withdrawn before the new one is applied), so the way back is a plan from
    that state to `before`, with the unsure exports re-applied. An export re-applied without
    a change (a start, a repair) is left as it is, unless it must be remounted: its state
    before the change is not known, and a start or a repair only brings the server closer
    to the registry, so undoing it could only take more away.
    """
    forward = plan_changes(before, after, reapply, absent, submounts)
    if unsure is None:
        unsure = next((n for n, (_, exports) in _batch_ends(forward) if n > done), len(forward)) - done
    live = {e.path: e for e in before if e.path not in absent}
    unknown: set[str] = set()
    for i, step in enumerate(forward[:done + unsure]):
        path = step.export.path
        if i >= done:
            unknown.add(path)
            if step.action == WITHDRAW:
                continue  # believed still live: re-applied, which is right either way
        if step.action == APPLY:
            live[path] = step.export
        elif live.get(path) == step.export:
            del live[path]
    same = {e.path for e in before if e in after and e.path in reapply}
    target = [e for e in before if e.path not in absent and e.path not in same]
    target += [live[path] for path in same if path in live]
    return plan_changes(list(live.values()), target, unknown, (), submounts)


def _batch_ends(steps: Sequence[Step]) -> list[tuple[int, tuple[str, list[Export]]]]:
    """Each batch with the number of steps up to its end."""
    out, end = [], 0
    for batch in batches(steps):
        end += len(batch[1])
        out.append((end, batch))
    return out


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
