r"""Paths as nfs-utils writes them into its tables (etab, rmtab, exports), pure.

Shared by the knfsd backend (etab, exportfs arguments) and the rmtab recovery store, which
both read and write files nfs-utils also writes. Facts from nfs-utils 2.6.2
(support/nfs/exports.c `fprintpath`, support/nfs/rmtab.c): paths are written raw except
for control characters, space, `"`, `\` and `#`, which become 3-digit octal escapes
(`/srv/a\040b`); files written by other tools may escape more, so every `\ooo` is decoded
when reading. Paths are bytes on Linux: text here is UTF-8 with surrogate escapes, so
any byte survives a round trip.
"""
from __future__ import annotations

from .textcheck import LazyPattern

_OCTAL_RE = LazyPattern(rb"\\([0-3][0-7]{2})")


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def from_bytes(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def unescape_octal(text: str) -> str:
    r"""Decode nfs-utils' `\ooo` escapes (byte-wise, so `\303\251` is 'é')."""
    if "\\" not in text:
        return text
    return from_bytes(_OCTAL_RE.sub(lambda m: bytes([int(m.group(1), 8)]), to_bytes(text)))


def escape_etab_path(path: str) -> str:
    r"""A path as nfs-utils' `fprintpath` writes it into etab (space → `\040`)."""
    out = bytearray()
    for byte in to_bytes(path):
        if byte < 0x20 or byte == 0x7F or byte in b" \t\n\v\f\r\"\\#":
            out += f"\\{byte:03o}".encode()
        else:
            out.append(byte)
    return from_bytes(bytes(out))


def normalize_path(path: str) -> str:
    """An absolute directory with escapes decoded, `//` and trailing `/` removed."""
    path = unescape_octal(path)
    if not path.startswith("/"):
        return path
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)


def path_is_under(path: str, mountpoint: str) -> bool:
    """True when `path` is the mount point itself or inside it (`/vol2` is not under `/vol`)."""
    p, m = normalize_path(path), normalize_path(mountpoint)
    return p == m or (m != "/" and p.startswith(m + "/"))
