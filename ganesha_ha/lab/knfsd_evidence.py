"""What proves a knfsd failover here, read from the host side of each node's /var/lib/nfs.

No kernel NFS server on this machine (NFSD_NOTE), so no client mounts: the proof is the
export identity (the new node's etab lines for the volume are the old node's, byte for
byte, the pinned fsid included: file handles are built from it) and the clients' mount
records (rmtab) moving with the volume. Used by both labs (knfsd_lab.py, cluster_lab.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


NFSD_NOTE = (
    "This host has no kernel NFS server (nfsd module), so the knfsd lab shows export identity "
    "(etab lines with their fsid byte-identical after each move) and rmtab migration only; no "
    "client mounts through knfsd here. On a host with the nfsd module the lab would also run "
    "rpc.mountd and nfsd in each node's namespaces, mount an export from the client namespace "
    "through the floating IP, keep a file open across the move (its handle carries the pinned "
    "fsid, so no ESTALE), and show NFSv4 reclaim in knfsd's grace period (v4recovery/nfsdcld) "
    "and NLM lock reclaim after statd's SM_NOTIFY.")


def nfsd_available() -> bool:
    return Path("/proc/fs/nfsd/threads").exists() or Path("/sys/module/nfsd").exists()


# ---- identity and rmtab, read from the host side of a node's /var/lib/nfs -------------------

def etab_lines(path: Path, mountpoint: str) -> list[str]:
    """The etab lines of exports under `mountpoint`, exact text, in file order."""
    try:
        text = path.read_text(errors="surrogateescape")
    except FileNotFoundError:
        return []
    return [ln for ln in text.splitlines() if ln.startswith((mountpoint + "/", mountpoint + "\t"))]


def rmtab_lines(path: Path, mountpoint: str) -> list[str]:
    try:
        text = path.read_text(errors="surrogateescape")
    except FileNotFoundError:
        return []
    return [ln for ln in text.splitlines() if f":{mountpoint}/" in ln]


def knfsd_evidence(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """knfsd's identity across a move: the new node's etab lines for the volume are the old
    node's, byte for byte (the fsid pinned in them is what file handles are built from), and
    the clients' mount records (rmtab) came along."""
    fsids = after["registry"]
    moved = [ln for ln in before["rmtab"] if ln in after["rmtab"]]
    return {
        "etab_before": before["etab"], "etab_after": after["etab"],
        # the same lines; their order in etab follows exportfs's hash table, not meaning
        "etab_identical": bool(before["etab"]) and sorted(before["etab"]) == sorted(after["etab"]),
        "fsids": fsids,
        "fsids_equal": bool(fsids) and before["registry"] == fsids and all(
            any(f"fsid={fsid}" in ln for ln in after["etab"] if ln.startswith(d + "\t"))
            for d, fsid in fsids.items()),
        "rmtab_lines_moved": len(moved),
        "rmtab_migrated": bool(before["rmtab"]) and len(moved) == len(before["rmtab"]),
    }
