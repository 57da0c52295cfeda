"""The steps that read an older registry.json (registry.py) as the current schema: one step per
version, for each export (`EXPORT_STEPS`) and for the whole document (`DOCUMENT_STEPS`); the
next save writes the current version.
- 1 → 2: version 1 kept "fsid" and "fsal" (an FSAL name) beside the common fields;
- 2 → 3: version 2 had no "retired" (`_v2_to_v3_retired`);
- 3 → 4: a client spec without `rw`/`ro` meant read-write up to version 3 and means read-only
  from version 4 on (exports(5)); the step writes the old meaning out (`rw`), so an upgrade
  never changes what an export grants (`_v3_to_v4_bare_specs`).
- 4 → 5: version 4 had no "ganesha_mode": every volume was served by the node's shared
  server (`_v4_to_v5_ganesha_mode`). The version is raised although the step only adds a
  default, so that a node running an older ganesha-ha refuses an "instance" volume instead
  of serving it through the node's shared Ganesha.

Imported only for a registry older than registry.SCHEMA_VERSION: the agent reading a current
one never loads it. A new schema version adds one step to each tuple (tests/unit checks that
there is one per version).
"""
from __future__ import annotations

from collections.abc import Callable

from . import idranges
from .servers import SHARED

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any


def upgrade_document(doc: Any, version: int) -> Any:
    """A registry document of schema `version` brought to the current schema, but for its
    exports (each read through `upgrade_export` with the same `version`)."""
    for step in DOCUMENT_STEPS[version - 1:]:
        doc = step(doc)
    return doc


def upgrade_export(data: Any, version: int) -> Any:
    """An export as a registry of schema `version` stores it, in the current schema's form."""
    for step in EXPORT_STEPS[version - 1:]:
        data = step(data)
    return data


def _export_v1_to_v2(data: Any) -> Any:
    """Schema 1 kept `fsid` and `fsal` (an FSAL name) beside the common fields; schema 2
    keeps each server's part apart: `knfsd: {fsid}`, `ganesha: {fsal: {name, ...}}`."""
    if not isinstance(data, dict):
        return data
    out = {k: v for k, v in data.items() if k not in ("fsid", "fsal")}
    if "fsid" in data:
        out["knfsd"] = {"fsid": data["fsid"]}
    out["ganesha"] = {"fsal": {"name": data.get("fsal", "VFS")}}
    return out


def _doc_unchanged(doc: Any) -> Any:
    return doc


def _v2_to_v3_retired(doc: Any) -> Any:
    """Schema 3 remembers the ids of removed exports ("retired"). A registry of schema 1 or 2
    does not know them, and those versions handed a freed id out again, lowest first: every
    id of the range below the highest one in use may be in a client's file handle, so those
    not in use now are retired. Numeric fsids of removed exports cannot be known: none."""
    lo, hi = (int(x) for x in doc["volume"]["export_id_range"])
    used = {int(e["export_id"]) for e in doc.get("exports", [])}
    top = max((i for i in used if lo <= i <= hi), default=lo - 1)
    ids = idranges.add((), (i for i in range(lo, top + 1) if i not in used))
    return dict(doc, retired={"export_ids": [list(r) for r in ids], "fsids": []})


def _v4_to_v5_ganesha_mode(doc: Any) -> Any:
    """Schema 5 says how the volume is served ("ganesha_mode"); up to schema 4 every volume was
    served by the node's shared server."""
    return dict(doc, volume=dict(doc["volume"], ganesha_mode=SHARED))


def _export_unchanged(data: Any) -> Any:
    """A step that changes only the document (2 → 3: `retired`; 4 → 5: `ganesha_mode`): an
    export's fields stay as they are."""
    return data


def _v3_to_v4_bare_specs(data: Any) -> Any:
    """Up to schema 3 a client spec without `rw`/`ro` was read-write (capped by the export's
    `access`); from schema 4 on it is read-only, as in exports(5). A bare spec of an older
    registry gets an explicit `rw` (first), so it grants what it granted before."""
    if not isinstance(data, dict) or not isinstance(data.get("clients"), list):
        return data
    clients = []
    for client in data["clients"]:
        if isinstance(client, dict) and isinstance(client.get("options", []), list):
            options = list(client.get("options", []))
            if not any(str(opt).strip().lower() in ("rw", "ro") for opt in options):
                client = dict(client, options=["rw", *options])
        clients.append(client)
    return dict(data, clients=clients)


# EXPORT_STEPS[n - 1] turns an export of schema n into one of schema n + 1, DOCUMENT_STEPS[n - 1]
# the whole document (after which each export is read through EXPORT_STEPS)
EXPORT_STEPS: tuple[Callable[[Any], Any], ...] = (_export_v1_to_v2, _export_unchanged, _v3_to_v4_bare_specs,
                                                   _export_unchanged)
DOCUMENT_STEPS: tuple[Callable[[Any], Any], ...] = (_doc_unchanged, _v2_to_v3_retired, _doc_unchanged,
                                                     _v4_to_v5_ganesha_mode)
assert len(EXPORT_STEPS) == len(DOCUMENT_STEPS)
