r"""exports(5), the kernel NFS server's table as a file (pure): read and written.

Read as exportfs reads /etc/exports (nfs-utils support/nfs/xio.c: xgetc, xskip, xgettok;
support/nfs/exports.c: getexportent, getpath, getexport, parseopts):

- a backslash at the end of a line continues it: the newline and the blanks that begin the
  next line read as one space (inside quotes too);
- `#` starts a comment where a directory or a client may begin (at the start of a line,
  between clients); inside a word it is part of the word;
- `"` opens or closes quoting anywhere in a word (the quotes are dropped, blanks inside are
  kept): `"/srv/my dir"`, `/srv/"my dir"`;
- `\ooo` (three octal digits, value below 256) anywhere in a word is that byte: `\040` a
  space, `\043` a `#` (how exportfs writes such paths to etab);
- a line is `DIRECTORY [-DEFAULTS] [CLIENT[(OPTIONS)] ...]`: each client's options apply over
  the line's defaults (a `-DEFAULTS` word changes the defaults for the clients after it, and
  a `-DEFAULTS` word that ends the line exports to every host); `(OPTIONS)` with no host is
  `*`; a directory with no client at all is exported to every host. Of two options that set
  one thing (`rw`/`ro`, `root_squash`/`no_root_squash`, ...) the later wins.

Each (directory, client) is one `Entry`. `read` turns them into descriptions of exports:
one per directory, every client with its access spelt out (`ro` when neither `rw` nor `ro`
is given: exportfs's default), the fsid they share. What ganesha-ha cannot represent is
refused for that directory with the reason: clients of one directory with different fsids
(knfsd keeps an fsid per client, the registry one per export), `fsid=0`/`root` (the NFSv4
pseudo root), options the model does not know (`refer=`, `replicas=`, `mountpoint=PATH`, ...).

Written (`render`) with every client's effective options (backends/knfsd_table.render_options,
the same words `exportfs -o` gets), fsid included, and paths escaped so that any byte reads
back: exportfs can load the file as it is, and `read` gives the registry's meaning back. An
export no client may reach (`--access None`) cannot be a line (a directory alone is exported
to everybody): it is written as the comment `# ganesha-ha: access None: DIRECTORY`, which
exportfs skips and `read` takes back. An export of an FSAL with its own namespace (Ganesha's
CEPH, MEM, ...) is no directory knfsd could serve: it is the comment `# ganesha-ha: kept:
PATH`, which `read` takes as "this export stays as it is".
"""
from __future__ import annotations

import re
from pathlib import PurePosixPath

from ..backends.knfsd_table import escape_exports_path, export_dir, option_category, render_options
from ..description import Description, Refusal
from ..errors import GaneshaHAError, ValidationError
from ..clientspec import ACCESS_OPTIONS, ClientSpec
from ..model import Export
from ..nfspath import from_bytes, to_bytes, unescape_octal
from ..record import Record
from . import Reading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

_SPACE = frozenset(b" \t\n\v\f\r")
_OCTAL = frozenset(b"01234567")
NO_ACCESS = "# ganesha-ha: access None: "
KEPT = "# ganesha-ha: kept: "


class ExportsSyntaxError(ValidationError):
    """The file is not exports(5) (exportfs stops reading at such a line): its line number."""

    def __init__(self, line: int, detail: str, name: str = ""):
        super().__init__("exports", f"{name + ', ' if name else ''}line {line}: {detail}")
        self.line = line
        self.detail = detail


class Entry(Record, frozen=True):
    """One (directory, client) of an exports(5) file, with the options that apply to it."""

    path: str                    # as written, escapes decoded
    host: str                    # '*' for a line's default client
    options: tuple[str, ...]     # the line's defaults, then the client's own; later wins
    line: int


class _Reader:
    """xgetc/xskip/xgettok over bytes, with a push-back stack like ungetc."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.back: list[int] = []

    @property
    def line(self) -> int:
        return self.data.count(b"\n", 0, self.pos) + 1 - self.back.count(0x0A)

    def _raw(self) -> int | None:
        if self.pos >= len(self.data):
            return None
        self.pos += 1
        return self.data[self.pos - 1]

    def getc(self) -> int | None:
        if self.back:
            return self.back.pop()
        c = self._raw()
        if c == 0x5C and self.pos < len(self.data) and self.data[self.pos] == 0x0A:
            self.pos += 1  # a line continuation reads as one blank
            while self.pos < len(self.data) and self.data[self.pos] in (0x20, 0x09):
                self.pos += 1
            return 0x20
        return c

    def ungetc(self, c: int | None) -> None:
        if c is not None:
            self.back.append(c)

    def skip(self, blanks: bytes) -> None:
        """Blanks and comments (a `#` where a word may begin runs to the end of the line)."""
        while True:
            c = self.getc()
            if c == 0x23:
                while c is not None and c != 0x0A:
                    c = self._raw()
            if c is None or c not in blanks:
                self.ungetc(c)
                return

    def token(self) -> bytes | None:
        """One word: up to a blank outside quotes, quotes dropped, octal escapes decoded."""
        tok = bytearray()
        quoted = False
        c = self.getc()
        while c is not None and (quoted or c not in _SPACE):
            if c == 0x22:
                quoted = not quoted
            else:
                tok.append(c)
                if (len(tok) >= 4 and tok[-4] == 0x5C and all(b in _OCTAL for b in tok[-3:])
                        and int(tok[-3:], 8) < 256):
                    value = int(tok[-3:], 8)
                    del tok[-4:]
                    tok.append(value)
            c = self.getc()
        if c == 0x0A:
            self.ungetc(c)
        return bytes(tok) if tok else None


def parse(text: str | bytes) -> list[Entry]:
    """Every (directory, client) of an exports(5) file, in file order (ExportsSyntaxError for
    a line exportfs would stop at: a bad or empty option list)."""
    r = _Reader(to_bytes(text) if isinstance(text, str) else text)
    entries: list[Entry] = []
    path: str | None = None
    defaults: list[str] = []
    line = 0
    while True:
        if path is None:  # a new line: its directory
            r.skip(b" \t\n")
            raw = r.token()
            if raw is None:
                return entries
            path, defaults, line = from_bytes(raw), [], r.line
            r.skip(b" \t")
            tok = r.token()
            if tok is None:  # a directory alone: every host, exportfs's defaults
                entries.append(Entry(path, "*", (), line))
                path = None
                continue
        else:
            r.skip(b" \t")
            tok = r.token()
            if tok is None:
                path = None
                continue
        if tok.startswith(b"-"):
            defaults = _options(from_bytes(tok[1:]), line)
            r.skip(b" \t")
            tok = r.token()
            if tok is None:  # the defaults end the line: every host
                entries.append(Entry(path, "*", tuple(defaults), line))
                path = None
                continue
        host, own = _client(from_bytes(tok), line)
        entries.append(Entry(path, host, tuple(_later_wins(defaults + own)), line))


def _client(tok: str, line: int) -> tuple[str, list[str]]:
    host, paren, rest = tok.partition("(")
    if not paren:
        return host or "*", []
    if not rest.endswith(")") or ")" in rest[:-1]:
        raise ExportsSyntaxError(line, f"bad option list in {tok!r}")
    return host or "*", _options(rest[:-1], line)


def _options(text: str, line: int) -> list[str]:
    """`rw,sync` as exportfs splits it: at commas, blanks before each option dropped."""
    if not text:
        return []
    out = [opt.lstrip(" \t") for opt in text.split(",")]
    if any(not opt for opt in out):
        raise ExportsSyntaxError(line, f"empty option in {text!r}")
    return out


def _later_wins(options: Iterable[str]) -> list[str]:
    """Of options that set one thing, the last (knfsd_table.option_category)."""
    chosen: dict[str, str] = {}
    for opt in options:
        cat = option_category(opt)
        chosen.pop(cat, None)
        chosen[cat] = opt
    return list(chosen.values())


def marks(text: str | bytes, mark: str) -> list[str]:
    """The paths `render` wrote in comments starting with `mark` (NO_ACCESS, KEPT)."""
    out = []
    for line in (from_bytes(text) if isinstance(text, bytes) else text).split("\n"):
        if line.startswith(mark):
            out.append(unescape_octal(line[len(mark):].strip()))
    return out


def read(text: str | bytes | Sequence[tuple[str, str | bytes]], relpath: Callable[[str], str | None]) -> Reading:
    """Descriptions of the exports of one volume in an exports(5) file, or in several
    ([(name, text)]: /etc/exports and /etc/exports.d/*.exports, whose lines exportfs takes
    together).

    `relpath(directory)`: the directory's path in the volume, None when it lies outside (then
    the entry is counted in `outside`), or ValidationError. Raises ExportsSyntaxError for a
    file exportfs would not read to its end.
    """
    sources = [("", text)] if isinstance(text, (str, bytes)) else list(text)
    reading = Reading()
    groups: dict[str, list[tuple[Entry, str]]] = {}
    shut: list[str] = []
    kept: list[str] = []
    for name, body in sources:
        try:
            entries = parse(body)
        except ExportsSyntaxError as exc:
            raise ExportsSyntaxError(exc.line, exc.detail, name) from None
        for entry in entries:
            groups.setdefault(entry.path, []).append((entry, f"{name + ' ' if name else ''}line {entry.line}"))
        shut += marks(body, NO_ACCESS)
        kept += marks(body, KEPT)
    for directory, items in groups.items():
        where = f"{directory} ({items[0][1]})"
        try:
            rel = relpath(directory)
            if rel is None:
                reading.outside += len(items)
                continue
            where = f"{rel or '/'} ({items[0][1]})"     # in the volume: named as Description.where names it
            reading.descriptions.append(_description(rel, [e for e, _ in items], items[0][1]))
            reading.lines[where] = [place for _, place in items]
        except GaneshaHAError as exc:
            reading.refusals.append(Refusal(where, exc))
    for directory in shut:
        try:
            rel = relpath(directory)
        except GaneshaHAError as exc:
            reading.refusals.append(Refusal(directory, exc))
            continue
        if rel is None:
            reading.outside += 1
        else:
            reading.descriptions.append(Description(rel, access="None", source="access None mark", by_meaning=True))
    for path in kept:
        try:
            reading.descriptions.append(Description(path, source="kept mark"))
        except GaneshaHAError as exc:
            reading.refusals.append(Refusal(path, exc))
    return reading


def _description(rel: str, entries: list[Entry], source: str) -> Description:
    fsids = {next((o.partition("=")[2] for o in e.options if option_category(o) == "fsid"), None) for e in entries}
    if len(fsids) > 1:
        shown = ", ".join(sorted(f if f is not None else "(none)" for f in fsids))
        raise ValidationError("fsid", f"its clients have different fsids ({shown}): knfsd keeps one per client, "
                                      "ganesha-ha one per export (its file handles); give every client the same fsid")
    fsid = fsids.pop()
    if fsid is not None and fsid.strip().lower() in ("0", "root"):
        raise ValidationError("fsid", f"fsid={fsid} makes this the NFSv4 pseudo root, which ganesha-ha does not "
                                      "manage (export it outside the volume)")
    clients = []
    for e in entries:
        opts = [o for o in e.options if option_category(o) != "fsid"]
        if not any(o in ACCESS_OPTIONS for o in opts):
            opts.insert(0, "ro")  # exportfs's default (and a bare spec's meaning since schema 4), said out loud
        clients.append(ClientSpec(e.host, tuple(opts)))
    return Description(rel, clients=tuple(clients), fsid=fsid, access="RW", squash="root_squash",
                       by_meaning=True, source=source)


def render(exports: Iterable[Export], mountpoint: str, header: str = "") -> str:
    """An exports(5) file for `exports` of the volume mounted at `mountpoint`: one line per
    export (continued for each further client), every client's effective options."""
    out = [f"# {line}\n" if line else "#\n" for line in header.splitlines()]
    for exp in exports:
        if exp.remote:
            out.append(f"{KEPT}{escape_exports_path(exp.path)}\n")
            continue
        directory = escape_exports_path(export_dir(mountpoint, exp))
        clients = [f"{c.host}({opts})" for c in exp.clients
                   if (opts := render_options(exp, c)) is not None]
        if not clients:
            out.append(f"{NO_ACCESS}{directory}\n")
            continue
        out.append(directory + "".join(
            (" " if i == 0 else " \\\n    ") + c for i, c in enumerate(clients)) + "\n")
    return "".join(out)


def relpath_in(mountpoint: str, resolve: Callable[[str], str] = lambda p: p) -> Callable[[str], str | None]:
    """A `relpath` for `read`: a directory's path inside the volume mounted at `mountpoint`
    (after `resolve`, e.g. os.path.realpath as exportfs resolves symbolic links), None when
    outside it."""
    from ..model import normalize_relpath

    root = PurePosixPath(mountpoint)

    def rel(directory: str) -> str | None:
        path = PurePosixPath(resolve(re.sub("/+$", "", directory) or "/"))
        if path != root and root not in path.parents:
            return None
        return normalize_relpath("directory", str(path.relative_to(root)))

    return rel
