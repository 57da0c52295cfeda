"""The JSON form: what `export list --json` and `export show --json` print (pure).

Read: a JSON list (every export of the volume: `export apply` removes the others) or one
object (one export, added or updated; nothing removed), each object read by
description.from_json. Written (`export dump --format json`): the list without the state
(`live`) and without the flat `fsid`/`fsal` keys that `export list --json` keeps for older
scripts, so that an edited dump says each thing once.
"""
from __future__ import annotations

import json

from ..description import Refusal, from_json
from ..errors import GaneshaHAError, ValidationError
from . import Reading, where

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from ..model import Export


def export_object(exp: Export, mountpoint: str) -> dict[str, Any]:
    """One export as `export dump --format json` writes it (and `export list --json` starts
    from): the registry's form with FSAL secrets redacted (`export apply` keeps the registry's
    value for a redacted one), `directory` (absolute; for an FSAL with its own namespace the
    path there, with `remote` true) and the clients as `SPEC(OPTIONS)` strings."""
    data = exp.to_dict(redact=True)
    data["directory"] = exp.path if exp.remote else where(exp, mountpoint)
    data["remote"] = exp.remote
    data["clients"] = [str(c) for c in exp.clients]
    return data


def render(exports: Iterable[Export], mountpoint: str) -> str:
    return json.dumps([export_object(e, mountpoint) for e in exports], indent=2, sort_keys=True,
                      ensure_ascii=False) + "\n"


def read(text: str, relpath: Callable[[str], str]) -> tuple[Reading, bool]:
    """The descriptions in `text`, and whether it describes the whole volume (a list).

    A malformed document is a ValidationError (exit 2); a malformed entry a refusal of that
    entry alone (it names the entry by its position).
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError("json", f"not valid JSON: {exc}") from None
    whole = isinstance(doc, list)
    items: list[Any] = doc if whole else [doc]
    if not whole and not isinstance(doc, dict):
        raise ValidationError("json", "expected a list of exports or one export object")
    reading = Reading()
    for i, item in enumerate(items):
        where = f"entry {i + 1}" if whole else "the export"
        try:
            reading.descriptions.append(from_json(item, relpath, where))
        except GaneshaHAError as exc:
            name = item.get("directory") or item.get("path") if isinstance(item, dict) else None
            reading.refusals.append(Refusal(f"{name} ({where})" if name else where, exc))
    return reading, whole
