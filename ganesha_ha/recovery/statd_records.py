"""statd's monitor records and NSM state numbers, pure: parse, check, choose a volume's.

Facts (nfs-utils 2.6.2, Debian 12; support/nsm/file.c, utils/statd/sm-notify.c):
- statd keeps one file per monitored host in `<state dir>/sm/` (Debian: /var/lib/nfs/sm/),
  named by `statd_canonical_name(mon_name)`: the client's address, or its name when the
  address has a reverse name. A name holding `/` or white space is refused, names starting
  with `.` are skipped (nsm_make_record_pathname, nsm_retire_monitored_hosts).
- A file holds one line per (my_name, callback): `nsm_create_monitor_record` prints
  `"%08x %08x %08x %08x " <32 hex digits of the priv cookie> " <mon_name> <my_name>\\n"`: the
  callback address (an in_addr printed as a host-order number), program, version and
  procedure of the NLM callback, then the private cookie, the monitored host and our name.
  Measured with Ganesha 4.3: `0100007f 000186b5 00000004 00000010 000...000 10.0.0.5 node-a`
  (mon_name = the client's address: NSM_Use_Caller_Name is false by default; my_name = the
  node's uname nodename; priv all zeros). The kernel's lockd (knfsd) writes the same format.
- `<state dir>/state` is the NSM state number, a 4-byte int in host byte order; odd means
  "up". sm-notify raises it by 2 before notifying (`nsm_get_state`), unless `-n`.
- A client's statd acts on an SM_NOTIFY only when its state differs from the last one it saw
  from that server (utils/statd/callback.c `sm_notify_1_svc`: `NL_STATE(lp) != argp->state`).
  So a volume's state number must never repeat: it moves with the volume and only grows.

Which records are a volume's (`select_records`): a record names the client, never the
server address it used (mon_name and my_name are the client and this node; priv is zero),
so a record is the volume's when its client is, or was, connected to the volume's floating
IP. See `select_records` for the rules and why they keep records through a server restart.
"""
from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Iterable, Mapping

from ..errors import RegistryError

RECORD_LINE = re.compile(r"[0-9a-f]{8} [0-9a-f]{8} [0-9a-f]{8} [0-9a-f]{8} [0-9a-f]{32} (\S+) (\S+)")
SM_MAXSTRLEN = 1024          # include/sm_inter.h (rpcsvc): the longest mon_name / my_name
MAX_RECORD_BYTES = 64 * 1024  # a record file is a few lines; anything larger is not statd's


def valid_record_name(name: str) -> bool:
    """A file name statd could have written in sm/ (nsm_make_record_pathname): not empty,
    not hidden, no `/`, no white space, not longer than SM_MAXSTRLEN."""
    return (0 < len(name) <= SM_MAXSTRLEN and not name.startswith(".") and "/" not in name
            and not any(c.isspace() for c in name) and name not in (".", ".."))


def parse_record(text: str) -> list[tuple[str, str]]:
    """The (mon_name, my_name) of each line of a record file's text, in order. ValueError
    for a line that is not in statd's format (the whole file is then not a record)."""
    out = []
    for line in text.splitlines():
        m = RECORD_LINE.fullmatch(line)
        if m is None:
            raise ValueError(f"not a statd monitor record line: {line[:80]!r}")
        out.append((m.group(1), m.group(2)))
    return out


def check_record(name: str, text: str) -> None:
    """RegistryError unless (`name`, `text`) is a record statd could have written: a saved
    copy from the volume is written into a directory sm-notify reads, so nothing else may
    pass (a name escaping the directory, lines sm-notify would misread)."""
    if not valid_record_name(name):
        raise RegistryError(f"NSM record name {name[:80]!r} is not a statd record name")
    if len(text.encode()) > MAX_RECORD_BYTES:
        raise RegistryError(f"NSM record {name!r} is larger than {MAX_RECORD_BYTES} bytes")
    try:
        lines = parse_record(text)
    except ValueError as exc:
        raise RegistryError(f"NSM record {name!r}: {exc}") from None
    if not lines or not text.endswith("\n"):
        raise RegistryError(f"NSM record {name!r} is empty or not line-terminated")


def client_address(name: str, text: str) -> str | None:
    """The client's address a record stands for, normalised (`normal_address`): its
    mon_name when that is an address (Ganesha and knfsd monitor clients by address), else
    the file name when that is one; None when both are names."""
    try:
        candidates = [mon for mon, _ in parse_record(text)] + [name]
    except ValueError:
        candidates = [name]
    for c in candidates:
        addr = normal_address(c)
        if addr is not None:
            return addr
    return None


def normal_address(text: str) -> str | None:
    """`text` as one spelling of an IP address, an IPv4-mapped IPv6 address as its IPv4
    address (Ganesha's IPv6 sockets see IPv4 clients as ::ffff:a.b.c.d); None if `text` is
    not an address."""
    try:
        addr = ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return None
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped if mapped is not None else addr)


def select_records(node: Mapping[str, str], previous: Mapping[str, str], pending: Mapping[str, str],
                   restored: Iterable[str], connected: Iterable[str]) -> dict[str, str]:
    """The records that are the volume's now, name -> text. Pure.

    `node`: the records in this node's statd directory now (every volume's, and the node's
    own); `previous`: the volume's copy as last saved; `pending`: the records in the
    volume's notify directory on this node not yet answered (sm-notify deletes a record once
    its host answered); `restored`: the names put into that directory by the last restore;
    `connected`: the (normalised) addresses of the peers connected to the floating IP now.

    - A node record is the volume's when its client is connected to the floating IP now, or
      was the volume's at the last save (a client that locked once stays the volume's while
      it keeps its record, even when idle: a Linux client closes an idle connection after
      5 minutes).
    - A record of the previous copy that the node has no more is kept, unless that is
      explained: its client is connected now (it unlocked: statd dropped it on SM_UNMON), or
      it was restored here and answered the notification without reclaiming (nothing left
      to recover). Otherwise its loss is not the client's doing: ganesha.nfsd sends
      SM_UNMON_ALL at every start and statd then deletes every record (measured), and a
      Ganesha restarted by its service manager would otherwise make the next save forget
      the locks its clients still believe they hold.
    - Every pending record is kept: its notification must still reach the client after a
      further move.
    A record in several of these keeps the node's text (the live one), else the pending one.
    """
    connected = set(connected)
    restored = set(restored)
    out: dict[str, str] = {}
    for name, text in previous.items():
        addr = client_address(name, text)
        if name in node or name in pending:
            continue
        if addr is not None and addr in connected:
            continue          # alive, talking to us, and no record: it unlocked
        if name in restored:
            continue          # notified and answered here, never reclaimed
        out[name] = text
    for name, text in pending.items():
        out[name] = text
    for name, text in node.items():
        if name in previous or client_address(name, text) in connected:
            out[name] = text
    return dict(sorted(out.items()))


# ---- NSM state numbers -----------------------------------------------------------------------

def pack_state(state: int) -> bytes:
    """The state file's content: a 4-byte int in host byte order (nsm_get_state reads it so)."""
    return struct.pack("=i", state)


def unpack_state(raw: bytes | None) -> int:
    """A state file's number; 0 for none or a file of another size (nsm_get_state starts over
    at 1 then, and so does `next_state`)."""
    if raw is None or len(raw) != 4:
        return 0
    return int(struct.unpack("=i", raw)[0])


def next_state(*seen: int) -> int:
    """The NSM state to notify with: odd ("up"), above every number in `seen` (the volume's
    saved one, what a notify directory holds), as sm-notify would raise it (`nsm_get_state`:
    make it odd, then +2), and within a signed 32-bit int, where it wraps to 3."""
    top = max([1, *seen])
    if top % 2 == 0:
        top += 1
    nxt = top + 2
    return nxt if nxt < 2 ** 31 else 3
