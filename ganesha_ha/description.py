"""What a description says of one export, and what an export means (pure).

`export apply`, `export dump` and `import` speak of exports in four forms: the JSON that
`export list --json` prints, exports(5) lines, Ganesha EXPORT blocks and the parameters of
`ocf:heartbeat:exportfs` primitives (formats/). Each form carries part of what the registry
holds: exports(5) has no Export_Id or pseudo path, an EXPORT block no knfsd fsid and none of
knfsd's own client flags. A `Description` is what one form said of one export: its directory
and each field it gave, None for a field it did not give. converge.py merges it with the
registry's export of that directory: what was not said is kept (a new export takes the
defaults of `export add`, and its ids are allocated).

Forms that carry what an export *means* rather than how the registry spells it (exports(5)
lines and EXPORT blocks give every client its own effective access and squash; the registry
may say the same with an export-wide cap) set `by_meaning`: such a description changes an
export only when `meaning` differs, so `export dump | export apply --check` reports nothing.
"""
from __future__ import annotations

from .errors import GaneshaHAError, ValidationError
from .fsal import Fsal
from .clientspec import ACCESS_OPTIONS, SQUASH_OPTIONS, ClientSpec
from .model import ACCESS_TYPES, SQUASH_TYPES, Export, normalize_fsal_path, normalize_fsid, normalize_pseudo, normalize_relpath, validate_export_id
from .record import Record
from .textcheck import check_text

TYPE_CHECKING = False  # importing typing costs ~3 ms; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# keys of `export list --json` / `export show --json` that describe state, not the export
STATE_KEYS = frozenset({"live", "as_registered", "server", "action", "note", "warnings"})
# exports(5) options that say what knfsd does anyway (etab lists them for every export with
# none of their opposites given: nfs-utils 2.6 support/nfs/exports.c putexportent): spelt out or
# not, they mean the same
KNFSD_DEFAULTS = frozenset({"sync", "wdelay", "hide", "nocrossmnt", "secure", "no_all_squash", "no_subtree_check",
                            "secure_locks", "auth_nlm", "acl", "no_pnfs"})
_JSON_KEYS = frozenset({"path", "directory", "export_id", "pseudo", "clients", "access", "squash",
                        "knfsd", "ganesha", "fsid", "fsal", "comment", "remote"}) | STATE_KEYS


class Description(Record, frozen=True):
    """One export as a description gives it: `path` (as the registry keeps it: relative to the
    volume, or for an FSAL with its own namespace the absolute path there) and each field the
    description said; None where it said nothing."""

    path: str
    export_id: int | None = None
    pseudo: str | None = None
    clients: tuple[ClientSpec, ...] | None = None
    access: str | None = None
    squash: str | None = None
    fsid: str | None = None
    fsal: Fsal | None = None
    comment: str | None = None
    by_meaning: bool = False          # compare by `meaning` (the form spells effective options)
    keeps_knfsd_flags: bool = False   # the form cannot carry knfsd-only client flags: keep them
    source: str = ""                  # where it was read, for messages ("line 12", "primitive p1")

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", normalize_fsal_path(self.path) if str(self.path).startswith("/")
                           else normalize_relpath("directory", self.path))
        if self.export_id is not None:
            object.__setattr__(self, "export_id", validate_export_id(self.export_id))
        if self.pseudo is not None:
            object.__setattr__(self, "pseudo", normalize_pseudo(self.pseudo))
        if self.clients is not None:
            clients = tuple(c if isinstance(c, ClientSpec) else ClientSpec.parse(c) for c in self.clients)
            hosts = [c.host for c in clients]
            dupes = sorted({h for h in hosts if hosts.count(h) > 1})
            if dupes:
                raise ValidationError("clients", f"client {dupes[0]!r} is given more than once")
            object.__setattr__(self, "clients", clients)
        if self.access is not None and self.access not in ACCESS_TYPES:
            raise ValidationError("access", f"must be one of {', '.join(ACCESS_TYPES)}, got {self.access!r}")
        if self.squash is not None and self.squash not in SQUASH_TYPES:
            raise ValidationError("squash", f"must be one of {', '.join(SQUASH_TYPES)}, got {self.squash!r}")
        if self.fsid is not None:
            object.__setattr__(self, "fsid", normalize_fsid(self.fsid))
        if self.fsal is not None and not isinstance(self.fsal, Fsal):
            raise ValidationError("fsal", "must be an FSAL record")
        if self.comment is not None:
            check_text("comment", self.comment)

    @property
    def where(self) -> str:
        """The directory and the source, for messages: "data (line 12)"."""
        return place(self.path, self.source)


def place(path: str, source: str) -> str:
    """A description's directory and its place in the source: "data (line 12)"."""
    return (path or "/") + (f" ({source})" if source else "")


class Refusal(Record):
    """What a description says that cannot be taken, where (`where`: the directory and the
    place in the source) and why (`error`, which also carries the exit code). `live`: taken
    by the registry's checks, refused by the live server when it was applied (an import
    with --skip-conflicts into a volume active here), and so not imported."""

    where: str
    error: GaneshaHAError
    live: bool = False

    def __str__(self) -> str:
        return f"{self.where}: {'not imported, the live server refused it: ' if self.live else ''}{self.error}"


def meaning(exp: Export) -> tuple[Any, ...]:
    """What `exp` makes the servers do, without how the registry spells it: its identity,
    directory, pseudo path, FSAL and comment, and per client its effective access and squash
    (the export's cap and default applied, Export.client_access / ClientSpec.squash) with its
    other options, those that only say knfsd's default left out. Clients are a set: exports(5) precedence, not their order, decides which
    spec applies to a host (knfsd itself; Ganesha's CLIENT blocks rendered in that order)."""
    clients = sorted((c.host, exp.client_access(c), c.squash(exp.squash),
                      tuple(sorted(o for o in c.options if o not in ACCESS_OPTIONS
                                   and o not in SQUASH_OPTIONS and o not in KNFSD_DEFAULTS)))
                     for c in exp.clients)
    return (exp.path, exp.export_id, exp.pseudo, exp.knfsd.fsid, exp.ganesha.fsal, exp.comment, tuple(clients))


def effective_clients(exp: Export) -> list[ClientSpec]:
    """`exp`'s clients with their access and squash spelt out (what `meaning` compares), for
    the forms that carry meaning; a client the cap leaves without access has no access option."""
    out = []
    for c in exp.clients:
        access = exp.client_access(c)
        opts = [{"RW": "rw", "RO": "ro"}[access]] if access != "None" else []
        opts.append(c.squash(exp.squash))
        opts += [o for o in c.options if o not in ACCESS_OPTIONS and o not in SQUASH_OPTIONS]
        out.append(ClientSpec(c.host, tuple(opts)))
    return out


# ---- the JSON form: what `export list --json` and `export show --json` print -------------------

def from_json(data: Any, relpath: Callable[[str], str], source: str = "") -> Description:
    """One export object of `export list --json` (or `export show --json`), or a subset of it.

    `path` (the registry's form) or `directory` (absolute; `relpath` turns it into the
    volume's form, raising ValidationError when it is outside the volume; with `remote` true
    it is the path in the FSAL's own namespace) names the export; both may be given if they
    agree. `clients` are "SPEC(OPTIONS)" strings or {"host", "options"}
    objects; the knfsd fsid is `knfsd.fsid` or the flat `fsid`, the FSAL `ganesha.fsal` or
    the flat `fsal` (a name); the state keys (`live`, `server`, ...) are ignored. An unknown
    key is refused (ValidationError), so that a misspelt one is not silently left out.
    """
    if not isinstance(data, dict):
        raise ValidationError("export", f"{source or 'an entry'}: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _JSON_KEYS)
    if unknown:
        raise ValidationError("export", f"{source or 'an entry'}: unknown key(s) {', '.join(unknown)}")
    paths = []
    if "path" in data:
        path = _text(data["path"], "path")
        paths.append(normalize_fsal_path(path) if path.startswith("/") else normalize_relpath("path", path))
    if "directory" in data:
        directory = _text(data["directory"], "directory")
        paths.append(normalize_fsal_path(directory) if data.get("remote") is True else relpath(directory))
    if not paths:
        raise ValidationError("export", f"{source or 'an entry'}: names no directory (give 'directory' or 'path')")
    if len(set(paths)) > 1:
        raise ValidationError("export", f"{source or 'an entry'}: 'path' and 'directory' name different directories")
    fields: dict[str, Any] = {}
    for key in ("export_id", "pseudo", "access", "squash", "comment"):
        if data.get(key) is not None:
            fields[key] = data[key]
    if data.get("clients") is not None:
        fields["clients"] = _clients(data["clients"])
    fsids = [v for v in (_get(data, "knfsd", "fsid"), data.get("fsid")) if v is not None]
    if fsids:
        if len({normalize_fsid(f) for f in fsids}) > 1:
            raise ValidationError("fsid", "'fsid' and 'knfsd.fsid' differ")
        fields["fsid"] = fsids[0]
    fsal = _fsal(data)
    if fsal is not None:
        fields["fsal"] = fsal
    return Description(paths[0], source=source, **fields)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(name, f"must be text, got {value!r}")
    return value


def _get(data: dict[str, Any], part: str, key: str) -> Any:
    section = data.get(part)
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ValidationError(part, "must be an object")
    return section.get(key)


def _clients(value: Any) -> tuple[ClientSpec, ...]:
    if not isinstance(value, list):
        raise ValidationError("clients", "must be a list")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(ClientSpec.parse(item))
        elif isinstance(item, dict) and set(item) <= {"host", "options"} and "host" in item:
            opts = item.get("options", [])
            if not isinstance(opts, list):
                raise ValidationError("clients", "a client's options must be a list")
            out.append(ClientSpec(_text(item["host"], "client"), tuple(_text(o, "client option") for o in opts)))
        else:
            raise ValidationError("clients", f"{item!r} is neither 'SPEC(OPTIONS)' nor {{host, options}}")
    return tuple(out)


def _fsal(data: dict[str, Any]) -> Fsal | None:
    nested = _get(data, "ganesha", "fsal")
    flat = data.get("fsal")
    if isinstance(data.get("ganesha"), dict) and set(data["ganesha"]) - {"fsal"}:
        raise ValidationError("ganesha", "may hold only 'fsal'")
    fsal = Fsal.from_dict(nested) if nested is not None else None
    if flat is not None:
        named = Fsal(flat) if isinstance(flat, str) else Fsal.from_dict(flat)
        if fsal is None:
            return named
        if named.name != fsal.name:
            raise ValidationError("fsal", f"'fsal' ({named.name}) and 'ganesha.fsal' ({fsal.name}) differ")
    return fsal
