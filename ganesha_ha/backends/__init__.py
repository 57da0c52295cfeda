"""Backends: one per NFS server, behind one small interface.

A backend turns the registry's exports (the desired state) into the server's live state
and reads that live state back. Everything server-specific (exportfs and etab for knfsd,
D-Bus and EXPORT blocks for Ganesha, and each server's client-recovery state) lives in
its module; the volume layer above only calls this interface.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..model import Export
from ..record import Factory, Record

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Protocol

    from ..recovery import RecoveryStore
else:
    Protocol = object  # the interface below is for type checkers and readers only


class VolumeContext(Record, frozen=True):
    """What a backend needs to know about the volume it works on."""

    mountpoint: Path
    state_dir: Path
    volume_uuid: str
    ip: str | None = None  # the floating IP clients use (recovery keys, grace take-over)


class Drift(Record):
    """How the live server differs from the registry, per export path."""

    missing: list[Export] = Factory(list)   # in the registry, not live
    changed: list[Export] = Factory(list)   # live, but not as the registry says
    foreign: list[str] = Factory(list)      # live under our ids/paths but not ours
    stray: list[int] = Factory(list)        # live for a path in the volume, not in the registry

    @property
    def clean(self) -> bool:
        return not (self.missing or self.changed or self.foreign or self.stray)


class Backend(Protocol):
    name: str

    def check_installed(self) -> None:
        """Raise NotInstalledError when a program this server needs is missing here."""

    def is_running(self) -> bool:
        """True when the server is up and controllable on this node right now."""

    def require_running(self) -> None:
        """Raise ServerUnavailableError (with the reason) unless is_running()."""

    def live_paths(self, ctx: VolumeContext, exports: Sequence[Export]) -> dict[str, bool]:
        """For each export's path: is it live on the server now?"""

    def drift(self, ctx: VolumeContext, exports: Sequence[Export]) -> Drift:
        """One pass comparing the registry's exports with the server's live state."""

    def apply(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        """Make each export live exactly as given (add, or update in place)."""

    def withdraw(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        """Take each export away from the server; exports that are not live are fine."""

    def withdraw_stray(self, ctx: VolumeContext, exports: Sequence[Export]) -> int:
        """Take away what the server serves from inside the volume that the registry does not
        list (an add the server applied after the CLI had timed out and rolled back, a remove
        that failed half-way); returns how many. Nothing else may serve a managed volume."""

    def check_collisions(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        """Raise IdCollisionError if the server serves one of these ids for something else."""

    def recovery_stores(self, ctx: VolumeContext) -> list[RecoveryStore]:
        """The client-recovery state this server keeps for the volume (recovery/)."""

    def after_restore(self, ctx: VolumeContext, records: int) -> str | None:
        """Called at start once the stores are restored (`records` clients in all) and the
        exports are live: Ganesha starts the take-over grace; returns what to report."""


def get_backend(server: str, settings) -> Backend:
    """The backend for `server` ('ganesha' or 'knfsd'); imports only that one."""
    if server == "ganesha":
        from .ganesha import GaneshaBackend

        return GaneshaBackend(settings)
    if server == "knfsd":
        from .knfsd import KnfsdBackend

        return KnfsdBackend(settings)
    from ..errors import ValidationError

    raise ValidationError("server", f"must be 'ganesha' or 'knfsd', got {server!r}")
