"""ganesha_ha.lab.nfs: XDR (RFC 4506) and the NFSv4.0 COMPOUND (RFC 7530/7531) encodings,
pure and fast; the client against a real ganesha.nfsd is test_nfs_client.py."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ganesha_ha.lab.nfs import nfs4, nfs41
from ganesha_ha.lab.nfs.client import Nfs4Client
from ganesha_ha.lab.nfs.nfs3 import Fattr3
from ganesha_ha.lab.nfs.nlm4 import Nlm4Holder, Nlm4Lock, StatChge
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


# ---- NFSv4.1 (nfs41.py) ---------------------------------------------------------------------

u32 = st.integers(0, 2 ** 32 - 1)
u64 = st.integers(0, 2 ** 64 - 1)
i32 = st.integers(-2 ** 31, 2 ** 31 - 1)
pair = st.tuples(u32, u32)
text = st.text(max_size=20)
impl_ids = st.builds(nfs41.ImplId, text, text, st.integers(-2 ** 63, 2 ** 63 - 1), u32)
owners = st.builds(nfs41.ServerOwner, u64, st.binary(max_size=64))
channels = st.builds(nfs41.ChannelAttrs, u32, u32, u32, u32, u32, u32,
                     st.lists(u32, max_size=1).map(tuple))
sessionids = st.binary(min_size=16, max_size=16)
STRUCTS = {
    nfs41.ServerOwner: owners,
    nfs41.ImplId: impl_ids,
    nfs41.ExchangeIdResult: st.builds(nfs41.ExchangeIdResult, u64, u32, u32, owners,
                                      st.binary(max_size=64), st.lists(impl_ids, max_size=1).map(tuple)),
    nfs41.ChannelAttrs: channels,
    nfs41.SessionResult: st.builds(nfs41.SessionResult, sessionids, u32, u32, channels, channels),
    nfs41.SequenceResult: st.builds(nfs41.SequenceResult, sessionids, u32, u32, u32, u32, u32),
    Fattr3: st.builds(Fattr3, u32, u32, u32, u32, u32, u64, u64, pair, u64, u64, pair, pair, pair),
    Nlm4Lock: st.builds(Nlm4Lock, text, st.binary(max_size=64), st.binary(max_size=40), i32, u64, u64),
    Nlm4Holder: st.builds(Nlm4Holder, st.booleans(), i32, st.binary(max_size=40), u64, u64),
    StatChge: st.builds(StatChge, text, i32),
}


@pytest.mark.parametrize("cls", list(STRUCTS), ids=lambda c: c.__name__)
@given(data=st.data())
def test_structures_round_trip(cls, data):
    """Every structure of lab/nfs (NFSv4.1, NFSv3, NLM4, NSM) decodes to what was encoded."""
    value = data.draw(STRUCTS[cls])
    p = Packer()
    value.pack(p)
    encoded = p.bytes()
    u = Unpacker(encoded)
    assert cls.unpack(u) == value and u.done()
    assert len(encoded) % 4 == 0


def test_exchange_id_args_as_rfc8881_lays_them_out():
    op = nfs41.exchange_id(b"verifier", b"gha-c1", flags=nfs41.EXCHGID4_FLAG_USE_NON_PNFS)
    assert op.code == nfs4.OP_EXCHANGE_ID == 42
    assert op.args == (b"verifier" + u32s(6) + b"gha-c1\0\0"   # client_owner4
                       + u32s(0x10000, nfs41.SP4_NONE, 0))      # flags, state protection, no impl id
    with pytest.raises(ValueError):
        nfs41.exchange_id(b"short", b"x")


def test_sequence_and_create_session_args():
    sid = bytes(range(16))
    assert nfs41.sequence(sid, 7).args == sid + u32s(7, 0, 0, 0)
    cs = nfs41.create_session(5, 1).args
    assert cs[:16] == struct.pack(">QII", 5, 1, 0)
    assert cs[16:16 + 28] == u32s(0, 1 << 20, 1 << 20, 8192, 32, 1, 0)   # fore channel: one slot
    assert cs[-12:] == u32s(0x40000000, 1, 0)                              # cb program, AUTH_NONE


def test_an_opaque_longer_than_its_bound_is_refused():
    p = Packer()
    nfs41.ServerOwner(0, b"x" * 1025).pack(p)
    with pytest.raises(XdrError, match="at most 1024"):
        nfs41.ServerOwner.unpack(Unpacker(p.bytes()))
    p = Packer()
    StatChge("h" * 1025, 1).pack(p)
    with pytest.raises(XdrError):
        StatChge.unpack(Unpacker(p.bytes()))


def test_slot_moves_on_only_for_processed_requests():
    s = nfs41.Slot()
    assert s.seqid == 1
    s.processed()
    assert (s.seqid, s.uncertain) == (2, False)
    assert not s.misordered()                 # a misordered reply with no lost request: a bug
    assert s.seqid == 2
    s.lost()
    assert (s.seqid, s.uncertain) == (3, True)
    assert s.misordered() and (s.seqid, s.uncertain) == (2, False)
    s.seqid = 2 ** 32 - 1
    s.processed()
    assert s.seqid == 0                       # sequenceid4 wraps


SID = bytes(range(16))


def seq_ok(seqid: int) -> bytes:
    p = Packer()
    nfs41.SequenceResult(SID, seqid, 0, 0, 0, 0).pack(p)
    return u32s(nfs4.OP_SEQUENCE, 0) + p.bytes()


class _ScriptedRpc:
    """The transport's edge for a 4.1 client: each call takes the next scripted reply (bytes)
    or raises it (an exception); the seqid each call's SEQUENCE carried is kept."""

    def __init__(self, *script) -> None:
        self.script = list(script)
        self.seqids: list[int] = []

    def call(self, proc: int, args: bytes) -> Unpacker:
        if struct.unpack_from(">I", args, 12)[0] == nfs4.OP_SEQUENCE:
            self.seqids.append(struct.unpack_from(">I", args, 16 + 16)[0])
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return Unpacker(step)


def client41(*script) -> tuple[Nfs4Client, _ScriptedRpc]:
    c = Nfs4Client("127.0.0.1", 1, minorversion=1)
    c.rpc = _ScriptedRpc(*script)
    c.session = nfs41.Session(SID, nfs41.ChannelAttrs())
    c.clientid = 9
    return c, c.rpc


def test_sequence_results_are_stripped_and_failures_renumbered():
    putfh_ok = u32s(nfs4.OP_PUTFH, 0)
    c, rpc = client41(u32s(0, 0, 3) + seq_ok(1) + putfh_ok + u32s(nfs4.OP_GETFH, 0, 2) + b"\5\6\0\0",
                      u32s(70, 0, 2) + seq_ok(2) + u32s(nfs4.OP_PUTFH, 70))
    assert c._compound([nfs4.putfh(b"x"), nfs4.getfh()]) == [None, b"\5\6"]
    with pytest.raises(NfsError) as err:
        c._compound([nfs4.putfh(b"x"), nfs4.getfh()])
    assert (err.value.name, err.value.index) == ("NFS4ERR_STALE", 0)   # the caller's op 0
    assert rpc.seqids == [1, 2] and c.session.slot.seqid == 3           # both were processed


def test_a_refused_sequence_keeps_the_slot_and_is_index_minus_one():
    c, rpc = client41(u32s(10008, 0, 1, nfs4.OP_SEQUENCE, 10008))       # NFS4ERR_DELAY
    with pytest.raises(NfsError) as err:
        c.renew()
    assert (err.value.name, err.value.op, err.value.index) == ("NFS4ERR_DELAY", "SEQUENCE", -1)
    assert c.session.slot.seqid == 1


def test_a_lost_reply_then_misordered_resends_with_the_old_seqid():
    c, rpc = client41(ConnectionResetError("gone"),
                      u32s(10063, 0, 1, nfs4.OP_SEQUENCE, 10063),      # SEQ_MISORDERED
                      u32s(0, 0, 1) + seq_ok(1))
    with pytest.raises(OSError):
        c.renew()
    c.renew()
    assert rpc.seqids == [1, 2, 1] and c.session.slot.seqid == 2 and not c.session.slot.uncertain


def lost_session_script(then: bytes) -> list[bytes]:
    """BADSESSION at SEQUENCE, the goodbye to the old session refused, a new client id and
    session granted, then `then` for the resent compound."""
    eid, cs = Packer(), Packer()
    nfs41.ExchangeIdResult(77, 1, 0, nfs41.ServerOwner(0, b"b"), b"s\0").pack(eid)
    nfs41.SessionResult(b"N" * 16, 1, 0, nfs41.ChannelAttrs(), nfs41.ChannelAttrs()).pack(cs)
    return [u32s(10052, 0, 1, nfs4.OP_SEQUENCE, 10052),
            u32s(10052, 0, 1, nfs4.OP_DESTROY_SESSION, 10052),
            u32s(0, 0, 1, nfs4.OP_EXCHANGE_ID, 0) + eid.bytes(),
            u32s(0, 0, 1, nfs4.OP_CREATE_SESSION, 0) + cs.bytes(),
            then]


def test_a_lost_session_is_re_established_once_per_call():
    c, rpc = client41(*lost_session_script(u32s(0, 0, 1) + seq_ok(1)))
    c.renew()
    assert (c.clientid, c.session.sessionid, c.server.server_scope) == (77, b"N" * 16, b"s\0")
    assert c.recoveries == ["NFS4ERR_BADSESSION at SEQUENCE: new client id and session"]
    assert not c.reclaim_completed and rpc.script == []
    rpc.script = lost_session_script(u32s(10052, 0, 1, nfs4.OP_SEQUENCE, 10052))
    with pytest.raises(NfsError) as err:
        c.renew()
    assert err.value.name == "NFS4ERR_BADSESSION" and rpc.script == []
