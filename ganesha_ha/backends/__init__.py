"""Backends: one per NFS server, behind one interface (this module: the interface only).

A backend turns the registry's exports (the desired state) into the server's live state
and reads that live state back. Everything server-specific (exportfs and etab for knfsd,
D-Bus and EXPORT blocks for Ganesha, which client-recovery stores a server needs) lives in
its module; volume.py, the agent and the CLI only use the `Backend` interface and the
table of servers (servers.py), and never name a server.

Adding a server is one module implementing `Backend` and one row in servers.py's table:
the registry's server names, the CLI's `--server` choices, the agent's `server=` check and
meta-data text, and its check of installed programs all come from the table. `load.py`'s
`get_backend` imports the one backend module that is asked for (the resource agent is a new
process for every call, and each backend module costs milliseconds).
"""
from __future__ import annotations

from ..record import Factory, Record

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from contextlib import AbstractContextManager
    from pathlib import Path
    from typing import Protocol

    from ..context import VolumeContext
    from ..model import Export
    from ..recovery import RecoveryStore
else:
    Protocol = object  # the interface below is for type checkers and readers only


class Drift(Record):
    """How the live server differs from the registry, per export path."""

    missing: list[Export] = Factory(list)   # in the registry, not live
    changed: list[Export] = Factory(list)   # live, but not as the registry says
    foreign: list[str] = Factory(list)      # live under our ids/paths but not ours
    elsewhere: list[Export] = Factory(list) # not live: their Export_Id is served for another path (in foreign)
    stray: list[int] = Factory(list)        # live for a path in the volume, not in the registry
    reasons: list[str] = Factory(list)      # why each changed export differs (field, live, registry)
    warnings: list[str] = Factory(list)     # not drift, but worth a word (a client name unresolved here)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.changed or self.foreign or self.stray)


class Backend(Protocol):
    """What the volume layer needs of an NFS server.

    Errors: NotInstalledError (a program missing on this node), ServerUnavailableError (the
    server or its control channel does not answer now), ApplyError (the server refused a
    change), IdCollisionError (an identity of ours is served for something else),
    ValidationError (the server cannot represent an export). Exports are given with paths
    relative to `ctx.mountpoint`; `ctx.state_dir` exists.
    """

    name: str
    # True for a server of the volume's own (a per-volume Ganesha instance: servers.py's
    # `instance` row), started by `launch` and ended by `stop_server`; False for the node's
    # one server, shared by every volume here (then the other volumes' Export_Ids and pseudo
    # paths must be kept apart, and `launch`/`stop_server` are never called)
    own_server: bool

    # ---- this node ------------------------------------------------------------------
    def check_installed(self) -> None:
        """Raise NotInstalledError when a program this server needs is missing here (the
        program the settings name, not whichever is on PATH)."""
        ...

    def check_node(self) -> list[str]:
        """Raise ValidationError when this node's server is set up so that a take-over cannot
        work, or so that it differs from another node's in a way clients notice (Ganesha:
        recovery backend, NFSv4 server scope); return warnings for what cannot be known."""
        ...

    def reach(self) -> str | None:
        """How this backend reaches its server (Ganesha: the bus address), kept in the volume's
        node-local active record at start; None when there is nothing to keep."""
        ...

    def fall_back(self, recorded: str) -> str | None:
        """When the server cannot be reached as configured now while it was reached as
        `recorded` (a `reach()` of the volume's start): reach it that way from now on and
        return a note saying so; else None. A stop withdraws through it what the start made
        live (the resource's bus_address changed since, e.g. a typo given by reload-agent)."""
        ...

    def node_config_warnings(self, mountpoint: str, exports: Sequence[Export]) -> list[str]:
        """Warnings for the node's own server config serving the volume mounted at `mountpoint`
        outside ganesha-ha (Ganesha: EXPORT blocks of ganesha.conf; knfsd: exports(5) lines),
        which the server serves again when it (re)reads them, also on a node where the volume
        is not active (backends/node_exports.py); `exports`: the volume's registered exports
        (their ids), empty when the registry cannot be read here. [] when nothing is found.
        Reads files only: validate-all runs it where the volume is not mounted."""
        ...

    def is_running(self) -> bool:
        """True when the server is up and controllable on this node right now."""
        ...

    def require_running(self) -> None:
        """Raise ServerUnavailableError (with the reason) unless is_running()."""
        ...

    def check_export(self, exp: Export, mountpoint: Path) -> None:
        """Raise ValidationError for what this server cannot represent or would read otherwise
        (before it is recorded: a volume's registry never holds an export its server would
        refuse to parse), with the reason and the nearest spelling the server reads as meant."""
        ...

    def check_installed_for(self, exp: Export) -> None:
        """Raise ModuleMissingError (a NotInstalledError) when this node lacks what `exp` needs
        beyond the server's programs (Ganesha: the module of each FSAL in its stack). Node-local:
        another node may have it, so the volume can move there (placement.py decides)."""
        ...

    def needs(self, exp: Export) -> frozenset[str]:
        """What `exp` needs of a node beyond the server's programs, by name (Ganesha: the FSAL
        modules of its stack; knfsd: nothing). What `check_installed_for` finds missing is one
        of these (ModuleMissingError.module)."""
        ...

    def other_nodes_have(self) -> dict[str, frozenset[str] | None] | None:
        """What every other node published that it can offer of `needs` (node -> names, None
        for a value that cannot be read; placement.py decides with it); None when no cluster
        answers. Asked only when something an export needs is missing here."""
        ...

    def may_run(self, nodes: Sequence[str]) -> list[str]:
        """Those of `nodes` where the cluster may start this volume now (Pacemaker: online,
        not in standby, maintenance or shutting down, no ban or constraint against it there);
        [] when the cluster cannot be asked; `nodes` unchanged outside a resource agent call.
        Asked only when another node has what an export misses here."""
        ...

    def handle_risks(self, exports: Sequence[Export]) -> list[str]:
        """Why these exports' file handles would differ on another node because of how this
        node's server is set up (Ganesha: fsid_device = true); [] when nothing is known."""
        ...

    # ---- live state -------------------------------------------------------------------
    def action(self) -> AbstractContextManager[None]:
        """A block that is one action on the volume (a transaction, a stop, a monitor): what
        the server lists may be read once in it and reused, kept up to date with this
        backend's own changes (Ganesha: one ShowExports per action). Blocks may nest."""
        ...

    def served_ids(self) -> set[int]:
        """The Export_Ids the server serves now, for every volume (an allocation must avoid
        them); empty for a server without Export_Ids. ServerUnavailableError when down."""
        ...

    def served_paths(self, ids: Iterable[int]) -> dict[int, str]:
        """Export_Id → the full directory the server serves under it now, for those of `ids`
        that are live (`volume init`/`set-range` let an id served for a directory of the
        volume itself be: it is what an import takes over). ServerUnavailableError when down."""
        ...

    def live_paths(self, ctx: VolumeContext, exports: Sequence[Export]) -> dict[str, bool]:
        """For each export's path: is it live on the server now?"""
        ...

    def drift(self, ctx: VolumeContext, exports: Sequence[Export]) -> Drift:
        """One pass comparing the registry's exports with what the server grants now (paths,
        clients, access, squash: not only presence), with the reasons for each change."""
        ...

    def check_collisions(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        """Raise IdCollisionError if the server serves one of these ids for something else."""
        ...

    # ---- changes ----------------------------------------------------------------------
    def apply(self, ctx: VolumeContext, exports: Sequence[Export]) -> list[str]:
        """Make each export live exactly as given (add, or update in place), then read it back
        from the server: ApplyError when the server holds it otherwise (naming the export, the
        field and both values). Returns warnings that fail nothing (a client host name that does
        not resolve on this node)."""
        ...

    def withdraw(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        """Take each export away from the server; exports that are not live are fine."""
        ...

    def withdraw_stray(self, ctx: VolumeContext, exports: Sequence[Export]) -> int:
        """Take away what the server serves from inside the volume that the registry does not
        list (an add the server applied after the CLI had timed out and rolled back, a remove
        that failed half-way); returns how many. Nothing else may serve a managed volume."""
        ...

    # ---- a server of the volume's own (own_server) ----------------------------------------
    def launch(self, ctx: VolumeContext, exports: Sequence[Export]) -> list[str]:
        """Start the volume's own server serving `exports` (those this node can serve), or
        leave it when it already runs; returns notes for the log. Its errors say what on this
        node is in the way (InstanceConflictError, NotInstalledError, ValidationError for
        the floating IP, RegistryError for the volume's state, ServerUnavailableError)."""
        ...

    def stop_server(self, ctx: VolumeContext) -> int:
        """End the volume's own server (its exports with it); returns how many it served.
        ServerUnavailableError when it does not go away."""
        ...

    # ---- client recovery ----------------------------------------------------------------
    def recovery_stores(self, ctx: VolumeContext) -> list[RecoveryStore]:
        """The client-recovery state this server keeps for the volume (recovery/)."""
        ...

    def after_restore(self, ctx: VolumeContext, records: int) -> str | None:
        """Called at start once the stores are restored (`records` clients in all) and the
        exports are live: Ganesha starts the take-over grace. Returns what to report."""
        ...

    def after_stop(self, ctx: VolumeContext, unlock_fs: bool, unlock_ip: bool, lease_wait: float) -> list[str]:
        """Called at stop once every export of the volume is withdrawn: release what the
        server still holds for it so the file system can be unmounted and its clients move
        (knfsd: NLM locks on the volume's file system with `unlock_fs`, those taken through
        `ctx.ip` with `unlock_ip`; with `lease_wait` > 0, wait out the NFSv4 lease time, at
        most that many seconds). Never raises for what the kernel does not offer; returns
        what was done, for the log."""
        ...
