"""ganesha_ha.lab.nfs: XDR (RFC 4506) and the NFSv4.0 COMPOUND (RFC 7530/7531) encodings,
pure and fast; the client against a real ganesha.nfsd is test_nfs_client.py."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ganesha_ha.lab.nfs import nfs4
from ganesha_ha.lab.nfs.client import Nfs4Client
from ganesha_ha.lab.nfs.nfs4 import NfsError
from ganesha_ha.lab.nfs.rpc import RpcError
from ganesha_ha.lab.nfs.xdr import Packer, Unpacker, XdrError

items = st.lists(st.one_of(st.tuples(st.just("u32"), st.integers(0, 2 ** 32 - 1)),
                           st.tuples(st.just("u64"), st.integers(0, 2 ** 64 - 1)),
                           st.tuples(st.just("opaque"), st.binary(max_size=40))), max_size=12)


@given(items)
def test_xdr_round_trip_and_padding(values):
    p = Packer()
    for kind, v in values:
        getattr(p, kind)(v)
    data = p.bytes()
    assert len(data) % 4 == 0
    u = Unpacker(data)
    assert [(kind, getattr(u, kind)()) for kind, _ in values] == values
    assert u.done()


@given(st.binary(max_size=40), st.integers(1, 3))
def test_a_short_message_is_an_xdr_error(data, cut):
    p = Packer()
    p.opaque(data)
    with pytest.raises(XdrError):
        Unpacker(p.bytes()[:-cut]).opaque()


def u32s(*vals: int) -> bytes:
    return struct.pack(f">{len(vals)}I", *vals)


def test_compound_args_as_rfc7531_lays_them_out():
    ops = [nfs4.putrootfh(), nfs4.lookup("ab"), nfs4.getfh()]
    assert nfs4.encode_compound(ops) == (
        u32s(0, 0, 3)                              # tag "", minorversion 0, 3 ops
        + u32s(nfs4.OP_PUTROOTFH)
        + u32s(nfs4.OP_LOOKUP, 2) + b"ab\0\0"     # component4, padded
        + u32s(nfs4.OP_GETFH))


def reply(status: int, *results: bytes) -> Unpacker:
    return Unpacker(u32s(status, 0, len(results)) + b"".join(results))


def test_compound_results_decode_in_order():
    ops = [nfs4.putfh(b"\1\2\3"), nfs4.getfh()]
    got = nfs4.decode_compound(reply(0, u32s(nfs4.OP_PUTFH, 0), u32s(nfs4.OP_GETFH, 0, 3) + b"\7\7\7\0"), ops)
    assert got == [None, b"\7\7\7"]


def test_a_failed_op_names_itself_and_its_index():
    ops = [nfs4.putfh(b"x"), nfs4.read(nfs4.ANONYMOUS_STATEID, 0, 10)]
    with pytest.raises(NfsError) as err:
        nfs4.decode_compound(reply(70, u32s(nfs4.OP_PUTFH, 70)), ops)
    assert (err.value.status, err.value.name, err.value.op, err.value.index) == (70, "NFS4ERR_STALE", "PUTFH", 0)
    with pytest.raises(NfsError) as err:
        nfs4.decode_compound(reply(10013, u32s(nfs4.OP_PUTFH, 0), u32s(nfs4.OP_READ, 10013)), ops)
    assert err.value.name == "NFS4ERR_GRACE" and err.value.index == 1


def test_a_reply_for_other_ops_is_refused():
    with pytest.raises(XdrError, match="does not match"):
        nfs4.decode_compound(reply(0, u32s(nfs4.OP_GETFH, 0)), [nfs4.putrootfh()])
    with pytest.raises(NfsError, match="ILLEGAL"):
        nfs4.decode_compound(reply(10044, u32s(nfs4.OP_ILLEGAL, 10044)), [nfs4.putrootfh()])


class _Rpc:
    """The transport's edge: hands the client one canned reply."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sent: list[bytes] = []

    def call(self, proc: int, args: bytes) -> Unpacker:
        self.sent.append(args)
        return Unpacker(self.data)


def test_the_client_turns_a_garbled_reply_into_an_rpc_error():
    c = Nfs4Client("127.0.0.1", 1)
    c.rpc = _Rpc(u32s(0, 0, 2, nfs4.OP_PUTROOTFH, 0, nfs4.OP_GETFH, 0, 8) + b"\1\2")  # handle cut short
    with pytest.raises(RpcError, match="short XDR reply"):
        c.lookup("/")
    c.rpc = _Rpc(u32s(0, 0, 2, nfs4.OP_PUTROOTFH, 0, nfs4.OP_GETFH, 0, 2) + b"\5\6\0\0")
    assert c.lookup("/") == b"\5\6"
