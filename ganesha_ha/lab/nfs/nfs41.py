"""NFSv4.1 sessions (RFC 8881): the operations a 4.1 client needs beside those of 4.0, their
result structures, and the one-slot sequencing rule. Pure: no sockets.

Each structure is a frozen dataclass with a `pack(p)` method and an `unpack(u)` class method
that are each other's inverse (as rpcgen's xdr_* routines are), so a property test can
check them both ways; the client only ever sends arguments and reads results, and the live
tests against Ganesha check the wire format itself.

What the lab needs from 4.1, and where RFC 8881 says it:
* EXCHANGE_ID (18.35) gives the client id *and* the server's identity: `server_owner`
  (2.10.5: major id = "same server" for trunking) and `server_scope` (2.10.4: state can be
  reclaimed on another server only if both present the same scope). They are kept as the
  raw bytes received: Ganesha 4.3 sends the scope with a trailing NUL
  (src/Protocols/NFS/nfs4_op_exchange_id.c) and a checker must see exactly that.
* CREATE_SESSION (18.36) confirms the client id and opens a session; every later compound
  starts with SEQUENCE (18.46) naming the session, a slot and that slot's sequence id.
* RECLAIM_COMPLETE (18.51) says "I have reclaimed all I will": until a client sends it,
  Ganesha refuses its CLAIM_NULL opens with NFS4ERR_GRACE (nfs4_op_open.c
  open4_validate_claim), and grace ends early only when every client with a record sent it
  (src/SAL/nfs4_recovery.c nfs_try_lift_grace).
* DESTROY_SESSION (18.37) and DESTROY_CLIENTID (18.50): a clean goodbye, which also removes
  the client's recovery record.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .nfs4 import (OP_CREATE_SESSION, OP_DESTROY_CLIENTID, OP_DESTROY_SESSION, OP_EXCHANGE_ID,
                   OP_RECLAIM_COMPLETE, OP_SEQUENCE, Op)
from .xdr import Packer, Unpacker, XdrError, pack

SESSIONID_SIZE = 16          # sessionid4: opaque[NFS4_SESSIONID_SIZE]
OPAQUE_LIMIT = 1024          # NFS4_OPAQUE_LIMIT: so_major_id, server scope
SP4_NONE = 0                 # state_protect_how4 (18.35.1): no SP4_MACH_CRED / SP4_SSV
SP4_MACH_CRED = 1

# eia_flags / eir_flags (18.35.1)
EXCHGID4_FLAG_SUPP_MOVED_REFER = 0x00000001
EXCHGID4_FLAG_USE_NON_PNFS = 0x00010000
EXCHGID4_FLAG_UPD_CONFIRMED_REC_A = 0x40000000
EXCHGID4_FLAG_CONFIRMED_R = 0x80000000
# sr_status_flags (18.46.3): Ganesha sets CB_PATH_DOWN when no back channel exists, which
# is always the case here (no callbacks, so no delegations).
SEQ4_STATUS_CB_PATH_DOWN = 0x00000001
SEQ4_STATUS_RESTART_RECLAIM_NEEDED = 0x00000100


@dataclass(frozen=True)
class ServerOwner:
    """server_owner4 (2.10.5): `major_id` names the server (trunking), `minor_id` its instance."""

    minor_id: int
    major_id: bytes

    def pack(self, p: Packer) -> None:
        p.u64(self.minor_id)
        p.opaque(self.major_id)

    @classmethod
    def unpack(cls, u: Unpacker) -> "ServerOwner":
        return cls(u.u64(), u.opaque(OPAQUE_LIMIT))


@dataclass(frozen=True)
class ImplId:
    """nfs_impl_id4 (18.35.1): who wrote the peer's software, and when (nfstime4)."""

    domain: str
    name: str
    date_seconds: int = 0
    date_nseconds: int = 0

    def pack(self, p: Packer) -> None:
        p.string(self.domain)
        p.string(self.name)
        p.i64(self.date_seconds)
        p.u32(self.date_nseconds)

    @classmethod
    def unpack(cls, u: Unpacker) -> "ImplId":
        return cls(u.string(), u.string(), u.i64(), u.u32())


def _pack_impl(p: Packer, impl: tuple[ImplId, ...]) -> None:
    if len(impl) > 1:
        raise ValueError("nfs_impl_id4<1>: at most one entry")
    p.u32(len(impl))
    for i in impl:
        i.pack(p)


def _unpack_impl(u: Unpacker) -> tuple[ImplId, ...]:
    n = u.u32()
    if n > 1:
        raise XdrError(f"nfs_impl_id4<1> with {n} entries")
    return tuple(ImplId.unpack(u) for _ in range(n))


@dataclass(frozen=True)
class ExchangeIdResult:
    """EXCHANGE_ID4resok (18.35.2), the state protection only SP4_NONE (what we ask for).

    `sequenceid` is the csa_sequence the next CREATE_SESSION must carry; `flags` with
    EXCHGID4_FLAG_CONFIRMED_R set means the server still had this client confirmed (same
    owner and verifier): its state, and whether it sent RECLAIM_COMPLETE, live on.
    """

    clientid: int
    sequenceid: int
    flags: int
    server_owner: ServerOwner
    server_scope: bytes
    server_impl: tuple[ImplId, ...] = ()

    @property
    def confirmed(self) -> bool:
        return bool(self.flags & EXCHGID4_FLAG_CONFIRMED_R)

    def pack(self, p: Packer) -> None:
        p.u64(self.clientid)
        p.u32(self.sequenceid)
        p.u32(self.flags)
        p.u32(SP4_NONE)
        self.server_owner.pack(p)
        p.opaque(self.server_scope)
        _pack_impl(p, self.server_impl)

    @classmethod
    def unpack(cls, u: Unpacker) -> "ExchangeIdResult":
        clientid, seq, flags = u.u64(), u.u32(), u.u32()
        how = u.u32()
        if how == SP4_MACH_CRED:  # never asked for; decoded to stay in step
            u.bitmap()
            u.bitmap()
        elif how != SP4_NONE:
            raise XdrError(f"EXCHANGE_ID: state protection {how} not supported")
        owner = ServerOwner.unpack(u)
        scope = u.opaque(OPAQUE_LIMIT)
        return cls(clientid, seq, flags, owner, scope, _unpack_impl(u))


@dataclass(frozen=True)
class ChannelAttrs:
    """channel_attrs4 (18.36.1). The defaults ask for one slot (`maxrequests` 1): the client
    sends one request at a time, so one slot is all it can use."""

    headerpadsize: int = 0
    maxrequestsize: int = 1 << 20
    maxresponsesize: int = 1 << 20
    maxresponsesize_cached: int = 8192
    maxoperations: int = 32
    maxrequests: int = 1
    rdma_ird: tuple[int, ...] = ()

    def pack(self, p: Packer) -> None:
        for v in (self.headerpadsize, self.maxrequestsize, self.maxresponsesize,
                  self.maxresponsesize_cached, self.maxoperations, self.maxrequests):
            p.u32(v)
        if len(self.rdma_ird) > 1:
            raise ValueError("ca_rdma_ird<1>: at most one entry")
        p.u32(len(self.rdma_ird))
        for v in self.rdma_ird:
            p.u32(v)

    @classmethod
    def unpack(cls, u: Unpacker) -> "ChannelAttrs":
        vals = [u.u32() for _ in range(6)]
        n = u.u32()
        if n > 1:
            raise XdrError(f"ca_rdma_ird<1> with {n} entries")
        return cls(*vals, rdma_ird=tuple(u.u32() for _ in range(n)))


BACK_CHANNEL = ChannelAttrs(maxrequestsize=4096, maxresponsesize=4096, maxresponsesize_cached=0,
                            maxoperations=2, maxrequests=1)
"""What we offer for the back channel: minimal, since the client runs no callback service
(CREATE_SESSION4_FLAG_CONN_BACK_CHAN is not asked for)."""


@dataclass(frozen=True)
class SessionResult:
    """CREATE_SESSION4resok (18.36.2): the session id and the channels the server granted."""

    sessionid: bytes
    sequence: int
    flags: int
    fore: ChannelAttrs
    back: ChannelAttrs

    def pack(self, p: Packer) -> None:
        p.fixed(self.sessionid)
        p.u32(self.sequence)
        p.u32(self.flags)
        self.fore.pack(p)
        self.back.pack(p)

    @classmethod
    def unpack(cls, u: Unpacker) -> "SessionResult":
        return cls(u.fixed(SESSIONID_SIZE), u.u32(), u.u32(), ChannelAttrs.unpack(u),
                   ChannelAttrs.unpack(u))


@dataclass(frozen=True)
class SequenceResult:
    """SEQUENCE4resok (18.46.2)."""

    sessionid: bytes
    sequenceid: int
    slotid: int
    highest_slotid: int
    target_highest_slotid: int
    status_flags: int

    def pack(self, p: Packer) -> None:
        p.fixed(self.sessionid)
        for v in (self.sequenceid, self.slotid, self.highest_slotid, self.target_highest_slotid,
                  self.status_flags):
            p.u32(v)

    @classmethod
    def unpack(cls, u: Unpacker) -> "SequenceResult":
        return cls(u.fixed(SESSIONID_SIZE), u.u32(), u.u32(), u.u32(), u.u32(), u.u32())


# ---- the operations ----------------------------------------------------------------------

def exchange_id(verifier: bytes, ownerid: bytes, flags: int = 0) -> Op:
    """EXCHANGE_ID4args (18.35.1): client_owner4 {verifier, ownerid}, flags, SP4_NONE, no
    implementation id. Ganesha recovery records key on the ownerid and the client's address
    (`<addr>-(<len>:<ownerid>)`, src/SAL/recovery/recovery_fs.c fs_create_clid_name)."""
    if len(verifier) != 8:
        raise ValueError("verifier4 is 8 bytes")
    return Op(OP_EXCHANGE_ID, pack(lambda p: (p.fixed(verifier), p.opaque(ownerid), p.u32(flags),
                                              p.u32(SP4_NONE), p.u32(0))),
              ExchangeIdResult.unpack)


def create_session(clientid: int, sequence: int, *, fore: ChannelAttrs = ChannelAttrs(),
                   back: ChannelAttrs = BACK_CHANNEL, flags: int = 0,
                   cb_program: int = 0x40000000) -> Op:
    """CREATE_SESSION4args (18.36.1); `sequence` is eir_sequenceid from EXCHANGE_ID (and one
    more for every further session on the same client id). Callback security: AUTH_NONE."""
    def args(p: Packer) -> None:
        p.u64(clientid)
        p.u32(sequence)
        p.u32(flags)
        fore.pack(p)
        back.pack(p)
        p.u32(cb_program)
        p.u32(1)   # csa_sec_parms<>: one entry,
        p.u32(0)   # AUTH_NONE (void)
    return Op(OP_CREATE_SESSION, pack(args), SessionResult.unpack)


def sequence(sessionid: bytes, seqid: int, slotid: int = 0, highest_slotid: int = 0,
             cachethis: bool = False, decode=SequenceResult.unpack) -> Op:
    """SEQUENCE4args (18.46.1): the first operation of every compound on a session."""
    return Op(OP_SEQUENCE, pack(lambda p: (p.fixed(sessionid), p.u32(seqid), p.u32(slotid),
                                           p.u32(highest_slotid), p.boolean(cachethis))), decode)


def reclaim_complete(one_fs: bool = False) -> Op:
    """RECLAIM_COMPLETE4args (18.51.1). `one_fs` false: done with the whole server (Ganesha
    counts only that one towards ending grace early)."""
    return Op(OP_RECLAIM_COMPLETE, pack(lambda p: p.boolean(one_fs)))


def destroy_session(sessionid: bytes) -> Op:
    return Op(OP_DESTROY_SESSION, pack(lambda p: p.fixed(sessionid)))


def destroy_clientid(clientid: int) -> Op:
    return Op(OP_DESTROY_CLIENTID, pack(lambda p: p.u64(clientid)))


# ---- the slot ----------------------------------------------------------------------------

@dataclass
class Slot:
    """The fore channel's slot 0 and its sequence id (RFC 8881 2.10.6.1).

    A new session's slot holds sequence id 0, so the first request carries 1; the id moves
    on by one for each request the server *processed* (its SEQUENCE succeeded), whatever
    the later operations answered, and stays when SEQUENCE itself failed. When no reply came
    at all, nobody knows: `lost()` assumes the server saw the request and moves on, marking
    the slot `uncertain`; if the server then answers NFS4ERR_SEQ_MISORDERED it never saw
    it, and `misordered()` steps back once. (Sending the same id again instead would make
    the server replay the lost reply, or answer NFS4ERR_RETRY_UNCACHED_REP, for a request
    that is not the same one.)
    """

    seqid: int = 1
    uncertain: bool = False

    def processed(self) -> None:
        self.seqid = (self.seqid + 1) & 0xFFFFFFFF
        self.uncertain = False

    def lost(self) -> None:
        self.seqid = (self.seqid + 1) & 0xFFFFFFFF
        self.uncertain = True

    def misordered(self) -> bool:
        """NFS4ERR_SEQ_MISORDERED came back: step back if that explains it. True if the
        request may be sent again."""
        if not self.uncertain:
            return False
        self.seqid = (self.seqid - 1) & 0xFFFFFFFF
        self.uncertain = False
        return True


@dataclass
class Session:
    """An established session: its id, what the server granted, and slot 0."""

    sessionid: bytes
    fore: ChannelAttrs
    slot: Slot = field(default_factory=Slot)
    last: SequenceResult | None = None   # the last SEQUENCE result (status flags)
