"""Hypothesis strategies for hostile input: the characters that break config languages."""
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
