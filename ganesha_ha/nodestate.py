"""What this node knows about a volume, kept under the node's runtime directory.

Two marks per volume (keyed by mount point), in a tmpfs (`/run/ganesha-ha`), so a reboot,
like a fence, forgets them:
- active/<name>.json: "this volume is active here", written by a start and removed by a
  stop, with what the start applied (server, exports), so that a stop can withdraw even when
  the volume is already unmounted, and a probe can answer without touching a volume that may
  not be mounted;
- restored/<name>: "this node has restored the volume's client-recovery copy" (since its
  last stop here). A save replaces the volume's copy with this node's view of the clients,
  which on a node that has not restored yet is empty or stale: the monitor and the stop save
  only when this mark is there, and only a start (which restores first) sets it.

And one per directory exported by a classic-mode resource (the agent's `directory=`):
classic/<name>/<hash>, holding the directory's path in the volume, written by its start and
removed by its stop. A file system is managed either by one volume-mode resource or by
classic resources, never both: each would undo the other (a classic stop leaves the export
in the registry, and the volume's next monitor puts it back). The agent refuses the second
kind to start on a node where the other is active.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .fsutil import atomic_write, ensure_secure_dir

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any


def mark_name(mountpoint: Path) -> str:
    """A file name for a mount point: `/srv/vol_1` → `srv_vol__1`; a long one is cut and
    completed with a hash (a file name has at most 255 bytes, a mount point may be longer)."""
    name = str(mountpoint).strip("/").replace("_", "__").replace("/", "_") or "_root"
    if len(os.fsencode(name)) > 200:
        import hashlib

        digest = hashlib.sha256(os.fsencode(str(mountpoint))).hexdigest()[:32]
        name = os.fsdecode(os.fsencode(name)[:100]) + "." + digest
    return name


def active_records(runtime_dir: Path) -> list[dict[str, Any]]:
    """The active marks of every volume active on this node (what each start applied),
    unreadable ones left out: they are a cross-check, never the only guard."""
    out = []
    for path in sorted((runtime_dir / "active").glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


class NodeState:
    """The node-local marks of the volume mounted at `mountpoint`."""

    def __init__(self, runtime_dir: Path, mountpoint: Path):
        name = mark_name(mountpoint)
        self.runtime_dir = runtime_dir
        self.mountpoint = mountpoint
        self.active_path = runtime_dir / "active" / f"{name}.json"
        self.restored_path = runtime_dir / "restored" / name
        self.classic_dir = runtime_dir / "classic" / name

    def _write(self, path: Path, data: bytes) -> None:
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        ensure_secure_dir(path.parent)
        atomic_write(path, data)

    @staticmethod
    def _remove(path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    # ---- active -----------------------------------------------------------------------
    def is_active(self) -> bool:
        return self.active_path.exists()

    def active_record(self) -> dict[str, Any] | None:
        """What the last start (or change) applied here; None when not active or unreadable."""
        try:
            record = json.loads(self.active_path.read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def set_active(self, record: dict[str, Any]) -> None:
        self._write(self.active_path, json.dumps(record).encode())

    def clear_active(self) -> None:
        self._remove(self.active_path)

    def others_active(self) -> list[dict[str, Any]]:
        """The active marks of the other volumes active on this node."""
        return [r for r in active_records(self.runtime_dir) if r.get("mountpoint") != str(self.mountpoint)]

    # ---- restored ---------------------------------------------------------------------
    def restored(self) -> bool:
        """Restored here since the last stop. An active mark written by a ganesha-ha from before
        these marks (it has no "version") counts: its start always restored first."""
        if self.restored_path.exists():
            return True
        record = self.active_record() if self.active_path.exists() else None
        return record is not None and "version" not in record

    def set_restored(self) -> None:
        self._write(self.restored_path, b"")

    def clear_restored(self) -> None:
        self._remove(self.restored_path)

    # ---- classic-mode directories ------------------------------------------------------
    def _classic_path(self, rel: str) -> Path:
        import hashlib

        return self.classic_dir / hashlib.sha256(os.fsencode(rel or "/")).hexdigest()[:32]

    def set_classic(self, rel: str) -> None:
        """A classic resource exports the directory `rel` (relative to the mount point) here."""
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        ensure_secure_dir(self.classic_dir.parent)
        self._write(self._classic_path(rel), os.fsencode(rel))

    def clear_classic(self, rel: str) -> None:
        self._remove(self._classic_path(rel))

    def classic_paths(self) -> list[str]:
        """The directories classic resources export from this volume here (relative, sorted)."""
        try:
            names = os.listdir(self.classic_dir)
        except OSError:
            return []
        out = []
        for name in names:
            try:
                out.append(os.fsdecode((self.classic_dir / name).read_bytes()))
            except OSError:
                continue
        return sorted(out)
