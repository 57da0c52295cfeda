"""Hypothesis strategies for hostile input: the characters that break config languages."""
import ipaddress
import os
from pathlib import Path

from hypothesis import strategies as st

NASTY = '"\'{}[]();,#=\\ \t\n\r\x00\x1b%@*?/.$`|&<>!~-_:'
nasty_text = st.text(alphabet=st.sampled_from(list(NASTY)) | st.characters(), min_size=0, max_size=40)
name_text = st.text(alphabet=st.sampled_from(list('"\'{}[]();,#= \\%@*?$`|&<>!~-_.:')) |
                    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                    min_size=1, max_size=30).filter(lambda s: s not in (".", ".."))
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
cidr4 = st.tuples(ipv4, st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}")
ipv6 = st.ip_addresses(v=6).map(str)
hostname = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9]{0,8}){0,3}", fullmatch=True)
wildcard = st.from_regex(r"\*\.[a-z][a-z0-9]{0,8}(\.[a-z]{2,5})?", fullmatch=True)
netgroup = st.from_regex(r"@[a-z_][a-z0-9_.-]{0,12}", fullmatch=True)
good_host = st.one_of(ipv4, cidr4, ipv6, hostname, wildcard, netgroup, st.just("*"))
good_option = st.sampled_from(["rw", "ro", "root_squash", "no_root_squash", "all_squash", "sync",
                               "async", "no_subtree_check", "insecure", "anonuid=65534",
                               "anongid=100", "sec=sys", "sec=krb5:krb5p"])

# ---- strategies for the agent's parameters and the command line (tests/server/test_*_input.py) -------------------------------------------------------------------------------

printable_env = st.text(alphabet=st.sampled_from(list(NASTY.replace("\x00", ""))) |
                        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                        max_size=60)
raw_bytes = st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b).map(os.fsdecode)
hostile = st.one_of(printable_env, raw_bytes, st.just(""), st.text(min_size=250, max_size=600,
                    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")))
# hosts exportfs takes without a name lookup (this machine has no DNS), in forms the model
# accepts (networks without host bits, no unspecified address), and option lists without
# contradictions: the well-formed half of each parameter
good_net4 = st.tuples(ipv4, st.integers(1, 32)).map(
    lambda t: str(ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False)))
knfsd_host = st.one_of(ipv4, good_net4, ipv6, wildcard, netgroup, st.just("*")).filter(
    lambda h: h not in ("0.0.0.0", "::") and not h.startswith("0.0.0.0/"))
OPTION_FAMILIES = (("rw", "ro"), ("root_squash", "no_root_squash", "all_squash"), ("sync", "async"),
                   ("no_subtree_check", "subtree_check"), ("insecure", "secure"), ("anonuid=65534",),
                   ("anongid=100",), ("sec=sys", "sec=krb5:krb5p"), ("crossmnt",), ("no_wdelay",))
good_options = st.tuples(*[st.none() | st.sampled_from(f) for f in OPTION_FAMILIES]).flatmap(
    lambda picks: st.permutations([o for o in picks if o]).map(",".join))
good_name = st.text(alphabet=st.characters(whitelist_categories=("L", "N", "P", "S", "Zs"),
                                           blacklist_characters="/\x00"),
                    min_size=1, max_size=30).filter(lambda n: n.strip() == n and n not in (".", ".."))
# (well-formed, hostile) per classic parameter; each example makes some of them hostile
CLASSIC_FIELDS = {
    "clientspec": (st.lists(knfsd_host, min_size=1, max_size=3).map(" ".join), hostile),
    "options": (good_options,
                st.one_of(hostile, st.lists(st.one_of(good_option, printable_env), max_size=3).map(",".join))),
    "fsid": (st.one_of(st.just(""), st.integers(1, 2**32 - 1).map(str), st.uuids().map(str)),
             st.one_of(hostile, st.integers(-5, 2**33).map(str))),
}


@st.composite
def directories(draw, volume: Path, well_formed: bool, spaces: bool = True):
    """(parameter value, whether it names an existing directory inside the volume). Well-formed
    names are still hostile to config languages (quotes, braces, '#', unicode...); without
    `spaces`, they hold no space (the agent's directory= is a space-separated list)."""
    kind = draw(st.sampled_from(["name", "nested"] if well_formed else ["hostile", "dotdot", "missing"]))
    if kind in ("name", "nested"):
        names = (good_name | name_text) if spaces else (good_name | name_text).filter(lambda n: " " not in n)
        parts = draw(st.lists(names, min_size=1, max_size=2 if kind == "nested" else 1))
        return str(volume.joinpath(*parts)), True
    if kind == "dotdot":
        return str(volume) + "/" + draw(st.sampled_from(["..", "../..", "a/../..", "./../etc"])), False
    if kind == "missing":
        return str(volume / f"missing-{draw(st.integers(0, 10**6))}"), False
    return str(volume) + "/" + draw(hostile), False
