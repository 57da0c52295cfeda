"""rmtab lines, pure: select a volume's lines, merge them into a host file, rebase, save format.

rmtab is mountd's list of mounted clients (nfs-utils 2.6.2, support/nfs/rmtab.c): one line
`client:path:0x%08x` per (client, path), the count after the *last* colon; colons of an IPv6
client are written as `;`. mountd writes the path raw; an octal escape is decoded when
matching, for files written by other tools. The volume's copy (`<mount point>/.ganesha-ha/
rmtab`) is these lines under a header naming the mount point they were saved at, so that a
volume mounted elsewhere on the next node gets its lines rebased. No I/O here: rmtab.py
reads and writes the files.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ..nfspath import escape_etab_path, normalize_path, path_is_under
from ..record import Record
from ..textcheck import LazyPattern

RMTAB_HEADER = "# ganesha-ha knfsd rmtab v1 mountpoint="
_BLANKS = " \t\r\n\v\f"
_LINE_RE = LazyPattern(r"[^\n]*\n|[^\n]+\Z")


class RmtabEntry(Record, frozen=True):
    client: str
    path: str       # normalised (escapes decoded)
    count: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.client, self.path)


def parse_rmtab_line(line: str) -> RmtabEntry | None:
    """`client:path:0xCOUNT` (IPv6 colons in the client are `;`); None when malformed.

    The count is taken after the *last* colon, so a directory containing ':' still parses.
    """
    line = line.rstrip("\n")
    client, sep, rest = line.partition(":")
    if not sep or not client or not rest.startswith("/"):
        return None
    path, sep, count = rest.rpartition(":")
    if sep and re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", count):
        num = int(count, 0) if count[:2].lower() == "0x" else int(count)
    else:
        path, num = rest, 1
    if not path.startswith("/"):
        return None
    return RmtabEntry(client.replace(";", ":"), normalize_path(path), num)


def _lines(text: str) -> list[str]:
    return [ln for ln in text.split("\n") if ln.strip(_BLANKS)]


def select_volume_lines(text: str, mountpoint: str) -> list[str]:
    """The rmtab lines (verbatim, in order, first of each client+path) under `mountpoint`."""
    out, seen = [], set()
    for line in _lines(text):
        if line.startswith("#"):
            continue
        e = parse_rmtab_line(line)
        if e is not None and path_is_under(e.path, mountpoint) and e.key not in seen:
            seen.add(e.key)
            out.append(line)
    return out


def remove_volume_lines(text: str, mountpoint: str) -> str:
    """`text` without the lines under `mountpoint`; every other line is kept byte for byte."""
    kept = []
    for line in _LINE_RE.findall(text):  # '\n' only: str.splitlines also splits at U+0085
        e = parse_rmtab_line(line) if line.strip(_BLANKS) and not line.startswith("#") else None
        if e is not None and path_is_under(e.path, mountpoint):
            continue
        kept.append(line)
    return "".join(kept)


def merge_rmtab(host_text: str, saved_lines: Iterable[str], mountpoint: str) -> str:
    """The host rmtab plus those saved lines (under `mountpoint`) whose client+path it lacks.

    Host lines are never changed or reordered; a client already listed keeps its host
    line (the live count). Saved lines outside the mount point are ignored.
    """
    keys = set()
    for line in host_text.split("\n"):
        e = parse_rmtab_line(line)
        if e is not None:
            keys.add(e.key)
    added = []
    for line in saved_lines:
        if line.startswith("#"):
            continue
        e = parse_rmtab_line(line)
        if e is None or not path_is_under(e.path, mountpoint) or e.key in keys:
            continue
        keys.add(e.key)
        added.append(line.rstrip("\n") + "\n")
    if not added:
        return host_text
    sep = "" if host_text == "" or host_text.endswith("\n") else "\n"
    return host_text + sep + "".join(added)


def render_saved_rmtab(lines: Sequence[str], mountpoint: str) -> str:
    """The volume's copy: a header naming the mount point it was taken at, then the lines."""
    return RMTAB_HEADER + escape_etab_path(normalize_path(mountpoint)) + "\n" + \
        "".join(ln.rstrip("\n") + "\n" for ln in lines)


def parse_saved_rmtab(text: str) -> tuple[str | None, list[str]]:
    """(mount point it was saved at, or None; its rmtab lines)."""
    mountpoint = None
    lines = []
    for line in _lines(text):
        if line.startswith(RMTAB_HEADER):
            mountpoint = normalize_path(line[len(RMTAB_HEADER):].strip())
        elif not line.startswith("#") and parse_rmtab_line(line) is not None:
            lines.append(line)
    return mountpoint, lines


def rebase_rmtab_lines(lines: Iterable[str], old: str, new: str) -> list[str]:
    """Move lines saved under mount point `old` to `new` (the volume moved elsewhere)."""
    old_n, new_n = normalize_path(old), normalize_path(new)
    if old_n == new_n:
        return list(lines)
    out = []
    for line in lines:
        e = parse_rmtab_line(line)
        if e is None or not path_is_under(e.path, old_n):
            continue
        rest = e.path[len(old_n):]
        client = e.client.replace(":", ";")
        out.append(f"{client}:{new_n}{rest}:0x{e.count:08x}")
    return out
