"""One change of a volume in progress: the draft registry and what the change asks of the
server (`Volume.transaction` makes one; volume.py carries it out, export_edits.py fills it)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from .backends import Backend
from .context import VolumeContext
from .execute import ExportFailure
from .model import Export
from .registry import RegistryState


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
    others go live (a start, a repair); a body that also changes the registry is still all
    or nothing.
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
