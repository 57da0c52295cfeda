"""A client spec of an export, as in /etc/exports: `host(option,option)` (exports(5)), validated
and normalised (pure, no I/O).

The host is one of the forms of exports(5) ('*', an address or network, a host name, a
wildcard name, '@netgroup') in a form both Ganesha's lexer and exportfs read unquoted:
client specs cannot be quoted in Ganesha's config language (`Clients = "1.2.3.4"` is
rejected by Ganesha 4.3: "Expected a client, got a double quoted string"). The options are
exportfs's; what each means to each server is the backends' (see README).
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from .errors import ValidationError
from .record import Record
from .textcheck import LazyPattern, check_text

MAX_CLIENT_LEN = 253

# Client options in exportfs syntax. Each maps to what it means for each server; an option
# that one server has no equivalent for is documented as ignored there (see README).
ACCESS_OPTIONS = {"rw": "RW", "ro": "RO"}
SQUASH_OPTIONS = frozenset({"root_squash", "no_root_squash", "all_squash", "no_all_squash"})
KNFSD_ONLY_FLAGS = frozenset({
    "sync", "async", "wdelay", "no_wdelay", "subtree_check", "no_subtree_check",
    "secure", "insecure", "hide", "nohide", "crossmnt", "nocrossmnt", "no_acl", "acl",
    "insecure_locks", "secure_locks", "no_auth_nlm", "auth_nlm", "mp", "mountpoint",
    "pnfs", "no_pnfs", "security_label", "nordirplus",
})
VALUE_OPTIONS = ("anonuid", "anongid", "sec", "refer", "replicas", "mp", "mountpoint")
SEC_FLAVOURS = ("sys", "krb5", "krb5i", "krb5p", "none")

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# RFC 1123 host names (a label may start with a digit); the last label must hold a letter,
# so that a dotted number is never a name (exportfs and glibc would read `1.2.3` as an address)
_HOSTNAME_RE = LazyPattern(rf"(?:{_LABEL}\.)*[A-Za-z0-9-]*[A-Za-z][A-Za-z0-9-]*\.?")
_HOSTNAME_LABELS_RE = LazyPattern(rf"{_LABEL}(?:\.{_LABEL})*\.?")
# exports(5) wildcards: `*`, `?` and character classes `[...]`/`[!...]` (fnmatch, as mountd matches)
_WILDCARD_RE = LazyPattern(r"(?:[A-Za-z0-9.*?_-]|\[!?[A-Za-z0-9._-]+\])+")
_IPV4ISH_RE = LazyPattern(r"[0-9.]+(?:/[0-9.]*)?")   # a prefix length or exports(5)'s dotted netmask
_IPV6ISH_RE = LazyPattern(r"[0-9a-fA-F:.]+(?:/[0-9]{1,3})?")
_NETGROUP_RE = LazyPattern(r"@[A-Za-z_][A-Za-z0-9_.-]*")
UINT_RE = LazyPattern(r"(0|[1-9][0-9]{0,9})")


def normalize_host(spec: str) -> str:
    """One client host spec, in a form both Ganesha's lexer and exportfs accept unquoted.

    Accepted: '*', an IPv4/IPv6 address or CIDR network, a host name (RFC 1123), a wildcard
    host name ('*.example.com', 'node?', 'node[0-9]'), '@netgroup' — the forms of exports(5).
    What one server cannot read of these is refused by its backend's `check_export` (Ganesha
    4.3 cannot read a name that starts with a digit, for example), not here.
    """
    check_text("client", spec)
    if not spec:
        raise ValidationError("client", "is empty")
    if len(spec) > MAX_CLIENT_LEN:
        raise ValidationError("client", f"is longer than {MAX_CLIENT_LEN} characters")
    if spec == "*":
        return spec
    if _NETGROUP_RE.fullmatch(spec):
        return spec
    if ":" in spec:
        if not _IPV6ISH_RE.fullmatch(spec):
            raise ValidationError("client", f"{spec!r} is not an IPv6 address or network (write it without "
                                  "brackets and without a zone index such as %eth0)")
        return _normalize_ip(spec)
    if _IPV4ISH_RE.fullmatch(spec):
        return _normalize_ip(spec)
    if any(ch in spec for ch in "*?["):
        if not _WILDCARD_RE.fullmatch(spec) or not re.search(r"[A-Za-z0-9]", spec):
            raise ValidationError("client", f"{spec!r} is not a valid wildcard host name (use *, ? and "
                                  "[...] with letters, digits, '.', '-' and '_')")
        return spec.lower()
    if _HOSTNAME_RE.fullmatch(spec) and _HOSTNAME_LABELS_RE.fullmatch(spec) and len(spec) <= 253:
        return spec.lower().rstrip(".")
    raise ValidationError("client", f"{spec!r} is not a host name, IP address, network, wildcard or @netgroup")


def _octal_hint(spec: str) -> str | None:
    """Why a dotted quad with a leading zero is refused, and what to write instead."""
    addr = spec.split("/")[0]
    octets = addr.split(".")
    if len(octets) != 4 or not any(len(o) > 1 and o.startswith("0") for o in octets):
        return None
    decimal = ".".join(str(int(o)) for o in octets if o.isdigit())
    try:
        octal = ".".join(str(int(o, 8) if o.startswith("0") else int(o)) for o in octets)
        ipaddress.IPv4Address(octal)
        meaning = f"{addr} is {octal} to Ganesha and to the C library's getaddrinfo, which exportfs uses"
    except ValueError:
        meaning = f"{addr} is not a valid octal address either"
    rest = spec[len(addr):]
    return (f"{spec!r}: an octet with a leading zero is read as octal ({meaning}); "
            f"write {decimal}{rest} if that is what you mean")


def _is_netmask(mask: str) -> bool:
    """A dotted IPv4 netmask: ones, then zeros (exports(5)'s `address/netmask`)."""
    try:   # Python also reads a host mask (0.0.0.255); exportfs and Ganesha do not
        return str(ipaddress.IPv4Network(f"0.0.0.0/{mask}").netmask) == mask
    except ValueError:
        return False


def _normalize_ip(spec: str) -> str:
    hint = _octal_hint(spec) if ":" not in spec else None
    if hint:
        raise ValidationError("client", hint)
    try:
        if "/" in spec:
            addr, mask = spec.split("/", 1)
            if "." in mask and not _is_netmask(mask):
                raise ValidationError("client", f"{spec!r}: {mask} is not a netmask (contiguous ones, e.g. "
                                      "255.255.255.0); write the network with its prefix length")
            # exports(5)'s address/netmask is read as the prefix length both servers read alike
            net = ipaddress.ip_network(spec, strict=False)
            if ipaddress.ip_address(addr) != net.network_address:
                raise ValidationError("client", f"{spec!r} has host bits set; did you mean {net}?")
            return str(net)
        addr = ipaddress.ip_address(spec)
        if addr.is_unspecified:
            # Ganesha's lexer reads 0.0.0.0 as "any client" while exportfs reads a host:
            # one spec meaning two things is refused rather than guessed.
            raise ValidationError("client", f"{spec!r} is the unspecified address (Ganesha reads it as every "
                                  "client); write '*' for every client or a real address")
        return str(addr)
    except ValueError:
        raise ValidationError("client", f"{spec!r} is not a valid IP address or network") from None


def _normalize_option(opt: str) -> str:
    opt = opt.strip()
    check_text("client option", opt)
    if not opt:
        raise ValidationError("client option", "empty option (check the commas)")
    name, eq, value = opt.partition("=")
    name = name.strip().lower()
    if not eq:
        if name in ACCESS_OPTIONS or name in SQUASH_OPTIONS or name in KNFSD_ONLY_FLAGS:
            return name
        if name == "fsid":
            raise ValidationError("client option", "fsid is set per export with --fsid, not per client")
        raise ValidationError("client option", f"unknown option {name!r}")
    value = value.strip()
    if name in ("anonuid", "anongid"):
        if not UINT_RE.fullmatch(value) or int(value) > 2**32 - 1:
            raise ValidationError("client option", f"{name} must be a number from 0 to {2**32 - 1}, got {value!r}")
        return f"{name}={int(value)}"
    if name == "sec":
        flavours = value.split(":")
        if not flavours or any(f not in SEC_FLAVOURS for f in flavours):
            raise ValidationError("client option", f"sec must be a ':'-separated list of {', '.join(SEC_FLAVOURS)}")
        return f"sec={':'.join(flavours)}"
    if name == "fsid":
        raise ValidationError("client option", "fsid is set per export with --fsid, not per client")
    if name in KNFSD_ONLY_FLAGS:   # `mp=/path`: 'unknown option mp' read as if mp were unknown
        raise ValidationError("client option", f"{name} is taken without a value here ({name}, not {name}={value})")
    raise ValidationError("client option", f"unknown option {name!r}")


class ClientSpec(Record, frozen=True):
    """One client spec of an export with its own options, as in /etc/exports: `host(opt,opt)`."""

    host: str
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", normalize_host(self.host))
        opts: list[str] = []
        for opt in self.options:
            norm = _normalize_option(opt)
            if norm not in opts:
                opts.append(norm)
        _check_option_conflicts(opts)
        object.__setattr__(self, "options", tuple(opts))

    @classmethod
    def parse(cls, text: str) -> "ClientSpec":
        """Parse `SPEC` or `SPEC(OPT,OPT,...)` (the syntax of /etc/exports and exportfs)."""
        check_text("client", text)
        text = text.strip()
        if "(" in text:
            if not text.endswith(")") or text.count("(") != 1 or text.count(")") != 1:
                raise ValidationError("client", f"{text!r}: expected SPEC(OPTION,OPTION,...)")
            host, _, rest = text.partition("(")
            opts = [o for o in rest[:-1].split(",")] if rest[:-1].strip() else []
            return cls(host.strip(), tuple(opts))
        return cls(text)

    def access(self) -> str:
        """RW with `rw`, else RO: exports(5) and exportfs make a spec without `rw`/`ro`
        read-only, and so does ganesha-ha on both servers (registries of schema 3 and older,
        which read a bare spec as `rw`, are migrated to say so: registry.py)."""
        return "RW" if "rw" in self.options else "RO"

    def squash(self, default: str) -> str:
        for name in ("all_squash", "no_root_squash", "root_squash"):
            if name in self.options:
                return name
        return default  # 'no_all_squash' is the default anyway and changes nothing

    def option_value(self, name: str) -> str | None:
        for opt in self.options:
            key, eq, value = opt.partition("=")
            if eq and key == name:
                return value
        return None

    def __str__(self) -> str:
        return f"{self.host}({','.join(self.options)})" if self.options else self.host


def _check_option_conflicts(opts: list[str]) -> None:
    groups = [("rw", "ro"), ("root_squash", "no_root_squash"), ("all_squash", "no_all_squash"),
              ("sync", "async"), ("secure", "insecure"), ("wdelay", "no_wdelay"),
              ("subtree_check", "no_subtree_check"), ("hide", "nohide")]
    for a, b in groups:
        if a in opts and b in opts:
            raise ValidationError("client option", f"{a!r} and {b!r} contradict each other")
    seen: dict[str, str] = {}
    for opt in opts:
        key, eq, _ = opt.partition("=")
        if eq:
            if key in seen:
                raise ValidationError("client option", f"{key} is given twice")
            seen[key] = opt


def parse_clients(texts: Iterable[str]) -> tuple[ClientSpec, ...]:
    return tuple(ClientSpec.parse(t) for t in texts)
