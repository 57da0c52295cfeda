"""Which client specs NFS-Ganesha 4.3 reads as they are written (pure).

The model accepts the client forms of exports(5) (what exportfs accepts). Ganesha's config
lexer (src/config_parsing/conf_lex.l, state TERM: flex takes the longest match, a tie goes to
the earlier rule) reads some of them as something else, and Ganesha then drops the whole
CLIENT block with only an "Errors found" in the AddExport reply, or grants another client
than the one written (measured on 4.3, docs/research/ganesha-facts.md section A):

- a network prefix is `\\/[1-9][0-9]{0,1}`: 1 to 99 only. `10.0.0.0/0` lexes as a path,
  `2001:db8::/128` as `/12` followed by the number 8, `::/0` as `::` and the path `/0`;
- a host name (TOKEN_CHARS) starts with a letter, `_` or `?`: `3com.example` lexes as a
  number followed by a name;
- `yes`, `no`, `true`, `false`, `on`, `off` (any case) lex as booleans;
- a wildcard that is a name with a leading `?` and no other glob (`?ode`) lexes as a host name
  (TOKEN_CHARS comes before WILDCARD), and getaddrinfo finds no such host;
- a netgroup or wildcard longer than MAXHOSTNAMELEN (64) is refused by
  src/support/exports.c `add_client`;
- an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) parses, but Ganesha converts a mapped caller
  address to IPv4 before it matches clients (exports.c `export_check_access`), so it matches
  nobody.

`check_client` refuses these before anything is written, with the reason and the nearest
spelling Ganesha reads as meant. Leading zeros in IPv4 octets (octal to Ganesha and to
getaddrinfo alike) are refused by the model for both servers.
"""
from __future__ import annotations

import ipaddress
import re

from ..access import ANY, HOST, NETGROUP, NETWORK, WILDCARD, client_class
from ..errors import ValidationError

MAXHOSTNAMELEN = 64      # src/support/exports.c add_client: netgroups (with the '@') and wildcards
MAX_PREFIX = 99          # conf_lex.l CIDR: \/[1-9][0-9]{0,1}
LIST_ADDRESSES_UP_TO = 256  # a small IPv6 network may be written as its addresses, one spec each

_TOKEN_RE = re.compile(r"[A-Za-z_?][A-Za-z0-9._-]*")          # conf_lex.l TOKEN_CHARS
_BOOLEAN_RE = re.compile(r"(?i:yes|true|on|no|false|off)")      # conf_lex.l YES..OFF
_ANY_HOST_CHAR = "[a-z0-9._-]"   # what a leading `?` stands for in a host name or an address


def _refuse(host: str, reason: str, instead: str) -> ValidationError:
    return ValidationError("client", f"{host!r} cannot be read by NFS-Ganesha 4.3: {reason}; {instead}")


def check_client(host: str) -> None:
    """Raise ValidationError (reason and nearest working spelling) when Ganesha 4.3's lexer
    would not read the normalised client spec `host` as written. Pure, no DNS."""
    if host in _READABLE:
        return
    _check_client(host)
    if len(_READABLE) < 4096:
        _READABLE.add(host)


_READABLE: set[str] = set()   # specs found readable: checked for every export of a start, mostly the same few


def _check_client(host: str) -> None:
    kind = client_class(host)
    if kind == ANY:
        return
    if kind == NETGROUP:
        if len(host) > MAXHOSTNAMELEN:
            raise _refuse(host, f"a netgroup name is at most {MAXHOSTNAMELEN - 1} characters",
                          "give the netgroup a shorter name")
        return
    if kind == WILDCARD:
        _check_wildcard(host)
        return
    if kind == NETWORK:
        _check_network(host)
        return
    assert kind == HOST
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        _check_name(host)
        return
    if addr.version == 6 and addr.ipv4_mapped is not None:
        raise _refuse(host, "Ganesha matches an IPv4 client by its IPv4 address, so an IPv4-mapped "
                            "IPv6 address matches nobody", f"write {addr.ipv4_mapped}")


def _check_name(host: str) -> None:
    if _BOOLEAN_RE.fullmatch(host):
        raise _refuse(host, "the word is read as a boolean, not a host name",
                      f"write the host's address, or the wildcard [{host[0]}]{host[1:]} (matched "
                      "against the client's reverse name)")
    if not _TOKEN_RE.fullmatch(host):
        raise _refuse(host, "a host name must start with a letter (one that starts with a digit is "
                            "read as a number)",
                      f"write the host's address, or the wildcard [{host[0]}]{host[1:]} (matched "
                      "against the client's reverse name)")


def _check_wildcard(host: str) -> None:
    if len(host) > MAXHOSTNAMELEN:
        raise _refuse(host, f"a wildcard is at most {MAXHOSTNAMELEN} characters",
                      "write a shorter pattern (e.g. with '*')")
    if _TOKEN_RE.fullmatch(host):  # a leading '?' and no other glob: lexed as a host name
        instead = _ANY_HOST_CHAR + host[1:]
        raise _refuse(host, "a leading '?' with no other wildcard is read as a host name",
                      f"write {instead} (the same pattern for host names and addresses)")


def _check_network(host: str) -> None:
    net = ipaddress.ip_network(host, strict=False)
    if net.prefixlen == 0:
        if net.version == 4:
            raise _refuse(host, "a /0 prefix is read as a file path",
                          "write 0.0.0.0/1 and 128.0.0.0/1 (every IPv4 client), or * (every client)")
        raise _refuse(host, "a /0 prefix is read as a file path",
                      "write ::/1 and 8000::/1 (every IPv6 client), or * (every client)")
    if net.prefixlen <= MAX_PREFIX:
        return
    if net.prefixlen == net.max_prefixlen:
        raise _refuse(host, f"a prefix longer than /{MAX_PREFIX} is not read as a prefix",
                      f"write the address alone: {net.network_address}")
    size = net.num_addresses
    wider = net.supernet(new_prefix=MAX_PREFIX)
    nearest = (f"the nearest network Ganesha can read, {wider} "
               f"({wider.num_addresses // size} times as many addresses)")
    if size <= LIST_ADDRESSES_UP_TO:
        listed = ", ".join(str(a) for a in net) if size <= 4 else f"{net[0]} to {net[-1]}"
        nearest = f"its {size} addresses, one --client each ({listed}), or {nearest}"
    raise _refuse(host, f"a prefix longer than /{MAX_PREFIX} is not read as a prefix", f"write {nearest}")
