"""NSM (statd) records of a volume's NLM clients, carried with the volume; one store for
both servers (Ganesha's NLM and the kernel's lockd both monitor their clients with the
node's rpc.statd, in the same files).

Why: a client holding NLM locks through the floating IP learns that its server "rebooted"
only from an SM_NOTIFY (RFC-less NSM protocol; nfs-utils utils/statd/sm-notify.c), and it
reclaims its locks only then. After a move the new node must notify exactly the clients that
held locks through the volume's IP, from that IP. The list is statd's monitor records on the
old node (statd_records.py); this store keeps the volume's share of them on the volume.

Where things are:
- on the node, statd's records: `<statd_dir>/sm/` (`[nsm] statd_dir`, Debian /var/lib/nfs);
  read only, never written: ganesha.nfsd sends SM_UNMON_ALL at every start and statd then
  deletes every record of the node's name (measured), so a record put there would be lost
  at the next Ganesha restart;
- on the volume, `<mount point>/.ganesha-ha/nsm.json` (the records, name -> text) and
  `nsm-state` (the volume's NSM state number, written by the notification only: notify.py);
- on the node taking over, a notify directory of the volume's own,
  `<runtime_dir>/nsm/<floating ip>/` holding `sm/`, `sm.bak/` and `state` as statd's own
  directory does, which `sm-notify -P` reads (notify.py), plus `restored.json` (the names
  the restore put there) and the running notifier's pid file.

Which records are the volume's: those of clients connected to the floating IP (peers.py),
kept by the rules of statd_records.select_records. Without a floating IP (the agent's `ip`
unset) the store keeps nothing: nothing ties a client to the volume, and sm-notify could not
send from the address the clients know.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from .. import linux
from ..errors import RegistryError
from ..fsutil import atomic_write, read_secure

# statd_records (with struct and its regular expressions) and shutil (bz2 and lzma, two shared
# libraries loaded) are imported where used: a monitor without a floating IP, the common
# classic case, runs none of that code (the agent's path, see the TYPE_CHECKING comment below)

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

    from ..context import VolumeContext

SAVED_RECORDS = "nsm.json"     # <mount point>/.ganesha-ha/nsm.json
SAVED_STATE = "nsm-state"      # <mount point>/.ganesha-ha/nsm-state: the volume's NSM state number
RESTORED = "restored.json"     # in the notify directory: names the restore put there
MONITOR_DIR, NOTIFY_DIR, STATE_FILE = "sm", "sm.bak", "state"   # support/nsm/file.c
NOTIFIER = "sm-notify.pid"     # in the notify directory: {"pid": N, "starttime": T} (notify.py)


def read_record_dir(directory: Path) -> dict[str, str]:
    """The statd records in `directory` (name -> text): regular files with a statd record
    name and statd's line format; anything else is skipped (a file statd is still writing,
    a stray file: not ours to judge here)."""
    out: dict[str, str] = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return out
    from .statd_records import check_record, valid_record_name

    for name in names:
        if not valid_record_name(name):
            continue
        path = directory / name
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_size > 65536:
                continue
            text = path.read_text(encoding="utf-8")
            check_record(name, text)
        except (OSError, UnicodeError, RegistryError):
            continue
        out[name] = text
    return out


class NsmStore:
    """The volume's NSM records: saved from this node's statd, restored into the volume's
    notify directory here."""

    name = "NSM records"

    def __init__(self, statd_dir: Path, notify_root: Path, proc_net: str = linux.PROC_NET):
        self.statd_dir = statd_dir        # statd's state directory (holds sm/)
        self.notify_root = notify_root    # <runtime_dir>/nsm: one notify directory per floating IP
        self.proc_net = proc_net          # whose TCP table tells the volume's clients

    # ---- where ------------------------------------------------------------------------------
    def notify_dir(self, ctx: VolumeContext) -> Path | None:
        """The volume's notify directory on this node; None without a floating IP."""
        if not ctx.ip:
            return None
        return self.notify_root / ctx.ip

    # ---- reading ------------------------------------------------------------------------------
    def node_records(self) -> dict[str, str]:
        return read_record_dir(self.statd_dir / MONITOR_DIR)

    def pending(self, ctx: VolumeContext) -> dict[str, str]:
        """Records in the volume's notify directory that sm-notify has not had answered yet
        (it moves sm/ to sm.bak/ and deletes a record once its host answered)."""
        directory = self.notify_dir(ctx)
        if directory is None:
            return {}
        return {**read_record_dir(directory / MONITOR_DIR), **read_record_dir(directory / NOTIFY_DIR)}

    def restored_names(self, ctx: VolumeContext) -> set[str]:
        directory = self.notify_dir(ctx)
        if directory is None:
            return set()
        try:
            names = json.loads((directory / RESTORED).read_text())
        except (OSError, ValueError):
            return set()
        return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()

    def saved(self, ctx: VolumeContext) -> dict[str, str]:
        """The volume's copy, name -> text; RegistryError when it is not a valid copy."""
        raw = read_secure(ctx.state_dir / SAVED_RECORDS)
        if raw is None:
            return {}
        from .statd_records import check_record

        path = ctx.state_dir / SAVED_RECORDS
        try:
            records = json.loads(raw)["records"]
            if not isinstance(records, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise RegistryError(f"{path} is corrupt") from None
        for name, text in records.items():
            if not isinstance(text, str):
                raise RegistryError(f"{path} is corrupt")
            check_record(name, text)
        return dict(records)

    def saved_state(self, ctx: VolumeContext) -> int:
        """The volume's NSM state number (0: never notified)."""
        raw = read_secure(ctx.state_dir / SAVED_STATE)
        try:
            return int(raw.decode().strip()) if raw else 0
        except (UnicodeError, ValueError):
            raise RegistryError(f"{ctx.state_dir / SAVED_STATE} is corrupt") from None

    def save_state(self, ctx: VolumeContext, state: int) -> None:
        """Write the volume's NSM state number (notify.py, before it notifies with it)."""
        atomic_write(ctx.state_dir / SAVED_STATE, f"{state}\n".encode(), 0o600)

    # ---- the store's three operations -----------------------------------------------------------
    def save(self, ctx: VolumeContext) -> bool:
        """Copy the records of the volume's clients onto the volume (statd_records.
        select_records); write only on change. Nothing without a floating IP."""
        if not ctx.ip:
            return False
        from .peers import connected_peers
        from .statd_records import select_records

        records = select_records(self.node_records(), self.saved(ctx), self.pending(ctx),
                                 self.restored_names(ctx), connected_peers(ctx.ip, proc_net=self.proc_net))
        data = (json.dumps({"records": records}, indent=1, sort_keys=True) + "\n").encode()
        path = ctx.state_dir / SAVED_RECORDS
        if read_secure(path) == data or (not records and read_secure(path) is None):
            return False
        atomic_write(path, data, 0o600)
        return True

    def restore(self, ctx: VolumeContext) -> int:
        """Put the volume's records and state number into its notify directory here (anew:
        a notifier still running on it from an earlier stay is ended first); returns how many
        clients are to be notified."""
        directory = self.notify_dir(ctx)
        if directory is None:
            return 0
        from .statd_records import pack_state

        records = self.saved(ctx)
        state = self.saved_state(ctx)
        self.clear(ctx)
        owner = self._statd_owner()
        if owner is not None and not traversable(self.notify_root, *owner):
            owner = None    # sm-notify then keeps root: as statd it could not delete answered records
        old = os.umask(0o022)
        try:
            self.notify_root.mkdir(parents=True, exist_ok=True, mode=0o755)
            directory.mkdir(mode=0o755)
            for sub in (MONITOR_DIR, NOTIFY_DIR):
                (directory / sub).mkdir(mode=0o700)
            for name, text in records.items():
                (directory / MONITOR_DIR / name).write_text(text)
                os.chmod(directory / MONITOR_DIR / name, 0o600)
            if state:
                (directory / STATE_FILE).write_bytes(pack_state(state))
            (directory / RESTORED).write_text(json.dumps(sorted(records)))
            if owner is not None:
                # sm-notify drops its privileges to the owner of sm/ (support/nsm/file.c
                # nsm_drop_privileges) and then deletes answered records in sm.bak/
                for path in (directory, directory / MONITOR_DIR, directory / NOTIFY_DIR,
                             *[directory / MONITOR_DIR / n for n in records]):
                    os.chown(path, *owner)
        finally:
            os.umask(old)
        return len(records)

    def clear(self, ctx: VolumeContext) -> None:
        """Remove the volume's notify directory here, ending its notifier if still running
        (after the last save at stop: what it had not delivered is on the volume)."""
        directory = self.notify_dir(ctx)
        if directory is None:
            return
        import shutil

        end_notifier(directory)
        shutil.rmtree(directory, ignore_errors=True)

    def _statd_owner(self) -> tuple[int, int] | None:
        """(uid, gid) of statd's sm/ directory here (Debian: statd), None when root or absent."""
        try:
            st = os.stat(self.statd_dir / MONITOR_DIR)
        except OSError:
            return None
        return (st.st_uid, st.st_gid) if st.st_uid != 0 else None


def traversable(directory: Path, uid: int, gid: int) -> bool:
    """Whether `uid`/`gid` may search every directory from / down to `directory` (the
    permission bits only). sm-notify, once it dropped its privileges to the owner of sm/,
    deletes an answered record by its absolute path (nfs-utils support/nsm/file.c
    `nsm_delete_notified_host`): measured under a 0700 parent, "could not stat original
    file ...: Permission denied", and the record stays to be notified again."""
    path = Path(os.path.abspath(directory))
    for p in [path, *path.parents]:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            continue        # made by the restore, 0755
        except OSError:
            return False
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def nsm_store(settings: Any) -> NsmStore:
    """The store as the settings place it: `[nsm] statd_dir`, notify directories under
    `[node] runtime_dir`/nsm (a tmpfs: a reboot forgets them, as the next start restores)."""
    return NsmStore(Path(settings.nsm["statd_dir"]), Path(settings.node["runtime_dir"]) / "nsm")


def notifier(directory: Path) -> tuple[int, int | None] | None:
    """(pid, start time) of the sm-notify this module started on `directory` if it still
    runs; None otherwise."""
    try:
        data = json.loads((directory / NOTIFIER).read_text())
        pid, starttime = int(data["pid"]), data.get("starttime")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (pid, starttime) if linux.same_process(pid, starttime) else None


def end_notifier(directory: Path, timeout: float = 2.0) -> bool:
    """End the sm-notify started on `directory` (SIGTERM, then SIGKILL after `timeout` s),
    by its PID and start time only; True when one was running."""
    import signal
    import time

    found = notifier(directory)
    if found is None:
        return False
    pid, starttime = found
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while linux.same_process(pid, starttime) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not linux.same_process(pid, starttime):
            break
    try:
        (directory / NOTIFIER).unlink()
    except FileNotFoundError:
        pass
    return True


def dir_state(directory: Path) -> int:
    """The state number in a notify (or statd) directory; 0 for none."""
    from .statd_records import unpack_state

    try:
        return unpack_state((directory / STATE_FILE).read_bytes())
    except OSError:
        return 0
