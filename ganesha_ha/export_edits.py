"""Export changes of a volume: `export add`, `update`, `remove` and `export apply`'s converge,
with the checks each makes before the transaction writes anything (directories inside the
volume, junctions in the pseudo tree, FSAL handle-identity risks and modules).

A mixin of `volume.Volume`, apart from it so that the volume's lifecycle (start, stop, monitor:
the resource agent's path) and the edits an administrator makes read as two modules; every
edit still goes through `Volume.transaction`.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import ValidationError
from .fsal import Fsal
from .clientspec import parse_clients
from .model import Export, GaneshaOptions, KnfsdOptions, normalize_fsal_path, normalize_fsid
from .record import Factory, Record
from .registry import RegistryState
from .servers import backend_info

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from typing import Any

    from .backends import Backend
    from .backends.grants import Resolve
    from .converge import Outcome
    from .description import Description
    from .execute import ExportFailure
    from .registry import Registry
    from .transaction import Transaction


class ChangeResult(Record):
    export: Export
    live: bool          # the change reached the live server
    note: str = ""      # e.g. "recorded; applied at the next start"
    warnings: list[str] = Factory(list)   # what the caller must say out loud (printed, logged)
    server: str = ""    # the volume's server (which of the export's identities it uses)


class ConvergeResult(Record):
    outcome: Outcome     # converge.py: the changes, what stayed, the conflicts
    changed: bool        # the registry was written
    live: bool           # ... and the change carried out on the server
    warnings: list[str] = Factory(list)      # e.g. handles that would go stale on another node
    failed: list[ExportFailure] = Factory(list)   # `skip_conflicts`, live: what the server refused


class ExportEdits:
    """The export changes of `volume.Volume` (which provides what is declared here)."""

    if TYPE_CHECKING:
        mountpoint: Path
        registry: Registry

        def transaction(self, *, live: bool | None = None, note: str = "nothing was changed"
                        ) -> AbstractContextManager[Transaction]: ...

    def key(self, text: str, state: RegistryState | None = None) -> str | int:
        """DIRECTORY|PATH|EXPORT_ID from the command line → registry lookup key: an Export_Id,
        a directory of the volume, or the path of an export in its FSAL's own namespace (an
        absolute path outside the volume, or one that no local export has, also written as
        `export list` shows it, `MEM:/scratch`)."""
        text = str(text)
        if text.isdigit():
            return int(text)
        fsal_name, colon, rest = text.partition(":")
        if colon and rest.startswith("/"):   # `MEM:/scratch`, as `export list` shows a remote export
            from .fsal_schema import SCHEMAS

            if fsal_name.upper() in SCHEMAS and (state is None or state.get(self.registry.relpath(text)) is None):
                return normalize_fsal_path(rest)
        if text.startswith("/"):
            mp = str(self.mountpoint).rstrip("/")
            inside = text == mp or text.startswith(mp + "/")
            if not inside:
                return normalize_fsal_path(text)
            if state is not None and state.get(self.registry.relpath(text)) is None:
                remote = normalize_fsal_path(text)
                if state.get(remote) is not None:
                    return remote
        return self.registry.relpath(text)

    def require_junctions(self, state: RegistryState, exp: Export) -> None:
        """On a server with a pseudo tree (Ganesha), an export below another in the pseudo
        tree is reached through the directory of that name inside the parent export: Ganesha
        LOOKUPs it and creates directories only in its own PSEUDO FSAL ("can't create
        directory on non-PSEUDO FSAL", src/Protocols/NFS/nfs4_pseudo.c: make_pseudofs_node;
        measured on 4.3: the AddExport fails with "1 validation errors in block EXPORT"). So, for `exp` and the
        exports it becomes the parent of, that directory must exist in a parent backed by a
        local file system (VFS, XFS, or an FSAL stacked on one): ValidationError (exit 2)
        before anything is written, instead of the server's refusal after."""
        from .plan import pseudo_parent, pseudo_under

        if not backend_info(state.server).pseudo_tree:
            return
        others = [e for e in state.exports if e.path != exp.path]
        pairs = [(parent, exp) for parent in [pseudo_parent(exp.pseudo, others)] if parent is not None]
        # the parent of each export below `exp` only (each one's parent costs a pass over all)
        pairs += [(exp, child) for child in others
                  if pseudo_under(child.pseudo, exp.pseudo) and pseudo_parent(child.pseudo, state.exports) == exp]
        for parent, child in pairs:
            if not _local_fsal(parent.ganesha.fsal):
                continue
            junction = self.registry.abspath(parent) / child.pseudo[len(parent.pseudo) + 1:]
            if not junction.is_dir():
                raise ValidationError("pseudo", f"{child.pseudo} lies below the export {parent.pseudo}, and Ganesha "
                                                f"reaches it through {junction}, which is not a directory; create "
                                                f"it, or give a pseudo path outside {parent.pseudo}")

    def path_for(self, directory: str, fsal: Fsal) -> str:
        """An export's stored path from the command line: a directory of the volume for a
        local FSAL, the absolute path in the FSAL's own namespace for a remote one."""
        if fsal.remote:
            return normalize_fsal_path(str(directory))
        return self.registry.relpath(directory)

    def _fsal_warnings(self, backend: Backend, exp: Export, force: bool) -> list[str]:
        """Handle-identity risks of `exp` (its fsid_type, this node's Ganesha): refused unless
        `force`, then returned to be printed loudly."""
        from .fsal import handle_identity_risks

        risks = handle_identity_risks(exp.ganesha.fsal) + backend.handle_risks([exp])
        if risks and not force:
            raise ValidationError("fsal", "; ".join(risks) + " (--force exports it anyway)")
        return [f"handles of {exp.pseudo} may go stale after a failover: {r}" for r in risks]

    def _install_warnings(self, tx: Transaction, exp: Export) -> list[str]:
        """An FSAL module missing on this node: refused when the change goes live here (the
        transaction's check), a warning when it is only recorded."""
        if tx.live:
            return []
        from .errors import NotInstalledError

        try:
            tx.backend.check_installed_for(exp)
        except NotInstalledError as exc:
            # What the agent's start does with it (placement.py): the volume moves to a node that
            # has every FSAL it needs, or else is served here without this export.
            return [f"{exp.pseudo} (Export_Id {exp.export_id}): {exc}; a start of the volume on this "
                    "node leaves this export out, or moves the volume to a node that has every FSAL it needs"]
        return []

    def _neighbour_warnings(self, tx: Transaction, exports: Sequence[Export]) -> list[str]:
        """A change only recorded (the volume not active here, or --record-only): what a start
        of the volume on this node would meet, as it stands now. An export whose pseudo path
        meets one this node's server serves for another volume (Ganesha), or whose Export_Id
        or knfsd fsid it serves for something else, is left out by that start, named (the
        others are served): said now, while the administrator can still choose another.
        Nothing when the change goes live (the transaction refuses those) or the server
        cannot be asked here (it serves nothing now)."""
        from .errors import GaneshaHAError

        if tx.live or not exports:
            return []
        try:
            from .transaction import collisions

            hits = collisions(self, tx.backend, tx.ctx, exports, backend_info(tx.state.server).pseudo_tree, True)
        except GaneshaHAError:
            return []
        return [f"{f}: a start of {self.mountpoint} on this node would leave this export out "
                "(its other exports are served)" for f in hits]

    def require_directory(self, rel: str) -> None:
        """The directory `rel` of the volume exists and is reached without leaving the volume."""
        require_directory(self.registry.abspath(rel), self.mountpoint)

    # ---- export changes -------------------------------------------------------------------
    def add(self, directory: str, clients: Sequence[str], *, pseudo: str | None = None,
            export_id: int | None = None, fsid: str | None = None, access: str = "RW",
            squash: str = "root_squash", fsal: Fsal | str = "VFS", record_only: bool = False,
            force: bool = False) -> ChangeResult:
        """Export `directory` of the volume (for an FSAL with its own namespace, `fsal.remote`:
        the absolute path there) to `clients`. An Export_Id given must lie in the volume's range;
        one, or a numeric fsid, that a removed export had is refused unless `force`; `force`
        also exports it with handles that would go stale on another node (returned as warnings)."""
        fsal = fsal if isinstance(fsal, Fsal) else Fsal(fsal)
        rel = self.path_for(directory, fsal)
        with self.transaction(live=False if record_only else None) as tx:
            existing = tx.state.get(rel)
            if existing is not None:
                from .errors import ConflictError

                where = rel if fsal.remote else self.registry.abspath(rel)
                raise ConflictError(f"{where} is already exported (Export_Id "
                                    f"{existing.export_id}); use 'export update'")
            if not fsal.remote:
                self.require_directory(rel)
            elif pseudo is None and rel == "/":
                raise ValidationError("pseudo", f"give --pseudo: the path / of an FSAL {fsal.base.name} export "
                                                "cannot be its NFSv4 pseudo path")
            tx.state.check_new_identity(export_id, fsid, force)
            exp = Export(
                path=rel,
                export_id=export_id if export_id is not None else tx.state.allocate_export_id(tx.served_ids()),
                pseudo=pseudo if pseudo is not None else (rel if fsal.remote else str(self.registry.abspath(rel))),
                clients=parse_clients(clients), access=access, squash=squash,
                knfsd=KnfsdOptions(fsid if fsid is not None else tx.state.allocate_fsid()),
                ganesha=GaneshaOptions(fsal),
            )
            warnings = (_unused_identity_warnings(tx.state.server, exp, export_id, fsid, self.registry.abspath(exp))
                        + self._fsal_warnings(tx.backend, exp, force) + self._install_warnings(tx, exp))
            tx.state = tx.state.with_export(exp)
            self.require_junctions(tx.state, exp)
            warnings += self._neighbour_warnings(tx, [exp])
        return self._result(tx, exp, record_only, warnings)

    def update(self, key: str, *, clients: Sequence[str] | None = None, pseudo: str | None = None,
               export_id: int | None = None, fsid: str | None = None, access: str | None = None,
               squash: str | None = None, fsal: Fsal | str | None = None, record_only: bool = False,
               force: bool = False, add_clients: Sequence[str] = (),
               remove_clients: Sequence[str] = ()) -> ChangeResult:
        """Change an export. Its identity (Export_Id, fsid) is what every client's file
        handles carry: changing it is refused unless `force` (ValidationError, exit 2), and
        then the old one is retired; the new one follows the rules of `add`. A new `fsal`
        replaces the whole FSAL record (options not given take their defaults). A change Ganesha
        cannot make in place (plan.readd_reason; for an FSAL: any option but MEM's Async_*)
        withdraws the export and adds it again: its clients see a short outage, and for an FSAL
        change the result says so.

        `clients` replaces the whole client list; `add_clients`/`remove_clients` edit the list
        as it is under the lock instead (edited_clients), so that two administrators adding
        a client each lose neither."""
        with self.transaction(live=False if record_only else None,
                              note="the export was left as it was") as tx:
            old = tx.state.find(self.key(key, tx.state))
            if export_id == old.export_id:
                export_id = None
            if fsid is not None and normalize_fsid(fsid) == old.knfsd.fsid:
                fsid = None
            from .converge import check_identity_change, edited_clients  # a change's module, not a monitor's
            from .servers import unused_identity

            notes = check_identity_change(old, export_id, fsid and normalize_fsid(fsid), force,
                                          str(self.registry.abspath(old)), tx.state.server)
            tx.state.check_new_identity(export_id, fsid, force)
            forced = [f"the {label} of {self.registry.abspath(old)} changed from {was} to {value} (--force): "
                      "clients that have it mounted get stale file handles (ESTALE) until they mount it again"
                      for label, value, was in (("Export_Id", export_id, old.export_id),
                                                ("fsid", fsid and normalize_fsid(fsid), old.knfsd.fsid))
                      if value is not None and unused_identity(tx.state.server, label) is None] + notes
            changes: dict[str, Any] = {}
            if clients is not None:
                changes["clients"] = parse_clients(clients)
            elif add_clients or remove_clients:
                changes["clients"] = edited_clients(old.clients, add_clients, remove_clients)
            for name, value in (("pseudo", pseudo), ("export_id", export_id), ("access", access),
                                ("squash", squash)):
                if value is not None:
                    changes[name] = value
            if fsid is not None:
                changes.update(knfsd=KnfsdOptions(fsid))
            if fsal is not None:
                new_fsal = fsal if isinstance(fsal, Fsal) else Fsal(fsal)
                if new_fsal.remote != old.remote:
                    raise ValidationError("fsal", f"FSAL {new_fsal.base.name} keeps its data "
                                                  f"{'in its own namespace' if new_fsal.remote else 'on the volume'}, "
                                                  f"FSAL {old.ganesha.fsal.base.name} "
                                                  f"{'in its own namespace' if old.remote else 'on the volume'}: "
                                                  "the path would change meaning; remove the export and add it again")
                changes.update(ganesha=GaneshaOptions(new_fsal))
            new = old.with_changes(**changes)
            warnings = list(forced)
            if new.ganesha != old.ganesha:
                warnings += self._fsal_warnings(tx.backend, new, force) + self._install_warnings(tx, new)
                warnings += _module_change_warnings(old.ganesha.fsal, new.ganesha.fsal)
            tx.state = tx.state.with_export(new)
            if new.pseudo != old.pseudo or new.ganesha != old.ganesha:
                self.require_junctions(tx.state, new)
            warnings += self._neighbour_warnings(tx, [new])
        result = self._result(tx, new, record_only, warnings)
        # an FSAL change Ganesha cannot make in place: say that the export went away for a moment
        reason = (None if old.ganesha.fsal.in_place_change(new.ganesha.fsal)
                  else "Ganesha cannot change this FSAL setting in place")
        serves_fsals = backend_info(tx.state.server).fsals
        if result.live and reason and serves_fsals:
            kept = ("MEM's files went with the old export" if new.ganesha.fsal.base.name == "MEM"
                    else "their handles stay valid")
            result.note = "; ".join(filter(None, [f"{reason}: withdrawn and added again, so its clients saw a "
                                                  f"short outage ({kept})", result.note]))
        elif reason and serves_fsals:
            result.note += f"; {reason}: it will be withdrawn and added again"
        return result

    def converge(self, descriptions: Sequence[Description], *, remove_missing: bool, update_existing: bool = True,
                 force: bool = False, check: bool = False, skip_conflicts: bool = False,
                 record_only: bool = False, progress: Callable[[str, int, int], None] | None = None) -> ConvergeResult:
        """Bring the volume's exports to `descriptions` in one transaction (`export apply`,
        `import`): converge.py works out every add, update and remove against the registry
        under the lock, and every conflict. With a conflict nothing is changed unless
        `skip_conflicts` (then the others are); `check` changes nothing at all. Otherwise the
        result is saved and, when the volume is active here, carried out live like any
        change: rolled back as a whole if the server refuses one export, unless
        `skip_conflicts` and the change only adds (an import): then each new export goes
        live on its own, as in a start, and one the server refuses is left out of the
        registry (transaction.left_out says why) and listed in `failed`.
        `progress(phase, done, total)` for the phases "checking" and "applying"."""
        from .converge import converge

        note = "nothing was changed"
        # a dry run of what an --apply would carry out live here: say what the server will refuse
        foresee = check and not record_only and self.is_active()
        with self.transaction(live=False if (check or record_only) else None, note=note) as tx:
            backend = tx.backend
            warnings: list[str] = []
            resolve = _dry_resolver() if foresee else None

            def check_new(exp: Export, state: RegistryState) -> None:
                """What `export add` checks of a new or changed export (an FSAL unchanged
                since it was checked is not checked again)."""
                if not exp.remote:
                    self.require_directory(exp.path)
                backend.check_export(exp, self.mountpoint)
                old = tx.base.get(exp.path)
                if old is None or old.ganesha != exp.ganesha:
                    warnings.extend(self._fsal_warnings(backend, exp, force)
                                    + (self._install_warnings(tx, exp) if resolve is None else []))
                if old is not None and old.ganesha != exp.ganesha:
                    warnings.extend(_module_change_warnings(old.ganesha.fsal, exp.ganesha.fsal))
                self.require_junctions(state, exp)
                if resolve is not None:
                    warnings.extend(_live_refusal_risks(backend, exp, resolve))

            def default_pseudo(path: str) -> str:   # as `export add`: the directory's path (the FSAL's path)
                return path if path.startswith("/") else str(self.registry.abspath(path))

            outcome = converge(tx.state, descriptions, default_pseudo=default_pseudo, check=check_new,
                               remove_missing=remove_missing, update_existing=update_existing, force=force,
                               served_ids=tx.served_ids(),
                               progress=(lambda done, total: progress("checking", done, total)) if progress else None)
            go = not check and (skip_conflicts or not outcome.conflicts)
            if go:
                tx.state = outcome.state
                tx.isolate = skip_conflicts   # taken as a whole only by a change that only adds
                new = [e for e in tx.state.exports if tx.base.get(e.path) != e]
                warnings.extend(self._neighbour_warnings(tx, new))
                if progress is not None:
                    tx.progress = lambda done, total: progress("applying", done, total)
        changed = go and set(tx.state.exports) != set(tx.base.exports)
        if tx.failed:
            warnings += _live_refusals(outcome, tx.state, tx.failed)
        return ConvergeResult(outcome=outcome, changed=changed, live=changed and tx.live,
                              warnings=warnings + tx.warnings, failed=tx.failed)

    def remove(self, key: str, *, record_only: bool = False) -> ChangeResult:
        with self.transaction(live=False if record_only else None,
                              note="the export is still in the registry") as tx:
            exp = tx.state.find(self.key(key, tx.state))
            tx.state = tx.state.without(exp)
        return self._result(tx, exp, record_only)

    def _result(self, tx: Transaction, exp: Export, record_only: bool,
                warnings: list[str] | None = None) -> ChangeResult:
        warnings = warnings or []
        if tx.live:
            below = [str(self.registry.abspath(p)) for p in tx.remounted if p != exp.path]
            return ChangeResult(exp, True, f"{len(below)} export(s) below it in the pseudo tree withdrawn and "
                                           f"applied again, same identity ({', '.join(below)})" if below else "",
                                warnings + tx.warnings, tx.state.server)
        if record_only:
            return ChangeResult(exp, False, "recorded only (--record-only); applied at the next start or monitor",
                                warnings, tx.state.server)
        return ChangeResult(exp, False, "recorded; the volume is not active on this node, applied at its next start",
                            warnings, tx.state.server)


def _dry_resolver() -> Resolve:
    """Host name lookups for a dry run's forecast: 2 s for all of them together, no
    getaddrinfo flags (a name that resolves to nothing so is refused by either server)."""
    from .backends.resolve import Resolver

    return Resolver(2.0, flags=0)


def _live_refusal_risks(backend: Backend, exp: Export, resolve: Resolve) -> list[str]:
    """A dry run of a change that `--apply` carries out live here (the volume is active on this
    node): what the live server will refuse of `exp`, as warnings (the node's resolver or its
    modules may change by then; tryout5 M: the dry run said "0 refused" and the apply refused
    two): an FSAL module missing here, and a client list of host names none of which resolves
    here (both servers then grant the export to nobody: grants.serves_nobody)."""
    from .backends.grants import serves_nobody, unresolved
    from .errors import ApplyError, GaneshaHAError, NotInstalledError
    from .execute import ExportFailure

    errors: list[GaneshaHAError] = []
    try:
        backend.check_installed_for(exp)
    except NotInstalledError as exc:
        errors.append(exc)
    if serves_nobody(exp, resolve):
        errors.append(ApplyError(f"no client of it resolves on this node ({', '.join(unresolved(exp, resolve))}): "
                                 "the server would grant it to nobody here"))
    return [f"{ExportFailure(exp, 'apply', exc, backend.name)}; an --apply here is refused live (with "
            "--skip-conflicts: this export is not imported)" for exc in errors]


def _live_refusals(outcome: Outcome, saved: RegistryState, failed: Sequence[ExportFailure]) -> list[str]:
    """Move the adds the live server refused and the registry left out (transaction.left_out)
    from `outcome.changes` to `outcome.conflicts` (a `Refusal` with `live`, in the order of
    the source), so that what is said to be imported is what the registry holds; returns a
    warning for each other failure (an export the registry keeps: live all the same, or one it
    had, remounted under a new parent), which the next monitor applies again."""
    from .converge import ADD
    from .description import Refusal, place

    why = {f.export.path: f for f in failed}
    out = {path for path in why if saved.get(path) is None}
    refused = [ch for ch in outcome.changes if ch.action == ADD and ch.export.path in out]
    outcome.changes = [ch for ch in outcome.changes if ch not in refused]
    outcome.conflicts += [Refusal(place(ch.export.path, ch.source), why[ch.export.path].error, live=True)
                          for ch in refused]
    return [f"{f}: kept in the registry (it was there before, or the server serves it all the same); "
            "'ganesha-ha volume monitor' applies it as registered"
            for path, f in why.items() if path not in out]


def _unused_identity_warnings(server: str, exp: Export, export_id: int | None, fsid: str | None,
                              where: object) -> list[str]:
    """`export add` given an identity the volume's server does not use (--fsid on a Ganesha
    volume, --export-id on a knfsd one): kept, and said (servers.unused_identity)."""
    from .servers import unused_identity

    out = []
    for label, given, value in (("Export_Id", export_id, exp.export_id), ("fsid", fsid, exp.knfsd.fsid)):
        unused = unused_identity(server, label) if given is not None else None
        if unused is not None:
            out.append(f"{label} {value} of {where}: {unused}")
    return out


def _local_fsal(fsal: Fsal) -> bool:
    """An FSAL that serves a directory of the volume itself (VFS, XFS, LUSTRE, GPFS; NULL over
    one of them), not a path in its own namespace (Fsal.remote)."""
    return not fsal.remote and not fsal.problem


def _module_change_warnings(old: Fsal, new: Fsal) -> list[str]:
    """A changed module option reaches Ganesha only when it next loads the FSAL module (a
    restart of ganesha.nfsd: fsal_schema.py), whatever the export's re-add does."""
    before = {layer.name: layer.module_options() for layer in old.layers() if not layer.problem}
    out = []
    for layer in new.layers():
        if layer.problem:
            continue
        was = [(o.key, v) for o, v in before.get(layer.name, [])]
        now = [(o.key, v) for o, v in layer.module_options()]
        if was != now:
            keys = sorted({k for k, _ in was} ^ {k for k, _ in now} | {k for (k, v) in now if (k, v) not in was})
            out.append(f"FSAL {layer.name} module option(s) {', '.join(keys)} take effect only when ganesha.nfsd "
                       f"next loads the {layer.name} module (its next restart): Ganesha reads a module block once")
    return out


def require_directory(path: Path, mountpoint: Path) -> None:
    """The exported directory must exist and resolve inside the volume (no symlink escape)."""
    if not path.is_dir():
        raise ValidationError("directory", f"{path} does not exist or is not a directory")
    real = Path(os.path.realpath(path))
    real_mp = Path(os.path.realpath(mountpoint))
    if real != real_mp and real_mp not in real.parents:
        raise ValidationError("directory", f"{path} resolves to {real}, outside the volume {mountpoint}")
    if real.relative_to(real_mp) != path.relative_to(mountpoint):
        raise ValidationError("directory", f"{path} goes through a symbolic link (it is {real}); "
                                           "export the real directory")
