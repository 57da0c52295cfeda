"""NFS-Ganesha EXPORT blocks (pure): read into descriptions, and written.

Read with backends/ganesha_conf_parse.py (the lexer of Ganesha's conf_lex.l); `%include` is
resolved by the caller's `include` (a file, relative to the including one). What an EXPORT
block says is kept: `Export_Id`, `Path`, `Pseudo`, the FSAL, and per CLIENT block its
`Clients`, `Access_Type`, `Squash`, `Anonymous_Uid`/`Anonymous_Gid` and `SecType`.

Ganesha reads a client's settings from its CLIENT block, then the EXPORT block, then
EXPORT_DEFAULTS, then its built-in defaults (Access_Type None, Squash Root_Squash;
src/support/exports.c). An EXPORT-level Access_Type other than None grants every host that no
CLIENT block names: that becomes a last client `*` with the export's settings. Every client
comes out with its access and squash spelt out, so a description is compared by meaning.

Refused, for that export alone and with the reason: a parameter the registry has no place
for (`Tag`, `Filesystem_id`, `MaxRead`, `Delegations`, ...), an access other than RW/RO/None
(MDONLY), `Root_Id_Squash`, a CLIENT block with Access_Type None beside clients that are
granted access (the registry cannot deny one host inside a granted network), `Protocols` or
`Transports` other than the node's (ganesha-ha writes the [ganesha] settings into every
block), and CLIENT blocks out of exports(5) precedence: Ganesha grants by the first block that
matches, ganesha-ha by precedence (a host before networks, longer prefixes first, then
wildcards, netgroups, `*`), so such a list would mean something else here.

Written (`render`) with ganesha_conf.render_export and the node's settings, clients in
precedence order: a file ganesha.nfsd reads, and `read` gives the registry's meaning back.
"""
from __future__ import annotations

import re

from ..access import precedence_key
from ..backends.ganesha_conf import RenderOptions, render_export
from ..backends.ganesha_conf_parse import Block, ParseError, fsal_from_block, parse_config
from ..description import Description, Refusal
from ..errors import GaneshaHAError, ValidationError
from ..fsal import Fsal
from ..clientspec import SEC_FLAVOURS, ClientSpec
from ..model import Export
from ..record import replace
from . import Reading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

_CHAIN_KEYS = ("access_type", "squash", "anonymous_uid", "anonymous_gid", "sectype", "protocols", "transports")
EXPORT_KEYS = frozenset({"export_id", "path", "pseudo", *_CHAIN_KEYS})
CLIENT_KEYS = frozenset({"clients", *_CHAIN_KEYS})
DEFAULTS_KEYS = frozenset(_CHAIN_KEYS)
_ACCESS = {"rw": "rw", "ro": "ro", "none": None}
_SQUASH = {
    "root": "root_squash", "root_squash": "root_squash", "rootsquash": "root_squash",
    "all": "all_squash", "all_squash": "all_squash", "allsquash": "all_squash",
    "all_anonymous": "all_squash", "allanonymous": "all_squash",
    "no_root_squash": "no_root_squash", "none": "no_root_squash", "noidsquash": "no_root_squash",
}
_PROTOCOLS = {"3": "3", "nfs3": "3", "nfsv3": "3", "v3": "3", "4": "4", "nfs4": "4", "nfsv4": "4", "v4": "4",
              "9p": "9P"}
_INCLUDE_RE = re.compile(r'^[ \t]*%include[ \t]+"?([^"\n]+?)"?[ \t]*$', re.M)
_MAX_INCLUDES = 10


def expand_includes(text: str, include: Callable[[str], str], depth: int = 0) -> str:
    """`text` with every `%include PATH` line replaced by that file (`include(PATH)`, which
    resolves a relative PATH), recursively; `%url` is refused (ValidationError)."""
    if re.search(r"(?m)^[ \t]*%url\b", text):
        raise ValidationError("ganesha config", "%url includes are not read (give the file)")
    if depth > _MAX_INCLUDES:
        raise ValidationError("ganesha config", f"%include nested more than {_MAX_INCLUDES} deep")
    return _INCLUDE_RE.sub(lambda m: expand_includes(include(m.group(1).strip()), include, depth + 1), text)


def read(text: str, relpath: Callable[[str], str | None], render_options: RenderOptions,
         remote: bool = True) -> Reading:
    """Descriptions of the exports of one volume among the EXPORT blocks of `text` (includes
    already expanded). `relpath(Path)`: the export's path in the volume, None when outside
    (counted in `outside`). An export whose FSAL has its own namespace (CEPH, GLUSTER, RGW,
    PROXY_V4, MEM: Fsal.remote) keeps its Path as it is, or, without `remote`, is counted
    outside (an import takes only what lies in the volume). Its FSAL's module block (`MEM {
    ... }` beside the EXPORT block) gives the module options. `render_options`: the node's
    Protocols/Transports. Raises ValidationError when the text is not a Ganesha config at all."""
    try:
        blocks = parse_config(text)
    except ParseError as exc:
        raise ValidationError("ganesha config", str(exc)) from None
    reading = Reading()
    defaults = Block("EXPORT_DEFAULTS")
    for b in blocks:
        if b.name.lower() == "export_defaults":
            defaults.params += b.params
    modules = [b for b in blocks if b.name.lower() not in ("export", "export_defaults")]
    node = (_protocols(render_options.protocols), _transports(render_options.transports))
    for block in blocks:
        if block.name.lower() != "export":
            continue
        ids = block.get("Export_Id") or ["?"]
        source = f"EXPORT Export_Id={','.join(ids)}"
        where = source
        try:
            path = _one(block, "Path")
            where = f"{_named(path, relpath)} ({source})"
            fsal = _fsal(block, modules)
            rel = (path if remote else None) if fsal.remote else relpath(path)
            if rel is None:
                reading.outside += 1
                if fsal.remote:   # counted alone, the administrator could not tell which block it was
                    reading.notes.append(f"{source} (FSAL {fsal.name}, Path {path}): an FSAL with its own "
                                         "namespace lies in no volume, not imported ('export apply' of EXPORT "
                                         "blocks takes it, by its path)")
                continue
            reading.descriptions.append(_description(block, defaults, rel, fsal, node, source))
        except GaneshaHAError as exc:
            reading.refusals.append(Refusal(where, exc))
    return reading


def _fsal(block: Block, modules: Sequence[Block]) -> Fsal:
    fsals = block.sub("FSAL")
    if len(fsals) > 1:
        raise ValidationError("FSAL", "more than one FSAL block")
    try:
        return fsal_from_block(fsals[0], modules) if fsals else Fsal()
    except ParseError as exc:
        raise ValidationError("FSAL", str(exc)) from None


def _named(path: str, relpath: Callable[[str], str | None]) -> str:
    """`path` as a refusal names it: in the volume as Description.where does ("a"), else as written."""
    try:
        rel = relpath(path)
    except GaneshaHAError:
        return path
    return path if rel is None else rel or "/"


def _description(block: Block, defaults: Block, rel: str, fsal: Fsal, node: tuple[frozenset[str], frozenset[str]],
                 where: str) -> Description:
    _known(defaults, DEFAULTS_KEYS, (), "EXPORT_DEFAULTS")
    _known(block, EXPORT_KEYS, ("fsal", "client"), "EXPORT")
    entries: list[tuple[str, str | None, list[str]]] = []   # (host, access option or None, other options)
    for cb in block.sub("CLIENT"):
        _known(cb, CLIENT_KEYS, (), "CLIENT")
        hosts = [h for h in cb.get("Clients") or [] if h]
        if not hosts:
            raise ValidationError("CLIENT", "a CLIENT block without Clients")
        access, opts = _client_options((cb, block, defaults), node)
        entries += [(ClientSpec(h).host, access, opts) for h in hosts]
    if "*" not in {host for host, _, _ in entries}:  # the export's own access: every host no block names
        access, opts = _client_options((block, defaults), node)
        if access is not None:
            entries.append(("*", access, opts))
    if not entries:
        raise ValidationError("CLIENT", "no client may reach this export (no CLIENT block and Access_Type None)")
    denied = [host for host, access, _ in entries if access is None]
    granted = len(denied) < len(entries)
    if granted and denied:
        raise ValidationError("Access_Type", f"None for {', '.join(denied)} beside clients with access: the registry "
                                             "cannot deny one host while granting others; take that CLIENT block out")
    # every spec says rw or ro (schema 4); where no client has access the export's cap None denies
    clients = [ClientSpec(host, (access or "ro", *opts)) for host, access, opts in entries]
    _check_precedence(clients)
    pseudo = block.get("Pseudo")
    return Description(rel, export_id=_export_id(block),
                       pseudo=_single(pseudo, "Pseudo") if pseudo else None, clients=tuple(clients),
                       fsal=fsal, access="RW" if granted else "None", squash="root_squash",
                       by_meaning=True, keeps_knfsd_flags=True, source=where)


def _client_options(chain: Sequence[Block], node: tuple[frozenset[str], frozenset[str]]) -> tuple[str | None, list[str]]:
    """The access ('rw', 'ro', None for no access) and the other options of a client whose
    settings come from the first block of `chain` that has each: squash, anon ids, sec."""
    def get(key: str) -> list[str] | None:
        for b in chain:
            v = b.get(key)
            if v is not None:
                return v
        return None

    access_word = _single(get("Access_Type") or ["None"], "Access_Type").lower()
    if access_word not in _ACCESS:
        raise ValidationError("Access_Type", f"{access_word!r}: only RW, RO and None can be represented")
    squash_word = _single(get("Squash") or ["Root_Squash"], "Squash").lower()
    if squash_word not in _SQUASH:
        raise ValidationError("Squash", f"{squash_word!r}: only Root_Squash, No_Root_Squash and All_Squash "
                                        "(and their other spellings) can be represented")
    opts = [_SQUASH[squash_word]]
    for key, name in (("Anonymous_Uid", "anonuid"), ("Anonymous_Gid", "anongid")):
        value = get(key)
        if value is not None:
            try:
                opts.append(f"{name}={int(_single(value, key)) % 2**32}")
            except ValueError:
                raise ValidationError(key, f"{value!r} is not a number") from None
    sec = get("SecType")
    if sec is not None:
        flavours = [f.lower() for f in sec]
        bad = [f for f in flavours if f not in SEC_FLAVOURS]
        if bad:
            raise ValidationError("SecType", f"{bad[0]!r} is not one of {', '.join(SEC_FLAVOURS)}")
        opts.append("sec=" + ":".join(flavours))
    protocols, transports = get("Protocols"), get("Transports")
    if protocols is not None and _protocols(",".join(protocols)) != node[0]:
        raise ValidationError("Protocols", f"{', '.join(protocols)}: ganesha-ha writes the node's [ganesha] protocols "
                                           f"({', '.join(sorted(node[0]))}) into every EXPORT block; set it there")
    if transports is not None and _transports(",".join(transports)) != node[1]:
        raise ValidationError("Transports", f"{', '.join(transports)}: ganesha-ha writes the node's [ganesha] "
                                            f"transports ({', '.join(sorted(node[1]))}) into every EXPORT block; "
                                            "set it there")
    return _ACCESS[access_word], opts


def _protocols(text: str) -> frozenset[str]:
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    return frozenset(_PROTOCOLS.get(w, w) for w in words)


def _transports(text: str) -> frozenset[str]:
    return frozenset(w.strip().lower() for w in text.split(",") if w.strip())


def _known(block: Block, keys: frozenset[str], subs: Iterable[str], what: str) -> None:
    for key, _ in block.params:
        if key.lower() not in keys:
            raise ValidationError(key, f"{what} parameter {key} has no place in ganesha-ha's registry; take it out "
                                       "(or leave this export out of the import)")
    for sub in block.blocks:
        if sub.name.lower() not in subs:
            raise ValidationError(sub.name, f"a {sub.name} block inside {what} has no place in ganesha-ha's registry")


def _one(block: Block, key: str) -> str:
    value = block.get(key)
    if not value:
        raise ValidationError(key, f"{key} is missing")
    return _single(value, key)


def _single(value: list[str], key: str) -> str:
    if len(value) != 1:
        raise ValidationError(key, f"{key} must have one value, got {', '.join(value)}")
    return value[0]


def _export_id(block: Block) -> int:
    text = _one(block, "Export_Id")
    if not text.isdigit():
        raise ValidationError("Export_Id", f"{text!r} is not a number")
    return int(text)


def _check_precedence(clients: Sequence[ClientSpec]) -> None:
    keys = [precedence_key(c.host) for c in clients]
    for i in range(1, len(keys)):
        if keys[i] < keys[i - 1]:
            raise ValidationError("CLIENT", f"{clients[i].host} comes after {clients[i - 1].host}: Ganesha grants by "
                                            "the first CLIENT block that matches, ganesha-ha by exports(5) precedence "
                                            "(hosts, networks by longest prefix, wildcards, netgroups, *); put the "
                                            "blocks in that order if that is what they mean")


def render(exports: Iterable[Export], mountpoint: str, options: RenderOptions, header: str = "") -> str:
    """EXPORT blocks for `exports` (with their FSALs' module blocks), clients in precedence
    order (render_export: access.precedence_order), FSAL secrets written `<redacted>`
    (`export apply` keeps the registry's value)."""
    head = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    blocks = [render_export(exp.with_changes(ganesha=replace(exp.ganesha, fsal=redacted(exp.ganesha.fsal))),
                            mountpoint, options) for exp in exports]
    return head + "\n".join(blocks)


def redacted(fsal: Fsal) -> Fsal:
    """`fsal` with its secrets' values replaced by `<redacted>` (Fsal.to_dict(redact=True))."""
    return Fsal.from_dict(fsal.to_dict(redact=True)) if fsal.secrets() else fsal
