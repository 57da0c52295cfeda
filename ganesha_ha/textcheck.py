"""The one rule every text field obeys before it may reach a config file or an argument, the
one reading of a double-quoted value that Ganesha's config and the `--fsal` form share, and
the package's regular expressions compiled at their first use (`LazyPattern`)."""
from __future__ import annotations

import unicodedata

from .errors import ValidationError


def check_text(field_name: str, value: object) -> None:
    """Refuse non-text, control characters, NUL, lone surrogates and non-characters anywhere
    (ValidationError naming `field_name`): none of them can be written to a Ganesha config,
    an exports file or an exportfs argument without changing what it says."""
    if not isinstance(value, str):
        raise ValidationError(field_name, "must be text")
    if value.isascii() and value.isprintable():
        return   # U+0020-U+007E only: none of the refused characters, and valid UTF-8 (the common case, ~5x faster)
    for ch in value:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs", "Cn", "Zl", "Zp") or ch in "\u2028\u2029":
            raise ValidationError(field_name, f"contains a control or invalid character (U+{ord(ch):04X})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(field_name, "is not valid UTF-8") from None


def read_quoted(text: str, pos: int) -> tuple[str, int] | None:
    """Read the double-quoted value whose opening quote is `text[pos]`, as Ganesha's config
    lexer reads it (a backslash takes the next character as it is; src/config_parsing/
    conf_lex.l): (the value, the index just after the closing quote), or None when the
    quote is never closed (each caller words that error for its own input)."""
    out: list[str] = []
    pos += 1
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch == "\\" and pos + 1 < n:
            out.append(text[pos + 1])
            pos += 2
        elif ch == '"':
            return "".join(out), pos + 1
        else:
            out.append(ch)
            pos += 1
    return None


class LazyPattern:
    """A regular expression compiled when it is first used, not when its module is imported:
    `_X_RE = LazyPattern(r"...")`, then `_X_RE.fullmatch(text)` as with `re.compile`.

    Why: the resource agent is a new process for every call, and `re.compile` runs the
    pattern compiler written in Python: the ~15 patterns of the modules a classic monitor
    imports took about 1 ms to compile, and that monitor matches 7 of them (measured for
    issue 19). The first use of an attribute (fullmatch, sub, ...) compiles the pattern and
    keeps that attribute on the object, so later uses cost what the compiled pattern's do."""

    def __init__(self, pattern: str | bytes, flags: int = 0) -> None:
        self.pattern, self.flags = pattern, flags

    def __getattr__(self, name: str) -> object:   # only for attributes not set yet
        import re

        value = getattr(re.compile(self.pattern, self.flags), name)
        setattr(self, name, value)
        return value
