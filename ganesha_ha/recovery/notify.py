"""SM_NOTIFY from the floating IP to the volume's NLM clients, with Debian's sm-notify.

When: after the floating IP is up on this node (the group starts file system → exports →
IP → notify: the `ocf:ganesha-ha:notify` agent, notify_agent.py), never before: a client
that reclaims at once must reach the new node through the IP, and the notification must
come *from* the IP, because the client's statd matches the notifying server by the
notification's mon_name or by its sender address (utils/statd/callback.c `sm_notify_1_svc`).
With Ganesha the exports' start has sent the take-over grace event just before, so the
reclaims arrive inside the grace period; with knfsd there is no per-volume grace (the
kernel's lockd grace runs only after lockd starts) and the notification is all there is.

How (nfs-utils 2.6.2 utils/statd/sm-notify.c, measured):
- `sm-notify -d -n -m <minutes> -v <ip> -P <notify dir>`: `-P` reads the volume's records
  from the notify directory the store restored (recovery/nsm.py), moves them from sm/ to
  sm.bak/ and deletes each once its host answered; `-v <ip>` binds the UDP socket to the
  floating IP on a reserved port (a bind failure is exit 1: an IP that is not here is
  refused by sm-notify too) and sends the IP's *reverse name* as mon_name, then the same
  name unqualified; `-n` keeps sm-notify from raising the state number itself: this module
  raises it, saves it to the volume first and writes it into the directory, so a number is
  never used twice for the volume whatever happens next; `-d` keeps it in the foreground, so
  this module knows its PID and result (without -d it forks only after checking its name,
  and a failed bind is never seen). It retries an unanswered host for `-m` minutes.
- `-v <ip>` needs a name for the IP (`smn_verify_my_name`: getnameinfo NI_NAMEREQD), or
  sm-notify exits 1 ("my_name ... is unusable"). `host_name` checks that first, with the
  same call: give the floating IP a name in DNS or in /etc/hosts on every node.
- With no record to send, sm-notify writes "Y" to /proc/fs/lockd/nlm_end_grace and ends the
  kernel lockd's grace period for the whole node: it is never run without records here.
- It also writes the state number to /proc/sys/fs/nfs/nsm_local_state (the kernel's
  lockd, when loaded), as upstream's nfsnotify agent does.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from .. import linux
from ..errors import NotInstalledError, NotReadyError, ValidationError
from ..record import Factory, Record
from .nsm import (MONITOR_DIR, NOTIFIER, NOTIFY_DIR, STATE_FILE, NsmStore, dir_state, end_notifier,
                  read_record_dir)
from .statd_records import next_state, pack_state

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from ..context import VolumeContext

LOG = "sm-notify.log"          # in the notify directory: sm-notify's own lines (-d: stderr)


class NotifyResult(Record):
    """What one notification did. `clients`: the record names it was sent for; `answered`:
    those whose host answered within the wait; `pending`: the others (sm-notify, `pid`, keeps
    trying for its retry time); `name`: the mon_name sent; `state`: the NSM state number."""

    ip: str
    name: str = ""
    state: int = 0
    clients: list[str] = Factory(list)
    answered: list[str] = Factory(list)
    pending: list[str] = Factory(list)
    pid: int | None = None

    def summary(self) -> str:
        if not self.clients:
            return f"no NLM client of {self.ip} to notify"
        text = (f"SM_NOTIFY sent from {self.ip} as {self.name!r} (state {self.state}) to {len(self.clients)} "
                f"client(s): {len(self.answered)} answered")
        if self.pending:
            text += f", {len(self.pending)} not yet ({', '.join(self.pending[:5])}): " + (
                f"sm-notify (pid {self.pid}) keeps trying" if self.pid is not None else
                "sm-notify has exited without them")
        return text


def require_local(ip: str, proc_net: str = linux.PROC_NET) -> None:
    """ValidationError (ip; OCF_ERR_CONFIGURED, as the exports agent of an instance volume
    answers the same mistake) unless `ip` is an address of this node (its network namespace)
    now: in a group, a notify resource starts after its IP, so a missing IP is a group in the
    wrong order, wrong on every node, and a generic error would only move it around."""
    from ..linux_net import local_addresses
    from .statd_records import normal_address

    want = normal_address(ip)
    if want not in {normal_address(a) for a in local_addresses(proc_net)}:
        raise ValidationError("ip", f"the floating IP {ip} is not configured on this node: SM_NOTIFY must come "
                                    "from it, after it is up (place the notify resource after the IP in the group)")


def host_name(ip: str) -> str:
    """The name sm-notify will send for `ip`: its reverse name, looked up as sm-notify does
    (getnameinfo, NI_NAMEREQD). NotInstalledError naming the fix when there is none."""
    import socket

    try:
        return socket.getnameinfo((ip, 0), socket.NI_NAMEREQD)[0]
    except (OSError, UnicodeError) as exc:
        # the fix first: Pacemaker keeps 128 characters of an exit reason
        raise NotInstalledError(f"add '{ip} <name>' to /etc/hosts on every node (or a PTR record in DNS): sm-notify "
                                f"needs a host name for the floating IP {ip} on this node ({exc})") from None


def notify(store: NsmStore, ctx: VolumeContext, sm_notify: str, *, retry_minutes: int = 15,
           wait: float = 5.0) -> NotifyResult:
    """Send SM_NOTIFY from `ctx.ip` to every client in the volume's notify directory here.

    Checks, before anything is sent: the IP is configured here (ValidationError), `sm_notify`
    is installed and the IP has a name (NotInstalledError). Raises the volume's NSM state
    number past every number seen, saves it to the volume, then starts sm-notify on the
    directory (module docstring) and waits up to `wait` seconds for the clients to answer;
    an sm-notify still trying afterwards keeps running (its PID in the result; `end_notifier`
    ends it). A notifier from an earlier call on the directory is ended first.
    RegistryError when the volume's state cannot be written; NotReadyError when sm-notify
    exits at once without notifying anyone, with an error or not (its log's last line in the
    message: with exit 0 it found nothing to send, e.g. a notify directory without sm.bak/).
    """
    directory = store.notify_dir(ctx)
    if directory is None or not ctx.ip:
        raise NotReadyError("no floating IP: NLM clients can only be notified from the address they use "
                            "(set the agent's ip)")
    require_local(ctx.ip, store.proc_net)
    if not os.access(sm_notify, os.X_OK):
        raise NotInstalledError(f"{sm_notify} is missing (Debian package nfs-common)")
    end_notifier(directory)
    clients = sorted({**read_record_dir(directory / MONITOR_DIR), **read_record_dir(directory / NOTIFY_DIR)})
    if not clients:
        return NotifyResult(ip=ctx.ip)
    name = host_name(ctx.ip)
    state = next_state(store.saved_state(ctx), dir_state(directory))
    store.save_state(ctx, state)    # on the volume before it is used: never sent twice
    state_file = directory / STATE_FILE
    state_file.write_bytes(pack_state(state))
    os.chmod(state_file, 0o644)
    argv = [sm_notify, "-d", "-n", "-m", str(retry_minutes), "-v", ctx.ip, "-P", str(directory)]
    with open(directory / LOG, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    (directory / NOTIFIER).write_text(json.dumps({"pid": proc.pid, "starttime": linux.proc_starttime(proc.pid)}))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and proc.poll() is None and _left(directory):
        time.sleep(0.05)
    left = _left(directory)
    rc = proc.poll()
    if rc is not None and set(left) == set(clients):
        raise NotReadyError(f"sm-notify exited ({rc}) without notifying anyone: {_last_line(directory / LOG)}")
    return NotifyResult(ip=ctx.ip, name=name, state=state, clients=clients,
                        answered=[c for c in clients if c not in left], pending=left,
                        pid=proc.pid if rc is None else None)


def _left(directory: Path) -> list[str]:
    return sorted({*read_record_dir(directory / MONITOR_DIR), *read_record_dir(directory / NOTIFY_DIR)})


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:300] if lines else "(no log)"

