"""What the layers below volume.py know of the volume they work on (a record, no I/O).

Backends (backends/) and client-recovery stores (recovery/) both act on one volume at a
time; volume.py hands them this instead of itself, so that neither needs the registry.
"""
from __future__ import annotations

from pathlib import Path

from .record import Factory, Record


class VolumeContext(Record, frozen=True):
    mountpoint: Path        # where the volume is mounted (the caller checked that it is)
    state_dir: Path         # <mount point>/.ganesha-ha, which exists
    volume_uuid: str
    ip: str | None = None   # the floating IP clients use (recovery keys, grace take-over)
    id_range: tuple[int, int] | None = None   # the volume's Export_Ids (a stray of ours lies in it)
    # servers.SHARED (the node's server) or servers.INSTANCE (a server of the volume's own,
    # bound to `ip`); from the registry
    ganesha_mode: str = "shared"
    # instance mode: the Grace_Period / Lease_Lifetime the volume sets (registry), over the node's
    instance: dict[str, int] = Factory(dict)
