"""The export model: validated value objects, pure (no I/O).

An `Export` is what the registry stores and what every backend renders. Validation is
strict on purpose: whatever passes here ends up in a Ganesha config file or an `exportfs`
argument, so a value either matches a small grammar or is refused with a message that
names the field. Client specs (the hosts and options of exports(5)) are clientspec.py's.
"""
from __future__ import annotations


from .clientspec import UINT_RE, ClientSpec
from .errors import ValidationError
from .fsal import Fsal
from .record import Record, replace
from .textcheck import LazyPattern, check_text

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

ACCESS_TYPES = ("RW", "RO", "None")
SQUASH_TYPES = ("root_squash", "no_root_squash", "all_squash")
EXPORT_ID_MIN, EXPORT_ID_MAX = 1, 65535  # 0 is the NFSv4 pseudo root: never allocated
FSID_NUM_MAX = 2**32 - 1  # knfsd's numeric fsid is 32 bits; 0 means the NFSv4 root
MAX_PATH_BYTES = 4000
MAX_COMPONENT_BYTES = 255
_CANONICAL_UUID_RE = LazyPattern(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _fail(field_name: str, message: str) -> ValidationError:
    return ValidationError(field_name, message)


def normalize_relpath(field_name: str, path: str) -> str:
    """A directory inside the volume, as a relative POSIX path ('' is the volume root).

    No '..', no '.', no empty components, no control characters: the stored value is
    canonical so that two spellings of one directory are one export.
    """
    check_text(field_name, path)
    stripped = path.strip("/")
    if stripped in ("", "."):
        return ""
    parts = stripped.split("/")
    out = []
    for part in parts:
        if part == "" or part == ".":
            continue
        if part == "..":
            raise _fail(field_name, "must not contain '..'")
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            raise _fail(field_name, f"has a component longer than {MAX_COMPONENT_BYTES} bytes")
        out.append(part)
    rel = "/".join(out)
    if len(rel.encode()) > MAX_PATH_BYTES:
        raise _fail(field_name, f"is longer than {MAX_PATH_BYTES} bytes")
    return rel


def normalize_fsal_path(path: str) -> str:
    """An export's Path in its FSAL's own namespace (CEPH, GLUSTER, RGW, PROXY_V4, MEM): absolute,
    canonical ('/' allowed: the FSAL's root), no '..', no control characters."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise _fail("path", f"must be an absolute path in the FSAL's own namespace, e.g. /scratch, "
                            f"got {path!r}")
    return "/" + normalize_relpath("path", path)


def normalize_pseudo(pseudo: str) -> str:
    """An NFSv4 pseudo path: absolute, canonical, never '/' (the pseudo root is Ganesha's)."""
    if not isinstance(pseudo, str) or not pseudo.startswith("/"):
        raise _fail("pseudo", "must be an absolute path starting with '/'")
    rel = normalize_relpath("pseudo", pseudo)
    if rel == "":
        raise _fail("pseudo", "'/' is the NFSv4 pseudo root and cannot be an export's pseudo path")
    return "/" + rel


def validate_export_id(value: Any) -> int:
    try:
        num = int(value)
    except (TypeError, ValueError):
        raise _fail("export_id", f"must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or not EXPORT_ID_MIN <= num <= EXPORT_ID_MAX:
        raise _fail("export_id", f"must be between {EXPORT_ID_MIN} and {EXPORT_ID_MAX} "
                                 "(0 is the NFSv4 pseudo root)")
    return num


def validate_id_range(lo: int, hi: int) -> tuple[int, int]:
    """A volume's Export_Id range LOW-HIGH, both ends included: ValidationError (field
    "id_range") naming what is wrong, before any other check reads it (a range reaching down to
    0 would otherwise be "served now for something else": Ganesha's pseudo root)."""
    if lo > hi:
        raise _fail("id_range", f"{lo}-{hi} runs backwards; write LOW-HIGH, e.g. {hi}-{lo}")
    if lo < EXPORT_ID_MIN or hi > EXPORT_ID_MAX:
        raise _fail("id_range", f"{lo}-{hi} must lie within {EXPORT_ID_MIN}-{EXPORT_ID_MAX} "
                                "(0 is the NFSv4 pseudo root's Export_Id)")
    return lo, hi


def normalize_fsid(value: Any) -> str:
    """knfsd's fsid: a number 1..2^32-1 or a UUID. 0 / 'root' mean the NFSv4 root: refused."""
    text = str(value).strip()
    check_text("fsid", text)
    if UINT_RE.fullmatch(text):
        num = int(text)
        if num == 0:
            raise _fail("fsid", "0 means the NFSv4 root export; choose another value")
        if num > FSID_NUM_MAX:
            raise _fail("fsid", f"a numeric fsid must be at most {FSID_NUM_MAX}")
        return str(num)
    if text.lower() == "root":
        raise _fail("fsid", "'root' means the NFSv4 root export; choose another value")
    try:
        return canonical_uuid(text)
    except ValueError:
        raise _fail("fsid", f"must be a number from 1 to {FSID_NUM_MAX} or a UUID, got {text!r}") from None


def canonical_uuid(text: str) -> str:
    """`text` as a UUID in canonical form (lower case, dashed); ValueError if it is none.

    Text already in that form (every fsid ganesha-ha generates) is returned without importing
    `uuid`, which (with `platform`) costs a few ms at every start of the resource agent.
    """
    if _CANONICAL_UUID_RE.fullmatch(text):
        return text
    import uuid

    return str(uuid.UUID(text))


def new_fsid() -> str:
    """A generated fsid: a random UUID, unique across volumes without any coordination."""
    import uuid

    return str(uuid.uuid4())


def min_access(a: str, b: str) -> str:
    """The more restrictive of two access types (None < RO < RW)."""
    order = {"None": 0, "RO": 1, "RW": 2}
    return a if order[a] <= order[b] else b


class KnfsdOptions(Record, frozen=True):
    """What only knfsd needs of an export: the fsid in its file handles."""

    fsid: str   # a number 1..2^32-1 or a UUID (normalize_fsid)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fsid", normalize_fsid(self.fsid))

    def to_dict(self) -> dict[str, Any]:
        return {"fsid": self.fsid}

    @classmethod
    def from_dict(cls, data: Any) -> "KnfsdOptions":
        if not isinstance(data, dict) or set(data) != {"fsid"}:
            raise _fail("knfsd", "registry entry must hold exactly an fsid")
        return cls(data["fsid"])


class GaneshaOptions(Record, frozen=True):
    """What only Ganesha needs of an export: its FSAL (fsal.py)."""

    fsal: Fsal = Fsal()

    def __post_init__(self) -> None:
        if not isinstance(self.fsal, Fsal):
            raise _fail("fsal", "must be an FSAL record")

    def to_dict(self, redact: bool = False) -> dict[str, Any]:
        return {"fsal": self.fsal.to_dict(redact)}

    @classmethod
    def from_dict(cls, data: Any) -> "GaneshaOptions":
        if not isinstance(data, dict) or not set(data) <= {"fsal"}:
            raise _fail("ganesha", "registry entry may hold only an FSAL")
        return cls(Fsal.from_dict(data["fsal"])) if "fsal" in data else cls()


class Export(Record, frozen=True):
    """One export of a volume: its identity (export_id, pseudo, and each server's part),
    clients and options.

    `path` is relative to the volume's mount point, so the same registry serves identical
    exports wherever the volume is mounted; for an FSAL whose data is not on the volume
    (`Fsal.remote`: CEPH, GLUSTER, RGW, PROXY_V4, MEM) it is the absolute Path in that FSAL's own
    namespace, and the volume carries only the export's identity, client records and IP. `access` caps every client: a client's own
    `rw`/`ro` option chooses within it (a spec with neither is read-only, as in exports(5)),
    so `--access RO` makes the whole export read-only and `--access None` takes it away from
    every client while keeping its identity. What
    only one server reads is in its part: `knfsd` (the fsid), `ganesha` (the FSAL); both are
    kept whatever the volume's server, so a volume can change servers without new identities.
    """

    path: str
    export_id: int
    pseudo: str
    clients: tuple[ClientSpec, ...]
    knfsd: KnfsdOptions
    ganesha: GaneshaOptions = GaneshaOptions()
    access: str = "RW"
    squash: str = "root_squash"
    comment: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.ganesha, GaneshaOptions):
            raise _fail("ganesha", "must be Ganesha options (the FSAL)")
        if self.ganesha.fsal.remote:
            object.__setattr__(self, "path", normalize_fsal_path(self.path))
        else:
            object.__setattr__(self, "path", normalize_relpath("directory", self.path))
        object.__setattr__(self, "export_id", validate_export_id(self.export_id))
        object.__setattr__(self, "pseudo", normalize_pseudo(self.pseudo))
        clients = tuple(c if isinstance(c, ClientSpec) else ClientSpec.parse(c) for c in self.clients)
        if not clients:
            raise _fail("clients", "an export needs at least one client spec")
        hosts = [c.host for c in clients]
        dupes = sorted({h for h in hosts if hosts.count(h) > 1})
        if dupes:
            raise _fail("clients", f"client {dupes[0]!r} is given more than once")
        object.__setattr__(self, "clients", clients)
        if not isinstance(self.knfsd, KnfsdOptions):
            raise _fail("knfsd", "must be knfsd options (the fsid)")
        if self.access not in ACCESS_TYPES:
            raise _fail("access", f"must be one of {', '.join(ACCESS_TYPES)}, got {self.access!r}")
        if self.squash not in SQUASH_TYPES:
            raise _fail("squash", f"must be one of {', '.join(SQUASH_TYPES)}, got {self.squash!r}")
        check_text("comment", self.comment)

    @property
    def remote(self) -> bool:
        """The export's data is in its FSAL's own namespace, not a directory of the volume."""
        return self.ganesha.fsal.remote

    def client_access(self, client: ClientSpec) -> str:
        """What `client` is granted: its own `rw`/`ro` (read-only without either), capped by
        the export's `access`."""
        return min_access(self.access, client.access())

    def with_changes(self, **changes: Any) -> "Export":
        return replace(self, **changes)

    def to_dict(self, redact: bool = False) -> dict[str, Any]:
        """The registry's form (schema version 4; registry.py migrates older forms); with
        `redact`, FSAL secrets replaced (what output and node-local records may hold)."""
        data: dict[str, Any] = {
            "path": self.path,
            "export_id": self.export_id,
            "pseudo": self.pseudo,
            "clients": [{"host": c.host, "options": list(c.options)} for c in self.clients],
            "access": self.access,
            "squash": self.squash,
            "knfsd": self.knfsd.to_dict(),
            "ganesha": self.ganesha.to_dict(redact),
        }
        if self.comment:
            data["comment"] = self.comment
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], memo: dict[str, Any] | None = None) -> "Export":
        """An export as the registry stores it (ValidationError naming what is wrong).

        `memo`: a dict the caller keeps while it reads one document (registry.py), so that
        the exports of a volume sharing one client list or one FSAL record (the common case:
        ~1/3 of the time to read 1000 exports) have it normalised once; keyed on the repr of
        the stored value (the repr of JSON values is equal only for equal values of equal
        types), holding immutable records, and only what passed validation."""
        if not isinstance(data, dict):
            raise _fail("export", "registry entry is not an object")
        known = {"path", "export_id", "pseudo", "clients", "access", "squash", "knfsd", "ganesha", "comment"}
        unknown = set(data) - known
        if unknown:
            raise _fail("export", f"unknown field(s) {', '.join(sorted(unknown))}")
        try:
            clients = _memoised(memo, "clients", data["clients"], lambda raw: tuple(
                ClientSpec(c["host"], tuple(c.get("options", ()))) for c in raw))
            ganesha = _memoised(memo, "ganesha", data.get("ganesha", {}), GaneshaOptions.from_dict)
            path = data["path"]
            if ganesha.fsal.remote and isinstance(path, str) and not path.startswith("/"):
                # written before FSAL namespaces (an FSAL name was all a record held): the
                # path is taken as the same path in the FSAL's namespace
                path = "/" + path
            return cls(
                path=path, export_id=data["export_id"], pseudo=data["pseudo"], clients=clients,
                knfsd=KnfsdOptions.from_dict(data["knfsd"]),
                ganesha=ganesha,
                access=data.get("access", "RW"), squash=data.get("squash", "root_squash"),
                comment=data.get("comment", ""),
            )
        except (KeyError, TypeError) as exc:
            raise _fail("export", f"registry entry is incomplete ({exc})") from None


def _memoised(memo: dict[str, Any] | None, kind: str, raw: Any, make: Any) -> Any:
    """`make(raw)`, or what it made for an equal `raw` of the same `kind` before (Export.from_dict)."""
    if memo is None:
        return make(raw)
    key = f"{kind} {raw!r}"
    made = memo.get(key)
    if made is None:
        made = memo[key] = make(raw)
    return made
