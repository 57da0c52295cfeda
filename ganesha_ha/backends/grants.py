"""What an export grants each client: as the registry means it, as Ganesha holds it, and how
the two differ (pure; the Ganesha backend reads, this module compares).

"Present" is not "correct": Ganesha 4.3 drops a CLIENT block it cannot lex with no more than
an "Errors found" in the AddExport reply, resolves a host name once, at AddExport, and takes
the first CLIENT entry that matches. So after every change and at every monitor the backend
reads the export back with DisplayExport and `diff_export` compares, field by field:

- the full path (DisplayExport's second field, whatever `mount_path_pseudo` says) and the
  pseudo path (third field: the pseudo path with `mount_path_pseudo = true`, else the full
  path again, include/export_mgr.h `tmp_export_path`, so it is checked when it can be);
- each client entry, in order: its name as Ganesha shows it (`cidr_to_str`: `127.0.0.1/32`,
  `2001:db8::/64`; a netgroup without its `@`; a wildcard as written; `*`; `<unknown>` for a
  host name that did not resolve), and its access, squash, anonymous uid/gid and security
  flavours decoded from the `options` and `set` bitmasks (src/include/nfs_exports.h;
  effective = options & set, src/support/exports.c `export_check_access`);
- the order: the entries must follow the registry's clients in exports(5) precedence
  (access.py), a host name's addresses in any order among themselves.

A host name becomes one entry per address getaddrinfo gives Ganesha (exports.c `add_client`,
TERM_TOKEN), or one dead `<unknown>` entry when it does not resolve on this node. The caller
passes `resolve` (host name → addresses in getaddrinfo's order, () when the name does not
resolve, None when the resolver did not answer in time: resolve.py); an unresolved name is a
warning (`unresolved`), not a difference: a name that resolves only where its clients are is
a matter of that node's DNS, and refusing it would fail a cluster's volume on the node whose
resolver is down; but an export none of whose clients resolves here serves nobody, and is not
live (`serves_nobody`). A name not known in time is not judged: any single-address entries (or
`<unknown>`) in its place pass (`unchecked`).
"""
from __future__ import annotations

import ipaddress

from ..access import HOST, client_class, precedence_order
from ..clientspec import ClientSpec
from ..model import Export
from ..record import Record

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    Resolve = Callable[[str], "tuple[str, ...] | None"]

# src/include/nfs_exports.h (4.3)
ROOT_ID_SQUASH, ROOT_SQUASH, ALL_ANONYMOUS = 0x1, 0x2, 0x4
SQUASH_TYPES = 0x7
ANON_UID_SET, ANON_GID_SET = 0x8, 0x10
ACCESS_MASK = 0x1E0          # READ 0x20 | WRITE 0x40 | MD_READ 0x80 | MD_WRITE 0x100
ACCESS_NAMES = {0x1E0: "RW", 0xA0: "RO", 0x180: "MDONLY", 0x80: "MDONLY_RO", 0: "None"}
SQUASH_NAMES = {0: "no_root_squash", ROOT_SQUASH: "root_squash", ALL_ANONYMOUS: "all_squash",
                ROOT_ID_SQUASH: "root_id_squash"}
SEC_BITS = {"none": 0x1000, "sys": 0x2000, "krb5": 0x4000, "krb5i": 0x8000, "krb5p": 0x10000}
AUTH_TYPES = 0x1F000
NOT_SET = "(not set)"        # the CLIENT block does not set it: Ganesha uses the EXPORT's
UNKNOWN_HOST = "<unknown>"   # export_mgr.c client_of_export: a host name that did not resolve
ANY_ADDRESSES = "(its addresses)"  # a host name the resolver did not answer for in time


class Grant(Record, frozen=True):
    """What one client entry grants."""

    access: str                     # RW, RO, None (Ganesha also MDONLY, MDONLY_RO) or NOT_SET
    squash: str                     # root_squash, no_root_squash, all_squash (root_id_squash) or NOT_SET
    anonuid: int | None = None      # None: not set for this client
    anongid: int | None = None
    sec: frozenset[str] | None = None   # security flavours; None: the server's default

    def differences(self, other: "Grant") -> list[tuple[str, str, str]]:
        """(field, self's value, other's value) for each field that differs."""
        out = []
        for name in ("access", "squash", "anonuid", "anongid", "sec"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                out.append((name, _show(mine), _show(theirs)))
        return out


def _show(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, frozenset):
        return ":".join(sorted(value, key=list(SEC_BITS).index)) if value else "(none)"
    return str(value)


class LiveClient(Record, frozen=True):
    """One client entry as DisplayExport shows it."""

    name: str
    grant: Grant


class LiveExport(Record, frozen=True):
    """One export as DisplayExport shows it (export_mgr.c `gsh_export_displayexport`)."""

    export_id: int
    path: str                       # the full path, always
    shown: str                      # the pseudo path with mount_path_pseudo, else the full path
    clients: tuple[LiveClient, ...] = ()


def parse_display(reply: Sequence[Any]) -> LiveExport:
    """DisplayExport's reply `(q id, s fullpath, s pseudopath, s tag, a(siyyiuuuuu) clients)`
    as a LiveExport. Raises ValueError on a reply of another shape (another Ganesha version)."""
    if len(reply) != 5:
        raise ValueError(f"DisplayExport replied with {len(reply)} fields, expected 5 (Ganesha 4.x)")
    clients = []
    for entry in reply[4]:
        if len(entry) != 10:
            raise ValueError(f"DisplayExport client entry has {len(entry)} fields, expected 10")
        clients.append(LiveClient(str(entry[0]), decode_perms(int(entry[5]), int(entry[6]),
                                                              int(entry[8]), int(entry[9]))))
    return LiveExport(int(reply[0]), str(reply[1]), str(reply[2]), tuple(clients))


def decode_perms(anon_uid: int, anon_gid: int, options: int, set_: int) -> Grant:
    """A client entry's permissions from its `options` and `set` bitmasks. `options` carries
    default bits even where nothing was set, so only the bits `set` marks count."""
    key = (anon_uid, anon_gid, options, set_)
    grant = _GRANTS.get(key)
    if grant is None:
        if len(_GRANTS) >= _MEMO_MAX:
            _GRANTS.clear()
        grant = _GRANTS[key] = _decode_perms(anon_uid, anon_gid, options, set_)
    return grant


# Memos: a read-back of N exports decodes and expects the same few client entries N times
# (a volume's exports mostly share their clients); each value is immutable.
_MEMO_MAX = 4096
_GRANTS: dict[tuple[int, int, int, int], Grant] = {}
_HOST_NAMES: dict[tuple[ClientSpec, ...], list[str]] = {}


class _Expecting:
    """The expected entries per (clients, access, squash), for one resolver (one drift or
    apply call: its answers do not change within it, resolve.py)."""

    resolve: Any = None
    entries: dict[tuple[Any, ...], tuple[Expected, ...]] = {}


def _decode_perms(anon_uid: int, anon_gid: int, options: int, set_: int) -> Grant:
    access = ACCESS_NAMES.get(options & ACCESS_MASK, hex(options & ACCESS_MASK)) \
        if set_ & ACCESS_MASK == ACCESS_MASK else NOT_SET
    squash = SQUASH_NAMES.get(options & SQUASH_TYPES, hex(options & SQUASH_TYPES)) \
        if set_ & SQUASH_TYPES == SQUASH_TYPES else NOT_SET
    sec = None
    if set_ & AUTH_TYPES == AUTH_TYPES:
        sec = frozenset(name for name, bit in SEC_BITS.items() if options & bit)
    return Grant(access, squash,
                 anon_uid if set_ & ANON_UID_SET else None,
                 anon_gid if set_ & ANON_GID_SET else None, sec)


def expected_grant(exp: Export, client: ClientSpec) -> Grant:
    """What the registry grants `client` of `exp` (the model's rule, the same for both servers)."""
    uid, gid, sec = (client.option_value(k) for k in ("anonuid", "anongid", "sec"))
    return Grant(exp.client_access(client), client.squash(exp.squash),
                 int(uid) if uid is not None else None, int(gid) if gid is not None else None,
                 frozenset(sec.split(":")) if sec is not None else None)


def ganesha_names(host: str, resolve: Resolve) -> tuple[str, ...]:
    """The entries Ganesha holds for one normalised client spec, as DisplayExport names them."""
    if host == "*":
        return ("*",)
    if host.startswith("@"):
        return (host[1:],)
    if any(ch in host for ch in "*?["):
        return (host,)
    if "/" in host:
        return (host,)
    if _is_address(host):
        return (_host_entry(host),)
    addresses = resolve(host)
    if addresses is None:
        return (ANY_ADDRESSES,)
    return tuple(_host_entry(a) for a in addresses) if addresses else (UNKNOWN_HOST,)


def _single_host(name: str) -> bool:
    """An entry a host name can stand for: one address, or <unknown>."""
    return name == UNKNOWN_HOST or name.endswith(("/32", "/128"))


def _host_entry(address: str) -> str:
    """A single address as Ganesha shows it: a /32 or /128 network. `address` is normalised
    (the model's, or getaddrinfo's numeric form)."""
    return f"{address}/128" if ":" in address else f"{address}/32"


def _canonical(name: str) -> str:
    """One spelling per client entry name: IPv6 addresses and networks as Python writes them
    (Ganesha's cidr_to_str may compress otherwise), everything else as it is (IPv4 has one
    spelling without leading zeros; Ganesha keeps host bits, and so does this)."""
    if ":" in name and "/" in name:
        try:
            return str(ipaddress.ip_interface(name))
        except ValueError:
            return name
    return name


class Expected(Record, frozen=True):
    rank: int          # the spec's position in precedence order
    spec: str          # the registry's client spec (host), for messages
    name: str          # the entry Ganesha should hold
    grant: Grant
    resolved: bool = False   # `name` is an address of the host name `spec` (or <unknown>)

    @property
    def label(self) -> str:
        return f"{self.spec} ({self.name})" if self.resolved else self.spec


def expected_entries(exp: Export, resolve: Resolve) -> tuple[Expected, ...]:
    """The client entries Ganesha should hold for `exp`, in the order it must hold them."""
    if _Expecting.resolve is not resolve:
        _Expecting.resolve, _Expecting.entries = resolve, {}
    key = (exp.clients, exp.access, exp.squash)
    entries = _Expecting.entries.get(key)
    if entries is None:
        if len(_Expecting.entries) >= _MEMO_MAX:
            _Expecting.entries.clear()
        entries = _Expecting.entries[key] = tuple(_expected_entries(exp, resolve))
    return entries


def _expected_entries(exp: Export, resolve: Resolve) -> list[Expected]:
    out = []
    for rank, client in enumerate(precedence_order(exp.clients)):
        grant = expected_grant(exp, client)
        by_name = client_class(client.host) == HOST and not _is_address(client.host)
        out += [Expected(rank, client.host, name, grant, by_name)
                for name in ganesha_names(client.host, resolve)]
    return out


def _is_address(host: str) -> bool:
    """For a normalised HOST-class spec: an address, not a name (a name's last label holds a
    letter, clientspec.normalize_host; an IPv6 address holds a colon)."""
    return ":" in host or host.replace(".", "").isdigit()


def host_names(exp: Export) -> list[str]:
    """The client specs of `exp` that are host names (not addresses, networks, patterns)."""
    names = _HOST_NAMES.get(exp.clients)
    if names is None:
        if len(_HOST_NAMES) >= _MEMO_MAX:
            _HOST_NAMES.clear()
        names = _HOST_NAMES[exp.clients] = [c.host for c in exp.clients
                                            if client_class(c.host) == HOST and not _is_address(c.host)]
    return list(names)


def unresolved(exp: Export, resolve: Resolve) -> list[str]:
    """The client host names of `exp` that do not resolve on this node (Ganesha grants them nothing here)."""
    return [host for host in host_names(exp) if resolve(host) == ()]


def serves_nobody(exp: Export, resolve: Resolve) -> bool:
    """Every client of `exp` is a host name that does not resolve on this node: the export would
    be live and grant nobody here. That is the export's failure, not a warning (knfsd's rule too)."""
    names = unresolved(exp, resolve)
    return exp.access != "None" and bool(names) and len(names) == len(exp.clients)


def unchecked(exp: Export, resolve: Resolve) -> list[str]:
    """The client host names of `exp` the resolver did not answer for in time (not judged)."""
    return [host for host in host_names(exp) if resolve(host) is None]


def diff_export(exp: Export, path: str, live: LiveExport, resolve: Resolve) -> list[str]:
    """How `live` differs from what `exp` (served from the full path `path`) means, one
    sentence per difference ("client 127.0.0.1: access is RW, the registry says RO"); empty
    when Ganesha holds exactly the registry's export."""
    out = []
    if live.path != path:
        out.append(f"path is {live.path}, the registry says {path}")
    if live.shown not in (exp.pseudo, live.path):  # shown = the full path without mount_path_pseudo
        out.append(f"pseudo path is {live.shown}, the registry says {exp.pseudo}")
    return out + diff_clients(expected_entries(exp, resolve), live.clients)


def diff_clients(expected: Sequence[Expected], live: Sequence[LiveClient]) -> list[str]:
    """Entries missing, not in the registry, out of exports(5) order, or granting otherwise.

    Each live entry is paired with the first unused expected entry of the same name whose
    spec does not come before the last one paired (the entries of one host name may come in
    any order); a name that pairs only with an earlier spec is out of order. A single-address
    entry nothing else claims may pair with a host name not known in time (ANY_ADDRESSES),
    as many times as there are such entries.
    """
    out: list[str] = []
    used = [False] * len(expected)
    rank = 0
    order_broken = False
    names = [_canonical(e.name) for e in expected]
    for entry in live:
        name = _canonical(entry.name)
        candidates = [i for i, n in enumerate(names) if not used[i] and n == name]
        if _single_host(name):  # a host name not known in time may stand for it, more than once
            candidates += [i for i, n in enumerate(names) if n == ANY_ADDRESSES]
        if not candidates:
            out.append(f"client {entry.name} ({_describe(entry.grant)}) is not in the registry")
            continue
        # the earliest spec not before the last one paired, an entry not paired yet first
        later = [i for i in candidates if expected[i].rank >= rank]
        i = min(later or candidates, key=lambda j: (used[j], expected[j].rank, j))
        if not later:
            order_broken = True
        used[i] = True
        rank = max(rank, expected[i].rank)
        want = expected[i]
        for field, have, wanted in entry.grant.differences(want.grant):
            out.append(f"client {want.label}: {field} is {have}, the registry says {wanted}")
    for i, e in enumerate(expected):
        if not used[i]:
            out.append(f"client {e.label} is missing")
    if order_broken:
        out.append("clients are not in exports(5) order: Ganesha holds "
                   f"{', '.join(c.name for c in live)}; the registry's order is "
                   f"{', '.join(dict.fromkeys(e.name for e in expected))}")
    return out


def _describe(grant: Grant) -> str:
    return f"{grant.access}, {grant.squash}"
