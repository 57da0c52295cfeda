"""A volume's registry brought to a description of its exports (pure): adds, updates, removes.

`export apply` and `import` give a list of Descriptions (description.py); `converge` works
out, against the registry as loaded under the volume's lock, the registry after the change
and what changed, export by export. An export that cannot be taken as described (an identity
change without force, a duplicate pseudo path, an id outside the volume's range, a directory
that is not there, something the server cannot represent) is a `Refusal` (a conflict) naming that
export and the reason, and leaves the registry as it was for that export: the caller decides
whether the others go ahead (import --skip-conflicts) or nothing does (export apply).
Nothing here writes: volume.py runs the result through one transaction.
"""
from __future__ import annotations

from .description import KNFSD_DEFAULTS, Description, Refusal, meaning
from .errors import ConflictError, GaneshaHAError, ValidationError
from .fsal import Fsal
from .fsal_schema import REDACTED
from .clientspec import KNFSD_ONLY_FLAGS, SQUASH_OPTIONS, ClientSpec
from .model import Export, GaneshaOptions, KnfsdOptions
from .record import Factory, Record, replace
from .registry import RegistryState

TYPE_CHECKING = False  # importing typing costs ~3 ms; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

ADD, UPDATE, REMOVE = "add", "update", "remove"
_FIELDS = ("export_id", "pseudo", "fsid", "clients", "access", "squash", "fsal", "comment")


class Change(Record, frozen=True):
    """One export added, updated or removed: `before`/`after` (None for an add/a remove)."""

    action: str
    before: Export | None
    after: Export | None
    source: str = ""

    @property
    def export(self) -> Export:
        exp = self.after if self.after is not None else self.before
        assert exp is not None
        return exp

    def differences(self) -> list[tuple[str, str, str]]:
        """(field, before, after) as text for each field an update changes."""
        if self.before is None or self.after is None:
            return []
        old, new = field_texts(self.before), field_texts(self.after)
        return [(name, old[name], new[name]) for name in _FIELDS if old[name] != new[name]]


class Outcome(Record):
    state: RegistryState                   # the registry with every change that passed
    changes: list[Change] = Factory(list)
    unchanged: list[Export] = Factory(list)
    conflicts: list[Refusal] = Factory(list)


def field_texts(exp: Export) -> dict[str, str]:
    """Each field of an export as one short text (for the diff a person reads)."""
    return {"export_id": str(exp.export_id), "pseudo": exp.pseudo, "fsid": exp.knfsd.fsid,
            "clients": " ".join(str(c) for c in exp.clients), "access": exp.access, "squash": exp.squash,
            "fsal": str(exp.ganesha.fsal), "comment": exp.comment}


def check_identity_change(old: Export, export_id: int | None, fsid: str | None, force: bool,
                          where: str, server: str) -> list[str]:
    """An export's Export_Id (Ganesha) or fsid (knfsd) is what its clients' file handles
    carry on that server: changing the one the volume's `server` uses is refused
    (ValidationError, exit 2) unless `force`. The other server's identity changes nothing
    its clients hold: allowed, and returned as a note for the caller to say (servers.py,
    unused_identity). `export_id`/`fsid` are the new values (None: unchanged); `where` names
    the export in the message."""
    from .servers import unused_identity

    notes = []
    for label, value, was in (("Export_Id", export_id, old.export_id), ("fsid", fsid, old.knfsd.fsid)):
        if value is None or value == was:
            continue
        unused = unused_identity(server, label)
        if unused is not None:
            notes.append(f"{label} of {where} changed from {was} to {value}: {unused}")
        elif not force:
            raise ValidationError("export_id" if label == "Export_Id" else "fsid",
                                  f"{server}'s file handles carry the {label}: changing the {label} of {where} from "
                                  f"{was} to {value} gives every client that has it mounted stale file handles "
                                  "(ESTALE); give --force to change it anyway")
    return notes


def converge(state: RegistryState, descriptions: Sequence[Description], *, default_pseudo: Callable[[str], str],
             check: Callable[[Export, RegistryState], None], remove_missing: bool, update_existing: bool = True,
             force: bool = False, served_ids: Iterable[int] = (),
             progress: Callable[[int, int], None] | None = None) -> Outcome:
    """The registry `state` brought to `descriptions` (see the module docstring).

    `remove_missing`: exports no description names are removed (a description of the whole
    volume) - else kept (one export, an import). `update_existing`: an export that exists and
    is described differently is updated - else that is a conflict (an import never changes
    what the volume already exports). `default_pseudo(path)`: a new export's pseudo path when
    none is given. `check(export, state)`: raises for an export about to be added or changed
    (`state`: the registry with it) that cannot be served (its directory, the server's limits,
    its place in the pseudo tree). `served_ids`: Export_Ids this
    node's server serves for others, kept out of allocations. `progress(done, total)` after
    each description.
    """
    out = Outcome(state=state)
    served = set(served_ids)
    seen: dict[str, Description] = {}
    todo: list[Description] = []
    for desc in descriptions:
        if desc.path in seen:
            out.conflicts.append(Refusal(desc.where, _dup(seen[desc.path])))
        else:
            seen[desc.path] = desc
            todo.append(desc)
    if remove_missing:
        for exp in state.exports:
            if exp.path not in seen:
                out.state = out.state.without(exp)
                out.changes.append(Change(REMOVE, exp, None))
    for i, desc in enumerate(todo):
        current = out.state.get(desc.path)
        try:
            if current is None:
                new = _new_export(out.state, desc, default_pseudo, served, force)
                candidate = out.state.with_export(new)
                check(new, candidate)
                out.state = candidate
                out.changes.append(Change(ADD, None, new, desc.source))
            else:
                new = merged(desc, current)
                if new == current or (desc.by_meaning and meaning(new) == meaning(current)):
                    out.unchanged.append(current)
                elif not update_existing:
                    raise ConflictError(f"already exported differently ({_summary(current)}); change it with "
                                        "'ganesha-ha export update' or 'export apply'")
                else:
                    changed_id = new.export_id if new.export_id != current.export_id else None
                    changed_fsid = new.knfsd.fsid if new.knfsd.fsid != current.knfsd.fsid else None
                    check_identity_change(current, changed_id, changed_fsid, force, desc.path or "/", state.server)
                    out.state.check_new_identity(changed_id, changed_fsid, force)
                    candidate = out.state.with_export(new)
                    check(new, candidate)
                    out.state = candidate
                    out.changes.append(Change(UPDATE, current, new, desc.source))
        except GaneshaHAError as exc:
            out.conflicts.append(Refusal(desc.where, exc))
        if progress is not None:
            progress(i + 1, len(todo))
    return out


def merged(desc: Description, current: Export) -> Export:
    """`current` with what `desc` says; a form that cannot carry knfsd's own client flags
    (an EXPORT block) keeps those of the same host. A description by meaning keeps the
    registry's spelling wherever that means the same (the export's cap and squash, each
    client that did not change), so that an edit of one client changes only that client."""
    new = _merged(desc, current)
    if not desc.by_meaning or desc.clients is None:
        return new
    old = {c.host: c for c in current.clients}
    order = {c.host: i for i, c in enumerate(current.clients)}
    kept = new.with_changes(access=current.access, squash=current.squash)
    clients = [old[c.host] if c.host in old and _client_meaning(kept, old[c.host]) == _client_meaning(new, c)
               else _fewest_words(kept, c, _client_meaning(new, c)) for c in new.clients]
    clients.sort(key=lambda c: order.get(c.host, len(order)))   # stable: new clients after, in their order
    kept = kept.with_changes(clients=tuple(clients))
    return kept if meaning(kept) == meaning(new) else new


def _fewest_words(exp: Export, client: ClientSpec, wanted: tuple[object, ...]) -> ClientSpec:
    """`client` without the options that, in `exp`, change nothing of what it means (`wanted`):
    knfsd's defaults spelt out, a squash equal to the export's."""
    opts = [o for o in client.options if o not in KNFSD_DEFAULTS]
    for o in [o for o in opts if o in SQUASH_OPTIONS]:
        shorter = [x for x in opts if x != o]
        if _client_meaning(exp, ClientSpec(client.host, tuple(shorter))) == wanted:
            opts = shorter
    slim = ClientSpec(client.host, tuple(opts))
    return slim if _client_meaning(exp, slim) == wanted else client


def _client_meaning(exp: Export, client: ClientSpec) -> tuple[object, ...]:
    """What `client` is granted as a client of `exp` (its part of `meaning`)."""
    return meaning(exp.with_changes(clients=(client,)))[-1][0]


def _merged(desc: Description, current: Export) -> Export:
    clients = desc.clients if desc.clients is not None else current.clients
    if desc.keeps_knfsd_flags and desc.clients is not None:
        old = {c.host: c for c in current.clients}
        clients = tuple(_with_flags(c, old[c.host]) if c.host in old else c for c in clients)
    return Export(
        path=current.path,
        export_id=_given(desc.export_id, current.export_id),
        pseudo=_given(desc.pseudo, current.pseudo),
        clients=clients,
        knfsd=replace(current.knfsd, fsid=desc.fsid) if desc.fsid is not None else current.knfsd,
        ganesha=(replace(current.ganesha, fsal=with_secrets(desc.fsal, current.ganesha.fsal))
                 if desc.fsal is not None else current.ganesha),
        access=_given(desc.access, current.access),
        squash=_given(desc.squash, current.squash),
        comment=_given(desc.comment, current.comment),
    )


def _new_export(state: RegistryState, desc: Description, default_pseudo: Callable[[str], str],
                served: set[int], force: bool) -> Export:
    """A new export as `export add` makes it: ids given are checked (range, retired), the
    others allocated; what is not said takes add's defaults."""
    if not desc.clients:
        raise ValidationError("clients", "a new export needs at least one client")
    state.check_new_identity(desc.export_id, desc.fsid, force)
    return Export(
        path=desc.path,
        export_id=desc.export_id if desc.export_id is not None else state.allocate_export_id(served),
        pseudo=desc.pseudo if desc.pseudo is not None else default_pseudo(desc.path),
        clients=desc.clients,
        knfsd=KnfsdOptions(desc.fsid if desc.fsid is not None else state.allocate_fsid()),
        ganesha=replace(GaneshaOptions(), fsal=with_secrets(desc.fsal, None) if desc.fsal is not None else Fsal()),
        access=_given(desc.access, "RW"),
        squash=_given(desc.squash, "root_squash"),
        comment=_given(desc.comment, ""),
    )


def with_secrets(fsal: Fsal, current: Fsal | None) -> Fsal:
    """`fsal` with each option written `<redacted>` (as a dump writes secrets) given the value
    the registry has for it (`current`: the export's FSAL now); ValidationError when it has
    none (a new export, or another FSAL): the value must then be given."""
    if not any(v == REDACTED for layer in fsal.layers() for _, v in layer.options):
        return fsal
    below = with_secrets(fsal.stacked, current.stacked if current is not None else None) \
        if fsal.stacked is not None else None
    known = dict(current.options) if current is not None and current.name == fsal.name else {}
    options = []
    for key, value in fsal.options:
        if value == REDACTED:
            if key not in known:
                raise ValidationError("fsal option", f"FSAL {fsal.name} {key} is {REDACTED} and the registry has no "
                                                     "value for it: give the value")
            value = known[key]
        options.append((key, value))
    return Fsal(fsal.name, tuple(options), below)


def _with_flags(client: ClientSpec, old: ClientSpec) -> ClientSpec:
    extra = tuple(o for o in old.options if o in KNFSD_ONLY_FLAGS and o not in client.options)
    return ClientSpec(client.host, client.options + extra) if extra else client


def _given(value, default):  # type: ignore[no-untyped-def]
    return default if value is None else value


def _summary(exp: Export) -> str:
    return f"Export_Id {exp.export_id}, fsid {exp.knfsd.fsid}, clients {' '.join(str(c) for c in exp.clients)}"


def _dup(first: Description) -> GaneshaHAError:
    return ConflictError(f"directory described twice (first {first.source or 'above'})")


def edited_clients(clients: Sequence[ClientSpec], add: Sequence[str], remove: Sequence[str]) -> tuple[ClientSpec, ...]:
    """`clients` with the hosts of `remove` taken out and the specs of `add` put in (`export
    update --add-client/--remove-client`). Adding a host that is already a client replaces its
    options; removing one that is not is refused (ValidationError), as is a host both added
    and removed. The model refuses an empty list."""
    out = list(clients)
    gone = [ClientSpec.parse(text).host for text in remove]
    new = [ClientSpec.parse(text) for text in add]
    both = sorted(set(gone) & {c.host for c in new})
    if both:
        raise ValidationError("client", f"{both[0]} is both added and removed")
    for host in gone:
        if not any(c.host == host for c in out):
            raise ValidationError("client", f"{host} is not a client of this export "
                                            f"({' '.join(c.host for c in out)})")
        out = [c for c in out if c.host != host]
    for spec in new:
        at = next((i for i, c in enumerate(out) if c.host == spec.host), None)
        if at is None:
            out.append(spec)
        else:
            out[at] = spec
    return tuple(out)
