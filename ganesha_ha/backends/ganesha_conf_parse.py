"""Parse Ganesha config text (enough of the grammar for EXPORT blocks), pure.

Used by `import ganesha` (existing EXPORT blocks into a registry), by the node checks that
read the node's ganesha.conf (Plugins_Dir, the scope, EXPORT blocks a volume now owns:
ganesha_node.py, node_exports.py), and by the tests to read back what ganesha_conf.py renders
(a value that could inject config shows up as an extra block or parameter). Never on the
monitor's path (tests/server/test_agent_imports.py pins that). Its lexer follows Ganesha's
(src/config_parsing/conf_lex.l): `#` comments, double-quoted strings with backslash escapes,
single-quoted strings without them, and `{ } ; = ,` as punctuation.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from ..fsal import Fsal
from ..fsal_schema import schema_of
from ..clientspec import ClientSpec
from ..model import Export, GaneshaOptions, KnfsdOptions
from ..record import Factory, Record
from ..textcheck import read_quoted
from .ganesha_conf import SQUASH_KEYWORDS

class Block(Record):
    name: str
    params: list[tuple[str, list[str]]] = Factory(list)
    blocks: list["Block"] = Factory(list)
    line: int = 0   # 1-based line of the text where the block's name stands (0: not parsed)

    def get(self, key: str) -> list[str] | None:
        for k, v in self.params:
            if k.lower() == key.lower():
                return v
        return None

    def sub(self, name: str) -> list["Block"]:
        return [b for b in self.blocks if b.name.lower() == name.lower()]


class ParseError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, value, line) tokens: 'str' (unescaped quoted string), 'word', or punctuation;
    `line` is the 1-based line where the token begins."""
    out: list[tuple[str, str, int]] = []
    i, n = 0, len(text)
    line = 1
    while i < n:
        ch = text[i]
        if ch in " \t\r\f\n":
            line += ch == "\n"
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "{};=,":
            out.append((ch, ch, line))
            i += 1
        elif ch == '"':
            quoted = read_quoted(text, i)
            if quoted is None:
                raise ParseError("unterminated string")
            value, j = quoted
            out.append(("str", value, line))
            line += text.count("\n", i, j)
            i = j
        elif ch == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise ParseError("unterminated string")
            out.append(("str", text[i + 1:j], line))
            line += text.count("\n", i, j)
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\f\n#{};=,\"'":
                j += 1
            out.append(("word", text[i:j], line))
            i = j
    return out


def parse_config(text: str) -> list[Block]:
    toks = _tokens(text)
    pos = 0

    def parse_body(block: Block, top: bool) -> None:
        nonlocal pos
        while pos < len(toks):
            kind, value, line = toks[pos]
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
                child = Block(value, line=line)
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


def export_from_block(block: Block, mountpoint: str, fsid: str, modules: Sequence[Block] = ()) -> Export:
    """Read back an EXPORT block we rendered (the fsid is not part of Ganesha's block), with
    the module blocks rendered beside it."""
    def one(b: Block, key: str) -> str:
        v = b.get(key)
        if not v or len(v) != 1:
            raise ParseError(f"{key} missing or not single-valued")
        return v[0]

    path = one(block, "Path")
    fsals = block.sub("FSAL")
    fsal = fsal_from_block(fsals[0], modules) if fsals else Fsal()
    mp = str(PurePosixPath(mountpoint))
    if fsal.remote:
        rel = path
    elif path != mp and not path.startswith(mp.rstrip("/") + "/"):
        raise ParseError(f"Path {path!r} is outside {mp!r}")
    else:
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
    # The export-level cap is the widest client access (a None client only exists under a None cap).
    cap = next((a for a in ("RW", "RO") if a in accesses), "None")
    return Export(path=rel, export_id=int(one(block, "Export_Id")), knfsd=KnfsdOptions(fsid),
                  pseudo=one(block, "Pseudo"), clients=tuple(clients), access=cap, squash=exp_squash,
                  ganesha=GaneshaOptions(fsal))


def fsal_from_block(block: Block, modules: Sequence[Block] = ()) -> Fsal:
    """An FSAL block: its Name, its other parameters as options, a nested FSAL as the one it
    is stacked on; the parameters of a module block of the same name (`modules`) as its module
    options. Names are mapped back from Ganesha's spelling to the schema's keys."""
    name = block.get("Name")
    if not name or len(name) != 1:
        raise ParseError("FSAL without a single Name")
    sch = schema_of(name[0])
    def key(ganesha_name: str, module: bool) -> str:
        for opt in sch.options:
            if opt.name.lower() == ganesha_name.lower() and opt.module == module:
                return opt.key
        return ganesha_name
    options = tuple((key(k, False), ",".join(v)) for k, v in block.params if k.lower() != "name")
    options += tuple((key(k, True), ",".join(v)) for m in modules if m.name.lower() == sch.name.lower()
                     for k, v in m.params)
    stacked = block.sub("FSAL")
    return Fsal(name[0], options, fsal_from_block(stacked[0], modules) if stacked else None)
