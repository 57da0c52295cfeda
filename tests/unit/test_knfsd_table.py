"""knfsd_table and nfspath: pure rendering, etab parsing, path escapes (no I/O, no root).

The etab lines used here copy what exportfs 2.6.2 writes (see test_knfsd_exportfs.py for
the same formats produced by the real program): every option with its default filled in,
`fsid=`/`anonuid=` printed with %d, flags repeated after `sec=`.
"""
from __future__ import annotations

import ipaddress
import math

from hypothesis import assume, given
from hypothesis import strategies as st

from ganesha_ha.backends.knfsd_table import (
    DesiredEntry, EtabEntry, canonical_options, chunk_args, client_kind, cmdline_client,
    desired_entries, escape_exports_path, export_argvs, export_dir, find_collisions,
    group_by_options, match_path, normalize_client, normalize_fsid, option_differences,
    options_match, parse_etab, parse_etab_entries, render_exports_file, render_options,
    unexport_argvs)
from ganesha_ha.errors import ValidationError
from ganesha_ha.clientspec import ClientSpec
from ganesha_ha.model import Export, KnfsdOptions
from ganesha_ha.nfspath import escape_etab_path, normalize_path, path_is_under, unescape_octal

MP = "/srv/vol1"


def exp(path="d1", clients=("*",), fsid="101", **kw) -> Export:
    return Export(path=path, export_id=1, knfsd=KnfsdOptions(fsid), pseudo="/p", clients=clients, **kw)


# ---- an emulation of nfs-utils' putexportent, for etab lines with defaults filled in -------------
_ORDER = [("access", "rw", "ro"), ("sync", "sync", "async"), ("wdelay", "wdelay", "no_wdelay"),
          ("hide", "hide", "nohide"), ("crossmnt", "crossmnt", "nocrossmnt"),
          ("secure", "secure", "insecure"), ("root_squash", "root_squash", "no_root_squash"),
          ("all_squash", "all_squash", "no_all_squash"),
          ("subtree_check", "subtree_check", "no_subtree_check"),
          ("secure_locks", "secure_locks", "insecure_locks"), ("acl", "acl", "no_acl")]
_DEFAULTS = {"access": "ro", "sync": "sync", "wdelay": "yes", "hide": "yes", "crossmnt": "no",
             "secure": "yes", "root_squash": "yes", "all_squash": "no", "subtree_check": "no",
             "secure_locks": "yes", "acl": "yes", "pnfs": "no", "security_label": "no",
             "anonuid": "65534", "anongid": "65534", "sec": "sys", "mountpoint": None}


def _signed(num: str) -> str:
    n = int(num)
    return str(n - 2**32 if n >= 2**31 else n)


def etab_line(path: str, client: str, options: str) -> str:
    o = dict(_DEFAULTS)
    o.update(canonical_options(options.split(",")))
    words = []
    for cat, yes, no in _ORDER:
        words.append(yes if o[cat] in ("yes", "rw", "sync") else no)
    if o["security_label"] == "yes":
        words.append("security_label")
    words.append("pnfs" if o["pnfs"] == "yes" else "no_pnfs")
    if "fsid" in o:
        f = o["fsid"]
        words.append(f"fsid={_signed(f) if f.isdigit() else f}")
    if o["mountpoint"] is not None:
        words.append("mountpoint")
    words += [f"anonuid={_signed(o['anonuid'])}", f"anongid={_signed(o['anongid'])}", f"sec={o['sec']}"]
    words += [words[0], words[6], words[7]]
    return f"{escape_etab_path(path)}\t{client}({','.join(words)})"


# ---- strategies ----------------------------------------------------------------------------
_component = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cn", "Zl", "Zp"),
                                   blacklist_characters="/"), min_size=1, max_size=12) \
    .filter(lambda c: c not in (".", ".."))
relpaths = st.lists(_component, min_size=0, max_size=3).map("/".join)
abspaths = st.lists(_component, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))

clients = st.one_of(
    st.just("*"),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.builds(lambda a, n: str(ipaddress.ip_network(f"{a}/{n}", strict=False)), st.ip_addresses(v=4), st.integers(8, 32)),
    st.builds(lambda a, n: str(ipaddress.ip_network(f"{a}/{n}", strict=False)), st.ip_addresses(v=6), st.integers(16, 128)),
    st.from_regex(r"\*\.[a-z]{1,8}\.example\.com", fullmatch=True),
    st.from_regex(r"node[0-9]?\?", fullmatch=True),
    st.from_regex(r"@[a-z_][a-z0-9_]{0,8}", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z]{2,5})?", fullmatch=True),
)
_PAIRS = [("rw", "ro"), ("root_squash", "no_root_squash", "all_squash"), ("sync", "async"),
          ("wdelay", "no_wdelay"), ("hide", "nohide"), ("secure", "insecure"),
          ("subtree_check", "no_subtree_check"), ("crossmnt", "nocrossmnt"), ("acl", "no_acl"),
          ("secure_locks", "insecure_locks")]
client_options = st.tuples(
    *[st.sampled_from((None,) + pair) for pair in _PAIRS],
    st.sampled_from([None, "anonuid=0", "anonuid=4294967295", "anonuid=1000"]),
    st.sampled_from([None, "anongid=4294967294", "anongid=100"]),
    st.sampled_from([None, "sec=sys", "sec=krb5:sys", "sec=krb5p"]),
    st.sampled_from([None, "security_label", "mp", "pnfs"]),
).map(lambda t: tuple(o for o in t if o))
fsids = st.one_of(st.integers(1, 2**32 - 1).map(str), st.uuids().map(str))


@st.composite
def exports(draw):
    n = draw(st.integers(1, 4))
    hosts = draw(st.lists(clients, min_size=n, max_size=n, unique_by=normalize_client))
    try:
        specs = tuple(ClientSpec(h, draw(client_options)) for h in hosts)
        return Export(path=draw(relpaths), export_id=1, knfsd=KnfsdOptions(draw(fsids)), pseudo="/x", clients=specs,
                      access=draw(st.sampled_from(["RW", "RO", "None"])),
                      squash=draw(st.sampled_from(["root_squash", "no_root_squash", "all_squash"])))
    except ValidationError:
        assume(False)


# ---- escapes and paths -----------------------------------------------------------------------
@given(abspaths)
def test_etab_escape_roundtrips_and_has_no_blanks(path):
    esc = escape_etab_path(path)
    assert unescape_octal(esc) == path
    assert not any(c in esc for c in " \t\n#\"")


@given(abspaths)
def test_exports_escape_is_ascii_and_roundtrips(path):
    esc = escape_exports_path(path)
    assert esc.isascii() and not any(c in esc for c in " \t\n#\"()")
    assert unescape_octal(esc) == path


def test_escape_examples_match_exportfs():
    assert escape_etab_path("/vol/a b") == r"/vol/a\040b"
    assert escape_etab_path('/vol/q"x#y\\z') == r"/vol/q\042x\043y\134z"
    assert escape_etab_path("/vol/é") == "/vol/é"          # UTF-8 is written raw
    assert escape_exports_path("/vol/é(1)") == r"/vol/\303\251\0501\051"
    assert unescape_octal(r"/vol/\303\251") == "/vol/é"


def test_normalize_path_and_under():
    assert normalize_path("/srv/vol1/d2/") == "/srv/vol1/d2"
    assert normalize_path("//srv//vol1/./d2") == "/srv/vol1/d2"
    assert normalize_path(r"/srv/a\040b/") == "/srv/a b"
    assert path_is_under("/srv/vol1", MP) and path_is_under("/srv/vol1/x/y/", MP)
    assert not path_is_under("/srv/vol10", MP) and not path_is_under("/srv", MP)


@given(relpaths)
def test_export_dir_is_normalised(rel):
    try:
        e = exp(path=rel)
    except ValidationError:
        assume(False)
    d = export_dir(MP + "/", e)
    assert d == normalize_path(d) and path_is_under(d, MP)
    assert not d.endswith("/") or d == "/"


# ---- clients ----------------------------------------------------------------------------------
@given(clients)
def test_client_normalisation_is_idempotent_and_agrees_with_the_model(host):
    try:
        spec = ClientSpec(host)
    except ValidationError:  # e.g. 0.0.0.0, which the model refuses
        assume(False)
    n = normalize_client(spec.host)
    assert normalize_client(n) == n
    assert client_kind(n) == client_kind(spec.host)


def test_client_forms():
    assert normalize_client("<world>") == "*" and client_kind("<world>") == "world"
    assert normalize_client("FD00:0::/64") == "fd00::/64"
    assert normalize_client("Host.Example.COM.") == "host.example.com"
    assert normalize_client("@NetGroup") == "@NetGroup"
    assert cmdline_client("fe80::1") == "[fe80::1]"
    assert cmdline_client("fd00::/64") == "[fd00::]/64"
    assert cmdline_client("10.0.0.0/8") == "10.0.0.0/8" and cmdline_client("*") == "*"
    assert [client_kind(c) for c in ("*", "@ng", "*.e.com", "n?", "10.0.0.0/8", "h", "1.2.3.4")] == \
        ["world", "netgroup", "wildcard", "wildcard", "subnet", "fqdn", "fqdn"]


# ---- rendering --------------------------------------------------------------------------------
def test_render_options_examples():
    assert render_options(exp(), ClientSpec("*", ("rw",))) == "rw,root_squash,no_all_squash,sync,no_subtree_check,fsid=101"
    # a spec without rw/ro is read-only, as exportfs makes it (exports(5))
    assert render_options(exp(), ClientSpec("*")) == "ro,root_squash,no_all_squash,sync,no_subtree_check,fsid=101"
    c = ClientSpec("10.0.0.0/8", ("ro", "no_root_squash", "async", "insecure", "anonuid=7", "sec=krb5:sys", "crossmnt"))
    assert render_options(exp(fsid="0b5b7f4e-1b2c-4d3e-8f9a-0123456789ab"), c) == (
        "ro,no_root_squash,no_all_squash,async,no_subtree_check,crossmnt,insecure,anonuid=7,"
        "sec=krb5:sys,fsid=0b5b7f4e-1b2c-4d3e-8f9a-0123456789ab")
    assert render_options(exp(access="RO"), ClientSpec("*", ("rw",))).startswith("ro,")
    assert render_options(exp(access="None"), ClientSpec("*", ("rw",))) is None
    assert render_options(exp(squash="all_squash"), ClientSpec("*", ("rw",))) == \
        "rw,all_squash,sync,no_subtree_check,fsid=101"
    # the client's own squash wins over the export's; all_squash makes no_root_squash moot
    assert render_options(exp(squash="all_squash"), ClientSpec("*", ("rw", "no_root_squash"))).startswith(
        "rw,no_root_squash,no_all_squash,")
    assert render_options(exp(), ClientSpec("*", ("rw", "all_squash", "no_root_squash"))) == \
        "rw,all_squash,sync,no_subtree_check,fsid=101"
    assert render_options(exp(), ClientSpec("*", ("all_squash",))).split(",")[1] == "all_squash"


@given(exports())
def test_render_is_deterministic_complete_and_fsid_last(e):
    entries = desired_entries(MP, e)
    assert [d.client for d in entries] == [normalize_client(c.host) for c in e.clients
                                           if e.client_access(c) != "None"]
    for d, c in zip(entries, [c for c in e.clients if e.client_access(c) != "None"]):
        toks = d.options.split(",")
        assert toks[-1] == f"fsid={e.knfsd.fsid}" and sum(t.startswith("fsid=") for t in toks) == 1
        assert toks[0] == ("rw" if e.client_access(c) == "RW" else "ro")
        assert ("async" in toks) == ("async" in c.options) and ("sync" in toks) != ("async" in toks)
        assert len(toks) == len(set(toks))
        # reversing the client's option order changes nothing
        again = render_options(e, ClientSpec(c.host, tuple(reversed(c.options))))
        assert again == d.options


@given(exports())
def test_rendered_entry_matches_its_own_etab_line(e):
    """What exportfs writes for our options (defaults filled in, %d) is never drift."""
    for d in desired_entries(MP, e):
        ((path, client), opts), = parse_etab(etab_line(d.path, d.client, d.options)).items()
        assert (path, client) == (d.path, d.client)
        assert options_match(d.tokens, opts), option_differences(d.tokens, opts)


_FLIPS = {"rw": "ro", "ro": "rw", "sync": "async", "async": "sync", "root_squash": "no_root_squash",
          "no_root_squash": "root_squash", "all_squash": "no_all_squash", "no_all_squash": "all_squash",
          "insecure": "secure", "secure": "insecure", "no_subtree_check": "subtree_check",
          "subtree_check": "no_subtree_check", "crossmnt": "nocrossmnt", "nocrossmnt": "crossmnt"}


@given(exports(), st.data())
def test_any_changed_option_we_set_is_drift(e, data):
    entries = desired_entries(MP, e)
    assume(entries)
    d = data.draw(st.sampled_from(entries))
    toks = d.options.split(",")
    i = data.draw(st.sampled_from([i for i, t in enumerate(toks) if t in _FLIPS or t.startswith("fsid=")]))
    live = list(toks)
    live[i] = _FLIPS.get(toks[i], "fsid=99999")
    if live[i] == toks[i]:
        live[i] = "fsid=99998"
    parsed = parse_etab(etab_line(d.path, d.client, ",".join(live)))
    assert not options_match(d.tokens, parsed[(d.path, d.client)])


def test_option_comparison_rules():
    want = "rw,root_squash,no_all_squash,sync,no_subtree_check,anonuid=4294967295,sec=krb5:sys,fsid=4000000000".split(",")
    live = ("rw,sync,wdelay,hide,nocrossmnt,secure,root_squash,no_all_squash,no_subtree_check,secure_locks,"
            "acl,no_pnfs,fsid=-294967296,anonuid=-1,anongid=65534,sec=krb5:sys,rw,root_squash,no_all_squash").split(",")
    assert options_match(want, live)                    # %d wrap-around is the same number
    assert option_differences(["sec=krb5:sys"], ["sec=krb5", "rw", "sec=sys", "ro"]) == []
    assert option_differences(["no_auth_nlm"], ["insecure_locks"]) == []
    assert option_differences(["mp"], ["mountpoint"]) == [] and option_differences(["mp"], ["rw"])
    assert option_differences(["security_label"], ["rw"]) == ["security_label: want yes, live no"]
    assert option_differences(["rw", "sync"], ["rw", "async", "rw"]) == ["sync: want sync, live async"]
    # an option ganesha-ha does not set may read anything
    assert options_match(["rw"], ["rw", "insecure", "no_wdelay"])
    assert normalize_fsid("-294967296") == "4000000000"
    assert normalize_fsid("0B5B7F4E-1B2C-4D3E-8F9A-0123456789AB") == "0b5b7f4e-1b2c-4d3e-8f9a-0123456789ab"


# ---- etab parsing ------------------------------------------------------------------------------
ETAB = (
    "/srv/vol1/a\\040b\tfe80::1(ro,sync,fsid=11,sec=sys,ro)\n"
    "/srv/vol1/a\\040b\tfd00::/64(rw,sync,fsid=11)\n"
    "/srv/vol1/d2/\t<world>(rw,async,fsid=0b5b7f4e-1b2c-4d3e-8f9a-0123456789ab)\n"
    "/srv/vol1/é\t*.example.com(rw,fsid=-294967296)\n"
    "garbage without options\n"
    "\n"
    "/srv/vol1/d3\t@ng(rw,fsid=13)\n"
)


def test_parse_etab_forms():
    t = parse_etab(ETAB)
    assert set(t) == {("/srv/vol1/a b", "fe80::1"), ("/srv/vol1/a b", "fd00::/64"),
                      ("/srv/vol1/d2", "*"), ("/srv/vol1/é", "*.example.com"), ("/srv/vol1/d3", "@ng")}
    assert t[("/srv/vol1/d2", "*")] == ("rw", "async", "fsid=0b5b7f4e-1b2c-4d3e-8f9a-0123456789ab")
    e = [x for x in parse_etab_entries(ETAB) if x.path == "/srv/vol1/d2"][0]
    assert e.raw_path == "/srv/vol1/d2/" and e.unexport_arg == "*:/srv/vol1/d2/"
    v6 = [x for x in parse_etab_entries(ETAB) if x.client == "fe80::1"][0]
    assert v6.unexport_arg == "[fe80::1]:/srv/vol1/a b" and v6.fsid == "11"


@given(st.lists(st.tuples(abspaths, clients, fsids), max_size=8))
def test_parse_etab_roundtrip(rows):
    text = "".join(etab_line(p, normalize_client(c), f"rw,fsid={f}") + "\n" for p, c, f in rows)
    parsed = parse_etab(text)
    assert set(parsed) == {(normalize_path(p), normalize_client(c)) for p, c, _ in rows}
    assert parse_etab(text.replace("\t*(", "\t<world>(")) == parsed


def test_find_collisions():
    entries = parse_etab_entries(ETAB)
    assert find_collisions(entries, {"11": "/srv/vol1/a b/", "13": "/srv/vol1/d3"}) == []
    assert find_collisions(entries, {"13": "/srv/vol1/other"}) == [("13", "/srv/vol1/other", "/srv/vol1/d3")]
    assert find_collisions(entries, {"4000000000": "/x"}) == [("4000000000", "/x", "/srv/vol1/é")]


def test_match_path_pairs_names_then_addresses():
    d = [DesiredEntry("/v/d", "127.0.0.1", "rw,fsid=1"), DesiredEntry("/v/d", "*", "rw,fsid=1"),
         DesiredEntry("/v/d", "10.0.0.0/8", "ro,fsid=1")]
    live = [EtabEntry("/v/d", "localhost", ("rw", "fsid=1")), EtabEntry("/v/d", "*", ("rw", "fsid=1")),
            EtabEntry("/v/d", "10.0.0.0/8", ("rw", "fsid=1")), EtabEntry("/v/d", "@old", ("rw",))]
    asked = []

    def same(a, b):
        asked.append((a, b))
        return {a, b} == {"127.0.0.1", "localhost"}

    s = match_path(d, live, same)
    assert [x[0].client for x in s.ok] == ["*", "127.0.0.1"]
    assert [x[0].client for x in s.changed] == ["10.0.0.0/8"] and s.changed[0][2] == ["access: want ro, live rw"]
    assert [e.client for e in s.extra] == ["@old"] and not s.missing
    assert all(b == "localhost" for _, b in asked)      # wildcards/netgroups never resolved
    assert match_path(d, []).missing == d and match_path([], live).extra == live


# ---- argv ---------------------------------------------------------------------------------------
@given(st.lists(st.text(min_size=1, max_size=300), max_size=200), st.integers(50, 5000))
def test_chunks_keep_order_and_respect_the_limit(args, limit):
    chunks = chunk_args(args, limit)
    assert [a for c in chunks for a in c] == args
    for c in chunks:
        size = sum(len(a.encode("utf-8", "surrogateescape")) + 1 for a in c)
        assert size <= limit or len(c) == 1
    assert len(chunks) <= max(1, math.ceil(sum(len(a.encode()) + 1 for a in args) * 2 / limit) + 1) or not args


@given(st.integers(1, 1000), st.integers(1, 5))
def test_process_count_does_not_grow_with_exports_sharing_options(n, ngroups):
    entries = [DesiredEntry(f"/srv/vol1/d{i}", "10.0.0.0/8", f"rw,sync,fsid={i % ngroups + 1}") for i in range(n)]
    argvs = export_argvs("exportfs", entries)
    assert len(argvs) == min(n, ngroups)            # 1000 dirs x 30 bytes fit one 100 kB chunk
    assert sorted(a for v in argvs for a in v[4:]) == sorted(d.arg for d in entries)
    assert all(v[:2] == ["exportfs", "-i"] and v[2] == "-o" for v in argvs)
    assert len(unexport_argvs("exportfs", [d.arg for d in entries])) == 1
    assert len(unexport_argvs("exportfs", [d.arg for d in entries], limit=1000)) == \
        len(chunk_args([d.arg for d in entries], 1000))


def test_group_and_exports_file():
    e1, e2 = exp("a b", ("*(rw)", "fe80::1(ro)")), exp("d2", ("*(rw)",), fsid="102")
    entries = desired_entries(MP, e1) + desired_entries(MP, e2)
    assert len(group_by_options(entries)) == 3
    text = render_exports_file(entries + entries)
    assert text.splitlines() == [
        r"/srv/vol1/a\040b *(rw,root_squash,no_all_squash,sync,no_subtree_check,fsid=101)",
        r"/srv/vol1/a\040b fe80::1(ro,root_squash,no_all_squash,sync,no_subtree_check,fsid=101)",
        r"/srv/vol1/d2 *(rw,root_squash,no_all_squash,sync,no_subtree_check,fsid=102)"]
    assert entries[1].arg == "[fe80::1]:/srv/vol1/a b"
