"""ganesha_ha.lab.nfs: the NFSv3/MOUNT3/PMAP (nfs3.py), NLM4/NSM (nlm4.py) and ONC RPC
call/reply (rpc.py) encodings and the NSM listener's answers (nsm.py); pure and fast (the
round trips of their structures are with the others in test_nfs_protocol.py). The clients
against a real Ganesha with NLM are in test_nfs3_client.py."""
from __future__ import annotations

import os
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ganesha_ha.lab.nfs import nfs3, nlm4, rpc
from ganesha_ha.lab.nfs.nfs3 import Fattr3, Nfs3Error
from ganesha_ha.lab.nfs.nlm4 import Nlm4Holder, Nlm4Lock, StatChge
from ganesha_ha.lab.nfs.nsm import Notification, NsmListener, answer_pmap, answer_sm
from ganesha_ha.lab.nfs.xdr import Packer, Unpacker, XdrError

u32 = st.integers(0, 2 ** 32 - 1)


@given(u32, u32, u32, u32, st.one_of(st.none(), st.binary(max_size=40)), st.binary(max_size=64))
def test_rpc_call_round_trip(xid, prog, vers, proc, cred, args):
    args = args + b"\0" * (-len(args) % 4)
    call = rpc.decode_call(rpc.encode_call(xid, prog, vers, proc, cred, args))
    assert (call.xid, call.prog, call.vers, call.proc) == (xid, prog, vers, proc)
    assert call.cred_flavor == (rpc.AUTH_NONE if cred is None else rpc.AUTH_SYS)
    assert call.args.fixed(len(args)) == args and call.args.done()


@given(u32, st.binary(max_size=64))
def test_rpc_reply_round_trip(xid, body):
    body = body + b"\0" * (-len(body) % 4)   # results are XDR: whole 4-byte units
    u = Unpacker(rpc.encode_reply(xid, body))
    assert u.u32() == xid
    rpc.decode_reply(u)
    assert u.fixed(len(body)) == body


@pytest.mark.parametrize("stat", [rpc.PROG_UNAVAIL, rpc.PROG_MISMATCH, rpc.PROC_UNAVAIL, rpc.GARBAGE_ARGS])
def test_a_refused_call_is_an_rpc_error(stat):
    u = Unpacker(rpc.encode_reply(7, accept_stat=stat, versions=(2, 2)))
    u.u32()
    with pytest.raises(rpc.RpcError, match=f"accept_stat {stat}"):
        rpc.decode_reply(u)


def test_a_reply_is_not_a_call():
    with pytest.raises(XdrError):
        rpc.decode_call(rpc.encode_reply(1))


def u32s(*vals: int) -> bytes:
    return struct.pack(f">{len(vals)}I", *vals)


def test_nlm_lock_args_as_xnfs_lays_them_out():
    lock = Nlm4Lock("c1", b"\1\2\3", b"9@c1", 9, 10, 20)
    assert nlm4.lock_args(b"ck", lock, reclaim=True, state=3) == (
        u32s(2) + b"ck\0\0"          # cookie
        + u32s(0, 1)                 # block = false, exclusive = true
        + u32s(2) + b"c1\0\0" + u32s(3) + b"\1\2\3\0" + u32s(4) + b"9@c1"
        + u32s(9) + struct.pack(">QQ", 10, 20)
        + u32s(1, 3))                # reclaim = true, the client's NSM state


def test_nlm_test_result_names_the_holder_only_when_denied():
    holder = Packer()
    Nlm4Holder(True, 5, b"oh", 0, 0).pack(holder)
    assert nlm4.decode_testres(Unpacker(u32s(0, nlm4.NLM4_DENIED) + holder.bytes()))[2].svid == 5
    assert nlm4.decode_testres(Unpacker(u32s(0, nlm4.NLM4_GRANTED))) == (b"", 0, None)
    assert nlm4.stat_name(4) == "NLM4_DENIED_GRACE_PERIOD" and nlm4.stat_name(77) == "NLM4_77"


def attrs(size: int = 5) -> bytes:
    p = Packer()
    Fattr3(1, 0o644, 1, 0, 0, size, 4096, (0, 0), 1, 2, (0, 0), (0, 0), (0, 0)).pack(p)
    return p.bytes()


def test_nfs3_results_decode_and_failures_read_their_arm():
    fh = b"H" * 8
    u = Unpacker(u32s(0, 8) + fh + u32s(1) + attrs() + u32s(0))
    assert nfs3.decode_lookup(u) == (fh, Fattr3.unpack(Unpacker(attrs()))) and u.done()
    u = Unpacker(u32s(2, 1) + attrs())                   # NOENT with the directory's attributes
    with pytest.raises(Nfs3Error) as ei:
        nfs3.decode_lookup(u)
    assert (ei.value.name, ei.value.proc) == ("NFS3ERR_NOENT", "LOOKUP") and u.done()
    u = Unpacker(u32s(0, 0, 3, 1, 3) + b"abc\0")         # READ: no attrs, count, eof, data
    assert nfs3.decode_read(u) == (True, b"abc") and u.done()
    u = Unpacker(u32s(0, 0, 0, 4, 2) + b"verifier")      # WRITE: empty wcc, count, FILE_SYNC
    assert nfs3.decode_write(u) == (4, nfs3.FILE_SYNC) and u.done()
    with pytest.raises(Nfs3Error) as ei:
        nfs3.decode_mnt(Unpacker(u32s(13)))
    assert ei.value.name == "MNT3ERR_ACCES"
    assert nfs3.decode_mnt(Unpacker(u32s(0, 2) + b"ab\0\0" + u32s(1, 1))) == (b"ab", [1])
    with pytest.raises(XdrError):
        nfs3.decode_mnt(Unpacker(u32s(0, 65) + b"x" * 68 + u32s(0)))   # larger than FHSIZE3


def test_create_args_set_only_the_mode():
    args = nfs3.create_args(b"D", "f", 0o600)
    assert args == u32s(1) + b"D\0\0\0" + u32s(1) + b"f\0\0\0" + u32s(0, 1, 0o600, 0, 0, 0, 0, 0)


def call(prog: int, vers: int, proc: int, args: bytes = b"", xid: int = 42) -> bytes:
    return rpc.encode_call(xid, prog, vers, proc, None, args)


def reply_of(data: bytes) -> Unpacker:
    u = Unpacker(data)
    assert u.u32() == 42
    rpc.decode_reply(u)
    return u


def test_the_listener_answers_getport_for_its_sm_service_only():
    sm = nfs3.getport_args(nlm4.SM_PROGRAM, nlm4.SM_V1, nfs3.IPPROTO_UDP)
    assert reply_of(answer_pmap(call(100000, 2, 3, sm), 4711)).u32() == 4711
    tcp = nfs3.getport_args(nlm4.SM_PROGRAM, nlm4.SM_V1, nfs3.IPPROTO_TCP)
    assert reply_of(answer_pmap(call(100000, 2, 3, tcp), 4711)).u32() == 0
    assert reply_of(answer_pmap(call(100000, 2, 0), 4711)).done()          # NULL
    with pytest.raises(rpc.RpcError, match="accept_stat 2"):
        reply_of(answer_pmap(call(100000, 4, 3, sm), 4711))                 # rpcbind v4
    with pytest.raises(rpc.RpcError, match="accept_stat 3"):
        reply_of(answer_pmap(call(100000, 2, 1, sm), 4711))                 # SET: not here
    assert answer_pmap(b"junk", 1) is None


def test_the_listener_decodes_sm_notify_and_nothing_else():
    note = Packer()
    StatChge("gha-fip.lab", 5).pack(note)
    reply, stat = answer_sm(call(nlm4.SM_PROGRAM, 1, nlm4.SM_NOTIFY, note.bytes()))
    assert stat == StatChge("gha-fip.lab", 5) and reply_of(reply).done()
    reply, stat = answer_sm(call(nlm4.SM_PROGRAM, 1, 2, note.bytes()))      # SM_MON: not a client's
    assert stat is None
    with pytest.raises(rpc.RpcError, match="accept_stat 3"):
        reply_of(reply)
    assert answer_sm(call(nlm4.SM_PROGRAM, 1, nlm4.SM_NOTIFY, b"\0\0\0\xff")) == (None, None)


def test_one_reboot_is_handled_once_whatever_names_it_comes_under():
    seen = []
    lis = NsmListener("127.0.0.1", on_notify=seen.append)
    a = Notification(1.0, "10.0.0.100", "gha-fip.lab", 5)
    lis._notified(a)
    lis._notified(Notification(1.1, "10.0.0.100", "gha-fip", 5))           # sm-notify's repeat
    lis._notified(Notification(9.0, "10.0.0.100", "gha-fip.lab", 7))       # the next reboot
    assert [n.state for n in seen] == [5, 7] and len(lis.notifications) == 3 and lis.handled == 2

    def boom(note):
        raise RuntimeError("server gone")
    lis.on_notify = boom
    lis._notified(Notification(10.0, "10.0.0.101", "x", 3))
    assert lis.errors == ["RuntimeError: server gone"] and lis.wait(3, timeout=0)


@pytest.mark.skipif(os.geteuid() != 0, reason="binding a port below 1024 needs root")
def test_a_reserved_port_connection_comes_from_below_1024():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(2)
        conns = [rpc.RpcConnection("127.0.0.1", server.getsockname()[1], 1, 1, cred=b"",
                                   reserved_port=True) for _ in range(2)]
        ports = []
        for c in conns:
            c.connect()
            peer, addr = server.accept()
            ports.append(addr[1])
            peer.close()
        for c in conns:
            c.close()
    assert all(p < 1024 for p in ports) and ports[0] != ports[1]   # the second skips the taken one
