"""NFSv4 COMPOUND (RFC 7530, XDR in RFC 7531): operation numbers, status codes, and the
encoding of a compound and of the few operations the lab's client uses. Pure: no sockets.

A compound is a list of `Op` (number, encoded arguments, result decoder); `encode_compound`
writes COMPOUND4args, `decode_compound` reads COMPOUND4res and raises `NfsError` naming the
first operation that failed and its index (the open-owner seqid rules need it). The
operations are those of minor version 0; NFSv4.1's own (RFC 8881: EXCHANGE_ID, sessions,
SEQUENCE, RECLAIM_COMPLETE) are encoded in nfs41.py, but their numbers and status codes
live here with the rest, so one table names every operation and status a server may return.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .xdr import Unpacker, XdrError, pack

NFS_PROGRAM = 100003
NFS_V4 = 4
NFSPROC4_COMPOUND = 1

# NFSv4.0 operation numbers (RFC 7531).
OP_CLOSE = 4
OP_GETATTR = 9
OP_GETFH = 10
OP_LOOKUP = 15
OP_OPEN = 18
OP_OPEN_CONFIRM = 20
OP_PUTFH = 22
OP_PUTROOTFH = 24
OP_READ = 25
OP_RENEW = 30
OP_SETCLIENTID = 35
OP_SETCLIENTID_CONFIRM = 36
OP_WRITE = 38
# NFSv4.1 operation numbers (RFC 8881 16.2.1 and 18).
OP_EXCHANGE_ID = 42
OP_CREATE_SESSION = 43
OP_DESTROY_SESSION = 44
OP_SEQUENCE = 53
OP_DESTROY_CLIENTID = 57
OP_RECLAIM_COMPLETE = 58
OP_ILLEGAL = 10044

OP_NAMES = {
    OP_CLOSE: "CLOSE", OP_GETATTR: "GETATTR", OP_GETFH: "GETFH", OP_LOOKUP: "LOOKUP",
    OP_OPEN: "OPEN", OP_OPEN_CONFIRM: "OPEN_CONFIRM", OP_PUTFH: "PUTFH",
    OP_PUTROOTFH: "PUTROOTFH", OP_READ: "READ", OP_RENEW: "RENEW",
    OP_SETCLIENTID: "SETCLIENTID", OP_SETCLIENTID_CONFIRM: "SETCLIENTID_CONFIRM",
    OP_WRITE: "WRITE", OP_EXCHANGE_ID: "EXCHANGE_ID", OP_CREATE_SESSION: "CREATE_SESSION",
    OP_DESTROY_SESSION: "DESTROY_SESSION", OP_SEQUENCE: "SEQUENCE",
    OP_DESTROY_CLIENTID: "DESTROY_CLIENTID", OP_RECLAIM_COMPLETE: "RECLAIM_COMPLETE",
    OP_ILLEGAL: "ILLEGAL",
}

NFS4ERR_NAMES: dict[int, str] = {
    0: "NFS4_OK", 1: "NFS4ERR_PERM", 2: "NFS4ERR_NOENT", 5: "NFS4ERR_IO", 6: "NFS4ERR_NXIO",
    13: "NFS4ERR_ACCESS", 17: "NFS4ERR_EXIST", 18: "NFS4ERR_XDEV", 20: "NFS4ERR_NOTDIR",
    21: "NFS4ERR_ISDIR", 22: "NFS4ERR_INVAL", 27: "NFS4ERR_FBIG", 28: "NFS4ERR_NOSPC",
    30: "NFS4ERR_ROFS", 31: "NFS4ERR_MLINK", 63: "NFS4ERR_NAMETOOLONG",
    66: "NFS4ERR_NOTEMPTY", 69: "NFS4ERR_DQUOT", 70: "NFS4ERR_STALE",
    10001: "NFS4ERR_BADHANDLE", 10003: "NFS4ERR_BAD_COOKIE", 10004: "NFS4ERR_NOTSUPP",
    10005: "NFS4ERR_TOOSMALL", 10006: "NFS4ERR_SERVERFAULT", 10007: "NFS4ERR_BADTYPE",
    10008: "NFS4ERR_DELAY", 10009: "NFS4ERR_SAME", 10010: "NFS4ERR_DENIED",
    10011: "NFS4ERR_EXPIRED", 10012: "NFS4ERR_LOCKED", 10013: "NFS4ERR_GRACE",
    10014: "NFS4ERR_FHEXPIRED", 10015: "NFS4ERR_SHARE_DENIED", 10016: "NFS4ERR_WRONGSEC",
    10017: "NFS4ERR_CLID_INUSE", 10018: "NFS4ERR_RESOURCE", 10019: "NFS4ERR_MOVED",
    10020: "NFS4ERR_NOFILEHANDLE", 10021: "NFS4ERR_MINOR_VERS_MISMATCH",
    10022: "NFS4ERR_STALE_CLIENTID", 10023: "NFS4ERR_STALE_STATEID",
    10024: "NFS4ERR_OLD_STATEID", 10025: "NFS4ERR_BAD_STATEID", 10026: "NFS4ERR_BAD_SEQID",
    10027: "NFS4ERR_NOT_SAME", 10028: "NFS4ERR_LOCK_RANGE", 10029: "NFS4ERR_SYMLINK",
    10030: "NFS4ERR_RESTOREFH", 10031: "NFS4ERR_LEASE_MOVED", 10032: "NFS4ERR_ATTRNOTSUPP",
    10033: "NFS4ERR_NO_GRACE", 10034: "NFS4ERR_RECLAIM_BAD", 10035: "NFS4ERR_RECLAIM_CONFLICT",
    10036: "NFS4ERR_BADXDR", 10037: "NFS4ERR_LOCKS_HELD", 10038: "NFS4ERR_OPENMODE",
    10039: "NFS4ERR_BADOWNER", 10040: "NFS4ERR_BADCHAR", 10041: "NFS4ERR_BADNAME",
    10042: "NFS4ERR_BAD_RANGE", 10043: "NFS4ERR_LOCK_NOTSUPP", 10044: "NFS4ERR_OP_ILLEGAL",
    10045: "NFS4ERR_DEADLOCK", 10046: "NFS4ERR_FILE_OPEN", 10047: "NFS4ERR_ADMIN_REVOKED",
    10048: "NFS4ERR_CB_PATH_DOWN",
    # NFSv4.1 (RFC 8881 15.1; the numbers of nfs-ganesha's src/include/nfsv41.h)
    10049: "NFS4ERR_BADIOMODE", 10050: "NFS4ERR_BADLAYOUT", 10051: "NFS4ERR_BAD_SESSION_DIGEST",
    10052: "NFS4ERR_BADSESSION", 10053: "NFS4ERR_BADSLOT", 10054: "NFS4ERR_COMPLETE_ALREADY",
    10055: "NFS4ERR_CONN_NOT_BOUND_TO_SESSION", 10056: "NFS4ERR_DELEG_ALREADY_WANTED",
    10057: "NFS4ERR_BACK_CHAN_BUSY", 10058: "NFS4ERR_LAYOUTTRYLATER",
    10059: "NFS4ERR_LAYOUTUNAVAILABLE", 10060: "NFS4ERR_NOMATCHING_LAYOUT",
    10061: "NFS4ERR_RECALLCONFLICT", 10062: "NFS4ERR_UNKNOWN_LAYOUTTYPE",
    10063: "NFS4ERR_SEQ_MISORDERED", 10064: "NFS4ERR_SEQUENCE_POS", 10065: "NFS4ERR_REQ_TOO_BIG",
    10066: "NFS4ERR_REP_TOO_BIG", 10067: "NFS4ERR_REP_TOO_BIG_TO_CACHE",
    10068: "NFS4ERR_RETRY_UNCACHED_REP", 10069: "NFS4ERR_UNSAFE_COMPOUND",
    10070: "NFS4ERR_TOO_MANY_OPS", 10071: "NFS4ERR_OP_NOT_IN_SESSION",
    10072: "NFS4ERR_HASH_ALG_UNSUPP", 10074: "NFS4ERR_CLIENTID_BUSY", 10075: "NFS4ERR_PNFS_IO_HOLE",
    10076: "NFS4ERR_SEQ_FALSE_RETRY", 10077: "NFS4ERR_BAD_HIGH_SLOT", 10078: "NFS4ERR_DEADSESSION",
    10079: "NFS4ERR_ENCR_ALG_UNSUPP", 10080: "NFS4ERR_PNFS_NO_LAYOUT", 10081: "NFS4ERR_NOT_ONLY_OP",
    10082: "NFS4ERR_WRONG_CRED", 10083: "NFS4ERR_WRONG_TYPE", 10084: "NFS4ERR_DIRDELEG_UNAVAIL",
    10085: "NFS4ERR_REJECT_DELEG", 10086: "NFS4ERR_RETURNCONFLICT", 10087: "NFS4ERR_DELEG_REVOKED",
}
CODES = {name: code for code, name in NFS4ERR_NAMES.items()}
NFS4ERR_STALE = CODES["NFS4ERR_STALE"]
NFS4ERR_BADHANDLE = CODES["NFS4ERR_BADHANDLE"]
NFS4ERR_GRACE = CODES["NFS4ERR_GRACE"]
NFS4ERR_DELAY = CODES["NFS4ERR_DELAY"]
NFS4ERR_EXPIRED = CODES["NFS4ERR_EXPIRED"]
NFS4ERR_STALE_CLIENTID = CODES["NFS4ERR_STALE_CLIENTID"]
NFS4ERR_BADSESSION = CODES["NFS4ERR_BADSESSION"]
NFS4ERR_DEADSESSION = CODES["NFS4ERR_DEADSESSION"]
NFS4ERR_SEQ_MISORDERED = CODES["NFS4ERR_SEQ_MISORDERED"]
NFS4ERR_COMPLETE_ALREADY = CODES["NFS4ERR_COMPLETE_ALREADY"]
NFS4ERR_NO_GRACE = CODES["NFS4ERR_NO_GRACE"]

# Statuses after which the caller may simply try again (the server is recovering).
RETRY_STATUSES = frozenset({NFS4ERR_GRACE, NFS4ERR_DELAY})
# Statuses meaning "the server no longer knows this client id": SETCLIENTID again.
REESTABLISH_STATUSES = frozenset({NFS4ERR_STALE_CLIENTID, NFS4ERR_EXPIRED})
# NFSv4.1: SEQUENCE refusing the session (a restarted server knows none; a client whose
# lease expired has none): EXCHANGE_ID + CREATE_SESSION again (RFC 8881 2.10.13, 8.4.2.1).
SESSION_LOST_STATUSES = frozenset({NFS4ERR_BADSESSION, NFS4ERR_DEADSESSION,
                                   NFS4ERR_STALE_CLIENTID, NFS4ERR_EXPIRED})
# RFC 7530 9.1.7: an open-owner's seqid advances after every seqid-bearing op that the
# server got to, even a failed one, except after these errors.
SEQID_KEPT_ON = frozenset(CODES[n] for n in (
    "NFS4ERR_STALE_CLIENTID", "NFS4ERR_STALE_STATEID", "NFS4ERR_BAD_STATEID",
    "NFS4ERR_BAD_SEQID", "NFS4ERR_BADXDR", "NFS4ERR_RESOURCE", "NFS4ERR_NOFILEHANDLE",
    "NFS4ERR_MOVED"))

# OPEN arguments and results.
SHARE_ACCESS_READ = 1
SHARE_ACCESS_BOTH = 3
SHARE_DENY_NONE = 0
OPEN4_NOCREATE = 0
OPEN4_CREATE = 1
UNCHECKED4 = 0
CLAIM_NULL = 0
CLAIM_PREVIOUS = 1
OPEN_DELEGATE_NONE = 0
OPEN_DELEGATE_READ = 1
OPEN_DELEGATE_WRITE = 2
OPEN4_RESULT_CONFIRM = 0x2
FILE_SYNC4 = 2
UNSTABLE4 = 0
FATTR4_SIZE = 4
FATTR4_MODE = 33

ANONYMOUS_STATEID = bytes(16)
"""The all-zero special stateid (RFC 7530 9.1.4.3): READ with only a file handle and no
open state, which is what a client holding just a handle across a failover does."""


class NfsError(Exception):
    """The server answered an operation with an NFS4ERR_* status.

    Kept apart from `OSError` (no answer at all) on purpose: the lab must tell an outage
    from a server that answers NFS4ERR_STALE for a handle the client still holds.
    """

    def __init__(self, status: int, op: str | None = None, index: int | None = None) -> None:
        self.status = status
        self.name = NFS4ERR_NAMES.get(status, f"NFS4ERR_{status}")
        self.op = op
        self.index = index
        where = f"{op}: " if op else ""
        super().__init__(f"{where}{self.name} ({status})")


@dataclass(frozen=True)
class Op:
    """One operation of a compound: its number, its encoded arguments, its result decoder."""

    code: int
    args: bytes = b""
    decode: Callable[[Unpacker], object] | None = None


def encode_compound(ops: list[Op], minorversion: int = 0, tag: bytes = b"") -> bytes:
    """COMPOUND4args: tag, minor version, the operations."""
    def args(p) -> None:
        p.string(tag)
        p.u32(minorversion)
        p.u32(len(ops))
        for op in ops:
            p.u32(op.code)
            p.raw(op.args)
    return pack(args)


def decode_compound(u: Unpacker, ops: list[Op]) -> list[object]:
    """COMPOUND4res: each op's decoded result, or NfsError for the first op that failed (or
    for the compound's status). Raises XdrError for a reply that does not match `ops`."""
    status = u.u32()
    u.opaque()  # tag
    results: list[object] = []
    for i in range(u.u32()):
        code = u.u32()
        st = u.u32()
        if code == OP_ILLEGAL:
            raise NfsError(st, "ILLEGAL", i)
        if i >= len(ops) or code != ops[i].code:
            raise XdrError(f"reply op {code} does not match request #{i}")
        if st != 0:
            raise NfsError(st, OP_NAMES[code], i)
        results.append(ops[i].decode(u) if ops[i].decode else None)
    if status != 0:
        raise NfsError(status)
    return results


# ---- the operations the client uses ---------------------------------------------------------

def putrootfh() -> Op:
    return Op(OP_PUTROOTFH)


def putfh(fh: bytes) -> Op:
    return Op(OP_PUTFH, pack(lambda p: p.opaque(fh)))


def lookup(name: str) -> Op:
    return Op(OP_LOOKUP, pack(lambda p: p.string(name)))


def getfh() -> Op:
    return Op(OP_GETFH, decode=lambda u: u.opaque())


def getattr_size() -> Op:
    """GETATTR of FATTR4_SIZE only; decodes to the size."""
    return Op(OP_GETATTR, pack(lambda p: (p.u32(1), p.u32(1 << FATTR4_SIZE))), decode_size)


def renew(clientid: int) -> Op:
    return Op(OP_RENEW, pack(lambda p: p.u64(clientid)))


def setclientid(verifier: bytes, client_name: str, callback_addr: str) -> Op:
    """SETCLIENTID with a callback that cannot be reached (no delegations); decodes to
    (clientid, confirm verifier)."""
    def args(p) -> None:
        p.fixed(verifier)
        p.string(client_name)
        p.u32(0x40000000)  # cb_program
        p.string("tcp")
        p.string(callback_addr)
        p.u32(1)  # callback_ident
    return Op(OP_SETCLIENTID, pack(args), lambda u: (u.u64(), u.fixed(8)))


def setclientid_confirm(clientid: int, confirm: bytes) -> Op:
    return Op(OP_SETCLIENTID_CONFIRM, pack(lambda p: (p.u64(clientid), p.fixed(confirm))))


def open_(seqid: int, access: int, clientid: int, owner: bytes, create: bool,
          claim: Callable[[object], object]) -> Op:
    """OPEN4args (deny none; UNCHECKED4 create with mode 0644); decodes to (stateid, rflags)."""
    def args(p) -> None:
        p.u32(seqid)
        p.u32(access)
        p.u32(SHARE_DENY_NONE)
        p.u64(clientid)
        p.opaque(owner)
        if create:
            p.u32(OPEN4_CREATE)
            p.u32(UNCHECKED4)
            p.u32(2)  # fattr4 bitmap: mode only (word 1, bit 1)
            p.u32(0)
            p.u32(1 << (FATTR4_MODE - 32))
            p.opaque(pack(lambda q: q.u32(0o644)))
        else:
            p.u32(OPEN4_NOCREATE)
        claim(p)
    return Op(OP_OPEN, pack(args), decode_open)


def claim_null(name: str) -> Callable[[object], object]:
    return lambda p: (p.u32(CLAIM_NULL), p.string(name))


def claim_previous() -> Callable[[object], object]:
    """CLAIM_PREVIOUS: reclaim an open after a server restart, in its grace period."""
    return lambda p: (p.u32(CLAIM_PREVIOUS), p.u32(OPEN_DELEGATE_NONE))


def open_confirm(stateid: bytes, seqid: int) -> Op:
    return Op(OP_OPEN_CONFIRM, pack(lambda p: (p.raw(stateid), p.u32(seqid))), lambda u: u.fixed(16))


def close(seqid: int, stateid: bytes) -> Op:
    return Op(OP_CLOSE, pack(lambda p: (p.u32(seqid), p.raw(stateid))), lambda u: u.fixed(16))


def read(stateid: bytes, offset: int, count: int) -> Op:
    return Op(OP_READ, pack(lambda p: (p.raw(stateid), p.u64(offset), p.u32(count))), decode_read)


def write(stateid: bytes, offset: int, data: bytes, stable: bool = True) -> Op:
    how = FILE_SYNC4 if stable else UNSTABLE4
    return Op(OP_WRITE, pack(lambda p: (p.raw(stateid), p.u64(offset), p.u32(how), p.opaque(data))),
              decode_write)


def decode_open(u: Unpacker) -> tuple[bytes, int]:
    """OPEN4resok: return (stateid, rflags); skip change_info, attrset and any delegation."""
    stateid = u.fixed(16)
    u.u32()  # change_info4.atomic
    u.u64()  # before
    u.u64()  # after
    rflags = u.u32()
    u.bitmap()  # attrset
    dtype = u.u32()
    if dtype in (OPEN_DELEGATE_READ, OPEN_DELEGATE_WRITE):
        # Never expected (no callback channel is offered), but decoded to stay in sync.
        u.fixed(16)  # delegation stateid
        u.u32()  # recall
        if dtype == OPEN_DELEGATE_WRITE:
            if u.u32() == 1:  # NFS_LIMIT_SIZE
                u.u64()
            else:  # NFS_LIMIT_BLOCKS
                u.u32()
                u.u32()
        u.u32()  # nfsace4 type
        u.u32()  # flag
        u.u32()  # access mask
        u.opaque()  # who
    return stateid, rflags


def decode_read(u: Unpacker) -> tuple[bool, bytes]:
    eof = bool(u.u32())
    return eof, u.opaque()


def decode_write(u: Unpacker) -> int:
    count = u.u32()
    u.u32()  # committed
    u.fixed(8)  # write verifier
    return count


def decode_size(u: Unpacker) -> int:
    mask = u.bitmap()
    vals = Unpacker(u.opaque())
    if not mask or not mask[0] & (1 << FATTR4_SIZE):
        raise XdrError("server did not return FATTR4_SIZE")
    return vals.u64()
