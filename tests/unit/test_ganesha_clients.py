"""Client specs Ganesha 4.3 cannot read as written: refused by check_export, with a spelling
that works (pure; tests/server/test_ganesha_grants.py checks each rule against ganesha.nfsd)."""
import ipaddress
import re

import pytest
from hypothesis import given, strategies as st

from ganesha_ha.access import HOST, NETWORK, WILDCARD, client_class
from ganesha_ha.backends.ganesha_clients import check_client
from ganesha_ha.backends.ganesha_conf import check_renderable
from ganesha_ha.backends.knfsd import KnfsdBackend
from ganesha_ha.errors import ValidationError
from ganesha_ha.clientspec import ClientSpec
from ganesha_ha.model import Export, KnfsdOptions

from client_specs import ACCEPTED, REFUSED
from strategies import good_host

def export(*clients):
    return Export(path="d", export_id=5, knfsd=KnfsdOptions("5"), pseudo="/d", clients=clients)


@pytest.mark.parametrize("spec", sorted(REFUSED))
def test_refused_with_reason_and_a_spelling_that_works(spec):
    words, instead = REFUSED[spec]
    host = ClientSpec.parse(spec).host  # the model accepts it (exportfs does)
    with pytest.raises(ValidationError) as err:
        check_client(host)
    message = str(err.value)
    assert message.startswith("client: ") and "Ganesha" in message and words in message
    assert "\n" not in message
    for alternative in instead:
        assert alternative in message
        check_client(ClientSpec.parse(alternative).host)  # what we offer, Ganesha reads
    # refused for Ganesha before anything is written; knfsd keeps what exportfs accepts
    with pytest.raises(ValidationError):
        check_renderable(export(spec), "/mnt/v")
    KnfsdBackend.check_export(None, export(spec), "/mnt/v")


@pytest.mark.parametrize("spec", ACCEPTED)
def test_accepted(spec):
    check_client(ClientSpec.parse(spec).host)


@pytest.mark.parametrize("spec,words", [("010.0.0.1", "octal"), ("10.0.0.010", "octal"),
                                        ("fe80::1%eth0", "zone"), ("[::1]", "brackets")])
def test_the_model_refuses_for_both_servers(spec, words):
    with pytest.raises(ValidationError, match=words):
        ClientSpec.parse(spec)


@given(st.one_of(good_host, st.from_regex(r"[0-9][a-z0-9-]{0,8}\.[a-z]{2,4}", fullmatch=True),
                 st.sampled_from(["yes", "no", "true", "false", "on", "off", "?x", "?ode.example"]),
                 st.tuples(st.ip_addresses(v=6), st.integers(0, 128)).map(lambda t: f"{t[0]}/{t[1]}")))
def test_every_refusal_names_ganesha_and_every_accepted_spec_lexes(spec):
    """The rule as a whole: what check_client lets through matches the lexer's regular
    expressions for its class (the regexes of docs/research/ganesha-facts.md section A)."""
    try:
        host = ClientSpec.parse(spec).host
    except ValidationError:
        return
    try:
        check_client(host)
    except ValidationError as exc:
        assert "NFS-Ganesha 4.3" in str(exc)
        return
    token = re.compile(r"[A-Za-z_?][A-Za-z0-9._-]*")
    wc, wp = r"[A-Za-z0-9._-]", r"(?:\[!?[A-Za-z0-9._-]+\]|\*|\?)"
    kind = client_class(host)
    if kind == NETWORK:
        assert 1 <= int(host.rpartition("/")[2]) <= 99
    elif kind == WILDCARD:
        assert re.fullmatch(rf"(?:{wc}*{wp})+{wc}*", host) and not token.fullmatch(host) and len(host) <= 64
    elif kind == HOST:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            assert token.fullmatch(host) and host.lower() not in ("yes", "no", "true", "false", "on", "off")
