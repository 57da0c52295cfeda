"""A small pure-Python NFSv4.0 client (RFC 7530/7531) for the failover lab.

Why not libnfs: the lab must show that a client keeps working across a server failover
*with the file handle it already holds*. libnfs's `nfs-cat`/`nfs-ls` are one-shot: every
run mounts afresh (PUTROOTFH + LOOKUP), so they can never replay an old handle; libnfs's
own OPEN does not retry NFS4ERR_GRACE, so right after a failover it just fails; and a
one-shot tool reports "it failed" without saying whether the server was unreachable
(an outage, which should heal) or answered NFS4ERR_STALE (the export's identity changed,
which is exactly the bug the lab exists to catch). This client keeps the raw handle bytes,
replays them with PUTFH against whichever server now owns the address, and keeps those
cases apart: `NfsError` carries the NFS4ERR_* code, connection trouble is an `OSError`,
and `Nfs4Client.grace_aware` retries only what a real client would retry.

Scope is deliberately small: one TCP connection (RPC record marking), AUTH_SYS, NFSv4.0
only (minor version 0, SETCLIENTID, open-owner seqids), no callbacks (so no delegations),
no locking, not thread-safe. XDR is written by hand with `struct`.
"""
from __future__ import annotations

import itertools
import os
import random
import socket
import struct
import time
from dataclasses import dataclass, replace
from typing import Callable, TypeVar

__all__ = ["NfsError", "RpcError", "OpenFile", "Nfs4Client", "ANONYMOUS_STATEID",
           "NFS4ERR_NAMES"]

T = TypeVar("T")

# ONC RPC (RFC 5531) and the NFSv4 program.
_RPC_VERSION = 2
_NFS_PROGRAM = 100003
_NFS_V4 = 4
_NFSPROC4_COMPOUND = 1
_AUTH_NONE = 0
_AUTH_SYS = 1
_LAST_FRAGMENT = 0x80000000

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
OP_ILLEGAL = 10044

_OP_NAMES = {
    OP_CLOSE: "CLOSE", OP_GETATTR: "GETATTR", OP_GETFH: "GETFH", OP_LOOKUP: "LOOKUP",
    OP_OPEN: "OPEN", OP_OPEN_CONFIRM: "OPEN_CONFIRM", OP_PUTFH: "PUTFH",
    OP_PUTROOTFH: "PUTROOTFH", OP_READ: "READ", OP_RENEW: "RENEW",
    OP_SETCLIENTID: "SETCLIENTID", OP_SETCLIENTID_CONFIRM: "SETCLIENTID_CONFIRM",
    OP_WRITE: "WRITE", OP_ILLEGAL: "ILLEGAL",
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
}
_CODES = {name: code for code, name in NFS4ERR_NAMES.items()}
NFS4ERR_STALE = _CODES["NFS4ERR_STALE"]
NFS4ERR_BADHANDLE = _CODES["NFS4ERR_BADHANDLE"]
NFS4ERR_GRACE = _CODES["NFS4ERR_GRACE"]
NFS4ERR_DELAY = _CODES["NFS4ERR_DELAY"]
NFS4ERR_EXPIRED = _CODES["NFS4ERR_EXPIRED"]
NFS4ERR_STALE_CLIENTID = _CODES["NFS4ERR_STALE_CLIENTID"]

# Statuses after which the caller may simply try again (the server is recovering).
_RETRY_STATUSES = frozenset({NFS4ERR_GRACE, NFS4ERR_DELAY})
# Statuses meaning "the server no longer knows this client id": SETCLIENTID again.
_REESTABLISH_STATUSES = frozenset({NFS4ERR_STALE_CLIENTID, NFS4ERR_EXPIRED})
# RFC 7530 9.1.7: an open-owner's seqid advances after every seqid-bearing op that the
# server got to, even a failed one, except after these errors.
_SEQID_KEPT_ON = frozenset(_CODES[n] for n in (
    "NFS4ERR_STALE_CLIENTID", "NFS4ERR_STALE_STATEID", "NFS4ERR_BAD_STATEID",
    "NFS4ERR_BAD_SEQID", "NFS4ERR_BADXDR", "NFS4ERR_RESOURCE", "NFS4ERR_NOFILEHANDLE",
    "NFS4ERR_MOVED"))

# OPEN arguments and results.
_SHARE_ACCESS_READ = 1
_SHARE_ACCESS_BOTH = 3
_SHARE_DENY_NONE = 0
_OPEN4_NOCREATE = 0
_OPEN4_CREATE = 1
_UNCHECKED4 = 0
_CLAIM_NULL = 0
_CLAIM_PREVIOUS = 1
_OPEN_DELEGATE_NONE = 0
_OPEN_DELEGATE_READ = 1
_OPEN_DELEGATE_WRITE = 2
_OPEN4_RESULT_CONFIRM = 0x2
_FILE_SYNC4 = 2
_UNSTABLE4 = 0
_FATTR4_SIZE = 4
_FATTR4_MODE = 33

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


class RpcError(Exception):
    """The RPC layer refused the call (wrong program/version, auth, garbage args).

    Not an `OSError`: retrying after a reconnect would not help, so `grace_aware` lets it out.
    """


@dataclass
class OpenFile:
    """An open file: what a client must keep to write, close or reclaim after a failover.

    `fh` is the raw file handle (opaque bytes, replayed verbatim with PUTFH), `stateid` the
    16-byte open stateid, `owner` the open-owner name and `seqid` the next seqid to send for
    that owner. `seqid` is mutable because NFSv4.0 open-owner seqids advance with every
    OPEN/OPEN_CONFIRM/CLOSE the server sees, including failed ones.
    """

    path: str
    fh: bytes
    stateid: bytes
    owner: bytes
    seqid: int
    access: int
    confirmed: bool = True


class _Packer:
    """XDR encoder (RFC 4506): big-endian, everything padded to 4 bytes."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u32(self, v: int) -> None:
        self._parts.append(struct.pack(">I", v))

    def u64(self, v: int) -> None:
        self._parts.append(struct.pack(">Q", v))

    def fixed(self, data: bytes) -> None:
        self._parts.append(data + b"\0" * (-len(data) % 4))

    def opaque(self, data: bytes) -> None:
        self.u32(len(data))
        self.fixed(data)

    def string(self, s: str | bytes) -> None:
        self.opaque(s.encode() if isinstance(s, str) else s)

    def raw(self, data: bytes) -> None:
        self._parts.append(data)

    def bytes(self) -> bytes:
        return b"".join(self._parts)


class _Unpacker:
    """XDR decoder over one RPC reply."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise RpcError("short XDR reply")
        chunk = self._data[self._pos:end]
        self._pos = end
        return chunk

    def u32(self) -> int:
        return struct.unpack(">I", self._take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self._take(8))[0]

    def fixed(self, n: int) -> bytes:
        data = self._take(n)
        self._take(-n % 4)
        return data

    def opaque(self) -> bytes:
        return self.fixed(self.u32())

    def bitmap(self) -> list[int]:
        return [self.u32() for _ in range(self.u32())]


@dataclass(frozen=True)
class _Op:
    code: int
    args: bytes = b""
    decode: Callable[[_Unpacker], object] | None = None


def _pack(fn: Callable[[_Packer], None]) -> bytes:
    p = _Packer()
    fn(p)
    return p.bytes()


def _decode_open(u: _Unpacker) -> tuple[bytes, int]:
    """OPEN4resok: return (stateid, rflags); skip change_info, attrset and any delegation."""
    stateid = u.fixed(16)
    u.u32()  # change_info4.atomic
    u.u64()  # before
    u.u64()  # after
    rflags = u.u32()
    u.bitmap()  # attrset
    dtype = u.u32()
    if dtype in (_OPEN_DELEGATE_READ, _OPEN_DELEGATE_WRITE):
        # Never expected (no callback channel is offered), but decoded to stay in sync.
        u.fixed(16)  # delegation stateid
        u.u32()  # recall
        if dtype == _OPEN_DELEGATE_WRITE:
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


def _decode_read(u: _Unpacker) -> tuple[bool, bytes]:
    eof = bool(u.u32())
    return eof, u.opaque()


def _decode_write(u: _Unpacker) -> int:
    count = u.u32()
    u.u32()  # committed
    u.fixed(8)  # write verifier
    return count


def _decode_size(u: _Unpacker) -> int:
    mask = u.bitmap()
    vals = _Unpacker(u.opaque())
    if not mask or not mask[0] & (1 << _FATTR4_SIZE):
        raise RpcError("server did not return FATTR4_SIZE")
    return vals.u64()


class Nfs4Client:
    """One NFSv4.0 client identity talking to one server address over TCP.

    The identity (`client_name` and the boot verifier chosen here) stays the same across
    `connect()`/`establish()` calls, so after a failover the new server sees the same
    client, finds it in its recovery records and lets it reclaim during grace.
    """

    def __init__(self, host: str, port: int = 2049, *, client_name: str = "gha-lab-client",
                 uid: int = 0, gid: int = 0, timeout: float = 5.0,
                 source_addr: str | None = None) -> None:
        self.host = host
        self.port = port
        self.client_name = client_name
        self.uid = uid
        self.gid = gid
        self.timeout = timeout
        self.source_addr = source_addr
        # Boot verifier: fixed for this object's life ("the same client instance"); a new
        # object is a rebooted client and makes the server drop the old one's state.
        self.verifier = struct.pack(">I", int(time.time()) & 0xFFFFFFFF) + os.urandom(4)
        self.clientid: int | None = None
        self._sock: socket.socket | None = None
        self._xid = random.getrandbits(32)
        self._owner_seq = itertools.count(1)
        self._cred = _pack(lambda p: (p.u32(int(time.time()) & 0xFFFFFFFF),
                                      p.string(socket.gethostname()[:255]),
                                      p.u32(uid), p.u32(gid), p.u32(0)))

    # ---- connection and RPC ---------------------------------------------------------

    def connect(self) -> None:
        """Open the TCP connection (closing any old one): also how to reach a restarted server."""
        self.close()
        src = (self.source_addr, 0) if self.source_addr else None
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout,
                                        source_address=src)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def close(self) -> None:
        """Drop the TCP connection; client id and open state are kept for a reconnect."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self) -> "Nfs4Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recv_exact(self, n: int) -> bytes:
        assert self._sock is not None
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionResetError("NFS server closed the connection")
            buf += chunk
        return bytes(buf)

    def _recv_record(self) -> bytes:
        parts = []
        while True:
            (marker,) = struct.unpack(">I", self._recv_exact(4))
            parts.append(self._recv_exact(marker & ~_LAST_FRAGMENT))
            if marker & _LAST_FRAGMENT:
                return b"".join(parts)

    def _rpc(self, args: bytes) -> _Unpacker:
        """One NFSPROC4_COMPOUND call; any socket trouble closes the connection and raises
        OSError, so a caller (grace_aware) can reconnect without reading a stale reply."""
        if self._sock is None:
            raise ConnectionError("not connected")
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        xid = self._xid
        p = _Packer()
        for v in (xid, 0, _RPC_VERSION, _NFS_PROGRAM, _NFS_V4, _NFSPROC4_COMPOUND, _AUTH_SYS):
            p.u32(v)
        p.opaque(self._cred)
        p.u32(_AUTH_NONE)
        p.opaque(b"")
        p.raw(args)
        msg = p.bytes()
        try:
            self._sock.sendall(struct.pack(">I", _LAST_FRAGMENT | len(msg)) + msg)
            while True:
                u = _Unpacker(self._recv_record())
                if u.u32() == xid:
                    break  # anything else is a late reply to an abandoned call
        except OSError:
            self.close()
            raise
        if u.u32() != 1:
            raise RpcError("not an RPC reply")
        if u.u32() != 0:  # MSG_DENIED
            reject = u.u32()
            raise RpcError("RPC version mismatch" if reject == 0
                           else f"RPC auth error {u.u32()}")
        u.u32()  # verifier flavor
        u.opaque()
        accept = u.u32()
        if accept != 0:
            raise RpcError(f"RPC call not accepted (accept_stat {accept})")
        return u

    def _compound(self, ops: list[_Op]) -> list[object]:
        """Run a COMPOUND; return each op's decoded result, or raise NfsError naming the
        first op that failed (and its index, which the seqid rules need)."""
        p = _Packer()
        p.string(b"")  # tag
        p.u32(0)  # minorversion
        p.u32(len(ops))
        for op in ops:
            p.u32(op.code)
            p.raw(op.args)
        u = self._rpc(p.bytes())
        status = u.u32()
        u.opaque()  # tag
        results: list[object] = []
        for i in range(u.u32()):
            code = u.u32()
            st = u.u32()
            if code == OP_ILLEGAL:
                raise NfsError(st, "ILLEGAL", i)
            if i >= len(ops) or code != ops[i].code:
                raise RpcError(f"reply op {code} does not match request #{i}")
            if st != 0:
                raise NfsError(st, _OP_NAMES[code], i)
            results.append(ops[i].decode(u) if ops[i].decode else None)
        if status != 0:
            raise NfsError(status)
        return results

    # ---- client id --------------------------------------------------------------------

    def establish(self) -> None:
        """SETCLIENTID + SETCLIENTID_CONFIRM with the stable name and verifier.

        No callback service is run; the address given is this end's IP with port 0, so the
        server's callback probe fails and it never hands out delegations.
        """
        local_ip = self._sock.getsockname()[0] if self._sock is not None else "127.0.0.1"

        def args(p: _Packer) -> None:
            p.fixed(self.verifier)
            p.string(self.client_name)
            p.u32(0x40000000)  # cb_program
            p.string("tcp")
            p.string(f"{local_ip}.0.0")
            p.u32(1)  # callback_ident

        res = self._compound([_Op(OP_SETCLIENTID, _pack(args),
                                  lambda u: (u.u64(), u.fixed(8)))])
        clientid, confirm = res[0]  # type: ignore[misc]
        self._compound([_Op(OP_SETCLIENTID_CONFIRM,
                            _pack(lambda p: (p.u64(clientid), p.fixed(confirm))))])
        self.clientid = clientid

    def renew(self) -> None:
        """RENEW: keep the lease alive (anonymous-stateid READs do not renew it)."""
        self._compound([_Op(OP_RENEW, _pack(lambda p: p.u64(self._need_clientid())))])

    def _need_clientid(self) -> int:
        if self.clientid is None:
            raise RuntimeError("call establish() first")
        return self.clientid

    # ---- handles ----------------------------------------------------------------------

    @staticmethod
    def _components(path: str) -> list[str]:
        return [c for c in path.split("/") if c]

    def lookup(self, path: str) -> bytes:
        """PUTROOTFH, LOOKUP each component of the pseudo path, GETFH: the handle to keep."""
        ops = [_Op(OP_PUTROOTFH)]
        ops += [_Op(OP_LOOKUP, _pack(lambda p, c=c: p.string(c)))
                for c in self._components(path)]
        ops.append(_Op(OP_GETFH, decode=lambda u: u.opaque()))
        return self._compound(ops)[-1]  # type: ignore[return-value]

    @staticmethod
    def _putfh(fh: bytes) -> _Op:
        return _Op(OP_PUTFH, _pack(lambda p: p.opaque(fh)))

    def getattr_size(self, fh: bytes) -> int:
        """PUTFH + GETATTR(size): the file's size as the server sees it."""
        bitmap = _pack(lambda p: (p.u32(1), p.u32(1 << _FATTR4_SIZE)))
        return self._compound([self._putfh(fh),
                               _Op(OP_GETATTR, bitmap, _decode_size)])[1]  # type: ignore

    # ---- open state -------------------------------------------------------------------

    def _seqid_op(self, f: OpenFile, ops: list[_Op], index: int) -> list[object]:
        """Run `ops`, where ops[index] carries f's open-owner seqid, and advance f.seqid as
        RFC 7530 9.1.7 says, so a retry after an error uses the seqid the server expects."""
        try:
            res = self._compound(ops)
        except NfsError as e:
            if e.index is not None and (e.index > index or
                                        (e.index == index and e.status not in _SEQID_KEPT_ON)):
                f.seqid += 1
            raise
        f.seqid += 1
        return res

    def _open_args(self, seqid: int, access: int, owner: bytes, create: bool,
                   claim: Callable[[_Packer], None]) -> bytes:
        def args(p: _Packer) -> None:
            p.u32(seqid)
            p.u32(access)
            p.u32(_SHARE_DENY_NONE)
            p.u64(self._need_clientid())
            p.opaque(owner)
            if create:
                p.u32(_OPEN4_CREATE)
                p.u32(_UNCHECKED4)
                p.u32(2)  # fattr4 bitmap: mode only (word 1, bit 1)
                p.u32(0)
                p.u32(1 << (_FATTR4_MODE - 32))
                p.opaque(struct.pack(">I", 0o644))
            else:
                p.u32(_OPEN4_NOCREATE)
            claim(p)
        return _pack(args)

    def _confirm(self, f: OpenFile) -> None:
        """OPEN_CONFIRM: Ganesha asks for it on the first OPEN of each new open-owner."""
        args = _pack(lambda p: (p.raw(f.stateid), p.u32(f.seqid)))
        res = self._seqid_op(f, [self._putfh(f.fh),
                                 _Op(OP_OPEN_CONFIRM, args, lambda u: u.fixed(16))], 1)
        f.stateid = res[1]  # type: ignore[assignment]
        f.confirmed = True

    def open(self, path: str, *, create: bool = False, write: bool = False) -> OpenFile:
        """OPEN (CLAIM_NULL) by pseudo path + GETFH, confirmed if the server asks.

        Each call uses a fresh open-owner, so an OPEN that failed (NFS4ERR_GRACE during a
        failover) leaves no seqid to get out of step with: retrying is just calling again.
        Fails with NFS4ERR_GRACE while the server is in grace: wrap it in `grace_aware`.
        """
        parts = self._components(path)
        if not parts:
            raise ValueError("open() needs a file path, not the root")
        owner = f"{self.client_name}/{os.getpid()}/{next(self._owner_seq)}".encode()
        access = _SHARE_ACCESS_BOTH if write or create else _SHARE_ACCESS_READ
        name = parts[-1]
        ops = [_Op(OP_PUTROOTFH)]
        ops += [_Op(OP_LOOKUP, _pack(lambda p, c=c: p.string(c))) for c in parts[:-1]]
        ops.append(_Op(OP_OPEN, self._open_args(
            0, access, owner, create, lambda p: (p.u32(_CLAIM_NULL), p.string(name))),
            _decode_open))
        ops.append(_Op(OP_GETFH, decode=lambda u: u.opaque()))
        res = self._compound(ops)
        stateid, rflags = res[-2]  # type: ignore[misc]
        f = OpenFile(path=path, fh=res[-1], stateid=stateid, owner=owner,  # type: ignore
                     seqid=1, access=access, confirmed=not rflags & _OPEN4_RESULT_CONFIRM)
        if not f.confirmed:
            self._confirm(f)
        return f

    def reclaim(self, f: OpenFile) -> OpenFile:
        """OPEN with CLAIM_PREVIOUS on PUTFH(f.fh): take the open back after a failover.

        Only valid during the new server's grace period and after `establish()` with the
        same client name (and, for Ganesha, the same client IP: its recovery records key on
        both). Returns a new OpenFile with the new stateid; `f.seqid` advances too.
        """
        def claim(p: _Packer) -> None:
            p.u32(_CLAIM_PREVIOUS)
            p.u32(_OPEN_DELEGATE_NONE)

        ops = [self._putfh(f.fh),
               _Op(OP_OPEN, self._open_args(f.seqid, f.access, f.owner, False, claim),
                   _decode_open)]
        res = self._seqid_op(f, ops, 1)
        stateid, rflags = res[1]  # type: ignore[misc]
        new = replace(f, stateid=stateid, confirmed=not rflags & _OPEN4_RESULT_CONFIRM)
        if not new.confirmed:
            try:
                self._confirm(new)
            finally:
                f.seqid = new.seqid
        return new

    def close_file(self, f: OpenFile) -> None:
        """CLOSE the open state (the handle stays valid for anonymous READs)."""
        args = _pack(lambda p: (p.u32(f.seqid), p.raw(f.stateid)))
        res = self._seqid_op(f, [self._putfh(f.fh),
                                 _Op(OP_CLOSE, args, lambda u: u.fixed(16))], 1)
        f.stateid = res[1]  # type: ignore[assignment]

    # ---- data -------------------------------------------------------------------------

    def read(self, fh_or_file: bytes | OpenFile, offset: int, count: int) -> bytes:
        """PUTFH(saved handle) + READ until `count` bytes or EOF.

        Given only a handle, READ uses the anonymous stateid: no OPEN, no client id, so it
        exercises exactly "the handle the client already holds" on whatever server answers.
        """
        if isinstance(fh_or_file, OpenFile):
            fh, stateid = fh_or_file.fh, fh_or_file.stateid
        else:
            fh, stateid = bytes(fh_or_file), ANONYMOUS_STATEID
        out = bytearray()
        while len(out) < count:
            want = count - len(out)
            args = _pack(lambda p: (p.raw(stateid), p.u64(offset + len(out)), p.u32(want)))
            eof, data = self._compound([self._putfh(fh),
                                        _Op(OP_READ, args, _decode_read)])[1]  # type: ignore
            out += data
            if eof or not data:
                break
        return bytes(out)

    def write(self, f: OpenFile, offset: int, data: bytes, stable: bool = True) -> int:
        """PUTFH + WRITE with the open stateid; FILE_SYNC when `stable`, so the bytes are on
        the server's disk before we return (what survives a SIGKILL failover)."""
        how = _FILE_SYNC4 if stable else _UNSTABLE4
        done = 0
        while done < len(data):
            chunk = data[done:]
            args = _pack(lambda p: (p.raw(f.stateid), p.u64(offset + done), p.u32(how),
                                    p.opaque(chunk)))
            n = self._compound([self._putfh(f.fh), _Op(OP_WRITE, args, _decode_write)])[1]
            if not n:
                break
            done += n  # type: ignore[operator]
        return done

    # ---- recovery ---------------------------------------------------------------------

    def grace_aware(self, op: Callable[[], T], *, deadline: float) -> T:
        """Run `op` until it succeeds or `deadline` (a `time.monotonic()` value) passes.

        Retried: NFS4ERR_GRACE / NFS4ERR_DELAY (a server in recovery), connection errors
        (reconnect; the server may be moving), NFS4ERR_STALE_CLIENTID / NFS4ERR_EXPIRED
        (a new server instance: run `establish()` again, then `op`). Everything else is
        raised at once; above all NFS4ERR_STALE, a handle the new server does not know,
        which is the failure the lab exists to detect and must never be waited out.
        NFS4ERR_STALE_STATEID is raised too: the caller must `reclaim()` its opens; so is
        NFS4ERR_EXPIRED/STALE_CLIENTID when it comes back right after a fresh `establish()`
        (Ganesha answers EXPIRED for an old open stateid when the old and new instance
        started in the same second), since a new client id cannot revive old state.
        At the deadline the last error is raised.
        """
        delay = 0.05
        need_establish = False
        while True:
            just_established = False
            try:
                if self._sock is None:
                    self.connect()
                if need_establish:
                    self.establish()
                    need_establish = False
                    just_established = True
                return op()
            except NfsError as e:
                if e.status in _REESTABLISH_STATUSES:
                    if just_established:
                        raise
                    need_establish = True
                elif e.status not in _RETRY_STATUSES:
                    raise
                last: Exception = e
            except OSError as e:
                self.close()
                last = e
            left = deadline - time.monotonic()
            if left <= 0:
                raise last
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.5)
