"""Ganesha's NFSv4 client records: the fs recovery backend's tree, carried with the volume.

Facts (nfs-ganesha 4.3, src/SAL/recovery/recovery_fs.c): with `RecoveryBackend = fs` Ganesha
records each confirmed NFSv4 client as a directory (long ids split into nested directories)
under <RecoveryRoot>/<RecoveryDir>/, or, when it runs "clustered" as Debian's 4.3 does by
default, under <RecoveryRoot>/<RecoveryDir>/node<N>/. A take-over (admin grace event
EVENT_TAKE_IP with a key, sent by ganesha.py) reads <RecoveryRoot>/<key>/<RecoveryDir>/,
with no node level.

The volume's copy is `<mount point>/.ganesha-ha/ganesha-recovery.json`: the tree as a sorted
list of {path, type[, data]} relative to the node directory; restore writes it under the
take-over directory of the volume's key (its floating IP, or `vol-<uuid>` without one).

Only the volume's clients go into its copy (`select_clients`). Ganesha ends a take-over's
grace period early only when every client record it loaded has sent RECLAIM_COMPLETE
(src/SAL/nfs4_recovery.c `nfs_try_lift_grace`: reclaim_completes == clid_count, checked on
the reaper's tick, and only with Enable_NLM = false): one record of a client that will not
come back through this IP (another volume's client, a client of this node's own address)
holds the grace for its whole Grace_Period, 90 s by default (measured: 34 s with Grace_Period
30 and one extra record, 4 s without). A record names the client's address as the server's
socket saw it, never the server address (`fs_create_clid_name`), so the volume's clients are
told by their connections to the floating IP's NFS port (peers.py). Records of NFSv4.0
clients pin the grace all the same: 4.0 has no RECLAIM_COMPLETE.

The node's own tree holds only records of volumes active here. Ganesha's start (and a
restart after a crash) loads every record of its tree (<RecoveryRoot>/<RecoveryDir>[/node<N>]
moved to <RecoveryRoot>/v4old[/node<N>], and what v4old held: recovery_fs.c
`fs_read_recov_clids_recover`) and holds its start grace until each of those clients sent
RECLAIM_COMPLETE; a take-over that comes during that grace *adds* its records to the same
list (nfs4_recovery.c `nfs_start_grace`, was_grace) and restarts the period. So a record of
a client whose volume has moved away, left on the node (Ganesha removes it only when the
client's lease expires there), pins the start grace, and any take-over inside it, to the full
Grace_Period (measured in the lab: 96 s with Grace_Period 90, after a kill -9 and restart).
Hence:
- each save also keeps a node-local index of the record names it chose for the volume
  (<RecoveryRoot>/ganesha-ha/<volume uuid>.json; node-local and persistent, as the tree is);
- `clear` (at the volume's stop, after its last save) with Ganesha dead (the stop after a
  kill -9) removes the volume's records from the node's tree (v4recov and v4old), except
  those of clients that another volume still active here claims (in its index, or connected
  to another address of this node's NFS port now). A running Ganesha still holds those
  clients and removes their records itself when their lease ends there (nfs4_clientid.c
  `nfs_client_id_expire`); the tree then stays its own, and the index stays for the prune,
  should it die before;
- `prune_inactive` (run before ganesha.nfsd starts: `ganesha-ha node prune-records`, a
  systemd ExecStartPre) does the same for every indexed volume not active here: after a node
  loss or a reboot none is, and the node's start grace ends at once.
Nothing is saved by either: the volume's copy (what a take-over restores) is untouched.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from pathlib import Path

from ..errors import GaneshaHAError, RegistryError
from ..fsutil import atomic_write, ensure_secure_dir, read_secure

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..context import VolumeContext

RECOVERY_FILE = "ganesha-recovery.json"
INDEX_DIR = "ganesha-ha"      # under RecoveryRoot: never a take-over key (an IP or vol-<uuid>)
OLD_DIR = "v4old"             # Ganesha's RecoveryOldDir (its default; src/include/config-h.in.cmake)


def takeover_key(ctx: VolumeContext) -> str:
    """Directory name under RecoveryRoot for this volume's take-over records (and the key of
    the grace event that makes Ganesha read them)."""
    return ctx.ip or f"vol-{ctx.volume_uuid}"


class GaneshaRecordStore:
    """The record tree of the node's Ganesha, saved to and restored from the volume."""

    name = "NFSv4 records"

    def __init__(self, recovery_root: Path, recovery_dir: str, nfs_port: int = 2049,
                 proc_net: str | None = None, server_running: Callable[[], bool] | None = None):
        self.recovery_root = recovery_root   # Ganesha's RecoveryRoot
        self.recovery_dir = recovery_dir     # Ganesha's RecoveryDir (a name, not a path)
        self.nfs_port = nfs_port             # Ganesha's NFS_Port: the volume's clients connect there
        self.proc_net = proc_net             # whose TCP table tells the volume's clients (None: ours)
        self.server_running = server_running  # is the node's Ganesha up? (None: take it as down)

    def node_dirs(self, name: str | None = None) -> list[Path]:
        """Where this node's Ganesha records its own NFSv4 clients (node<N>/ when clustered);
        `name` another tree of the same shape (OLD_DIR)."""
        base = self.recovery_root / (name or self.recovery_dir)
        nodes = sorted(p for p in base.glob("node*") if p.name[4:].isdigit() and p.is_dir())
        return nodes or [base]

    def tree_dirs(self) -> list[Path]:
        """Every directory whose records Ganesha's next start loads: its record tree and the
        old one (v4old: records of an earlier start whose grace had not ended)."""
        return self.node_dirs() + self.node_dirs(OLD_DIR)

    def index_path(self, volume_uuid: str) -> Path:
        return self.recovery_root / INDEX_DIR / f"{volume_uuid}.json"

    def takeover_dir(self, ctx: VolumeContext) -> Path:
        return self.recovery_root / takeover_key(ctx) / self.recovery_dir

    def save(self, ctx: VolumeContext) -> bool:
        """Copy the NFSv4 client records of the volume's clients onto the volume
        (`select_clients`); write only when changed.

        Ganesha's fs recovery backend keeps one record tree per server, not per export, and
        an extra record holds a take-over's grace for its whole period (module docstring).
        Without a floating IP nothing tells the volume's clients apart: every record is kept.
        """
        merged: dict[str, dict[str, str]] = {}
        for directory in self.node_dirs():
            for rec in snapshot_tree(directory):
                merged.setdefault(rec["path"], rec)
        if ctx.ip:
            from .peers import connected_peers

            previous = {top_name(r["path"]) for r in self.saved_records(ctx)}
            kw = {"proc_net": self.proc_net} if self.proc_net else {}
            keep = select_clients({top_name(p) for p in merged}, previous,
                                  connected_peers(ctx.ip, self.nfs_port, **kw))
            merged = {p: r for p, r in merged.items() if top_name(p) in keep}
        records = [merged[k] for k in sorted(merged)]
        self.write_index(ctx, {top_name(p) for p in merged})
        path = ctx.state_dir / RECOVERY_FILE
        data = (json.dumps({"records": records}, indent=1, sort_keys=True) + "\n").encode()
        if read_secure(path) == data:
            return False
        atomic_write(path, data)
        return True

    def saved_records(self, ctx: VolumeContext) -> list[dict[str, str]]:
        """The volume's copy as {path, type[, data]} records; RegistryError when corrupt."""
        raw = read_secure(ctx.state_dir / RECOVERY_FILE)
        if raw is None:
            return []
        try:
            return list(json.loads(raw)["records"])
        except (ValueError, KeyError, TypeError):
            raise RegistryError(f"{ctx.state_dir / RECOVERY_FILE} is corrupt") from None

    def write_index(self, ctx: VolumeContext, names: set[str]) -> None:
        """Note, on this node, the record names that are the volume's: `names`, and those of
        the last index still in the node's tree (restored clients that have not reclaimed yet
        are in v4old only). Written only when changed."""
        path = self.index_path(ctx.volume_uuid)
        old = read_index(path)
        if old is not None:
            present = tree_names(self.tree_dirs())
            names = names | {n for n in index_names(old) if n in present}
        entry = {"volume_uuid": ctx.volume_uuid, "key": takeover_key(ctx), "names": sorted(names)}
        if old == entry:
            return
        self.recovery_root.mkdir(parents=True, exist_ok=True, mode=0o755)
        ensure_secure_dir(path.parent)
        atomic_write(path, (json.dumps(entry, sort_keys=True) + "\n").encode())

    def restore(self, ctx: VolumeContext) -> int:
        """Put the volume's records where Ganesha's take-over reads them; return the number
        of clients (top-level record directories). The index notes them: the take-over
        copies them into this node's v4old."""
        records = self.saved_records(ctx)
        target = self.takeover_dir(ctx)
        if target.exists():
            shutil.rmtree(target)
        old = os.umask(0o022)  # the parents mkdir creates and every record file: never writable by others
        try:
            target.mkdir(parents=True, mode=0o755)
            restore_tree(target, records)
        finally:
            os.umask(old)
        names = {r["path"] for r in records if r["type"] == "dir" and "/" not in r["path"]}
        self.write_index(ctx, names)
        return len(names)

    def clear(self, ctx: VolumeContext) -> None:
        """After the volume's stop here: its take-over copy, and its clients' records in the
        node's tree (module docstring), are removed; records another volume active here
        claims stay."""
        shutil.rmtree(self.recovery_root / takeover_key(ctx), ignore_errors=True)
        if self._running():
            return
        names = set(index_names(read_index(self.index_path(ctx.volume_uuid))))
        try:
            names |= {top_name(r["path"]) for r in self.saved_records(ctx)}
        except (RegistryError, OSError):
            pass   # unmounted or unreadable: the index alone
        keep = self.claimed_by_others({ctx.volume_uuid}) | self.connected_elsewhere(ctx.ip)
        remove_records(self.tree_dirs(), names - keep)
        self.index_path(ctx.volume_uuid).unlink(missing_ok=True)

    def _running(self) -> bool:
        """Whether Ganesha runs and holds its clients; a server that cannot be asked counts
        as running (its tree is left to it and to the prune before its next start)."""
        if self.server_running is None:
            return False
        try:
            return bool(self.server_running())
        except GaneshaHAError:
            return True

    def claimed_by_others(self, leaving: set[str]) -> set[str]:
        """Record names in the indexes of the volumes not in `leaving`."""
        out: set[str] = set()
        for uuid, entry in self.indexes().items():
            if uuid not in leaving:
                out.update(index_names(entry))
        return out

    def connected_elsewhere(self, ip: str | None) -> set[str]:
        """Record names of the node's tree whose client is connected now to this node's NFS
        port on an address other than `ip`: another volume's client (or the node's own)."""
        from .peers import connected_peers

        kw = {"proc_net": self.proc_net} if self.proc_net else {}
        peers = connected_peers(None, self.nfs_port, exclude=ip, **kw)
        return {n for n in tree_names(self.tree_dirs()) if record_address(n) in peers}

    def indexes(self) -> dict[str, dict]:
        """volume uuid -> its index entry, for every volume this node saved or restored."""
        out = {}
        for path in sorted((self.recovery_root / INDEX_DIR).glob("*.json")):
            entry = read_index(path)
            if entry is not None:
                out[path.stem] = entry
        return out

    def prune_inactive(self, active: set[str]) -> list[str]:
        """Before ganesha.nfsd starts: remove the records (and take-over copies) of every
        indexed volume whose uuid is not in `active` (the volumes active on this node), except
        those an active volume claims. Returns the names removed."""
        entries = self.indexes()
        gone = {u: e for u, e in entries.items() if u not in active}
        if not gone:
            return []
        keep = self.claimed_by_others(set(gone))
        names = set().union(*(set(index_names(e)) for e in gone.values())) - keep
        removed = remove_records(self.tree_dirs(), names)
        for uuid, entry in gone.items():
            key = str(entry.get("key") or "")
            if takeover_key_like(key):
                shutil.rmtree(self.recovery_root / key, ignore_errors=True)
            self.index_path(uuid).unlink(missing_ok=True)
        return sorted(removed)


def takeover_key_like(key: str) -> bool:
    """A name `takeover_key` can give (an IP address, or vol-<uuid>): what an index may name
    for removal under RecoveryRoot, never Ganesha's own trees."""
    from .statd_records import normal_address

    return (normal_address(key) is not None and "/" not in key) or (
        key.startswith("vol-") and valid_name(key))


def read_index(path: Path) -> dict | None:
    """An index entry ({volume_uuid, key, names}); None when absent or unreadable."""
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def index_names(entry: dict | None) -> list[str]:
    names = (entry or {}).get("names") or []
    return [n for n in names if isinstance(n, str) and valid_name(n)]


def valid_name(name: str) -> bool:
    """A top-level record name this code may remove: one path component, not hidden."""
    return bool(name) and "/" not in name and name not in (".", "..") and not name.startswith(("\x01", "."))


def tree_names(dirs: list[Path]) -> set[str]:
    """The top-level record names under `dirs`."""
    out: set[str] = set()
    for d in dirs:
        try:
            out.update(n for n in os.listdir(d) if valid_name(n))
        except OSError:
            continue
    return out


def remove_records(dirs: list[Path], names: set[str]) -> set[str]:
    """Remove the records `names` (top-level directories) from each of `dirs`; the names
    that were there."""
    removed = set()
    for d in dirs:
        for name in names:
            if not valid_name(name):
                continue
            target = d / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
                removed.add(name)
    return removed


def top_name(path: str) -> str:
    """The client record a path of the tree belongs to: its first component (a long record
    name is split into nested directories, the first holding its start)."""
    return path.split("/", 1)[0]


def record_address(name: str) -> str | None:
    """The client address a record name starts with (`<addr>-(<len>:<co_ownerid>)`,
    src/SAL/recovery/recovery_fs.c fs_create_clid_name), normalised; None when it has none."""
    from .statd_records import normal_address

    addr, sep, _ = name.partition("-(")
    return normal_address(addr) if sep else None


def select_clients(names: set[str], previous: set[str], connected: set[str]) -> set[str]:
    """Of the client records on the node (top-level `names`), those of the volume: the client
    is connected to the floating IP's NFS port now, or its record was in the volume's copy
    at the last save (it stays the volume's client while Ganesha keeps its record: a client
    idle at a monitor, a client that reclaimed here after a take-over). A name with no
    address in it is kept: a lost reclaim costs more than a grace held longer. Pure."""
    out = set()
    for name in names:
        addr = record_address(name)
        if addr is None or addr in connected or name in previous:
            out.add(name)
    return out


def snapshot_tree(root: Path) -> list[dict[str, str]]:
    """A recovery tree as a sorted list of {path, type[, data]} (files are small, base64)."""
    out: list[dict[str, str]] = []
    if not root.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for d in dirnames:
            out.append({"path": os.path.normpath(os.path.join(rel_dir, d)), "type": "dir"})
        for f in sorted(filenames):
            full = os.path.join(dirpath, f)
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode):
                continue
            with open(full, "rb") as fh:
                data = base64.b64encode(fh.read(65536)).decode()
            out.append({"path": os.path.normpath(os.path.join(rel_dir, f)), "type": "file", "data": data})
    return sorted(out, key=lambda r: r["path"])


def restore_tree(root: Path, records: list[dict[str, str]]) -> None:
    for rec in sorted(records, key=lambda r: r["path"]):
        rel = rec["path"]
        if rel.startswith("/") or ".." in rel.split("/"):
            raise RegistryError(f"recovery record {rel!r} escapes its directory")
        target = root / rel
        if rec["type"] == "dir":
            target.mkdir(parents=True, exist_ok=True, mode=0o755)
        else:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            target.write_bytes(base64.b64decode(rec.get("data", "")))


class InstanceRecords:
    """The NFSv4 client records of a volume's own Ganesha instance (backends/ganesha_instance.py).

    That instance keeps them itself, in its RecoveryRoot on the volume (`root`): they are the
    volume's by construction, and whichever node starts the instance next reads them at its
    start. So nothing is copied: `save` and `clear` have nothing to do, and `restore` only
    counts the clients that may reclaim (the top-level entries of v4recov/ and of v4old/,
    where Ganesha moves them at start; src/SAL/recovery/recovery_fs.c).
    """

    name = "NFSv4 records (on the volume)"

    def __init__(self, root: Path):
        self.root = root

    def save(self, ctx: VolumeContext) -> bool:
        return False

    def restore(self, ctx: VolumeContext) -> int:
        names: set[str] = set()
        for sub in ("v4recov", "v4old"):
            try:
                names.update(n for n in os.listdir(self.root / sub) if "-(" in n and not n.startswith("\x01"))
            except OSError:
                continue
        return len(names)

    def clear(self, ctx: VolumeContext) -> None:
        return None
