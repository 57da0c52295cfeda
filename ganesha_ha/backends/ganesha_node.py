"""This node's Ganesha as a take-over needs it: NFSv4 server scope, recovery backend, NLM and
grace settings, read from its config file. Parsing is pure; `load_node_config` reads files.

Why each matters (Ganesha 4.3 source, measured in docs/research/clients-facts.md 2 and 4):
- **Server scope.** An NFSv4.1+ client reclaims on another server only if that server
  presents the same `eir_server_scope` (RFC 8881 §2.10.4); Linux compares the scope bytewise
  (fs/nfs/nfs4proc.c `nfs41_same_server_scope`) and, on a mismatch, recovers with new opens
  and locks: its state is lost. Ganesha's scope is `NFSv4 { Server_Scope }` when set, else
  `<Server_Owner or gethostname()>_NFS-Ganesha` (src/Protocols/NFS/nfs4_op_exchange_id.c),
  so nodes with different host names and no common Server_Scope never agree. Ganesha
  computes it at the first EXCHANGE_ID after it started: a change of the file takes effect
  at its next restart.
- **Recovery backend.** `NFSv4 { RecoveryBackend }` (default `fs`, src/include/gsh_config.h
  RECOVERY_BACKEND_DEFAULT). ganesha-ha moves the records of the `fs` backend's tree and
  takes them over by IP (event 5). `fs_ng` accepts the event and silently loads nothing
  (src/SAL/recovery/recovery_fs_ng.c: the take-over read is under `#ifdef FIXME`, measured),
  `rados_ng` and `rados_cluster` refuse take-over ("Unable to perform takeover", "does not
  support takeover!"), and `rados_kv` reads RADOS objects ganesha-ha does not write (and
  its module is not packaged in Debian 12: Ganesha does not start with it).
- **Enable_NLM** (NFS_CORE_PARAM, default true): with NLM on, Ganesha never ends grace early
  (src/SAL/nfs4_recovery.c `nfs_try_lift_grace`: the RECLAIM_COMPLETE count is compared only
  `if (!enable_NLM)`), so every take-over grace lasts the full Grace_Period.
- **Grace_Period** (default 90 s) and **Lease_Lifetime** (60 s): with NLM off, grace ends at
  the first reaper tick after every taken-over client sent RECLAIM_COMPLETE; the reaper runs
  every 10 s, or every Lease_Lifetime/2 s when the lease is under 20 s
  (src/MainNFSD/nfs_reaper_thread.c `reaper_init`).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..record import Record

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .node_exports import NodeExport

DEFAULT_SCOPE_SUFFIX = "_NFS-Ganesha"
TAKEOVER_BACKENDS = frozenset({"fs"})
WHY_NOT = {
    "fs_ng": "accepts the take-over event but loads no record (recovery_fs_ng.c), so moved clients cannot reclaim",
    "rados_ng": "refuses take-over (\"Unable to perform takeover with rados_ng recovery backend\")",
    "rados_cluster": "refuses take-over (\"Clustered rados backend does not support takeover!\")",
    "rados_kv": "takes over RADOS objects that ganesha-ha does not write (it moves the fs backend's files)",
}
MAX_INCLUDE_DEPTH = 10
REAPER_DELAY = 10       # src/MainNFSD/nfs_reaper_thread.c
# FSALs over the node's own file systems: an export claims the file systems mounted below its
# Path too (src/FSAL/localfs.c claim_posix_filesystems; measured with VFS: a block with Path =
# the parent of a tmpfs mount point served the tmpfs's files). NULL stacks over one of them.
LOCAL_FSALS = frozenset({"VFS", "XFS", "LUSTRE", "GPFS", "NULL"})


class NodeConfig(Record, frozen=True):
    """What one node's Ganesha config sets (None: not set, Ganesha's default applies)."""

    path: str
    server_scope: str | None = None
    server_owner: str | None = None
    recovery_backend: str = "fs"
    enable_nlm: bool = True
    grace_period: int = 90
    lease_lifetime: int = 60
    exports: tuple[NodeExport, ...] = ()   # its EXPORT blocks, each with its file and line

    def scope(self, hostname: str) -> str:
        """The server scope this Ganesha presents (without the trailing NUL it sends on the
        wire), on a host whose gethostname() is `hostname`."""
        if self.server_scope:
            return self.server_scope
        return (self.server_owner or hostname) + DEFAULT_SCOPE_SUFFIX

    def takeover_problem(self) -> str | None:
        """Why a take-over cannot work with this recovery backend; None for `fs`."""
        if self.recovery_backend in TAKEOVER_BACKENDS:
            return None
        why = WHY_NOT.get(self.recovery_backend, "is not a recovery backend Ganesha 4.3 knows")
        return (f"{self.path} sets NFSv4 RecoveryBackend = {self.recovery_backend}, which {why}: "
                "ganesha-ha needs RecoveryBackend = fs (Ganesha's default)")

    def reaper_tick(self) -> int:
        """Seconds between two checks whether grace can end early (reaper_init)."""
        return self.lease_lifetime // 2 if self.lease_lifetime < 2 * REAPER_DELAY else REAPER_DELAY


def exports_of(conf: NodeConfig, mountpoint: str, export_ids: set[int],
               pseudos: dict[str, int] | None = None) -> list[str]:
    """Warnings for the EXPORT blocks of `conf` (this node's Ganesha config) that serve a
    directory of the volume at `mountpoint` or take one of its `export_ids`, or one of its
    `pseudos` ({pseudo path: Export_Id}) under another Export_Id: the agent makes
    them live from the registry, but this node's Ganesha serves the blocks again at its next
    start, also after the volume moved away (README, import: remove the imported blocks).
    Pure (node_exports)."""
    from .node_exports import ganesha_warning, of_volume

    return ganesha_warning(of_volume(conf.exports, mountpoint, export_ids, pseudos=pseudos), mountpoint, pseudos)


def _bool(value: str) -> bool | None:
    v = value.lower()
    if v in ("true", "yes", "on", "1"):
        return True
    if v in ("false", "no", "off", "0"):
        return False
    return None


def parse_node_config(text: str, path: str = "ganesha.conf",
                      origins: Sequence[tuple[str, int]] = ()) -> NodeConfig:
    """The take-over settings of a Ganesha config text (includes already expanded). Block and
    key names are case-insensitive, as Ganesha reads them; a value Ganesha would refuse is
    left at its default here (Ganesha would not start). `origins`: the (file, line) of each
    line of `text` (expand_includes_mapped), for where each EXPORT block is written; without
    it, `path` and the line in `text`. ValueError when the text does not parse. Pure."""
    from .ganesha_conf_parse import parse_config
    from .node_exports import NodeExport

    # a `%` directive left in (an include not followed) is blanked, keeping the line count
    blocks = parse_config("\n".join("" if ln.lstrip().startswith("%") else ln for ln in text.split("\n")))
    out: dict[str, object] = {}
    exports: list[NodeExport] = []

    def first(block, key: str) -> str | None:
        v = block.get(key)
        return v[0] if v else None

    for b in blocks:
        name = b.name.lower()
        if name == "nfsv4":
            for key, field in (("Server_Scope", "server_scope"), ("Server_Owner", "server_owner")):
                v = first(b, key)
                if v:
                    out[field] = v
            v = first(b, "RecoveryBackend")
            if v:
                out["recovery_backend"] = v.lower()
            for key, field in (("Grace_Period", "grace_period"), ("Lease_Lifetime", "lease_lifetime")):
                v = first(b, key)
                if v and v.isdigit():
                    out[field] = int(v)
        elif name == "nfs_core_param":
            v = first(b, "Enable_NLM")
            if v and _bool(v) is not None:
                out["enable_nlm"] = _bool(v)
        elif name == "export":
            export_id = first(b, "Export_Id")
            source, line = origins[b.line - 1] if 0 < b.line <= len(origins) else (path, b.line)
            exports.append(NodeExport(first(b, "Path") or "", source, line,
                                      export_id=int(export_id) if export_id and export_id.isdigit() else None,
                                      pseudo=first(b, "Pseudo"),
                                      submounts=any((first(f, "Name") or "").upper() in LOCAL_FSALS
                                                    for f in b.sub("FSAL"))))
    return NodeConfig(path=path, exports=tuple(exports), **out)  # type: ignore[arg-type]


def expand_includes(path: Path, depth: int = 0) -> str:
    """The config text with each `%include "file"` line replaced by that file's text, as
    Ganesha's parser reads it: a relative name is taken from the directory of the TOP file,
    at every depth (src/config_parsing/conf_lex.l new_file: `conf_dir` is set from the first
    file only; measured with Ganesha 4.3: `%include "b.conf"` in `sub/a.conf`, itself included
    by `/x/top.conf`, serves the EXPORT block of `/x/b.conf`, not of `/x/sub/b.conf`). OSError
    when a file cannot be read; ValueError for includes nested too deep."""
    return "\n".join(line for line, _ in _expanded(path, depth))


def expand_includes_mapped(path: Path) -> tuple[str, list[tuple[str, int]]]:
    """expand_includes, and for each line of the text the file and 1-based line it comes from."""
    pairs = _expanded(path, 0)
    return "\n".join(line for line, _ in pairs), [origin for _, origin in pairs]


def _expanded(path: Path, depth: int, base: Path | None = None) -> list[tuple[str, tuple[str, int]]]:
    base = path.parent if base is None else base   # the top file's directory (expand_includes)
    if depth > MAX_INCLUDE_DEPTH:
        raise ValueError(f"%include nested deeper than {MAX_INCLUDE_DEPTH} at {path}")
    out: list[tuple[str, tuple[str, int]]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").split("\n"), 1):
        s = line.strip()
        if s.lower().startswith("%include"):
            target = s[len("%include"):].strip().strip('"').strip("'")
            if target:
                inc = Path(target) if os.path.isabs(target) else base / target
                out += _expanded(inc, depth + 1, base)
                continue
        out.append((line, (str(path), n)))
    return out


def load_node_config(path: str) -> tuple[NodeConfig | None, str | None]:
    """(the settings of the Ganesha config at `path`, None) or (None, why it cannot be read)."""
    try:
        text, origins = expand_includes_mapped(Path(path))
        return parse_node_config(text, path, origins), None
    except (OSError, ValueError) as exc:
        return None, f"{path}: {getattr(exc, 'strerror', None) or exc}"
