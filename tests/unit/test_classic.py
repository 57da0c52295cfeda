"""classic.py: ocf:heartbeat:exportfs's parameters as the classic mode reads them (pure)."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, strategies as st

from ganesha_ha.classic import directory_fsids, parse_classic, split_directories, unbracket
from ganesha_ha.errors import ValidationError
from ganesha_ha.model import FSID_NUM_MAX

names = st.text(st.sampled_from("abcdefgh_-.0123456789"), min_size=1, max_size=8).filter(
    lambda s: s not in (".", ".."))


@given(st.lists(st.lists(names, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p)), min_size=1,
                max_size=5, unique=True), st.lists(st.integers(1, 3), min_size=5, max_size=5))
def test_a_directory_list_is_every_directory_in_order(dirs, gaps):
    """Spaces separate directories (any number of them), a trailing '/' goes (upstream's
    sed 's/\\/*$//'), the order is kept: fsid, fsid+1, ... follow it."""
    text = "".join(d + "/" * (g - 1) + " " * g for d, g in zip(dirs, gaps))
    assert split_directories(text.strip()) == tuple(dirs)


@pytest.mark.parametrize("text, why", [("data", "absolute"), ("/a /a/", "twice"), ("/a\tb", "control"),
                                       ("/a\n/b", "control"), ("   ", "empty")])
def test_a_directory_list_refuses(text, why):
    with pytest.raises(ValidationError, match=why):
        split_directories(text)


@given(st.integers(1, FSID_NUM_MAX - 10), st.integers(1, 10))
def test_several_directories_count_up_from_the_fsid_given(first, count):
    assert directory_fsids(str(first), count) == tuple(str(first + i) for i in range(count))


@pytest.mark.parametrize("given, count, why", [
    ("4f838db14f838db14f838db14f838db1", 2, "whole number"),   # upstream: integer with several
    ("root", 2, "whole number"), ("-5", 2, "whole number"), ("abc", 1, "number from 1"),
    ("0", 1, "NFSv4 root"), ("root", 1, "NFSv4 root"), (str(FSID_NUM_MAX), 2, "at most"),
])
def test_fsids_upstream_or_ganesha_ha_refuses(given, count, why):
    with pytest.raises(ValidationError, match=why):
        directory_fsids(given, count)


def test_one_directory_takes_a_uuid_and_none_is_generated_later():
    assert directory_fsids("4f838db14f838db14f838db14f838db1", 1) == ("4f838db1-4f83-8db1-4f83-8db14f838db1",)
    assert directory_fsids("", 3) == (None, None, None)


@given(st.ip_addresses(v=6), st.one_of(st.none(), st.integers(0, 128)))
def test_bracketed_ipv6_is_the_address_or_network(addr, prefix):
    spec = f"[{addr}]" + (f"/{prefix}" if prefix is not None else "")
    plain = unbracket(spec)
    assert "[" not in plain
    if prefix is None:
        assert ipaddress.ip_address(plain) == addr
    else:
        assert ipaddress.ip_network(plain, strict=False) == ipaddress.ip_network(f"{addr}/{prefix}", strict=False)


@pytest.mark.parametrize("spec", ["[192.0.2.1]", "[host]", "[2001:db8::1", "[2001:db8::1]:/x", "[]"])
def test_brackets_hold_only_an_ipv6_address(spec):
    with pytest.raises(ValidationError, match="clientspec"):
        unbracket(spec)


def test_the_parameters_of_upstreams_ocft_cases():
    """tools/ocft/exportfs and exportfs-multidir (resource-agents): what they pass parses."""
    one = parse_classic("/srv/usr", "*", "", "105")
    assert (one.directories, [str(c) for c in one.clients], one.fsids) == (("/srv/usr",), ["*"], ("105",))
    two = parse_classic("/srv/usr /srv/var", "*", "", "105")
    assert two.fsids == ("105", "106")
    with pytest.raises(ValidationError, match="fsid"):
        parse_classic("/srv/usr /srv/var", "*", "", "root")


def test_options_fsid_counts_unless_fsid_is_given_and_the_rest_are_client_options():
    p = parse_classic("/v/a /v/b", "[2001:db8::]/64 192.0.2.7", "rw,fsid=7,no_root_squash,", "")
    assert p.fsids == ("7", "8")
    assert [str(c) for c in p.clients] == ["2001:db8::/64(rw,no_root_squash)", "192.0.2.7(rw,no_root_squash)"]
    assert parse_classic("/v/a", "h", "rw,fsid=7", "9").fsids == ("9",)
    for bad, field in (({"options": "rw,bogus_opt"}, "client option"), ({"clientspec": "a b a"}, "clientspec"),
                       ({"clientspec": "a;b"}, "client"), ({"fsid": "1,2"}, "fsid")):
        args = {"directory": "/v/a", "clientspec": "h", "options": "", "fsid": ""} | bad
        with pytest.raises(ValidationError, match=field):
            parse_classic(**args)


@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=20), st.text(max_size=12))
def test_any_text_is_parsed_or_refused_with_a_validation_error(directory, clientspec, options, fsid):
    """Whatever an administrator types: a ClassicParams or a ValidationError, nothing else."""
    try:
        p = parse_classic(directory, clientspec, options, fsid)
    except ValidationError:
        return
    assert len(p.fsids) == len(p.directories) >= 1 and p.clients
    assert all(d.startswith("/") and (d == "/" or not d.endswith("/")) for d in p.directories)
