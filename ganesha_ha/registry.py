"""The volume's durable record of its exports, kept on the volume itself.

Layout under `<mount point>/.ganesha-ha/` (mode 0700, root-owned):
  registry.json          the exports and the volume's settings (schema below)
  lock                   flock(2) target serialising every writer on this node
  rmtab                  knfsd's client-recovery store (recovery/rmtab.py)
  ganesha-recovery.json  Ganesha's client-recovery store (recovery/ganesha_records.py)
  nfs4-recovery/         a volume's own Ganesha instance: its RecoveryRoot (Ganesha's records)
  instance-epoch         and the epoch (-E) of its last start (backends/ganesha_instance.py)

registry.json, schema version 5 (JSON, keys sorted, indented, written atomically):
  {"schema": "ganesha-ha/registry", "version": 5, "generation": N,
   "volume": {"uuid": "...", "server": "knfsd" | "ganesha", "export_id_range": [LOW, HIGH],
              "ganesha_mode": "shared" | "instance",
              "instance": {"grace_period": S, "lease_lifetime": S}},   # instance mode; each key optional
   "retired": {"export_ids": [[LOW, HIGH], ...], "fsids": [[LOW, HIGH], ...]},
   "exports": [{"path": "data", "export_id": 3000, "pseudo": "/data",
                "clients": [{"host": "192.0.2.0/24", "options": ["rw", "no_root_squash"]}],
                "access": "RW", "squash": "root_squash",
                "knfsd": {"fsid": "<number or UUID>"},
                "ganesha": {"fsal": {"name": "VFS"}},   # and "options": [[key, value]], "stacked": {...}
                "comment": "..."}]}                     # only when set
Older versions are read through explicit migrations, one step per version, each export and
the whole document (registry_migrations.py, imported only for an older registry), and written
as the current version by the next save.
A registry of a newer version than this code knows is refused (upgrade that node).
An FSAL's options are stored as [key, value] pairs of canonical text (fsal_schema.py), secrets
included (this file is 0600 in a 0700 directory: the only place a secret is kept). The path of an
export whose FSAL has its own namespace (MEM, CEPH, GLUSTER, RGW, PROXY_V4) is absolute ("/scratch"),
every other path is relative to the mount point; an older registry's relative path of such an FSAL
is read as that path in the FSAL's namespace (model.Export.from_dict). Both fit the form that
schema 2 introduced, so code of the same schema without FSAL schemas still reads such a registry;
it refuses to render FSAL options and knows no FSAL namespaces: upgrade every node before using them.

`ganesha_mode` (servers.MODES, chosen at `volume init`): "shared", the volume's exports are
served by the node's one server with every other volume's; "instance" (Ganesha only), by a
ganesha.nfsd of the volume's own (backends/ganesha_instance.py). An instance serves only its
volume, so its Export_Ids and pseudo paths never meet another volume's: the cross-volume
checks below apply to shared volumes only. Its Grace_Period and Lease_Lifetime are the
volume's when `instance` says them (`volume init --grace-period/--lease-lifetime`), so every
node starts it alike; a key left out takes the node's `[instance]` setting.

Export_Id allocation: each volume owns a range of ids recorded in its registry
(`export_id_range`, chosen at `volume init`: given with `--id-range`, or a random free block
of `id_block` ids; moved or widened with `volume set-range`). Ids are allocated from that
range once and never change, and an id, or a numeric fsid, that a removed export had is
retired: never handed out again, since a client may still hold a file handle carrying it
(`retired`, kept as ranges by idranges.py so that it stays small). Volumes that may meet on
one node must have disjoint ranges; a collision is detected at `export add` and at agent
start against what the node's server already serves, and at `volume init`/`set-range`
against the ranges of the shared volumes mounted on this node.
"""
from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import idranges
from .errors import (ConflictError, GaneshaHAError, LockTimeout, NotFoundError,
                     NotInitialisedError, RegistryError, ValidationError)
from .fsutil import (atomic_write, check_secure_dir, check_secure_file, ensure_secure_dir, read_secure,
                     remove_stale_temps, require_mountpoint, wait_for_lock)
from .model import (EXPORT_ID_MAX, EXPORT_ID_MIN, FSID_NUM_MAX, Export, new_fsid, normalize_fsid, normalize_relpath,
                    validate_export_id)
from .record import Record, replace
from .servers import INSTANCE, SERVERS, SHARED, check_mode

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

STATE_DIR = ".ganesha-ha"
REGISTRY_FILE = "registry.json"
LOCK_FILE = "lock"
SCHEMA_NAME = "ganesha-ha/registry"
SCHEMA_VERSION = 5
# an instance's NFSV4 Grace_Period and Lease_Lifetime, seconds (nfs-ganesha 4.3's ranges:
# src/support/nfs_read_conf.c, the same as configspec.ini's [instance])
GRACE_PERIOD_RANGE, LEASE_LIFETIME_RANGE = (0, 270), (1, 180)


class RegistryState(Record, frozen=True):
    """An immutable snapshot of a registry: what `load` returns and `save` writes."""

    volume_uuid: str
    server: str
    id_range: tuple[int, int]
    exports: tuple[Export, ...] = ()
    generation: int = 0
    retired_ids: idranges.Ranges = ()     # Export_Ids of removed exports (idranges.py)
    retired_fsids: idranges.Ranges = ()   # numeric fsids of removed exports (a UUID is never generated twice)
    ganesha_mode: str = SHARED            # servers.MODES: the node's server, or one of the volume's own
    grace_period: int | None = None       # instance mode: its Grace_Period (None: the node's setting)
    lease_lifetime: int | None = None     # instance mode: its Lease_Lifetime (None: the node's setting)

    def __post_init__(self) -> None:
        if self.server not in SERVERS:
            raise ValidationError("server", f"must be one of {', '.join(SERVERS)}, got {self.server!r}")
        check_mode(self.server, self.ganesha_mode)
        for name, (low, high) in (("grace_period", GRACE_PERIOD_RANGE), ("lease_lifetime", LEASE_LIFETIME_RANGE)):
            value = getattr(self, name)
            if value is None:
                continue
            if self.ganesha_mode != INSTANCE:
                raise ValidationError(name, "is a setting of a volume with its own Ganesha instance "
                                            "(--ganesha-mode instance); a shared server has its own")
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValidationError(name, f"must be whole seconds within {low}-{high}, got {value!r}")
        lo, hi = self.id_range
        if not (EXPORT_ID_MIN <= lo <= hi <= EXPORT_ID_MAX):
            raise ValidationError("id_range", f"must lie within {EXPORT_ID_MIN}-{EXPORT_ID_MAX}, got {lo}-{hi}")
        for name, top in (("retired_ids", EXPORT_ID_MAX), ("retired_fsids", FSID_NUM_MAX)):
            try:
                ranges = idranges.normalise(getattr(self, name))
            except (TypeError, ValueError) as exc:
                raise ValidationError(name, f"must be ranges of whole numbers: {exc}") from None
            if ranges and not (1 <= ranges[0][0] and ranges[-1][1] <= top):
                raise ValidationError(name, f"must lie within 1-{top}")
            object.__setattr__(self, name, ranges)
        check_unique(self.exports)

    # -- queries ---------------------------------------------------------------------
    def find(self, key: str | int) -> Export:
        """An export by its Export_Id or its directory (relative or absolute inside the volume)."""
        for exp in self.exports:
            if _matches(exp, key):
                return exp
        raise NotFoundError(f"no export {key!r} in this volume's registry")

    def get(self, key: str | int) -> Export | None:
        try:
            return self.find(key)
        except NotFoundError:
            return None

    # -- pure mutations returning new states -----------------------------------------
    def with_export(self, exp: Export) -> "RegistryState":
        """This state with `exp` added, or replacing the export of its directory. ConflictError
        when it shares an identity with another export, naming `exp` first (checked with it
        last: the export a command changes is what its error is about)."""
        others = tuple(e for e in self.exports if e.path != exp.path)
        check_unique(others + (exp,))
        return replace(self, exports=tuple(sorted(others + (exp,), key=lambda e: e.export_id)))

    def without(self, exp: Export) -> "RegistryState":
        return replace(self, exports=tuple(e for e in self.exports if e.path != exp.path))

    def id_retired(self, export_id: int) -> bool:
        return idranges.contains(self.retired_ids, export_id)

    def fsid_retired(self, fsid: str) -> bool:
        """Whether `fsid` (normalised, model.normalize_fsid) is a retired numeric fsid."""
        return fsid.isdigit() and idranges.contains(self.retired_fsids, int(fsid))

    def check_new_identity(self, export_id: int | None, fsid: str | None, force: bool = False) -> None:
        """An Export_Id or fsid given for a new identity (`export add`, `update --force`): the
        Export_Id must be a valid one in the volume's range (ValidationError: the ids of other
        ranges belong to other volumes), and neither may have been retired by a removed export
        unless `force` (ConflictError: a client may still hold a file handle carrying it, which
        would then reach this export; the one good reason is that export coming back)."""
        retired = []
        if export_id is not None:
            export_id = validate_export_id(export_id)
            lo, hi = self.id_range
            if not lo <= export_id <= hi:
                raise ValidationError("export_id", f"{export_id} is outside this volume's range {lo}-{hi} (the "
                                                   "ids of other ranges belong to other volumes); move or widen "
                                                   "the range with 'ganesha-ha volume set-range'")
            if self.id_retired(export_id):
                retired.append(f"Export_Id {export_id}")
        if fsid is not None and self.fsid_retired(normalize_fsid(fsid)):
            retired.append(f"fsid {normalize_fsid(fsid)}")
        if retired and not force:
            raise ConflictError(f"{' and '.join(retired)} belonged to a removed export of this volume: clients may "
                                "still hold file handles carrying it, which would reach this export; give --force "
                                "if this is that export's directory coming back")

    def allocate_export_id(self, taken: Iterable[int] = ()) -> int:
        """The lowest id of the range that no export has, had (retired) or is `taken` (served
        by this node for something else); ConflictError when there is none."""
        used = {e.export_id for e in self.exports} | set(taken)
        lo, hi = self.id_range
        candidate = idranges.next_outside(self.retired_ids, lo)
        while candidate <= hi:
            if candidate not in used:
                return candidate
            candidate = idranges.next_outside(self.retired_ids, candidate + 1)
        raise ConflictError(f"this volume's Export_Id range {lo}-{hi} has no id left ({self.ids_text()}); "
                            "widen or move it with 'ganesha-ha volume set-range'")

    def ids_left(self, taken: Iterable[int] = ()) -> int:
        """How many ids of the range are still to be handed out: not in use, not retired,
        not `taken`."""
        lo, hi = self.id_range
        gone = {i for i in {e.export_id for e in self.exports} | set(taken)
                if lo <= i <= hi and not self.id_retired(i)}
        return hi - lo + 1 - len(gone) - idranges.count_within(self.retired_ids, lo, hi)

    def ids_text(self) -> str:
        lo, hi = self.id_range
        in_use = sum(1 for e in self.exports if lo <= e.export_id <= hi)
        return f"{in_use} in use, {idranges.count_within(self.retired_ids, lo, hi)} retired"

    def retiring(self, before: "RegistryState") -> "RegistryState":
        """This state, with the Export_Ids and numeric fsids that exports of `before` had and
        no export has now added to the retired ones (a removal, an identity changed with
        --force): never handed out again."""
        ids = {e.export_id for e in before.exports} - {e.export_id for e in self.exports}
        fsids = {e.knfsd.fsid for e in before.exports} - {e.knfsd.fsid for e in self.exports}
        numbers = [int(f) for f in fsids if f.isdigit()]
        if not ids and not numbers:
            return self
        return replace(self, retired_ids=idranges.add(self.retired_ids, ids),
                       retired_fsids=idranges.add(self.retired_fsids, numbers))

    def allocate_fsid(self) -> str:
        used = {e.knfsd.fsid for e in self.exports}
        while True:
            fsid = new_fsid()
            if fsid not in used:
                return fsid

    def instance_settings(self) -> dict[str, int]:
        """The instance's times the volume sets (none in shared mode): {"grace_period": S, ...}."""
        return {k: v for k in ("grace_period", "lease_lifetime") if (v := getattr(self, k)) is not None}

    def to_json(self) -> bytes:
        doc = {
            "schema": SCHEMA_NAME,
            "version": SCHEMA_VERSION,
            "volume": {"uuid": self.volume_uuid, "server": self.server,
                       "export_id_range": list(self.id_range), "ganesha_mode": self.ganesha_mode,
                       **({"instance": self.instance_settings()} if self.ganesha_mode == INSTANCE else {})},
            "generation": self.generation,
            "retired": {"export_ids": [list(r) for r in self.retired_ids],
                        "fsids": [list(r) for r in self.retired_fsids]},
            "exports": [e.to_dict() for e in self.exports],
        }
        return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes, source: str = "registry") -> "RegistryState":
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{source} is not valid JSON ({exc}); restore it from a backup "
                                "or re-create the exports") from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_NAME:
            raise RegistryError(f"{source} is not a ganesha-ha registry")
        version = doc.get("version")
        if not isinstance(version, int) or version < 1:
            raise RegistryError(f"{source} has no valid schema version")
        if version > SCHEMA_VERSION:
            raise RegistryError(f"{source} has schema version {version}, newer than this ganesha-ha "
                                f"understands ({SCHEMA_VERSION}); upgrade ganesha-ha on this node")
        try:
            if version < SCHEMA_VERSION:
                from .registry_migrations import upgrade_document

                doc = upgrade_document(doc, version)
            vol = doc["volume"]
            lo, hi = vol["export_id_range"]
            memo: dict[str, Any] = {}   # the client lists and FSALs the exports share (Export.from_dict)
            exports = tuple(export_from_dict(e, version, memo) for e in doc.get("exports", []))
            retired = doc["retired"]
            return cls(volume_uuid=str(vol["uuid"]), server=vol["server"], id_range=(int(lo), int(hi)),
                       exports=exports, generation=int(doc.get("generation", 0)),
                       retired_ids=_pairs(retired["export_ids"]), retired_fsids=_pairs(retired["fsids"]),
                       ganesha_mode=vol["ganesha_mode"], **_instance_times(vol.get("instance", {})))
        except GaneshaHAError as exc:
            raise RegistryError(f"{source} is invalid: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"{source} is invalid: missing or malformed {exc}") from None


def _instance_times(data: Any) -> dict[str, Any]:
    """The registry's "instance" object: only the keys RegistryState knows (checked there)."""
    if not isinstance(data, dict) or set(data) - {"grace_period", "lease_lifetime"}:
        raise ValueError(f"instance settings {data!r}")
    return dict(data)


def export_from_dict(data: Any, version: int = SCHEMA_VERSION, memo: dict[str, Any] | None = None) -> Export:
    """An export as a registry of schema `version` stores it (older forms migrated:
    registry_migrations.py); `memo`: Export.from_dict's, kept for one document."""
    if version < SCHEMA_VERSION:
        from .registry_migrations import upgrade_export

        data = upgrade_export(data, version)
    return Export.from_dict(data, memo)


def _pairs(value: Any) -> list[tuple[int, int]]:
    """[[low, high], ...] from the registry; TypeError/ValueError when malformed."""
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise ValueError("retired ranges")
    return [(_whole(lo), _whole(hi)) for lo, hi in value]


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} in the retired ranges")
    return value


def _matches(exp: Export, key: str | int) -> bool:
    """An int is an Export_Id, a string a directory, even one spelt with digits only
    (`Volume.key` turns a command line's digits into an int)."""
    if isinstance(key, int):
        return exp.export_id == key
    return exp.path == key


def check_unique(exports: Iterable[Export]) -> None:
    """No two exports of a volume share a directory, pseudo path, Export_Id or fsid, and
    exports using one FSAL give its module block the same options (fsal.check_module_agreement)."""
    from .fsal import check_module_agreement

    exports = tuple(exports)
    seen: dict[str, dict[Any, str]] = {"directory": {}, "pseudo path": {}, "Export_Id": {}, "fsid": {}}
    for exp in exports:
        for what, value in (("directory", exp.path), ("pseudo path", exp.pseudo),
                            ("Export_Id", exp.export_id), ("fsid", exp.knfsd.fsid)):
            other = seen[what].get(value)
            if other is not None:
                raise ConflictError(f"{what} {value!r} of export '{exp.path or '/'}' is already used by "
                                    f"export '{other or '/'}'")
            seen[what][value] = exp.path
    check_module_agreement([(exp.path or "/", exp.ganesha.fsal) for exp in exports])


def check_range_free(id_range: tuple[int, int], others: Iterable[tuple[str, tuple[int, int]]],
                     served: Iterable[int] = (), server: str = "this node's server") -> None:
    """ConflictError (exit 5) when the Export_Id range `id_range` overlaps the range of one of
    `others` ((mount point, range) of the other volumes mounted on this node) or holds one
    of `served` (ids this node's server serves now for something else)."""
    lo, hi = id_range
    for mountpoint, (olo, ohi) in others:
        if olo <= hi and lo <= ohi:
            raise ConflictError(f"Export_Id range {lo}-{hi} overlaps {olo}-{ohi}, the range of the volume "
                                f"{mountpoint} mounted on this node; choose a range apart from it")
    inside = sorted(i for i in set(served) if lo <= i <= hi)
    if inside:
        raise ConflictError(f"Export_Id range {lo}-{hi} holds {idranges.text(idranges.add((), inside))}, "
                            f"served now by {server} for something else; choose a range apart from them")


def random_id_range(block: int, avoid: Iterable[int] = ()) -> tuple[int, int]:
    """A random block of `block` ids within 1..65535 that contains none of `avoid`.

    Blocks start at multiples of `block` from `block` itself, so ids 1..block-1 stay free
    for hand-written exports of the node's own config.
    """
    avoid_set = set(avoid)
    starts = [s for s in range(block, EXPORT_ID_MAX - block + 2, block)
              if not any(s <= a < s + block for a in avoid_set)]
    if not starts:
        raise ConflictError("no free block of Export_Ids left; give --id-range explicitly")
    import random

    start = random.SystemRandom().choice(starts)
    return (start, start + block - 1)


# The last registry read and parsed per path, in this process: an agent's start loads it more
# than once (validate, the transaction), and parsing 1000 exports costs ~40 ms. Reused only for
# the very same bytes; a RegistryState is immutable.
_PARSED: dict[str, tuple[bytes, RegistryState]] = {}


class Registry:
    """Access to one volume's registry: lock, load, atomic save."""

    def __init__(self, mountpoint: Path | str, lock_timeout: float = 30.0,
                 require_mounted: Callable[[Path], None] = require_mountpoint):
        self.mountpoint = Path(mountpoint)
        self.require_mounted = require_mounted  # NotMountedError unless a mounted file system
        self.state_dir = self.mountpoint / STATE_DIR
        self.path = self.state_dir / REGISTRY_FILE
        self.lock_timeout = lock_timeout

    def relpath(self, directory: str) -> str:
        """A directory given on the command line (absolute inside the volume, or relative) → stored form."""
        text = str(directory)
        if text.startswith("/"):
            mp = str(self.mountpoint).rstrip("/")
            if text != mp and not text.startswith(mp + "/"):
                raise ValidationError("directory", f"{text} is not inside the volume {mp}")
            text = text[len(mp):]
        return normalize_relpath("directory", text)

    def abspath(self, exp_or_rel: Export | str) -> Path:
        rel = exp_or_rel.path if isinstance(exp_or_rel, Export) else exp_or_rel
        return self.mountpoint / rel if rel else self.mountpoint

    def exists(self) -> bool:
        return self.path.exists()

    def _check_dir(self) -> None:
        self.require_mounted(self.mountpoint)
        try:
            check_secure_dir(self.state_dir)
        except FileNotFoundError:
            raise NotInitialisedError(f"{self.mountpoint} has no ganesha-ha registry; run "
                                      f"'ganesha-ha volume init {self.mountpoint} --server {'|'.join(SERVERS)}'") from None

    def load(self) -> RegistryState:
        """Read the registry (no lock needed: writes are atomic renames)."""
        self._check_dir()
        raw = read_secure(self.path)
        if raw is None:
            raise NotInitialisedError(f"{self.mountpoint} has no ganesha-ha registry; run "
                                      f"'ganesha-ha volume init {self.mountpoint} --server {'|'.join(SERVERS)}'")
        cached = _PARSED.get(str(self.path))
        if cached is not None and cached[0] == raw:
            return cached[1]
        state = RegistryState.from_json(raw, str(self.path))
        _PARSED[str(self.path)] = (raw, state)
        return state

    def save(self, state: RegistryState) -> RegistryState:
        """Write `state` atomically (caller holds the lock); bumps the generation."""
        new = replace(state, generation=state.generation + 1)
        atomic_write(self.path, new.to_json())
        return new

    def init(self, server: str, id_range: tuple[int, int] | None, id_block: int,
             avoid_ids: Iterable[int] = (), ganesha_mode: str = SHARED,
             instance: dict[str, int] | None = None) -> RegistryState:
        """Create the state directory and an empty registry; refuses to overwrite one.
        `instance`: the instance's times the volume sets (RegistryState.instance_settings).
        ValidationError for a `ganesha_mode` the server cannot run, or times it does not take
        (before anything is written)."""
        import uuid  # here, not at the top: only init needs it, and every agent call imports this module

        new = RegistryState(volume_uuid=str(uuid.uuid4()), server=server, id_range=id_range or (1, 1),
                            ganesha_mode=ganesha_mode, **(instance or {}))

        self.require_mounted(self.mountpoint)
        ensure_secure_dir(self.state_dir)
        with self.locked():
            if self.path.exists():
                raise ConflictError(f"{self.mountpoint} already has a ganesha-ha registry")
            rng = id_range or random_id_range(id_block, avoid_ids)
            return self.save(replace(new, id_range=rng))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the volume's exclusive lock (flock on a file in the state directory).

        flock locks die with the process, so a killed writer never leaves the volume locked.
        """
        self._check_dir()
        lock_path = self.state_dir / LOCK_FILE
        # a state file like the others: whoever can open it can hold it and stall every change
        check_secure_file(lock_path)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # read-only volume (ext4 remounts so on errors), a link put in meanwhile
            raise RegistryError(f"cannot open {lock_path}: {exc.strerror}") from None
        try:
            if not wait_for_lock(lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB), self.lock_timeout):
                raise LockTimeout(f"{lock_path} is held by another ganesha-ha for more than "
                                  f"{self.lock_timeout:g} s")
            remove_stale_temps(self.state_dir, REGISTRY_FILE)
            yield
        finally:
            os.close(fd)
