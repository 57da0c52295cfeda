"""Read-back: what Ganesha's DisplayExport says an export grants, against what the registry means (pure)."""
import random

from hypothesis import given, settings, strategies as st

from ganesha_ha.access import precedence_order
from ganesha_ha.backends.grants import (ACCESS_MASK, ALL_ANONYMOUS, ANON_GID_SET, ANON_UID_SET, AUTH_TYPES,
                                        ROOT_SQUASH, SEC_BITS, SQUASH_TYPES, Grant, LiveClient, LiveExport,
                                        decode_perms, diff_export, expected_entries, parse_display, unresolved)
from ganesha_ha.errors import ValidationError
from ganesha_ha.clientspec import ClientSpec
from ganesha_ha.model import Export, KnfsdOptions

from strategies import good_host, good_option

PATH = "/mnt/v/d"
HOSTS = {"localhost": ("127.0.0.1",), "two.example": ("192.0.2.1", "2001:db8::1")}


def resolve(host):
    return HOSTS.get(host, ())


def export(*clients, **kw):
    return Export(path="d", export_id=5, knfsd=KnfsdOptions("5"), pseudo="/d", clients=clients, **kw)


def encode(g: Grant):
    """A client entry's (anon uid, anon gid, options, set) as Ganesha fills them for a CLIENT block
    that sets access, squash, and what `g` sets (defaults in `options` where nothing is set)."""
    access = {"RW": 0x1E0, "RO": 0xA0, "None": 0}[g.access]
    squash = {"no_root_squash": 0, "root_squash": ROOT_SQUASH, "all_squash": ALL_ANONYMOUS}[g.squash]
    options = 0x3300000 | 0x3000 | access | squash      # TCP, UDP, NFSv3/4, AUTH_NONE|UNIX defaults
    set_ = ACCESS_MASK | SQUASH_TYPES
    if g.sec is not None:
        options = (options & ~AUTH_TYPES) | sum(SEC_BITS[f] for f in g.sec)
        set_ |= AUTH_TYPES
    if g.anonuid is not None:
        set_ |= ANON_UID_SET
    if g.anongid is not None:
        set_ |= ANON_GID_SET
    uid = g.anonuid if g.anonuid is not None else 4294967294
    gid = g.anongid if g.anongid is not None else 4294967294
    return uid, gid, options, set_


def live_of(exp, path=PATH, shown=None, entries=None):
    """What a Ganesha that read `exp` exactly would show."""
    entries = expected_entries(exp, resolve) if entries is None else entries
    return LiveExport(exp.export_id, path, shown or path, tuple(LiveClient(e.name, e.grant) for e in entries))


def test_decode_measured_entries():
    # ganesha-facts.md section B, export 300 (DisplayExport of Ganesha 4.3)
    assert decode_perms(1234, 1235, 0x33031E2, 0x1FF) == Grant("RW", "root_squash", 1234, 1235)
    assert decode_perms(4294967294, 4294967294, 0x33030A0, 0x1E7) == Grant("RO", "no_root_squash")
    assert decode_perms(4294967294, 4294967294, 0x3203184, 0x7001E7) == Grant("MDONLY", "all_squash")
    # a CLIENT block without Access_Type/Squash: nothing decided by it (the EXPORT's apply)
    assert decode_perms(0, 0, 0x33031E2, 0x0) == Grant("(not set)", "(not set)")


def test_parse_display_reply_shape():
    reply = (300, "/srv/d", "/srv/d", "", [("127.0.0.1/32", 0, 0, 255, 1, 1234, 1235, 0, 0x33031E2, 0x1FF),
                                            ("*", 0, 0, 0, 0, 4294967294, 4294967294, 0, 0x33030A0, 0x1E7)])
    live = parse_display(reply)
    assert live == LiveExport(300, "/srv/d", "/srv/d", (LiveClient("127.0.0.1/32", Grant("RW", "root_squash", 1234, 1235)),
                                                       LiveClient("*", Grant("RO", "no_root_squash"))))
    for bad in (reply[:4], (*reply[:4], [("x", 0, 0)])):
        try:
            parse_display(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_exactly_as_registered_is_clean():
    e = export("127.0.0.0/8(rw)", "localhost(ro,anonuid=7)", "*", "@ng(rw,sec=krb5:sys)", "fe80::1(rw)")
    assert diff_export(e, PATH, live_of(e), resolve) == []
    # Ganesha's own spellings: host bits, IPv6 uncompressed, the pseudo path shown (mount_path_pseudo)
    names = ["127.0.0.1/32", "fe80:0:0:0:0:0:0:1/128", "127.0.0.0/8", "ng", "*"]
    live = live_of(e, shown="/d")
    live = LiveExport(5, PATH, "/d", tuple(LiveClient(n, c.grant) for n, c in zip(names, live.clients)))
    assert diff_export(e, PATH, live, resolve) == []


def test_a_dropped_client_block_is_a_difference():
    """Ganesha 4.3 drops `2001:db8::/122`'s block (its lexer), the export serves nobody."""
    e = export("2001:db8::/122(rw)")
    live = LiveExport(5, PATH, PATH, ())
    assert diff_export(e, PATH, live, resolve) == ["client 2001:db8::/122 is missing"]


def test_other_access_and_squash_name_the_field_and_both_values():
    e = export("127.0.0.1(ro)", "*(rw,no_root_squash)")
    live = live_of(e)
    wrong = LiveExport(5, PATH, PATH, (LiveClient("127.0.0.1/32", Grant("RW", "root_squash")),
                                       LiveClient("*", Grant("RW", "all_squash"))))
    assert diff_export(e, PATH, wrong, resolve) == [
        "client 127.0.0.1: access is RW, the registry says RO",
        "client *: squash is all_squash, the registry says no_root_squash"]
    assert diff_export(e, PATH, live, resolve) == []


def test_the_issue_order_is_a_difference():
    """Issue 13 item 2: [127.0.0.0/8 RW, 127.0.0.1 RO] in file order lets 127.0.0.1 write."""
    e = export("127.0.0.0/8(rw)", "127.0.0.1(ro)")
    right = live_of(e)
    assert [c.name for c in right.clients] == ["127.0.0.1/32", "127.0.0.0/8"]
    wrong = LiveExport(5, PATH, PATH, tuple(reversed(right.clients)))
    diffs = diff_export(e, PATH, wrong, resolve)
    assert len(diffs) == 1 and "not in exports(5) order" in diffs[0] and "127.0.0.0/8, 127.0.0.1/32" in diffs[0]


def test_path_and_pseudo():
    e = export("*")
    assert diff_export(e, PATH, live_of(e, path="/other"), resolve) == [
        f"path is /other, the registry says {PATH}"]
    assert diff_export(e, PATH, live_of(e, shown="/elsewhere"), resolve) == [
        "pseudo path is /elsewhere, the registry says /d"]


def test_host_names_unresolved_here_are_a_warning_not_a_difference():
    e = export("nosuch.invalid(rw)", "two.example(ro)", "*")
    entries = expected_entries(e, resolve)
    assert [x.name for x in entries] == ["<unknown>", "192.0.2.1/32", "2001:db8::1/128", "*"]
    assert unresolved(e, resolve) == ["nosuch.invalid"]
    assert diff_export(e, PATH, live_of(e), resolve) == []
    # a host name's addresses in any order among themselves
    shuffled = [entries[0], entries[2], entries[1], entries[3]]
    assert diff_export(e, PATH, live_of(e, entries=shuffled), resolve) == []
    # an entry the registry does not have
    extra = LiveExport(5, PATH, PATH, live_of(e).clients + (LiveClient("10.0.0.0/8", Grant("RW", "root_squash")),))
    assert diff_export(e, PATH, extra, resolve) == ["client 10.0.0.0/8 (RW, root_squash) is not in the registry"]


@settings(max_examples=300)
@given(hosts=st.lists(good_host, min_size=1, max_size=6, unique=True),
       opts=st.lists(st.lists(good_option, max_size=3), min_size=6, max_size=6),
       access=st.sampled_from(["RW", "RO", "None"]), seed=st.integers(0, 2**32))
def test_clean_exactly_when_the_live_order_keeps_the_precedence(hosts, opts, access, seed):
    try:
        e = export(*(ClientSpec(h, tuple(o)) for h, o in zip(hosts, opts)), access=access)
    except ValidationError:
        return
    entries = expected_entries(e, resolve)
    assert [x.spec for x in entries] == [c.host for c in precedence_order(e.clients)
                                         for _ in range(max(1, len(resolve(c.host))))]
    # decoding what Ganesha would hold gives back each entry's grant
    for x in entries:
        assert decode_perms(*encode(x.grant)) == x.grant
    assert diff_export(e, PATH, live_of(e), resolve) == []
    shuffled = list(entries)
    random.Random(seed).shuffle(shuffled)
    ranks = [x.rank for x in shuffled]
    diffs = diff_export(e, PATH, live_of(e, entries=shuffled), resolve)
    # two specs with one entry name (two unresolved names: <unknown>) are interchangeable
    distinct = len({x.name for x in entries}) == len({(x.rank, x.name) for x in entries})
    if ranks == sorted(ranks):
        assert diffs == []
    elif distinct:
        assert diffs != []
    if len(entries) > 1 and distinct:  # one entry dropped: named as missing
        diffs = diff_export(e, PATH, live_of(e, entries=entries[1:]), resolve)
        assert any(d.endswith("is missing") and entries[0].spec in d for d in diffs), diffs


# ---- Ganesha's replies, condensed to one line (backends/ganesha_replies.py) ------------------------------
def test_errors_found_are_read_line_by_line():
    from ganesha_ha.backends.ganesha_replies import condensed, reply_errors, unresolved_error

    reply = ("1 exports added. Errors found:\nConfig File (/run/gha/u/export-7.conf:5): Syntax error in "
             "statement\nConfig File (/run/gha/u/export-7.conf:5): 1 validation errors in block Client\n"
             "Config File (/run/gha/u/export-7.conf:5): Errors processing block (CLIENT)\n")
    assert reply_errors(reply) == ["line 5: Syntax error in statement", "line 5: 1 validation errors in block Client",
                                    "line 5: Errors processing block (CLIENT)"]
    assert reply_errors("1 exports added") == [] and reply_errors("1 exports updated") == []
    failed = ("0 export entries in /run/gha/u/export-7.conf added because (invalid param value) errors. Details:\n"
              "Config File (/run/gha/u/export-7.conf:5): Expected a IPv4 CIDR address, got (10.0.0.0/33)\n")
    assert condensed(failed) == ("0 export entries in export-7.conf added because (invalid param value) errors. "
                                  "line 5: Expected a IPv4 CIDR address, got (10.0.0.0/33)")
    e = export("nosuch.invalid(rw)", "localhost", "10.0.0.0/8")
    assert unresolved_error("line 5: Client (nosuch.invalid) not found because Name or service not known", e)
    assert unresolved_error("line 5: Client (localhost) not found because Temporary failure in name resolution", e)
    assert not unresolved_error("line 5: Client (other.invalid) not found because Name or service not known", e)
    assert not unresolved_error("line 5: Syntax error in statement", e)


def test_a_host_name_not_known_in_time_is_not_judged():
    """The resolver ran out of time (None): whatever single-address entries stand in the name's
    place pass; other differences are still found."""
    from ganesha_ha.backends.grants import unchecked

    def slow(host):
        return None if host == "slow.example" else resolve(host)

    e = export("slow.example(rw)", "10.0.0.0/8(ro)")
    assert unchecked(e, slow) == ["slow.example"] and unresolved(e, slow) == []
    rw, ro = Grant("RW", "root_squash"), Grant("RO", "root_squash")
    for held in (["192.0.2.7/32", "2001:db8::7/128"], ["<unknown>"], ["192.0.2.7/32"]):
        live = LiveExport(5, PATH, PATH, tuple(LiveClient(n, rw) for n in held) + (LiveClient("10.0.0.0/8", ro),))
        assert diff_export(e, PATH, live, slow) == []
    live = LiveExport(5, PATH, PATH, (LiveClient("192.0.2.7/32", ro), LiveClient("10.0.0.0/8", ro)))
    assert diff_export(e, PATH, live, slow) == ["client slow.example ((its addresses)): access is RO, the registry says RW"]
    assert diff_export(e, PATH, LiveExport(5, PATH, PATH, (LiveClient("10.0.0.0/8", ro),)), slow) == [
        "client slow.example ((its addresses)) is missing"]


def test_resolver_budget(monkeypatch):
    import socket
    import time

    from ganesha_ha.backends.resolve import GANESHA_FLAGS, Resolver

    assert GANESHA_FLAGS == socket.AI_V4MAPPED | socket.AI_ADDRCONFIG   # glibc's flags without hints
    real = socket.getaddrinfo
    calls = []

    def fake(host, *args):
        calls.append(host)
        if host.startswith("slow"):
            time.sleep(1.0)
        if host == "two.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 0)),
                    (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("192.0.2.1", 0)),
                    (socket.AF_INET, socket.SOCK_RAW, 0, "", ("192.0.2.1", 0)),
                    (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::1%eth0", 0, 0, 2)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.2", 0))]
        return real(host, *args)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    r = Resolver(0.3)
    assert r("two.example") == ("192.0.2.1", "fe80::1", "192.0.2.2")   # Ganesha's add_client dedup
    assert r("nosuch.invalid") == ()
    t0 = time.monotonic()
    assert r("slow1.example") is None and r("slow2.example") is None and r("two.example") == ("192.0.2.1", "fe80::1", "192.0.2.2")
    assert time.monotonic() - t0 < 0.6 and "slow2.example" not in calls   # one budget per call, not per name


def test_names_not_known_in_time_among_unresolved_ones():
    """Found by the property test: `<unknown>` entries of two host names, one of them not known
    in time, pair in order whichever of the two it is."""
    rw = Grant("RW", "root_squash")
    for late in ("a.example", "b.example"):
        def resolver(host, late=late):
            return None if host == late else ()

        e = export("a.example(rw)", "b.example(rw)")
        live = LiveExport(5, PATH, PATH, (LiveClient("<unknown>", rw), LiveClient("<unknown>", rw)))
        assert diff_export(e, PATH, live, resolver) == []
        one = LiveExport(5, PATH, PATH, (LiveClient("<unknown>", rw),))
        assert len(diff_export(e, PATH, one, resolver)) == 1


def test_an_export_no_client_of_which_resolves_serves_nobody():
    from ganesha_ha.backends.grants import serves_nobody

    assert serves_nobody(export("nosuch.invalid(rw)", "other.invalid"), resolve)
    assert not serves_nobody(export("nosuch.invalid(rw)", "localhost"), resolve)
    assert not serves_nobody(export("nosuch.invalid(rw)", "10.0.0.0/8"), resolve)
    assert not serves_nobody(export("nosuch.invalid(rw)", access="None"), resolve)   # nobody, on purpose
    assert not serves_nobody(export("slow.example(rw)"), lambda host: None)           # not known: not judged


def test_expected_entries_follow_the_resolver_and_the_exports_own_access():
    """Memoised per client list for one resolver (one read-back call): a new resolver's answers
    count, and two exports with the same clients but other access or squash expect their own."""
    e = export("two.example(rw)", "localhost(ro)")
    first = expected_entries(e, resolve)
    assert [x.name for x in first] == ["192.0.2.1/32", "2001:db8::1/128", "127.0.0.1/32"]
    assert expected_entries(export("two.example(rw)", "localhost(ro)"), resolve) is first

    def moved(host):
        return {"two.example": ("198.51.100.7",)}.get(host, ())

    assert [x.name for x in expected_entries(e, moved)] == ["198.51.100.7/32", "<unknown>"]
    assert [x.name for x in expected_entries(e, resolve)] == [x.name for x in first]
    ro = expected_entries(export("two.example(rw)", "localhost(ro)", access="RO"), resolve)
    assert [x.grant.access for x in ro] == ["RO", "RO", "RO"]
    squashed = expected_entries(export("two.example(rw)", "localhost(ro)", squash="all_squash"), resolve)
    assert {x.grant.squash for x in squashed} == {"all_squash"}
