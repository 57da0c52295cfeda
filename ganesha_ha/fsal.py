"""An export's FSAL (Ganesha's File System Abstraction Layer) as a typed record (pure).

Ganesha's EXPORT block has one FSAL sub-block: its `Name` (VFS, NULL, MEM, PROXY_V4, ... as
the modules under /usr/lib/.../ganesha/ are named: libfsal<name>.so), the FSAL's own
parameters, and, for a stackable FSAL such as NULL, the FSAL sub-block of the one it sits on
(nfs-ganesha's config_samples/config.txt, src/FSAL/Stackable_FSALs/FSAL_NULL). So a record
has a name, key/value options and an optional stacked FSAL.

Every record is checked against its FSAL's schema (fsal_schema.py): a supported name, options
that FSAL has (export and module options alike), values of the option's type and range, the
required ones present, stacking only where the FSAL stacks. Names and keys are stored in
Ganesha's spelling and options in the schema's order, so two spellings of one FSAL are one
record (the registry compares records to decide what changed). Values are text of their kind
that a Ganesha config can carry: no control character, no backslash (Ganesha's lexer can run a
quoted string on past an escaped backslash; see ganesha_conf.py).

Secrets (an option the schema marks secret: Secret_Access_Key) are kept in the record and the
registry (0600), and appear nowhere else: str(), repr() and `to_dict(redact=True)` (what the
CLI prints) show `<redacted>`, and error messages never repeat a secret value.

A registry written elsewhere may hold an FSAL this code does not know (a newer ganesha-ha, a
name the model once took unchecked): `from_dict` loads it as it is, marked with the `problem`,
so the rest of the volume still loads and only that export is refused when it is rendered.
"""
from __future__ import annotations

import re

from .errors import ValidationError
from .fsal_schema import REDACTED, FsalSchema, Option, normalize_value, schema_of
from .record import Record
from .textcheck import LazyPattern, check_text, read_quoted

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_NAME_RE = LazyPattern(r"[A-Za-z][A-Za-z0-9_]{0,31}")   # an FSAL name and an option key alike
MAX_OPTION_VALUE = 4096   # bytes: Ganesha's longest (MAXPATHLEN) string items
MAX_STACK = 4   # FSALs stacked on one another; Ganesha's own stacks are two deep
MAX_VALUE_FILE = 65536    # bytes read for a `key=@/path` value


def _check_value(key: str, value: object, secret: bool) -> str:
    shown = "its value" if secret else f"the value of {key}"
    try:
        check_text("fsal option", value)
    except ValidationError as exc:
        raise ValidationError("fsal option", f"{shown} {exc.message.split(': ', 1)[-1]}") from None
    assert isinstance(value, str)
    if "\\" in value:  # Ganesha's lexer can run a quoted string on past an escaped backslash
        raise ValidationError("fsal option", f"{shown} must not contain a backslash")
    if len(value.encode("utf-8")) > MAX_OPTION_VALUE:
        raise ValidationError("fsal option", f"{shown} is longer than {MAX_OPTION_VALUE} bytes")
    return value


class Fsal(Record, frozen=True):
    """One FSAL: its name, its options as (key, value) pairs in its schema's order, the FSAL below it."""

    name: str = "VFS"
    options: tuple[tuple[str, str], ...] = ()
    stacked: Fsal | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise ValidationError("fsal", f"{self.name!r} is not an FSAL name")
        sch = schema_of(self.name)
        object.__setattr__(self, "name", sch.name)
        pairs = tuple(self.options.items()) if isinstance(self.options, dict) else tuple(self.options)
        given: dict[str, str] = {}
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValidationError("fsal option", f"{pair!r} is not a key and a value")
            key, value = pair
            if not isinstance(key, str) or not _NAME_RE.fullmatch(key) or key.lower() == "name":
                raise ValidationError("fsal option", f"{key!r} is not an option name")
            opt = sch.option(key)
            if opt.key in given:
                raise ValidationError("fsal option", f"{opt.key} is given twice")
            given[opt.key] = normalize_value(sch.name, opt, _check_value(opt.key, value, opt.secret))
        missing = [o.key for o in sch.options if o.required and o.key not in given]
        if missing:
            raise ValidationError("fsal option", f"FSAL {sch.name} needs {', '.join(missing)}")
        object.__setattr__(self, "options", tuple((o.key, given[o.key]) for o in sch.options if o.key in given))
        if self.stacked is not None and not isinstance(self.stacked, Fsal):
            raise ValidationError("fsal", "a stacked FSAL must be an FSAL")
        if sch.stacking and self.stacked is None:
            raise ValidationError("fsal", f"FSAL {sch.name} sits on another FSAL: give it inside its "
                                          f"parentheses, e.g. {sch.name}(VFS)")
        if not sch.stacking and self.stacked is not None:
            raise ValidationError("fsal", f"FSAL {sch.name} does not stack on another FSAL")
        if self.depth() > MAX_STACK:
            raise ValidationError("fsal", f"more than {MAX_STACK} FSALs stacked")

    # ---- what the record means --------------------------------------------------------
    @property
    def problem(self) -> str:
        """Why a record loaded from a registry does not pass this code's schema ('' if it does)."""
        return self.__dict__.get("_problem", "") or (self.stacked.problem if self.stacked is not None else "")

    @property
    def schema(self) -> FsalSchema:
        return schema_of(self.name)

    def depth(self) -> int:
        return 1 + (self.stacked.depth() if self.stacked is not None else 0)

    def layers(self) -> list[Fsal]:
        """This FSAL and the ones below it, top first."""
        return [self] + (self.stacked.layers() if self.stacked is not None else [])

    @property
    def base(self) -> Fsal:
        """The FSAL at the bottom of the stack: the one that holds the data."""
        return self.layers()[-1]

    @property
    def remote(self) -> bool:
        """Whether the export's Path is in the FSAL's own namespace (CEPH, GLUSTER, RGW,
        PROXY_V4, MEM) rather than a directory of the volume (VFS, XFS, LUSTRE, GPFS; NULL
        follows the FSAL it sits on)."""
        try:
            return self.base.schema.remote
        except ValidationError:
            return False   # an unknown FSAL (a `problem` record): treated as local, refused at render

    def _opts(self) -> list[tuple[Option, str]]:
        sch = self.schema
        return [(sch.option(k), v) for k, v in self.options]

    def export_options(self) -> list[tuple[Option, str]]:
        """(option, value) of the FSAL sub-block, with ganesha-ha's own defaults filled in."""
        given = {opt.key for opt, _ in self._opts()}
        out = [(opt, v) for opt, v in self._opts() if not opt.module]
        out += [(o, o.ha_default) for o in self.schema.options
                if o.ha_default is not None and not o.module and o.key not in given]
        return out

    def module_options(self) -> list[tuple[Option, str]]:
        """(option, value) of this FSAL's module block (given ones only)."""
        return [(opt, v) for opt, v in self._opts() if opt.module]

    def effective(self, key: str) -> str | None:
        """The value that reaches Ganesha for `key`: given, else ganesha-ha's default, else
        Ganesha's default (None when Ganesha has none)."""
        opt = self.schema.option(key)
        return dict(self.options).get(opt.key, opt.ha_default if opt.ha_default is not None else opt.default)

    def secrets(self) -> list[str]:
        """The secret values of the whole stack (to be scrubbed from any text shown)."""
        return [v for layer in self.layers() if not layer.problem
                for opt, v in layer._opts() if opt.secret and v]

    def in_place_change(self, new: Fsal) -> bool:
        """Whether Ganesha's UpdateExport applies the change from this FSAL to `new`: the same
        stack, differing only in options its update_export re-reads (MEM's Async_*;
        src/FSAL/FSAL_MEM/mem_export.c:mem_update_export) or in module options. Every other FSAL
        option change needs the export withdrawn and added again (VFS refuses a fsid_type change
        in place, CEPH, GLUSTER, RGW, GPFS and PROXY_V4 ignore it and still answer "1 exports
        updated"). A module option takes effect only when Ganesha loads the module again (its
        restart: the module block is read once), which no re-add brings about; a re-add would only
        cost the export's clients an outage and MEM its files (measured on 4.3: UpdateExport with a
        changed MEM block answers "1 exports updated" and the files stay)."""
        if self == new:
            return True
        if self.problem or new.problem or self.name != new.name or (self.stacked is None) != (new.stacked is None):
            return False
        if self.stacked is not None and new.stacked is not None and not self.stacked.in_place_change(new.stacked):
            return False
        fixed_old = [(o.key, v) for o, v in self._opts() if not o.in_place and not o.module]
        fixed_new = [(o.key, v) for o, v in new._opts() if not o.in_place and not o.module]
        return fixed_old == fixed_new

    # ---- text -------------------------------------------------------------------------
    def _shown_options(self) -> list[tuple[str, str]]:
        if self.problem:   # no schema to say which is secret: anything that looks like one
            return [(k, REDACTED if any(w in k.lower() for w in ("secret", "key", "pass", "token")) else v)
                    for k, v in self.options]
        return [(opt.key, REDACTED if opt.secret else v) for opt, v in self._opts()]

    def __str__(self) -> str:
        """`VFS`, `NULL(VFS)`, `MEM(Inode_Size=65536)`: the CLI's syntax, secrets redacted."""
        items = [f"{k}={_spec_value(v)}" for k, v in self._shown_options()]
        if self.stacked is not None:
            items.append(str(self.stacked))
        return self.name + (f"({','.join(items)})" if items else "")

    def __repr__(self) -> str:
        return f"Fsal({str(self)!r})"

    def to_dict(self, redact: bool = False) -> dict[str, Any]:
        """The registry's form; with `redact`, secrets replaced (what output may show)."""
        data: dict[str, Any] = {"name": self.name}
        pairs = self._shown_options() if redact else list(self.options)
        if pairs:
            data["options"] = [[k, v] for k, v in pairs]
        if self.stacked is not None:
            data["stacked"] = self.stacked.to_dict(redact)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Fsal:
        """A registry's FSAL. One this code's schema refuses is kept as it is, with its `problem`."""
        if not isinstance(data, dict) or not set(data) <= {"name", "options", "stacked"}:
            raise ValidationError("fsal", "registry entry is not an FSAL (name, options, stacked)")
        stacked = data.get("stacked")
        below = cls.from_dict(stacked) if stacked is not None else None
        name = data.get("name", "VFS")
        options = tuple(tuple(p) if isinstance(p, list) else p for p in data.get("options", ()))
        try:
            return cls(name=name, options=options, stacked=below)
        except ValidationError as exc:
            if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or not all(
                    isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in options):
                raise
            record = object.__new__(cls)
            record.__dict__.update(name=name, options=options, stacked=below, _problem=exc.message)
            return record


def _spec_value(value: str) -> str:
    """A value as parse_spec reads it back: bare when it can be, else double-quoted."""
    if value and not any(c in ',()"\'' or c.isspace() for c in value) and not value.startswith("@"):
        return value
    return '"' + value.replace('"', '\\"') + '"'


# ---- the command line's syntax ---------------------------------------------------------------

def parse_spec(text: str, read_file: Callable[[str], str] | None = None) -> Fsal:
    """`NAME` or `NAME(key=value,...,STACKED)` → an Fsal (the CLI's --fsal; README "FSALs").

    A value is bare (anything but `,()"` and leading/trailing blanks) or double-quoted (`\\"`
    inside for a quote); a bare value `@/path` is the content of that file, one trailing
    newline removed (for secrets: not in shell history or the CIB), read with `read_file`.
    An item without `=` is the FSAL this one sits on, in the same syntax: `NULL(VFS(fsid_type=uuid))`.
    ValidationError for anything else, naming the position.
    """
    check_text("fsal", text)
    pos = 0
    n = len(text)

    def fail(what: str) -> ValidationError:
        return ValidationError("fsal", f"{what} at character {pos + 1} of {_without_secrets(text)!r}"
                                       " (expected NAME or NAME(key=value,...))")

    def skip() -> None:
        nonlocal pos
        while pos < n and text[pos] in " \t":
            pos += 1

    def word() -> str:
        nonlocal pos
        skip()
        start = pos
        while pos < n and (text[pos].isalnum() or text[pos] == "_") and text[pos].isascii():
            pos += 1
        if start == pos:
            raise fail("a name is missing")
        return text[start:pos]

    def value(key: str) -> str:
        nonlocal pos
        skip()
        if pos < n and text[pos] == '"':
            quoted = read_quoted(text, pos)
            if quoted is None:
                raise fail(f"the quoted value of {key} is not closed")
            unquoted, pos = quoted
            return unquoted
        start = pos
        while pos < n and text[pos] not in ',()"':
            pos += 1
        raw = text[start:pos].strip()
        if raw.startswith("@"):
            if read_file is None:
                raise fail(f"{key}=@FILE is not allowed here")
            return _read_value(key, raw[1:], read_file)
        return raw

    def spec() -> Fsal:
        nonlocal pos
        name = word()
        skip()
        options: list[tuple[str, str]] = []
        stacked: Fsal | None = None
        if pos < n and text[pos] == "(":
            pos += 1
            skip()
            if pos < n and text[pos] == ")":
                pos += 1
            else:
                while True:
                    item = word()
                    skip()
                    if pos < n and text[pos] == "=":
                        pos += 1
                        options.append((item, value(item)))
                    else:
                        if not _may_stack(name, item):
                            raise fail(f"{item} needs a value ({item}=VALUE; FSAL {name.upper()} sits on no other)")
                        if stacked is not None:
                            raise fail("a second stacked FSAL")
                        pos -= len(item)
                        stacked = spec()
                    skip()
                    if pos < n and text[pos] == ",":
                        pos += 1
                        continue
                    if pos < n and text[pos] == ")":
                        pos += 1
                        break
                    raise fail("',' or ')' is missing")
        return Fsal(name, tuple(options), stacked)

    result = spec()
    skip()
    if pos != n:
        raise fail("unexpected text")
    return result


def _may_stack(name: str, item: str) -> bool:
    """Whether `item`, written without `=` inside NAME(...), can be the FSAL NAME sits on: NAME
    stacks, or `item` is an FSAL (Fsal() then says that NAME does not stack), or NAME is unknown
    (Fsal() says so). Otherwise it is an option whose value was left out."""
    from .fsal_schema import SCHEMAS

    known = SCHEMAS.get(name.upper())
    return known is None or known.stacking or item.upper() in SCHEMAS


def _without_secrets(text: str) -> str:
    """`text` (a --fsal that did not parse) with the value of every secret option redacted: up to
    its closing quote, else up to the next `,` or `)`, else to the end (a spec with a typo can end
    anywhere, so this errs on the side of hiding). Option names are those of every schema's
    secret options, whatever the FSAL named."""
    from .fsal_schema import SCHEMAS

    keys = sorted({o.key for sch in SCHEMAS.values() for o in sch.options if o.secret})
    pattern = (r"(?i)\b(" + "|".join(map(re.escape, keys)) +
               r')(\s*=\s*)("(?:[^"\\]|\\.)*"?|[^,)]*)')
    return re.sub(pattern, lambda m: m.group(1) + m.group(2) + REDACTED, text)


def _read_value(key: str, path: str, read_file: Callable[[str], str]) -> str:
    if not path:
        raise ValidationError("fsal option", f"{key}=@ needs a file name")
    content = read_file(path)
    if content.endswith("\r\n"):
        content = content[:-2]
    elif content.endswith("\n"):
        content = content[:-1]
    return content


def read_value_file(path: str) -> str:
    """The content of a `key=@/path` file (UTF-8, at most MAX_VALUE_FILE bytes): the CLI's reader.
    ValidationError naming the file, never its content."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_VALUE_FILE + 1)
    except OSError as exc:
        raise ValidationError("fsal option", f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_VALUE_FILE:
        raise ValidationError("fsal option", f"{path} is longer than {MAX_VALUE_FILE} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("fsal option", f"{path} is not UTF-8 text") from None


def check_module_agreement(fsals: list[tuple[str, Fsal]]) -> None:
    """Exports (named by the first item) that use one FSAL must give its module block the same
    options: Ganesha reads one module block per FSAL per node, from the file that first loads
    it (fsal_schema.py), so differing ones would depend on which export went live first.
    ConflictError naming both exports otherwise."""
    seen: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for where, fsal in fsals:
        for layer in fsal.layers():
            if layer.problem:
                continue
            mine = [(o.key, v) for o, v in layer.module_options()]
            first = seen.setdefault(layer.name, (where, mine))
            if first[1] != mine:
                from .errors import ConflictError

                def show(pairs: list[tuple[str, str]]) -> str:
                    return ", ".join(f"{k}={REDACTED if layer.schema.option(k).secret else v}"
                                     for k, v in pairs) or "none"
                raise ConflictError(f"FSAL {layer.name} module options of export '{where}' ({show(mine)}) differ "
                                    f"from those of export '{first[0]}' ({show(first[1])}): Ganesha reads one "
                                    f"{layer.name} block per node, so every export of a volume using it must "
                                    "give the same ones")


def handle_identity_risks(fsal: Fsal) -> list[str]:
    """Why this FSAL's file handles would depend on the node's block device number (fsid_type
    Dev/Device: fsal_schema.DEVICE_FSID_TYPES); [] for a handle that is the same on every node
    that mounts the volume. The caller refuses such an FSAL for an HA export unless forced."""
    from .fsal_schema import DEVICE_FSID_TYPES

    risks = []
    for layer in fsal.layers():
        if layer.problem:
            continue
        fsid_type = dict(layer.options).get("fsid_type")
        if fsid_type in DEVICE_FSID_TYPES:
            risks.append(f"FSAL {layer.name} fsid_type={fsid_type} puts the block device's number into the "
                         "file handles when the file system has no UUID that libblkid reads, and a node "
                         "where the volume's device has another minor number then answers NFS4ERR_STALE; "
                         "with a UUID it changes nothing: leave fsid_type unset (or use uuid)")
    return risks
