"""The forms exports are described in outside the registry (pure): read and written.

- `exports5`: exports(5), the kernel NFS server's table (/etc/exports, `export dump --format
  exports`);
- `ganesha_blocks`: NFS-Ganesha EXPORT blocks (/etc/ganesha/ganesha.conf, `--format ganesha`);
- `cib`: `ocf:heartbeat:exportfs` primitives in a Pacemaker CIB, and the pcs and crmsh
  commands that replace them by one `ocf:ganesha-ha:exports` resource;
- `jsonform`: the JSON of `export list --json`.

Each reader turns its form into description.Descriptions (what the form says of each export)
and `Refusal`s (what it says that ganesha-ha cannot represent, with the reason), never both
for one export: one bad entry costs only itself. converge.py takes it from there.
"""
from __future__ import annotations

from ..description import Description, Refusal
from ..record import Factory, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..model import Export


class Reading(Record):
    """What a reader found: descriptions of exports in the volume, refusals, and how many
    entries it left out because they lie outside the volume."""

    descriptions: list[Description] = Factory(list)
    refusals: list[Refusal] = Factory(list)
    outside: int = 0
    notes: list[str] = Factory(list)
    # exports(5): the lines each description came from, by Description.where ("/etc/exports line 4")
    lines: dict[str, list[str]] = Factory(dict)


FORMATS = ("json", "exports", "ganesha")


def where(exp: Export, mountpoint: str) -> str:
    """The export's directory for people: on the volume, or for an FSAL with its own namespace
    `NAME:/path`."""
    if exp.remote:
        return f"{exp.ganesha.fsal.base.name}:{exp.path}"
    return f"{mountpoint.rstrip('/')}/{exp.path}" if exp.path else mountpoint


def detect(text: str) -> str:
    """The form of `text` given to `export apply -i` without --format: JSON when it starts
    with `[` or `{`, Ganesha when it has an EXPORT block, else exports(5)."""
    import re

    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        return "json"
    if re.search(r"(?im)^\s*export\s*\{", text):
        return "ganesha"
    return "exports"
