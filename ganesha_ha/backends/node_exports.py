"""Exports that the node's own server configuration makes of a volume, outside ganesha-ha
(pure): Ganesha's EXPORT blocks (ganesha.conf and its `%include`s) and knfsd's exports(5)
lines (/etc/exports, /etc/exports.d/*.exports).

Why they matter: ganesha-ha serves a volume only on the node where it is active. An export
of one of its directories in a node's own files is served by that node's server whenever it
(re)reads them: a restart of the system Ganesha, `exportfs -ra` or a restart of
nfs-server.service, on every node, also where the volume is not active. There the clients
get file handles of the wrong node, or, with the volume not mounted, an export of the empty
directory under the mount point: what they write lands in the node's root file system. Left
behind by an `import` (README: remove the imported blocks/lines afterwards) or by hand.

What counts: an export whose directory is the volume's mount point or lies inside it (the
path compared after the normalisation the kernel's lookup gives: `//` and `/./` collapsed,
`..` taken back, no trailing `/`; for knfsd also where its symbolic links lead, as exportfs
follows them: follow_links), or an export above it that serves the file systems mounted
below it (knfsd's `crossmnt`; a Ganesha FSAL over the node's file systems), or, outside it,
one that takes an identity of the volume's exports (a Ganesha Export_Id or pseudo path; a
knfsd fsid), which collides when both are served.
The files are parsed by the project's readers (formats/exports5.parse,
ganesha_conf_parse.parse_config); this module compares and words the warning. Its two
effects: `read_exports_files` reads the exports(5) files as exportfs finds them, and
`follow_links` resolves their paths as exportfs does.
"""
from __future__ import annotations

from ..record import Record

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

SHOWN = 5   # exports named in one warning; the rest are counted


class NodeExport(Record, frozen=True):
    """One export of a node's own server configuration, and where it is written."""

    path: str                      # as the file gives it (quotes dropped, escapes decoded)
    source: str                    # the file
    line: int                      # 1-based line of `source` where the line or block begins
    export_id: int | None = None   # Ganesha's Export_Id (None: not set, or not a number)
    fsid: str | None = None        # knfsd's fsid= (knfsd_table.normalize_fsid)
    clients: tuple[str, ...] = ()  # knfsd: the line's clients, in file order
    resolved: str | None = None    # knfsd: the directory exportfs exports (links followed), when not `path`
    submounts: bool = False        # serves the file systems mounted below `path` too (knfsd crossmnt, Ganesha VFS)
    pseudo: str | None = None      # Ganesha's Pseudo (None: not set)

    def where(self) -> str:
        return f"{self.source} line {self.line}"


def normalise(path: str) -> str | None:
    """An absolute path as a lookup from `/` reads it: empty and `.` components dropped
    (`//`, `/./`, a trailing `/`), `..` taking back the component before it (never above
    `/`); None for a path that is not absolute (exportfs and Ganesha refuse those). Purely
    lexical (posixpath.normpath; its one POSIX exception, a leading `//` kept, is folded
    first): symbolic links are not followed (the files may name directories of a volume
    that is not mounted on this node)."""
    import posixpath

    return posixpath.normpath("/" + path.lstrip("/")) if path.startswith("/") else None


def in_volume(path: str, mountpoint: str) -> bool:
    """True when `path` is the volume's mount point or lies inside it (`/vol2` is not in
    `/vol`), both normalised."""
    p, m = normalise(path), normalise(mountpoint)
    if p is None or m is None:
        return False
    return p == m or p.startswith(m.rstrip("/") + "/")


def of_volume(exports: Iterable[NodeExport], mountpoint: str, export_ids: Iterable[int] = (),
              fsids: Iterable[str] = (), pseudos: Mapping[str, int] | None = None) -> list[NodeExport]:
    """The exports of `exports` that serve the volume mounted at `mountpoint`: a directory
    in it, or a directory above it that serves the file systems mounted below (`submounts`:
    knfsd's `crossmnt`, exports(5); Ganesha's VFS and the FSALs like it, measured: a VFS
    block with Path = the parent of a volume's mount point serves the volume's files at
    PSEUDO/vol/...), or an Export_Id of
    `export_ids`, or an fsid of `fsids` (both compared as the callers normalise them:
    knfsd_table.normalize_fsid), or a Ganesha pseudo path of `pseudos` ({pseudo path: the
    volume's Export_Id of it}) under another Export_Id (`_takes`), in the given order."""
    ids, fs = set(export_ids), set(fsids)
    return [e for e in exports
            if in_volume(e.path, mountpoint) or (e.resolved is not None and in_volume(e.resolved, mountpoint))
            or _above(e, mountpoint)
            or (e.export_id is not None and e.export_id in ids)
            or (e.fsid is not None and e.fsid in fs)
            or _takes(e, pseudos)]


def _above(e: NodeExport, mountpoint: str) -> bool:
    """Does `e` serve the volume as a file system mounted below its directory?"""
    where = e.resolved or e.path
    return e.submounts and in_volume(mountpoint, where) and not in_volume(where, mountpoint)


def _takes(e: NodeExport, pseudos: Mapping[str, int] | None) -> bool:
    """Does block `e` hold one of the volume's pseudo paths ({pseudo: Export_Id}, compared
    normalised) under another Export_Id? Ganesha serves the block from its config at its
    start, and the volume's AddExport of that pseudo path is then refused (measured: "invalid
    param value"). The same Export_Id is the volume's own export left in the file (an import)."""
    if not pseudos or e.pseudo is None:
        return False
    wanted = {normalise(p): i for p, i in pseudos.items()}.get(normalise(e.pseudo))
    return wanted is not None and wanted != e.export_id


def _shown(items: Sequence[str]) -> str:
    return ", ".join(items[:SHOWN]) + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def ganesha_warning(hits: Sequence[NodeExport], mountpoint: str, pseudos: Mapping[str, int] | None = None) -> list[str]:
    """The warning for EXPORT blocks of the node's Ganesha config that serve the volume
    (of_volume's result with `pseudos`, the volume's {pseudo path: Export_Id}), [] for none."""
    if not hits:
        return []
    shown = _shown([f"Export_Id {'?' if e.export_id is None else e.export_id} ({e.path}"
                    f"{_TAKEN.format(e.pseudo) if _takes(e, pseudos) else ''}"
                    f"{_ABOVE_GANESHA if _above(e, mountpoint) else ''})"
                    f" at {e.where()}" for e in hits])
    return [f"remove the EXPORT block(s) of {shown} from the Ganesha config of every node: they serve {mountpoint} "
            "(a directory in it or above it, one of its Export_Ids or pseudo paths) outside ganesha-ha, so the "
            "node's Ganesha serves them again at its next start, also where the volume is not active (handles of the "
            "wrong node; with the volume not mounted, the directory under the mount point)"]


_TAKEN = ", pseudo {} of the volume: its own export of it is then refused on that node"
_ABOVE = ", crossmnt: the volume goes to them too, with these options, where it is mounted"
_ABOVE_GANESHA = ", above it: Ganesha serves the file systems mounted below, the volume too, where it is mounted"


def exports5_warning(hits: Sequence[NodeExport], mountpoint: str) -> list[str]:
    """The warning for exports(5) lines of the node that export the volume (of_volume's
    result), [] for none."""
    if not hits:
        return []
    shown = _shown([f"{e.path} (to {' '.join(e.clients[:3])}{' ...' if len(e.clients) > 3 else ''}"
                    f"{', fsid=' + e.fsid if e.fsid is not None else ''}"
                    f"{', exported as ' + e.resolved if e.resolved is not None else ''}"
                    f"{_ABOVE if _above(e, mountpoint) else ''})"
                    f" at {e.where()}" for e in hits])
    return [f"remove the line(s) exporting {shown} from the exports(5) files of every node: they export "
            f"{mountpoint} (a directory in it, one above it with crossmnt, or one of its fsids) outside ganesha-ha, "
            "so 'exportfs -ra' or a restart of nfs-server exports them on that node, also where the volume is not "
            "active (handles of the wrong node; with the volume not mounted, the directory under the mount point: "
            "writes land in the node's root file system)"]


def exports5_entries(sources: Sequence[tuple[str, bytes]]) -> tuple[list[NodeExport], list[str]]:
    """The exports of exports(5) files [(name, bytes)], one per line (its clients together),
    and a problem for each file exportfs would not read to its end: its syntax error. Like
    exportfs (getexportent returns no more entries), the lines before the bad one count."""
    from ..formats.exports5 import ExportsSyntaxError, parse
    from .knfsd_table import normalize_fsid

    out: list[NodeExport] = []
    problems: list[str] = []
    for name, data in sources:
        try:
            entries = parse(data)
        except ExportsSyntaxError as exc:
            problems.append(f"{name} line {exc.line}: {exc.detail} (exportfs stops reading this file there; "
                            "the lines after it are not compared)")
            entries = parse(b"\n".join(data.split(b"\n")[:exc.line - 1]))   # the entries before it parsed
        lines: dict[tuple[int, str], list] = {}
        for entry in entries:
            lines.setdefault((entry.line, entry.path), []).append(entry)
        for (line, path), group in lines.items():
            fsid = next((o.partition("=")[2] for e in group for o in e.options if o.startswith("fsid=")), None)
            out.append(NodeExport(path, name, line, fsid=None if fsid is None else normalize_fsid(fsid),
                                  clients=tuple(e.host for e in group),
                                  submounts=any("crossmnt" in e.options for e in group)))
    return out, problems


def follow_links(entries: Sequence[NodeExport]) -> list[NodeExport]:
    """`entries` with `resolved` set where the directory exportfs exports differs from the
    path as written: exportfs follows symbolic links (nfs-utils support/nfs/exports.c
    exportent_mkrealpath, realpath(3); measured: a line for `/x/link/d`, `link` -> the
    volume's mount point, is `/vol/d` in etab), so a line naming a link into the volume
    exports the volume. A path that does not resolve is kept as written (realpath(3) of a
    volume not mounted here still resolves the links before its mount point)."""
    import os

    from ..record import replace

    out = []
    for e in entries:
        real = os.path.realpath(e.path) if e.path.startswith("/") else None
        out.append(e if real is None or real == normalise(e.path) else replace(e, resolved=real))
    return out


def read_exports_files(exports_file: str, exports_dir: str) -> tuple[list[tuple[str, bytes]], list[str]]:
    """What `exportfs -a` reads (nfs-utils support/export/export.c export_read, export_d_read):
    `exports_file` (/etc/exports), then every `*.exports` of `exports_dir` (/etc/exports.d)
    not starting with `.`, in name order (exportfs: versionsort, the same for most names),
    as [(path, bytes)]; a file that does not exist is no source. And why a file that exists
    could not be read (OSError), one line each."""
    import os

    names = [exports_file]
    try:   # export_d_read: not hidden, longer than the suffix, regular files (or links to them)
        names += [path for n in sorted(os.listdir(exports_dir)) if n.endswith(".exports") and not n.startswith(".")
                  and os.path.isfile(path := os.path.join(exports_dir, n))]
    except FileNotFoundError:
        pass
    except OSError as exc:
        return [], [f"{exports_dir}: {exc.strerror}"]
    out: list[tuple[str, bytes]] = []
    problems: list[str] = []
    for name in names:
        try:
            with open(name, "rb") as f:
                out.append((name, f.read()))
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"{name}: {exc.strerror}")
    return out, problems
