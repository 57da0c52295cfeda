"""The export model: validation, normalisation and lossless round-trips (pure, fast)."""
import pytest
from hypothesis import given, settings, strategies as st

from ganesha_ha.errors import ValidationError
from ganesha_ha.clientspec import ClientSpec
from ganesha_ha.model import Export, KnfsdOptions, normalize_fsid, normalize_pseudo, normalize_relpath

from strategies import good_host, good_option, nasty_text


def make(**kw):
    base = dict(path="data", export_id=7, knfsd=KnfsdOptions("42"), pseudo="/data", clients=("127.0.0.1",))
    base.update(kw)
    return Export(**base)


def test_client_spec_parses_exportfs_syntax():
    c = ClientSpec.parse("192.0.2.0/24(rw,sync,no_root_squash)")
    assert c.host == "192.0.2.0/24"
    assert c.options == ("rw", "sync", "no_root_squash")
    assert str(c) == "192.0.2.0/24(rw,sync,no_root_squash)"


@pytest.mark.parametrize("spec,host", [
    ("*", "*"), ("2001:DB8::1", "2001:db8::1"), ("2001:db8::/32", "2001:db8::/32"),
    ("Host.Example.", "host.example"), ("*.example.com", "*.example.com"), ("@trusted", "@trusted"),
    ("node?", "node?"), ("2001:DB8:0:0::/64", "2001:db8::/64"),
    # exports(5)'s address/netmask form, written as the prefix both servers read alike
    ("192.168.1.0/255.255.255.0", "192.168.1.0/24"), ("10.0.0.0/255.0.0.0", "10.0.0.0/8"),
    ("10.1.2.3/255.255.255.255", "10.1.2.3/32"),
])
def test_client_host_forms_are_normalised(spec, host):
    assert ClientSpec.parse(spec).host == host


@pytest.mark.parametrize("spec,field_word", [
    ('a"b', "client"), ("a;b", "client"), ("a{b}", "client"), ("1.2.3.4/33", "client"),
    ("10.0.0.1/8", "host bits"), ("a b", "client"), ("host(rw", "client"), ("host(rw)(ro)", "client"),
    ("host(frobnicate)", "unknown option"), ("host(rw,ro)", "contradict"), ("host(fsid=1)", "--fsid"),
    ("host(anonuid=x)", "anonuid"), ("host(sec=foo)", "sec"), ("", "empty"), ("#x", "client"),
    # tryout5: "anonuid must be a number, got '99999999999'" (it is one); "unknown option 'mp'" (it is known)
    ("host(anonuid=99999999999)", "from 0 to 4294967295"), ("host(mp=/x)", "mp is taken without a value"),
    ("host\n", "control"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("2001:db8::1/64", "host bits"),   # as for IPv4: not silently taken as 2001:db8::/64
    ("10.1.2.3/255.0.0.0", "host bits"), ("10.0.0.0/255.0.255.0", "netmask"),
    ("10.0.0.0/0.255.255.255", "netmask"),   # a host mask, which Python's ipaddress would take
])
def test_bad_client_specs_name_the_problem(spec, field_word):
    with pytest.raises(ValidationError) as err:
        ClientSpec.parse(spec)
    assert field_word in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("path,expected", [("a/b/", "a/b"), ("/a//b/./c", "a/b/c"), ("", ""), ("/", "")])
def test_relpath_is_canonical(path, expected):
    assert normalize_relpath("directory", path) == expected


@pytest.mark.parametrize("path", ["a/../b", "..", "a\nb", "a\x00b", "x" * 256])
def test_relpath_refuses_escapes_and_control_characters(path):
    with pytest.raises(ValidationError, match="directory"):
        normalize_relpath("directory", path)


@pytest.mark.parametrize("value", ["0", "root", "-1", "4294967296", "abc", "", "0042"])
def test_fsid_refuses_root_and_garbage(value):
    with pytest.raises(ValidationError, match="fsid"):
        normalize_fsid(value)


def test_fsid_accepts_numbers_and_uuids():
    assert normalize_fsid("42") == "42"  # leading zeros are refused: exportfs would read them as octal
    assert normalize_fsid("6F9619FF-8B86-D011-B42D-00CF4FC964FF") == "6f9619ff-8b86-d011-b42d-00cf4fc964ff"


@pytest.mark.parametrize("value", ["/", "rel", "/a/../b", ""])
def test_pseudo_refuses_root_and_relative(value):
    with pytest.raises(ValidationError, match="pseudo"):
        normalize_pseudo(value)


@pytest.mark.parametrize("export_id", [0, 65536, -1, "x", True])
def test_export_id_range(export_id):
    with pytest.raises(ValidationError, match="export_id"):
        make(export_id=export_id)


def test_duplicate_client_in_one_export_is_refused():
    with pytest.raises(ValidationError, match="more than once"):
        make(clients=("127.0.0.1(rw)", "127.0.0.1(ro)"))


def test_access_caps_client_access():
    e = make(access="RO", clients=("127.0.0.1(rw)", "10.0.0.0/8"))
    assert [e.client_access(c) for c in e.clients] == ["RO", "RO"]
    e = make(access="RW", clients=("127.0.0.1(ro)", "10.0.0.0/8(rw)"))
    assert [e.client_access(c) for c in e.clients] == ["RO", "RW"]
    e = make(access="None")
    assert e.client_access(e.clients[0]) == "None"


def test_a_spec_without_rw_or_ro_is_read_only():
    """exports(5): "ro ... This is the default"; --access RW only caps."""
    e = make(access="RW", clients=("127.0.0.1", "10.0.0.0/8(no_root_squash)", "*(rw)"))
    assert [e.client_access(c) for c in e.clients] == ["RO", "RO", "RW"]
    assert [c.access() for c in e.clients] == ["RO", "RO", "RW"]


@given(hosts=st.lists(good_host, min_size=1, max_size=4, unique=True),
       opts=st.lists(st.lists(good_option, max_size=3), min_size=4, max_size=4),
       access=st.sampled_from(["RW", "RO", "None"]), eid=st.integers(1, 65535))
@settings(max_examples=300)
def test_round_trip_through_registry_dict(hosts, opts, access, eid):
    clients = []
    for host, o in zip(hosts, opts):
        try:
            clients.append(ClientSpec(host, tuple(o)))
        except ValidationError:
            continue  # contradicting options (rw+ro) are refused, that is tested elsewhere
    hosts_seen = [c.host for c in clients]
    if not clients or len(set(hosts_seen)) != len(hosts_seen):
        return
    e = make(clients=tuple(clients), access=access, export_id=eid)
    assert Export.from_dict(e.to_dict()) == e


@given(nasty_text)
@settings(max_examples=500)
def test_hostile_client_text_is_rejected_or_safe(text):
    try:
        c = ClientSpec.parse(text)
    except ValidationError as err:
        assert "\n" not in str(err)
        return
    # whatever was accepted contains no character that could end a token or a block
    for bad in '"\'{};=#\n\r\x00 \t,()\\':
        assert bad not in c.host
