"""ONC RPC (RFC 5531): calls over one TCP connection (record marking, AUTH_SYS, one call at a
time), and the pure call/reply codecs a small UDP service needs (the NSM listener).

The transport of the lab's NFS clients. Any socket trouble closes the connection and raises
OSError, so a caller can reconnect without ever reading a stale reply; a reply the server
sends to an abandoned call (an xid we no longer wait for) is skipped. Not thread-safe.
"""
from __future__ import annotations

import errno
import random
import socket
import struct
import time
from dataclasses import dataclass

from .xdr import Packer, Unpacker, XdrError, pack

RPC_VERSION = 2
CALL = 0
REPLY = 1
AUTH_NONE = 0
AUTH_SYS = 1
LAST_FRAGMENT = 0x80000000    # record marking (RFC 5531 11): the last fragment of a record
# accept_stat (RFC 5531 9)
SUCCESS = 0
PROG_UNAVAIL = 1
PROG_MISMATCH = 2
PROC_UNAVAIL = 3
GARBAGE_ARGS = 4
RESERVED_PORTS = range(1023, 599, -1)   # bindresvport's range, tried from the top


class RpcError(Exception):
    """The RPC layer refused the call (wrong program/version, auth, garbage args) or the reply
    could not be decoded.

    Not an `OSError`: retrying after a reconnect would not help, so a client lets it out.
    """


def auth_sys(uid: int = 0, gid: int = 0, machine: str | None = None) -> bytes:
    """An AUTH_SYS credential body (RFC 5531 appendix A): stamp, machine name, uid, gid, no groups."""
    name = (machine if machine is not None else socket.gethostname())[:255]
    return pack(lambda p: (p.u32(int(time.time()) & 0xFFFFFFFF), p.string(name),
                           p.u32(uid), p.u32(gid), p.u32(0)))


def encode_call(xid: int, prog: int, vers: int, proc: int, cred: bytes | None, args: bytes) -> bytes:
    """A CALL message (RFC 5531 9): AUTH_SYS with body `cred`, or AUTH_NONE when None."""
    p = Packer()
    for v in (xid, CALL, RPC_VERSION, prog, vers, proc):
        p.u32(v)
    p.u32(AUTH_NONE if cred is None else AUTH_SYS)
    p.opaque(cred or b"")
    p.u32(AUTH_NONE)   # verifier
    p.opaque(b"")
    p.raw(args)
    return p.bytes()


def decode_reply(u: Unpacker) -> None:
    """Read a REPLY's header after its xid, up to the results; RpcError unless the call was
    accepted with SUCCESS (XdrError for a message cut short)."""
    if u.u32() != REPLY:
        raise RpcError("not an RPC reply")
    if u.u32() != 0:  # MSG_DENIED
        reject = u.u32()
        raise RpcError("RPC version mismatch" if reject == 0 else f"RPC auth error {u.u32()}")
    u.u32()  # verifier flavor
    u.opaque()
    accept = u.u32()
    if accept != SUCCESS:
        raise RpcError(f"RPC call not accepted (accept_stat {accept})")


@dataclass(frozen=True)
class RpcCall:
    """A CALL received by a service: who is called, and the decoder at the arguments."""

    xid: int
    prog: int
    vers: int
    proc: int
    cred_flavor: int
    args: Unpacker


def decode_call(data: bytes) -> RpcCall:
    """Parse one CALL message (a UDP datagram); XdrError for anything else."""
    u = Unpacker(data)
    xid, mtype, rpcvers = u.u32(), u.u32(), u.u32()
    if mtype != CALL or rpcvers != RPC_VERSION:
        raise XdrError(f"not an RPC v2 call (type {mtype}, version {rpcvers})")
    prog, vers, proc = u.u32(), u.u32(), u.u32()
    flavor = u.u32()
    u.opaque()  # credential body
    u.u32()     # verifier
    u.opaque()
    return RpcCall(xid, prog, vers, proc, flavor, u)


def encode_reply(xid: int, body: bytes = b"", accept_stat: int = SUCCESS,
                 versions: tuple[int, int] = (0, 0)) -> bytes:
    """An accepted REPLY with an AUTH_NONE verifier: `body` after SUCCESS, the supported
    (low, high) `versions` after PROG_MISMATCH, nothing after the other accept_stats."""
    p = Packer()
    for v in (xid, REPLY, 0, AUTH_NONE):
        p.u32(v)
    p.opaque(b"")
    p.u32(accept_stat)
    if accept_stat == SUCCESS:
        p.raw(body)
    elif accept_stat == PROG_MISMATCH:
        p.u32(versions[0])
        p.u32(versions[1])
    return p.bytes()


def bind_reserved(sock: socket.socket, addr: str) -> int:
    """Bind `sock` to `addr` on a free port below 1024 (what bindresvport does, and what an
    NFS server may ask of its clients: Ganesha's PrivilegedPort). Returns the port."""
    for port in RESERVED_PORTS:
        try:
            sock.bind((addr, port))
            return port
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, "no reserved port free")


class RpcConnection:
    """Calls to program `prog` version `vers` at `host`:`port`, AUTH_SYS as `cred`; from a
    port below 1024 when `reserved_port`."""

    def __init__(self, host: str, port: int, prog: int, vers: int, *, cred: bytes,
                 timeout: float = 5.0, source_addr: str | None = None,
                 reserved_port: bool = False) -> None:
        self.host = host
        self.port = port
        self.prog = prog
        self.vers = vers
        self.cred = cred
        self.source_addr = source_addr
        self.reserved_port = reserved_port
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._xid = random.getrandbits(32)

    # ---- the connection ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._sock is not None

    @property
    def timeout(self) -> float:
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        """Seconds a connect or a reply may take; applies to the open connection too."""
        self._timeout = seconds
        if self._sock is not None:
            self._sock.settimeout(seconds)

    def local_address(self) -> str | None:
        return self._sock.getsockname()[0] if self._sock is not None else None

    def connect(self) -> None:
        """Open the TCP connection (closing any old one): also how to reach a restarted server."""
        self.close()
        if self.reserved_port:
            sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
            try:
                bind_reserved(sock, self.source_addr or "")
                sock.settimeout(self._timeout)
                sock.connect((self.host, self.port))
            except OSError:
                sock.close()
                raise
        else:
            src = (self.source_addr, 0) if self.source_addr else None
            sock = socket.create_connection((self.host, self.port), timeout=self._timeout,
                                            source_address=src)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    # ---- records ------------------------------------------------------------------------
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
            parts.append(self._recv_exact(marker & ~LAST_FRAGMENT))
            if marker & LAST_FRAGMENT:
                return b"".join(parts)

    # ---- one call -----------------------------------------------------------------------
    def call(self, proc: int, args: bytes) -> Unpacker:
        """Call `proc` with the encoded `args`; return the decoder positioned at the results.

        Raises OSError (connection trouble, the connection is then closed) or RpcError
        (MSG_DENIED, or an accept_stat other than SUCCESS).
        """
        if self._sock is None:
            raise ConnectionError("not connected")
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        xid = self._xid
        msg = encode_call(xid, self.prog, self.vers, proc, self.cred, args)
        try:
            self._sock.sendall(struct.pack(">I", LAST_FRAGMENT | len(msg)) + msg)
            while True:
                u = Unpacker(self._recv_record())
                if u.u32() == xid:
                    break  # anything else is a late reply to an abandoned call
        except OSError:
            self.close()
            raise
        except XdrError as exc:
            raise RpcError(str(exc)) from None
        try:
            decode_reply(u)
        except XdrError as exc:
            raise RpcError(str(exc)) from None
        return u
