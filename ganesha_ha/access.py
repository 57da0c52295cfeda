"""Which client spec of an export applies to a client: the exports(5) rule, for both servers (pure).

exports(5): when a client matches several specs of one export, a single host wins over a
network, a network over a wildcard name, a wildcard over a netgroup, and any of those over
`*`, whatever order they were written in. knfsd applies this itself: mountd keeps its export
list by client type in that order (nfs-utils support/export/client.c `client_gettype`, the
MCL_FQDN < MCL_SUBNETWORK < MCL_WILDCARD < MCL_NETGROUP < MCL_ANONYMOUS list, searched in
order by utils/mountd/cache.c `lookup_export`). NFS-Ganesha does not: it takes the first
CLIENT entry that matches, in file order (src/support/exports.c `client_match`, measured on
4.3: [`127.0.0.1 RO`, `* RW`] refuses a write from 127.0.0.1, the reverse allows it). So the
Ganesha backend renders an export's CLIENT blocks in `precedence_order`, and one registry
grants the same access on both servers.

Within the networks, the longest prefix comes first (the most specific network decides);
mountd picks the first of two matching networks of one export ("arbitrarily choosing
options from first"), so overlapping networks with different options are best avoided on
knfsd. Within every class the order the administrator wrote is kept (a stable sort).
"""
from __future__ import annotations

from .clientspec import ClientSpec

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Iterable

HOST, NETWORK, WILDCARD, NETGROUP, ANY = "host", "network", "wildcard", "netgroup", "any"
CLASSES = (HOST, NETWORK, WILDCARD, NETGROUP, ANY)   # in exports(5) precedence


def client_class(host: str) -> str:
    """The exports(5) class of a normalised client spec (clientspec.normalize_host's output):
    a single address or host name, a network (`addr/prefix`), a wildcard name, a netgroup, `*`."""
    if host == "*":
        return ANY
    if host.startswith("@"):
        return NETGROUP
    if any(ch in host for ch in "*?["):
        return WILDCARD
    if "/" in host:
        return NETWORK
    return HOST


def prefix_length(host: str) -> int:
    """The prefix length of a network spec (`10.0.0.0/8` → 8); 0 for every other class."""
    return int(host.rpartition("/")[2]) if client_class(host) == NETWORK else 0


def precedence_key(host: str) -> tuple[int, int]:
    """Sort key: the class in exports(5) order, then the longest network prefix first."""
    return CLASSES.index(client_class(host)), -prefix_length(host)


def precedence_order(clients: Iterable[ClientSpec]) -> tuple[ClientSpec, ...]:
    """The client specs in the order a first-match server must see them (stable within a class)."""
    return tuple(sorted(clients, key=lambda c: precedence_key(c.host)))
