"""The classic mode of the agent `ocf:ganesha-ha:exports`: a drop-in for
ocf:heartbeat:exportfs (`directory=`, `clientspec=`, `options=`, `fsid=`; classic.py parses
them), one export per directory, whose identity is stored in the registry of the file system
that holds the directories.

Apart from agent.py so that each stays small enough to read whole: the volume mode and the
action dispatch stay there, and `Agent` inherits these methods. It imports only what agent.py
already has loaded (os, ocf) at the top; everything else stays lazy, as on the agent's path
every few seconds (see the TYPE_CHECKING comment in agent.py).
"""
from __future__ import annotations

import os

from . import ocf

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from .classic import ClassicParams
    from .execute import ExportFailure
    from .clientspec import ClientSpec
    from .model import Export
    from .registry import RegistryState
    from .settings import Settings
    from .volume import Volume


def containing_mount(path: str) -> str:
    """The mount point of the file system that holds `path` (classic mode's volume).

    Walks up the path as given, not its resolved form: a symbolic link inside the volume
    then still belongs to the volume, where the start refuses it as `export add` does."""
    p = os.path.normpath(path)
    while not os.path.ismount(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


class ClassicMode:
    """The classic mode's checks and actions, for `Agent` (agent.py), which provides the
    attributes and the methods shared with the volume mode declared here."""

    volume: Volume
    settings: Settings
    server: str
    params: ClassicParams
    other_mounts: list[str]
    log: ocf.Logger

    if TYPE_CHECKING:
        def validate(self) -> None: ...
        def _check_node(self) -> None: ...
        def _check_no_volume_here(self) -> None: ...
        def _partial_start(self, failed: list[ExportFailure], total: int) -> int: ...
        def _served_answer(self, failed: list[ExportFailure], total: int) -> int: ...
        def _lease_wait(self) -> float: ...
        def _unlock_on_stop(self) -> bool: ...

    def _classic_rels(self) -> list[str]:
        """The directories as paths relative to the file system that holds them."""
        return [self.volume.registry.relpath(d) for d in self.params.directories]

    def _classic_exports(self, state: RegistryState | None) -> list[Export]:
        """The exports the classic parameters describe, one per directory; each keeps the
        identity (fsid, Export_Id, pseudo path) the registry holds for its directory, and a
        new directory gets a generated fsid (unless given) and the next Export_Id."""
        from .model import Export, GaneshaOptions, KnfsdOptions

        out: list[Export] = []
        for rel, directory, fsid in zip(self._classic_rels(), self.params.directories, self.params.fsids):
            existing = state.get(rel) if state is not None else None
            if fsid is None:
                fsid = existing.knfsd.fsid if existing else (state.allocate_fsid() if state else "1")
            if existing:
                export_id = existing.export_id
            elif state is not None:
                export_id = state.allocate_export_id({e.export_id for e in out})
            else:
                export_id = len(out) + 1
            exp = Export(path=rel, export_id=export_id, knfsd=KnfsdOptions(fsid),
                         pseudo=existing.pseudo if existing else directory,
                         clients=_as_registered(self.params.clients, existing),
                         access="RW", squash="root_squash",
                         ganesha=existing.ganesha if existing else GaneshaOptions())
            out.append(exp)
            if state is not None and existing is None:
                state = state.with_export(exp)  # the next new directory allocates past this one
        return out

    def _classic_validate(self) -> None:
        """Classic mode's part of `validate`: one file system; when it is mounted here, each
        directory inside it, there (a missing one is a configuration error once the file
        system holds a registry: it is the volume, mounted), reached without symbolic
        links; the registry's server; no volume-mode resource active on it here."""
        from .errors import NotMountedError, ValidationError

        if self.other_mounts:
            raise ValidationError("directory", "the directories are on different file systems "
                                               f"({', '.join([str(self.volume.mountpoint), *self.other_mounts])}); "
                                               "a classic resource keeps its exports in one file system's registry: "
                                               "use one resource per file system")
        rels = self._classic_rels()
        self._classic_exports(None)   # the identity the parameters give is valid (fsids, clients)
        if os.path.realpath(self.volume.mountpoint) == "/":
            return  # not mounted here: start says so; nothing here to check
        self._check_no_volume_here()
        registered = self.volume.registry.exists()
        for rel, directory in zip(rels, self.params.directories):
            if not os.path.isdir(self.volume.registry.abspath(rel)) and not os.path.islink(directory):
                if registered:
                    raise ValidationError("directory", f"{directory} does not exist in {self.volume.mountpoint}, "
                                                       "which is mounted here")
                continue
            self.volume.require_directory(rel)
        if registered:
            try:
                state = self.volume.load()
            except NotMountedError:
                return
            if self.volume.backend(state).own_server:
                raise ValidationError("directory", f"{self.volume.mountpoint} is served by a Ganesha instance of its "
                                                   "own (ganesha_mode instance): use a volume-mode resource (volume=, "
                                                   "ip=) for it, not classic resources")

    def _classic_state(self) -> RegistryState:
        from .errors import NotInitialisedError

        try:
            return self.volume.load()
        except NotInitialisedError:
            return self.volume.registry.init(self.server, None, self.settings.registry["id_block"])

    def _classic_require_here(self) -> None:
        """Before anything is written: the file system of the directories is mounted here (a
        volume that is not mounted yet leaves its mount point on the root file system) and
        holds every directory."""
        from .errors import NotMountedError

        if os.path.realpath(self.volume.mountpoint) == "/":
            raise NotMountedError(f"{self.params.directories[0]} is on the root file system, not on a shared "
                                  "volume (is its file system mounted on this node?); nothing written")
        for rel, directory in zip(self._classic_rels(), self.params.directories):
            if not os.path.isdir(self.volume.registry.abspath(rel)):
                raise NotMountedError(f"{directory} does not exist or is not a directory "
                                      "(is its file system mounted on this node?)")

    def classic_start(self) -> int:
        """Store the directories' identity on the volume (kept if already there), then restore
        the volume's client-recovery state and export each directory on its own."""
        self.validate()
        self._classic_require_here()
        self._classic_state()                # the registry, made on the first start
        with self.volume.transaction(live=False) as tx:
            exports = self._classic_exports(tx.state)
            for exp in exports:
                if tx.state.get(exp.path) != exp:
                    tx.state = tx.state.with_export(exp)
        if tx.changed:
            self.log.info(f"{ocf.param('directory')}: identity stored on the volume "
                          f"(fsid {', '.join(e.knfsd.fsid for e in exports)})")
        for exp in exports:
            self.volume.node.set_classic(exp.path)
        with self.volume.transaction(live=True) as tx:
            tx.reapply(exports)
            tx.restore = tx.isolate = True
        failed = tx.failed
        if failed and len({f.export.path for f in failed}) == len(exports):
            from .execute import failures_error

            raise failures_error(failed, f"none of the {len(exports)} directories could be exported")
        live = [e for e in exports if e.path not in {f.export.path for f in failed}]
        if live:
            self.log.info(f"exported {', '.join(str(self.volume.registry.abspath(e)) for e in live)} to "
                          f"{ocf.param('clientspec')} (fsid {', '.join(e.knfsd.fsid for e in live)})")
        for warning in tx.warnings:
            self.log.warning(warning)
        return self._partial_start(failed, len(exports))

    def classic_stop(self) -> int:
        from .errors import ApplyError, GaneshaHAError

        try:
            state = self.volume.registry.load()
        except GaneshaHAError:
            state = None
        if state is None:
            from .registry import RegistryState

            state = RegistryState(volume_uuid="unknown", server=self.server, id_range=(1, 65535))
        try:  # what the start stored is what is live: only the directories matter here
            exports = [state.get(rel) or _placeholder(rel) for rel in self._classic_rels()]
        except GaneshaHAError as exc:  # a failed stop gets the node fenced: never for a typo
            self.log.info(f"nothing to withdraw: no export can have been started with these parameters ({exc})")
            return ocf.OCF_SUCCESS
        backend = self.volume.backend(state)
        ctx = self.volume.ctx(state)
        mounted = os.path.realpath(self.volume.mountpoint) != "/"
        if backend.is_running():
            if state.volume_uuid != "unknown":
                try:
                    self.volume.save_recovery(backend, ctx)
                except GaneshaHAError as exc:
                    self.log.warning(f"could not save client list before stop: {exc}")
            from .execute import run_steps, summary
            from .plan import WITHDRAW, Step

            failed = run_steps(backend, ctx, [Step(WITHDRAW, e) for e in exports], isolate=True)
            if failed:
                raise ApplyError(f"{len(failed)} of {len(exports)} directories could not be unexported "
                                 f"(the others were): {summary(failed)}")
        unlock = self._unlock_on_stop()
        notes = backend.after_stop(ctx, unlock_fs=mounted and unlock, unlock_ip=unlock, lease_wait=self._lease_wait())
        for exp in exports:
            self.volume.node.clear_classic(exp.path)
        if not self.volume.node.classic_paths():  # the last classic resource of this file system here
            self.volume.node.clear_restored()
        self.log.info(f"unexported {ocf.param('directory')}" + "".join(f"; {note}" for note in notes))
        return ocf.OCF_SUCCESS

    def classic_monitor(self) -> int:
        from .errors import GaneshaHAError, ValidationError

        try:
            state = self.volume.load()
        except ValidationError:
            raise                        # the volume is for another server
        except GaneshaHAError:
            return ocf.OCF_NOT_RUNNING   # no identity stored (or not mounted): never started here
        self._check_no_volume_here()
        exports = self._classic_exports(state)
        backend = self.volume.backend(state)
        if not backend.is_running():
            return ocf.OCF_NOT_RUNNING
        ctx = self.volume.ctx(state)
        drift = backend.drift(ctx, exports)
        not_live = drift.missing + drift.changed
        for reason in drift.reasons:
            self.log.warning(f"not exported as configured: {reason}")
        for warning in drift.warnings:
            self.log.warning(warning)
        if len(not_live) == len(exports):
            return ocf.OCF_NOT_RUNNING
        try:
            self.volume.save_recovery(backend, ctx)
        except GaneshaHAError as exc:
            self.log.warning(f"could not save client list: {exc}")
        if not_live:  # some directories of this resource are exported, others not
            from .errors import ApplyError
            from .execute import ExportFailure

            why = ApplyError("not exported as configured")
            return self._served_answer([ExportFailure(e, "apply", why, backend.name) for e in not_live], len(exports))
        return ocf.OCF_SUCCESS


def _as_registered(clients: tuple[ClientSpec, ...], existing: Export | None) -> tuple[ClientSpec, ...]:
    """The classic `options` without rw/ro are read-only (exportfs's default, and ganesha-ha's
    from registry schema 4 on), but a resource started before then was exported read-write
    with them, and the 3 -> 4 migration wrote that out as `rw`: the same parameters keep
    granting what they granted, as long as they stay the same."""
    if existing is None or any(o in ("rw", "ro") for c in clients for o in c.options):
        return clients
    from .clientspec import ClientSpec

    legacy = tuple(ClientSpec(c.host, ("rw", *c.options)) for c in clients)
    return legacy if legacy == existing.clients else clients


def _placeholder(rel: str) -> Export:
    """An export of the directory `rel` for a stop that finds no identity for it (the registry
    is unreadable): withdrawing goes by directory (knfsd) or by an id live for that very
    directory (Ganesha), so the other fields are never used."""
    from .model import Export, KnfsdOptions

    return Export(path=rel, export_id=1, knfsd=KnfsdOptions("1"), pseudo="/" + (rel or "classic"),
                  clients=("*",))
