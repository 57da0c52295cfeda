"""What the other volumes on this node hold, so that this one never meets them in a server.

Two things must stay apart between volumes that can be active on one node's shared server:
- Export_Id ranges: read from the registries of the shared volumes mounted here (`ranges`),
  for `volume init` and `volume set-range` (registry.check_range_free decides);
- pseudo paths, on a server with one pseudo tree (Ganesha): read from the active marks of the
  volumes active here (nodestate.py: what each start applied), kept to the exports whose
  Export_Id the server serves now (a mark left from before blocks nothing). Ganesha cannot
  say over D-Bus which pseudo path an export has unless `mount_path_pseudo` is set
  (DisplayExport shows the full path twice otherwise: docs/research/ganesha-facts.md, D), so
  the marks are the source, and exports of the server's own configuration are not seen.
A volume in instance mode (its own ganesha.nfsd) meets no other volume in a server: its range
and its marks are left out here, and its own checks skip these.
"""
from __future__ import annotations

from pathlib import Path

from .errors import GaneshaHAError, PseudoCollisionError
from .linux import mount_points
from .model import Export
from .nodestate import NodeState
from .plan import pseudo_clash
from .registry import REGISTRY_FILE, STATE_DIR, Registry, export_from_dict
from .servers import SHARED

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence
    from typing import Any


def mounted_registries() -> list[Path]:
    """Mount points on this node that carry a ganesha-ha registry (from mountinfo), in the
    kernel's order."""
    found: list[Path] = []
    for mp in mount_points():
        path = Path(mp)
        if path not in found and (path / STATE_DIR / REGISTRY_FILE).is_file():
            found.append(path)
    return found


def ranges(mountpoint: Path) -> list[tuple[str, tuple[int, int]]]:
    """(mount point, Export_Id range) of the shared volumes mounted on this node other than
    the one at `mountpoint`; a registry that cannot be read is left out (it cannot change here
    either), and so is a volume served by its own instance (its ids meet no other volume's)."""
    out = []
    for mp in mounted_registries():
        if mp == mountpoint:
            continue
        try:
            state = Registry(mp).load()
        except GaneshaHAError:
            continue
        if state.ganesha_mode == SHARED:
            out.append((str(mp), state.id_range))
    return out


def pseudo_collisions(node: NodeState, served: Callable[[], Collection[int]], exports: Sequence[Export],
                      where: Callable[[Export], object] | None) -> list[tuple[Export, PseudoCollisionError]]:
    """Each of `exports` (of the volume whose marks `node` keeps) whose pseudo path is, lies
    below or lies above that of an export this node's server serves (`served()`: its
    Export_Ids, asked only when another volume is active here) for another volume, with the
    error naming theirs (and ours by `where(export)`; None: the caller names it, as an
    ExportFailure does), in the order of `exports`.

    Nested is refused as well as equal: below another volume's export, Ganesha mounts ours
    inside it, and that volume's stop then fails ("Cannot remove export with submounts": the
    node is fenced); above it, ours would hide it from its clients (plan.py). A start or a
    repair leaves exactly these out and serves the others (README, "Exports that meet
    another volume's on one node").
    """
    others = [r for r in node.others_active() if r.get("ganesha_mode", SHARED) == SHARED]
    if not others:
        return []
    live = served()
    theirs = [(str(record.get("mountpoint", "?")), exp) for record in others for exp in _record_exports(record)
              if exp.export_id in live]
    return [(ours, PseudoCollisionError(text)) for ours, text in find_pseudo_collisions(theirs, exports, where)]


def find_pseudo_collisions(theirs: Sequence[tuple[str, Export]], ours: Sequence[Export],
                           where: Callable[[Export], object] | None) -> list[tuple[Export, str]]:
    """(export of ours, why) for each of `ours` whose pseudo path is, lies below or lies above
    that of one of `theirs` ((mount point of its volume, export): what the node serves for
    other volumes). Where several of theirs meet one of ours, the one at the same path is
    named, else the nearest above it, else one below it. Pure.

    Theirs are indexed by pseudo path and by every pseudo path above one of theirs: each of
    ours is then looked up along its own path, O(depth), not against each of theirs (two
    volumes of 10 000 exports on one node were 10^8 comparisons)."""
    exact: dict[str, tuple[str, Export]] = {}
    above: dict[str, tuple[str, Export]] = {}
    for mountpoint, exp in theirs:
        exact.setdefault(exp.pseudo, (mountpoint, exp))
        for parent in _parents(exp.pseudo):
            above.setdefault(parent, (mountpoint, exp))
    if not exact:
        return []
    out = []
    for exp in ours:
        found = exact.get(exp.pseudo)
        if found is None:
            found = next((exact[p] for p in _parents(exp.pseudo) if p in exact), None) or above.get(exp.pseudo)
        if found is not None:
            out.append((exp, _collision_text(exp, *found, where)))
    return out


def _collision_text(ours: Export, mountpoint: str, theirs: Export, where: Callable[[Export], object] | None) -> str:
    how = pseudo_clash(ours.pseudo, theirs.pseudo)
    other = f"{mountpoint} ({mountpoint.rstrip('/')}/{theirs.path}".rstrip("/") + ")"
    what = {"is": f"is already served by this node for the volume {other}",
            "lies below": f"lies below {theirs.pseudo}, served by this node for the volume {other}: "
                          "Ganesha would mount it inside that export, whose volume could then not stop",
            "lies above": f"lies above {theirs.pseudo}, served by this node for the volume {other}: "
                          "it would hide that export from its clients"}[how]
    of = f" of {where(ours)}" if where is not None else ""
    return f"pseudo path {ours.pseudo}{of} {what}; give the volumes pseudo paths apart"


def _parents(pseudo: str) -> list[str]:
    """The pseudo paths strictly above a normalised one: '/a/b/c' → ['/a/b', '/a']."""
    out = []
    while True:
        pseudo = pseudo.rpartition("/")[0]
        if not pseudo:
            return out
        out.append(pseudo)


def _record_exports(record: dict[str, Any]) -> list[Export]:
    """The exports an active mark lists; none when it cannot be read (a mark is a cross-check)."""
    try:
        memo: dict[str, Any] = {}   # the client lists and FSALs its exports share (Export.from_dict)
        return [export_from_dict(e, int(record.get("version", 1)), memo) for e in record.get("exports", [])]
    except (GaneshaHAError, TypeError, ValueError, AttributeError):
        return []
