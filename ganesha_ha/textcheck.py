"""The one rule every text field obeys before it may reach a config file or an argument."""
from __future__ import annotations

import unicodedata

from .errors import ValidationError


def check_text(field_name: str, value: object) -> None:
    """Refuse non-text, control characters, NUL, lone surrogates and non-characters anywhere
    (ValidationError naming `field_name`): none of them can be written to a Ganesha config,
    an exports file or an exportfs argument without changing what it says."""
    if not isinstance(value, str):
        raise ValidationError(field_name, "must be text")
    for ch in value:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs", "Cn", "Zl", "Zp") or ch in "\u2028\u2029":
            raise ValidationError(field_name, f"contains a control or invalid character (U+{ord(ch):04X})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(field_name, "is not valid UTF-8") from None
