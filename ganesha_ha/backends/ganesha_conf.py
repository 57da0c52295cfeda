"""Render an `Export` to a Ganesha EXPORT block (pure). The parser is ganesha_conf_parse.py.

Quoting rules, taken from Ganesha's lexer (src/config_parsing/conf_lex.l) and checked
against ganesha.nfsd 4.3:
- Path and Pseudo are double-quoted strings; inside them a backslash escapes the next
  character, so every `\\` and `"` is escaped. Control characters never get this far (the
  model refuses them), so a value cannot end a line, open a block or start a comment.
- Client specs cannot be quoted at all (Ganesha wants a client token, not a string), so
  they are written bare, which is safe only because the model accepts nothing but the
  token forms of the lexer (addresses, networks, host names, wildcards, @netgroups).
- Everything else is a number or a keyword chosen from a fixed table here.
"""
from __future__ import annotations

from pathlib import PurePath, PurePosixPath

from ..errors import ValidationError
from ..fsal import Fsal
from ..model import ClientSpec, Export
from ..record import Record

SQUASH_KEYWORDS = {"root_squash": "Root_Squash", "no_root_squash": "No_Root_Squash",
                   "all_squash": "All_Squash"}
SEC_KEYWORDS = {"sys": "sys", "krb5": "krb5", "krb5i": "krb5i", "krb5p": "krb5p", "none": "none"}


def quote(value: str) -> str:
    """A Ganesha double-quoted string that the lexer reads back as exactly `value`."""
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in value):
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


def render_fsal(fsal: Fsal, indent: str) -> list[str]:
    """The FSAL sub-block: `FSAL { Name = VFS; }` on one line when it has nothing else; else
    its options as quoted strings (keys are words, fsal.py checks them) and the FSAL it is
    stacked on as a nested FSAL block (Ganesha's form for stackable FSALs such as NULL)."""
    if not fsal.options and fsal.stacked is None:
        return [f"{indent}FSAL {{ Name = {fsal.name}; }}"]
    lines = [f"{indent}FSAL {{", f"{indent}    Name = {fsal.name};"]
    lines += [f"{indent}    {key} = {quote(value)};" for key, value in fsal.options]
    if fsal.stacked is not None:
        lines += render_fsal(fsal.stacked, indent + "    ")
    lines.append(f"{indent}}}")
    return lines


def _export_path(exp: Export, mountpoint: str | PurePath) -> str:
    return str(PurePosixPath(mountpoint) / exp.path) if exp.path else str(PurePosixPath(mountpoint))


def check_renderable(exp: Export, mountpoint: str | PurePath) -> None:
    """Refuse what Ganesha's config language cannot carry, before it reaches the registry.

    A backslash: Ganesha's lexer reads a quoted string as "(\\.|[^"])*" with longest match,
    so an escaped backslash before a quote or at the end of a value can run the string on into
    the next line (found by the hostile-name test against ganesha.nfsd 4.3). knfsd has no such
    limit, so this is the Ganesha backend's rule, not the model's.
    """
    for field_name, value in (("directory", _export_path(exp, mountpoint)), ("pseudo", exp.pseudo)):
        if "\\" in value:
            raise ValidationError(field_name, "must not contain a backslash with server=ganesha "
                                              "(NFS-Ganesha's config language cannot carry it safely)")
    fsal: Fsal | None = exp.ganesha.fsal
    while fsal is not None:
        if fsal.options:
            raise ValidationError("fsal", f"FSAL {fsal.name}: options are not supported yet (each FSAL's "
                                          "options need a schema before they may reach a config file)")
        fsal = fsal.stacked


def render_export(exp: Export, mountpoint: str | PurePath, opts: RenderOptions = RenderOptions()) -> str:
    """One EXPORT block for `exp` on a volume mounted at `mountpoint`.

    The export-level Access_Type is None on purpose: in Ganesha the export-level
    permissions apply to every client that matches no CLIENT block, so anything else would
    open the export to the world. Each client gets its access in its own CLIENT block.
    """
    path = _export_path(exp, mountpoint)
    lines = [
        "EXPORT {",
        f"    Export_Id = {exp.export_id};",
        f"    Path = {quote(path)};",
        f"    Pseudo = {quote(exp.pseudo)};",
        "    Access_Type = None;",
        f"    Squash = {SQUASH_KEYWORDS[exp.squash]};",
        f"    Protocols = {opts.protocols};",
        f"    Transports = {opts.transports};",
        *render_fsal(exp.ganesha.fsal, "    "),
    ]
    for client in exp.clients:
        lines.extend(render_client(exp, client))
    lines.append("}")
    return "\n".join(lines) + "\n"
