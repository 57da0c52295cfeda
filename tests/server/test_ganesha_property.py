"""Issue 13's property, against the real ganesha.nfsd: any client list given to `export add` on an
active Ganesha volume either fails with exit 2 before anything is touched (registry byte for byte,
nothing live, no EXPORT file), or DisplayExport lists exactly the registry's clients, each with the
registry's access, in exports(5) precedence. The one other outcome: every client is a host name
that does not resolve on this node, so the export would serve nobody here: exit 7, rolled back.

The expectation is computed here, independently of ganesha-ha's own read-back (grants.py): the
precedence key, the names Ganesha shows for each kind of spec, and the access bits are written
out again from exports(5), export_mgr.c and nfs_exports.h.
"""
from __future__ import annotations

import ipaddress
import json
import re
import socket

import dbus
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from ganesha_servers import NEEDS_GANESHA
from ganesha_ha.errors import ApplyError, ValidationError
from ganesha_ha.clientspec import ClientSpec

pytestmark = NEEDS_GANESHA

ACCESS_BITS = {0x1E0: "RW", 0xA0: "RO", 0: "None"}   # nfs_exports.h: RW, RO, None (options & set & 0x1e0)


def _net(version, prefix_max):
    addr = st.ip_addresses(v=version)
    return st.tuples(addr, st.integers(0, prefix_max)).map(
        lambda t: str(ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False)))


hosts = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str),
    _net(4, 32), _net(6, 128),                                       # every prefix length
    st.sampled_from(["localhost", "nosuch-a.invalid", "3com.example", "yes", "Off", "host-b.invalid"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,8}(\.[a-z]{2,6}){0,2}", fullmatch=True),
    st.sampled_from(["*.example.com", "node?", "?ode", "node[0-9]", "node[!0-9]", "127.0.0.*", "1*", "local*"]),
    st.from_regex(r"@[a-z_][a-z0-9_.-]{0,70}", fullmatch=True),      # netgroups, some too long for Ganesha
    st.just("*"),
)
access_opt = st.sampled_from(["", "rw", "ro"])
squash_opt = st.sampled_from(["", "root_squash", "no_root_squash", "all_squash"])
specs = st.lists(st.tuples(hosts, access_opt, squash_opt), min_size=1, max_size=6, unique_by=lambda t: t[0]).map(
    lambda items: [f"{h}({','.join(o for o in (a, s) if o)})" if (a or s) else h for h, a, s in items])


def precedence(host: str) -> tuple[int, int]:
    """exports(5): single host, network (longest prefix first), wildcard, netgroup, '*'."""
    if host == "*":
        return 4, 0
    if host.startswith("@"):
        return 3, 0
    if any(c in host for c in "*?["):
        return 2, 0
    if "/" in host:
        return 1, -int(host.rpartition("/")[2])
    return 0, 0


def addresses(name: str) -> list[str]:
    """What Ganesha's getaddrinfo(name, NULL, NULL) gives (AF_UNSPEC, AI_V4MAPPED|AI_ADDRCONFIG)."""
    try:
        infos = socket.getaddrinfo(name, None, 0, 0, 0, socket.AI_V4MAPPED | socket.AI_ADDRCONFIG)
    except socket.gaierror:
        return []
    return list(dict.fromkeys(i[4][0] for i in infos if i[1] in (socket.SOCK_STREAM, socket.SOCK_DGRAM)))


def shown_as(host: str) -> list[str]:
    """The entries DisplayExport lists for one spec (export_mgr.c client_of_export)."""
    if host == "*" or any(c in host for c in "*?[") or "/" in host:
        return [host]
    if host.startswith("@"):
        return [host[1:]]
    try:
        return [str(ipaddress.ip_interface(host))]
    except ValueError:
        return [str(ipaddress.ip_interface(a)) for a in addresses(host)] or ["<unknown>"]


def canon(name: str) -> str:
    return str(ipaddress.ip_interface(name)) if "/" in name and ":" in name else name


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from conftest import ganesha_volume_session

    # Ganesha resolves host names in its D-Bus thread (getaddrinfo at AddExport): a slow resolver
    # must not turn into a timeout here
    with ganesha_volume_session(tmp_path_factory, "prop", (5000, 25999), dbus_timeout=30) as session:
        (session[1] / "d").mkdir()
        yield session


def _content(registry: bytes) -> dict:
    """The registry without its generation (a rollback writes the old content as a new one)."""
    doc = json.loads(registry)
    doc.pop("generation")
    return doc


def _state(lab, vol):
    confs = sorted(p.name for p in (lab.workdir / "run").rglob("export-*.conf"))
    return (vol / ".ganesha-ha" / "registry.json").read_bytes(), lab.show_exports(), confs


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(clients=specs, export_access=st.sampled_from(["RW", "RO"]))
def test_export_add_is_refused_untouched_or_served_exactly(session, clients, export_access):
    _example(session, clients, export_access)


@pytest.mark.long
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(clients=specs, export_access=st.sampled_from(["RW", "RO"]))
def test_export_add_is_refused_untouched_or_served_exactly_long(session, clients, export_access):
    _example(session, clients, export_access)


def _example(session, clients, export_access):
    lab, vol, volume = session
    before = _state(lab, vol)
    try:
        res = volume.add("d", clients, pseudo="/d", access=export_access)
    except ValidationError as exc:
        event("refused (exit 2)")
        assert exc.exit_code == 2
        assert _state(lab, vol) == before, "a refused add touched something"
        return
    except ApplyError as exc:
        # the one refusal after the fact: no client resolves here, the export would serve nobody
        event("no client resolves here (exit 7, rolled back)")
        assert exc.exit_code == 7 and "no client of it resolves on this node" in str(exc)
        assert all(shown_as(ClientSpec.parse(c).host) == ["<unknown>"] for c in clients)
        registry, live, confs = _state(lab, vol)
        assert (_content(registry), live, confs) == (_content(before[0]), *before[1:])
        return
    event("served")
    try:
        exp = volume.load().find("d")
        assert res.live and exp == res.export
        reply = lab.export_mgr("DisplayExport", dbus.UInt16(exp.export_id))
        assert str(reply[1]) == str(vol / "d")
        live = [(canon(str(c[0])), ACCESS_BITS[int(c[8]) & int(c[9]) & 0x1E0]) for c in reply[4]]
        # the registry's clients in exports(5) precedence, each with its access (capped by --access)
        ordered = sorted(exp.clients, key=lambda c: precedence(c.host))
        i = 0
        for c in ordered:
            own = "RW" if "rw" in c.options else "RO"
            access = own if export_access == "RW" else "RO"
            names = [canon(n) for n in shown_as(c.host)]
            group = live[i:i + len(names)]
            assert sorted(n for n, _ in group) == sorted(names), (c.host, live)
            assert {a for _, a in group} == {access}, (c.host, live)
            i += len(names)
        assert i == len(live), f"entries beyond the registry's: {live[i:]}"
        unresolved = [c.host for c in exp.clients if shown_as(c.host) == ["<unknown>"]]
        _check_name_warnings(res.warnings, exp, unresolved)
    finally:
        volume.remove("d")


_WARNING = re.compile(r"^Export_Id \d+ \(/d\): client (\S+) (does not resolve on this node|was not resolved within)")


def _check_name_warnings(warnings: list[str], exp, unresolved: list[str]) -> None:
    """One warning per host name that the read-back could not confirm, and only for those: "does
    not resolve" for a name that does not (this test's own lookup), or "was not resolved within"
    for any name once the read-back's lookups spent their budget (backends/resolve.py: 2 s for
    all names of one call; a sweep met a DNS answer that took it all on the first name, the
    other two were not checked; the session now looks names up in /etc/hosts only, conftest.py)."""
    kinds: dict[str, str] = {}
    for w in warnings:
        m = _WARNING.match(w)
        assert m and m[1] not in kinds, (w, warnings)
        kinds[m[1]] = "unresolved" if m[2].startswith("does not") else "unchecked"
    for host in unresolved:
        assert host in kinds, (host, warnings)
    for host, kind in kinds.items():
        assert host in {c.host for c in exp.clients} and _is_name(host), (host, warnings)
        if kind == "unresolved":
            assert host in unresolved, (host, warnings)


def _is_name(host: str) -> bool:
    """A single host given by name (what Ganesha resolves at AddExport), not an address, network,
    wildcard, netgroup or '*'."""
    if host == "*" or host.startswith("@") or "/" in host or any(c in host for c in "*?["):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False
