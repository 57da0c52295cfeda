"""Which clients a volume has: the peers connected to its floating IP, seen from this node.

Neither of the records a volume's clients leave on a server names the address they used:
Ganesha's NFSv4 record is `<client address>-(<len>:<co_ownerid>)` (src/SAL/recovery/
recovery_fs.c `fs_create_clid_name`), statd's is the client and the node's name
(statd_records.py). What does tie a client to a volume is its connection: a client reaches a
volume through the volume's floating IP, so the peers of established TCP connections whose
local address is that IP (this node's /proc/net/tcp and tcp6, read at every monitor) are the
volume's clients. The stores keep a record once they have seen its client connected (see
statd_records.select_records and ganesha_records.select_clients): a client that was idle at
every monitor since it took its state is the only one this misses, and NFSv4.1+ clients are
never idle for long (they renew their lease with SEQUENCE, at 2/3 of it on Linux), while a
Linux NFSv3 client closes an idle connection after 5 minutes, far beyond a monitor interval.
What it cannot see: clients using UDP (NLM over UDP, mounts with proto=udp).
"""
from __future__ import annotations

import time

from .. import linux

_CACHE_S = 1.0   # one monitor pass reads the table once for all its stores
_cache: tuple[float, str, list[tuple[str, int, str, int, int]]] | None = None


def connections(proc_net: str = linux.PROC_NET) -> list[tuple[str, int, str, int, int]]:
    """linux_net.tcp_table, read at most once a second per process and network-namespace path."""
    from ..linux_net import tcp_table

    global _cache
    now = time.monotonic()
    if _cache is not None and _cache[1] == proc_net and now - _cache[0] < _CACHE_S:
        return _cache[2]
    table = tcp_table(proc_net)
    _cache = (now, proc_net, table)
    return table


def connected_peers(ip: str | None, port: int | None = None, proc_net: str = linux.PROC_NET,
                    exclude: str | None = None) -> set[str]:
    """The addresses (normalised: statd_records.normal_address) of the peers with an
    established TCP connection to `ip` (any local address when None; to `ip`:`port` when
    `port` is given) on this node now, leaving out the connections to `exclude`."""
    from ..linux_net import TCP_ESTABLISHED
    from .statd_records import normal_address

    want = normal_address(ip) if ip is not None else None
    skip = normal_address(exclude) if exclude is not None else None
    out: set[str] = set()
    for local, lport, remote, _, state in connections(proc_net):
        if state != TCP_ESTABLISHED or (port is not None and lport != port):
            continue
        here = normal_address(local)
        if (want is None or here == want) and (skip is None or here != skip):
            peer = normal_address(remote)
            if peer is not None:
                out.add(peer)
    return out


def forget() -> None:
    """Drop the cached table (tests, and a caller that must see a change at once)."""
    global _cache
    _cache = None
