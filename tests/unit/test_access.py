"""The exports(5) precedence of client specs, and the CLIENT blocks Ganesha gets in it (pure)."""
import re

from hypothesis import given, strategies as st

from ganesha_ha.access import (ANY, CLASSES, HOST, NETGROUP, NETWORK, WILDCARD, client_class,
                               precedence_key, precedence_order)
from ganesha_ha.backends.ganesha_conf import render_export
from ganesha_ha.errors import ValidationError
from ganesha_ha.clientspec import ClientSpec
from ganesha_ha.model import Export, KnfsdOptions

from strategies import good_host


def hosts(specs):
    return [c.host for c in precedence_order(ClientSpec.parse(s) for s in specs)]


def test_classes():
    assert [client_class(h) for h in ("127.0.0.1", "fe80::1", "host.example", "10.0.0.0/8", "fd00::/64",
                                      "*.example.com", "node[0-9]", "n?", "@ng", "*")] == \
        [HOST, HOST, HOST, NETWORK, NETWORK, WILDCARD, WILDCARD, WILDCARD, NETGROUP, ANY]


def test_the_issue_examples_in_precedence_order():
    # issue 13, item 2: written network first / '*' first, the single host must come first
    assert hosts(["127.0.0.0/8(rw)", "127.0.0.1(ro)"]) == ["127.0.0.1", "127.0.0.0/8"]
    assert hosts(["*(ro)", "127.0.0.1(rw)"]) == ["127.0.0.1", "*"]


def test_every_class_and_longest_prefix_first_stable_within_a_class():
    written = ["*", "@ng", "*.example.com", "10.0.0.0/8", "b.example", "10.1.0.0/16", "fd00::/8",
               "10.1.2.0/24", "a.example", "fd00:1::/32", "node?", "@other", "192.0.2.1"]
    assert hosts(written) == ["b.example", "a.example", "192.0.2.1",
                              "fd00:1::/32", "10.1.2.0/24", "10.1.0.0/16", "10.0.0.0/8", "fd00::/8",
                              "*.example.com", "node?", "@ng", "@other", "*"]


@given(st.lists(good_host, min_size=1, max_size=8, unique=True))
def test_precedence_order_is_a_stable_sort_by_class_then_prefix(specs):
    try:
        clients = [ClientSpec.parse(s) for s in specs]
    except ValidationError:
        return
    ordered = precedence_order(clients)
    assert sorted(map(id, ordered)) == sorted(map(id, clients)), "a permutation"
    keys = [precedence_key(c.host) for c in ordered]
    assert keys == sorted(keys)
    for key in set(keys):  # within one key, the order the administrator wrote
        assert [c for c in ordered if precedence_key(c.host) == key] == \
            [c for c in clients if precedence_key(c.host) == key]
    assert [CLASSES.index(client_class(c.host)) for c in ordered] == \
        sorted(CLASSES.index(client_class(c.host)) for c in clients)


def test_ganesha_client_blocks_follow_the_precedence():
    e = Export(path="d", export_id=3, knfsd=KnfsdOptions("3"), pseudo="/d",
               clients=("*(ro)", "127.0.0.0/8(rw)", "@ng(rw)", "127.0.0.1(ro)", "127.0.0.0/24(rw)"))
    text = render_export(e, "/mnt/v")
    assert re.findall(r"Clients = ([^;]+);", text) == ["127.0.0.1", "127.0.0.0/24", "127.0.0.0/8", "@ng", "*"]
    blocks = text.split("CLIENT {")[1:]
    assert [re.search(r"Access_Type = (\w+);", b).group(1) for b in blocks] == ["RO", "RW", "RW", "RW", "RO"]
