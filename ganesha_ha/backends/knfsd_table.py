"""knfsd's tables as pure functions: option rendering, etab parsing, exportfs argv, exports files.

No I/O here: `knfsd.py` reads the files and runs the programs, everything it decides is
decided by these functions, so each rule can be tested (and property-tested) on its own.

Facts this module relies on, measured against nfs-utils 2.6.2 (Debian 12) and its source
(support/nfs/exports.c `putexportent`, utils/exportfs/exportfs.c, support/nfs/rmtab.c):

- etab: one line per (directory, client): `<path>\\t<client>(<options>)`. The path is written
  with `fprintpath`: control characters, space, `"`, `\\` and `#` as 3-digit octal escapes
  (`/srv/a\\040b`); other bytes, UTF-8 included, are written raw. The options list every
  flag with its default filled in, then `anonuid=..,anongid=..`, then per security flavour
  `sec=<flavours>,rw|ro,[no_]root_squash,[no_]all_squash`. `fsid=` and `anonuid=`/`anongid=`
  are printed with `%d`, so 4000000000 reads back as -294967296 (compare modulo 2^32).
- Clients in etab: `*` (older nfs-utils wrote `<world>`), an IPv6 address or network
  without brackets (`fe80::1`, `fd00::/64`), wildcards and netgroups as given. A host name
  or a single address is an "FQDN" client: exportfs resolves it and reuses any client it
  already knows *with the same address*, so `127.0.0.1` may be written as `localhost` or as
  another alias of that address. Such clients are matched by address (see `match_path`).
- exportfs command line: `CLIENT:DIR`, split at the first `:`, so an IPv6 client must be
  bracketed: `[fe80::1]:/dir`, `[fd00::]/64:/dir`; the directory is taken verbatim (spaces
  need no escaping in argv). Several `CLIENT:DIR` share the one `-o` option string (the last
  `-o` wins), so exports with different options, and every export has its own `fsid=`,
  cannot share one `exportfs -o` process. `exportfs -a` with an exports file takes one
  options list per line: that is what `render_exports_file` is for.
- A directory given with a trailing `/` is written to etab with it, and `exportfs -u` can
  then never match it (it strips the argument's slash and compares lengths). Directories
  are therefore always rendered normalised, and parsed etab paths are normalised too.
"""
from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from ..clientspec import ACCESS_OPTIONS, SQUASH_OPTIONS, ClientSpec
from ..model import Export, canonical_uuid
from ..nfspath import normalize_path, to_bytes, unescape_octal
from ..record import Factory, Record

ARG_LIMIT = 100_000  # bytes of CLIENT:DIR arguments per exportfs process (ARG_MAX is ~2 MB)
WORLD = "*"

# ---- paths and escapes --------------------------------------------------------------------
_BLANKS = " \t\r\n\v\f"
_BLANK_RE = re.compile(r"[ \t\r\v\f]+")
_EXPORTS_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_.,:+=@~-")


def escape_exports_path(path: str) -> str:
    r"""A path for an exports file: every byte outside a small safe set as `\ooo`.

    exports(5) decodes octal escapes in the directory field, so this form survives any
    byte the model lets through (spaces, quotes, `#`, `(`, non-ASCII) without quoting rules.
    """
    return "".join(chr(b) if b in _EXPORTS_SAFE else f"\\{b:03o}" for b in to_bytes(path))


def export_dir(mountpoint: os.PathLike[str] | str, exp: Export) -> str:
    """The absolute directory of `exp` on a volume mounted at `mountpoint`."""
    root = normalize_path(os.fspath(mountpoint))
    if not exp.path:
        return root
    return normalize_path(f"{root}/{exp.path}")


# ---- clients --------------------------------------------------------------------------------
def client_kind(name: str) -> str:
    """How exportfs classifies a client (utils client_gettype): world, gss, netgroup, wildcard,
    subnet or fqdn (a host name or a single address, which exportfs resolves)."""
    if name in ("", WORLD, "<world>"):
        return "world"
    if name.startswith("gss/"):
        return "gss"
    if name.startswith("@"):
        return "netgroup"
    if any(c in name for c in "*?["):
        return "wildcard"
    if "/" in name:
        return "subnet"
    return "fqdn"


def normalize_client(name: str) -> str:
    """One spelling per client, shared by the model's specs and etab's entries."""
    if name in ("<world>", ""):
        return WORLD
    kind = client_kind(name)
    if kind in ("netgroup", "gss", "world"):
        return name
    try:
        if kind == "subnet":
            return str(ipaddress.ip_network(name, strict=False))
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower().rstrip(".") if kind == "fqdn" else name.lower()


def cmdline_client(name: str) -> str:
    """The client as exportfs wants it before `:DIR` on its command line (IPv6 in brackets)."""
    if ":" not in name:
        return name
    addr, slash, prefix = name.partition("/")
    return f"[{addr}]/{prefix}" if slash else f"[{addr}]"


def cmdline_arg(client: str, directory: str) -> str:
    return f"{cmdline_client(client)}:{directory}"


# ---- options ---------------------------------------------------------------------------------
_FLAGS: dict[str, tuple[str, str]] = {
    "rw": ("access", "rw"), "ro": ("access", "ro"),
    "root_squash": ("root_squash", "yes"), "no_root_squash": ("root_squash", "no"),
    "all_squash": ("all_squash", "yes"), "no_all_squash": ("all_squash", "no"),
    "sync": ("sync", "sync"), "async": ("sync", "async"),
    "wdelay": ("wdelay", "yes"), "no_wdelay": ("wdelay", "no"),
    "hide": ("hide", "yes"), "nohide": ("hide", "no"),
    "crossmnt": ("crossmnt", "yes"), "nocrossmnt": ("crossmnt", "no"),
    "secure": ("secure", "yes"), "insecure": ("secure", "no"),
    "subtree_check": ("subtree_check", "yes"), "no_subtree_check": ("subtree_check", "no"),
    "secure_locks": ("secure_locks", "yes"), "insecure_locks": ("secure_locks", "no"),
    "auth_nlm": ("secure_locks", "yes"), "no_auth_nlm": ("secure_locks", "no"),
    "acl": ("acl", "yes"), "no_acl": ("acl", "no"),
    "pnfs": ("pnfs", "yes"), "no_pnfs": ("pnfs", "no"),
    "security_label": ("security_label", "yes"),
    "nordirplus": ("rdirplus", "no"),
    "mp": ("mountpoint", ""), "mountpoint": ("mountpoint", ""),
}
# what etab means when it does not print a category at all
_ETAB_ABSENT = {"security_label": "no", "rdirplus": "yes", "mountpoint": None}
_HANDLED_BY_RENDER = frozenset(ACCESS_OPTIONS) | SQUASH_OPTIONS | {
    "sync", "async", "subtree_check", "no_subtree_check"}


def normalize_fsid(value: str) -> str:
    """An fsid as comparable text: numbers modulo 2^32 (etab prints `%d`), UUIDs canonical."""
    text = value.strip()
    if re.fullmatch(r"-?[0-9]+", text):
        return str(int(text) % 2**32)
    try:
        return canonical_uuid(text)
    except ValueError:
        return text.lower()


def option_category(option: str) -> str:
    """The setting an exports(5) option sets (`rw` and `ro` both set "access", `anonuid=1`
    sets "anonuid"): of two options of one category, the later wins in exportfs
    (support/nfs/exports.c: parseopts), e.g. a client's `(rw)` over its line's `-ro`."""
    name, eq, _ = option.strip().partition("=")
    name = name.lower()
    if eq:
        return "mountpoint" if name == "mp" else name
    return _FLAGS.get(name, (name, ""))[0]


def canonical_options(tokens: Iterable[str]) -> dict[str, str | None]:
    """Options as {category: value}; the first word for a category wins.

    etab repeats `rw`/`root_squash`/`all_squash` after each `sec=`; the first occurrence
    is the export-wide flag and, for options set with `-o`, equal to the repeats. Several
    `sec=` groups are joined into one ':'-separated list, in order.
    """
    out: dict[str, str | None] = {}
    sec: list[str] = []
    for raw in tokens:
        tok = raw.strip()
        if not tok:
            continue
        name, eq, value = tok.partition("=")
        name = name.lower()
        if not eq:
            cat = _FLAGS.get(name, (name, "yes"))
            out.setdefault(cat[0], cat[1])
            continue
        if name == "sec":
            sec.extend(f for f in value.split(":") if f)
        elif name == "fsid":
            out.setdefault("fsid", normalize_fsid(value))
        elif name in ("anonuid", "anongid"):
            try:
                out.setdefault(name, str(int(value) % 2**32))
            except ValueError:
                out.setdefault(name, value)
        elif name in ("mp", "mountpoint"):
            out.setdefault("mountpoint", value)
        else:
            out.setdefault(name, value)
    if sec:
        out["sec"] = ":".join(sec)
    return out


def option_differences(wanted: Sequence[str], live: Sequence[str]) -> list[str]:
    """The categories ganesha-ha sets (those in `wanted`) whose live value differs.

    Only what ganesha-ha renders is compared: etab fills in every default, so an option we
    leave to its default may read anything and is not drift.
    """
    want, have = canonical_options(wanted), canonical_options(live)
    diffs = []
    for cat, value in want.items():
        got = have.get(cat, _ETAB_ABSENT.get(cat, "(absent)"))
        if got != value:
            diffs.append(f"{cat}: want {value if value is not None else '(unset)'}, "
                         f"live {got if got is not None else '(unset)'}")
    return diffs


def options_match(wanted: Sequence[str], live: Sequence[str]) -> bool:
    return not option_differences(wanted, live)


def render_options(exp: Export, client: ClientSpec) -> str | None:
    """The exportfs option string of `exp` for `client`; None: not exported to it at all.

    Order: access, squash (explicitly, both halves unless all_squash), sync/async, subtree
    checking (explicit, so exportfs never warns), the client's other flags sorted, anonuid,
    anongid, sec, fsid. Every word here is compared against etab by `option_differences`.
    """
    access = exp.client_access(client)
    if access == "None":
        return None
    opts = ["rw" if access == "RW" else "ro"]
    squash = client.squash(exp.squash)
    if squash == "all_squash":
        opts.append("all_squash")
    else:
        opts += [squash, "no_all_squash"]
    opts.append("async" if "async" in client.options else "sync")
    opts.append("subtree_check" if "subtree_check" in client.options else "no_subtree_check")
    opts += sorted(o for o in client.options if "=" not in o and o not in _HANDLED_BY_RENDER)
    for key in ("anonuid", "anongid", "sec"):
        value = client.option_value(key)
        if value is not None:
            opts.append(f"{key}={value}")
    opts.append(f"fsid={exp.knfsd.fsid}")
    return ",".join(opts)


class DesiredEntry(Record, frozen=True):
    """One (directory, client) line ganesha-ha wants in etab, with its option string."""

    path: str
    client: str
    options: str
    export_path: str = ""  # Export.path (relative), to map results back to exports

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(self.options.split(","))

    @property
    def arg(self) -> str:
        return cmdline_arg(self.client, self.path)


def desired_entries(mountpoint: os.PathLike[str] | str, exp: Export) -> list[DesiredEntry]:
    directory = export_dir(mountpoint, exp)
    out = []
    for client in exp.clients:
        opts = render_options(exp, client)
        if opts is not None:
            out.append(DesiredEntry(directory, normalize_client(client.host), opts, exp.path))
    return out


# ---- etab ------------------------------------------------------------------------------------
class EtabEntry(Record, frozen=True):
    path: str                   # normalised: escapes decoded, no trailing '/'
    client: str                 # normalised (see normalize_client); `<world>` is '*'
    options: tuple[str, ...]
    raw_path: str = ""          # the directory exactly as exportfs knows it (for -u)
    raw_client: str = ""

    @property
    def fsid(self) -> str | None:
        return canonical_options(self.options).get("fsid")

    @property
    def unexport_arg(self) -> str:
        return cmdline_arg(self.raw_client or self.client, self.raw_path or self.path)


def parse_etab_entries(text: str) -> list[EtabEntry]:
    """Every well-formed etab line, in file order; malformed lines are skipped."""
    out = []
    for line in text.split("\n"):
        line = line.strip(_BLANKS)
        if not line or line.startswith("#"):
            continue
        fields = _BLANK_RE.split(line, 1)  # ASCII blanks only: U+00A0 is part of a path
        if len(fields) != 2:
            continue
        raw_path, rest = fields
        client, paren, opts = rest.strip(_BLANKS).partition("(")
        if not paren or not opts.endswith(")") or not client:
            continue
        raw = unescape_octal(raw_path)
        out.append(EtabEntry(normalize_path(raw_path), normalize_client(client),
                             tuple(o for o in opts[:-1].split(",") if o), raw,
                             "*" if client == "<world>" else client))
    return out


def parse_etab(text: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """etab as {(directory, client): options}; a later duplicate line wins, like exportfs."""
    return {(e.path, e.client): e.options for e in parse_etab_entries(text)}


def index_by_path(entries: Iterable[EtabEntry]) -> dict[str, list[EtabEntry]]:
    out: dict[str, list[EtabEntry]] = {}
    for e in entries:
        out.setdefault(e.path, []).append(e)
    return out


class PathState(Record):
    """How one directory's live entries compare with the wanted ones."""

    ok: list[tuple[DesiredEntry, EtabEntry]] = Factory(list)
    missing: list[DesiredEntry] = Factory(list)
    changed: list[tuple[DesiredEntry, EtabEntry, list[str]]] = Factory(list)
    extra: list[EtabEntry] = Factory(list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.changed or self.extra)

    @property
    def to_export(self) -> list[DesiredEntry]:
        return self.missing + [d for d, _, _ in self.changed]


SameHost = Callable[[str, str], bool]


def _equal(a: str, b: str) -> bool:
    return a == b


def match_path(wanted: Sequence[DesiredEntry], live: Sequence[EtabEntry],
               same_host: SameHost = _equal) -> PathState:
    """Pair wanted and live entries of one directory.

    Clients are paired by their normalised name first; what is left of the FQDN kind
    (host names, single addresses) is paired with `same_host(wanted, live)`, which the
    backend implements by address, as exportfs itself does.
    """
    state = PathState()
    live_left = list(live)
    unmatched: list[DesiredEntry] = []
    for d in wanted:
        hit = next((e for e in live_left if e.client == d.client), None)
        if hit is None:
            unmatched.append(d)
            continue
        live_left.remove(hit)
        _classify(state, d, hit)
    for d in unmatched:
        hit = None
        if client_kind(d.client) == "fqdn":
            hit = next((e for e in live_left
                        if client_kind(e.client) == "fqdn" and same_host(d.client, e.client)), None)
        if hit is None:
            state.missing.append(d)
            continue
        live_left.remove(hit)
        _classify(state, d, hit)
    state.extra = live_left
    return state


def _classify(state: PathState, d: DesiredEntry, e: EtabEntry) -> None:
    diffs = option_differences(d.tokens, e.options)
    if diffs:
        state.changed.append((d, e, diffs))
    else:
        state.ok.append((d, e))


def find_collisions(entries: Iterable[EtabEntry], wanted: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(fsid, our directory, live directory) for each of our fsids live for another directory.

    `wanted` maps a normalised fsid to the directory that should own it.
    """
    out = []
    seen = set()
    for e in entries:
        fsid = e.fsid
        if fsid is None or fsid not in wanted:
            continue
        ours = normalize_path(wanted[fsid])
        if e.path != ours and (fsid, e.path) not in seen:
            seen.add((fsid, e.path))
            out.append((fsid, ours, e.path))
    return out


# ---- exportfs argv and exports files ----------------------------------------------------------
def chunk_args(args: Sequence[str], limit: int = ARG_LIMIT) -> list[list[str]]:
    """Split arguments into runs of at most `limit` bytes (an over-long one runs alone)."""
    chunks: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for arg in args:
        n = len(to_bytes(arg)) + 1
        if cur and size + n > limit:
            chunks.append(cur)
            cur, size = [], 0
        cur.append(arg)
        size += n
    if cur:
        chunks.append(cur)
    return chunks


def group_by_options(entries: Iterable[DesiredEntry]) -> dict[str, list[str]]:
    """{option string: [CLIENT:DIR, ...]} in first-seen order, without duplicates."""
    groups: dict[str, list[str]] = {}
    for d in entries:
        args = groups.setdefault(d.options, [])
        if d.arg not in args:
            args.append(d.arg)
    return groups


def export_argvs(exportfs: str, entries: Iterable[DesiredEntry], limit: int = ARG_LIMIT) -> list[list[str]]:
    """`exportfs -i -o OPTS CLIENT:DIR ...` per option string and chunk.

    `-i` keeps /etc/exports out of it: without it exportfs applies our options on top of
    an /etc/exports line for the same client and directory.
    """
    return [[exportfs, "-i", "-o", opts, *chunk]
            for opts, args in group_by_options(entries).items()
            for chunk in chunk_args(args, limit)]


def unexport_argvs(exportfs: str, args: Iterable[str], limit: int = ARG_LIMIT) -> list[list[str]]:
    unique = list(dict.fromkeys(args))
    return [[exportfs, "-u", *chunk] for chunk in chunk_args(unique, limit)]


def render_exports_file(entries: Iterable[DesiredEntry]) -> str:
    """An exports(5) file with one line per entry: `ESCAPED_DIR CLIENT(OPTIONS)`.

    IPv6 clients are written without brackets there (only the command line needs them).
    """
    seen = set()
    lines = []
    for d in entries:
        key = (d.path, d.client)
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"{escape_exports_path(d.path)} {d.client}({d.options})\n")
    return "".join(lines)
