"""The network state of this network namespace as Linux shows it under /proc/net (proc(5)):
TCP connections and listeners with their socket inodes, the local addresses, and whether an
address can be bound here. Read for NSM (which clients are connected: recovery/peers.py,
recovery/notify.py) and for a Ganesha instance's floating IP (backends/ganesha_instance.py).

Apart from linux.py (mounts, namespaces, processes), which the resource agent imports on
every call: none of this is needed by a monitor.
"""
from __future__ import annotations

import os

from .linux import PROC_NET, all_pids

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Iterable

TCP_ESTABLISHED = 0x01   # include/net/tcp_states.h


def _hex_address(hexaddr: str) -> str:
    """An address of /proc/net/tcp{,6}: 32-bit words printed in hex in host byte order
    (IPv4-mapped IPv6 addresses as ::ffff:a.b.c.d)."""
    import ipaddress
    import struct

    words = [hexaddr[i:i + 8] for i in range(0, len(hexaddr), 8)]
    addr = ipaddress.ip_address(b"".join(struct.pack("=I", int(w, 16)) for w in words))
    mapped = getattr(addr, "ipv4_mapped", None)
    return f"::ffff:{mapped}" if mapped is not None else str(addr)


def parse_tcp_table(text: str) -> list[tuple[str, int, str, int, int]]:
    """(local address, local port, remote address, remote port, state) of each socket line
    of a /proc/net/tcp or /proc/net/tcp6 text (proc(5)); the header and malformed lines are
    skipped. Pure."""
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 4 or ":" not in f[1] or ":" not in f[2]:
            continue
        try:
            laddr, _, lport = f[1].rpartition(":")
            raddr, _, rport = f[2].rpartition(":")
            out.append((_hex_address(laddr), int(lport, 16), _hex_address(raddr), int(rport, 16), int(f[3], 16)))
        except ValueError:
            continue
    return out


def tcp_table(proc_net: str = PROC_NET) -> list[tuple[str, int, str, int, int]]:
    """parse_tcp_table of tcp and tcp6 in `proc_net` (either may be absent: no IPv6)."""
    out: list[tuple[str, int, str, int, int]] = []
    for name in ("tcp", "tcp6"):
        try:
            with open(f"{proc_net}/{name}", encoding="ascii", errors="replace") as fh:
                out += parse_tcp_table(fh.read())
        except OSError:
            continue
    return out


def parse_fib_trie_locals(text: str) -> set[str]:
    """The IPv4 addresses of this network namespace in a /proc/net/fib_trie text: the
    entries marked `/32 host LOCAL` (proc(5); what `ip route show table local` lists as
    local). Pure."""
    out: set[str] = set()
    last = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(("|--", "+--")):
            last = s[3:].strip().split()[0]
        elif s.startswith("/32 host LOCAL") and last is not None:
            out.add(last)
    return out


def local_addresses(proc_net: str = PROC_NET) -> set[str]:
    """The IPv4 (fib_trie) and IPv6 (if_inet6) addresses configured in this network
    namespace, IPv6 compressed; what `ip addr` shows, without netlink (no pyroute2 import)."""
    import ipaddress

    out: set[str] = set()
    try:
        with open(f"{proc_net}/fib_trie", encoding="ascii", errors="replace") as fh:
            out |= parse_fib_trie_locals(fh.read())
    except OSError:
        pass
    try:
        with open(f"{proc_net}/if_inet6", encoding="ascii", errors="replace") as fh:
            for line in fh:
                f = line.split()
                if f and len(f[0]) == 32:
                    out.add(str(ipaddress.IPv6Address(bytes.fromhex(f[0]))))
    except OSError:
        pass
    return out


TCP_LISTEN = 0x0A   # include/net/tcp_states.h


def parse_proc_net_tcp(text: str) -> list[tuple[str, int, int, int]]:
    """(local address, local port, state, socket inode) of each socket line of a
    /proc/net/tcp or /proc/net/tcp6 text (proc(5)); the header and malformed lines skipped.
    Pure (parse_tcp_table gives the remote ends instead of the inode)."""
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10 or ":" not in f[1]:
            continue
        addr, _, port = f[1].rpartition(":")
        try:
            out.append((_hex_address(addr), int(port, 16), int(f[3], 16), int(f[9])))
        except ValueError:
            continue
    return out


def tcp_listeners(port: int, proc_net: str = PROC_NET) -> list[tuple[str, int]]:
    """(local address, socket inode) of every TCP socket listening on `port` in this
    network namespace, IPv4 and IPv6 ("0.0.0.0" and "::" are every address)."""
    out = []
    for name in ("tcp", "tcp6"):
        try:
            with open(f"{proc_net}/{name}", encoding="ascii", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        out += [(a, inode) for a, p, state, inode in parse_proc_net_tcp(text) if p == port and state == TCP_LISTEN]
    return out


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` holds open (/proc/PID/fd); empty when gone."""
    out: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def socket_owners(inodes: Iterable[int]) -> dict[int, int]:
    """socket inode -> PID of a process holding it open (a scan of /proc/*/fd: for error
    messages, never on a hot path); inodes nobody here holds are left out."""
    wanted = set(inodes)
    found: dict[int, int] = {}
    for pid in all_pids():
        for inode in socket_inodes(pid) & wanted:
            found.setdefault(inode, pid)
        if len(found) == len(wanted):
            break
    return found


def ipv6_addresses() -> list[str]:
    """The IPv6 addresses of this network namespace (local_addresses), ::1 included; [] when
    IPv6 is off."""
    return sorted(a for a in local_addresses() if ":" in a)


def bind_error(ip: str) -> int | None:
    """The errno bind(2) gives for a TCP socket on `ip` (any port), None when it binds: a
    program can listen on that address here (EADDRNOTAVAIL: not an address of this
    network namespace, unless net.ipv4.ip_nonlocal_bind allows it; EAFNOSUPPORT: no IPv6)."""
    import socket

    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
    except OSError as exc:
        return exc.errno
    return None


def ipv6_sockets() -> bool:
    """An AF_INET6 socket can be made here (the kernel has IPv6; it may have no address)."""
    import socket

    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True
