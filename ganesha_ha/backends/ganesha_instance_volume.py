"""The state a volume's own ganesha.nfsd keeps on the volume itself, checked or advanced by
its start (ganesha_instance.py launch): the RecoveryRoot, where Ganesha writes the NFSv4
client records that move with the volume, and the instance's epoch, which must rise whichever
node starts it (ganesha_instance_conf.py renders both into its config)."""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from ..context import VolumeContext
from ..errors import InsecureStateError, RegistryError
from ..fsutil import atomic_write, ensure_secure_dir, read_secure
from . import ganesha_instance_conf as conf


def check_recovery_root(root: Path) -> list[str]:
    """The instance's RecoveryRoot on the volume is a directory of ours this node can
    read and write: Ganesha would start without one and keep no records (its clients
    could not reclaim after a move), with only an EVENT line in its log. A full volume
    is a note, not a failure (the exports still serve)."""
    ensure_secure_dir(root, 0o700)                      # InsecureStateError: a link, a file, foreign
    for sub in (conf.RECOV_DIR, conf.OLD_DIR):
        path = root / sub
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            return _unusable(path, exc)
        if path.is_symlink() or not path.is_dir():
            raise InsecureStateError(f"{path} is not a directory (the volume's NFSv4 client records live there)")
    probe = root / conf.RECOV_DIR / f".ganesha-ha-probe-{os.getpid()}"
    try:
        os.listdir(root / conf.RECOV_DIR)
        os.mkdir(probe, 0o700)
        os.rmdir(probe)
    except OSError as exc:
        return _unusable(root, exc)
    return []


def _unusable(path: Path, exc: OSError) -> list[str]:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return [f"the volume is full: new NFSv4 clients get no record in {path} until there is room"]
    raise RegistryError(f"the volume's NFSv4 client records cannot be kept in {path} ({exc.strerror}): "
                        "the instance would start without them and its clients could not reclaim")


def next_epoch(ctx: VolumeContext, notes: list[str]) -> int:
    """The next instance's epoch (conf.next_epoch), kept on the volume so that it rises
    whichever node starts the instance; a volume that cannot take it (full) is a note."""
    path = ctx.state_dir / conf.EPOCH_FILE
    now = time.time()
    try:
        raw = read_secure(path)
    except OSError:
        raw = None
    last, bad = conf.parse_epoch(raw, now)
    if bad:
        notes.append(f"{path} ignored ({bad}): the instance's epoch is the time, {int(now)}")
    epoch = conf.next_epoch(last, now)
    try:
        atomic_write(path, f"{epoch}\n".encode(), 0o600)
    except RegistryError as exc:
        notes.append(f"epoch {epoch} not kept on the volume: {exc}")
    return epoch
