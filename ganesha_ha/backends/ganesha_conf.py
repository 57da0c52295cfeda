"""Render an `Export` to a Ganesha EXPORT block, and parse Ganesha config text back (pure).

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

from pathlib import PurePosixPath

from ..errors import ValidationError
from ..model import ClientSpec, Export
from ..record import Factory, Record

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


def _export_path(exp: Export, mountpoint: str | PurePosixPath) -> str:
    return str(PurePosixPath(mountpoint) / exp.path) if exp.path else str(PurePosixPath(mountpoint))


def check_renderable(exp: Export, mountpoint: str | PurePosixPath) -> None:
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


def render_export(exp: Export, mountpoint: str | PurePosixPath, opts: RenderOptions = RenderOptions()) -> str:
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
        f"    FSAL {{ Name = {exp.fsal}; }}",
    ]
    for client in exp.clients:
        lines.extend(render_client(exp, client))
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- a parser for Ganesha config text (enough of the grammar for EXPORT blocks) ---------

class Block(Record):
    name: str
    params: list[tuple[str, list[str]]] = Factory(list)
    blocks: list["Block"] = Factory(list)

    def get(self, key: str) -> list[str] | None:
        for k, v in self.params:
            if k.lower() == key.lower():
                return v
        return None

    def sub(self, name: str) -> list["Block"]:
        return [b for b in self.blocks if b.name.lower() == name.lower()]


class ParseError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value) tokens: 'str' (unescaped quoted string), 'word', or punctuation."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\f\n":
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "{};=,":
            out.append((ch, ch))
            i += 1
        elif ch == '"':
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise ParseError("unterminated string")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    buf.append(text[i + 1])
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    buf.append(c)
                    i += 1
            out.append(("str", "".join(buf)))
        elif ch == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise ParseError("unterminated string")
            out.append(("str", text[i + 1:j]))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\f\n#{};=,\"'":
                j += 1
            out.append(("word", text[i:j]))
            i = j
    return out


def parse_config(text: str) -> list[Block]:
    toks = _tokens(text)
    pos = 0

    def parse_body(block: Block, top: bool) -> None:
        nonlocal pos
        while pos < len(toks):
            kind, value = toks[pos]
            if kind == "}":
                if top:
                    raise ParseError("unbalanced '}'")
                pos += 1
                return
            if kind != "word":
                raise ParseError(f"expected a name, got {value!r}")
            pos += 1
            if pos < len(toks) and toks[pos][0] == "{":
                pos += 1
                child = Block(value)
                parse_body(child, False)
                block.blocks.append(child)
            elif pos < len(toks) and toks[pos][0] == "=":
                pos += 1
                values: list[str] = []
                while pos < len(toks) and toks[pos][0] not in (";", "}"):
                    if toks[pos][0] in ("word", "str"):
                        values.append(toks[pos][1])
                    elif toks[pos][0] != ",":
                        raise ParseError(f"unexpected {toks[pos][1]!r} in value")
                    pos += 1
                if pos < len(toks) and toks[pos][0] == ";":
                    pos += 1
                block.params.append((value, values))
            else:
                raise ParseError(f"expected '=' or '{{' after {value!r}")
        if not top:
            raise ParseError("unterminated block")

    root = Block("<root>")
    parse_body(root, True)
    return root.blocks


def export_from_block(block: Block, mountpoint: str, fsid: str) -> Export:
    """Read back an EXPORT block we rendered (the fsid is not part of Ganesha's block)."""
    def one(b: Block, key: str) -> str:
        v = b.get(key)
        if not v or len(v) != 1:
            raise ParseError(f"{key} missing or not single-valued")
        return v[0]

    path = one(block, "Path")
    mp = str(PurePosixPath(mountpoint))
    if path != mp and not path.startswith(mp.rstrip("/") + "/"):
        raise ParseError(f"Path {path!r} is outside {mp!r}")
    rel = path[len(mp):].lstrip("/")
    squash_rev = {v.lower(): k for k, v in SQUASH_KEYWORDS.items()}
    exp_squash = squash_rev[one(block, "Squash").lower()]
    clients = []
    accesses = []
    for cb in block.sub("CLIENT"):
        hosts = cb.get("Clients") or []
        access = one(cb, "Access_Type")
        squash = squash_rev[one(cb, "Squash").lower()]
        opts = [access.lower()] if access in ("RW", "RO") else []
        if squash != exp_squash:
            opts.append(squash)
        for key, name in (("Anonymous_Uid", "anonuid"), ("Anonymous_Gid", "anongid")):
            if cb.get(key):
                opts.append(f"{name}={one(cb, key)}")
        if cb.get("SecType"):
            opts.append("sec=" + ":".join(cb.get("SecType") or []))
        for host in hosts:
            clients.append(ClientSpec(host, tuple(opts)))
            accesses.append(access)
    fsal = (block.sub("FSAL") or [Block("FSAL", [("Name", ["VFS"])])])[0]
    # The export-level cap is the widest client access (a None client only exists under a None cap).
    cap = next((a for a in ("RW", "RO") if a in accesses), "None")
    return Export(path=rel, export_id=int(one(block, "Export_Id")), fsid=fsid,
                  pseudo=one(block, "Pseudo"), clients=tuple(clients), access=cap,
                  squash=exp_squash, fsal=one(fsal, "Name"))
