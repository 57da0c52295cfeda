"""A volume's identity setup: its registry created (`volume init`) and its Export_Id range
moved (`volume set-range`), with the rules that keep the ranges of volumes that may meet on one
node's shared server apart (neighbours.ranges, registry.check_range_free) and the ids the
node's server serves now out of them.

Functions of an `Owner` (the Volume, as these see it) rather than Volume methods: only the
administrator's commands need them, so an agent call never imports this module.
"""
from __future__ import annotations

from pathlib import Path

from .errors import GaneshaHAError
from .model import validate_id_range
from .record import replace
from .registry import RegistryState, check_range_free
from .servers import SHARED

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Iterable
    from contextlib import AbstractContextManager
    from typing import Protocol

    from .backends import Backend
    from .registry import Registry
    from .settings import Settings
    from .transaction import Transaction

    class Owner(Protocol):
        """What the setup needs of the volume (volume.Volume)."""
        mountpoint: Path
        registry: Registry
        settings: Settings

        def server_backend(self, server: str) -> Backend: ...

        def transaction(self, *, live: bool | None = None) -> AbstractContextManager[Transaction]: ...


def init(vol: Owner, server: str, id_range: tuple[int, int] | None = None,
         ganesha_mode: str = SHARED, instance: dict[str, int] | None = None) -> RegistryState:
    """Create the volume's registry. Shared mode: a range given must not overlap the range
    of another shared volume mounted on this node, nor hold an id this node's server
    serves now; a random one avoids both (ConflictError, exit 5). Instance mode
    (`ganesha_mode`, servers.MODES): the volume's own server serves nothing else, so a
    range given is taken as it is (a random one still avoids the others', which keeps a
    later move to the shared mode open). `instance`: the instance's Grace_Period and
    Lease_Lifetime the volume sets ({"grace_period": S, "lease_lifetime": S}, each optional).
    ValidationError for a mode the server cannot run, or such times in shared mode."""
    from .neighbours import ranges
    from .servers import check_mode

    check_mode(server, ganesha_mode)
    others = ranges(vol.mountpoint)
    served = served_now(vol, server) if ganesha_mode == SHARED else set()
    if id_range is not None:
        id_range = validate_id_range(*id_range)
        if ganesha_mode == SHARED:
            check_range_free(id_range, others, served_elsewhere(vol, server, served, id_range),
                             f"this node's {server}")
        avoid: Iterable[int] = ()
    else:
        avoid = set(served).union(*(range(lo, hi + 1) for _, (lo, hi) in others))
    return vol.registry.init(server, id_range, vol.settings.registry["id_block"], avoid, ganesha_mode,
                              instance)


def set_range(vol: Owner, id_range: tuple[int, int]) -> tuple[RegistryState, RegistryState]:
    """Move or widen the volume's Export_Id range; returns the registry before and after.

    Refused (ConflictError, exit 5) when an export's Export_Id would fall outside the new
    range (ids never change: that export's clients would get stale handles), or when it
    overlaps as at `init`. Retired ids stay retired, inside the range or not: they cost a
    pair of numbers, and should the range come back over them they must still not be
    handed out. A registry change only: nothing changes on the server.
    """
    from .errors import ConflictError
    from .neighbours import ranges

    lo, hi = validate_id_range(*id_range)
    with vol.transaction(live=False) as tx:
        state = tx.state
        outside = [e for e in state.exports if not lo <= e.export_id <= hi]
        if outside:
            names = ", ".join(f"{vol.registry.abspath(e)} ({e.export_id})" for e in outside[:3])
            raise ConflictError(f"Export_Id range {lo}-{hi} leaves out {len(outside)} export(s) of this "
                                f"volume: {names}; an Export_Id never changes, so the range must hold them")
        ours = {e.export_id for e in state.exports}
        if state.ganesha_mode == SHARED:   # an instance's ids meet no other volume's
            served = served_elsewhere(vol, state.server, served_now(vol, state.server) - ours, id_range,
                                            {vol.registry.abspath(e) for e in state.exports})
            check_range_free(id_range, ranges(vol.mountpoint), served, f"this node's {state.server}")
        tx.state = replace(state, id_range=(lo, hi))
    return tx.base, tx.state


def served_now(vol: Owner, server: str) -> set[int]:
    """The ids `server` serves on this node now; none when it is not up (nothing to avoid
    now; `export add` and the start check again against what it serves then)."""
    try:
        return vol.server_backend(server).served_ids()
    except GaneshaHAError:
        return set()


def served_elsewhere(vol: Owner, server: str, served: set[int], id_range: tuple[int, int],
                     registered: set[Path] | frozenset[Path] = frozenset()) -> set[int]:
    """Of `served` (none of the registry's own ids), the ids within `id_range` that the node's
    server serves for something else: a directory outside this volume, or one the registry
    has under another id (`registered`: its exports' full paths). An id served for another
    directory of the volume is no collision: it is what `import ganesha` takes over on the
    node whose Ganesha config still serves those EXPORT blocks (README, import), and the
    start finds it live for that same path."""
    lo, hi = id_range
    inside = [i for i in served if lo <= i <= hi]
    if not inside:
        return set()
    try:
        paths = vol.server_backend(server).served_paths(inside)
    except GaneshaHAError:
        return set(inside)
    return {i for i in inside if i not in paths or Path(paths[i]) in registered
            or not Path(paths[i]).is_relative_to(vol.mountpoint)}
