"""Client-recovery stores: state a server keeps about its clients, carried with the volume.

A client that held state on the node that failed must find it again on the node that takes
over, or it cannot reclaim (NFSv4 opens and locks, NLM locks) and knfsd's mountd does not
know it mounted. Each kind of state is one store with the same three operations against the
volume's state directory (`<mount point>/.ganesha-ha/`):

- `save(ctx)`: copy this node's view of the volume's clients onto the volume (continuously,
  from the monitor: a node that dies never stops cleanly); write only on change.
- `restore(ctx)`: put the volume's copy where this node's server reads it, at start.
- `clear(ctx)`: remove the volume's clients from this node, after the last save at stop.

A node never saves before it has restored (volume.py keeps that rule with the node-local
"restored" mark): a save replaces the volume's copy with this node's view, which on a node
that just took over is empty.

Stores: rmtab.py (knfsd's mounted clients), ganesha_records.py (Ganesha's NFSv4 client
records). A backend lists the stores its server needs (`Backend.recovery_stores`); a store
used by several servers (statd/NSM records, for NLM with both) is one more module here.
"""
from __future__ import annotations

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Protocol

    from ..context import VolumeContext
else:
    Protocol = object  # the interface below is for type checkers and readers only


class RecoveryStore(Protocol):
    name: str  # short and stable, for messages ("rmtab", "NFSv4 records")

    def save(self, ctx: VolumeContext) -> bool:
        """Copy this node's state of the volume's clients onto the volume; True if it changed.
        Raises RegistryError when the volume cannot be written (full, read-only)."""
        ...

    def restore(self, ctx: VolumeContext) -> int:
        """Put the volume's copy where this node's server reads it; returns the number of
        clients it holds (0: nothing saved). Raises RegistryError for a corrupt copy."""
        ...

    def clear(self, ctx: VolumeContext) -> None:
        """Remove the volume's clients from this node's server state (after a stop)."""
        ...
