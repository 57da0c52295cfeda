"""Render an `Export` to a Ganesha EXPORT block (pure). The parser is ganesha_conf_parse.py.

Quoting rules, taken from Ganesha's lexer (src/config_parsing/conf_lex.l) and checked
against ganesha.nfsd 4.3:
- Path and Pseudo are double-quoted strings; inside them a backslash escapes the next
  character, so every `\\` and `"` is escaped. Control characters never get this far (the
  model refuses them), so a value cannot end a line, open a block or start a comment.
- Client specs cannot be quoted at all (Ganesha wants a client token, not a string), so
  they are written bare, which is safe only because the model accepts nothing but the
  token forms of exports(5) (addresses, networks, host names, wildcards, @netgroups) and
  `check_renderable` refuses those Ganesha's lexer reads otherwise (ganesha_clients.py).
- One CLIENT block per client spec, in exports(5) precedence (access.py): Ganesha takes the
  first CLIENT entry that matches, so the most specific spec must come first.
- Everything else is a number or a keyword chosen from a fixed table here.
"""
from __future__ import annotations

import re
from pathlib import PurePath, PurePosixPath

from ..access import precedence_order
from ..errors import ValidationError
from ..fsal import Fsal
from ..fsal_schema import PATH, STR, Option
from ..clientspec import ClientSpec
from ..model import Export
from ..record import Record
from .ganesha_clients import check_client

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

SQUASH_KEYWORDS = {"root_squash": "Root_Squash", "no_root_squash": "No_Root_Squash",
                   "all_squash": "All_Squash"}
SEC_KEYWORDS = {"sys": "sys", "krb5": "krb5", "krb5i": "krb5i", "krb5p": "krb5p", "none": "none"}


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def quote(value: str) -> str:
    """A Ganesha double-quoted string that the lexer reads back as exactly `value`."""
    if _CONTROL.search(value):
        raise ValidationError("value", "control characters cannot be written to a Ganesha config")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class RenderOptions(Record, frozen=True):
    """Settings of the node's Ganesha that shape every EXPORT block."""

    protocols: str = "4"
    transports: str = "TCP"


def render_client(exp: Export, client: ClientSpec) -> list[str]:
    lines = [
        "    CLIENT {",
        f"        Clients = {client.host};",
        f"        Access_Type = {exp.client_access(client)};",
        f"        Squash = {SQUASH_KEYWORDS[client.squash(exp.squash)]};",
    ]
    anonuid = client.option_value("anonuid")
    anongid = client.option_value("anongid")
    sec = client.option_value("sec")
    if anonuid is not None:
        lines.append(f"        Anonymous_Uid = {int(anonuid)};")
    if anongid is not None:
        lines.append(f"        Anonymous_Gid = {int(anongid)};")
    if sec is not None:
        lines.append(f"        SecType = {', '.join(SEC_KEYWORDS[s] for s in sec.split(':'))};")
    lines.append("    }")
    return lines


def render_value(opt: Option, value: str) -> str:
    """One option value in the form Ganesha's lexer reads as the option's kind: numbers,
    booleans, tokens, addresses and modes bare (fsal_schema.normalize_value made them one word
    of digits, letters or address characters), text and paths double-quoted."""
    if opt.kind in (STR, PATH):
        return quote(value)
    return value


def render_fsal(fsal: Fsal, indent: str) -> list[str]:
    """The FSAL sub-block: `FSAL { Name = VFS; }` on one line when it has nothing else; else
    its export options, typed (render_value), and the FSAL it is stacked on as a nested FSAL
    block (Ganesha's form for stackable FSALs such as NULL). Module options are not here: they
    go into the module's own block (render_module_blocks)."""
    options = fsal.export_options()
    if not options and fsal.stacked is None:
        return [f"{indent}FSAL {{ Name = {fsal.name}; }}"]
    lines = [f"{indent}FSAL {{", f"{indent}    Name = {fsal.name};"]
    lines += [f"{indent}    {opt.name} = {render_value(opt, value)};" for opt, value in options]
    if fsal.stacked is not None:
        lines += render_fsal(fsal.stacked, indent + "    ")
    lines.append(f"{indent}}}")
    return lines


def render_module_blocks(fsal: Fsal) -> list[str]:
    """The module blocks the FSALs of an export need (`MEM { Inode_Size = 65536; }`), one per
    FSAL of the stack that has module options given. They belong in the file handed to
    AddExport: Ganesha reads a module block only from the file that first loads the module
    (fsal_schema.py), and exactly once per file (Ganesha 5 refuses a repeated one)."""
    lines: list[str] = []
    done: set[str] = set()
    for layer in fsal.layers():
        options = layer.module_options()
        if not options or layer.name in done:
            continue
        done.add(layer.name)
        lines.append(f"{layer.name} {{")
        lines += [f"    {opt.name} = {render_value(opt, value)};" for opt, value in options]
        lines.append("}")
    return lines


def export_path(exp: Export, mountpoint: str | PurePath) -> str:
    """The export's Path as Ganesha sees it: the directory inside the volume, or for an FSAL
    with its own namespace (Export.remote) the path in that namespace."""
    if exp.remote:
        return exp.path
    root = _ROOTS.get(str(mountpoint))
    if root is None:
        root = _ROOTS[str(mountpoint)] = str(PurePosixPath(mountpoint))
    if not exp.path:
        return root
    return f"{root}{exp.path}" if root.endswith("/") else f"{root}/{exp.path}"   # exp.path is canonical (model)


_ROOTS: dict[str, str] = {}   # mount point → its normal form: export_path runs for every export, often


def check_renderable(exp: Export, mountpoint: str | PurePath) -> None:
    """Refuse what Ganesha's config language cannot carry, before it reaches the registry.

    A backslash: Ganesha's lexer reads a quoted string as "(\\.|[^"])*" with longest match,
    so an escaped backslash before a quote or at the end of a value can run the string on into
    the next line (found by the hostile-name test against ganesha.nfsd 4.3). knfsd has no such
    limit, so this is the Ganesha backend's rule, not the model's. Client specs that Ganesha's
    lexer reads otherwise than exports(5) means them: ganesha_clients.check_client.
    """
    for field_name, value in (("directory", export_path(exp, mountpoint)), ("pseudo", exp.pseudo)):
        if "\\" in value:
            raise ValidationError(field_name, "must not contain a backslash with server=ganesha "
                                              "(NFS-Ganesha's config language cannot carry it safely)")
    for client in exp.clients:
        check_client(client.host)
    problem = exp.ganesha.fsal.problem
    if problem:
        raise ValidationError("fsal", f"the registry's FSAL {exp.ganesha.fsal.name} of {exp.pseudo} "
                                      f"is not one this ganesha-ha can render: {problem}")


def render_export(exp: Export, mountpoint: str | PurePath, opts: RenderOptions = RenderOptions(),
                  memo: dict[Any, str] | None = None) -> str:
    """One EXPORT block for `exp` on a volume mounted at `mountpoint`.

    The export-level Access_Type is None on purpose: in Ganesha the export-level
    permissions apply to every client that matches no CLIENT block, so anything else would
    open the export to the world. Each client gets its access in its own CLIENT block, the
    blocks in exports(5) precedence (Ganesha takes the first that matches).

    `memo`: a dict the caller keeps for the blocks of one file (ganesha_batch.render_batch):
    the lines after Pseudo, which follow from the clients, access, squash, FSAL and `opts`
    alone, are rendered once per distinct such part (the exports of a volume mostly share it).
    """
    path = export_path(exp, mountpoint)
    head = "\n".join([
        *render_module_blocks(exp.ganesha.fsal),
        "EXPORT {",
        f"    Export_Id = {exp.export_id};",
        f"    Path = {quote(path)};",
        f"    Pseudo = {quote(exp.pseudo)};",
    ])
    if memo is None:
        return f"{head}\n{_render_body(exp, opts)}"
    key = (exp.clients, exp.access, exp.squash, exp.ganesha.fsal, opts)
    body = memo.get(key)
    if body is None:
        body = memo[key] = _render_body(exp, opts)
    return f"{head}\n{body}"


def _render_body(exp: Export, opts: RenderOptions) -> str:
    """The lines of `exp`'s EXPORT block after Pseudo, through its closing brace and newline."""
    lines = [
        "    Access_Type = None;",
        f"    Squash = {SQUASH_KEYWORDS[exp.squash]};",
        f"    Protocols = {opts.protocols};",
        f"    Transports = {opts.transports};",
        *render_fsal(exp.ganesha.fsal, "    "),
    ]
    for client in precedence_order(exp.clients):
        lines.extend(render_client(exp, client))
    lines.append("}")
    return "\n".join(lines) + "\n"
