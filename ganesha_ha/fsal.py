"""An export's FSAL (Ganesha's File System Abstraction Layer) as a typed record (pure).

Ganesha's EXPORT block has one FSAL sub-block: its `Name` (VFS, NULL, MEM, PROXY_V4, ... as
the modules under /usr/lib/.../ganesha/ are named: libfsal<name>.so), the module's own
parameters, and, for a stackable FSAL such as NULL, the FSAL sub-block of the one it sits on
(nfs-ganesha's config_samples/config.txt, src/FSAL/Stackable_FSALs/FSAL_NULL). So a record
has a name, key/value options and an optional stacked FSAL.

Options are checked for form here (a key is a word, a value is text a Ganesha config can
carry in a double-quoted string: no control character, no backslash, see ganesha_conf.py); which options an FSAL takes is the server's business:
ganesha.py accepts none until each FSAL has a schema (the FSAL block then renders typed
values), so that nothing unvalidated ever reaches a config file.
"""
from __future__ import annotations

import re

from .errors import ValidationError
from .record import Record
from .textcheck import check_text

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")   # an FSAL name and an option key alike
MAX_OPTION_VALUE = 1024
MAX_STACK = 4   # FSALs stacked on one another; Ganesha's own stacks are two deep


class Fsal(Record, frozen=True):
    """One FSAL: its name, its options as (key, value) pairs in order, the FSAL below it."""

    name: str = "VFS"
    options: tuple[tuple[str, str], ...] = ()
    stacked: Fsal | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise ValidationError("fsal", f"{self.name!r} is not an FSAL name")
        pairs = tuple(self.options.items()) if isinstance(self.options, dict) else tuple(self.options)
        keys: set[str] = set()
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValidationError("fsal option", f"{pair!r} is not a key and a value")
            key, value = pair
            if not isinstance(key, str) or not _NAME_RE.fullmatch(key) or key.lower() == "name":
                raise ValidationError("fsal option", f"{key!r} is not an option name")
            if key.lower() in keys:
                raise ValidationError("fsal option", f"{key} is given twice")
            keys.add(key.lower())
            check_text("fsal option", value)
            if "\\" in value:  # Ganesha's lexer can run a quoted string on past an escaped backslash
                raise ValidationError("fsal option", f"the value of {key} must not contain a backslash")
            if len(value) > MAX_OPTION_VALUE:
                raise ValidationError("fsal option", f"the value of {key} is longer than {MAX_OPTION_VALUE} characters")
        object.__setattr__(self, "options", tuple((k, v) for k, v in pairs))
        if self.stacked is not None:
            if not isinstance(self.stacked, Fsal):
                raise ValidationError("fsal", "a stacked FSAL must be an FSAL")
            if self.depth() > MAX_STACK:
                raise ValidationError("fsal", f"more than {MAX_STACK} FSALs stacked")

    def depth(self) -> int:
        return 1 + (self.stacked.depth() if self.stacked is not None else 0)

    def __str__(self) -> str:
        """`VFS`, `NULL on VFS`, `X(key=value) on VFS`: for people, not for config files."""
        opts = f"({','.join(f'{k}={v}' for k, v in self.options)})" if self.options else ""
        return self.name + opts + (f" on {self.stacked}" if self.stacked is not None else "")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.options:
            data["options"] = [[k, v] for k, v in self.options]
        if self.stacked is not None:
            data["stacked"] = self.stacked.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Fsal:
        if not isinstance(data, dict) or not set(data) <= {"name", "options", "stacked"}:
            raise ValidationError("fsal", "registry entry is not an FSAL (name, options, stacked)")
        stacked = data.get("stacked")
        return cls(name=data.get("name", "VFS"), options=tuple(tuple(p) if isinstance(p, list) else p
                                                             for p in data.get("options", ())),
                   stacked=cls.from_dict(stacked) if stacked is not None else None)
